"""Tests for transforms.detect.classify: labelled columns, prevalence, sampling, name hints."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from tests.labelled_data import fake_for, labelled_table
from transforms.detect.classify import FREE_TEXT, classify_column, name_hints, sample_values
from transforms.detect.column_class import classify_class, name_evidence, name_tokens

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


# --------------------------------------------------------------------------- column classes

NAME_TOKENS = [
    ("CCNumber", ["cc", "number"]),
    ("CVV2", ["cvv"]),
    ("mothers_maiden_nm", ["mothers", "maiden", "nm"]),
    ("native-country", ["native", "country"]),
    ("HTTPStatusCode", ["http", "status", "code"]),
    ("zip5", ["zip"]),
]


@pytest.mark.parametrize("name, expected", NAME_TOKENS)
def test_name_tokens_split_camel_snake_kebab_and_acronyms(name, expected):
    assert name_tokens(name) == expected


NAME_CLASSES = [
    ("CCNumber", "direct", "CREDIT_CARD"),
    ("card_type", "other", None),  # a property of the card, not the card
    ("cvc2", "direct", "CVV"),
    ("mmn", "direct", "PERSON"),
    ("fname", "direct", "PERSON"),
    ("user_name", "direct", "USERNAME"),  # a login, not a person's name
    ("ip_address", "direct", "IP_ADDRESS"),  # an IP, not a street address
    ("billing_addr", "direct", "STREET_ADDRESS"),
    ("insta_handle", "direct", "USERNAME"),
    ("device_id", "direct", None),
    ("account_guid", "direct", None),
    ("native-country", "quasi", "LOCATION"),
    ("Geburtsdatum", "quasi", "DATE_OF_BIRTH"),
    ("Staatsangehoerigkeit", "quasi", "NRP"),
    ("party", "quasi", "NRP"),
    ("phone_type", "other", None),
    ("name_origin", "quasi", "NRP"),
]


@pytest.mark.parametrize("name, klass, entity", NAME_CLASSES)
def test_name_evidence_names_the_class(name, klass, entity):
    got = name_evidence(name)
    assert got is not None and (got[0], got[2]) == (klass, entity)
    assert name_evidence("signup_channel") is None and name_evidence("fare") is None


def test_classify_class_reads_shapes_the_detector_cannot(det):
    rng = random.Random(3)
    sci = [f"{rng.randint(4000, 5599) / 1000:.2f}E+15" for _ in range(300)]
    cls = classify_class("c17", classify_column("c17", sci, detector=det), sci)
    assert (cls.klass, cls.entity, cls.shape) == ("direct", "CREDIT_CARD", "sci_card")
    assert "scientific notation" in cls.reason
    codes = [str(rng.randint(100, 9999)) for _ in range(300)]
    cls = classify_class("sec_cvc", classify_column("sec_cvc", codes, detector=det), codes)
    assert (cls.klass, cls.entity) == ("direct", "CVV")
    # the same digits under a neutral name are not a card code
    assert classify_class("room", classify_column("room", codes, detector=det), codes).klass == (
        "other"
    )


def test_a_low_cardinality_column_is_never_a_direct_identifier(det):
    fake = fake_for(8)
    few = [fake.first_name() for _ in range(8)]
    rng = random.Random(8)
    vals = [rng.choice(few) for _ in range(400)]  # 8 given names as a category
    finding = classify_column("label", vals, detector=det)
    assert finding.entity == "PERSON"  # the values alone read as names
    assert classify_class("label", finding, vals).klass != "direct"
    many = [fake.first_name() + " " + fake.last_name() for _ in range(400)]
    assert classify_class("label", classify_column("label", many, detector=det), many).klass == (
        "direct"
    )


@pytest.mark.parametrize(
    "name, is_id",
    [("FarePaid", False), ("is_valid", False), ("Druid", False), ("customerId", True)]
    + [("RecordID", True), ("order_id", True), ("id", True), ("member-key", True)],
)
def test_only_an_id_token_makes_an_identifier_name(name, is_id):
    got = name_evidence(name)
    assert (got is not None and got[1] == "identifier") == is_id


def _codes(kind: str, rng: random.Random) -> list[str]:
    if kind == "member":  # one letter and six digits, one per person (`S000148`)
        return [f"{rng.choice('ABCDEFGHKLMPRSTW')}{rng.randint(0, 999999):06d}" for _ in range(300)]
    if kind == "cabin":  # deck letter and a short number
        return [f"{rng.choice('ABCDEFG')}{rng.randint(1, 130)}" for _ in range(300)]
    if kind == "ticket":  # prefixed ticket numbers
        return [
            f"{rng.choice(('PC', 'A/5', 'C.A.'))} {rng.randint(1000, 399999)}" for _ in range(300)
        ]
    if kind == "sku":  # product codes repeat across rows
        skus = [f"SKU{rng.randint(10000, 99999)}" for _ in range(40)]
        return [rng.choice(skus) for _ in range(300)]
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind, direct", [("member", True), ("cabin", False), ("ticket", False), ("sku", False)]
)
def test_a_column_of_unique_letter_digit_codes_is_a_record_identifier(det, kind, direct):
    """Under a header that says nothing (`Bioguide`, `Badge`), a column whose values are
    distinct letter+digit codes is a per-record identifier; short, spaced or repeating
    codes (cabins, tickets, SKUs) are not."""
    vals = _codes(kind, random.Random(5))
    cls = classify_class("Badge", classify_column("Badge", vals, detector=det), vals)
    assert (cls.klass == "direct") == direct, (kind, cls)
    if direct:
        assert "unique" in cls.reason and cls.entity is None
