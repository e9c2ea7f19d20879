"""The record-key census of memoized ldp: repeats counted over every batch, input fingerprint."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from schemas.columns import parse_schema
from transforms.ldp.census import census_summary, empty_census, merge_census, table_census

KEY = bytes(range(32))
SCHEMA = parse_schema(
    {
        "record_key": "id",
        "columns": {
            "id": {"type": "string", "action": "tokenize"},
            "income": {"type": "float", "action": "ldp", "epsilon": 1.0, "bounds": [0, 100]},
            "gender": {"type": "string", "action": "ldp", "epsilon": 1.0, "categories": ["f", "m"]},
        },
    }
)


def _batch(ids, income=None, gender=None):
    n = len(ids)
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "income": pa.array(income or [float(i) for i in range(n)], pa.float64()),
            "gender": pa.array(gender or ["f"] * n, pa.string()),
        }
    )


def _summary(*batches, key=KEY):
    return census_summary(merge_census(table_census(key, b, SCHEMA) for b in batches))


def test_a_repeated_key_is_counted_across_batches_not_only_within_one():
    a, b = _batch(["r1", "r2", "r3"]), _batch(["r4", "r2"])
    assert _summary(a)["repeated"] == 0 and _summary(b)["repeated"] == 0
    both = _summary(a, b)
    assert (both["rows"], both["repeated"]) == (5, 1)
    assert _summary(_batch(["r1", "r1", "r1"]))["repeated"] == 2
    assert census_summary(empty_census()) | {"fingerprint": None} == {
        "rows": 0,
        "repeated": 0,
        "fingerprint": None,
    }


def test_the_fingerprint_covers_record_keys_and_values_in_any_order():
    """Equal inputs in any batching and order give one fingerprint (a memoized repeat is
    free); another record key, another value, another ldp key give another one."""
    ids, income = ["r1", "r2", "r3", "r4"], [1.0, 2.0, 3.0, 4.0]
    base = _summary(_batch(ids, income))["fingerprint"]
    split = _summary(_batch(ids[2:], income[2:]), _batch(ids[:2], income[:2]))["fingerprint"]
    shuffled = _summary(_batch(ids[::-1], income[::-1]))["fingerprint"]
    assert base == split == shuffled and len(base) == 32
    assert _summary(_batch(["r1", "r2", "r3", "r5"], income))["fingerprint"] != base
    assert _summary(_batch(ids, [1.0, 2.0, 3.0, 4.5]))["fingerprint"] != base
    assert _summary(_batch(ids, income, ["f", "f", "f", "m"]))["fingerprint"] != base
    assert _summary(_batch(ids, income), key=bytes(32))["fingerprint"] != base
    # what the PRF sees: values clipped alike (500 and 900 both clip to 100) fingerprint alike
    assert (
        _summary(_batch(ids, [1.0, 2.0, 3.0, 500.0]))["fingerprint"]
        == (_summary(_batch(ids, [1.0, 2.0, 3.0, 900.0]))["fingerprint"])
    )


def test_the_summary_holds_counts_only_and_a_null_key_is_refused_without_its_value():
    summary = _summary(_batch(["secret-id-1", "secret-id-2"], gender=["secret-cat", "f"]))
    assert set(summary) == {"rows", "repeated", "fingerprint"}
    assert "secret" not in json.dumps(summary)
    with pytest.raises(ValueError, match="record keys must not be null") as e:
        table_census(KEY, _batch(["secret-id-1", None]), SCHEMA)
    assert "secret" not in str(e.value)
