"""Gate metrics: equivalence-class counts, k-anonymity, l-diversity, ldp domain counts.

Everything here works on pyarrow tables and plain dicts (no Beam, no Great Expectations):

- `k_anonymity()` / `l_diversity()`: equivalence classes over the declared quasi-identifiers,
  computed over the whole table with a vectorized group-by (a null is a value of its own).
  For a pipeline that sees the output in batches, `class_counts()` gives each batch's partial
  counts, `merge_class_counts()` combines them, and `k_anonymity_from_counts()` /
  `l_diversity_from_counts()` finish: the result equals the whole-table one.
- `ldp_domain_counts()` / `merge_ldp_domain_counts()`: per ldp column, the outputs outside
  the declared domain, per batch and merged.

Nothing here logs or raises with a record's value in the message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.errors import DataError
from schemas.columns import Schema

COUNT = "_count"
# Class-size histogram buckets (inclusive lower, inclusive upper; None = no upper bound).
SIZE_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (1, 1),
    (2, 2),
    (3, 3),
    (4, 4),
    (5, 9),
    (10, 19),
    (20, 49),
    (50, 99),
    (100, None),
)


# --------------------------------------------------------------------------- classes


def _check_columns(names: Sequence[str], columns: Iterable[str], what: str) -> list[str]:
    cols = list(columns)
    if not cols:
        raise ValueError(f"{what}: at least one column is needed")
    if len(set(cols)) != len(cols):
        raise ValueError(f"{what}: columns must be distinct")
    for c in cols:
        if c == COUNT:
            raise ValueError(f"{what}: column name '{COUNT}' is reserved")
        if c not in names:
            raise DataError(f"{what}: column '{c}' is not in the table")
    return cols


def class_counts(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """Records per distinct combination of `columns` (nulls are a value of their own).

    This is the mergeable form of `k_anonymity` (columns = quasi-identifiers) and of
    `l_diversity` (columns = quasi-identifiers + the sensitive column).

    Args:
        table: the (protected) table or one batch of it.
        columns: the columns whose value combinations define the classes.
    Returns:
        A table with `columns` plus `_count` (int64), one row per combination present.
    Raises:
        DataError: a column is not in the table.
        ValueError: no columns, duplicates, or a column named `_count`.
    """
    cols = _check_columns(table.column_names, columns, "class counts")
    out = table.select(cols).group_by(cols).aggregate([([], "count_all")])
    return out.select([*cols, "count_all"]).rename_columns([*cols, COUNT])


def merge_class_counts(partials: Iterable[pa.Table], columns: Sequence[str]) -> pa.Table:
    """Combine `class_counts` tables of several batches into the whole-table counts.

    Args:
        partials: `class_counts(batch, columns)` of each batch (same columns).
        columns: the columns the partials were grouped by.
    Returns:
        The same layout as `class_counts`, counts summed per combination.
    Raises:
        ValueError: no partials, or a partial without the columns.
    """
    tables = list(partials)
    if not tables:
        raise ValueError("merge_class_counts: no partial counts given")
    cols = list(columns)
    for t in tables:
        if t.column_names != [*cols, COUNT]:
            raise ValueError("merge_class_counts: partial counts with other columns")
    return _regroup(pa.concat_tables(tables, promote_options="permissive"), cols)


def _regroup(counts: pa.Table, cols: list[str]) -> pa.Table:
    out = counts.group_by(cols).aggregate([(COUNT, "sum")])
    out = out.select([*cols, f"{COUNT}_sum"]).rename_columns([*cols, COUNT])
    return out.set_column(len(cols), COUNT, pc.cast(out.column(COUNT), pa.int64()))


def size_histogram(
    sizes: np.ndarray, records: np.ndarray | None = None, key: str = "size"
) -> list[dict]:
    """Bucketed histogram of class sizes (or of distinct-value counts).

    Args:
        sizes: one entry per class: the value bucketed (class size, distinct values).
        records: records per class (default: `sizes`, i.e. the classes' sizes).
        key: the name of the bucket label in the output rows.
    Returns:
        [{key: "1" | "5-9" | "100+", "classes": n, "records": records in those classes}]
        for every bucket of `SIZE_BUCKETS`, in order (empty buckets included).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    records = sizes if records is None else np.asarray(records, dtype=np.int64)
    out = []
    for lo, hi in SIZE_BUCKETS:
        sel = sizes >= lo if hi is None else (sizes >= lo) & (sizes <= hi)
        label = f"{lo}+" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")
        out.append({key: label, "classes": int(sel.sum()), "records": int(records[sel].sum())})
    return out


def _check_threshold(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return int(value)


def k_anonymity_from_counts(counts: pa.Table, quasi_identifiers: Sequence[str], k: int) -> dict:
    """k-anonymity figures from (merged) `class_counts` over the quasi-identifiers.

    Args:
        counts: `class_counts(table, quasi_identifiers)` or `merge_class_counts(...)`; a
            table grouped by more columns (e.g. the l-diversity partials, which add the
            sensitive column) is re-aggregated to the quasi-identifiers first.
        quasi_identifiers: the columns that define the equivalence classes.
        k: the smallest acceptable class size.
    Returns:
        {"quasi_identifiers", "k", "records", "classes", "min_class_size" (None when there
        are no records), "classes_below_k", "records_below_k", "passed" (no record in a class
        smaller than k), "histogram" (see `size_histogram`)}.
    Raises:
        ValueError: k is not a positive integer, or bad columns.
        DataError: a quasi-identifier is not in the counts.
    """
    k = _check_threshold(k, "k")
    qis = _check_columns(counts.column_names, quasi_identifiers, "k-anonymity")
    if COUNT not in counts.column_names:
        raise ValueError(f"k-anonymity: counts need a '{COUNT}' column (see class_counts)")
    if counts.column_names != [*qis, COUNT]:
        counts = _regroup(counts, qis)
    sizes = counts.column(COUNT).to_numpy().astype(np.int64)
    below = sizes < k
    return {
        "quasi_identifiers": list(qis),
        "k": k,
        "records": int(sizes.sum()),
        "classes": int(sizes.size),
        "min_class_size": int(sizes.min()) if sizes.size else None,
        "classes_below_k": int(below.sum()),
        "records_below_k": int(sizes[below].sum()),
        "passed": not bool(below.any()),
        "histogram": size_histogram(sizes),
    }


def k_anonymity(table: pa.Table, quasi_identifiers: Sequence[str], k: int) -> dict:
    """k-anonymity of a whole table over its quasi-identifiers.

    Args:
        table: the protected output (all of it, not a sample).
        quasi_identifiers: the columns an attacker may know and link on.
        k: the smallest acceptable class size (>= 1; the gate config asks for >= 2).
    Returns:
        See `k_anonymity_from_counts`.
    Raises:
        DataError: a quasi-identifier is not in the table.
        ValueError: bad k or columns.
    """
    return k_anonymity_from_counts(class_counts(table, quasi_identifiers), quasi_identifiers, k)


def l_diversity_from_counts(
    counts: pa.Table,
    quasi_identifiers: Sequence[str],
    sensitive: str,
    l: int,  # noqa: E741 (the usual name)
) -> dict:
    """Distinct l-diversity from (merged) `class_counts` over quasi-identifiers + sensitive.

    A null sensitive value counts as one value of its own, like a null quasi-identifier.

    Args:
        counts: `class_counts(table, [*quasi_identifiers, sensitive])` or merged partials.
        quasi_identifiers: the columns that define the equivalence classes.
        sensitive: the sensitive column.
        l: the smallest acceptable number of distinct sensitive values per class.
    Returns:
        {"quasi_identifiers", "sensitive", "l", "records", "classes", "min_l" (None when
        there are no records), "classes_below_l", "records_below_l", "passed",
        "histogram" (classes and records by number of distinct sensitive values)}.
    Raises:
        ValueError: bad l or columns (the sensitive column among the quasi-identifiers).
        DataError: a column is not in the counts.
    """
    l = _check_threshold(l, "l")  # noqa: E741
    qis = list(quasi_identifiers)
    if sensitive in qis:
        raise ValueError("l-diversity: the sensitive column cannot be a quasi-identifier")
    cols = _check_columns(counts.column_names, [*qis, sensitive], "l-diversity")
    if COUNT not in counts.column_names:
        raise ValueError(f"l-diversity: counts need a '{COUNT}' column (see class_counts)")
    if counts.column_names != [*cols, COUNT]:
        counts = _regroup(counts, cols)  # grouped by more columns: one row per combination
    per_class = counts.group_by(cols[:-1]).aggregate([([], "count_all"), (COUNT, "sum")])
    distinct = per_class.column("count_all").to_numpy().astype(np.int64)
    records = per_class.column(f"{COUNT}_sum").to_numpy().astype(np.int64)
    below = distinct < l
    return {
        "quasi_identifiers": qis,
        "sensitive": sensitive,
        "l": l,
        "records": int(records.sum()),
        "classes": int(distinct.size),
        "min_l": int(distinct.min()) if distinct.size else None,
        "classes_below_l": int(below.sum()),
        "records_below_l": int(records[below].sum()),
        "passed": not bool(below.any()),
        "histogram": size_histogram(distinct, records, key="distinct"),
    }


def l_diversity(table: pa.Table, quasi_identifiers: Sequence[str], sensitive: str, l: int) -> dict:  # noqa: E741
    """Distinct l-diversity of a whole table: distinct sensitive values per class.

    Args:
        table: the protected output (all of it).
        quasi_identifiers: the columns that define the equivalence classes.
        sensitive: the sensitive column.
        l: the smallest acceptable number of distinct sensitive values per class.
    Returns:
        See `l_diversity_from_counts`.
    Raises:
        DataError: a column is not in the table.
        ValueError: bad l or columns.
    """
    counts = class_counts(table, [*quasi_identifiers, sensitive])
    return l_diversity_from_counts(counts, quasi_identifiers, sensitive, l)


# --------------------------------------------------------------------------- ldp domains


def _field_ldp_params(field: pa.Field) -> dict | None:
    from dataclasses import asdict

    from schemas.ldp import METADATA_PREFIX, LdpSpec

    md = field.metadata or {}
    if not any((k.decode() if isinstance(k, bytes) else k).startswith(METADATA_PREFIX) for k in md):
        return None
    try:
        return asdict(LdpSpec.from_metadata(md))
    except ValueError:
        return {}


def ldp_domain_counts(table: pa.Table, schema: Schema) -> dict:
    """Per ldp column: how many non-null outputs lie outside the declared domain.

    The domain comes from the schema: numeric columns must lie on the mechanism's public
    output grid, string columns in the declared categories (plus `other`), bool columns must
    be boolean. Field metadata, when present, must name the schema's mechanism and epsilon.

    Args:
        table: the protected output or one batch of it.
        schema: the dataset schema.
    Returns:
        {column: {"domain": "grid" | "categories" | "bool", "present", "checked", "outside",
        "metadata_ok"}} (mergeable with `merge_ldp_domain_counts`).
    """
    from schemas.ldp import category_domain
    from transforms.ldp.mechanisms import build_mechanism, resolve_mechanism

    out: dict[str, dict] = {}
    for c in schema.ldp_columns:
        p = c.params
        domain = {"string": "categories", "bool": "bool"}.get(c.type, "grid")
        entry = {
            "domain": domain,
            "present": c.name in table.column_names,
            "checked": 0,
            "outside": 0,
            "metadata_ok": True,
        }
        out[c.name] = entry
        if not entry["present"]:
            continue
        arr = table.column(c.name)
        values = arr.drop_null()
        entry["checked"] = len(values)
        md = _field_ldp_params(table.schema.field(c.name))
        if md is not None:
            mech_name = resolve_mechanism(c.type, p.get("mechanism"))
            entry["metadata_ok"] = (
                bool(md)
                and md.get("mechanism") == mech_name
                and math.isclose(md.get("epsilon", -1.0), p["epsilon"], rel_tol=1e-12)
            )
        if not len(values):
            continue
        if domain == "bool":
            ok = pa.types.is_boolean(values.type)
            entry["outside"] = 0 if ok else len(values)
        elif domain == "categories":
            dom = pa.array(category_domain(p.get("categories"), p.get("other")), pa.string())
            if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
                entry["outside"] = len(values)
            else:
                inside = pc.sum(pc.cast(pc.is_in(values, value_set=dom), pa.int64())).as_py()
                entry["outside"] = len(values) - int(inside or 0)
        else:
            if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
                entry["outside"] = len(values)
                continue
            mech = build_mechanism(c.ldp_params)
            y = (
                values.to_numpy().astype(np.float64)
                if isinstance(values, pa.Array)
                else values.combine_chunks().to_numpy().astype(np.float64)
            )
            entry["outside"] = int((~mech.grid().contains(y)).sum())
    return out


def merge_ldp_domain_counts(partials: Iterable[Mapping]) -> dict:
    """Sum `ldp_domain_counts` of several batches.

    Args:
        partials: `ldp_domain_counts(batch, schema)` per batch.
    Returns:
        The same layout; a column counts as present only if present in every batch.
    """
    out: dict[str, dict] = {}
    for part in partials:
        for col, e in part.items():
            cur = out.setdefault(
                col,
                {
                    "domain": e["domain"],
                    "present": True,
                    "checked": 0,
                    "outside": 0,
                    "metadata_ok": True,
                },
            )
            cur["present"] = cur["present"] and e["present"]
            cur["metadata_ok"] = cur["metadata_ok"] and e["metadata_ok"]
            cur["checked"] += e["checked"]
            cur["outside"] += e["outside"]
    return out
