"""Tests for transforms.detect.guard: kept PII columns flagged, declared `pii:` accepted."""

from __future__ import annotations

import random

import pyarrow as pa

from tests.labelled_data import fake_for
from transforms.detect.guard import guard_findings, guard_message

# --------------------------------------------------------------------------- keep-guard


def _guard_table() -> pa.Table:
    fake = fake_for(5)
    rng = random.Random(5)
    n = 1200
    return pa.table(
        {
            "plan": [rng.choice(["free", "basic", "pro"]) for _ in range(n)],
            "comments": [
                f"call {fake.phone_number()}"
                if rng.random() < 0.1
                else rng.choice(["ok", "fine", "late delivery", "n/a"])
                for _ in range(n)
            ],
            "company": [fake.company() for _ in range(n)],
            "full_name": [fake.name() for _ in range(n)],
            "notes": [
                f"{fake.name()} asked about the bill."
                if rng.random() < 0.3
                else fake.sentence(nb_words=10)
                for _ in range(n)
            ],
        }
    )


def test_guard_flags_kept_pii_columns_only(det):
    table = _guard_table()
    columns = [
        ("plan", "keep", "string"),
        ("comments", "keep", "string"),
        ("company", "keep", "string"),
        ("full_name", "tokenize", "string"),
        ("notes", "keep", "string"),
        ("missing", "keep", "string"),
    ]
    findings = guard_findings(table, columns, detector=det)
    flagged = {(c, e) for c, e, _ in findings}
    assert ("comments", "PHONE_NUMBER") in flagged and ("notes", "PERSON") in flagged
    assert not {c for c, _ in flagged} & {"plan", "company", "full_name"}
    share = dict(((c, e), p) for c, e, p in findings)[("comments", "PHONE_NUMBER")]
    assert 0.06 < share < 0.14
    message = guard_message(findings)
    assert "comments" in message and "PHONE_NUMBER" in message
    values = table.column("comments").to_pylist() + table.column("notes").to_pylist()
    assert not any(len(v) > 6 and v in message for v in values)


def test_guard_accepts_declared_pii_and_thresholds(det):
    table = _guard_table()
    cols = {"comments": table.column("comments")}
    assert (
        guard_findings(cols, [("comments", "keep", "string", "PHONE_NUMBER")], detector=det) == []
    )
    assert (
        guard_findings(cols, [("comments", "keep", "string")], max_prevalence=0.5, detector=det)
        == []
    )
