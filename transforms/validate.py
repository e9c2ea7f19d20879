"""Validate: the run's gates. Privacy checks, data contracts and the verdict, as pure cores.

Everything here works on pyarrow tables and plain dicts (no Beam):

- `k_anonymity()` / `l_diversity()`: equivalence classes over the declared quasi-identifiers,
  computed over the whole table with a vectorized group-by (a null is a value of its own).
  For a pipeline that sees the output in batches, `class_counts()` gives each batch's partial
  counts, `merge_class_counts()` combines them, and `k_anonymity_from_counts()` /
  `l_diversity_from_counts()` finish: the result equals the whole-table one.
- `input_expectations()` / `load_suite()` / `run_suite()`: Great Expectations contracts. GX
  copies failing values into its results by default; `run_suite` asks for counts only and
  then rebuilds the result from a whitelist, so no value from the data reaches it.
- `ldp_domain_check()`, `output_columns_check()`, `residual_pii_check()`,
  `reconciliation_check()`, `k_anonymity_check()`, `l_diversity_check()`, `suite_check()`:
  named checks `{name, passed, details}`; `gate_verdict()` combines them.

Great Expectations takes seconds to import, so it is imported inside the functions that use
it (`import_gx`, which defers the heavy packages GX imports but privgate's checks never use).
Nothing here logs or raises with a record's value in the message.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import itertools
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.errors import ConfigError, DataError
from schemas.columns import Schema

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from great_expectations import ExpectationSuite

# `import great_expectations` loads scipy.stats (distribution expectations), altair and
# jsonschema (rendering) and, through optional shims, the AWS and Google Cloud SDKs: ~2/3 of
# its import CPU, none of it used to validate an in-memory frame. While `import_gx` imports
# GX, the first are imported lazily (each loads on its first attribute access, so an
# expectation that needs scipy still works) and the cloud SDKs are reported missing, which
# GX's shims take as "cloud data sources unavailable". Lazy loading is only safe for
# packages whose imports have no side effects elsewhere: protobuf modules register
# descriptors on import, hence the Google SDKs are skipped, not deferred. Before Python 3.12
# a lazy module's first touch is not thread-safe: privgate touches GX from one thread (the GX
# side worker, or the launcher after the pipeline for an output suite).
GX_LAZY_PACKAGES = frozenset({"scipy", "altair", "jsonschema"})
GX_SKIPPED_PACKAGES = frozenset({"google", "boto3", "botocore", "s3transfer"})


class _GxImportFinder(importlib.abc.MetaPathFinder):
    """Defers `GX_LAZY_PACKAGES` and hides `GX_SKIPPED_PACKAGES` (not yet imported ones)."""

    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top in GX_SKIPPED_PACKAGES:
            raise ModuleNotFoundError(f"{name} is not loaded for Great Expectations", name=name)
        if top not in GX_LAZY_PACKAGES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                return spec
        return None


def import_gx():
    """`import great_expectations` the first time with `_GxImportFinder` in place (~1.5-2 s
    instead of ~4.5 s CPU on the benchmark VM); the finder is removed again, so later
    imports anywhere are plain. Returns the module."""
    if "great_expectations" not in sys.modules:
        finder = _GxImportFinder()
        sys.meta_path.insert(0, finder)
        try:
            import great_expectations  # noqa: F401
        finally:
            sys.meta_path.remove(finder)
    return sys.modules["great_expectations"]


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

# Names of the checks the pipeline feeds to `gate_verdict` (the report knows them).
CHECK_OUTPUT_COLUMNS = "output_columns"
CHECK_RESIDUAL_PII = "residual_pii"
CHECK_K_ANONYMITY = "k_anonymity"
CHECK_L_DIVERSITY = "l_diversity"
CHECK_LDP_DOMAIN = "ldp_domain"
CHECK_RECONCILIATION = "reconciliation"
CHECK_INPUT_CONTRACT = "input_contract"
CHECK_OUTPUT_EXPECTATIONS = "output_expectations"
CHECK_INPUT_EXPECTATIONS = "input_expectations"


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


# --------------------------------------------------------------------------- checks


def check(name: str, passed: bool, details: Mapping | None = None) -> dict:
    """One named check for `gate_verdict`.

    Args:
        name: a short identifier (`k_anonymity`, `reconciliation`, ...).
        passed: whether the gate holds.
        details: JSON-able aggregates only (never record values).
    Returns:
        {"name", "passed", "details"}.
    Raises:
        ValueError: empty name or non-bool `passed`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a check needs a non-empty name")
    if not isinstance(passed, bool | np.bool_):
        raise ValueError(f"check '{name}': passed must be true or false")
    return {"name": name, "passed": bool(passed), "details": dict(details or {})}


def k_anonymity_check(result: Mapping) -> dict:
    """The `k_anonymity` check from a `k_anonymity` result.

    Args:
        result: `k_anonymity(...)` or `k_anonymity_from_counts(...)`.
    Returns:
        A check dict; details = the result.
    """
    return check(CHECK_K_ANONYMITY, result["passed"], result)


def l_diversity_check(result: Mapping) -> dict:
    """The `l_diversity` check from an `l_diversity` result.

    Args:
        result: `l_diversity(...)` or `l_diversity_from_counts(...)`.
    Returns:
        A check dict; details = the result.
    """
    return check(CHECK_L_DIVERSITY, result["passed"], result)


def reconciliation_check(input_rows: int, output_rows: int, quarantined_rows: int) -> dict:
    """Every input row is either in the output or in the quarantine.

    Args:
        input_rows: rows read.
        output_rows: rows written to the output.
        quarantined_rows: rows written to the quarantine.
    Returns:
        A check dict: passed when input_rows == output_rows + quarantined_rows.
    """
    i, o, q = int(input_rows), int(output_rows), int(quarantined_rows)
    return check(
        CHECK_RECONCILIATION,
        i == o + q,
        {"input_rows": i, "output_rows": o, "quarantined_rows": q, "difference": i - o - q},
    )


def output_columns_check(output_schema: pa.Schema | pa.Table, schema: Schema) -> dict:
    """The output holds exactly the schema's output columns, with their declared types.

    Args:
        output_schema: the written files' Arrow schema (or a table).
        schema: the dataset schema.
    Returns:
        A check dict with details {"expected", "actual", "missing", "unexpected",
        "type_mismatch" (column names)}.
    """
    from transforms.arrow import ARROW_TYPES

    arrow = output_schema.schema if isinstance(output_schema, pa.Table) else output_schema
    expected = [c.name for c in schema.output_columns]
    actual = list(arrow.names)
    missing = [c for c in expected if c not in actual]
    unexpected = [c for c in actual if c not in expected]
    mismatch = []
    for c in schema.output_columns:
        if c.name in actual and arrow.field(c.name).type != ARROW_TYPES[c.output_type]:
            mismatch.append(c.name)
    passed = not (missing or unexpected or mismatch) and len(actual) == len(set(actual))
    return check(
        CHECK_OUTPUT_COLUMNS,
        passed,
        {
            "expected": expected,
            "actual": actual,
            "missing": missing,
            "unexpected": unexpected,
            "type_mismatch": mismatch,
        },
    )


def residual_pii_check(columns: Mapping[str, Mapping], max_rate: float | None) -> dict:
    """Share of sampled output values in which the detector still found PII.

    Args:
        columns: per checked column, {"sampled": values examined, "flagged": values with
            any PII found, "entities": {ENTITY: values with that entity}}. Counts only.
        max_rate: `gates.residual_pii_max`; None reports the rate without gating.
    Returns:
        A check dict with details {"max_rate", "rate", "sampled", "flagged",
        "by_column": {col: {"sampled", "flagged", "rate", "entities"}},
        "by_entity": {ENTITY: count}}. Passed when rate <= max_rate.
    Raises:
        ValueError: negative counts or flagged > sampled.
    """
    by_column: dict[str, dict] = {}
    by_entity: dict[str, int] = {}
    sampled = flagged = 0
    for col in sorted(columns):
        info = columns[col]
        n, f = int(info.get("sampled", 0)), int(info.get("flagged", 0))
        if n < 0 or f < 0 or f > n:
            raise ValueError(f"residual PII: bad counts for column '{col}'")
        ents = {str(e): int(v) for e, v in sorted((info.get("entities") or {}).items())}
        for e, v in ents.items():
            by_entity[e] = by_entity.get(e, 0) + v
        by_column[col] = {"sampled": n, "flagged": f, "rate": f / n if n else 0.0, "entities": ents}
        sampled += n
        flagged += f
    rate = flagged / sampled if sampled else 0.0
    passed = True if max_rate is None else rate <= float(max_rate)
    return check(
        CHECK_RESIDUAL_PII,
        passed,
        {
            "max_rate": max_rate,
            "rate": rate,
            "sampled": sampled,
            "flagged": flagged,
            "by_column": by_column,
            "by_entity": dict(sorted(by_entity.items())),
        },
    )


def suite_check(name: str, result: Mapping) -> dict:
    """A check from a `run_suite` result (input contract or the user's output suite).

    Args:
        name: `input_contract` or `output_expectations` (or another suite's name).
        result: `run_suite(...)` or `merge_suite_results(...)`.
    Returns:
        A check dict; passed when no critical expectation failed; details = the result.
    """
    return check(name, result["success"], result)


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


def ldp_domain_check(table: pa.Table | Mapping, schema: Schema) -> dict:
    """The `ldp_domain` check: every ldp output inside its declared domain.

    Args:
        table: the protected output, or already computed (merged) `ldp_domain_counts`.
        schema: the dataset schema.
    Returns:
        A check dict; details {"columns": ldp_domain_counts}. Passed when every ldp column is
        present, has matching metadata and no value outside its domain (vacuously passed when
        the schema has no ldp column).
    """
    counts = dict(table) if isinstance(table, Mapping) else ldp_domain_counts(table, schema)
    passed = all(e["present"] and e["metadata_ok"] and e["outside"] == 0 for e in counts.values())
    return check(CHECK_LDP_DOMAIN, passed, {"columns": counts})


# --------------------------------------------------------------------------- verdict


def gate_verdict(checks: Sequence[Mapping]) -> dict:
    """Combine named checks into the run's verdict.

    Args:
        checks: `{name, passed, details}` dicts (see `check`), in display order.
    Returns:
        {"status": "passed" | "failed", "failed": [names of failed checks],
        "checks": [the checks, normalized]}.
    Raises:
        ValueError: no checks (a gate that checked nothing must not pass), a malformed check
            or a duplicate name.
    """
    if not checks:
        raise ValueError("gate verdict: no checks given")
    out, seen = [], set()
    for c in checks:
        if not isinstance(c, Mapping) or "name" not in c or "passed" not in c:
            raise ValueError("gate verdict: each check needs a name and passed")
        norm = check(c["name"], c["passed"], c.get("details"))
        if norm["name"] in seen:
            raise ValueError(f"gate verdict: duplicate check '{norm['name']}'")
        seen.add(norm["name"])
        out.append(norm)
    failed = [c["name"] for c in out if not c["passed"]]
    return {"status": "failed" if failed else "passed", "failed": failed, "checks": out}


# --------------------------------------------------------------------------- GX contracts

# pandas dtypes (as `to_frame` produces them) that Great Expectations accepts per type.
GX_TYPE_LISTS = {
    "string": ["StringDtype"],
    "int": ["int64", "Int64Dtype"],
    "float": ["float64"],
    "bool": ["bool", "BooleanDtype"],
    "date": ["datetime64[ms]"],
    "timestamp": ["datetime64[us]"],
}
# Result keys that are counts or shares (never values); everything else GX returns is dropped.
_COUNT_KEYS = (
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
    "missing_percent",
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
)
# Expectations whose `observed_value` is structural (a type name, a count, column names) and
# so may be kept. For the others (min, max, mean, quantiles, distinct values...) the observed
# value is computed from records and is dropped.
_SAFE_OBSERVED = frozenset(
    {
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_proportion_of_non_null_values_to_be_between",
        "expect_column_unique_value_count_to_be_between",
        "expect_column_proportion_of_unique_values_to_be_between",
    }
)
_RESULT_FORMAT = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}
_DROP_KWARGS = ("batch_id", "result_format", "catch_exceptions")


def input_expectations(schema: Schema, name: str = "privgate_input_contract") -> ExpectationSuite:
    """The input contract derived from a schema, as a Great Expectations suite.

    Run it (`run_suite`) on the typed input, i.e. the columns `transforms.contract.coerce`
    returns, before the quarantine split: cells that failed their type are null there.
    Severity "critical" (fails the contract): every declared column is present with its
    declared type. Severity "warning" (reported, the run handles these rows by policy):
    non-nullable columns without nulls (such rows are quarantined), ldp string columns
    without `other` inside their categories (quarantined), ldp numeric columns inside their
    bounds (clipped).

    Args:
        schema: the dataset schema.
        name: the suite name.
    Returns:
        An unbound `great_expectations.ExpectationSuite` (meta `{"privgate": "schema"}`).
    """
    gx = import_gx()
    import great_expectations.expectations as gxe

    meta = {"privgate": "schema"}
    exps: list = []
    for c in schema.columns:
        exps.append(gxe.ExpectColumnToExist(column=c.name, meta=meta))
        exps.append(
            gxe.ExpectColumnValuesToBeInTypeList(
                column=c.name, type_list=list(GX_TYPE_LISTS[c.type]), meta=meta
            )
        )
        if not c.nullable:
            exps.append(
                gxe.ExpectColumnValuesToNotBeNull(column=c.name, meta=meta, severity="warning")
            )
        if c.action != "ldp":
            continue
        p = c.params
        if p.get("categories") and "other" not in p:
            exps.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=c.name, value_set=list(p["categories"]), meta=meta, severity="warning"
                )
            )
        if p.get("bounds"):
            lo, hi = p["bounds"]
            exps.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=c.name, min_value=lo, max_value=hi, meta=meta, severity="warning"
                )
            )
    return gx.ExpectationSuite(name=name, expectations=exps, meta={"privgate": "schema"})


def _pydantic_problem(e: Exception) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        try:
            items = errors()
            parts = [
                f"{'.'.join(str(x) for x in it.get('loc', ()))}: {it.get('msg', '')}"
                for it in items[:3]
            ]
            return "; ".join(parts)
        except Exception:  # noqa: BLE001 - a message helper must not fail
            pass
    return type(e).__name__


def load_suite(path: str) -> ExpectationSuite:
    """Load a user's Great Expectations suite JSON (`suite.to_json_dict()` layout).

    Per-expectation `result_format` and `catch_exceptions` are ignored: `run_suite` decides
    what results hold.

    Args:
        path: the suite file.
    Returns:
        An unbound `great_expectations.ExpectationSuite`.
    Raises:
        ConfigError: naming the file and `expectations[i]` for an unreadable file, invalid
            JSON, an unknown expectation type or invalid arguments.
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(path, "", f"cannot read expectation suite: {e.strerror}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(path, "", f"not valid JSON (line {e.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(path, "", "must be a JSON object with `expectations`")
    allowed = (
        "name",
        "id",
        "expectations",
        "meta",
        "notes",
        "data_asset_type",
        "expectation_suite_name",
        "ge_cloud_id",
    )
    unknown = sorted(k for k in data if k not in allowed)
    if unknown:
        raise ConfigError(path, unknown[0], f"unknown key (allowed: {', '.join(allowed)})")
    items = data.get("expectations")
    if not isinstance(items, list):
        raise ConfigError(path, "expectations", "must be a list")

    gx = import_gx()
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    exps = []
    for i, item in enumerate(items):
        where = f"expectations[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(path, where, "must be an object {type, kwargs}")
        etype = item.get("type", item.get("expectation_type"))
        if not isinstance(etype, str) or not etype:
            raise ConfigError(path, f"{where}.type", "is required")
        kwargs = item.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ConfigError(path, f"{where}.kwargs", "must be an object")
        kwargs = {k: v for k, v in kwargs.items() if k not in _DROP_KWARGS}
        severity = item.get("severity", "critical")
        if severity not in ("critical", "warning", "info"):
            raise ConfigError(path, f"{where}.severity", "must be critical, warning or info")
        try:
            conf = ExpectationConfiguration(
                type=etype, kwargs=kwargs, meta=item.get("meta") or {}, severity=severity
            )
            exps.append(conf.to_domain_obj())
        except Exception as e:  # noqa: BLE001 - GX raises many types; report the key
            if type(e).__name__ == "ExpectationNotFoundError":
                raise ConfigError(path, f"{where}.type", "unknown expectation type") from None
            raise ConfigError(path, f"{where}.kwargs", _pydantic_problem(e)) from None
    name = data.get("name") or data.get("expectation_suite_name") or os.path.basename(path)
    return gx.ExpectationSuite(name=str(name), expectations=exps)


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A pandas frame whose dtypes `GX_TYPE_LISTS` recognizes, from a typed Arrow table.

    Strings become `StringDtype`, ints `int64` (`Int64` when nulls), floats `float64`, bools
    `bool` (`boolean` when nulls), dates `datetime64[ms]`, timestamps naive-UTC
    `datetime64[us]`.

    Args:
        table: a table typed per the schema (e.g. `contract.coerce` output).
    Returns:
        pandas.DataFrame with the same columns.
    """
    import pandas as pd

    cols = {}
    for name, arr in zip(table.column_names, table.columns, strict=True):
        t = arr.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            cols[name] = arr.to_pandas(types_mapper=lambda _t: pd.StringDtype())
        elif pa.types.is_integer(t):
            if arr.null_count:
                cols[name] = arr.to_pandas(types_mapper=lambda _t: pd.Int64Dtype())
            else:
                cols[name] = arr.cast(pa.int64()).to_pandas()
        elif pa.types.is_boolean(t) and arr.null_count:
            cols[name] = arr.to_pandas(types_mapper=lambda _t: pd.BooleanDtype())
        elif pa.types.is_date(t):
            cols[name] = arr.to_pandas(date_as_object=False)
        elif pa.types.is_timestamp(t):
            cols[name] = pc.cast(arr, pa.timestamp("us")).to_pandas()
        else:
            cols[name] = arr.to_pandas()
    return pd.DataFrame(cols, index=pd.RangeIndex(table.num_rows))


_gx_runs = itertools.count()


def _gx_context():
    gx = import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    cfg = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=cfg)


def _num(v: Any) -> int | float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    return None


def _safe_observed(v: Any) -> Any:
    if _num(v) is not None:
        return _num(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    return None


def _plain(v: Any) -> Any:
    """Config kwargs as JSON (they come from the schema or the user's suite, not records)."""
    return json.loads(json.dumps(v, default=str))


def _sanitize_result(r: Any) -> dict:
    conf = r.expectation_config
    etype = conf.type
    kwargs = {k: _plain(v) for k, v in sorted(conf.kwargs.items()) if k not in _DROP_KWARGS}
    res = r.result or {}
    exc = r.exception_info or {}
    # GX nests exception info per metric when a metric failed; only keep the flag.
    if "raised_exception" in exc:
        raised = bool(exc.get("raised_exception"))
    else:
        raised = any(isinstance(v, dict) and v.get("raised_exception", True) for v in exc.values())
    severity = getattr(conf, "severity", None)
    severity = getattr(severity, "value", severity) or "critical"
    entry: dict[str, Any] = {
        "type": etype,
        "column": kwargs.get("column"),
        "kwargs": kwargs,
        "severity": str(severity),
        "success": bool(r.success) and not raised,
        "raised_exception": raised,
        "source": (conf.meta or {}).get("privgate", "user"),
    }
    for key in _COUNT_KEYS:
        if key in res and _num(res[key]) is not None:
            entry[key] = _num(res[key])
    if etype in _SAFE_OBSERVED and "observed_value" in res:
        obs = _safe_observed(res["observed_value"])
        if obs is not None:
            entry["observed_value"] = obs
    return entry


def _summarize(name: str, suite_name: str, entries: list[dict]) -> dict:
    failed = [e for e in entries if not e["success"]]
    critical = [e for e in failed if e["severity"] == "critical"]
    return {
        "name": name,
        "suite": suite_name,
        "success": not critical,
        "evaluated": len(entries),
        "failed": len(failed),
        "critical_failed": len(critical),
        "warnings": len(failed) - len(critical),
        "expectations": entries,
    }


def run_suite(data: pa.Table | pd.DataFrame, suite: ExpectationSuite, name: str) -> dict:
    """Run a Great Expectations suite on a table; return counts, never values.

    GX runs on a fresh ephemeral context with a pandas datasource, analytics and progress
    bars off, `result_format` BASIC with `partial_unexpected_count: 0`; the result is then
    rebuilt from a whitelist (counts, shares, structural observed values such as type
    names) so that neither failing values nor data-derived statistics (min, max, quantiles)
    nor exception text reach it.

    Args:
        data: a typed Arrow table (converted with `to_frame`) or a pandas DataFrame.
        suite: the suite (not modified; it may be reused).
        name: what this run is (`input_contract`, `output_expectations`).
    Returns:
        {"name", "suite", "success" (no critical expectation failed), "evaluated", "failed",
        "critical_failed", "warnings", "expectations": [{"type", "column", "kwargs",
        "severity", "success", "raised_exception", "source", counts...}]}; JSON-able.
    Raises:
        DataError: GX could not run the suite (the message names the suite, not the data).
    """
    gx = import_gx()

    df = to_frame(data) if isinstance(data, pa.Table) else data
    run = next(_gx_runs)
    try:
        ctx = _gx_context()
        batch_def = (
            ctx.data_sources.add_pandas(f"privgate_{run}")
            .add_dataframe_asset("frame")
            .add_batch_definition_whole_dataframe("whole")
        )
        exps = [
            e.copy(update={"id": None, "result_format": _RESULT_FORMAT}) for e in suite.expectations
        ]
        bound = ctx.suites.add(gx.ExpectationSuite(name=f"{suite.name}_{run}", expectations=exps))
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}_{run}", data=batch_def, suite=bound)
        )
        res = vd.run(batch_parameters={"dataframe": df}, result_format=dict(_RESULT_FORMAT))
        entries = [_sanitize_result(r) for r in res.results]
    except Exception as e:  # noqa: BLE001 - GX errors may quote data; report the type only
        raise DataError(
            f"{name}: Great Expectations could not run suite '{suite.name}' ({type(e).__name__})"
        ) from None
    return _summarize(name, suite.name, entries)


def merge_suite_results(results: Sequence[Mapping]) -> dict:
    """Combine `run_suite` results of the same suite over several batches.

    Args:
        results: one result per batch, same suite (same expectations in the same order).
    Returns:
        The `run_suite` layout: an expectation succeeds only if it succeeded in every batch;
        counts are summed and shares recomputed; observed values are kept only when every
        batch saw the same one.
    Raises:
        ValueError: no results, or results of different suites.
    """
    if not results:
        raise ValueError("merge_suite_results: no results given")
    first = results[0]
    n = len(first["expectations"])
    for r in results:
        if r["suite"] != first["suite"] or len(r["expectations"]) != n:
            raise ValueError("merge_suite_results: results of different suites")
    entries = []
    for i in range(n):
        parts = [r["expectations"][i] for r in results]
        e = {k: v for k, v in parts[0].items() if k not in _COUNT_KEYS + ("observed_value",)}
        e["success"] = all(p["success"] for p in parts)
        e["raised_exception"] = any(p["raised_exception"] for p in parts)
        for key in ("element_count", "unexpected_count", "missing_count"):
            if all(key in p for p in parts):
                e[key] = sum(p[key] for p in parts)
        if "element_count" in e and "unexpected_count" in e:
            total = e["element_count"]
            nonmissing = total - e.get("missing_count", 0)
            e["unexpected_percent_total"] = 100.0 * e["unexpected_count"] / total if total else 0.0
            e["unexpected_percent"] = (
                100.0 * e["unexpected_count"] / nonmissing if nonmissing else None
            )
            if "missing_count" in e:
                e["missing_percent"] = 100.0 * e["missing_count"] / total if total else None
        obs = [p.get("observed_value") for p in parts]
        if "observed_value" in parts[0] and all(o == obs[0] for o in obs):
            e["observed_value"] = obs[0]
        entries.append(e)
    return _summarize(first["name"], first["suite"], entries)
