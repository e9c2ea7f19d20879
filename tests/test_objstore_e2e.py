"""End to end on object stores: CSV in a bucket -> multi-process FnApiRunner -> output in a
bucket -> `privgate finalize` in another process -> `verify` / `read` from the bucket, on the
GCS emulator and on moto's S3 (both on loopback, started here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import MULTI_PROCESS, ROOT, cli
from tests.objstore_peers import bucket_config, bucket_store, stagings, verify_summary
from tests.test_pipeline import raw_rows

CRASH = "PRIVGATE_TEST_CRASH_AT"


@pytest.fixture(scope="module", params=["gs", "s3"])
def store(request, tmp_path_factory):
    with bucket_store(request.param, tmp_path_factory.mktemp(f"peer-{request.param}")) as s:
        yield s


@pytest.fixture(scope="module")
def config(store, tmp_path_factory, keyring_path, demo_csv):
    return bucket_config(store[0], tmp_path_factory.mktemp("cfg"), keyring_path, demo_csv)


def test_a_bucket_run_on_two_processes_is_finalized_by_another_process(
    config, keyring_path, demo_csv
):
    import privgate

    cfg, out = config
    killed = cli("run", cfg, "--no-progress", *MULTI_PROCESS, env={CRASH: "pipeline"})
    assert killed.returncode == 70, killed.stderr
    assert verify_summary(out, keyring_path) is None  # no manifest: refused
    (staging,) = stagings(out)

    done = cli("finalize", out)
    assert done.returncode == 0, done.stderr
    assert "303 rows in, 300 protected, 3 quarantined" in done.stdout
    summary = verify_summary(out, keyring_path)
    assert summary is not None and summary["rows"] == 300
    assert staging.rsplit("/", 1)[1] == summary["run_id"]
    assert stagings(out) == []

    rows = cli("read", out, "--keyring", keyring_path, "--columns", "plan", "--limit", "5")
    assert rows.returncode == 0, rows.stderr
    assert rows.stdout.splitlines()[0] == '"plan"' and len(rows.stdout.splitlines()) == 6
    table = privgate.read_table(out, keyring=keyring_path, columns=["plan"])
    assert table.num_rows == 300
    again = cli("finalize", out)
    assert again.returncode == 0 and "already finalized" in again.stdout, again.stderr

    ssn = privgate.read_table(out, keyring=keyring_path, columns=["ssn"], limit=2)
    back = cli(
        "reidentify", out, "--column", "ssn", "--keyring", keyring_path, *ssn["ssn"].to_pylist()
    )
    assert back.returncode == 0, back.stderr
    assert back.stdout.split() == [r["ssn"] for r in raw_rows(demo_csv)[:2]]


def test_a_bucket_run_finalizes_in_one_command(config, keyring_path):
    """...and a training job reads it from the bucket without loading Beam (the consumer API
    uses pyarrow's clients, checked in a fresh interpreter after real calls)."""
    from pipelines.run import run

    cfg, out = config
    doc = run(cfg, show_progress=False)
    assert doc["output_dir"] == out
    summary = verify_summary(out, keyring_path)
    assert summary["run_id"] == doc["manifest"]["run_id"]
    assert stagings(out) == []
    code = f"""
import json, sys
import privgate
body = privgate.verify({out!r}, keyring={keyring_path!r})
table = privgate.read_table({out!r}, keyring={keyring_path!r}, columns=["plan"])
print(json.dumps({{"run_id": body["run_id"], "rows": table.num_rows,
    "beam": [m for m in sys.modules if m.startswith("apache_beam")]}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen == {"run_id": summary["run_id"], "rows": 300, "beam": []}


def test_finalize_refuses_an_incomplete_job_output_and_keeps_its_staging(config, keyring_path):
    from privgate import storage

    cfg, out = config
    killed = cli("run", cfg, "--no-progress", env={CRASH: "pipeline"})
    assert killed.returncode == 70
    (staging,) = stagings(out)
    shard = next(p for p in storage.list_objects(staging) if p.startswith("quarantine/part-"))
    storage.delete(f"{staging}/{shard}")  # as if the job had not written it yet
    before = verify_summary(out, keyring_path)
    refused = cli("finalize", out)
    assert refused.returncode == 1 and "incomplete" in refused.stderr, refused.stderr
    assert stagings(out) == [staging]
    assert verify_summary(out, keyring_path) == before  # the target untouched
    storage.delete_prefix(staging)


def test_verify_refuses_an_extra_missing_or_changed_object(config, keyring_path):
    from privgate import storage

    cfg, out = config
    assert cli("run", cfg, "--no-progress").returncode == 0
    body = json.loads(storage.read_bytes(f"{out}/manifest.json"))["manifest"]
    first = body["output"]["files"][0]["path"]
    data = storage.read_bytes(f"{out}/{first}")

    storage.write_bytes(f"{out}/data/extra.parquet", b"x")
    assert verify_summary(out, keyring_path) is None
    storage.delete(f"{out}/data/extra.parquet")
    assert verify_summary(out, keyring_path) is not None

    storage.delete(f"{out}/{first}")
    assert verify_summary(out, keyring_path) is None
    storage.write_bytes(f"{out}/{first}", data[:-1] + bytes([data[-1] ^ 1]))
    assert verify_summary(out, keyring_path) is None
    storage.write_bytes(f"{out}/{first}", data)
    assert verify_summary(out, keyring_path) is not None


def test_scan_reads_an_input_in_a_bucket(store):
    bucket = store[0]
    from privgate import storage

    storage.write_bytes(f"{bucket}/scan/people.jsonl", b'{"email": "ann@example.com", "n": 1}\n')
    r = cli("scan", f"{bucket}/scan/people.jsonl", "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    assert "email" in r.stdout and "EMAIL_ADDRESS" in r.stdout


def test_mondrian_spills_into_the_bucket_staging_and_leaves_nothing_behind(
    store, tmp_path, keyring_path, demo_csv
):
    """Enforced k-anonymity on a bucket: the rounds read their encrypted spill files from the
    staging in the bucket (two worker processes), and the commit removes them."""
    import collections
    import os

    import privgate
    from privgate import storage

    bucket = store[0]
    cfg, _ = bucket_config(bucket, tmp_path, keyring_path, demo_csv)
    out = f"{bucket}/anon"
    zip3 = os.path.join(ROOT, "configs", "hierarchies", "demo", "zip3.csv")
    with open(cfg, encoding="utf-8") as f:
        text = f.read().replace(f"path: {bucket}/out", f"path: {out}")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(
            text + "anonymize:\n  k: 5\n  quasi_identifiers: [age, zip]\n"
            f"  hierarchies: {{zip: {zip3}}}\n  max_suppression: 0.05\n  local_rows: 60\n"
        )
    killed = cli("run", cfg, "--no-progress", *MULTI_PROCESS, env={CRASH: "pipeline"})
    assert killed.returncode == 70, killed.stderr
    (staging,) = stagings(out)
    spilled = [p for p in storage.list_objects(staging) if p.startswith("_work/anonymize/")]
    assert {p.split("/")[2] for p in spilled} == {"rows", "leaves"}
    done = cli("finalize", out)
    assert done.returncode == 0, done.stderr
    body = verify_summary(out, keyring_path)
    assert body is not None and body["rows"] == 300
    cert = json.loads(storage.read_bytes(f"{out}/manifest.json"))["manifest"]["anonymize"]
    assert cert["partitions"] >= 3 and cert["k_reached"] >= 5  # distributed rounds ran
    t = privgate.read_table(out, keyring=keyring_path, columns=["age", "zip"])
    sizes = collections.Counter(zip(t["age"].to_pylist(), t["zip"].to_pylist(), strict=True))
    assert min(n for key, n in sizes.items() if key != (None, None)) >= 5
    assert stagings(out) == []
    assert not [p for p in storage.list_objects(bucket) if "_work" in p or "anonymize/" in p]
