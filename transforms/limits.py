"""The values each column action can transform without carrying them past their type's range."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.columns import ColumnSpec
from transforms.arrow import DATE_MAX, DATE_MIN, DAY_US, TIMESTAMP_MAX, TIMESTAMP_MIN


def has_range_limit(spec: ColumnSpec) -> bool:
    """Whether the column's action can carry a valid value past its type's range."""
    return spec.action == "date_shift" or (spec.action == "generalize" and "bucket" in spec.params)


def out_of_range(arr: pa.Array, spec: ColumnSpec) -> np.ndarray | None:
    """Mask of the values the column's action would carry out of its type's range, or None
    when the action has no such limit (`has_range_limit`).

    `date_shift` must stay inside years 1-9999 (`transforms.arrow`) for any offset within
    +-max_days, so the mask depends on the value alone, never on the key; an int `bucket`
    must start at or above int64's minimum; a float bucket must be finite. Numpy would wrap
    around silently. The contract check quarantines these rows (`range:<col>`).
    """
    if not has_range_limit(spec):
        return None
    if spec.action == "date_shift":
        m = spec.params["max_days"]
        if spec.type == "date":
            return _outside(arr.cast(pa.int32()), DATE_MIN + m, DATE_MAX - m)
        return _outside(
            arr.cast(pa.int64()), TIMESTAMP_MIN + m * DAY_US, TIMESTAMP_MAX - m * DAY_US
        )
    bucket = spec.params["bucket"]
    if spec.type == "int":
        return _outside(arr, -((2**63) // bucket) * bucket, 2**63 - 1)
    values = arr.fill_null(0).to_numpy(zero_copy_only=False)
    with np.errstate(over="ignore", invalid="ignore"):
        return ~np.isfinite(np.floor(values / bucket) * bucket)


def _outside(ints: pa.Array, lo: int, hi: int) -> np.ndarray:
    outside = pc.or_(pc.less(ints, lo), pc.greater(ints, hi))
    return pc.fill_null(outside, False).to_numpy(zero_copy_only=False)
