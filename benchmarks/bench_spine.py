"""Spine benchmark: plain Beam Parquet copy vs `privgate run`, same data, same run.

Generates an N-row x 10-column synthetic dataset (Parquet, not committed), then times:
  (a) Beam `ReadFromParquetBatched -> WriteToParquetBatched` (FnApiRunner, zstd), and
  (b) `privgate run` with structured actions (tokenize, mask, encrypt, generalize,
      date_shift, keep) and encrypted output,
and prints rows/s of each and the ratio b/a, plus a per-stage breakdown of (b)'s cores
measured outside Beam on the same data.

    .venv/bin/python benchmarks/bench_spine.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipelines.demo_data import synthetic_table  # noqa: E402

SCHEMA = """\
record_key: customer_id
columns:
  customer_id: {type: string, action: tokenize}
  email:       {type: string, pii: EMAIL_ADDRESS, action: mask, keep_last: 4}
  phone:       {type: string, pii: PHONE_NUMBER, action: tokenize}
  ssn:         {type: string, pii: US_SSN, action: encrypt}
  birth_date:  {type: date, action: generalize, date_part: year}
  zip:         {type: string, action: generalize, keep_prefix: 3}
  age:         {type: int, action: generalize, bucket: 10}
  signup_at:   {type: timestamp, action: date_shift, max_days: 30}
  plan:        {type: string, action: keep}
  score:       {type: float, action: keep}
"""


def run_plain_copy(src: str, out_dir: str) -> float:
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    schema = pq.read_schema(src)
    t0 = time.perf_counter()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        (
            p
            | beam.io.ReadFromParquetBatched(src)
            | beam.io.WriteToParquetBatched(
                os.path.join(out_dir, "part"), schema, codec="zstd", file_name_suffix=".parquet"
            )
        )
    return time.perf_counter() - t0


GATES = """gates:
  residual_pii_max: 0.01
  k_anonymity: {quasi_identifiers: [age, zip], k: 2}
  l_diversity: {sensitive: plan, l: 2}
"""
# (d): the same gates plus a user input suite, so Great Expectations is imported and run.
USER_SUITE = {
    "name": "bench_input",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c}}
        for c in ("customer_id", "email", "plan")
    ]
    + [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "age", "min_value": 0, "max_value": 130},
        }
    ],
}


def _cpu_seconds() -> float:
    """User+system CPU of this process and its reaped children (the side workers)."""
    import resource

    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_privgate(
    src: str, work: str, extra: str = "", out: str = "out"
) -> tuple[float, float, dict]:
    """Returns (wall seconds, CPU seconds of the process tree, manifest)."""
    from pipelines.run import run

    schema_path = os.path.join(work, "schema.yaml")
    with open(schema_path, "w") as f:
        f.write(SCHEMA)
    cfg = os.path.join(work, "bench.yaml")
    with open(cfg, "w") as f:
        f.write(
            f"dataset: bench\ninput: {{path: {src}, format: parquet}}\n"
            f"schema: {schema_path}\noutput: {{path: {work}/{out}}}\n"
            f"keys: {{kms: local, keyring: {work}/keyring.json}}\n" + extra
        )
    from privgate.errors import GateError

    t0, c0 = time.perf_counter(), _cpu_seconds()
    try:
        run(cfg, show_progress=False)
    except GateError:  # small inputs fail k-anonymity; the refused output is still written
        pass
    wall, used = time.perf_counter() - t0, _cpu_seconds() - c0
    with open(os.path.join(work, out, "manifest.json")) as f:
        return wall, used, json.load(f)["manifest"]


def hmac_paths(n: int) -> None:
    """HMAC-SHA256 per value: the C extension vs the hashlib fallback, same values."""
    from privgate import crypto

    values = [f"C{i:09d}".encode() for i in range(n)]
    h = crypto.HmacSha256(os.urandom(32))
    fast = crypto._fast_hmac
    times = {}
    for name, ext in (("C extension", fast), ("hashlib fallback", None)):
        if name == "C extension" and ext is None:
            continue  # not built here
        crypto._fast_hmac = ext
        try:
            t0 = time.perf_counter()
            h.joined(values, b"bench\0")
            times[name] = time.perf_counter() - t0
        finally:
            crypto._fast_hmac = fast
    print("\nHMAC-SHA256 per value (tokens):")
    for name, t in times.items():
        print(f"  {name:28s} {1e6 * t / n:6.2f} us")


def stage_breakdown(src: str, keyring_path: str, work: str) -> list[tuple[str, float]]:
    """Time each stage core on the same data outside Beam (one process, one core)."""
    from privgate.keyring import open_keyring
    from privgate.parquet_crypto import encryption_properties
    from schemas.columns import load_schema
    from transforms.actions import ACTIONS, ActionContext
    from transforms.contract import check_batch
    from transforms.protect import keyed_ops, output_schema

    schema = load_schema(os.path.join(work, "schema.yaml"))
    kr = open_keyring(keyring_path)
    ops = keyed_ops(kr)
    times: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        return out

    pf = pq.ParquetFile(src)
    protected = []
    for batch in timed("read parquet", lambda: list(pf.iter_batches(batch_size=65536))):
        raw = pa.Table.from_batches([batch])
        typed, _ = timed("contract check", lambda raw=raw: check_batch(raw, schema, src, 0))
        ctx = ActionContext(ops, typed.column("customer_id").combine_chunks(), "customer_id")
        cols = []
        for spec in schema.output_columns:
            arr = typed.column(spec.name).combine_chunks()
            cols.append(
                timed(
                    f"{spec.action} {spec.name}",
                    lambda a=arr, s=spec, c=ctx: ACTIONS[s.action](a, s, c),
                )
            )
        protected.append(pa.Table.from_arrays(cols, schema=output_schema(schema)))
    groups = {
        "pii": [c.name for c in schema.output_columns if c.key_group == "pii"],
        "data": [c.name for c in schema.output_columns if c.key_group == "data"],
    }

    def write():
        props = encryption_properties(kr.kms, groups)
        with pq.ParquetWriter(
            os.path.join(work, "stage.parquet"),
            output_schema(schema),
            compression="zstd",
            encryption_properties=props,
        ) as w:
            for t in protected:
                w.write_table(t)

    timed("write encrypted parquet", write)
    return sorted(times.items(), key=lambda kv: -kv[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time each of (a), (b), (c) this many times, interleaved; report the "
        "best (this VM's speed drifts)",
    )
    ap.add_argument(
        "--gates", action="store_true", help="also time (c): (b) plus every gate and the report"
    )
    ap.add_argument(
        "--user-suite",
        action="store_true",
        help="also time (d): (c) plus a user GX input suite (Great Expectations' fixed cost)",
    )
    args = ap.parse_args()
    os.environ.setdefault("PRIVGATE_KEYRING_PASSPHRASE", "benchmark-only-passphrase")
    from privgate.keyring import init_keyring

    work = tempfile.mkdtemp(prefix="privgate-bench-")
    try:
        src = os.path.join(work, "input.parquet")
        t0 = time.perf_counter()
        pq.write_table(synthetic_table(args.rows), src, compression="zstd", row_group_size=131072)
        print(
            f"dataset: {args.rows:,} rows x 10 columns, {os.path.getsize(src) / 1e6:.1f} MB "
            f"parquet, generated in {time.perf_counter() - t0:.1f} s"
        )
        init_keyring(os.path.join(work, "keyring.json"))
        times: dict[str, list[float]] = {"a": [], "b": [], "c": [], "d": []}
        suite = os.path.join(work, "input_suite.json")
        with open(suite, "w") as f:
            json.dump(USER_SUITE, f)
        cpu: dict[str, list[float]] = {"b": [], "c": []}
        for r in range(args.repeat):
            plain = os.path.join(work, f"plain{r}")
            os.makedirs(plain)
            times["a"].append(run_plain_copy(src, plain))
            t, used, body = run_privgate(src, work)
            assert body["output"]["rows"] == args.rows, "privgate lost rows"
            times["b"].append(t)
            cpu["b"].append(used)
            if args.gates:
                t, used, body = run_privgate(src, work, GATES, out="out_gates")
                assert body["gate"]["status"] in ("passed", "failed")
                times["c"].append(t)
                cpu["c"].append(used)
            if args.user_suite:
                extra = GATES + f"  input_expectations: {suite}\n"
                t, _, body = run_privgate(src, work, extra, out="out_suite")
                assert body["gate"]["status"] in ("passed", "failed")
                times["d"].append(t)
        a, b = min(times["a"]), min(times["b"])
        best = f"best of {args.repeat}" if args.repeat > 1 else "one run"
        print(
            f"(a) plain Beam batched Parquet copy : {a:6.2f} s  {args.rows / a:>10,.0f} rows/s"
            f"  ({best})"
        )
        print(f"(b) privgate run (encrypted output): {b:6.2f} s  {args.rows / b:>10,.0f} rows/s")
        print(f"ratio b/a: {b / a:.2f}  (target <= 3.0)")
        if args.gates:
            c = min(times["c"])
            print(
                f"(c) privgate run + gates + report : {c:6.2f} s  {args.rows / c:>10,.0f} rows/s"
                f"  gates add {100 * (c - b) / b:.0f}% to (b)  (target <= 15%)"
            )
        if times["d"]:
            d = min(times["d"])
            print(
                f"(d) (c) + a user GX input suite    : {d:6.2f} s  {args.rows / d:>10,.0f} rows/s"
                f"  Great Expectations' fixed cost: +{d - c:.2f} s over (c)"
            )
        if args.repeat > 1:
            for k in "abcd":
                if times[k]:
                    print(f"    every ({k}): " + " ".join(f"{t:.2f}" for t in times[k]))
        if args.gates:
            # On a machine the run keeps busy, the gates' extra CPU divided by the cores is
            # a floor for what they add to the wall time.
            cb, cc = min(cpu["b"]), min(cpu["c"])
            print(
                f"CPU of the process tree (least of {args.repeat}): (b) {cb:.2f} s, (c) {cc:.2f} s;"
                f" the gates use +{cc - cb:.2f} s of CPU ({100 * (cc - cb) / cb:.0f}% of (b)'s)"
                f" on {os.cpu_count()} cores"
            )
        print("\nper-stage breakdown of (b)'s cores, outside Beam, one core:")
        stages = stage_breakdown(src, os.path.join(work, "keyring.json"), work)
        total = sum(t for _, t in stages)
        for name, t in stages:
            print(f"  {name:28s} {t:6.2f} s  {100 * t / total:5.1f}%")
        print(f"  {'total':28s} {total:6.2f} s")
        hmac_paths(args.rows)
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
