"""The contract check: typing from raw cells, and quarantine reasons."""

import datetime as dt
import json

import pyarrow as pa
import pytest

from schemas.columns import parse_schema
from transforms.contract import check_batch, coerce


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
