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


# The calendar of privgate's dates and timestamps: what ISO 8601 text and Python's datetime
# hold (years 1 to 9999). A typed input outside it is a type error, as it is for text.
DAY_US = 86_400_000_000
DATE_MIN = -719_162  # 0001-01-01, in days since 1970-01-01
DATE_MAX = 2_932_896  # 9999-12-31
TIMESTAMP_MIN = DATE_MIN * DAY_US  # 0001-01-01T00:00:00Z, in microseconds
TIMESTAMP_MAX = (DATE_MAX + 1) * DAY_US - 1  # 9999-12-31T23:59:59.999999Z
