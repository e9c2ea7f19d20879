"""Releasing records: each class's quasi-identifiers generalized, suppressed rows' QIs nulled.

A numeric QI is released as its class's range `"[lo, hi]"` (a string), its lower bound (the
column's type) or its midpoint (float); a categorical one as the lowest hierarchy node that
covers every value of the class.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from schemas.anonymize import AnonymizeSpec
from transforms.anonymize.certificate import class_partial, finish, merge_partials
from transforms.anonymize.columns import Dimension, Encoded, dimensions, encode
from transforms.anonymize.cut import Rule
from transforms.anonymize.local import SUPPRESSED, mondrian
from transforms.arrow import ARROW_TYPES

_EPOCH = dt.date(1970, 1, 1)


def rule_of(spec: AnonymizeSpec) -> Rule:
    return Rule(spec.k, spec.l_diversity.l if spec.l_diversity else None)


def released_schema(arrow_schema: pa.Schema, spec: AnonymizeSpec) -> pa.Schema:
    """The protected output schema with each quasi-identifier's released type
    (`AnonymizeSpec.released_output_type`, the type the manifest states)."""
    type_names = {t: name for name, t in ARROW_TYPES.items()}
    fields = []
    for f in arrow_schema:
        if f.name in spec.quasi_identifiers:
            name = spec.released_output_type(f.name, type_names.get(f.type, ""))
            f = f.with_type(ARROW_TYPES.get(name, f.type))  # "": a type the policy lacks, kept
        fields.append(f)
    return pa.schema(fields, metadata=arrow_schema.metadata)


def value_ranges(dims: Sequence[Dimension], enc: Encoded) -> list:
    """(lo, hi) of each numeric dimension over the placeable rows (None: categorical/none)."""
    rows = enc.placeable
    out = []
    for d, v in zip(dims, enc.values, strict=True):
        out.append(
            (float(v[rows].min()), float(v[rows].max())) if d.numeric and rows.any() else None
        )
    return out


def _fmt(x: float, d: Dimension) -> str:
    if d.is_date:
        return (_EPOCH + dt.timedelta(days=int(x))).isoformat()
    return str(int(x)) if d.is_int else repr(float(x))


def generalize(
    table: pa.Table,
    dims: Sequence[Dimension],
    enc: Encoded,
    classes: np.ndarray,
    spec: AnonymizeSpec,
    ranges: Sequence,
    out_schema: pa.Schema,
) -> tuple[pa.Table, dict]:
    """The released table (QIs generalized per class, nulled where `classes` is SUPPRESSED)
    and its partial certificate.

    Args:
        classes: class number per row (0..n-1, or SUPPRESSED).
        ranges: global (lo, hi) per numeric dimension, for NCP.
        out_schema: `released_schema` of the table's schema.
    """
    placed = classes != SUPPRESSED
    classes = classes.copy()
    classes[placed] = np.unique(classes[placed], return_inverse=True)[1]  # 0..n-1, no gaps
    n_classes = int(classes.max()) + 1 if placed.any() else 0
    order = np.argsort(np.where(placed, classes, n_classes), kind="stable")[: int(placed.sum())]
    cls_sorted = classes[order]
    starts = np.flatnonzero(np.r_[True, cls_sorted[1:] != cls_sorted[:-1]]) if order.size else order
    sizes = np.diff(np.r_[starts, order.size]).astype(np.int64)
    ncp: dict[str, np.ndarray] = {}
    columns = {}
    for d, v, r in zip(dims, enc.values, ranges, strict=True):
        field = out_schema.field(d.name)
        if order.size:
            per_class, ncp[d.name] = _per_class(d, v[order], starts, r, spec.numeric_output)
            if not isinstance(per_class, pa.Array):
                per_class = pa.array(per_class, field.type)
            values = per_class.take(pa.array(np.where(placed, classes, 0)))
            columns[d.name] = _null_where(values, ~placed)
        else:
            ncp[d.name] = np.zeros(0)
            columns[d.name] = pa.nulls(table.num_rows, field.type)
    distinct = None
    if enc.sensitive is not None and order.size:
        s = enc.sensitive[order]
        distinct = np.array(
            [
                len(np.unique(s[a:b]))
                for a, b in zip(starts, np.r_[starts[1:], order.size], strict=True)
            ]
        )
    out = table
    for name, col in columns.items():
        out = out.set_column(out.schema.get_field_index(name), out_schema.field(name), col)
    partial = class_partial([d.name for d in dims], sizes, ncp, distinct, int((~placed).sum()))
    return out, partial


def _null_where(values: pa.Array, mask: np.ndarray) -> pa.Array:
    if not mask.any():
        return values
    import pyarrow.compute as pc

    return pc.if_else(pa.array(mask), pa.nulls(len(values), values.type), values)


def _per_class(d: Dimension, v: np.ndarray, starts: np.ndarray, r, numeric_output: str):
    """(released value per class, NCP per class) for one dimension; `v` sorted by class."""
    if d.numeric:
        lo, hi = np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)
        span = (r[1] - r[0]) if r else 0.0
        ncp = (hi - lo) / span if span > 0 else np.zeros(len(lo))
        if numeric_output == "interval":
            vals = [f"[{_fmt(a, d)}, {_fmt(b, d)}]" for a, b in zip(lo, hi, strict=True)]
        elif numeric_output == "midpoint":
            vals = [int(x) for x in (lo + hi) // 2] if d.is_date else ((lo + hi) / 2).tolist()
        else:
            vals = [int(x) for x in lo] if d.is_int else lo.tolist()
        if d.is_date and numeric_output != "interval":
            vals = pa.array(vals, pa.int32()).cast(pa.date32())
        return vals, ncp
    h = d.hierarchy
    level = np.full(len(starts), h.levels - 1, dtype=np.int64)
    for lv in range(h.levels - 1, -1, -1):
        a = h.ancestor[lv][v.astype(np.int64)]
        same = np.minimum.reduceat(a, starts) == np.maximum.reduceat(a, starts)
        level = np.where(same, lv, level)
    first = v[starts].astype(np.int64)
    nodes = [h.ancestor[lv][leaf] for lv, leaf in zip(level, first, strict=True)]
    vals = [h.names[lv][node] for lv, node in zip(level, nodes, strict=True)]
    under = np.array(
        [h.leaves_under[lv][node] for lv, node in zip(level, nodes, strict=True)], dtype=float
    )
    ncp = (under - 1) / (h.size - 1) if h.size > 1 else np.zeros(len(starts))
    return vals, ncp


def suppress_smallest(classes: np.ndarray) -> np.ndarray:
    """`classes` with its smallest class (ties: the lowest number) suppressed."""
    placed = classes[classes != SUPPRESSED]
    if placed.size == 0:
        return classes
    sizes = np.bincount(placed)
    smallest = int(np.flatnonzero(sizes == sizes[sizes > 0].min())[0])
    return np.where(classes == smallest, SUPPRESSED, classes)


def needs_top_up(rule: Rule, suppressed: int, distinct: int | None) -> bool:
    """Suppressed records share one all-null class: it too must satisfy the rule, or be empty."""
    return suppressed > 0 and not rule.ok(suppressed, distinct)


def anonymize_table(table: pa.Table, spec: AnonymizeSpec) -> tuple[pa.Table, dict]:
    """The exact in-memory Mondrian over a whole table: (released table, certificate).

    Raises:
        DataError: a quasi-identifier or the sensitive column is missing.
    """
    dims = dimensions(spec, table.schema)
    sens = spec.l_diversity.sensitive if spec.l_diversity else None
    enc = encode(table, dims, sens)
    ranges = value_ranges(dims, enc)
    rule = rule_of(spec)
    classes, _ = mondrian(dims, enc, rule, ranges)
    unplaced = classes == SUPPRESSED
    if enc.sensitive is not None:
        distinct = len(np.unique(enc.sensitive[unplaced]))
    else:
        distinct = None
    if needs_top_up(rule, int(unplaced.sum()), distinct):
        classes = suppress_smallest(classes)
    out, partial = generalize(
        table, dims, enc, classes, spec, ranges, released_schema(table.schema, spec)
    )
    partial["partitions"] = 1
    return out, finish(merge_partials([partial], spec.quasi_identifiers), spec)
