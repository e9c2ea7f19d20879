"""README "Extending": a new action is one declaration and one function.

The action here, `hash_bucket`, maps a string to a keyed bucket number in [0, buckets): a
coarse, join-stable feature that never shows the value. Nothing else in the tree is edited:
the parser, the output schema, the key group, the residual-PII gate and the report all read
its declaration.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from privgate.errors import ConfigError
from schemas import columns
from transforms import actions
from transforms.arrow import as_string
from transforms.protect import output_schema, protect_table

HASH_BUCKET = columns.Action(
    "hash_bucket",
    options=("buckets",),
    parse=lambda node, ctype, custom: {"buckets": node.int("buckets", required=True, minimum=2)},
    output="int",
    detectable=False,  # a bucket number is not PII
    noted=("buckets",),
)


def hash_bucket(arr, spec, ctx):
    """Keyed bucket of each value (HMAC token, first 32 bits, modulo `buckets`)."""
    strings = as_string(arr)
    tokens = actions._map_distinct(strings, lambda v: ctx.ops.tokens_array(v, "hash_bucket"))
    tokens = tokens.to_pylist()
    n = spec.params["buckets"]
    return pa.array([None if t is None else int(t[3:11], 16) % n for t in tokens], pa.int64())


@pytest.fixture
def with_hash_bucket(monkeypatch):
    monkeypatch.setitem(columns.ACTIONS, "hash_bucket", HASH_BUCKET)  # the declaration
    monkeypatch.setitem(actions.ACTIONS, "hash_bucket", hash_bucket)  # the function


SCHEMA = {
    "record_key": "id",
    "columns": {
        "id": {"type": "string", "action": "tokenize"},
        "city": {"type": "string", "action": "hash_bucket", "buckets": 8, "nullable": True},
    },
}


def test_every_declared_action_has_a_function_and_back():
    assert set(columns.ACTIONS) == set(actions.ACTIONS)


def test_a_new_action_is_one_declaration_and_one_function(with_hash_bucket):
    from pipelines.gates import _detect_columns
    from transforms.report.html import _column_notes

    schema = columns.parse_schema(SCHEMA, "schemas/x.yaml")
    city = schema.column("city")
    assert (city.params, city.output_type, city.key_group) == ({"buckets": 8}, "int", "pii")
    assert output_schema(schema).field("city").type == pa.int64()
    assert _detect_columns(schema) == []  # tokenized id and bucket numbers: nothing to detect
    assert _column_notes({**city.to_dict(), "action": "hash_bucket"}) == "buckets 8"

    ops = actions.KeyedOps(b"t" * 32, b"s" * 64, b"d" * 32)
    table = pa.table({"id": ["a", "b", "c", "d"], "city": ["Oslo", "Lima", "Oslo", None]})
    out = protect_table(table, schema, ops).column("city").to_pylist()
    assert out[0] == out[2] and out[3] is None  # deterministic, nulls stay null
    assert all(0 <= b < 8 for b in out[:3])


@pytest.mark.parametrize(
    "col, where",
    [
        ({"type": "string", "action": "hash_bucket"}, "columns.city.buckets: is required"),
        ({"type": "string", "action": "hash_bucket", "buckets": 1}, "columns.city.buckets"),
        (
            {"type": "string", "action": "hash_bucket", "buckets": 8, "keep_last": 2},
            "columns.city.keep_last: unknown key",
        ),
    ],
)
def test_a_new_action_s_options_are_checked_with_file_and_key(with_hash_bucket, col, where):
    data = {"record_key": "id", "columns": {"id": SCHEMA["columns"]["id"], "city": col}}
    with pytest.raises(ConfigError, match=re.escape(f"schemas/x.yaml: {where}")):
        columns.parse_schema(data, "schemas/x.yaml")


def test_an_undeclared_action_is_refused_with_the_list():
    data = {"columns": {"city": {"type": "string", "action": "hash_bucket", "buckets": 8}}}
    with pytest.raises(ConfigError, match=r"columns\.city\.action: must be one of: keep, "):
        columns.parse_schema(data, "schemas/x.yaml")
