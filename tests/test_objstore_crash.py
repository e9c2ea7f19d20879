"""The commit protocol on an object store (the GCS emulator): a launcher killed between any
two steps (`PRIVGATE_TEST_CRASH_AT`, an `os._exit` at a checkpoint: no cleanup, like a kill)
leaves the old committed output or a prefix readers refuse, never a readable half; `privgate
finalize` or a new run completes it; stale stagings go only when their run is provably dead."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli
from tests.objstore_peers import bucket_config, bucket_store, stagings, verify_summary

CRASH = "PRIVGATE_TEST_CRASH_AT"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with bucket_store("gs", tmp_path_factory.mktemp("peer-gs")) as s:
        yield s


@pytest.fixture(scope="module")
def config(store, tmp_path_factory, keyring_path, demo_csv):
    return bucket_config(store[0], tmp_path_factory.mktemp("cfg"), keyring_path, demo_csv)


@pytest.mark.parametrize(
    "step, old_readable",
    [
        ("pipeline", True),  # the job ran; nothing of the target touched
        ("signed", True),  # reconciled and signed; not committed
        ("removed-manifest", False),
        ("removed-old", False),
        ("copied", False),
        ("committed", True),  # manifest written, staging not yet removed
    ],
)
def test_a_launcher_killed_at_any_step_leaves_the_old_output_or_a_refused_prefix(
    config, keyring_path, step, old_readable
):
    import privgate
    from privgate.errors import VerifyError

    cfg, out = config
    if verify_summary(out, keyring_path) is None:
        assert cli("run", cfg, "--no-progress").returncode == 0
    old = verify_summary(out, keyring_path)["run_id"]

    killed = cli("run", cfg, "--no-progress", env={CRASH: step})
    assert killed.returncode == 70, killed.stderr
    after = verify_summary(out, keyring_path)
    if step == "committed":
        assert after is not None and after["run_id"] != old
    elif old_readable:
        assert after is not None and after["run_id"] == old
    else:
        assert after is None  # never a readable half
        with pytest.raises(VerifyError):  # the consumer API refuses it too
            privgate.read_table(out, keyring=keyring_path)

    (staging,) = stagings(out)
    done = cli("finalize", staging)
    assert done.returncode == 0, done.stderr
    new = verify_summary(out, keyring_path)
    assert new is not None and new["run_id"] == staging.rsplit("/", 1)[1] != old
    assert stagings(out) == []


def test_a_staging_is_cleaned_only_when_its_run_is_provably_dead(config, keyring_path):
    from pipelines.object_staging import RUN_RECORD
    from privgate import storage

    cfg, out = config
    assert cli("run", cfg, "--no-progress", env={CRASH: "pipeline"}).returncode == 70
    (dead,) = stagings(out)  # a local run whose launcher is gone
    remote = f"{dead.rsplit('/', 1)[0]}/20000101T000000Z-dataflow"
    record = json.loads(storage.read_bytes(f"{dead}/{RUN_RECORD}"))
    record.update(run_id=remote.rsplit("/", 1)[1], runner="dataflow")
    storage.write_bytes(f"{remote}/{RUN_RECORD}", json.dumps(record).encode())
    assert cli("run", cfg, "--no-progress").returncode == 0
    assert stagings(out) == [remote]  # a Dataflow job is never proven dead here
    storage.delete_prefix(remote)


def test_a_new_run_replaces_a_half_committed_output(config, keyring_path):
    cfg, out = config
    assert cli("run", cfg, "--no-progress", env={CRASH: "removed-old"}).returncode == 70
    assert verify_summary(out, keyring_path) is None
    (half,) = stagings(out)
    rerun = cli("run", cfg, "--no-progress")
    assert rerun.returncode == 0, rerun.stderr
    summary = verify_summary(out, keyring_path)
    assert summary is not None and summary["run_id"] != half.rsplit("/", 1)[1]
    assert stagings(out) == [half]  # dead, but its commit had begun: kept until then
    assert cli("run", cfg, "--no-progress").returncode == 0
    assert stagings(out) == []  # the target is committed now: the dead staging goes


def test_a_run_with_canaries_commits_them_on_a_bucket(store, tmp_path, keyring_path):
    """The canary sink (`canaries/`) is a staged sink like the others: checked whole,
    mirrored, copied, listed."""
    from privgate import storage
    from tests.canary_data import CANARIES, SCHEMA, write_customers
    from tests.conftest import write_config

    bucket = store[0]
    storage.upload(write_customers(tmp_path / "customers.csv", 400), f"{bucket}/cin/c.csv")
    cfg = write_config(
        tmp_path, input_path=f"{bucket}/cin/*.csv", keyring=keyring_path, schema=SCHEMA
    )
    text = open(cfg).read().replace(f"path: {tmp_path / 'out'}", f"path: {bucket}/cout")
    with open(cfg, "w") as f:
        f.write(text + CANARIES + "\n")
    assert cli("run", cfg, "--no-progress", env={CRASH: "pipeline"}).returncode == 70
    done = cli("finalize", f"{bucket}/cout")
    assert done.returncode == 0, done.stderr
    summary = verify_summary(f"{bucket}/cout", keyring_path)
    assert summary is not None
    body = json.loads(storage.read_bytes(f"{bucket}/cout/manifest.json"))["manifest"]
    assert body["canaries"]["files"] and body["reconciliation"]["canary_rows"] > 0
    listed = {f["path"] for f in body["canaries"]["files"]}
    assert listed <= set(storage.list_objects(f"{bucket}/cout"))
