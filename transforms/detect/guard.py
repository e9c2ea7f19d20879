"""The run's keep-guard: PII found in `keep` string columns (exit 3 or a warning).

Findings name the column and entity, never a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa

from schemas.detection import DEFAULT_MAX_PREVALENCE, DEFAULT_SAMPLE
from transforms.detect.classify import classify_column, reportable_entities
from transforms.detect.engine import Detector


def guard_findings(
    table_or_columns,
    columns: Iterable[Sequence],
    max_prevalence: float = DEFAULT_MAX_PREVALENCE,
    *,
    detector: Detector | None = None,
    sample: int = DEFAULT_SAMPLE,
) -> list[tuple[str, str, float]]:
    """PII in `keep` string columns above `max_prevalence` (the run's keep-guard).

    Args:
        table_or_columns: a pyarrow Table, or a mapping column name -> values.
        columns: (name, action, type) or (name, action, type, pii) per declared column;
            only `keep` columns of type string are checked, and an entity equal to the
            declared `pii:` label is accepted (the policy already says so).
        max_prevalence: largest tolerated share of sampled values with PII.
        detector: default `get_detector()`.
        sample: values sampled per column.
    Returns:
        [(column, entity, prevalence)] sorted by column then entity; empty = pass.
    """
    findings = []
    for item in columns:
        name, action, ctype = item[0], item[1], item[2]
        declared = item[3] if len(item) > 3 else None
        if action != "keep" or ctype != "string":
            continue
        if isinstance(table_or_columns, pa.Table):
            if name not in table_or_columns.column_names:
                continue
            values = table_or_columns.column(name)
        else:
            if name not in table_or_columns:
                continue
            values = table_or_columns[name]
        f = classify_column(
            name, values, detector=detector, sample=sample, trace_prevalence=max_prevalence
        )
        for ent, p in sorted(reportable_entities(f, max_prevalence).items()):
            if ent != declared:
                findings.append((name, ent, round(p, 4)))
    return sorted(findings)


def guard_message(
    findings: Sequence[tuple[str, str, float]], max_prevalence: float = DEFAULT_MAX_PREVALENCE
) -> str:
    """One line per finding for the CLI (column and entity, never a value).

    Args:
        findings: `guard_findings` output.
        max_prevalence: the threshold that was applied.
    Returns:
        The message text.
    """
    return "\n".join(
        f"keep-guard: column '{c}' is kept but {p:.1%} of its sampled values contain "
        f"{e} (guard.max_prevalence {max_prevalence:.1%}); scrub, tokenize or drop it"
        for c, e, p in findings
    )
