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
from transforms.detect.column_class import (
    CLASS_LABEL,
    DIRECT,
    DIRECT_ENTITIES,
    QUASI,
    ColumnClass,
    classify_class,
    name_evidence,
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
_STRING_HINTS = (
    "ZIP_CODE",
    "PHONE_NUMBER",
    "US_SSN",
    "CREDIT_CARD",
    "CVV",
    "US_BANK_NUMBER",
    "IBAN_CODE",
)
# What to do with a column holding each entity (anything else personal: tokenize).
SUGGESTED_ACTIONS = {
    "CREDIT_CARD": {"action": "drop"},
    "CVV": {"action": "drop"},
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
    named = name_evidence(name)
    keep_string = (
        bool(_ID_NAME.search(name))
        or any(h in _STRING_HINTS for h in hinted)
        or (named is not None and (named[2] in _STRING_HINTS or named[1] == "identifier"))
    )

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
) -> tuple[dict, str, ColumnClass]:
    """Proposed schema entry for one column, a comment explaining it, and its class.

    Args:
        name: column name.
        values: the column.
        detector: default `get_detector()`.
        sample: sample size.
        max_prevalence: the keep-guard threshold the proposal must pass.
    Returns:
        (column spec mapping, comment text without values, the column's class).
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
    finding = None
    if ctype in ("string", "int"):
        finding = classify_column(
            name, arr, detector=detector, sample=sample, trace_prevalence=max_prevalence
        )
    cls = classify_class(name, finding, sample_values(arr, sample), ctype)
    spec, comment = _action_for(cls, finding, spec, ctype, max_prevalence)
    if spec.get("type") not in ("date", "timestamp"):
        fmt = None
    if fmt and spec.get("type") in ("date", "timestamp"):
        spec["format"] = fmt
    if nullable:
        spec["nullable"] = True
    order = ("type", "nullable", "format", "pii", "action")
    spec = {k: spec[k] for k in order if k in spec} | {
        k: v for k, v in spec.items() if k not in order
    }
    return spec, comment, cls


def _action_for(
    cls: ColumnClass, finding, spec: dict, ctype: str, max_prevalence: float
) -> tuple[dict, str]:
    """The proposed action for a column class, and the comment saying why (no value)."""
    shown = cls.concept and cls.concept != cls.entity
    label = CLASS_LABEL[cls.klass] + (f" ({cls.concept})" if shown else "")
    why = f"{label}: {cls.reason}" if cls.reason else label
    if cls.klass == DIRECT:
        if cls.concept == "free text":
            return {"type": "string", "action": "scrub"}, why
        if cls.shape == "sci_card":
            out = {"type": ctype, "pii": "CREDIT_CARD", "action": "drop"}
            return out, why + "; the digits are gone: drop (re-export the column as text)"
        if cls.entity in SUGGESTED_ACTIONS and SUGGESTED_ACTIONS[cls.entity]["action"] == "drop":
            return {"type": "string", "pii": cls.entity, "action": "drop"}, why
        out = {"type": "string", "action": "tokenize"}
        if cls.entity:
            out["pii"] = cls.entity
        return out, why
    if cls.klass == QUASI:
        if cls.entity == "DATE_OF_BIRTH" and ctype in ("date", "timestamp"):
            out = {**spec, "pii": "DATE_OF_BIRTH", "action": "generalize", "date_part": "year"}
            return out, why + "; generalized to the year"
        if cls.entity == "ZIP_CODE" and ctype == "string":
            out = {"type": "string", "pii": "ZIP_CODE", "action": "generalize", "keep_prefix": 3}
            return out, why + "; generalized to a 3-character prefix"
        if cls.concept == "age" and ctype in ("int", "float"):
            return {**spec, "action": "generalize", "bucket": 10}, why + "; 10-year buckets"
        return {**spec, "action": "keep"}, why + "; kept (quasi-identifier, see gates below)"
    minority = reportable_entities(finding, max_prevalence) if finding else {}
    minority = {e: p for e, p in minority.items() if e in DIRECT_ENTITIES}
    if minority and ctype == "string":
        found = ", ".join(f"{e} {p:.0%}" for e, p in minority.items())
        return {**spec, "action": "scrub"}, f"other, mixed values with PII: {found}"
    if finding is not None and not cls.reason:
        why = f"other: no identifier in {finding.examined} sampled values or the name"
    elif not cls.reason:
        why = f"other: {ctype} values, no identifier in the name"
    return {**spec, "action": "keep"}, why


def propose_schema(
    table: pa.Table,
    sample: int = DEFAULT_SAMPLE,
    *,
    detector: Detector | None = None,
    max_prevalence: float = DEFAULT_MAX_PREVALENCE,
) -> str:
    """Schema YAML proposed for a table (`privgate scan`), loadable without edits.

    Each column gets an inferred `type`, `nullable`, a date `format` where needed, its class
    (`column_class`: direct identifier, quasi-identifier, other), the `pii:` entity and an
    action: direct identifiers are tokenized (card numbers, CVV, secrets dropped; free text
    scrubbed), quasi-identifiers generalized where a generalization exists or kept, the
    rest kept. Each line's comment says why (entity and prevalence, name token or shape),
    never a value; a commented `gates: k_anonymity` block over the kept and generalized
    quasi-identifiers ends the text.

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
    quasi = []
    for name in table.column_names:
        if not name or name.startswith("_"):
            lines.append(f"  # column {json.dumps(name)} skipped: names may not start with _")
            continue
        spec, comment, cls = suggest_column(
            name,
            table.column(name),
            detector=detector,
            sample=sample,
            max_prevalence=max_prevalence,
        )
        declared += spec["action"] != "drop"
        if cls.klass == QUASI and spec["action"] in ("keep", "generalize"):
            quasi.append(name)
        line = f"  {_yaml_key(name)}: {_flow(spec)}"
        lines.append(line + (f"  # {comment}" if comment else ""))
    if declared == 0:
        lines.append("# every column would be dropped; the schema keeps none (invalid)")
    lines += k_anonymity_block(quasi)
    return "\n".join(lines) + "\n"


def k_anonymity_block(quasi: list[str], k: int = 5) -> list[str]:
    """Commented `gates:` lines for the run config over the kept or generalized
    quasi-identifiers (uncommented, they parse as a `gates:` section)."""
    if not quasi:
        return ["# no quasi-identifier kept or generalized: no k-anonymity gate proposed"]
    names = ", ".join(_yaml_key(q) for q in quasi)
    return [
        "# Quasi-identifiers kept or generalized above: together they can single a person out.",
        "# Add this to the run config to refuse an output where any combination of them is",
        f"# shared by fewer than {k} records:",
        "# gates:",
        f"#   k_anonymity: {{quasi_identifiers: [{names}], k: {k}}}",
    ]


# --------------------------------------------------------------------------- keep-guard
