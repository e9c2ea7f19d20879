"""Tests for transforms.detect.guard: kept PII columns flagged, declared `pii:` accepted."""

from __future__ import annotations

import random

import pyarrow as pa

from tests.labelled_data import fake_for
from transforms.detect.guard import (
    guard_findings,
    guard_message,
    guard_review,
    guard_warning_message,
)

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


# --------------------------------------------------------------------------- quasi-identifiers


def census_table(rows: int = 1000, seed: int = 9) -> pa.Table:
    """A census extract: a country column that reads as LOCATION, categories, an e-mail."""
    rng = random.Random(seed)
    fake = fake_for(seed)
    countries = ["Mexico", "Philippines", "Germany", "Canada", "India", "England", "?"]
    return pa.table(
        {
            "workclass": [rng.choice(["Private", "State-gov", "?"]) for _ in range(rows)],
            "race": [rng.choice(["White", "Black", "Asian-Pac-Islander"]) for _ in range(rows)],
            "native-country": [
                "United-States" if rng.random() < 0.9 else rng.choice(countries)
                for _ in range(rows)
            ],
            "contact": [fake.email() for _ in range(rows)],
        }
    )


def test_guard_fails_only_on_direct_identifiers_and_warns_on_kept_quasi_identifiers(det):
    table = census_table()
    keep = [(n, "keep", "string") for n in ("workclass", "race", "native-country")]
    findings, warnings = guard_review(table, keep, detector=det)
    assert findings == [] and guard_findings(table, keep, detector=det) == []
    warned = {w["column"]: w for w in warnings}
    assert "native-country" in warned and "race" in warned and "workclass" not in warned
    assert warned["native-country"]["entity"] == "LOCATION"
    assert warned["native-country"]["prevalence"] > 0.5
    assert "quasi-identifier" in warned["native-country"]["reason"]
    text = guard_warning_message(warnings)
    assert "native-country" in text and "United-States" not in text
    # a kept e-mail column still fails
    findings, _ = guard_review(table, [*keep, ("contact", "keep", "string")], detector=det)
    assert [(c, e) for c, e, _ in findings] == [("contact", "EMAIL_ADDRESS")]


def test_guard_fails_on_identifier_shapes_without_an_entity(det):
    rng = random.Random(4)
    cols = {
        "CVV2": [str(rng.randint(100, 999)) for _ in range(500)],
        "CardNo": [f"{rng.randint(4000, 5599) / 1000:.2f}E+15" for _ in range(500)],
    }
    keep = [(n, "keep", "string") for n in cols]
    findings = guard_findings(cols, keep, detector=det)
    assert [(c, e) for c, e, _ in findings] == [("CVV2", "CVV"), ("CardNo", "CREDIT_CARD")]
    assert guard_findings(cols, [("CVV2", "keep", "string", "CVV")], detector=det) == []
