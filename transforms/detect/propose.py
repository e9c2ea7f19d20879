"""Schema proposal for `privgate scan`: loadable YAML with a type, `pii:` entity, action per column.

Comments give prevalence and confidence, never a value.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from schemas.detection import DEFAULT_MAX_PREVALENCE, DEFAULT_SAMPLE
from transforms.detect.classify import (
    FREE_TEXT,
    classify_column,
    name_hints,
    reportable_entities,
    sample_values,
)
from transforms.detect.engine import Detector, _as_string_array

_DATE_FORMATS = (
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%m-%d-%Y",
    "%d-%m-%Y",
    "%b %d, %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%d %B %Y",
)
_ID_NAME = re.compile(r"(?:^|_|\b)(?:id|uuid|guid|key)$|Id$|ID$")
_STRING_HINTS = ("ZIP_CODE", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "US_BANK_NUMBER", "IBAN_CODE")
# What to do with a column holding each entity (anything else personal: tokenize).
SUGGESTED_ACTIONS = {
    "CREDIT_CARD": {"action": "drop"},
    "PASSWORD": {"action": "drop"},
    "SECRET": {"action": "drop"},
    "ZIP_CODE": {"action": "generalize", "keep_prefix": 3},
    FREE_TEXT: {"action": "scrub"},
}
_ARROW_TO_TYPE = (
    (pa.types.is_boolean, "bool"),
    (pa.types.is_integer, "int"),
    (pa.types.is_floating, "float"),
    (pa.types.is_decimal, "float"),
    (pa.types.is_date, "date"),
    (pa.types.is_timestamp, "timestamp"),
)


def infer_type(name: str, values, sample: int = DEFAULT_SAMPLE) -> tuple[str, str | None]:
    """privgate type (and date format) for a column, checked with the contract's own parser.

    Typed Arrow columns keep their type. String columns become int/float/bool/date/
    timestamp only if every sampled value parses as such under `transforms.contract`;
    digit strings with leading zeros or under an id/zip/phone-like name stay strings.

    Args:
        name: column name.
        values: the column.
        sample: values checked.
    Returns:
        (type, format or None).
    """
    from schemas.columns import ColumnSpec
    from transforms.contract import coerce

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    if isinstance(values, pa.Array):
        for test, t in _ARROW_TO_TYPE:
            if test(values.type):
                return t, None
    vals = sample_values(values, sample)
    if not vals:
        return "string", None
    strs = [v.strip() for v in vals]
    arr = pa.array(strs, pa.string())
    hinted = name_hints(name)
    keep_string = bool(_ID_NAME.search(name)) or any(h in _STRING_HINTS for h in hinted)

    def parses(t: str, fmt: str | None = None) -> bool:
        spec = ColumnSpec(name or "c", t, "keep", True, fmt)
        try:
            _, enc_bad, type_bad = coerce(arr, spec)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            return False
        return not type_bad.any() and not enc_bad.any()

    lead_zero = any(
        len(v) > 1 and v.lstrip("+-").startswith("0") and v.lstrip("+-")[1:2].isdigit()
        for v in strs
    )
    all_int = all(re.fullmatch(r"[+-]?\d{1,18}", v) for v in strs)
    if all_int:
        if keep_string or lead_zero:
            return "string", None
        return ("int", None) if parses("int") else ("string", None)
    if all(re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", v) for v in strs):
        return ("float", None) if not keep_string and parses("float") else ("string", None)
    lows = {v.lower() for v in strs}
    if lows <= {"true", "false", "t", "f", "yes", "no"} and parses("bool"):
        return "bool", None
    if all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in strs) and parses("date"):
        return "date", None
    looks_datey = all(re.search(r"\d", v) for v in strs)
    if looks_datey:
        for fmt in _DATE_FORMATS:
            if parses("date", fmt):
                return "date", fmt
        if all(re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", v) for v in strs) and parses(
            "timestamp"
        ):
            return "timestamp", None
    return "string", None


def _yaml_key(name: str) -> str:
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name)
    reserved = name.lower() in ("true", "false", "yes", "no", "on", "off", "null", "y", "n")
    return name if plain and not reserved else json.dumps(name, ensure_ascii=False)


def _flow(d: dict) -> str:
    parts = []
    for k, v in d.items():
        if isinstance(v, bool):
            s = "true" if v else "false"
        elif isinstance(v, int | float):
            s = repr(v)
        elif isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            s = v
        else:
            s = json.dumps(v, ensure_ascii=False)
        parts.append(f"{k}: {s}")
    return "{" + ", ".join(parts) + "}"


def suggest_column(
    name: str,
    values,
    *,
    detector: Detector | None = None,
    sample: int = DEFAULT_SAMPLE,
    max_prevalence: float = DEFAULT_MAX_PREVALENCE,
) -> tuple[dict, str]:
    """Proposed schema entry for one column and a comment explaining it.

    Args:
        name: column name.
        values: the column.
        detector: default `get_detector()`.
        sample: sample size.
        max_prevalence: the keep-guard threshold the proposal must pass.
    Returns:
        (column spec mapping, comment text without values).
    """
    ctype, fmt = infer_type(name, values, sample)
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if not isinstance(arr, pa.Array):
        arr = pa.array(list(arr))
    nullable = arr.null_count > 0
    if (
        pa.types.is_string(arr.type)
        or pa.types.is_large_string(arr.type)
        or pa.types.is_binary(arr.type)
    ):
        blank = (
            pc.sum(
                pc.invert(
                    pc.fill_null(pc.match_substring_regex(_as_string_array(arr), r"\S"), True)
                )
            ).as_py()
            or 0
        )
        nullable = nullable or blank > 0
    spec: dict[str, Any] = {"type": ctype}
    hinted = name_hints(name)
    finding = None
    if ctype in ("string", "int"):
        finding = classify_column(
            name, arr, detector=detector, sample=sample, trace_prevalence=max_prevalence
        )
    entity = finding.entity if finding else None
    if entity is None and ctype in ("date", "timestamp") and "DATE_OF_BIRTH" in hinted:
        entity = "DATE_OF_BIRTH"
    if ctype != "string" and entity not in (None, "DATE_OF_BIRTH"):
        # An int column of phone numbers or SSNs: keep the digits as text for the token.
        ctype, fmt = "string", None
        spec["type"] = "string"
    if entity == FREE_TEXT:
        spec["type"] = "string"
        fmt = None
    comment = ""
    if entity == FREE_TEXT:
        spec.update(SUGGESTED_ACTIONS[FREE_TEXT])
        found = ", ".join(f"{e} {p:.0%}" for e, p in finding.entities.items()) or "none seen"
        comment = (
            f"free text ({finding.free_text_score:.0%} prose); PII in "
            f"{finding.prevalence:.0%} of {finding.examined} sampled cells: {found}"
        )
    elif entity == "DATE_OF_BIRTH" and ctype in ("date", "timestamp"):
        spec["pii"] = entity
        spec.update({"action": "generalize", "date_part": "year"})
        comment = "pii DATE_OF_BIRTH (column name)"
    elif entity is not None:
        spec["pii"] = entity
        spec.update(SUGGESTED_ACTIONS.get(entity, {"action": "tokenize"}))
        if spec.get("action") == "generalize" and spec["type"] != "string":
            spec = {"type": "string", "pii": entity, "action": "tokenize"}
        comment = (
            f"pii {entity}: prevalence {finding.prevalence:.0%} of "
            f"{finding.examined} sampled values (confidence {finding.confidence:.2f})"
        )
    else:
        minority = reportable_entities(finding, max_prevalence) if finding else {}
        if minority and ctype == "string":
            spec["action"] = "scrub"
            comment = "mixed values with PII: " + ", ".join(
                f"{e} {p:.0%}" for e, p in minority.items()
            )
        elif minority:
            spec = {"type": "string", "action": "tokenize"}
            comment = "values with PII: " + ", ".join(f"{e} {p:.0%}" for e, p in minority.items())
        elif ctype == "string" and _ID_NAME.search(name):
            spec["action"] = "tokenize"
            comment = "identifier (column name); no PII seen"
        elif ctype in ("int", "float") and re.search(r"(?:^|_)age(?:$|_)", name.lower()):
            spec.update({"action": "generalize", "bucket": 10})
            comment = "quasi-identifier (age)"
        else:
            spec["action"] = "keep"
            if finding is not None:
                comment = f"no PII in {finding.examined} sampled values"
    if fmt and spec.get("type") in ("date", "timestamp"):
        spec["format"] = fmt
    if nullable:
        spec["nullable"] = True
    order = ("type", "nullable", "format", "pii", "action")
    spec = {k: spec[k] for k in order if k in spec} | {
        k: v for k, v in spec.items() if k not in order
    }
    return spec, comment


def propose_schema(
    table: pa.Table,
    sample: int = DEFAULT_SAMPLE,
    *,
    detector: Detector | None = None,
    max_prevalence: float = DEFAULT_MAX_PREVALENCE,
) -> str:
    """Schema YAML proposed for a table (`privgate scan`), loadable without edits.

    Each column gets an inferred `type`, `nullable`, a date `format` where needed, the
    detected `pii:` entity and a suggested action: tokenize for identifiers (e-mail, phone,
    person, ids...), `scrub` for free text, `drop` for secrets and card numbers, generalize
    for birth dates, zip codes and ages, keep for the rest. Comments give prevalence and
    confidence, never a value.

    Args:
        table: the input (columns as read; strings, binary or typed).
        sample: values sampled per column.
        detector: default `get_detector()`.
        max_prevalence: the keep-guard threshold; a column with more PII is never `keep`.
    Returns:
        YAML text.
    """
    lines = [
        f"# Proposed by privgate scan from a deterministic sample of up to {sample} values "
        "per column.",
        "# Review every action before use; prevalence is the share of sampled values.",
        "unknown_columns: drop",
        "columns:",
    ]
    declared = 0
    for name in table.column_names:
        if not name or name.startswith("_"):
            lines.append(f"  # column {json.dumps(name)} skipped: names may not start with _")
            continue
        spec, comment = suggest_column(
            name,
            table.column(name),
            detector=detector,
            sample=sample,
            max_prevalence=max_prevalence,
        )
        declared += spec["action"] != "drop"
        line = f"  {_yaml_key(name)}: {_flow(spec)}"
        lines.append(line + (f"  # {comment}" if comment else ""))
    if declared == 0:
        lines.append("# every column would be dropped; the schema keeps none (invalid)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- keep-guard
