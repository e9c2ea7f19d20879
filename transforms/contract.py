"""Contract check: coerce raw input columns to their declared types, vectorized, and split
off the rows that break the contract (to the quarantine, with a reason code).

Reason codes: `size:<col>` (a cell over input.max_cell_bytes), `encoding:<col>` (invalid
UTF-8), `type:<col>` (value not of the declared type: NaN/inf, a date outside years 1-9999, a
typed value a cast cannot hold exactly such as a nanosecond timestamp or an int over 2**53 in
a float column), `null:<col>` (missing in a non-nullable column), `range:<col>` (a value the
column's action would carry past its type's range: `transforms.limits`), plus
the reader's own `columns` (ragged CSV row) and `json` (malformed JSON line). A row gets the
first reason in column order. Exceptions from pyarrow casts quote the failing value, so a
value a cast refuses becomes a bad cell and no cast error is re-raised.

Every batch also yields its per-rule counts (a row counted under every rule it breaks); summed
over the run they are the gates' `input_contract` check (`input_contract_check`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.errors import value_free_errors
from schemas.columns import ColumnSpec, Schema
from schemas.ldp import quarantines_out_of_domain
from transforms.arrow import (
    ARROW_TYPES,
    DATE_MAX,
    DATE_MIN,
    DAY_US,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    as_string,
)
from transforms.limits import has_range_limit, out_of_range

QUARANTINE_SCHEMA = pa.schema(
    [
        ("_reason", pa.string()),
        ("_source", pa.string()),
        ("_row", pa.int64()),
        ("_record", pa.string()),
    ]
)

_INT_RE = r"^[+-]?[0-9]{1,19}$"
_FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_DATE_ONLY_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_ZONE_RE = r"(Z|z|[+-][0-9]{2}:?[0-9]{2})$"


def _null_where(arr: pa.Array, bad: np.ndarray) -> pa.Array:
    if not bad.any():
        return arr
    return pc.if_else(pa.array(bad), pa.nulls(len(arr), arr.type), arr)


def _cast_distinct(s: pa.Array, target: pa.DataType, py_ok) -> pa.Array:
    """Cast a string array, falling back to a per-distinct-value check if the vector cast
    fails; values `py_ok` rejects become null. The pyarrow error (which quotes the value) is
    swallowed on purpose."""
    try:
        return pc.cast(s, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    distinct = pc.unique(s.drop_null()).to_pylist()
    bad = [v for v in distinct if not py_ok(v)]
    s = pc.if_else(pc.is_in(s, pa.array(bad, pa.string())), pa.nulls(len(s), pa.string()), s)
    try:
        return pc.cast(s, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Last resort: per value (rare; only for inputs the vector cast refuses).
        out = []
        for v in s.to_pylist():
            try:
                out.append(None if v is None else pc.cast(pa.array([v]), target)[0].as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                out.append(None)
        return pa.array(out, target)


def _fits_int64(v: str) -> bool:
    try:
        return -(2**63) <= int(v) < 2**63
    except ValueError:
        return False


def _parse_strings(s: pa.Array, spec: ColumnSpec) -> pa.Array:
    """Parse a string array into the column's type; unparseable values become null."""
    t = spec.type
    if t == "string":
        return s
    trimmed = pc.utf8_trim_whitespace(s)
    if t == "int":
        ok = pc.match_substring_regex(trimmed, _INT_RE)
        return _cast_distinct(pc.if_else(ok, trimmed, None), pa.int64(), _fits_int64)
    if t == "float":
        ok = pc.match_substring_regex(trimmed, _FLOAT_RE)
        out = _cast_distinct(pc.if_else(ok, trimmed, None), pa.float64(), lambda v: True)
        return _drop_non_finite(out)
    if t == "bool":
        low = pc.utf8_lower(trimmed)
        return pc.if_else(
            pc.is_in(low, pa.array(_TRUE)),
            True,
            pc.if_else(pc.is_in(low, pa.array(_FALSE)), False, pa.scalar(None, pa.bool_())),
        )
    if t == "date":
        fmt = spec.format or "%Y-%m-%d"
        ts = _strict_strptime(trimmed, fmt, "s")
        return pc.cast(ts, pa.date32())
    # timestamp
    if spec.format:
        return _to_utc(_strict_strptime(trimmed, spec.format, "us"))
    date_only = pc.match_substring_regex(trimmed, _DATE_ONLY_RE)
    text = pc.if_else(date_only, pc.binary_join_element_wise(trimmed, "T00:00:00", ""), trimmed)
    zoned = pc.match_substring_regex(text, _ZONE_RE)
    text = pc.if_else(zoned, text, pc.binary_join_element_wise(text, "Z", ""))
    return _cast_distinct(text, ARROW_TYPES["timestamp"], lambda v: _iso_ok(v))


def _strict_strptime(s: pa.Array, fmt: str, unit: str) -> pa.Array:
    """pc.strptime, but impossible dates (Feb 30) are null: Arrow normalizes them silently.

    Values whose parse does not format back to the same text are re-checked with Python's
    strict parser (only those distinct values, so typical columns never take this path).
    """
    import datetime as dt

    ts = pc.strptime(s, format=fmt, unit=unit, error_is_null=True)
    differs = pc.and_(ts.is_valid(), pc.not_equal(pc.strftime(ts, format=fmt), s))
    if not pc.any(differs).as_py():
        return ts
    suspects = pc.unique(pc.filter(s, differs)).to_pylist()
    bad = []
    for v in suspects:
        try:
            dt.datetime.strptime(v, fmt)
        except ValueError:
            bad.append(v)
    if not bad:
        return ts
    return pc.if_else(pc.is_in(s, pa.array(bad, pa.string())), pa.scalar(None, ts.type), ts)


def _iso_ok(v: str) -> bool:
    import datetime as dt

    try:
        dt.datetime.fromisoformat(v.replace("z", "Z"))
        return True
    except ValueError:
        return False


_PER_US = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _to_utc(ts: pa.Array) -> pa.Array:
    """Any timestamp array as microseconds in UTC (a naive one is taken as UTC). A value a
    microsecond timestamp cannot hold exactly (finer than a microsecond, as pandas' `ns`
    may be, or beyond int64) is null: Arrow's safe cast would raise and quote it."""
    raw = ts.cast(pa.int64())  # the stored instant: UTC for zoned types, wall clock if naive
    v = raw.fill_null(0).to_numpy(zero_copy_only=False)
    unit = ts.type.unit
    if unit == "ns":
        ok, us = v % 1000 == 0, v // 1000
    else:
        per = _PER_US[unit]
        ok = (v >= np.iinfo(np.int64).min // per) & (v <= np.iinfo(np.int64).max // per)
        us = np.where(ok, v, 0) * per
    valid = ok & raw.is_valid().to_numpy(zero_copy_only=False)
    return pa.array(us, pa.int64(), mask=~valid).cast(ARROW_TYPES["timestamp"])


def _to_date(arr: pa.Array) -> pa.Array:
    """A date or timestamp array as date32; a date64 that is not a whole day is null."""
    if pa.types.is_date32(arr.type):
        return arr
    if pa.types.is_date64(arr.type):
        ms = arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        days = ms // 86_400_000
        ok = (ms % 86_400_000 == 0) & (days >= DATE_MIN) & (days <= DATE_MAX)
        ok &= arr.is_valid().to_numpy(zero_copy_only=False)
        return pa.array(np.where(ok, days, 0).astype(np.int32), pa.int32(), mask=~ok).cast(
            pa.date32()
        )
    return pc.cast(arr, pa.date32())  # a timestamp's calendar date, in its own zone


def _date_to_utc(arr: pa.Array) -> pa.Array:
    days = _in_calendar(_to_date(arr))
    us = days.cast(pa.int32()).cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    return pa.array(us * DAY_US, pa.int64(), mask=_null_mask(days)).cast(ARROW_TYPES["timestamp"])


def _in_calendar(arr: pa.Array) -> pa.Array:
    """Dates and timestamps outside years 1-9999 (`transforms.arrow`) become null."""
    if pa.types.is_date32(arr.type):
        lo, hi, ints = DATE_MIN, DATE_MAX, arr.cast(pa.int32())
    elif pa.types.is_timestamp(arr.type):
        lo, hi, ints = TIMESTAMP_MIN, TIMESTAMP_MAX, arr.cast(pa.int64())
    else:
        return arr
    inside = pc.and_(pc.greater_equal(ints, lo), pc.less_equal(ints, hi))
    if pc.all(inside).as_py() is not False:  # nulls are skipped: nothing outside
        return arr
    return pc.if_else(inside, arr, pa.scalar(None, arr.type))


def _null_mask(arr: pa.Array) -> np.ndarray | None:
    return arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None


def _drop_non_finite(arr: pa.Array) -> pa.Array:
    finite = pc.is_finite(arr)
    return pc.if_else(pc.fill_null(finite, True), arr, pa.scalar(None, arr.type))


def coerce(arr: pa.Array, spec: ColumnSpec) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Coerce one raw column to its declared type.

    Returns:
        (typed array, encoding-error mask, type-error mask). A value that fails either check
        is null in the typed array.
    """
    n = len(arr)
    enc_bad = np.zeros(n, dtype=bool)
    arr = plain_array(arr)
    if pa.types.is_binary(arr.type):
        try:
            arr = arr.cast(pa.string())
        except pa.ArrowInvalid:
            # Find the invalid cells (rare path), null them, remember them.
            vals = arr.to_pylist()
            for i, v in enumerate(vals):
                if v is not None:
                    try:
                        v.decode("utf-8")
                    except UnicodeDecodeError:
                        enc_bad[i] = True
            arr = _null_where(arr, enc_bad).cast(pa.string())
    target = ARROW_TYPES[spec.type]
    typed = _in_calendar(_per_value_if_raises(arr, lambda a: _typed(a, spec), target))
    type_bad = pc.and_(arr.is_valid(), typed.is_null()).to_numpy(zero_copy_only=False)
    type_bad &= ~enc_bad
    return typed, enc_bad, type_bad


def _typed(arr: pa.Array, spec: ColumnSpec) -> pa.Array:
    """A plain (`plain_array`) column in its declared type; values that do not fit are null."""
    at, target = arr.type, ARROW_TYPES[spec.type]
    if pa.types.is_string(at):
        return _parse_strings(arr, spec)
    if at == target:
        return _drop_non_finite(arr) if spec.type == "float" else arr
    if pa.types.is_null(at):
        return pa.nulls(len(arr), target)
    numeric = pa.types.is_integer(at) or pa.types.is_floating(at) or pa.types.is_decimal(at)
    if spec.type == "string" and (numeric or pa.types.is_boolean(at) or pa.types.is_temporal(at)):
        return as_string(arr)
    if spec.type in ("int", "float") and numeric:
        return _numeric(arr, spec.type)
    if spec.type == "date" and (pa.types.is_date(at) or pa.types.is_timestamp(at)):
        return _to_date(arr)
    if spec.type == "timestamp" and pa.types.is_timestamp(at):
        return _to_utc(arr)
    if spec.type == "timestamp" and pa.types.is_date(at):
        return _date_to_utc(arr)
    return pa.nulls(len(arr), target)  # nested values, binary in a numeric column, ...


_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError, ValueError)


def _per_value_if_raises(arr: pa.Array, fn, target: pa.DataType) -> pa.Array:
    """`fn(arr)`; if it raises (a cast this module did not foresee), `fn` per value, with
    null where it raises. The error's text, which may quote the value, is dropped."""
    try:
        return fn(arr)
    except _CAST_ERRORS:
        pass
    out = []
    for i in range(len(arr)):
        try:
            out.append(fn(arr.slice(i, 1)))
        except _CAST_ERRORS:
            out.append(pa.nulls(1, target))
    return pa.concat_arrays(out) if out else pa.nulls(0, target)


def plain_array(arr) -> pa.Array:
    """One array of a plain type: dictionaries (pandas and polars categoricals) decoded, view
    and large string/binary types as string/binary, chunks combined."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = pc.cast(arr, t.value_type)
        t = arr.type
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        arr = arr.cast(pa.string())
    elif pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
        arr = arr.cast(pa.binary())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def _numeric(arr: pa.Array, kind: str) -> pa.Array:
    if pa.types.is_decimal(arr.type):
        return (
            _drop_non_finite(pc.cast(arr, pa.float64()))
            if kind == "float"
            else arr.cast(pa.int64())
        )
    if kind == "float":
        if pa.types.is_integer(arr.type) and arr.type.bit_width == 64:
            return _int_to_float(arr)
        return _drop_non_finite(pc.cast(arr, pa.float64()))
    if pa.types.is_floating(arr.type):
        vals = arr.to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(vals) & (np.floor(vals) == vals) & (np.abs(vals) < 2.0**63)
        cleaned = pa.array(np.where(ok, vals, 0.0)).cast(pa.int64())
        return pc.if_else(
            pa.array(ok) if arr.null_count == 0 else pc.and_(pa.array(ok), arr.is_valid()),
            cleaned,
            pa.scalar(None, pa.int64()),
        )
    try:
        return pc.cast(arr, pa.int64())
    except pa.ArrowInvalid:  # uint64 beyond int64
        vals = arr.to_pylist()
        return pa.array([v if v is not None and v < 2**63 else None for v in vals], pa.int64())


def _int_to_float(arr: pa.Array) -> pa.Array:
    """64-bit ints as float64 where the float holds the int exactly (not 2**53 + 1)."""
    dtype = np.uint64 if pa.types.is_unsigned_integer(arr.type) else np.int64
    v = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(dtype)
    f = v.astype(np.float64)
    lo = 0.0 if dtype is np.uint64 else -(2.0**63)
    hi = 2.0**64 if dtype is np.uint64 else 2.0**63
    ok = (f >= lo) & (f < hi)
    ok &= np.where(ok, f, 0).astype(dtype) == v
    ok &= arr.is_valid().to_numpy(zero_copy_only=False)
    return pa.array(f, pa.float64(), mask=~ok)


@dataclass(frozen=True)
class CheckedBatch:
    """A raw batch after the contract check.

    Attributes:
        typed: every row, typed, in schema order (a cell that broke its size, encoding or
            type rule is null): what a user's input suite sees, before the quarantine split.
        good: the rows that meet the contract.
        quarantine: the other rows (raw values as JSON text, with a reason), or None.
        counts: {"rows": n, "columns": {column: {rule: rows breaking it}}}, one entry per
            rule that applies to the column (`contract_rules`), zeros included; a row is
            counted under every rule it breaks, not only its quarantine reason.
    """

    typed: pa.Table
    good: pa.Table
    quarantine: pa.Table | None
    counts: dict


def contract_rules(spec: ColumnSpec, max_cell_bytes: int | None = None) -> tuple[str, ...]:
    """The rules the contract check counts for a column, in the order that picks a row's
    quarantine reason; `bounds` (ldp numeric columns, clipped later) quarantines nothing."""
    rules = ("size",) if max_cell_bytes is not None else ()
    rules += ("encoding", "type")
    if not spec.nullable:
        rules += ("null",)
    if _checks_domain(spec):
        rules += ("domain",)
    if spec.action == "ldp" and spec.params.get("bounds"):
        rules += ("bounds",)
    if has_range_limit(spec):
        rules += ("range",)
    return rules


def check_batch(
    raw: pa.Table,
    schema: Schema,
    source: str,
    row_offset: int,
    max_cell_bytes: int | None = None,
) -> tuple[pa.Table, pa.Table | None]:
    """Split a raw batch into rows that meet the contract (typed, schema order) and
    quarantine rows (raw values as JSON text, with a reason).

    `raw` holds the declared columns present in the input; missing declared columns are
    caught by the reader before this point.
    """
    checked = contract_check(raw, schema, source, row_offset, max_cell_bytes)
    return checked.good, checked.quarantine


def contract_check(
    raw: pa.Table,
    schema: Schema,
    source: str,
    row_offset: int,
    max_cell_bytes: int | None = None,
) -> CheckedBatch:
    """`check_batch`, keeping the typed rows before the split and the per-rule counts."""
    n = raw.num_rows
    reason = np.full(n, None, dtype=object)
    typed_cols, plain_cols, counts = {}, {}, {}
    for spec in schema.columns:
        with value_free_errors(f"{source}: column '{spec.name}'"):
            plain_cols[spec.name] = col = plain_array(raw.column(spec.name))
            size_bad = _oversized(col, max_cell_bytes)
            if size_bad is not None:
                col = _null_where(col, size_bad)
            typed, enc_bad, type_bad = coerce(col, spec)
            typed, type_bad = _map_non_finite(col, typed, type_bad, spec)
        null_bad = np.zeros(n, dtype=bool)
        if not spec.nullable:
            null_bad = col.is_null().to_numpy(zero_copy_only=False)
            if size_bad is not None:
                null_bad &= ~size_bad
        checks = (
            (enc_bad, "encoding"),
            (type_bad, "type"),
            (null_bad, "null"),
            (_outside_domain(typed, spec), "domain"),
        )
        if size_bad is not None:
            checks = ((size_bad, "size"),) + checks
        range_bad = out_of_range(typed, spec)
        if range_bad is not None:
            checks += ((range_bad, "range"),)
        for mask, code in checks:
            if mask.any():
                reason = np.where((reason == None) & mask, f"{code}:{spec.name}", reason)  # noqa: E711
        typed_cols[spec.name] = typed
        broken = {code: int(np.count_nonzero(mask)) for mask, code in checks}
        broken["bounds"] = _outside_bounds(typed, spec)
        counts[spec.name] = {r: broken.get(r, 0) for r in contract_rules(spec, max_cell_bytes)}
    bad = reason != None  # noqa: E711
    everything = pa.table({name: arr for name, arr in typed_cols.items()})
    counts = {"rows": n, "columns": counts}
    if not bad.any():
        return CheckedBatch(everything, everything, None, counts)
    idx = np.nonzero(bad)[0]
    good = everything.filter(pa.array(~bad))
    rows = pa.table(plain_cols).take(pa.array(idx))
    quarantine = quarantine_rows(rows, reason[idx], source, row_offset + idx)
    return CheckedBatch(everything, good, quarantine, counts)


def _checks_domain(spec: ColumnSpec) -> bool:
    # Only with `out_of_domain: quarantine` (no `other` bucket); else the bucket takes them.
    return (
        spec.action == "ldp"
        and spec.params.get("categories") is not None
        and quarantines_out_of_domain(spec.params)
    )


def _outside_domain(typed: pa.Array, spec: ColumnSpec) -> np.ndarray:
    """ldp string columns: values outside `categories` (and no `other` bucket to take them)."""
    if not _checks_domain(spec):
        return np.zeros(len(typed), dtype=bool)
    inside = pc.is_in(typed, value_set=pa.array(spec.params["categories"], pa.string()))
    return pc.and_(typed.is_valid(), pc.invert(inside)).to_numpy(zero_copy_only=False)


_NAN_TEXT = ("nan", "+nan", "-nan")
_INF_TEXT = ("inf", "+inf", "infinity", "+infinity")


def _non_finite(col) -> tuple[np.ndarray, np.ndarray] | None:
    """Masks (NaN or -inf, +inf) of a raw float or text column's cells (`plain_array`), or
    None otherwise."""
    t = col.type
    if pa.types.is_floating(t):
        x = pc.fill_null(pc.cast(col, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        return np.isnan(x) | np.isneginf(x), np.isposinf(x)
    if not pa.types.is_string(t):
        return None
    text = pc.utf8_lower(pc.utf8_trim_whitespace(col))
    neg_inf = tuple("-" + v.lstrip("+") for v in _INF_TEXT)

    def mask(values):
        hit = pc.is_in(text, value_set=pa.array(values, text.type))
        return pc.fill_null(hit, False).to_numpy(zero_copy_only=False)

    return mask(_NAN_TEXT + neg_inf), mask(_INF_TEXT)


def _map_non_finite(col, typed: pa.Array, type_bad: np.ndarray, spec: ColumnSpec):
    """ldp numeric columns (`out_of_domain: map`, the default): NaN and infinities, which the
    type rule would quarantine (a decision on the private value), taken into the bounds:
    NaN and -inf to the lower bound, +inf to the upper. Returns (typed, type_bad)."""
    bounds = spec.params.get("bounds")
    if spec.action != "ldp" or not bounds or quarantines_out_of_domain(spec.params):
        return typed, type_bad
    if not type_bad.any():
        return typed, type_bad
    masks = _non_finite(col)
    if masks is None:
        return typed, type_bad
    low, high = masks[0] & type_bad, masks[1] & type_bad
    if not (low.any() or high.any()):
        return typed, type_bad
    lo, hi = (pa.scalar(b, typed.type) for b in bounds)
    typed = pc.if_else(pa.array(low), lo, pc.if_else(pa.array(high), hi, typed))
    return typed, type_bad & ~(low | high)


def _outside_bounds(typed: pa.Array, spec: ColumnSpec) -> int:
    """ldp numeric columns: how many values lie outside `bounds` (the ldp stage clips them)."""
    bounds = spec.params.get("bounds")
    if spec.action != "ldp" or not bounds:
        return 0
    lo, hi = bounds
    outside = pc.or_(pc.less(typed, lo), pc.greater(typed, hi))
    return int(pc.sum(outside).as_py() or 0)


def _oversized(col, max_bytes: int | None) -> np.ndarray | None:
    """Mask of cells longer than `max_bytes` (string/binary columns of a `plain_array`), or
    None if none are."""
    if max_bytes is None or not (pa.types.is_string(col.type) or pa.types.is_binary(col.type)):
        return None
    lengths = pc.binary_length(col)
    if not pc.any(pc.greater(lengths, max_bytes)).as_py():
        return None
    return pc.fill_null(pc.greater(lengths, max_bytes), False).to_numpy(zero_copy_only=False)


def quarantine_rows(raw: pa.Table, reasons, source: str, rows) -> pa.Table:
    """Quarantine table for failing rows: the raw cells as JSON text (decoded leniently)."""
    records = []
    cols = raw.column_names
    for row in _python_rows(raw):
        records.append(json.dumps({c: _jsonable(row[c]) for c in cols}, ensure_ascii=False))
    return pa.table(
        {
            "_reason": pa.array(list(reasons), pa.string()),
            "_source": pa.array([source] * len(records), pa.string()),
            "_row": pa.array(np.asarray(rows, dtype=np.int64)),
            "_record": pa.array(records, pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def _python_rows(raw: pa.Table) -> list[dict]:
    """Rows as Python dicts; temporal cells Python cannot hold (year 10000) as Arrow's text."""
    try:
        return raw.to_pylist()
    except (OverflowError, ValueError):
        temporal = [i for i, f in enumerate(raw.schema) if pa.types.is_temporal(f.type)]
        for i in temporal:
            raw = raw.set_column(i, raw.field(i).name, pc.cast(raw.column(i), pa.string()))
        return raw.to_pylist()


def _jsonable(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, dict)):
        return json.loads(json.dumps(v, default=str))
    return str(v)


# ------------------------------------------------------------ the input contract (gates)

# How `input_contract` names each rule: Great Expectations' name where GX has the same rule,
# so the report lists the contract in the layout of a user's suite.
RULE_EXPECTATIONS = {
    "size": "expect_column_values_to_fit_max_cell_bytes",
    "encoding": "expect_column_values_to_be_valid_utf8",
    "type": "expect_column_values_to_parse_as_type",
    "null": "expect_column_values_to_not_be_null",
    "domain": "expect_column_values_to_be_in_set",
    "bounds": "expect_column_values_to_be_between",
    "range": "expect_column_values_to_be_in_action_range",
}
INPUT_CONTRACT_SUITE = "privgate_input_contract"
COUNTS_LINE = "contract"  # key of a batch's counts line in the pipeline's _work/stats*.jsonl


def merge_contract_counts(partials) -> dict:
    """Sum `CheckedBatch.counts` of several batches (in any order).

    Returns:
        The same layout; {"rows": 0, "columns": {}} for no batch.
    """
    rows, columns = 0, {}
    for part in partials:
        rows += int(part["rows"])
        for col, rules in part["columns"].items():
            merged = columns.setdefault(col, {})
            for rule, n in rules.items():
                merged[rule] = merged.get(rule, 0) + int(n)
    return {"rows": rows, "columns": columns}


def _rule_kwargs(spec: ColumnSpec, rule: str, max_cell_bytes: int | None) -> dict:
    kwargs: dict = {"column": spec.name}
    if rule == "size":
        kwargs["max_bytes"] = max_cell_bytes
    elif rule == "type":
        kwargs["type"] = spec.type
        if spec.format:
            kwargs["format"] = spec.format
    elif rule == "domain":
        kwargs["value_set"] = list(spec.params["categories"])
    elif rule == "bounds":
        kwargs["min_value"], kwargs["max_value"] = spec.params["bounds"]
    elif rule == "range":
        kwargs["action"] = spec.action
    return kwargs


def input_contract_check(
    schema: Schema, counts: Mapping, max_cell_bytes: int | None = None
) -> dict:
    """The `input_contract` check from the contract stage's counts over every input row.

    Per declared column: `expect_column_to_exist` (critical: the reader refuses an input
    without a declared column, so it holds for every row counted), then one warning entry
    per rule in `contract_rules` (the run quarantines or clips such rows by policy). Entries
    have the layout of a Great Expectations result (`transforms.gates.gx.run_suite`).

    Args:
        schema: the dataset schema.
        counts: `merge_contract_counts(...)` of the run's batches.
        max_cell_bytes: `input.max_cell_bytes` (adds the size rule).
    Returns:
        A check dict: passed when no critical entry failed; details {"name", "suite",
        "success", "evaluated", "failed", "critical_failed", "warnings", "expectations"}.
        Counts only, never a value.
    """
    from transforms.gates.checks import InputContractCheck, suite_result

    rows = int(counts.get("rows", 0))
    columns = counts.get("columns") or {}
    entries = []
    for spec in schema.columns:
        entries.append(_entry("expect_column_to_exist", "critical", {"column": spec.name}))
        broken = columns.get(spec.name) or {}
        for rule in contract_rules(spec, max_cell_bytes):
            n = int(broken.get(rule, 0))
            entry = _entry(
                RULE_EXPECTATIONS[rule], "warning", _rule_kwargs(spec, rule, max_cell_bytes), n
            )
            entry.update(
                element_count=rows,
                unexpected_count=n,
                unexpected_percent=100.0 * n / rows if rows else 0.0,
            )
            entries.append(entry)
    return InputContractCheck.build(
        suite_result(InputContractCheck.name, INPUT_CONTRACT_SUITE, entries)
    )


def _entry(kind: str, severity: str, kwargs: dict, unexpected: int = 0) -> dict:
    return {
        "type": kind,
        "column": kwargs["column"],
        "kwargs": kwargs,
        "severity": severity,
        "success": unexpected == 0,
        "raised_exception": False,
        "source": "schema",
    }
