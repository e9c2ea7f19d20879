"""Tests for transforms.detect.propose: type inference, proposed schemas that load."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
import yaml

from schemas import columns as schema_model
from tests.labelled_data import fake_for, labelled_table
from transforms.detect.propose import infer_type, propose_schema

INFER = [
    (["1", "22", "-3"], "age", ("int", None)),
    (["01234", "12345"], "code", ("string", None)),  # leading zero: an identifier
    (["12345", "54321"], "zip", ("string", None)),  # zip-like name
    (["1.5", "2"], "score", ("float", None)),
    (["true", "False", "yes"], "active", ("bool", None)),
    (["2024-01-31", "2023-12-01"], "day", ("date", None)),
    (["01/31/2024", "12/01/2023"], "day", ("date", "%m/%d/%Y")),
    (["31/01/2024", "01/12/2023"], "day", ("date", "%d/%m/%Y")),
    (["2024-01-31T10:00:00Z", "2024-02-01T11:30:00Z"], "at", ("timestamp", None)),
    (["abc", "12"], "mixed", ("string", None)),
]


@pytest.mark.parametrize("values, name, expected", INFER)
def test_infer_type(values, name, expected):
    assert infer_type(name, pa.array(values)) == expected


# --------------------------------------------------------------------------- scan


def _scan_table(with_notes: bool) -> pa.Table:
    table, _ = labelled_table(rows=600, seed=21)
    rng = random.Random(21)
    cols = {n: table.column(n) for n in table.column_names if n != "notes" or with_notes}
    cols["age"] = pa.array([str(rng.randint(18, 90)) for _ in range(600)])
    cols["signup_at"] = pa.array(
        [f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T10:00:00Z" for _ in range(600)]
    )
    return pa.table(cols)


def test_propose_schema_loads_as_a_valid_schema(det):
    table = _scan_table(with_notes=False)
    text = propose_schema(table, detector=det)
    schema = schema_model.parse_schema(yaml.safe_load(text), "<scan>")
    spec = {c.name: c for c in schema.columns}
    assert (spec["email"].action, spec["email"].pii) == ("tokenize", "EMAIL_ADDRESS")
    assert (spec["phone"].action, spec["ssn"].pii) == ("tokenize", "US_SSN")
    assert spec["full_name"].pii == "PERSON" and spec["client_ip"].action == "tokenize"
    assert spec["card_number"].action == "drop" and spec["password"].action == "drop"
    assert (spec["birth_date"].type, spec["birth_date"].format) == ("date", "%m/%d/%Y")
    assert spec["birth_date"].params == {"date_part": "year"}
    assert spec["zip"].params == {"keep_prefix": 3}
    assert spec["age"].type == "int" and spec["age"].params == {"bucket": 10}
    assert spec["signup_at"].type == "timestamp" and spec["signup_at"].action == "keep"
    assert spec["plan"].action == "keep" and spec["amount"].type == "float"
    assert spec["customer_id"].action == "tokenize" and spec["customer_id"].pii is None
    assert spec["contact"].nullable and not spec["email"].nullable
    assert "prevalence 100%" in text
    # no sampled value is ever printed
    for name in ("email", "phone", "ssn", "full_name"):
        assert not any(v in text for v in table.column(name).to_pylist()[:50])


def test_propose_schema_scrubs_free_text(det):
    text = propose_schema(_scan_table(with_notes=True), detector=det)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("notes:"))
    assert "action: scrub" in line and "nullable: true" in line and "free text" in line
    data = yaml.safe_load(text)
    assert data["columns"]["notes"] == {"type": "string", "nullable": True, "action": "scrub"}
    schema_model.parse_schema(data, "<scan>")


# --------------------------------------------------------------------------- column classes

DESTROYING = ("drop", "tokenize", "encrypt", "mask", "redact")


def identity_table(rows: int = 400, seed: int = 31) -> tuple[pa.Table, dict[str, str]]:
    """A fake-identity export shaped like public ones (CamelCase headers, spreadsheet-mangled
    card numbers, `Last, Title. First` names, handles), and each column's class."""
    fake = fake_for(seed)
    rng = random.Random(seed)
    cols = {
        "Gender": ("quasi", lambda: rng.choice(["male", "female"])),
        "NameSet": ("quasi", lambda: rng.choice(["American", "Dutch", "German", "Polish"])),
        "GivenName": ("direct", fake.first_name),
        "Surname": ("direct", fake.last_name),
        "PassengerName": (
            "direct",
            lambda: (
                f"{fake.last_name()}, {rng.choice(['Mr.', 'Mrs.', 'Miss.'])} {fake.first_name()}"
            ),
        ),
        "StreetAddress": ("direct", fake.street_address),
        "City": ("quasi", fake.city),
        "CountryFull": ("quasi", fake.country),
        "Nationality": ("quasi", lambda: rng.choice(["German", "French", "Mexican", "Indian"])),
        "Party": ("quasi", lambda: rng.choice(["Democrat", "Republican", "Independent"])),
        "EmailAddress": ("direct", fake.email),
        "TwitterHandle": ("direct", fake.user_name),
        "CCNumber": ("direct", lambda: f"{int(fake.credit_card_number('visa16')) / 1e15:.2f}E+15"),
        "CVV2": ("direct", lambda: str(rng.randint(100, 999))),
        "CCType": ("other", lambda: rng.choice(["Visa", "MasterCard"])),
        "Birthday": ("quasi", lambda: fake.date_of_birth().strftime("%m/%d/%Y")),
        "ZipCode": ("quasi", fake.postcode),
        "Kilograms": ("other", lambda: f"{rng.uniform(45, 130):.1f}"),
    }
    table = pa.table({n: [make() for _ in range(rows)] for n, (_, make) in cols.items()})
    return table, {n: k for n, (k, _) in cols.items()}


def test_proposal_classifies_every_column_and_says_why(det):
    from schemas.gates import parse_gates, validate_against_schema

    table, classes = identity_table()
    text = propose_schema(table, detector=det)
    schema = schema_model.parse_schema(yaml.safe_load(text), "<scan>")
    spec = {c.name: c for c in schema.columns}
    label = {"direct": "# direct identifier", "quasi": "# quasi-identifier", "other": "# other"}
    lines = {ln.split(":")[0].strip(): ln for ln in text.splitlines() if ln.startswith("  ")}
    for name, klass in classes.items():
        assert label[klass] in lines[name], name  # every line names its class and evidence
        if klass == "direct":
            assert spec[name].action != "keep", name
        else:
            assert spec[name].action not in DESTROYING, name
    assert spec["CCNumber"].action == "drop" and "scientific notation" in lines["CCNumber"]
    assert (spec["CVV2"].action, spec["CVV2"].pii) == ("drop", "CVV")
    assert spec["ZipCode"].params == {"keep_prefix": 3}
    assert spec["Birthday"].params == {"date_part": "year"}
    assert "prevalence" in lines["EmailAddress"] and "name 'surname'" in lines["Surname"]
    # the commented gates block lists the kept / generalized quasi-identifiers and parses
    block = text[text.index("# gates:") :].splitlines()
    gates = yaml.safe_load("\n".join(ln[2:] for ln in block))["gates"]
    qis = gates["k_anonymity"]["quasi_identifiers"]
    assert set(qis) == {n for n, k in classes.items() if k == "quasi"}
    validate_against_schema(parse_gates(gates, "<scan>"), schema, "<scan>")
    for name in ("EmailAddress", "PassengerName", "TwitterHandle"):
        assert not any(v in text for v in table.column(name).to_pylist()[:50])


def test_card_numbers_typed_as_floats_are_flagged_and_dropped(det):
    rng = random.Random(12)
    cards = [float(rng.randint(4_000_000_000_000_000, 5_599_999_999_999_999)) for _ in range(200)]
    table = pa.table({"v17": pa.array(cards, pa.float64()), "ratio": [c / 1e16 for c in cards]})
    text = propose_schema(table, detector=det)
    spec = yaml.safe_load(text)["columns"]
    assert spec["v17"] == {"type": "float", "pii": "CREDIT_CARD", "action": "drop"}
    assert "scientific notation" in next(ln for ln in text.splitlines() if "v17:" in ln)
    assert spec["ratio"]["action"] == "keep"
