"""Column classification: what a string column holds, from a deterministic sample of its values.

The sample's size, not the row count, bounds the cost (the core of `privgate scan`, of the
keep-guard). A finding carries shares and confidences, never a value.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.detection import DEFAULT_MAX_PREVALENCE, DEFAULT_SAMPLE
from transforms.detect.engine import (
    Detector,
    Span,
    _as_string_array,
    _mask,
    get_detector,
    resolve_overlaps,
)

FREE_TEXT = "FREE_TEXT"

# DLP-style hotwords: column-name tokens -> the entity they announce.
HOTWORDS: dict[str, str] = {
    "email": "EMAIL_ADDRESS",
    "e-mail": "EMAIL_ADDRESS",
    "mail": "EMAIL_ADDRESS",
    "emailaddress": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "telephone": "PHONE_NUMBER",
    "tel": "PHONE_NUMBER",
    "mobile": "PHONE_NUMBER",
    "cell": "PHONE_NUMBER",
    "fax": "PHONE_NUMBER",
    "msisdn": "PHONE_NUMBER",
    "phonenumber": "PHONE_NUMBER",
    "ssn": "US_SSN",
    "social": "US_SSN",
    "sin": "US_SSN",
    "name": "PERSON",
    "fullname": "PERSON",
    "firstname": "PERSON",
    "lastname": "PERSON",
    "surname": "PERSON",
    "forename": "PERSON",
    "givenname": "PERSON",
    "patient": "PERSON",
    "card": "CREDIT_CARD",
    "cc": "CREDIT_CARD",
    "creditcard": "CREDIT_CARD",
    "pan": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "ip": "IP_ADDRESS",
    "ipaddress": "IP_ADDRESS",
    "ipv4": "IP_ADDRESS",
    "ipv6": "IP_ADDRESS",
    "address": "LOCATION",
    "addr": "LOCATION",
    "street": "LOCATION",
    "city": "LOCATION",
    "dob": "DATE_OF_BIRTH",
    "birth": "DATE_OF_BIRTH",
    "birthdate": "DATE_OF_BIRTH",
    "birthday": "DATE_OF_BIRTH",
    "bday": "DATE_OF_BIRTH",
    "zip": "ZIP_CODE",
    "zipcode": "ZIP_CODE",
    "postal": "ZIP_CODE",
    "postcode": "ZIP_CODE",
    "password": "PASSWORD",
    "passwd": "PASSWORD",
    "pwd": "PASSWORD",
    "passcode": "PASSWORD",
    "secret": "SECRET",
    "apikey": "SECRET",
    "api_key": "SECRET",
    "privatekey": "SECRET",
    "accesstoken": "SECRET",
    "authtoken": "SECRET",
    "account": "US_BANK_NUMBER",
    "acct": "US_BANK_NUMBER",
    "routing": "US_BANK_NUMBER",
    "license": "US_DRIVER_LICENSE",
    "licence": "US_DRIVER_LICENSE",
    "passport": "US_PASSPORT",
    "itin": "US_ITIN",
    "nhs": "UK_NHS",
    "mac": "MAC_ADDRESS",
    "url": "URL",
    "website": "URL",
    "homepage": "URL",
}
# Header words naming a thing that is not a person (`company_name`, `plan`, `host`): a PERSON
# reading of such a column is wrong, and in `column_class` they make it a property.
THING_WORDS = frozenset(
    {
        "app",
        "brand",
        "business",
        "category",
        "column",
        "company",
        "domain",
        "field",
        "file",
        "host",
        "hostname",
        "item",
        "org",
        "organization",
        "plan",
        "product",
        "project",
        "service",
        "shop",
        "store",
        "table",
        "team",
    }
)
_NOT_PERSON_NAME = THING_WORDS | {"display", "filename", "screen", "user"}
# Entities named from the column name and the values' shape (no Presidio recognizer).
SHAPE_ENTITIES = {
    "DATE_OF_BIRTH": re.compile(
        r"^\s*(?:\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{1,2}\s+[A-Za-z]{3,9}\.?,?\s+\d{2,4}"
        r"|[A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{2,4})(?:[ T]\d{1,2}:\d{2}.*)?\s*$"
    ),
    "ZIP_CODE": re.compile(r"^\s*(?:\d{5}(?:-\d{4})?|[A-Za-z0-9]{2,4} ?[A-Za-z0-9]{3})\s*$"),
    "PASSWORD": re.compile(r"^\S{4,}$"),
    "SECRET": re.compile(r"^\S{8,}$"),
}
# Detected but not personal data on their own: never name a column after them.
NOT_COLUMN_PII = frozenset({"DATE_TIME", "UUID"})
NOISY_NER = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION"})
# Ties between entities at equal prevalence: the more specific (validated) one wins.
_SPECIFICITY = {
    "EMAIL_ADDRESS": 9,
    "CREDIT_CARD": 9,
    "IBAN_CODE": 9,
    "CRYPTO": 9,
    "US_SSN": 8,
    "IP_ADDRESS": 8,
    "MAC_ADDRESS": 8,
    "URL": 7,
    "PHONE_NUMBER": 6,
    "PERSON": 5,
    "LOCATION": 4,
    "NRP": 3,
}

MIN_PREVALENCE = 0.5  # share of values to name a column after an entity
HINT_PREVALENCE = 0.2  # ... when the column name announces that entity
FREE_TEXT_SHARE = 0.3  # share of prose values that makes a column free text
WHOLE_VALUE_COVERAGE = 0.8  # a structured value "is" an entity when spans cover this much
STRONG_SCORE = 0.6  # ... or when a validated / context-backed span is inside it
_Z_SETTLE = 3.0  # sequential sampling stops once every decision is this sure
_SCHEDULE = (64, 128, 256, 512)


@dataclass(frozen=True)
class ColumnFinding:
    """What a column holds.

    Attributes:
        entity: the entity the column's values are, FREE_TEXT, or None.
        prevalence: share of examined values that are (FREE_TEXT: contain) that entity /
            any PII; for None, the highest entity share seen.
        confidence: Wilson 95% lower bound of the decision's share (for None: one minus
            the upper bound of the highest entity share).
        entities: entity -> share of examined values (whole-value shares for structured
            columns, any-span shares for FREE_TEXT), only entities seen.
        free_text_score: share of values that read as prose.
        examined: values examined (sequential sampling stops early once decided).
        sampled: values in the deterministic sample.
        hinted: entities the column name announces.
    """

    entity: str | None
    prevalence: float
    confidence: float
    entities: dict = field(default_factory=dict)
    free_text_score: float = 0.0
    examined: int = 0
    sampled: int = 0
    hinted: tuple = ()


def name_hints(name: str) -> tuple[str, ...]:
    """Entities a column name announces (DLP-style hotwords), e.g. `customer_email`.

    Args:
        name: column name.
    Returns:
        Hinted entities in order of appearance; two-token compounds first
        (`email_address` -> EMAIL_ADDRESS, LOCATION: the values decide).
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]
    found = []
    joined = "".join(tokens)
    for i in range(len(tokens)):
        for j in (2, 1):
            tok = "".join(tokens[i : i + j])
            if j == 2 and i + 1 >= len(tokens):
                continue
            e = HOTWORDS.get(tok)
            if e and e not in found:
                found.append(e)
    if joined in HOTWORDS and HOTWORDS[joined] not in found:
        found.append(HOTWORDS[joined])
    if "PERSON" in found and _NOT_PERSON_NAME & set(tokens):
        found.remove("PERSON")  # company_name, file_name, ...: "name" of a thing
    return tuple(found)


def _van_der_corput(m: int) -> np.ndarray:
    """A permutation of range(m) that visits the range evenly at every prefix length."""
    bits = max(1, int(math.ceil(math.log2(max(m, 2)))))
    idx = np.arange(1 << bits, dtype=np.int64)
    rev = np.zeros_like(idx)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return rev[rev < m]


def sample_values(values, n: int = DEFAULT_SAMPLE) -> list[str]:
    """A deterministic sample of up to `n` non-blank values, in a spread-out visit order.

    Evenly spaced positions over the column (no randomness, so a rerun sees the same
    values), reordered so that every prefix of the sample is spread over the whole column
    (sequential classification can stop after a prefix). Reads O(n) values of a long
    column, not all of them (a mostly-null column is scanned once, vectorized).

    Args:
        values: pyarrow array / chunked array, or a list.
        n: sample size.
    Returns:
        Sampled values as str.
    """
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        values = pa.array(list(values))
    total = len(values)
    if total == 0 or n <= 0:
        return []
    picked: list[str] = []
    # Try a spaced grid 2x the sample; fall back to every valid value for sparse columns.
    for width in (min(total, 2 * n), total):
        pos = np.unique(np.linspace(0, total - 1, width).astype(np.int64))
        sub = _as_string_array(values.take(pa.array(pos)))
        keep = _mask(pc.match_substring_regex(sub, r"\S"))
        picked = [v for v, k in zip(sub.to_pylist(), keep, strict=True) if k]
        if len(picked) >= n or width == total:
            break
    if len(picked) > n:
        picked = [picked[i] for i in np.linspace(0, len(picked) - 1, n).astype(np.int64)]
    order = _van_der_corput(len(picked))
    return [picked[i] for i in order]


_PUNCT = ".,;:!?()[]{}\"'"


def is_prose(value: str) -> bool:
    """True if a value reads as free text: 4+ words, at least 30% lower-case words.

    Names, addresses, titles and codes are mostly capitalized or non-words; prose is not.

    Args:
        value: one cell.
    Returns:
        bool
    """
    toks = value.split()
    if len(toks) < 4:
        return False
    lower = 0
    for t in toks:
        t = t.strip(_PUNCT)
        if t.isalpha() and t.islower():
            lower += 1
    return lower >= 0.3 * len(toks)


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _undecided(k: int, n: int, thresholds: Iterable[float]) -> bool:
    lo, hi = _wilson(k, n, _Z_SETTLE)
    return any(lo < t <= hi for t in thresholds)


def _value_entities(value: str, spans: list[Span], structured: bool) -> set[str]:
    """Entities a value counts for: whole-value (structured) or any span (free text)."""
    if not spans:
        return set()
    if not structured:
        return {s.entity for s in spans}
    nonspace = sum(1 for c in value if not c.isspace()) or 1
    out = set()
    by_ent: dict[str, int] = {}
    for s in spans:
        covered = sum(1 for c in value[s.start : s.end] if not c.isspace())
        by_ent[s.entity] = by_ent.get(s.entity, 0) + covered
        if s.score >= STRONG_SCORE and s.entity not in NOISY_NER:
            out.add(s.entity)
    out |= {e for e, c in by_ent.items() if c >= WHOLE_VALUE_COVERAGE * nonspace}
    return out


def classify_column(
    name: str,
    values,
    *,
    detector: Detector | None = None,
    sample: int = DEFAULT_SAMPLE,
    min_prevalence: float = MIN_PREVALENCE,
    trace_prevalence: float = DEFAULT_MAX_PREVALENCE,
) -> ColumnFinding:
    """Classify a string column from a deterministic sample of its values.

    Pattern recognizers (checksums included) and NER run over the sample; the column name
    supplies hotwords (context for the recognizers of the entities it announces, and a
    lower prevalence bar); a prose score tells free text from structured values. Values
    are examined in growing prefixes of the sample (64, 128, 256, 512, all) and
    examination stops once the decision is settled at a 3-sigma Wilson bound: the winning
    entity's share clears its bar, or, when none does, every share is settled against
    `trace_prevalence`. Cost is bounded by the sample size, not the row count.

    Args:
        name: column name.
        values: the column (pyarrow array or list of str).
        detector: default `get_detector()`.
        sample: sample size (non-blank values).
        min_prevalence: share of values needed to name the column after an entity.
        trace_prevalence: smallest share that must be measured reliably (the guard's
            max_prevalence).
    Returns:
        A ColumnFinding (never carries a value).
    """
    det = detector or get_detector()
    vals = sample_values(values, sample)
    hinted = name_hints(name)
    if not vals:
        return ColumnFinding(None, 0.0, 0.0, {}, 0.0, 0, 0, hinted)
    prose = sum(map(is_prose, vals))
    free_share = prose / len(vals)
    structured = free_share < FREE_TEXT_SHARE
    wanted = [e for e in det.supported_entities if e not in NOT_COLUMN_PII]
    context_entities = [e for e in hinted if e in det.supported_entities]

    counts: Counter = Counter()
    any_pii = 0
    cache: dict[str, set[str]] = {}
    examined = 0
    for stop in (*_SCHEDULE, len(vals)):
        stop = min(stop, len(vals))
        if stop <= examined:
            continue
        chunk = vals[examined:stop]
        new = sorted({v for v in chunk if v not in cache})
        if new:
            for v, sp in zip(
                new, _detect_values(det, new, wanted, context_entities, structured), strict=True
            ):
                cache[v] = _value_entities(v, sp, structured)
        for v in chunk:
            ents = cache[v]
            counts.update(ents)
            any_pii += bool(ents)
        examined = stop
        if examined < len(vals) and _settled(
            counts, any_pii, examined, structured, hinted, min_prevalence, trace_prevalence
        ):
            break

    shares = {e: k / examined for e, k in counts.most_common()}
    if not structured:
        return ColumnFinding(
            FREE_TEXT,
            any_pii / examined,
            round(_wilson(prose, len(vals), 1.96)[0], 4),
            shares,
            free_share,
            examined,
            len(vals),
            hinted,
        )
    candidates = [e for e, p in shares.items() if p >= _bar(e, hinted, min_prevalence)]
    if candidates:
        entity = max(candidates, key=lambda e: (shares[e], e in hinted, _SPECIFICITY.get(e, 2)))
        lo = _wilson(counts[entity], examined, 1.96)[0]
        return ColumnFinding(
            entity, shares[entity], round(lo, 4), shares, free_share, examined, len(vals), hinted
        )
    for entity in hinted:
        rx = SHAPE_ENTITIES.get(entity)
        if rx is None:
            continue
        k = sum(bool(rx.match(v)) for v in vals[:examined])
        if k >= 0.8 * examined:
            shares = {**shares, entity: k / examined}
            lo = _wilson(k, examined, 1.96)[0]
            return ColumnFinding(
                entity, k / examined, round(lo, 4), shares, free_share, examined, len(vals), hinted
            )
    top = max(shares.values(), default=0.0)
    hi = _wilson(round(top * examined), examined, 1.96)[1]
    return ColumnFinding(
        None, top, round(1 - hi, 4), shares, free_share, examined, len(vals), hinted
    )


def _detect_values(
    det: Detector, values: list[str], wanted, context_entities, structured: bool
) -> list[list[Span]]:
    """Spans per value; for structured values NER only runs where no pattern entity
    already covers the value (NER is the expensive part, and names are not e-mails)."""
    if not structured:
        return det.detect(values, entities=wanted, context_entities=context_entities)
    spans = det.detect(
        values, entities=wanted, context_entities=context_entities, use_ner=False, resolve=False
    )
    ner_wanted = [e for e in wanted if e in det.ner_entities]
    todo = [
        i
        for i, (v, sp) in enumerate(zip(values, spans, strict=True))
        if ner_wanted and _has_word(v) and not _value_entities(v, resolve_overlaps(sp), True)
    ]
    if todo:
        extra = det.detect(
            [values[i] for i in todo],
            entities=ner_wanted,
            context_entities=context_entities,
            resolve=False,
        )
        for i, sp in zip(todo, extra, strict=True):
            spans[i] = spans[i] + sp
    return [resolve_overlaps(sp) for sp in spans]


_WORD = re.compile(r"[^\W\d_]{2,}(?:[-'\u2019.][^\W\d_]+)*\.?")


def _has_word(value: str) -> bool:
    """A structured value with a word in it (GUIDs, SKUs and codes have none): NER can
    only find a name or place where there are words."""
    return any(_WORD.fullmatch(t.strip(_PUNCT)) for t in value.split())


def reportable_entities(finding: ColumnFinding, max_prevalence: float) -> dict[str, float]:
    """Entities of a finding the keep-guard (and scan) report above `max_prevalence`.

    Free text: every entity found in cells. Structured columns: pattern entities (regex
    and checksum evidence holds per value) and the column's own entity; NER entities
    (PERSON, LOCATION, NRP) on short isolated values are too noisy (company names read
    as people) to count below the column-naming bar.

    Args:
        finding: a `classify_column` result.
        max_prevalence: the threshold.
    Returns:
        entity -> share, for shares above the threshold.
    """
    out = {}
    for e, p in finding.entities.items():
        if p <= max_prevalence or e in NOT_COLUMN_PII:
            continue
        if finding.entity != FREE_TEXT and e in NOISY_NER and e != finding.entity:
            continue
        out[e] = p
    return out


def _settled(
    counts: Counter, any_pii: int, n: int, structured: bool, hinted, min_prev: float, trace: float
) -> bool:
    if not structured:
        lo, hi = _wilson(any_pii, n, _Z_SETTLE)
        return lo > trace or hi < trace
    bars = {e: _bar(e, hinted, min_prev) for e in counts}
    sure_in = [e for e, k in counts.items() if _wilson(k, n, _Z_SETTLE)[0] >= bars[e]]
    if sure_in:
        # The column is one of these; the others only need to be settled against the bar.
        return not any(_undecided(k, n, (bars[e],)) for e, k in counts.items())
    if any(
        _undecided(k, n, (bars[e],) if e in NOISY_NER else (bars[e], trace))
        for e, k in counts.items()
    ):
        return False
    return _wilson(0, n, _Z_SETTLE)[1] < trace


def _bar(entity: str, hinted: Sequence[str], min_prevalence: float) -> float:
    return min(HINT_PREVALENCE, min_prevalence) if entity in hinted else min_prevalence
