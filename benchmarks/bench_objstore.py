"""Object-store benchmark: `privgate run` from and to the GCS emulator vs local disk, same run.

Generates an N-row x 10-column synthetic Parquet input (bench_spine's schema and actions),
starts `gcp-storage-emulator` on loopback (tests/gcs_peer.py), then times, in this process:
  (L) `privgate run` local file -> local directory, and
  (G) `privgate run` gs:// object -> gs:// prefix (the finalize step included),
and prints the ratio G/L (target <= 1.5). The finalize step (`pipelines.finalize.finish`:
mirror, reconcile, gates, report, sign, commit manifest-last) is timed separately, with the
object-store requests it makes: privgate's own calls (`privgate.storage.REQUESTS`) and every
HTTP request the emulator answered meanwhile; then again for N/10 rows and for N rows in
several input files on two worker processes (more output files), to show that the count grows
with files, not rows.

    .venv/bin/python benchmarks/bench_objstore.py --rows 1000000 --repeat 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.bench_spine import SCHEMA  # noqa: E402
from pipelines.demo_data import synthetic_table  # noqa: E402

MULTI = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


class FinishMeter:
    """Wraps `finish` as `run()` calls it: its wall time and the requests made meanwhile."""

    def __init__(self, emulator):
        import pipelines.run as run_module

        self.emulator, self.last = emulator, {}
        self._module, self._finish = run_module, run_module.finish
        run_module.finish = self._timed

    def _timed(self, *args, **kwargs):
        from privgate import storage

        ours, http, t0 = (
            sum(storage.REQUESTS.values()),
            self.emulator.requests(),
            time.perf_counter(),
        )
        try:
            return self._finish(*args, **kwargs)
        finally:
            wall = time.perf_counter() - t0
            time.sleep(0.2)  # the emulator's log line for the last request
            self.last = {
                "seconds": wall,
                "ours": sum(storage.REQUESTS.values()) - ours,
                "http": self.emulator.requests() - http,
            }


def write_config(work: str, name: str, src: str, out: str) -> str:
    schema_path = os.path.join(work, "schema.yaml")
    with open(schema_path, "w") as f:
        f.write(SCHEMA)
    cfg = os.path.join(work, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write(
            f"dataset: bench\ninput: {{path: '{src}', format: parquet}}\n"
            f"schema: {schema_path}\noutput: {{path: '{out}'}}\n"
            f"keys: {{kms: local, keyring: {work}/keyring.json}}\n"
        )
    return cfg


def timed_run(cfg: str, beam_args: list[str] | None = None) -> tuple[float, dict]:
    from pipelines.run import run

    t0 = time.perf_counter()
    doc = run(cfg, beam_args or [], show_progress=False)
    return time.perf_counter() - t0, doc["manifest"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4, help="input files of the many-files run")
    ap.add_argument("--repeat", type=int, default=1, help="time (L) and (G) this many times")
    args = ap.parse_args()
    os.environ.setdefault("PRIVGATE_KEYRING_PASSPHRASE", "benchmark-only-passphrase")
    from privgate import storage
    from privgate.keyring import init_keyring
    from tests.gcs_peer import GcsEmulator

    work = tempfile.mkdtemp(prefix="privgate-bench-objstore-")
    emulator = GcsEmulator(work).start()
    try:
        os.environ.update(emulator.client_env())
        bucket = emulator.create_bucket("bench")
        init_keyring(os.path.join(work, "keyring.json"))
        table = synthetic_table(args.rows)
        src = os.path.join(work, "input.parquet")
        pq.write_table(table, src, compression="zstd", row_group_size=131072)
        storage.upload(src, f"{bucket}/in/input.parquet")
        small = os.path.join(work, "small.parquet")
        pq.write_table(table.slice(0, args.rows // 10), small, compression="zstd")
        storage.upload(small, f"{bucket}/small/input.parquet")
        step = -(-args.rows // args.files)
        for i in range(args.files):
            part = os.path.join(work, f"part{i}.parquet")
            pq.write_table(table.slice(i * step, step), part, compression="zstd")
            storage.upload(part, f"{bucket}/many/part{i}.parquet")
        print(
            f"dataset: {args.rows:,} rows x 10 columns, {os.path.getsize(src) / 1e6:.1f} MB "
            "parquet; GCS emulator on loopback"
        )
        meter = FinishMeter(emulator)
        # warm-up (imports, first-run costs), so neither timed side pays them
        timed_run(write_config(work, "warm", small, os.path.join(work, "out_warm")))
        local_cfg = write_config(work, "local", src, os.path.join(work, "out_local"))
        gcs_cfg = write_config(work, "gcs", f"{bucket}/in/input.parquet", f"{bucket}/out")
        local_times, gcs_times, local_finish, big = [], [], [], {}
        for _ in range(args.repeat):  # interleaved: this machine's speed drifts
            wall, body = timed_run(local_cfg)
            assert body["output"]["rows"] == args.rows
            local_times.append(wall)
            local_finish.append(meter.last["seconds"])
            wall, body = timed_run(gcs_cfg)
            assert body["output"]["rows"] == args.rows
            gcs_times.append(wall)
            files = len(body["output"]["files"]) + len(body["quarantine"]["files"])
            if not big or meter.last["seconds"] < big["seconds"]:
                big = dict(meter.last, files=files)
        local_wall, gcs_wall = min(local_times), min(gcs_times)
        best = f"best of {args.repeat}, interleaved" if args.repeat > 1 else "one run each"
        for label, wall in (
            ("(L) local disk -> local disk", local_wall),
            ("(G) GCS emulator -> emulator", gcs_wall),
        ):
            print(f"{label} : {wall:6.2f} s  {args.rows / wall:>10,.0f} rows/s  ({best})")
        print(f"ratio G/L: {gcs_wall / local_wall:.2f}  (target <= 1.5)")
        print(
            f"finalize step: {big['seconds']:.2f} s on the emulator "
            f"(local: {min(local_finish):.2f} s)"
        )

        def requests(name: str, src: str, beam_args=None) -> tuple[dict, dict]:
            """The finalize figures of a run into a fresh prefix, then of a rerun replacing it."""
            out = []
            for _ in range(2):
                _, body = timed_run(write_config(work, name, src, f"{bucket}/{name}"), beam_args)
                files = len(body["output"]["files"]) + len(body["quarantine"]["files"])
                out.append(dict(meter.last, files=files))
            return out[0], out[1]

        rows_of = {"small": args.rows // 10, "in": args.rows, "many": args.rows}
        table_rows = [
            ("N/10 rows, 1 process", "small", requests("r_small", f"{bucket}/small/input.parquet")),
            ("N rows,    1 process", "in", requests("r_big", f"{bucket}/in/input.parquet")),
            (
                f"N rows, {args.files} input files, 2 processes",
                "many",
                requests("r_many", f"{bucket}/many/*.parquet", MULTI),
            ),
        ]
        print("finalize requests (privgate's calls / HTTP requests the emulator answered),")
        print("into a fresh prefix | replacing the committed output of the same run:")
        for label, key, (fresh, again) in table_rows:
            print(
                f"  {label:38s} {rows_of[key]:>9,} rows  {fresh['files']:>2} output files  "
                f"{fresh['ours']:>4} | {again['ours']:<4} calls  "
                f"{fresh['http']:>4} | {again['http']:<4} HTTP  "
                f"{fresh['seconds']:5.2f} | {again['seconds']:.2f} s"
            )
    finally:
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
