"""Parquet as pandas, polars and pyarrow write it by default, through `privgate run` (issue 13).

Seeded random rows, with values a cast or an action cannot hold planted among them, go
through the real CLI in a subprocess (so stderr is what a user sees) at the default log level
and at DEBUG: no input value may appear on stderr, every row must be in the output or the
quarantine, and the quarantine reasons must be exactly the planted ones.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import cli, write_config

SCHEMA = """\
record_key: id
columns:
  id:      {type: string, action: tokenize}
  name:    {type: string, nullable: true, action: mask, keep_first: 1}
  plan:    {type: string, nullable: true, action: tokenize}
  n:       {type: int, nullable: true, action: generalize, bucket: 10}
  amount:  {type: float, action: keep}
  seen_at: {type: timestamp, nullable: true, action: date_shift, max_days: 30}
  born:    {type: date, nullable: true, action: generalize, date_part: year}
"""

ROWS = 120  # per file
# What a row may carry, with its quarantine reason (None: a good row). At most one per row.
KINDS = [
    (None, 0.6),
    ("range:n", 0.1),  # within 8 of int64's minimum: its bucket of 10 would wrap around
    ("type:amount", 0.1),  # an int64 over 2**53 that float64 cannot hold exactly
    ("type:seen_at", 0.1),  # ns with a fraction of a microsecond, or a year past 9999
    ("range:seen_at", 0.1),  # within 30 days of 9999-12-31: the shift would leave the calendar
]
_EPOCH = dt.datetime(1970, 1, 1)
_LAST_DAY_US = (dt.datetime(9999, 12, 31) - _EPOCH) // dt.timedelta(microseconds=1)


def _rows(rng: np.random.Generator, writer: str) -> tuple[dict, list, dict]:
    """Column values of one file as Python lists, the needles to look for, the reasons."""
    ns = writer != "polars"  # polars writes microseconds by default
    # nanoseconds end in 2262: only microseconds reach 9999-12-31
    weights = np.array([0 if ns and r == "range:seen_at" else p for r, p in KINDS])
    kinds = rng.choice(len(KINDS), size=ROWS, p=weights / weights.sum())
    hexes = lambda k: [f"{v:0{k}x}" for v in rng.integers(0, 16**k, ROWS)]  # noqa: E731
    cols = {
        "id": [f"id{h}" for h in hexes(10)],
        "name": [f"Nm{h}" if rng.random() > 0.2 else None for h in hexes(8)],
        "plan": [f"pl{rng.integers(1000, 9999)}" if rng.random() > 0.2 else None for _ in kinds],
        "n": [],
        "amount": [],
        "seen_at": [],  # int64 in the file's unit (ns, or us for polars)
        "born": [],
    }
    reasons: dict[str, int] = {}
    for k in kinds:
        reason = KINDS[k][0]
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
        small = int(rng.integers(0, 8))
        cols["n"].append(-(2**63) + small if reason == "range:n" else _maybe(rng, _big(rng, 13)))
        cols["amount"].append(
            2**53 + 2 * _big(rng, 6) + 1 if reason == "type:amount" else _big(rng, 11)
        )
        if reason == "range:seen_at":
            us = _LAST_DAY_US - int(rng.integers(0, 29 * 86_400_000_000))
            ts = us * 1000 if ns else us
        elif reason == "type:seen_at":
            ts = _big(rng, 18) + int(rng.integers(1, 1000)) if ns else 2**62 + _big(rng, 12)
        else:
            us = int(rng.integers(0, 60 * 365 * 86_400)) * 1_000_000 + int(rng.integers(0, 10**6))
            ts = _maybe(rng, us * 1000 if ns else us)
        cols["seen_at"].append(ts)
        cols["born"].append(_maybe(rng, int(rng.integers(-25_000, 7_000))))  # 1901..1989
    needles = [v for c in ("id", "name", "plan") for v in cols[c] if v]
    needles += [str(v) for c in ("n", "amount", "seen_at") for v in cols[c] if v is not None]
    needles += _temporal_texts(cols, ns)
    return cols, needles, reasons


def _big(rng, digits: int) -> int:
    return int(rng.integers(10 ** (digits - 1), 10**digits))


def _maybe(rng, v):
    return None if rng.random() < 0.1 else v


def _temporal_texts(cols: dict, ns: bool) -> list[str]:
    out = []
    for v in cols["seen_at"]:
        if v is None or (not ns and v > _LAST_DAY_US):
            continue
        whole, frac = divmod(v, 10**9 if ns else 10**6)
        iso = (_EPOCH + dt.timedelta(seconds=whole)).isoformat()
        out += [f"{iso}.{frac:09d}" if ns else f"{iso}.{frac:06d}"]
        out += [out[-1].replace("T", " ")]
    out += [(dt.date(1970, 1, 1) + dt.timedelta(days=d)).isoformat() for d in cols["born"] if d]
    return out


def _write_pandas(cols: dict, path) -> None:
    df = pd.DataFrame(
        {
            "id": cols["id"],
            "name": cols["name"],
            "plan": pd.Categorical(cols["plan"]),
            "n": pd.array(cols["n"], dtype="Int64"),  # nullable int
            "amount": np.array(cols["amount"], dtype=np.int64),
            "seen_at": pd.Series(pd.array(cols["seen_at"], dtype="Int64")).astype("datetime64[ns]"),
            "born": [
                dt.date(1970, 1, 1) + dt.timedelta(days=d) if d is not None else None
                for d in cols["born"]
            ],
        }
    )
    df.to_parquet(path)  # pandas' defaults: ns timestamps, categoricals as dictionaries


def _write_polars(cols: dict, path) -> None:
    df = pl.DataFrame(
        {
            "id": cols["id"],
            "name": cols["name"],
            "plan": pl.Series(cols["plan"], dtype=pl.Categorical),
            "n": pl.Series(cols["n"], dtype=pl.Int64),
            "amount": pl.Series(cols["amount"], dtype=pl.Int64),
            "seen_at": pl.Series(cols["seen_at"], dtype=pl.Int64).cast(pl.Datetime("us")),
            "born": pl.Series(cols["born"], dtype=pl.Int32).cast(pl.Date),
        }
    )
    df.write_parquet(path)  # polars' defaults: large strings, us timestamps, categoricals


def _write_pyarrow(cols: dict, path) -> None:
    table = pa.table(
        {
            "id": pa.array(cols["id"], pa.large_string()),
            "name": pa.array(cols["name"], pa.large_string()),
            "plan": pa.array(cols["plan"], pa.string()).dictionary_encode(),
            "n": pa.array(cols["n"], pa.int64()),
            "amount": pa.array(cols["amount"], pa.int64()),
            "seen_at": pa.array(cols["seen_at"], pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            "born": pa.array(
                [None if d is None else d * 86_400_000 for d in cols["born"]], pa.int64()
            ).cast(pa.date64()),
        }
    )
    pq.write_table(table, path)


WRITERS = {"pandas": _write_pandas, "polars": _write_polars, "pyarrow": _write_pyarrow}


@pytest.mark.parametrize("seed, level", [(1, None), (2, "DEBUG")], ids=["default", "debug"])
def test_parquet_of_every_writer_logs_no_value_and_reconciles(tmp_path, keyring_path, seed, level):
    rng = np.random.default_rng(seed)
    (tmp_path / "in").mkdir()
    needles, expected = [], {}
    for writer, write in WRITERS.items():
        cols, file_needles, reasons = _rows(rng, writer)
        write(cols, tmp_path / "in" / f"{writer}.parquet")
        needles += file_needles
        for reason, count in reasons.items():
            expected[reason] = expected.get(reason, 0) + count
    cfg = write_config(
        tmp_path,
        input_path=tmp_path / "in" / "*.parquet",
        keyring=keyring_path,
        fmt="parquet",
        schema=SCHEMA,
        extra_input="  batch_rows: 50",
    )
    r = cli(*(["--log-level", level] if level else []), "run", cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    if level:
        assert "DEBUG" in r.stderr  # the level really was DEBUG
    leaked = [v for v in needles if v in r.stderr or v in r.stdout]
    assert not leaked, leaked[:5]
    body = json.loads((tmp_path / "out" / "manifest.json").read_text())["manifest"]
    rec = body["reconciliation"]
    assert rec["input_rows"] == ROWS * len(WRITERS)
    assert rec["output_rows"] + rec["quarantined_rows"] == rec["input_rows"]
    assert body["quarantine"]["by_reason"] == expected
    assert len(needles) > ROWS * len(WRITERS)
