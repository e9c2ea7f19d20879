"""Column actions over Arrow arrays: exact outputs for deterministic operators, properties
for keyed ones."""

import base64
import datetime as dt
import os

import numpy as np
import pyarrow as pa
import pytest

from privgate.errors import DataError
from schemas.columns import parse_schema
from transforms.actions import ACTIONS, ActionContext, KeyedOps


def spec(**col):
    s = parse_schema(
        {"record_key": "id", "columns": {"id": {"type": "string", "action": "keep"}, "c": col}}
    )
    return s.column("c")


@pytest.fixture(scope="module")
def ops():
    return KeyedOps(b"t" * 32, b"s" * 64, b"d" * 32)


def apply(values, typ, ctx=None, **opts):
    sp = spec(type=typ, **opts)
    return ACTIONS[sp.action](pa.array(values), sp, ctx).to_pylist()


@pytest.mark.parametrize(
    "values, opts, expected",
    [
        # keep the last four: the domain of an email survives
        (["ann@example.com"], {"keep_last": 4}, ["***********.com"]),
        # keep first and last
        (["4111111111111111"], {"keep_first": 2, "keep_last": 2}, ["41************11"]),
        # a value no longer than what is kept is masked whole
        (["abc", "abcd"], {"keep_first": 2, "keep_last": 2}, ["***", "****"]),
        # custom char, multibyte characters count as one
        (["héllo"], {"keep_first": 1, "char": "#"}, ["h####"]),
        # nulls stay null, empty string stays empty
        ([None, ""], {"keep_last": 1}, [None, ""]),
    ],
)
def test_mask(values, opts, expected):
    assert apply(values, "string", action="mask", **opts) == expected


def test_generalize_numbers_strings_dates():
    assert apply([17, 25, 90, None, -3], "int", action="generalize", bucket=10) == [
        10,
        20,
        90,
        None,
        -10,
    ]
    assert apply([1.5, 7.9], "float", action="generalize", bucket=2.5) == [0.0, 7.5]
    assert apply(["94105", "1", None], "string", action="generalize", keep_prefix=3) == [
        "941",
        "1",
        None,
    ]
    d = [dt.date(1990, 5, 17), None]
    assert apply(d, "date", action="generalize", date_part="year") == [dt.date(1990, 1, 1), None]
    assert apply(d, "date", action="generalize", date_part="month") == [dt.date(1990, 5, 1), None]


def test_redact_keeps_type_and_length():
    out = apply([1, 2, None], "int", action="redact")
    assert out == [None, None, None]


def test_tokens_are_deterministic_keyed_and_prefixed(ops):
    sp = spec(type="string", action="tokenize")
    ctx = ActionContext(ops)
    a = ACTIONS["tokenize"](pa.array(["x", "y", "x", None]), sp, ctx).to_pylist()
    assert a[0] == a[2] and a[0] != a[1] and a[3] is None
    assert all(t.startswith("tk_") and len(t) == 3 + 32 for t in a[:3])
    other = KeyedOps(b"u" * 32, b"s" * 64, b"d" * 32)
    b = ACTIONS["tokenize"](pa.array(["x"]), sp, ActionContext(other)).to_pylist()
    assert b[0] != a[0]
    # a column's own domain separates its tokens from the shared namespace
    dom = spec(type="string", action="tokenize", domain="hr")
    c = ACTIONS["tokenize"](pa.array(["x"]), dom, ctx).to_pylist()
    assert c[0] != a[0]


def test_token_matches_reference_hmac(ops):
    import hashlib
    import hmac

    expected = "tk_" + hmac.new(b"t" * 32, b"\0" + b"alice", hashlib.sha256).hexdigest()[:32]
    assert ops.tokens(["alice"]) == [expected]


def test_encrypt_is_deterministic_and_reversible(ops):
    sp = spec(type="string", action="encrypt")
    vals = ["078-05-1120", "219-09-9999", "078-05-1120"]
    out = ACTIONS["encrypt"](pa.array(vals), sp, ActionContext(ops)).to_pylist()
    assert out[0] == out[2] and out[0] != out[1] and out[0].startswith("ae_")
    assert [ops.decrypt(c) for c in out] == vals
    with pytest.raises(ValueError, match="does not decrypt"):
        ops.decrypt(out[0], "other-domain")
    with pytest.raises(ValueError) as e:
        KeyedOps(b"t" * 32, b"z" * 64, b"d" * 32).decrypt(out[0])
    assert "078" not in str(e.value)


def test_date_shift_moves_a_records_dates_together_within_bounds(ops):
    n = 2000
    keys = pa.array([f"r{i % 500}" for i in range(n)])
    base = dt.date(2020, 6, 15)
    dates = pa.array([base] * n)
    ctx = ActionContext(ops, keys, "id")
    sp = parse_schema(
        {
            "record_key": "id",
            "columns": {
                "id": {"type": "string", "action": "keep"},
                "d": {"type": "date", "action": "date_shift", "max_days": 30},
                "t": {"type": "timestamp", "action": "date_shift", "max_days": 30},
            },
        }
    )
    shifted = ACTIONS["date_shift"](dates, sp.column("d"), ctx).to_pylist()
    ts = pa.array([dt.datetime(2020, 6, 15, 12, tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC"))
    shifted_ts = ACTIONS["date_shift"](ts, sp.column("t"), ctx).to_pylist()
    offsets = np.array([(d - base).days for d in shifted])
    assert offsets.min() >= -30 and offsets.max() <= 30
    # the same record key always gets the same offset, in both columns
    for i in range(n):
        assert offsets[i] == offsets[i % 500]
        assert (shifted_ts[i].date() - base).days == offsets[i]
    # offsets spread over the whole range (61 values; 500 draws)
    assert len(set(offsets.tolist())) > 50


def test_keyed_ops_refuse_pickling(ops):
    import pickle

    with pytest.raises(TypeError, match="must not be pickled"):
        pickle.dumps(ops)


def test_keyed_actions_work_on_distinct_values(ops, monkeypatch):
    calls = []
    real = ops.tokens_array

    def counting(values, domain=""):
        calls.append(len(values))
        return real(values, domain)

    monkeypatch.setattr(ops, "tokens_array", counting)
    sp = spec(type="string", action="tokenize")
    out = ACTIONS["tokenize"](pa.array(["a", "b"] * 1000), sp, ActionContext(ops)).to_pylist()
    assert calls == [2]
    assert out[:2] == ops.tokens(["a", "b"]) and out[2:4] == out[:2]


def test_record_key_token_shares_digests_with_date_shift(ops):
    keys = pa.array(["r1", "r2", "r1"])
    ctx = ActionContext(ops, keys, "id")
    s = parse_schema(
        {"record_key": "id", "columns": {"id": {"type": "string", "action": "tokenize"}}}
    )
    via_ctx = ACTIONS["tokenize"](keys, s.column("id"), ctx).to_pylist()
    assert via_ctx == ops.tokens(["r1", "r2", "r1"])


def test_vectorized_siv_is_bit_identical_to_cryptography_aessiv():
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

    key = os.urandom(64)
    ops = KeyedOps(os.urandom(32), key, os.urandom(32))
    ref = AESSIV(key)
    rng = np.random.default_rng(3)  # test data only
    # every length class: empty, < 1 block, exactly 1 block, several blocks, multibyte text
    values = ["", "a", "héllo wörld", "x" * 15, "y" * 16, "z" * 17, "0123456789" * 7]
    values += [
        "".join(chr(c) for c in rng.integers(32, 1000, rng.integers(0, 60))) for _ in range(300)
    ]
    for domain in ("", "hr"):
        out = ops.encrypt(values, domain)
        for v, c in zip(values, out, strict=True):
            raw = base64.urlsafe_b64decode(c[3:] + "=" * (-len(c[3:]) % 4))
            assert raw == ref.encrypt(v.encode(), [b"privgate:" + domain.encode()])
            assert ops.decrypt(c, domain) == v


@pytest.mark.parametrize(
    "typ, opts, values",
    [
        # timestamps near the int64 limit: the shift wrapped around silently
        ("timestamp", {"action": "date_shift", "max_days": 30}, [2**63 - 1000, -(2**63) + 1000]),
        # dates near the int32 limit: pyarrow's overflow error quoted the value
        ("date", {"action": "date_shift", "max_days": 30}, [2**31 - 2, -(2**31) + 2]),
        # a bucket below int64 min wrapped to a large positive number
        ("int", {"action": "generalize", "bucket": 10}, [-(2**63), -(2**63) + 5]),
        # floats whose bucket is not finite
        ("float", {"action": "generalize", "bucket": 0.5}, [1.7e308, -1.7e308]),
    ],
    ids=["date_shift-timestamp", "date_shift-date", "generalize-int", "generalize-float"],
)
def test_actions_refuse_values_they_would_overflow_without_naming_them(ops, typ, opts, values):
    arrow = {
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        "int": pa.int64(),
        "float": pa.float64(),
    }[typ]
    arr = pa.array(values, arrow)
    sp = spec(type=typ, **opts)
    ctx = ActionContext(ops, pa.array(["a", "b"]), "id")
    with pytest.raises(DataError) as e:
        ACTIONS[sp.action](arr, sp, ctx)
    assert "contract" in str(e.value) and "'c'" in str(e.value)
    for v in values:
        assert str(v) not in str(e.value) and str(abs(v)) not in str(e.value)
    assert e.value.__context__ is None or e.value.__suppress_context__
