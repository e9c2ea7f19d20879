"""The run's keep-guard: direct identifiers in `keep` string columns fail, quasi-identifiers warn.

Findings name the column and entity, never a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pyarrow as pa

from schemas.detection import DEFAULT_MAX_PREVALENCE, DEFAULT_SAMPLE
from transforms.detect.classify import (
    classify_column,
    reportable_entities,
    sample_values,
)
from transforms.detect.column_class import (
    CLASS_LABEL,
    DIRECT,
    DIRECT_ENTITIES,
    FUZZY,
    QUASI,
    ColumnClass,
    classify_class,
)
from transforms.detect.engine import Detector


def guard_findings(
    table_or_columns,
    columns: Iterable[Sequence],
    max_prevalence: float = DEFAULT_MAX_PREVALENCE,
    *,
    detector: Detector | None = None,
    sample: int = DEFAULT_SAMPLE,
) -> list[tuple[str, str, float]]:
    """Direct identifiers in `keep` string columns above `max_prevalence` (the guard's failures).

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
    return guard_review(
        table_or_columns, columns, max_prevalence, detector=detector, sample=sample
    )[0]


def guard_review(
    table_or_columns,
    columns: Iterable[Sequence],
    max_prevalence: float = DEFAULT_MAX_PREVALENCE,
    *,
    detector: Detector | None = None,
    sample: int = DEFAULT_SAMPLE,
) -> tuple[list[tuple[str, str, float]], list[dict]]:
    """The keep-guard: failures (direct identifiers) and warnings (quasi-identifiers).

    A kept column fails on a direct identifier in its values (e-mail, phone, card...,
    a person's name where the column is a name column or free text, a street address) or
    in their shape (card numbers in scientific notation, a cvv-named column of 3-4
    digits). A kept quasi-identifier (country, city, nationality, birth date, zip, age,
    gender...: from the values or the name) is a warning: it is named, the run goes on.

    Args:
        see `guard_findings`.
    Returns:
        ([(column, entity, prevalence)] failures, [{"column", "entity", "prevalence",
        "reason"}] warnings); no value in either.
    """
    findings, warnings = [], []
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
        cls = classify_class(name, f, sample_values(values, sample), ctype)
        named = False
        for ent, p in sorted(reportable_entities(f, max_prevalence).items()):
            if ent == declared:
                continue
            named = True
            if _fails(ent, cls):
                findings.append((name, ent, round(p, 4)))
            else:
                warnings.append(_warning(name, ent, p, cls))
        if cls.klass == DIRECT and cls.evidence == "shape" and cls.entity != declared:
            if not any(c == name for c, _, _ in findings):
                findings.append((name, cls.entity, 1.0))
        elif cls.klass == QUASI and not named and declared is None:
            warnings.append(_warning(name, cls.entity, None, cls))
    return sorted(findings), sorted(warnings, key=lambda w: (w["column"], w["entity"] or ""))


def _fails(entity: str, cls: ColumnClass) -> bool:
    """Whether a kept column's entity is a direct identifier (fail) or not (warn)."""
    if entity == "LOCATION":
        return cls.entity == "STREET_ADDRESS"
    if entity in FUZZY:
        return cls.klass == DIRECT
    return entity in DIRECT_ENTITIES


def _warning(name: str, entity: str | None, share: float | None, cls: ColumnClass) -> dict:
    concept = f" ({cls.concept})" if cls.concept and cls.concept != entity else ""
    return {
        "column": name,
        "entity": entity,
        "prevalence": None if share is None else round(share, 4),
        "reason": f"{CLASS_LABEL[QUASI if cls.klass == DIRECT else cls.klass]}{concept}",
    }


def guard_warning_message(warnings: Sequence[Mapping]) -> str:
    """One line per kept quasi-identifier for the log (column and entity, never a value)."""
    return "\n".join(
        f"keep-guard: column '{w['column']}' is kept and is a {w['reason']}"
        + (f": {w['entity']}" if w["entity"] else "")
        + (f" in {w['prevalence']:.1%} of sampled values" if w["prevalence"] is not None else "")
        + "; consider generalize, or a gates: k_anonymity over it"
        for w in warnings
    )


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
