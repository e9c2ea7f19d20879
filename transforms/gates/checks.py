"""Gate checks: one class per kind of check, registered by name in `CHECKS`.

A check is a dict `{name, passed, details}` (details are JSON-able aggregates, never record
values). Each kind of check is one `GateCheck` subclass: its `name` (the constant every
consumer matches on), `build(...)` (how the check is computed) and `summary(check)` (the
report's one-line summary). `CHECKS` maps names to classes; adding a check is one class and
one line there. `gate_verdict()` combines checks into the run's verdict; `summary()` is what
the report prints for any check, registered or not (see its docstring).

Nothing here imports Beam or Great Expectations; nothing logs or raises with a record's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from schemas.columns import Schema
from transforms.gates.metrics import ldp_domain_counts


def fmt_pct(v: Any, digits: int = 2) -> str:
    """A share as a percentage for the report (`–` for None)."""
    if v is None:
        return "–"
    return f"{100.0 * float(v):.{digits}f}%"


def fmt_int(v: Any) -> str:
    """A count with thousands separators for the report (`–` for None)."""
    return "–" if v is None else f"{int(v):,}"


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


def suite_result(name: str, suite_name: str, entries: list[dict]) -> dict:
    """A suite's details from its per-expectation entries (a GX run or the contract's counts).

    Returns:
        {"name", "suite", "success" (no critical entry failed), "evaluated", "failed",
        "critical_failed", "warnings", "expectations": entries}.
    """
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


def _passed_or_failed(c: Mapping) -> str:
    return "passed" if c["passed"] else "failed"


class GateCheck:
    """One kind of gate check: its name, its computation (`build`) and its report summary."""

    name: ClassVar[str] = ""

    @classmethod
    def summary(cls, c: Mapping) -> str:
        """The report's one-line summary of a check of this kind (a `check` dict).

        Raises:
            KeyError, TypeError, ValueError: details not shaped as `build` makes them
                (`summary()` then falls back to "passed" / "failed").
        """
        return _passed_or_failed(c)


class OutputColumnsCheck(GateCheck):
    """The output holds exactly the schema's output columns, with their declared types."""

    name = "output_columns"

    @classmethod
    def build(
        cls, output_schema: pa.Schema | pa.Table, schema: Schema, released: pa.Schema | None = None
    ) -> dict:
        """The check from the written files' schema.

        Args:
            output_schema: the written files' Arrow schema (or a table).
            schema: the dataset schema.
            released: the expected Arrow schema when it differs from the declared types (an
                `anonymize:` run releases numeric quasi-identifiers as ranges).
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
            want = released.field(c.name).type if released else ARROW_TYPES[c.output_type]
            if c.name in actual and arrow.field(c.name).type != want:
                mismatch.append(c.name)
        passed = not (missing or unexpected or mismatch) and len(actual) == len(set(actual))
        return check(
            cls.name,
            passed,
            {
                "expected": expected,
                "actual": actual,
                "missing": missing,
                "unexpected": unexpected,
                "type_mismatch": mismatch,
            },
        )

    @classmethod
    def summary(cls, c: Mapping) -> str:
        d = c.get("details") or {}
        parts = [
            f"{label}: {', '.join(d[key])}"
            for key, label in (
                ("missing", "missing"),
                ("unexpected", "unexpected"),
                ("type_mismatch", "type mismatch"),
            )
            if d.get(key)
        ]
        return "; ".join(parts) or f"{len(d.get('expected', []))} columns as declared"


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _counts(info: Mapping, keys: tuple[str, str], col: str, what: str) -> tuple[int, int]:
    n, f = (int(info.get(k, 0)) for k in keys)
    if n < 0 or f < 0 or f > n:
        raise ValueError(f"residual PII: bad {what} counts for column '{col}'")
    return n, f


class ResidualPiiCheck(GateCheck):
    """Per output text column, the share of values still holding PII, from two independent
    kinds of evidence: the row's own raw protected values found in its output (counted over
    every row by the protect stage, `transforms.gates.leaks`), and the detector re-run on a
    sample at a lower threshold than the scrubber's. Each column is judged on its own."""

    name = "residual_pii"
    OWN_ROW = "own_row"
    DETECTOR = "detector"

    @classmethod
    def build(
        cls,
        columns: Mapping[str, Mapping],
        max_rate: float | None,
        own_row: Mapping[str, Mapping] | None = None,
    ) -> dict:
        """The check from per-column counts of both kinds of evidence.

        Args:
            columns: detector evidence per sampled column: {"sampled": values examined,
                "flagged": values with any PII found, "entities": {ENTITY: values},
                "score_threshold" (optional)}. Counts only.
            max_rate: `gates.residual_pii_max`; None reports the rates without gating.
            own_row: own-row evidence per output text column (`merge_own_row_leaks`):
                {"checked": rows, "leaking": rows, "by_source": {column: rows}}.
        Returns:
            A check dict with details {"max_rate", "rate" (the worst column's),
            "failed_columns", "sampled", "flagged", "checked", "leaking" (totals),
            "by_column": {col: {"rate", "passed", "evidence" (kinds that found something),
            "detector": {"sampled", "flagged", "rate", "entities", "score_threshold"} | None,
            "own_row": {"checked", "leaking", "rate", "by_source"} | None}},
            "by_entity": {ENTITY: count}}. A column's rate is the larger of its two rates;
            passed when no column's rate exceeds max_rate.
        Raises:
            ValueError: negative counts, or more hits than values examined.
        """
        own_row = own_row or {}
        by_column: dict[str, dict] = {}
        by_entity: dict[str, int] = {}
        totals = dict.fromkeys(("sampled", "flagged", "checked", "leaking"), 0)
        for col in sorted(set(columns) | set(own_row)):
            entry: dict = {cls.DETECTOR: None, cls.OWN_ROW: None}
            if col in columns:
                info = columns[col]
                n, f = _counts(info, ("sampled", "flagged"), col, "detector")
                ents = {str(e): int(v) for e, v in sorted((info.get("entities") or {}).items())}
                for e, v in ents.items():
                    by_entity[e] = by_entity.get(e, 0) + v
                entry[cls.DETECTOR] = {
                    "sampled": n,
                    "flagged": f,
                    "rate": _share(f, n),
                    "entities": ents,
                    "score_threshold": info.get("score_threshold"),
                }
                totals["sampled"] += n
                totals["flagged"] += f
            if col in own_row:
                info = own_row[col]
                n, f = _counts(info, ("checked", "leaking"), col, "own-row")
                entry[cls.OWN_ROW] = {
                    "checked": n,
                    "leaking": f,
                    "rate": _share(f, n),
                    "by_source": {
                        str(k): int(v) for k, v in sorted((info.get("by_source") or {}).items())
                    },
                }
                totals["checked"] += n
                totals["leaking"] += f
            hits = {
                cls.OWN_ROW: (entry[cls.OWN_ROW] or {}).get("leaking", 0),
                cls.DETECTOR: (entry[cls.DETECTOR] or {}).get("flagged", 0),
            }
            entry["evidence"] = [kind for kind, hit in hits.items() if hit]
            entry["rate"] = max(
                (entry[k]["rate"] for k in (cls.OWN_ROW, cls.DETECTOR) if entry[k]), default=0.0
            )
            entry["passed"] = max_rate is None or entry["rate"] <= float(max_rate)
            by_column[col] = entry
        return check(
            cls.name,
            all(e["passed"] for e in by_column.values()),
            {
                "max_rate": max_rate,
                "rate": max((e["rate"] for e in by_column.values()), default=0.0),
                "failed_columns": [c for c, e in by_column.items() if not e["passed"]],
                **totals,
                "by_column": by_column,
                "by_entity": dict(sorted(by_entity.items())),
            },
        )

    @classmethod
    def describe_column(cls, entry: Mapping) -> str:
        """A column's evidence in words (counts only)."""
        parts = []
        own, det = entry.get(cls.OWN_ROW), entry.get(cls.DETECTOR)
        if own:
            parts.append(
                f"own-row raw values in {fmt_int(own['leaking'])} of {fmt_int(own['checked'])} rows"
            )
        if det:
            parts.append(
                f"detector {fmt_int(det['flagged'])} of {fmt_int(det['sampled'])} sampled values"
            )
        return "; ".join(parts)

    @classmethod
    def summary(cls, c: Mapping) -> str:
        d = c.get("details") or {}
        cols = d["by_column"]
        limit = "no limit" if d.get("max_rate") is None else f"max {fmt_pct(d['max_rate'])}"
        failed = d.get("failed_columns") or []
        if failed:
            worst = "; ".join(
                f"'{col}' {fmt_pct(cols[col]['rate'])} ({cls.describe_column(cols[col])})"
                for col in failed
            )
            return f"{worst}; {limit}"
        if not cols:
            return f"no output text column to check; {limit}"
        col = max(sorted(cols), key=lambda k: cols[k]["rate"])
        return (
            f"{len(cols)} column{'' if len(cols) == 1 else 's'}, worst '{col}' "
            f"{fmt_pct(cols[col]['rate'])} "
            f"({cls.describe_column(cols[col])}); {limit}"
        )


class _MetricCheck(GateCheck):
    """A check whose details are a `metrics` result that says itself whether it passed."""

    @classmethod
    def build(cls, result: Mapping) -> dict:
        """The check from a metrics result (`k_anonymity*`, `l_diversity*`).

        Returns:
            A check dict; details = the result.
        """
        return check(cls.name, result["passed"], result)


class KAnonymityCheck(_MetricCheck):
    """Every record lies in an equivalence class of at least k records."""

    name = "k_anonymity"

    @classmethod
    def summary(cls, c: Mapping) -> str:
        d = c.get("details") or {}
        return (
            f"smallest class {fmt_int(d.get('min_class_size'))} (k = {d.get('k')}); "
            f"{fmt_int(d.get('records_below_k'))} records in "
            f"{fmt_int(d.get('classes_below_k'))} classes below k; "
            f"{fmt_int(d.get('classes'))} classes over {fmt_int(d.get('records'))} records"
        )


class LDiversityCheck(_MetricCheck):
    """Every equivalence class holds at least l distinct sensitive values."""

    name = "l_diversity"

    @classmethod
    def summary(cls, c: Mapping) -> str:
        d = c.get("details") or {}
        return (
            f"fewest distinct '{d.get('sensitive')}' per class: "
            f"{fmt_int(d.get('min_l'))} (l = {d.get('l')}); "
            f"{fmt_int(d.get('records_below_l'))} records in "
            f"{fmt_int(d.get('classes_below_l'))} classes below l"
        )


class LdpDomainCheck(GateCheck):
    """Every ldp output lies inside its declared domain."""

    name = "ldp_domain"

    @classmethod
    def build(cls, table: pa.Table | Mapping, schema: Schema) -> dict:
        """The check from the output or its (merged) domain counts.

        Args:
            table: the protected output, or already computed (merged) `ldp_domain_counts`.
            schema: the dataset schema.
        Returns:
            A check dict; details {"columns": ldp_domain_counts}. Passed when every ldp
            column is present, has matching metadata and no value outside its domain
            (vacuously passed when the schema has no ldp column).
        """
        counts = dict(table) if isinstance(table, Mapping) else ldp_domain_counts(table, schema)
        passed = all(
            e["present"] and e["metadata_ok"] and e["outside"] == 0 for e in counts.values()
        )
        return check(cls.name, passed, {"columns": counts})

    @classmethod
    def summary(cls, c: Mapping) -> str:
        cols = (c.get("details") or {}).get("columns") or {}
        outside = sum(int(v.get("outside", 0)) for v in cols.values())
        return f"{len(cols)} ldp columns; {outside:,} values outside their domain"


class OutputRowsCheck(GateCheck):
    """The output holds at least one row.

    An empty output re-identifies nobody (k-anonymity and l-diversity hold vacuously over it)
    and reconciliation still balances when every row was quarantined, so without this check
    an all-quarantined run would look healthy: a gate that judged no output row must not pass.
    """

    name = "output_rows"

    @classmethod
    def build(cls, input_rows: int, output_rows: int, quarantined_rows: int) -> dict:
        """The check from the run's row counts.

        Returns:
            A check dict with details {"input_rows", "output_rows", "quarantined_rows"}:
            passed when output_rows > 0.
        """
        i, o, q = int(input_rows), int(output_rows), int(quarantined_rows)
        return check(cls.name, o > 0, {"input_rows": i, "output_rows": o, "quarantined_rows": q})

    @classmethod
    def summary(cls, c: Mapping) -> str:
        d = c.get("details") or {}
        if c["passed"]:
            return f"{fmt_int(d.get('output_rows'))} output rows"
        return (
            f"0 output rows: {fmt_int(d.get('quarantined_rows'))} of "
            f"{fmt_int(d.get('input_rows'))} input rows quarantined; nothing was judged"
        )


class KeepGuardCheck(GateCheck):
    """No column kept as a string holds PII above the keep-guard's prevalence."""

    name = "keep_guard"

    @classmethod
    def build(cls, guard: Mapping) -> dict:
        """The check from the manifest's `keep_guard` section.

        Args:
            guard: {"passed", "mode", "max_prevalence", "findings", "warnings", ...}
                (aggregates only).
        Returns:
            A check dict; details {"mode", "max_prevalence", "findings", "warnings"}.
        """
        return check(
            cls.name,
            guard["passed"],
            {
                "mode": guard["mode"],
                "max_prevalence": guard["max_prevalence"],
                "findings": guard["findings"],
                "warnings": guard.get("warnings") or [],
            },
        )

    @classmethod
    def summary(cls, c: Mapping) -> str:
        d = c.get("details") or {}
        found = d.get("findings") or []
        warned = d.get("warnings") or []
        text = (
            "; ".join(
                f"'{f['column']}' holds {f['entity']} ({fmt_pct(f['prevalence'])})" for f in found
            )
            if found
            else f"no PII above {fmt_pct(d.get('max_prevalence'))} in kept columns"
        )
        if warned:
            if not found:
                text = text.replace("no PII", "no direct identifier", 1)
            text += "; quasi-identifiers kept: " + ", ".join(
                f"'{w['column']}'" + (f" ({w['entity']})" if w.get("entity") else "")
                for w in warned
            )
        return text


def is_suite_result(details: Mapping) -> bool:
    """Whether a check's details are a `gx.run_suite` result (the report lists its rows)."""
    return "expectations" in details and "evaluated" in details


class SuiteCheck(GateCheck):
    """An expectation suite's run: passed when no critical expectation failed."""

    @classmethod
    def build(cls, result: Mapping) -> dict:
        """The check from a suite run.

        Args:
            result: `gx.run_suite(...)` or `gx.merge_suite_results(...)`.
        Returns:
            A check dict; passed when no critical expectation failed; details = the result.
        """
        return check(cls.name, result["success"], result)

    @classmethod
    def summary(cls, c: Mapping) -> str:
        d = c.get("details") or {}
        if not is_suite_result(d):
            return _passed_or_failed(c)
        return (
            f"{d['evaluated']} expectations; {d['critical_failed']} critical failed, "
            f"{d['warnings']} warnings"
        )


class InputContractCheck(SuiteCheck):
    """The input contract derived from the schema, counted over every input row
    (`transforms.contract.input_contract_check`)."""

    name = "input_contract"


class InputExpectationsCheck(SuiteCheck):
    """The user's input suite (`gates.input_expectations`), on the first input rows."""

    name = "input_expectations"


class OutputExpectationsCheck(SuiteCheck):
    """The user's output suite (`gates.expectations`), over the whole output."""

    name = "output_expectations"


# The gate checks by name: the verdict and the report look a check's kind up here.
CHECKS: dict[str, type[GateCheck]] = {
    c.name: c
    for c in (
        OutputColumnsCheck,
        OutputRowsCheck,
        ResidualPiiCheck,
        KAnonymityCheck,
        LDiversityCheck,
        LdpDomainCheck,
        KeepGuardCheck,
        InputContractCheck,
        InputExpectationsCheck,
        OutputExpectationsCheck,
    )
}


def summary(c: Mapping) -> str:
    """The report's one-line summary of a check, from its registered class.

    An unregistered name does not fail: a report must render every check a verdict holds
    (`gate_verdict` takes any name). Its summary is the suite summary when its details are
    a suite result (a suite run under another name), else "passed" / "failed". Details a
    class cannot summarize (missing keys, wrong types) also give "passed" / "failed".

    Args:
        c: a normalized check `{name, passed, details}`.
    Returns:
        One line of plain text (the report escapes it).
    """
    kind = CHECKS.get(c["name"])
    if kind is None and is_suite_result(c.get("details") or {}):
        kind = SuiteCheck
    try:
        return (kind or GateCheck).summary(c)
    except (KeyError, TypeError, ValueError):
        return _passed_or_failed(c)


def gate_verdict(checks: Sequence[Mapping]) -> dict:
    """Combine named checks into the run's verdict.

    Checks of any name are taken (registered in `CHECKS` or not): the verdict judges by
    `passed` alone; the registry only decides how the report summarizes a check.

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
