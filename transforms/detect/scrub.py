"""Scrub: replace PII spans inside free-text cells (`action: scrub`).

Pure core over pyarrow arrays (no Beam here); never logs or raises with a record's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pyarrow as pa

from schemas.detection import DEFAULT_SCORE_THRESHOLD, SCRUB_OPERATORS
from transforms.detect.engine import Span, _as_detector, _as_string_array

PSEUDONYM_DOMAIN = "scrub"
PSEUDONYM_HEX = 6  # `<PERSON_7f3a9c>`: 24 bits, enough to tell names apart in a text, not a key


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
    """Rewrite `text` with each span replaced by its operator's output.

    A span inside another one (a finding the detector keeps beside a covering span of
    another entity) is hidden by the covering span: the outermost span is replaced, and of
    spans over the same words the higher-scored one names the replacement.

    Args:
        text: the cell.
        spans: spans that are disjoint or nested (`Detector.detect` output).
        operator: default operator.
        operators: per-entity overrides.
        pseudonyms: span text -> hex, for tokenize.
    Returns:
        The rewritten text.
    """
    operators = operators or {}
    parts, pos = [], 0
    for s in sorted(spans, key=lambda s: (s.start, -s.end, -s.score, s.entity)):
        if s.start < pos:
            continue  # inside the span just replaced
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
