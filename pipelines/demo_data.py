"""Synthetic demo data (Faker, fixed seed): structured PII columns plus a free-text column.

Every value is generated here; nothing real. A few rows are broken on purpose (a non-numeric
age, a missing id, a ragged line) so the demo shows the quarantine, and one column
(`ip_address`) is not declared in the demo schema so the demo shows minimization.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random

COLUMNS = [
    "customer_id",
    "full_name",
    "email",
    "phone",
    "ssn",
    "birth_date",
    "zip",
    "age",
    "signup_at",
    "notes",
    "plan",
    "income",
    "gender",
    "smoker",
    "ip_address",
]
GENDERS = ["female", "male", "other"]
PLANS = ["free", "basic", "pro", "enterprise"]


def demo_rows(n: int, seed: int = 7):
    """Yield `n` synthetic customer records (dicts of strings), deterministic for a seed."""
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(seed)
    rng = random.Random(seed)
    today = dt.date(2026, 1, 1)
    for i in range(n):
        name = fake.name()
        birth = fake.date_of_birth(minimum_age=18, maximum_age=90)
        age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
        signup = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            seconds=rng.randrange(0, 700 * 86400)
        )
        note_kind = rng.random()
        if note_kind < 0.3:
            notes = f"Customer {name} asked to be called back at {fake.phone_number()}."
        elif note_kind < 0.5:
            notes = f"Invoice sent to {fake.email()} after plan change."
        elif note_kind < 0.7:
            notes = ""
        else:
            notes = fake.sentence(nb_words=12)
        yield {
            "customer_id": f"C{100000 + i}",
            "full_name": name,
            "email": fake.email(),
            "phone": fake.phone_number(),
            "ssn": fake.ssn(),
            "birth_date": birth.strftime("%m/%d/%Y"),
            "zip": fake.zipcode(),
            "age": str(age),
            "signup_at": signup.isoformat().replace("+00:00", "Z"),
            "notes": notes,
            "plan": rng.choice(PLANS),
            "income": f"{min(rng.lognormvariate(10.8, 0.6), 400000):.2f}",
            "gender": rng.choices(GENDERS, weights=[48, 48, 4])[0],
            "smoker": "true" if rng.random() < 0.2 else "false",
            "ip_address": fake.ipv4(),
        }


def write_demo_csv(path: str, n: int, seed: int = 7, broken: bool = True) -> str:
    """Write the demo CSV; with `broken`, append three bad rows for the quarantine."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    rows = list(demo_rows(n, seed))
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
        if broken:
            bad_age = dict(rows[0], customer_id="C999001", age="unknown")
            no_id = dict(rows[1], customer_id="")
            w.writerow(bad_age)
            w.writerow(no_id)
            f.write("C999003,only,three\n")  # ragged: wrong number of fields
    return path


def _strs(prefix: str, nums, width: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = pc.utf8_lpad(pa.array(nums.astype(str)), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def synthetic_table(n: int, seed: int = 1):
    """A large synthetic customer table, vectorized (Faker would take minutes at 1e6 rows).

    Realistic repeats: ids unique, phones/SSNs mostly unique, emails from a 200k-name pool,
    zips from 40k. Used by the benchmark and by tests that need volume.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)  # benchmark data only, not a privacy mechanism
    ids = _strs("C", np.arange(n), 8)
    names = _strs("user", rng.integers(0, 200_000, n), 6)
    domains = pa.array(
        np.array(["example.com", "example.org", "example.net"])[rng.integers(0, 3, n)]
    )
    email = pc.binary_join_element_wise(names, domains, "@")
    phone = pc.binary_join_element_wise(
        _strs("", rng.integers(200, 999, n), 3),
        _strs("", rng.integers(200, 999, n), 3),
        _strs("", rng.integers(0, 9999, n), 4),
        "-",
    )
    ssn = pc.binary_join_element_wise(
        _strs("", rng.integers(1, 899, n), 3),
        _strs("", rng.integers(1, 99, n), 2),
        _strs("", rng.integers(1, 9999, n), 4),
        "-",
    )
    birth = pa.array(rng.integers(-20000, 12000, n).astype("int32")).cast(pa.date32())
    zips = _strs("", rng.integers(0, 40_000, n) * 2 + 10_000, 5)
    age = pa.array(rng.integers(18, 90, n))
    signup = pa.array(rng.integers(1.70e15, 1.76e15, n)).cast(pa.timestamp("us", tz="UTC"))
    plan = pa.array(np.array(["free", "basic", "pro", "enterprise"])[rng.integers(0, 4, n)])
    score = pa.array(rng.random(n))
    return pa.table(
        {
            "customer_id": ids,
            "email": email,
            "phone": phone,
            "ssn": ssn,
            "birth_date": birth,
            "zip": zips,
            "age": age,
            "signup_at": signup,
            "plan": plan,
            "score": score,
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("-o", "--output", default="data/demo/customers.csv")
    args = ap.parse_args()
    print(write_demo_csv(args.output, args.rows, args.seed))


if __name__ == "__main__":
    main()
