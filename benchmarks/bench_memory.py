"""Bounded-memory benchmark: a large CSV input (default 10 GB) through `privgate run`.

Generates `--gb` GB of synthetic CSV (our own generator, not committed) as `--files` files
under a work directory, then runs `privgate run` on it as a subprocess, once per worker
setting (`--workers 1 2`: 1 = FnApiRunner in process, 2 = `direct_num_workers=2,
direct_running_mode=multi_processing`), and prints for each: wall time, rows/s, and the
peak resident memory of the whole process tree (the CLI, the side worker, Beam's worker
processes), sampled every 0.2 s from /proc and summed (an upper bound: shared pages count
once per process).

    .venv/bin/python benchmarks/bench_memory.py --gb 10 --workers 1 2
    .venv/bin/python benchmarks/bench_memory.py --gb 1 --keep   # reuse data next time

Target (issue 7): peak resident memory under 2 GB on the 10 GB input.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from bench_spine import SCHEMA  # noqa: E402  the spine benchmark's policy, same actions

CHUNK_ROWS = 500_000


def generate(data_dir: str, gb: float, files: int) -> int:
    """Write ~gb GB of CSV as `files` files; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    from pipelines.demo_data import synthetic_table

    os.makedirs(data_dir, exist_ok=True)
    per_file = gb * 1e9 / files
    rows, chunk = 0, 0
    t0 = time.perf_counter()
    for f in range(files):
        path = os.path.join(data_dir, f"part-{f:04d}.csv")
        with pa.OSFile(path, "wb") as sink:
            writer = None
            while sink.tell() < per_file:
                t = synthetic_table(CHUNK_ROWS, seed=chunk)
                ids = pc.binary_join_element_wise(
                    pa.array([f"K{chunk}"] * t.num_rows), t.column("customer_id"), "-"
                )
                t = t.set_column(0, "customer_id", ids)
                if writer is None:
                    writer = pcsv.CSVWriter(sink, t.schema)
                writer.write_table(t)
                rows += t.num_rows
                chunk += 1
            writer.close()
        print(f"  generated {path} ({os.path.getsize(path) / 1e9:.2f} GB)", flush=True)
    print(f"  {rows:,} rows in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def _tree_rss(root: int) -> int:
    """Sum of VmRSS (bytes) of `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def run_once(cfg: str, workers: int) -> tuple[float, int, int, str]:
    """Returns (seconds, peak tree RSS bytes, exit code, stderr tail)."""
    cmd = [sys.executable, "-m", "pipelines.cli", "run", cfg, "--no-progress"]
    if workers > 1:
        cmd += ["--direct_num_workers", str(workers), "--direct_running_mode", "multi_processing"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = proc.communicate()
    secs = time.perf_counter() - t0
    done.set()
    th.join()
    return secs, peak[0], proc.returncode, err[-2000:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=10.0, help="input size in GB (default 10)")
    ap.add_argument("--files", type=int, default=0, help="input files (default: 1 per GB)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work", help="work directory (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    from privgate.keyring import init_keyring

    work = args.work or tempfile.mkdtemp(prefix="privgate-membench-")
    os.environ.setdefault("PRIVGATE_KEYRING_PASSPHRASE", "benchmark-only-passphrase")
    data_dir = os.path.join(work, "data")
    files = args.files or max(1, round(args.gb))
    stamp = os.path.join(data_dir, f".rows-{args.gb}-{files}")
    try:
        if os.path.exists(stamp):
            rows = int(open(stamp).read())
            print(f"reusing {rows:,} rows in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
            print(f"generating {args.gb} GB of CSV in {files} file(s) ...", flush=True)
            rows = generate(data_dir, args.gb, files)
            open(stamp, "w").write(str(rows))
        size = sum(
            os.path.getsize(os.path.join(data_dir, f))
            for f in os.listdir(data_dir)
            if f.endswith(".csv")
        )
        keyring = os.path.join(work, "keyring.json")
        if not os.path.exists(keyring):
            init_keyring(keyring)
        with open(os.path.join(work, "schema.yaml"), "w") as f:
            f.write(SCHEMA)
        print(f"input: {size / 1e9:.2f} GB, {rows:,} rows, {files} file(s)")
        print(f"{'workers':>7} {'seconds':>8} {'rows/s':>10} {'peak RSS (tree)':>16}")
        for w in args.workers:
            out = os.path.join(work, f"out-{w}")
            cfg = os.path.join(work, f"run-{w}.yaml")
            with open(cfg, "w") as f:
                f.write(
                    f"dataset: membench\ninput: {{path: '{data_dir}/*.csv', format: csv}}\n"
                    f"schema: schema.yaml\noutput: {{path: {out}}}\n"
                    f"keys: {{kms: local, keyring: {keyring}}}\n"
                )
            secs, peak, rc, err = run_once(cfg, w)
            if rc != 0:
                print(f"{w:>7} failed (exit {rc}):\n{err}")
                continue
            print(f"{w:>7} {secs:8.1f} {rows / secs:10,.0f} {peak / 2**30:13.2f} GiB", flush=True)
            shutil.rmtree(out, ignore_errors=True)
        print("target: peak RSS < 2 GiB on the 10 GB input")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
