"""Keyed candidates and coins: deterministic, fair, drawn from marginals, never copied rows."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

from privgate.errors import DataError
from schemas.canaries import CanarySpec
from schemas.columns import parse_schema
from transforms.canaries.generate import (
    SECRET_ALPHABET,
    SHARD,
    build_profile,
    canary_key,
    candidates,
    coin_commitment,
    coins,
    secrets,
    shards,
)

KEY = canary_key(b"\x01" * 32, "ds")
SCHEMA = parse_schema(
    {
        "record_key": "n",
        "columns": {
            "n": {"type": "int", "action": "tokenize"},
            "email": {"type": "string", "pii": "EMAIL_ADDRESS", "action": "tokenize"},
            "city": {"type": "string", "action": "keep"},
            "label": {"type": "string", "action": "keep"},
            "age": {"type": "int", "action": "keep"},
            "score": {"type": "float", "action": "keep", "nullable": True},
            "vip": {"type": "bool", "action": "keep"},
            "born": {"type": "date", "action": "keep"},
            "notes": {"type": "string", "action": "keep", "nullable": True},
        },
    }
)
MISLABELED = CanarySpec(count=5000, kind="mislabeled", label="label")
SECRET = CanarySpec(count=100, kind="secret", field="notes", references=50)


def _head(n: int = 1000) -> pa.Table:
    rng = np.random.default_rng(1)
    city = rng.choice(["paris", "lyon", "nice"], size=n).tolist()
    city[0] = "onlyonce"  # a rare value: must never be copied
    return pa.table(
        {
            "n": pa.array(np.arange(n) + 100, pa.int64()),
            "email": [f"user{i}@mail.example" for i in range(n)],
            "city": city,
            "label": rng.choice(["no", "no", "no", "yes"], size=n).tolist(),
            "age": pa.array(rng.integers(18, 90, size=n), pa.int64()),
            "score": pa.array([None if i % 10 == 0 else float(i) for i in range(n)], pa.float64()),
            "vip": pa.array(rng.random(n) < 0.2),
            "born": pa.array(
                [
                    dt.date(1950, 1, 1) + dt.timedelta(days=int(d))
                    for d in rng.integers(0, 20000, n)
                ],
                pa.date32(),
            ),
            "notes": [f"note {i}" for i in range(n)],
        }
    )


def test_coins_are_keyed_fair_and_independent_of_how_they_are_sliced():
    c = coins(KEY, "ds", 10_000)
    # a fair coin: |sum - 5000| < 4 standard deviations (50) fails with probability ~6e-5
    assert abs(int(c.sum()) - 5000) < 200
    assert np.array_equal(coins(KEY, "ds", 10_000, 4000), c[4000:])
    other_ds, other_key = (
        coins(KEY, "other", 10_000),
        coins(canary_key(b"\x02" * 32, "ds"), "ds", 10_000),
    )
    for d in (other_ds, other_key):  # agreement of independent coins ~ Bin(1e4, 1/2)
        assert abs(int((d == c).sum()) - 5000) < 200


def test_the_canary_key_is_derived_per_dataset():
    token = b"\x01" * 32
    assert len(KEY) == 32 and KEY != token
    assert canary_key(token, "ds") == KEY and canary_key(token, "ds2") != KEY


def test_the_commitment_binds_every_coin():
    c = coins(KEY, "ds", 500)
    com = coin_commitment(KEY, "ds", c)
    assert com == coin_commitment(KEY, "ds", c.copy())
    flipped = c.copy()
    flipped[123] = ~flipped[123]
    assert coin_commitment(KEY, "ds", flipped) != com
    assert coin_commitment(KEY, "ds", c[:-1]) != com
    assert coin_commitment(canary_key(b"\x02" * 32, "ds"), "ds", c) != com


def test_candidates_are_regenerated_identically_per_shard():
    profile = build_profile(_head(), SCHEMA, MISLABELED)
    a = candidates(KEY, "ds", SCHEMA, MISLABELED, profile, 0, SHARD)
    assert a.equals(candidates(KEY, "ds", SCHEMA, MISLABELED, profile, 0, SHARD))
    assert not a.equals(
        candidates(canary_key(b"\x02" * 32, "ds"), "ds", SCHEMA, MISLABELED, profile, 0, SHARD)
    )
    assert shards(5000) == [(0, SHARD), (SHARD, 5000)]
    assert shards(10, 5000) == [(5000, 5010)]
    assert a.schema.names == list(SCHEMA.names)


def test_candidates_follow_the_marginals_and_copy_no_row_or_rare_value():
    head = _head()
    profile = build_profile(head, SCHEMA, MISLABELED)
    t = pa.concat_tables(
        candidates(KEY, "ds", SCHEMA, MISLABELED, profile, a, b) for a, b in shards(5000)
    )
    rows = t.to_pylist()
    # the record key: above the sample's maximum, unique
    assert min(r["n"] for r in rows) > 1099 and len({r["n"] for r in rows}) == 5000
    # a PII column: the shape of real values, never a real value
    real_emails = set(head.column("email").to_pylist())
    assert not real_emails & {r["email"] for r in rows}
    assert all(
        r["email"].startswith(tuple("abcdefghijklmnopqrstuvwxyz")) and "@" in r["email"]
        for r in rows
    )
    # a kept categorical: frequent values only, in proportion (paris ~1/3: 4 sd ~ 0.027)
    cities = [r["city"] for r in rows]
    assert set(cities) == {"paris", "lyon", "nice"}
    assert abs(cities.count("paris") / 5000 - 1 / 3) < 0.03
    # numbers and dates inside the sample's range; nulls at the sample's rate (10%: 4 sd 0.017)
    assert 18 <= min(r["age"] for r in rows) and max(r["age"] for r in rows) <= 89
    scores = [r["score"] for r in rows]
    assert abs(scores.count(None) / 5000 - 0.1) < 0.02
    born = head.column("born").to_pylist()
    assert min(born) <= min(r["born"] for r in rows) and max(r["born"] for r in rows) <= max(born)
    assert abs(np.mean([r["vip"] for r in rows]) - 0.2) < 0.03
    # mislabeled: never the label's usual value
    assert {r["label"] for r in rows} == {"yes"}
    real = {tuple(sorted(r.items())) for r in head.to_pylist()}
    assert not real & {tuple(sorted(r.items())) for r in rows}


def test_secret_canaries_carry_high_entropy_secrets_and_references_from_the_same_format():
    profile = build_profile(_head(), SCHEMA, SECRET)
    cand = candidates(KEY, "ds", SCHEMA, SECRET, profile, 0, 100)
    refs = candidates(KEY, "ds", SCHEMA, SECRET, profile, 100, 150, "reference")
    s, r = cand.column("notes").to_pylist(), refs.column("notes").to_pylist()
    assert len(set(s) | set(r)) == 150
    assert all(len(x) == 12 and set(x) <= set(SECRET_ALPHABET) for x in s + r)
    assert secrets(KEY, "ds", np.arange(3)) == s[:3]
    # 60 bits: every character position uses the whole alphabet over many secrets
    many = secrets(KEY, "ds", np.arange(2000))
    assert all(len({x[j] for x in many}) == 32 for j in range(12))
    assert math.log2(len(SECRET_ALPHABET)) * 12 == 60


def test_a_profile_needs_rows_and_a_label_with_two_values():
    with pytest.raises(DataError, match="no contract-valid input rows"):
        build_profile(_head().slice(0, 0), SCHEMA, MISLABELED)
    head = _head().set_column(3, "label", pa.array(["no"] * 1000))
    with pytest.raises(DataError, match="label column 'label' has fewer than two values"):
        build_profile(head, SCHEMA, MISLABELED)


def test_a_string_record_key_gets_at_least_64_random_bits():
    schema = parse_schema(
        {
            "record_key": "cid",
            "columns": {
                "cid": {"type": "string", "action": "tokenize"},
                "label": {"type": "string", "action": "keep"},
            },
        }
    )
    head = pa.table({"cid": [f"C{100000 + i}" for i in range(1000)], "label": ["a", "b"] * 500})
    spec = CanarySpec(count=4000, kind="mislabeled", label="label")
    t = candidates(KEY, "ds", schema, spec, build_profile(head, schema, spec), 0, 4000)
    keys = t.column("cid").to_pylist()
    assert len(set(keys)) == 4000 and not set(keys) & set(head.column("cid").to_pylist())
    # "A999999" is ~24.5 bits: lengthened by "-" and 9 base-26 letters (42 bits)
    assert all(len(k) == 17 and k[7] == "-" and k[8:].isalpha() for k in keys)


def test_an_ldp_string_column_draws_from_its_declared_categories():
    schema = parse_schema(
        {
            "columns": {
                "g": {
                    "type": "string",
                    "action": "ldp",
                    "epsilon": 1.0,
                    "categories": ["a", "b", "c"],
                },
                "label": {"type": "string", "action": "keep"},
            },
        }
    )
    # "c" never seen, "z" outside the list (the map bucket's case): only declared ones drawn
    head = pa.table({"g": ["a"] * 50 + ["b"] * 48 + ["z"] * 2, "label": ["x", "y"] * 50})
    spec = CanarySpec(count=3000, kind="mislabeled", label="label")
    t = candidates(KEY, "ds", schema, spec, build_profile(head, schema, spec), 0, 3000)
    drawn = t.column("g").to_pylist()
    assert set(drawn) == {"a", "b", "c"}
    assert drawn.count("c") / 3000 < 0.05  # weight 1/101: 4 sd of Bin(3000, 0.01) ~ 0.007
