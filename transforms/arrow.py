"""The Arrow representation of privgate's column types, shared by every stage."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def as_string(arr: pa.Array) -> pa.Array:
    """A string view of any column: dates and timestamps as ISO 8601, stable across runs."""
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_date(arr.type) or pa.types.is_timestamp(arr.type):
        return pc.strftime(
            arr, format="%Y-%m-%d" if pa.types.is_date(arr.type) else "%Y-%m-%dT%H:%M:%S.%fZ"
        )
    return pc.cast(arr, pa.string())
