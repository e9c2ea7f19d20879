"""A small customers table and schema for the canary tests (no scrub: no spaCy needed)."""

from __future__ import annotations

import csv
import random

SCHEMA = """\
record_key: customer_id
columns:
  customer_id: {type: string, action: tokenize}
  email: {type: string, pii: EMAIL_ADDRESS, action: mask, keep_last: 4}
  age: {type: int, action: generalize, bucket: 10}
  plan: {type: string, action: keep}
  motto: {type: string, nullable: true, action: keep}
  income: {type: float, action: ldp, epsilon: 1.0, bounds: [0, 250000]}
  joined: {type: date, action: keep}
"""
CANARIES = "canaries: {count: 300, kind: mislabeled, label: plan}"


def write_customers(path, rows: int = 400, seed: int = 7) -> str:
    """`rows` synthetic customers (fixed seed); plan is mostly `basic`."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "email", "age", "plan", "motto", "income", "joined"])
        for i in range(rows):
            w.writerow(
                [
                    f"C{i:05d}",
                    f"user{rng.randrange(10**6)}@example.org",
                    rng.randrange(18, 90),
                    rng.choices(["basic", "plus", "pro"], [0.7, 0.2, 0.1])[0],
                    rng.choice(["", "carpe diem", "live long", "be kind"]),
                    round(rng.uniform(1000, 200000), 2),
                    f"20{rng.randrange(10, 24)}-0{rng.randrange(1, 10)}-1{rng.randrange(0, 9)}",
                ]
            )
    return str(path)
