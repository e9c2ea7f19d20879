"""The contract check: typing from raw cells, and quarantine reasons."""

import datetime as dt
import json

import pyarrow as pa
import pytest

from schemas.columns import parse_schema
from transforms.contract import (
    check_batch,
    coerce,
    contract_check,
    input_contract_check,
    merge_contract_counts,
)


def col(**kw):
    return parse_schema({"columns": {"c": kw}}).column("c")


@pytest.mark.parametrize(
    "typ, extra, raw, typed, bad",
    [
        (
            "int",
            {},
            [" 42", "-7", "4.0", "x", "", None, "99999999999999999999"],
            [42, -7, None, None, None, None, None],
            [0, 0, 1, 1, 1, 0, 1],
        ),
        (
            "float",
            {},
            ["1.5", "1e3", "nan", "inf", "-.5", "1,0"],
            [1.5, 1000.0, None, None, -0.5, None],
            [0, 0, 1, 1, 0, 1],
        ),
        ("bool", {}, ["true", "No", "1", "maybe"], [True, False, True, None], [0, 0, 0, 1]),
        (
            "date",
            {"format": "%m/%d/%Y"},
            ["05/17/1990", "17/05/1990"],
            [dt.date(1990, 5, 17), None],
            [0, 1],
        ),
        ("date", {}, ["1990-05-17", "1990-02-30"], [dt.date(1990, 5, 17), None], [0, 1]),
    ],
)
def test_coerce_strings(typ, extra, raw, typed, bad):
    out, enc_bad, type_bad = coerce(
        pa.array(raw, pa.string()), col(type=typ, action="keep", **extra)
    )
    # empty strings are CSV nulls upstream; here "" is an unparseable value for numbers
    assert out.to_pylist() == typed
    assert type_bad.astype(int).tolist() == bad
    assert not enc_bad.any()


def test_coerce_iso_timestamps_to_utc():
    raw = [
        "2020-01-02T03:04:05Z",
        "2020-01-02 03:04:05+02:00",
        "2020-01-02",
        "2020-01-02T03:04:05.123",
        "2020-13-01",
    ]
    out, _, bad = coerce(pa.array(raw), col(type="timestamp", action="keep"))
    utc = dt.UTC
    assert out.to_pylist() == [
        dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=utc),
        dt.datetime(2020, 1, 2, 1, 4, 5, tzinfo=utc),
        dt.datetime(2020, 1, 2, tzinfo=utc),
        dt.datetime(2020, 1, 2, 3, 4, 5, 123000, tzinfo=utc),
        None,
    ]
    assert bad.tolist() == [False] * 4 + [True]


def test_coerce_typed_inputs():
    out, _, bad = coerce(pa.array([1.0, 2.5, None]), col(type="int", action="keep"))
    assert out.to_pylist() == [1, None, None] and bad.tolist() == [False, True, False]
    out, _, bad = coerce(pa.array([[1], None]), col(type="string", action="keep"))
    assert bad.tolist() == [True, False]
    out, _, bad = coerce(pa.array([float("nan"), 1.0]), col(type="float", action="keep"))
    assert out.to_pylist() == [None, 1.0] and bad.tolist() == [True, False]


def test_invalid_utf8_is_flagged_per_cell():
    raw = pa.array([b"ok", b"\xff\xfe", None], pa.binary())
    out, enc_bad, type_bad = coerce(raw, col(type="string", action="keep"))
    assert out.to_pylist() == ["ok", None, None]
    assert enc_bad.tolist() == [False, True, False]


def test_check_batch_splits_rows_and_keeps_raw_values_only_in_quarantine():
    schema = parse_schema(
        {
            "columns": {
                "id": {"type": "string", "action": "tokenize"},
                "age": {"type": "int", "action": "keep"},
                "note": {"type": "string", "action": "keep", "nullable": True},
            }
        }
    )
    raw = pa.table(
        {"id": ["a", None, "c", "d"], "age": ["1", "2", "old", None], "note": [None, "n", "n", "n"]}
    )
    good, bad = check_batch(raw, schema, "f.csv", 100)
    assert good.column("id").to_pylist() == ["a"]
    assert good.schema.field("age").type == pa.int64()
    assert bad.column("_reason").to_pylist() == ["null:id", "type:age", "null:age"]
    assert bad.column("_row").to_pylist() == [101, 102, 103]
    assert json.loads(bad.column("_record")[1].as_py()) == {"id": "c", "age": "old", "note": "n"}
    assert good.num_rows + bad.num_rows == raw.num_rows


def _counting_schema():
    return parse_schema(
        {
            "columns": {
                "id": {"type": "string", "action": "tokenize"},
                "age": {"type": "int", "action": "keep"},
                "g": {
                    "type": "string",
                    "action": "ldp",
                    "epsilon": 1.0,
                    "categories": ["a", "b"],
                    "out_of_domain": "quarantine",  # the domain rule applies
                },
                "x": {"type": "float", "action": "ldp", "epsilon": 1.0, "bounds": [0, 10]},
            }
        }
    )


def test_contract_check_counts_every_rule_a_row_breaks_and_keeps_every_row_typed():
    raw = pa.table(
        {
            "id": [None, "b", "c", "d"],
            "age": ["old", "2", None, "4"],
            "g": ["a", "zz", "b", "a"],
            "x": ["1", "2", "99", "-1"],
        }
    )
    checked = contract_check(raw, _counting_schema(), "f.csv", 0, max_cell_bytes=100)
    assert checked.counts == {
        "rows": 4,
        "columns": {
            "id": {"size": 0, "encoding": 0, "type": 0, "null": 1},
            "age": {"size": 0, "encoding": 0, "type": 1, "null": 1},
            "g": {"size": 0, "encoding": 0, "type": 0, "null": 0, "domain": 1},
            "x": {"size": 0, "encoding": 0, "type": 0, "null": 0, "bounds": 2},
        },
    }
    # row 0 broke two rules: counted under both, quarantined under the first
    assert checked.quarantine.column("_reason").to_pylist() == ["null:id", "domain:g", "null:age"]
    assert checked.typed.num_rows == 4 and checked.typed.column("age").to_pylist()[:2] == [None, 2]
    assert checked.good.num_rows == 1  # x out of bounds is clipped later, not quarantined


def test_input_contract_check_names_column_and_rule_with_counts_only():
    schema = _counting_schema()
    parts = [
        {"rows": 3, "columns": {"age": {"encoding": 0, "type": 1, "null": 0}}},
        {"rows": 2, "columns": {"age": {"encoding": 0, "type": 1, "null": 0}, "x": {"bounds": 1}}},
    ]
    c = input_contract_check(schema, merge_contract_counts(parts))
    d = c["details"]
    assert c["name"] == "input_contract" and c["passed"] is True
    assert d["suite"] == "privgate_input_contract" and d["critical_failed"] == 0
    failed = [
        (e["column"], e["type"], e["unexpected_count"])
        for e in d["expectations"]
        if not e["success"]
    ]
    assert failed == [
        ("age", "expect_column_values_to_parse_as_type", 2),
        ("x", "expect_column_values_to_be_between", 1),
    ]
    assert d["warnings"] == 2 and d["evaluated"] == len(d["expectations"])
    exists = [e for e in d["expectations"] if e["type"] == "expect_column_to_exist"]
    assert [e["column"] for e in exists] == ["id", "age", "g", "x"]
    assert all(e["severity"] == "critical" and e["success"] for e in exists)
    assert all(e.get("element_count", 5) == 5 for e in d["expectations"])
    json.dumps(c)


def test_input_contract_check_of_no_rows_passes_with_zero_counts():
    c = input_contract_check(_counting_schema(), merge_contract_counts([]))
    assert c["passed"] and c["details"]["failed"] == 0


# ------------------------------------------- typed (Parquet) inputs: casts never raise (#13)

_US = 1_000_000
_NS_BAD = 1_577_836_800_123_456_789  # 2020-01-01 00:00:00.123456789: not a whole microsecond
_TS_DAY = 86_400 * _US


@pytest.mark.parametrize(
    "arr, typ, typed, bad",
    [
        # pandas writes timestamp[ns]: whole microseconds convert, a finer value cannot
        (
            pa.array([_NS_BAD, 1_577_836_800_000_001_000, None], pa.timestamp("ns")),
            "timestamp",
            [None, dt.datetime(2020, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC), None],
            [1, 0, 0],
        ),
        # seconds far beyond what microseconds can hold
        (
            pa.array([2**62, 0], pa.timestamp("s")),
            "timestamp",
            [None, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)],
            [1, 0],
        ),
        # date64 must be whole days
        (
            pa.array([86_400_000 * 100 + 12_345, 86_400_000 * 5], pa.date64()),
            "date",
            [None, dt.date(1970, 1, 6)],
            [1, 0],
        ),
        # dates and timestamps outside the calendar (years 1-9999) are not of the type
        (
            pa.array([-(2**31), 2**31 - 1, 0], pa.date32()),
            "date",
            [None, None, dt.date(1970, 1, 1)],
            [1, 1, 0],
        ),
        (
            pa.array([-(2**31), 0], pa.date32()),
            "timestamp",
            [None, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)],
            [1, 0],
        ),
        (
            pa.array([2**63 - 1, -(2**63) + 1, 0], pa.timestamp("us", tz="UTC")),
            "timestamp",
            [None, None, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)],
            [1, 1, 0],
        ),
        # an int a float cannot hold exactly is not a float; one it can hold is
        (
            pa.array([2**53 + 1, 2**60, -(2**63), 5], pa.int64()),
            "float",
            [None, 2.0**60, -(2.0**63), 5.0],
            [1, 0, 0, 0],
        ),
        (pa.array([2**64 - 1, 7], pa.uint64()), "float", [None, 7.0], [1, 0]),
        (pa.array([2**64 - 1, 7], pa.uint64()), "int", [None, 7], [1, 0]),
        # decimals: whole values into int, any into float
        (pa.array(["1", "2.25"]).cast(pa.decimal128(10, 2)), "float", [1.0, 2.25], [0, 0]),
        (pa.array(["1.5", "2"]).cast(pa.decimal128(10, 2)), "int", [None, 2], [1, 0]),
        # other time zones are the same instants in UTC
        (
            pa.array([0], pa.timestamp("ms", tz="Europe/Paris")),
            "timestamp",
            [dt.datetime(1970, 1, 1, tzinfo=dt.UTC)],
            [0],
        ),
    ],
    ids=[
        "ns-fraction",
        "s-overflow",
        "date64-fraction",
        "date32-calendar",
        "date32-to-timestamp",
        "timestamp-calendar",
        "int-to-float",
        "uint64-to-float",
        "uint64-to-int",
        "decimal-to-float",
        "decimal-to-int",
        "tz",
    ],
)
def test_typed_inputs_a_cast_cannot_hold_are_type_errors_not_exceptions(arr, typ, typed, bad):
    out, enc_bad, type_bad = coerce(arr, col(type=typ, action="keep", nullable=True))
    assert out.to_pylist() == typed
    assert type_bad.astype(int).tolist() == bad
    assert not enc_bad.any()


def test_a_failed_cast_quarantines_the_row_and_names_no_value():
    schema = parse_schema(
        {
            "columns": {
                "id": {"type": "string", "action": "keep"},
                "t": {"type": "timestamp", "action": "keep"},
            }
        }
    )
    raw = pa.table({"id": ["a", "b"], "t": pa.array([_NS_BAD, 0], pa.timestamp("ns"))})
    checked = contract_check(raw, schema, "f.parquet", 0)
    assert checked.quarantine.column("_reason").to_pylist() == ["type:t"]
    assert checked.good.column("id").to_pylist() == ["b"]


def test_quarantine_holds_temporal_values_python_cannot_represent():
    schema = parse_schema(
        {
            "columns": {
                "t": {"type": "timestamp", "action": "keep"},
                "d": {"type": "date", "action": "keep"},
            }
        }
    )
    raw = pa.table(
        {
            "t": pa.array([2**63 - 1], pa.timestamp("us", tz="UTC")),
            "d": pa.array([-(2**31)], pa.date32()),
        }
    )
    checked = contract_check(raw, schema, "f.parquet", 0)
    assert checked.quarantine.column("_reason").to_pylist() == ["type:t"]
    record = json.loads(checked.quarantine.column("_record")[0].as_py())
    assert set(record) == {"t", "d"} and all(isinstance(v, str) for v in record.values())


# -------------------------------------------------- dictionary (categorical) columns (#13)


@pytest.mark.parametrize(
    "arr, typ, expected",
    [
        (
            pa.array(["gold", "silver", None, "gold"]).dictionary_encode(),
            "string",
            ["gold", "silver", None, "gold"],
        ),
        (pa.array(["1", "2", None]).dictionary_encode(), "int", [1, 2, None]),
        (pa.array([3, 4, 3]).dictionary_encode(), "int", [3, 4, 3]),
        (pa.array(["a", "b"], pa.large_string()).dictionary_encode(), "string", ["a", "b"]),
        (
            pa.chunked_array(
                [pa.array(["x"]).dictionary_encode(), pa.array(["y", "x"]).dictionary_encode()]
            ),
            "string",
            ["x", "y", "x"],
        ),
        (pa.array(["a", None], pa.string_view()), "string", ["a", None]),
        (pa.array([b"a"], pa.binary_view()), "string", ["a"]),
    ],
    ids=[
        "categorical",
        "dict-int-text",
        "dict-int",
        "dict-large-string",
        "chunked",
        "string-view",
        "binary-view",
    ],
)
def test_dictionary_and_view_columns_are_decoded(arr, typ, expected):
    schema = parse_schema({"columns": {"c": {"type": typ, "action": "keep", "nullable": True}}})
    checked = contract_check(pa.table({"c": arr}), schema, "f.parquet", 0, max_cell_bytes=100)
    assert checked.quarantine is None
    assert checked.good.column("c").to_pylist() == expected


def test_size_rule_applies_to_dictionary_columns():
    schema = parse_schema({"columns": {"c": {"type": "string", "action": "keep"}}})
    arr = pa.array(["short", "L" * 200, "short"]).dictionary_encode()
    checked = contract_check(pa.table({"c": arr}), schema, "f.parquet", 0, max_cell_bytes=100)
    assert checked.quarantine.column("_reason").to_pylist() == ["size:c"]


# ---------------------------------------- values an action would overflow: range:<col> (#13)

_DAY_MAX = (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days
_DAY_MIN = (dt.date(1, 1, 1) - dt.date(1970, 1, 1)).days


def test_range_rule_quarantines_values_an_action_would_overflow():
    schema = parse_schema(
        {
            "record_key": "id",
            "columns": {
                "id": {"type": "string", "action": "tokenize"},
                "d": {"type": "date", "action": "date_shift", "max_days": 30},
                "t": {"type": "timestamp", "action": "date_shift", "max_days": 30},
                "n": {"type": "int", "action": "generalize", "bucket": 10},
                "f": {"type": "float", "action": "generalize", "bucket": 0.5},
            },
        }
    )
    ts_max = (_DAY_MAX + 1) * _TS_DAY - 1  # 9999-12-31T23:59:59.999999
    raw = pa.table(
        {
            "id": ["ok", "d-high", "d-low", "t-high", "n-low", "f-high", "edge"],
            "d": pa.array([0, _DAY_MAX - 29, _DAY_MIN + 29, 0, 0, 0, _DAY_MAX - 30], pa.date32()),
            "t": pa.array(
                [0, 0, 0, ts_max - 29 * _TS_DAY, 0, 0, ts_max - 30 * _TS_DAY],
                pa.timestamp("us", tz="UTC"),
            ),
            "n": [0, 0, 0, 0, -(2**63), 0, -(2**63) + 8],
            "f": [0.0, 0.0, 0.0, 0.0, 0.0, 1.7e308, 1e300],
        }
    )
    checked = contract_check(raw, schema, "f.parquet", 0)
    assert checked.quarantine.column("_reason").to_pylist() == [
        "range:d",
        "range:d",
        "range:t",
        "range:n",
        "range:f",
    ]
    assert checked.good.column("id").to_pylist() == ["ok", "edge"]
    assert checked.counts["columns"]["n"]["range"] == 1
    assert "range" not in checked.counts["columns"]["id"]


# --------------------------------------------------------------------------- issue 13.5


_LDP_COLUMNS = {
    "g": {"type": "string", "action": "ldp", "epsilon": 1.0, "categories": ["a", "b"]},
    "x": {"type": "float", "action": "ldp", "epsilon": 1.0, "bounds": [0, 10]},
    "n": {"type": "int", "action": "ldp", "epsilon": 1.0, "bounds": [0, 5]},
}


def _ldp_domain_schema(**extra):
    """The three ldp columns, `extra[name]` added to a column's options."""
    return parse_schema(
        {"columns": {k: dict(v, **extra.get(k, {})) for k, v in _LDP_COLUMNS.items()}}
    )


_NAN, _INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "x, n",
    [
        (pa.array([1.0, _NAN, _INF, -_INF]), pa.array([1.0, _NAN, _INF, -_INF])),  # Parquet
        (pa.array(["1", "NaN", "inf", "-Infinity"]), pa.array(["1", "nan", "+inf", "-inf"])),
    ],
    ids=["typed", "text"],
)
def test_ldp_values_outside_the_domain_are_mapped_not_quarantined_by_default(x, n):
    """Issue 13.5: quarantining a row because its ldp value is outside `categories` or is
    NaN/inf decides on the private value and shows it in the clear manifest. By default
    nothing is quarantined: the category goes on to the `other` bucket, NaN counts as the
    lower bound and infinities are clipped to the bounds; no rule counts them either."""
    raw = pa.table({"g": ["a", "zz", "b", "a"], "x": x, "n": n})
    checked = contract_check(raw, _ldp_domain_schema(), "f", 0)
    assert checked.quarantine is None and checked.good.num_rows == 4
    assert checked.good.column("g").to_pylist() == ["a", "zz", "b", "a"]
    assert checked.good.column("x").to_pylist() == [1.0, 0.0, 10.0, 0.0]
    assert checked.good.column("n").to_pylist() == [1, 0, 5, 0]
    assert "domain" not in checked.counts["columns"]["g"]
    assert checked.counts["columns"]["x"]["type"] == checked.counts["columns"]["n"]["type"] == 0


def test_out_of_domain_quarantine_quarantines_what_the_schema_asks():
    raw = pa.table({"g": ["a", "zz", "b", "a"], "x": [1.0, _NAN, 2.0, _INF], "n": [1, 2, 3, 4]})
    strict = {"out_of_domain": "quarantine"}
    schema = _ldp_domain_schema(g=strict, x=strict)
    checked = contract_check(raw, schema, "f", 0)
    assert checked.quarantine.column("_reason").to_pylist() == ["domain:g", "type:x"]
    assert checked.counts["columns"]["g"]["domain"] == 1
    assert checked.counts["columns"]["x"]["type"] == 2
