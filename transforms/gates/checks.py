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
    def build(cls, output_schema: pa.Schema | pa.Table, schema: Schema) -> dict:
        """The check from the written files' schema.

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


class ResidualPiiCheck(GateCheck):
    """Share of sampled output values in which the detector still found PII."""

    name = "residual_pii"

    @classmethod
    def build(cls, columns: Mapping[str, Mapping], max_rate: float | None) -> dict:
        """The check from per-column detection counts.

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
            by_column[col] = {
                "sampled": n,
                "flagged": f,
                "rate": f / n if n else 0.0,
                "entities": ents,
            }
            sampled += n
            flagged += f
        rate = flagged / sampled if sampled else 0.0
        passed = True if max_rate is None else rate <= float(max_rate)
        return check(
            cls.name,
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

    @classmethod
    def summary(cls, c: Mapping) -> str:
        d = c.get("details") or {}
        limit = "no limit" if d.get("max_rate") is None else f"max {fmt_pct(d['max_rate'])}"
        return (
            f"{fmt_pct(d.get('rate'))} of sampled values with PII "
            f"({fmt_int(d.get('flagged'))} of {fmt_int(d.get('sampled'))}); {limit}"
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


class KeepGuardCheck(GateCheck):
    """No column kept as a string holds PII above the keep-guard's prevalence."""

    name = "keep_guard"

    @classmethod
    def build(cls, guard: Mapping) -> dict:
        """The check from the manifest's `keep_guard` section.

        Args:
            guard: {"passed", "mode", "max_prevalence", "findings", ...} (aggregates only).
        Returns:
            A check dict; details {"mode", "max_prevalence", "findings"}.
        """
        return check(
            cls.name,
            guard["passed"],
            {
                "mode": guard["mode"],
                "max_prevalence": guard["max_prevalence"],
                "findings": guard["findings"],
            },
        )

    @classmethod
    def summary(cls, c: Mapping) -> str:
        d = c.get("details") or {}
        found = d.get("findings") or []
        if not found:
            return f"no PII above {fmt_pct(d.get('max_prevalence'))} in kept columns"
        return "; ".join(
            f"'{f['column']}' holds {f['entity']} ({fmt_pct(f['prevalence'])})" for f in found
        )


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
