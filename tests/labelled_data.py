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


def officials_table(rows: int = 300, seed: int = 41) -> tuple[pa.Table, dict[str, str]]:
    """A public-officials list shaped like the public ones (office street addresses in
    Senate / House office buildings, social handles with and without `@`, channel names,
    a party column), and each column's class (direct / quasi / other). Faker only."""
    import random

    fake = fake_for(seed)
    rng = random.Random(seed)
    buildings = ("Hart Senate Office Building", "Russell Senate Office Building")
    buildings += ("Rayburn House Office Building", "Longworth House Office Building")

    def handle() -> str:
        first, last = fake.first_name(), fake.last_name()
        name = rng.choice((f"Sen{last}", f"Rep{first}{last}", f"{first}{last}{rng.randint(1, 99)}"))
        return "".join(c for c in name if c.isalnum())[:15]

    cols = {
        "last_name": ("direct", fake.last_name),
        "first_name": ("direct", fake.first_name),
        "full_name": (
            "direct",
            lambda: f"{fake.first_name()} {fake.first_name()} {fake.last_name()}",
        ),
        "birthday": ("quasi", lambda: fake.date_of_birth(minimum_age=30).isoformat()),
        "gender": ("quasi", lambda: rng.choice("MF")),
        "type": ("other", lambda: rng.choice(("sen", "rep"))),
        "state": ("quasi", fake.state_abbr),
        "party": ("quasi", lambda: rng.choice(("Democrat", "Republican", "Independent"))),
        "address": (
            "direct",
            lambda: (
                f"{rng.randint(100, 999)} {rng.choice(buildings)} Washington DC "
                f"{rng.choice(('20510', '20515'))}"
            ),
        ),
        "phone": ("direct", lambda: f"202-22{rng.randint(4, 5)}-{rng.randint(0, 9999):04d}"),
        "twitter": ("direct", handle),
        "instagram": ("direct", lambda: "@" + handle()),
        "youtube": ("direct", handle),
        "bioguide_id": ("direct", lambda: f"{fake.last_name()[0]}{rng.randint(0, 999999):06d}"),
    }
    table = pa.table({n: [make() for _ in range(rows)] for n, (_, make) in cols.items()})
    return table, {n: k for n, (k, _) in cols.items()}


def passengers_table(rows: int = 300, seed: int = 43) -> tuple[pa.Table, dict[str, str]]:
    """A historical passenger list: names as `Surname, Title. Given Names (Maiden Name)`,
    ticket numbers that look like ids, fares, cabins, and each column's class. Faker only."""
    import random

    fake = fake_for(seed)
    rng = random.Random(seed)

    def name() -> str:
        title = rng.choice(("Mr", "Mrs", "Miss", "Master", "Rev", "Dr"))
        given = " ".join(fake.first_name() for _ in range(rng.choice((1, 2, 3))))
        out = f"{fake.last_name()}, {title}. {given}"
        return out + (f" ({fake.first_name()} {fake.last_name()})" if title == "Mrs" else "")

    prefixes = ("A/5", "PC", "STON/O2.", "C.A.", "SOTON/OQ", "")
    cols = {
        "Survived": ("other", lambda: str(rng.randint(0, 1))),
        "Pclass": ("other", lambda: str(rng.randint(1, 3))),
        "Name": ("direct", name),
        "Sex": ("quasi", lambda: rng.choice(("male", "female"))),
        "Age": ("quasi", lambda: str(rng.randint(1, 80))),
        "Ticket": (
            "other",
            lambda: f"{rng.choice(prefixes)} {rng.randint(1000, 3999999)}".strip(),
        ),
        "Fare": ("other", lambda: f"{rng.uniform(5, 260):.4f}"),
        "Cabin": ("other", lambda: f"{rng.choice('ABCDEF')}{rng.randint(1, 130)}"),
        "Embarked": ("other", lambda: rng.choice("SCQ")),
    }
    table = pa.table({n: [make() for _ in range(rows)] for n, (_, make) in cols.items()})
    return table, {n: k for n, (k, _) in cols.items()}
