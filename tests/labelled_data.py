"""Synthetic labelled columns the detection tests (and `benchmarks/detect_eval.py`) score on."""

from __future__ import annotations

import pyarrow as pa

from transforms.detect.classify import FREE_TEXT

# Column -> what `classify_column` must call it, for `labelled_table`.
LABELLED_COLUMNS: dict[str, str | None] = {
    "customer_id": None,
    "order_id": None,
    "session_guid": None,
    "ref_number": None,
    "order_date": None,
    "amount": None,
    "plan": None,
    "company": None,
    "full_name": "PERSON",
    "email": "EMAIL_ADDRESS",
    "contact": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "ssn": "US_SSN",
    "card_number": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "client_ip": "IP_ADDRESS",
    "birth_date": "DATE_OF_BIRTH",
    "zip": "ZIP_CODE",
    "notes": FREE_TEXT,
    "password": "PASSWORD",
}


def labelled_table(rows: int = 1500, seed: int = 11) -> tuple[pa.Table, dict]:
    """Synthetic columns with known contents, tricky negatives included (Faker, fixed seed).

    The classification tests and `benchmarks/detect_eval.py` both measure against it.

    Args:
        rows: rows to generate.
        seed: Faker and `random` seed (same seed, same table).
    Returns:
        (string table, column -> expected `classify_column` entity: `LABELLED_COLUMNS`).
    """
    import random
    import uuid

    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    cols: dict[str, list] = {k: [] for k in LABELLED_COLUMNS}
    for i in range(rows):
        cols["customer_id"].append(f"C{100000 + i}")
        cols["order_id"].append(f"ORD-{rng.randint(2019, 2026)}-{rng.randint(0, 999999):06d}")
        cols["session_guid"].append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        cols["ref_number"].append(str(rng.randint(1000000, 9999999)))
        cols["order_date"].append(fake.date_between(start_date="-3y").isoformat())
        cols["amount"].append(f"{rng.uniform(1, 5000):.2f}")
        cols["plan"].append(rng.choice(["free", "basic", "pro", "enterprise"]))
        cols["company"].append(fake.company())
        cols["full_name"].append(fake.name())
        cols["email"].append(fake.email())
        cols["contact"].append(fake.email() if rng.random() < 0.9 else None)
        cols["phone"].append(fake.phone_number())
        cols["ssn"].append(fake.ssn())
        cols["card_number"].append(fake.credit_card_number())
        cols["iban"].append(fake.iban())
        cols["client_ip"].append(fake.ipv4())
        cols["birth_date"].append(fake.date_of_birth(minimum_age=18).strftime("%m/%d/%Y"))
        cols["zip"].append(fake.zipcode())
        note = rng.random()
        cols["notes"].append(
            f"Customer {fake.name()} asked for a call back at {fake.phone_number()}."
            if note < 0.3
            else None
            if note < 0.5
            else fake.sentence(nb_words=12)
        )
        cols["password"].append(fake.password(length=12))
    table = pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})
    return table, dict(LABELLED_COLUMNS)


def fake_for(seed: int, locale: str = "en_US"):
    """A Faker for `locale` seeded with `seed` (same seed, same values)."""
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(seed)
    return fake
