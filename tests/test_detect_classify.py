"""Tests for transforms.detect.classify: labelled columns, prevalence, sampling, name hints."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from tests.labelled_data import fake_for, labelled_table
from transforms.detect.classify import FREE_TEXT, classify_column, name_hints, sample_values

# --------------------------------------------------------------------------- classify


@pytest.fixture(scope="module")
def table_and_labels():
    return labelled_table()


def test_classify_gets_every_labelled_column_right(det, table_and_labels):
    table, labels = table_and_labels
    got = {
        name: classify_column(name, table.column(name), detector=det).entity
        for name in table.column_names
    }
    assert got == labels


def test_classify_reports_prevalence_and_confidence(det, table_and_labels):
    table, _ = table_and_labels
    email = classify_column("email", table.column("email"), detector=det)
    assert email.prevalence == 1.0 and email.confidence > 0.9 and email.examined <= 1000
    plan = classify_column("plan", table.column("plan"), detector=det)
    assert plan.entity is None and plan.confidence > 0.9
    notes = classify_column("notes", table.column("notes"), detector=det)
    assert notes.entity == FREE_TEXT and notes.entities["PERSON"] > 0.2


def test_classify_cost_is_bounded_by_the_sample(det):
    n = 200_000
    col = pa.array([f"row {i} of plain text value" if i % 3 else None for i in range(n)])
    sample = sample_values(col, 300)
    assert len(sample) == 300 and sample == sample_values(col, 300)  # deterministic
    # spread over the whole column, not its head
    assert max(int(v.split()[1]) for v in sample) > 0.9 * n
    f = classify_column("misc", col, detector=det, sample=300)
    assert f.sampled == 300 and f.examined <= 300


def test_prevalence_threshold_separates_naming_from_tracing(det):
    rng = random.Random(2)
    fake = fake_for(2)
    values = [
        fake.email() if rng.random() < 0.04 else rng.choice(["ok", "n/a", "fine"])
        for _ in range(3000)
    ]
    f = classify_column("remark", values, detector=det)
    assert f.entity is None  # 4% does not make an e-mail column
    assert 0.02 < f.entities["EMAIL_ADDRESS"] < 0.07


NAME_HINTS = [
    ("email", ("EMAIL_ADDRESS",)),
    ("customerEmail", ("EMAIL_ADDRESS",)),
    ("phone_number", ("PHONE_NUMBER",)),
    ("full_name", ("PERSON",)),
    ("company_name", ()),  # the name of a thing, not a person
    ("username", ()),
    ("birth_date", ("DATE_OF_BIRTH",)),
    ("ip_address", ("IP_ADDRESS", "LOCATION")),
    ("order_id", ()),
]


@pytest.mark.parametrize("name, expected", NAME_HINTS)
def test_name_hints(name, expected):
    assert name_hints(name) == expected
