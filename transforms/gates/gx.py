"""The Great Expectations adapter: expectation suites run on Arrow tables, kept to counts.

- `load_suite()` / `run_suite()` / `merge_suite_results()`: the user's Great Expectations
  suites (`gates.expectations`, `gates.input_expectations`). GX copies failing values into
  its results by default; `run_suite` asks for counts only and then rebuilds the result from
  a whitelist, so no value from the data reaches it.
- `import_gx()`: Great Expectations takes seconds to import, so it is imported inside the
  functions that use it, deferring the heavy packages GX imports but privgate never uses.

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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.errors import ConfigError, DataError
from schemas.kit import read_file
from transforms.gates.checks import suite_result

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
    raw = read_file(path, "expectation suite")
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
    """A pandas frame with Great Expectations' usual dtypes, from a typed Arrow table.

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
    return suite_result(name, suite.name, entries)


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
    return suite_result(first["name"], first["suite"], entries)
