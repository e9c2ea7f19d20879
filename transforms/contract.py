"""Contract check: coerce raw input columns to their declared types, vectorized, and split
off the rows that break the contract (to the quarantine, with a reason code).

Reason codes: `encoding:<col>` (invalid UTF-8), `type:<col>` (value not of the declared
type, NaN/inf included), `null:<col>` (missing in a non-nullable column), plus the reader's
own `columns` (ragged CSV row) and `json` (malformed JSON line). A row gets the first reason
in column order. Exceptions from pyarrow casts quote the failing value, so they are caught
here and never re-raised.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.columns import ColumnSpec, Schema
from transforms.arrow import ARROW_TYPES, as_string

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


def _to_utc(ts: pa.Array) -> pa.Array:
    if ts.type.tz is None:
        ts = pc.assume_timezone(ts, "UTC")
    return pc.cast(ts, ARROW_TYPES["timestamp"])


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
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    at = arr.type
    if pa.types.is_binary(at) or pa.types.is_large_binary(at):
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
        at = arr.type
    if pa.types.is_large_string(at):
        arr = arr.cast(pa.string())
        at = arr.type

    target = ARROW_TYPES[spec.type]
    if pa.types.is_string(at):
        typed = _parse_strings(arr, spec)
    elif at == target:
        typed = _drop_non_finite(arr) if spec.type == "float" else arr
    elif pa.types.is_null(at):
        typed = pa.nulls(n, target)
    elif spec.type == "string" and (
        pa.types.is_integer(at)
        or pa.types.is_floating(at)
        or pa.types.is_boolean(at)
        or pa.types.is_temporal(at)
        or pa.types.is_decimal(at)
    ):
        typed = as_string(arr)
    elif spec.type in ("int", "float") and (pa.types.is_integer(at) or pa.types.is_floating(at)):
        typed = _numeric(arr, spec.type)
    elif spec.type == "date" and (pa.types.is_date(at) or pa.types.is_timestamp(at)):
        typed = pc.cast(arr, target)
    elif spec.type == "timestamp" and pa.types.is_timestamp(at):
        typed = _to_utc(arr)
    elif spec.type == "timestamp" and pa.types.is_date(at):
        typed = _to_utc(pc.cast(arr, pa.timestamp("us")))
    else:  # nested values, binary in a numeric column, ...
        typed = pa.nulls(n, target)
    type_bad = pc.and_(arr.is_valid(), typed.is_null()).to_numpy(zero_copy_only=False)
    type_bad &= ~enc_bad
    return typed, enc_bad, type_bad


def _numeric(arr: pa.Array, kind: str) -> pa.Array:
    if kind == "float":
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
    n = raw.num_rows
    reason = np.full(n, None, dtype=object)
    typed_cols = {}
    for spec in schema.columns:
        col = raw.column(spec.name)
        size_bad = _oversized(col, max_cell_bytes)
        if size_bad is not None:
            col = _null_where(col.combine_chunks(), size_bad)
        typed, enc_bad, type_bad = coerce(col, spec)
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
        for mask, code in checks:
            if mask.any():
                reason = np.where((reason == None) & mask, f"{code}:{spec.name}", reason)  # noqa: E711
        typed_cols[spec.name] = typed
    bad = reason != None  # noqa: E711
    good = pa.table({name: arr for name, arr in typed_cols.items()})
    if not bad.any():
        return good, None
    idx = np.nonzero(bad)[0]
    good = good.filter(pa.array(~bad))
    return good, quarantine_rows(raw.take(pa.array(idx)), reason[idx], source, row_offset + idx)


def _outside_domain(typed: pa.Array, spec: ColumnSpec) -> np.ndarray:
    """ldp string columns: values outside `categories` (and no `other` bucket to take them)."""
    cats = spec.params.get("categories")
    if spec.action != "ldp" or cats is None or "other" in spec.params:
        return np.zeros(len(typed), dtype=bool)
    inside = pc.is_in(typed, value_set=pa.array(cats, pa.string()))
    return pc.and_(typed.is_valid(), pc.invert(inside)).to_numpy(zero_copy_only=False)


def _oversized(col, max_bytes: int | None) -> np.ndarray | None:
    """Mask of cells longer than `max_bytes` (string/binary columns), or None if none are."""
    if max_bytes is None:
        return None
    t = col.type
    if not (
        pa.types.is_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_string(t)
        or pa.types.is_large_binary(t)
    ):
        return None
    lengths = pc.binary_length(col)
    if not pc.any(pc.greater(lengths, max_bytes)).as_py():
        return None
    return pc.fill_null(pc.greater(lengths, max_bytes), False).to_numpy(zero_copy_only=False)


def quarantine_rows(raw: pa.Table, reasons, source: str, rows) -> pa.Table:
    """Quarantine table for failing rows: the raw cells as JSON text (decoded leniently)."""
    records = []
    cols = raw.column_names
    for row in raw.to_pylist():
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
