"""The detection evaluation (benchmarks/detect_eval*.py): its split, its labels, its scoring."""

from __future__ import annotations

import itertools
import re

import pytest

from benchmarks.detect_eval_score import column_outcome, span_scores
from benchmarks.detect_eval_tables import CLASSES, CONCEPTS, SHAPES, LabelledColumn, headers
from benchmarks.detect_eval_texts import (
    GOLD_ENTITIES,
    HALVES,
    PERSON_SOURCES,
    TEMPLATES,
    Gold,
    LabelledText,
    entities_in,
    make_texts,
)
from benchmarks.detect_eval_values import TITLES

TITLE_WORDS = frozenset(t.lower() for t in TITLES)


def _spelling(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())  # `First Name` == `FirstName`


@pytest.mark.parametrize("a, b", list(itertools.combinations(HALVES, 2)))
def test_parts_share_no_template_header_or_sentence(a, b):
    assert not set(TEMPLATES[a]) & set(TEMPLATES[b])
    # The fresh part differs from both others even ignoring case and separators (the old
    # pair only ignoring case: `email` / `E-Mail`).
    spell = _spelling if "fresh" in (a, b) else str.lower
    ha = {spell(h) for _, h in headers(a)}
    hb = {spell(h) for _, h in headers(b)}
    assert len(ha) > 50 and not ha & hb
    texts = {h: {t.text for t in make_texts(200, 7, h)} for h in (a, b)}
    assert not texts[a] & texts[b]
    for half in (a, b):
        assert entities_in(half) == set(GOLD_ENTITIES), half
    # Every column's class is a known one, and the tables together hold every class.
    for shape, specs in SHAPES.items():
        classes = {CONCEPTS[spec[0]].klass for spec in specs}
        assert classes <= set(CLASSES), shape
    assert {CONCEPTS[spec[0]].klass for specs in SHAPES.values() for spec in specs} == set(CLASSES)


def test_fresh_names_come_whole_from_one_library():
    """PERSON recall is reported per source: every fresh name is labelled with its library,
    and a mimesis name is `unlisted` exactly when no word of it is in Faker's name lists."""
    from benchmarks.detect_eval_values import in_faker_name_lists

    names = [g for t in make_texts(300, 7, "fresh") for g in t.gold if g.entity == "PERSON"]
    assert {g.source for g in names} == set(PERSON_SOURCES)
    for g in names:
        words = [w for w in re.findall(r"[^\W\d_]{2,}", g.value) if w.lower() not in TITLE_WORDS]
        unlisted = not any(in_faker_name_lists(w) for w in words)
        if g.source.startswith("mimesis"):
            assert (g.source == "mimesis-unlisted") == unlisted, g.value
    assert in_faker_name_lists("John") and not in_faker_name_lists("Zzyzxq")
    # Old parts' names mix libraries within a name: no source.
    assert {g.source for t in make_texts(60, 7, "heldout") for g in t.gold} == {""}


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

    n = max(len(t) for t in TEMPLATES.values())  # every template, so every entity
    results = run(texts=n, rows=20, seed=7, sample=100, baseline_sample=2, repeats=1)
    report = format_report(results)
    fresh, old = report.index("FRESH HELD-OUT part"), report.index("OLD HELD-OUT half")
    assert fresh < old < report.index("TUNING half")
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
        assert len(row.findall(report)) == len(HALVES), e
    for k in CLASSES:
        rows = re.findall(rf"^  {k}\s+\d+\s+\S.*\d+/\d+\s+\d+/\d+", report, re.M)
        assert len(rows) == len(HALVES), k
    assert "throughput: privgate scrub" in report
    # PERSON recall by source, both systems, on the fresh part only.
    by_source = re.findall(r"PERSON recall by source, privgate/Presidio: (.*)", report)
    assert len(by_source) == 1
    for k in ("Faker names", "mimesis names", "mimesis names with no word in Faker's lists"):
        assert re.search(rf"{re.escape(k)} \d\.\d{{3}}/\d\.\d{{3}} \(n=\d+\)", by_source[0]), k
    # Issue 12's figures for both held-out parts, the fresh one (timed) first.
    targets = re.findall(r"^Issue 12 figures on the (.*)$", report, re.M)
    assert [t.split()[0] for t in targets] == ["FRESH", "OLD"]
    assert len(re.findall(r"scrub throughput >= ", report)) == 1


def test_material_does_not_depend_on_the_hash_seed():
    """Same seed, same sentences and tables in every process (Faker's it_IT city list is
    built from a set: its order followed PYTHONHASHSEED until sorted)."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib; from benchmarks.detect_eval_texts import make_texts; "
        "from benchmarks.detect_eval_tables import make_tables; h = hashlib.sha1(); "
        "[h.update(t.text.encode()) for t in make_texts(120, 7, 'fresh')]; "
        "[h.update(repr(c.values).encode()) for c in make_tables(60, 7, 'fresh')['europe']]; "
        "print(h.hexdigest())"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": str(h), "PYTHONPATH": root},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for h in (1, 2)
    }
    assert len(out) == 1
