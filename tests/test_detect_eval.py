"""The detection evaluation (benchmarks/detect_eval*.py): its split, its labels, its scoring."""

from __future__ import annotations

import re

import pytest

from benchmarks.detect_eval_score import column_outcome, span_scores
from benchmarks.detect_eval_tables import CLASSES, CONCEPTS, SHAPES, LabelledColumn, headers
from benchmarks.detect_eval_texts import (
    GOLD_ENTITIES,
    HALVES,
    TEMPLATES,
    Gold,
    LabelledText,
    entities_in,
    make_texts,
)


def test_halves_share_no_template_header_or_sentence():
    assert not set(TEMPLATES["tuning"]) & set(TEMPLATES["heldout"])
    tuning = {h.lower() for _, h in headers("tuning")}
    heldout = {h.lower() for _, h in headers("heldout")}
    assert len(tuning) > 50 and not tuning & heldout
    texts = {h: {t.text for t in make_texts(200, 7, h)} for h in HALVES}
    assert not texts["tuning"] & texts["heldout"]
    for half in HALVES:
        assert entities_in(half) == set(GOLD_ENTITIES), half
    # Every column's class is a known one, and the tables together hold every class.
    for shape, specs in SHAPES.items():
        classes = {CONCEPTS[c].klass for c, _, _ in specs}
        assert classes <= set(CLASSES), shape
    assert {CONCEPTS[c].klass for specs in SHAPES.values() for c, _, _ in specs} == set(CLASSES)


def test_material_is_deterministic_per_seed():
    a, b, c = (
        make_texts(40, 7, "heldout"),
        make_texts(40, 7, "heldout"),
        make_texts(40, 8, "heldout"),
    )
    assert a == b
    assert [t.text for t in a] != [t.text for t in c]


@pytest.mark.parametrize("half", HALVES)
def test_gold_labels_are_exact_spans(half):
    data = make_texts(300, 7, half)
    seen = set()
    for item in data:
        spans = sorted(item.gold + item.negatives)
        for prev, cur in zip(spans, spans[1:], strict=False):
            assert prev.end <= cur.start, item.text  # no overlapping labels
        for g in spans:
            assert item.text[g.start : g.end] == g.value
            assert g.value and g.value == g.value.strip()
            # A label never cuts a word: no letter or digit glued on either side.
            assert g.start == 0 or not item.text[g.start - 1].isalnum(), item.text
            assert g.end == len(item.text) or not item.text[g.end].isalnum(), item.text
        seen |= {g.entity for g in item.gold}
    assert seen == set(GOLD_ENTITIES)


def _text(text, gold=(), negatives=()):
    return LabelledText(text, [Gold(*g, text[g[0] : g[1]]) for g in gold], list(negatives), 0)


def test_span_scores_count_type_overlap_and_hidden_characters():
    data = [
        # "Braund, Mr. Owen Harris": a span over the given names only leaks the surname.
        _text("Braund, Mr. Owen Harris paid.", [(0, 23, "PERSON")]),
        # A street address found as LOCATION counts; as PERSON it does not.
        _text("Lives at 12 Elm Street now.", [(9, 22, "STREET_ADDRESS")]),
        _text("Lives at 14 Oak Street now.", [(9, 22, "STREET_ADDRESS")]),
        _text("Ticket PC 17599 paid.", negatives=[Gold(7, 15, "ticket", "PC 17599")]),
    ]
    predicted = [
        [(12, 23, "PERSON")],
        [(9, 22, "LOCATION")],
        [(12, 22, "PERSON")],
        [(7, 15, "US_DRIVER_LICENSE")],
    ]
    s = span_scores(data, predicted)
    assert s["entities"]["PERSON"] == {
        "gold": 1,
        "found": 1,
        "covered": 0,
        "recall": 1.0,
        "coverage": 0.0,
    }
    street = s["entities"]["STREET_ADDRESS"]
    assert (street["gold"], street["found"], street["covered"]) == (2, 1, 1)
    assert s["types"]["PERSON"] == {"predicted": 2, "correct": 1, "precision": 0.5}
    assert s["types"]["LOCATION"]["precision"] == 1.0
    assert s["types"]["US_DRIVER_LICENSE"]["precision"] == 0.0
    assert s["negatives"] == {"total": 1, "hit": 1}
    # A title left visible is not a leak: "Mr." is not part of what must be hidden.
    s2 = span_scores(data[:1], [[(0, 6, "PERSON"), (12, 23, "PERSON")]])
    assert s2["entities"]["PERSON"]["covered"] == 1


def _col(klass, free_text=False):
    return LabelledColumn("t", "c", "x", klass, "what", free_text, [])


@pytest.mark.parametrize(
    "klass, free_text, spec, protects, destroys",
    [
        ("direct", False, {"action": "keep"}, False, False),  # a kept identifier
        ("direct", False, {"action": "tokenize"}, True, True),
        ("quasi", False, {"action": "generalize"}, True, False),  # zip prefix: still usable
        ("quasi", False, {"action": "tokenize", "pii": "LOCATION"}, True, True),
        ("other", False, {"action": "scrub"}, True, True),  # ticket numbers scrubbed
        ("other", True, {"action": "scrub"}, True, False),  # free text: scrub is right
        ("quasi", False, None, True, True),  # not in the proposal: unknown_columns: drop
    ],
)
def test_column_outcome(klass, free_text, spec, protects, destroys):
    o = column_outcome(_col(klass, free_text), spec, None)
    assert (o["privgate_protects"], o["privgate_destroys"]) == (protects, destroys)
    b = column_outcome(_col(klass, free_text), spec, "LOCATION")
    assert b["baseline_protects"] and b["baseline_destroys"]


def test_report_has_every_entity_both_systems_and_both_halves():
    from benchmarks.detect_eval import format_report, run

    n = len(TEMPLATES["heldout"])  # every template, so every entity, once per half
    results = run(texts=n, rows=20, seed=7, sample=100, baseline_sample=2, repeats=1)
    report = format_report(results)
    heldout, tuning = report.index("HELD-OUT half"), report.index("TUNING half")
    assert heldout < tuning
    num = r"\s+(\d\.\d{3}|-)"
    for half in HALVES:
        scrub = results[half]["scrub"]
        for system in ("privgate", "presidio"):
            ents = scrub[system]["entities"]
            assert all(ents[e]["gold"] > 0 for e in GOLD_ENTITIES), (half, system)
            assert all(0 <= ents[e]["recall"] <= 1 for e in GOLD_ENTITIES)
        assert scrub["scrub_mismatches"] == 0
        summary = results[half]["scan"]["summary"]
        assert all(summary[k]["columns"] > 0 for k in CLASSES)
    for e in GOLD_ENTITIES:
        # entity, gold count, privgate R cov P n | Presidio R cov P n: both sides, both halves
        row = re.compile(rf"^  {e}\s+\d+ \|{num}{num}{num}\s+\d+ \|{num}{num}{num}\s+\d+ \|", re.M)
        assert len(row.findall(report)) == 2, e
    for k in CLASSES:
        assert len(re.findall(rf"^  {k}\s+\d+\s+\S.*\d+/\d+\s+\d+/\d+", report, re.M)) == 2, k
    assert "throughput: privgate scrub" in report and "Issue 12 figures" in report
