"""Spans and how overlapping readings of one text are settled: the highest-scoring reading
wins (`resolve_overlaps`), two readings of one entity hide their union (`widen_same_entity`),
and stock NER findings another reading cuts or covers stay reported (`keep_ner_findings`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from transforms.detect.text_recognizers import common_words, name_gazetteer


class Span(NamedTuple):
    """A detected PII span: text[start:end] is an `entity` with confidence `score`."""

    start: int
    end: int
    entity: str
    score: float


# NER entities a privgate rule may also claim (name forms, gazetteer names, labelled
# postcodes): Presidio's own finding of one of these is the recall floor.
NER_FLOOR = frozenset({"PERSON", "NRP", "ORGANIZATION", "LOCATION"})


def _covers(a: Span, b: Span) -> bool:
    return a.start <= b.start and b.end <= a.end


def keep_ner_findings(text: str, kept: list[Span], ner: list[Span], threshold: float) -> list[Span]:
    """Resolved spans plus what they took from stock NER findings of another reading.

    A privgate rule may outscore spaCy's fixed 0.85 over the same words (an organization
    whose words are gazetteer names relabelled PERSON, `Berg, French` read as `Last,
    First`), but Presidio's finding is the recall floor: a finding covered by a span of
    another NER entity stays reported with its own entity, nested (scrub replaces the
    covering span once); one the other reading cuts keeps its words outside it as its own
    entity (`Daugherty` of a place `Quinn Daugherty` cut by `Cisneros, Quinn`), and so does
    one cut by a span of its own entity or a format span (`Jeffrey` of `Jeffrey Hanson` cut
    by `Hanson, German` read as `Last, First`). A finding such a span covers is merged into
    it, and findings kept at the threshold (digit-heavy) lose every overlap, as before.

    Args:
        text: the text.
        kept: `resolve_overlaps` output.
        ner: the text's NER findings (after the score threshold and allow list).
        threshold: the detection threshold.
    Returns:
        Sorted spans: disjoint, except for findings nested in the span that covers them.
    """
    extra = []
    for n in ner:
        if n.entity not in NER_FLOOR or n.score <= threshold or n in kept:
            continue
        over = [k for k in kept if k.start < n.end and n.start < k.end]
        if not over:
            continue
        covering = [k for k in over if _covers(k, n)]
        if covering:
            # inside a span of its own entity or a format span: merged; inside another
            # reading of the same words (a name, group, firm or place): kept, nested
            if not any(k.entity == n.entity or k.entity not in NER_FLOOR for k in covering):
                extra.append(n)
            continue
        if any(k.entity not in NER_FLOOR for k in over):
            continue  # cut by a format span (street address, user name): merged into it
        # cut by other readings (`Cisneros, Quinn` in the place `Quinn Daugherty`) or by its
        # own entity (`Hanson, German` in `Jeffrey Hanson, German`): its words outside them
        # stay its own finding (a name's only where they may be part of the name)
        same = any(k.entity == n.entity for k in over)
        pieces = words_outside(text, n, over)
        if same and n.entity == "PERSON":
            pieces = [p for p in pieces if _may_be_name(text, p.start, p.end)]
        extra.extend(pieces)
    return sorted(kept + extra) if extra else kept


def words_outside(text: str, s: Span, others: list[Span]) -> list[Span]:
    """The words of `s` outside `others`, each a span of `s`'s entity and score."""
    pieces, pos = [], s.start
    for o in sorted(others):
        pieces.extend(_words_between(text, pos, o.start, s))
        pos = max(pos, o.end)
    pieces.extend(_words_between(text, pos, s.end, s))
    return pieces


def _words_between(text: str, start: int, end: int, finding: Span) -> list[Span]:
    """`finding`'s entity over text[start:end] trimmed to its letters and digits, if any."""
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return [finding._replace(start=start, end=end)] if end > start else []


def _may_be_name(text: str, start: int, end: int) -> bool:
    """Whether text[start:end], beside a name span, may be part of the name: a piece of a
    word the span cuts (`ł` of `Paweł`), or words each an initial or a known name that is
    not a common word (`Jimenez`, `B`, `van`; not `Applicant`, `and`)."""
    if start >= end:
        return False
    glued_left = start > 0 and text[start - 1].isalnum() and text[start].isalnum()
    glued_right = end < len(text) and text[end].isalnum() and text[end - 1].isalnum()
    if glued_left or glued_right:
        return True
    words = re.findall(r"[^\W\d_]+", text[start:end])
    gaz, common = name_gazetteer(), common_words()
    return bool(words) and all(
        (len(w) == 1 and w.isupper()) or (w.lower() in gaz and w.lower() not in common)
        for w in words
    )


def widen_same_entity(text: str, kept: list[Span], spans: Iterable[Span]) -> list[Span]:
    """`kept` with each span widened over the spans of its own entity that lost to it only
    (`Mark Andres Jimenez` read by a name rule, `Mark Andres` by spaCy): two readings of one
    entity that disagree on its edges hide the union, so no part of it stays visible (a
    name's edge only where it may be part of the name: not `Applicant` of `Applicant Smith`).

    Args:
        text: the text.
        kept: `resolve_overlaps(spans)`.
        spans: the candidates it was resolved from.
    Returns:
        Sorted disjoint spans.
    """
    out = list(kept)
    for s in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start, s.entity)):
        over = [i for i, k in enumerate(out) if s.start < k.end and k.start < s.end]
        if len(over) != 1:
            continue
        k = out[over[0]]
        if k.entity != s.entity or (k.start <= s.start and s.end <= k.end):
            continue
        lo, hi = min(k.start, s.start), max(k.end, s.end)
        if k.entity == "PERSON":
            lo = lo if lo == k.start or _may_be_name(text, lo, k.start) else k.start
            hi = hi if hi == k.end or _may_be_name(text, k.end, hi) else k.end
        wide = k._replace(start=lo, end=hi)
        others = (o for j, o in enumerate(out) if j != over[0])
        if all(wide.end <= o.start or wide.start >= o.end for o in others):
            out[over[0]] = wide
    return sorted(out)


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
