"""End to end on object stores: CSV in a bucket -> multi-process FnApiRunner -> output in a
bucket -> `privgate finalize` in another process -> `verify` / `read` from the bucket, on the
GCS emulator and on moto's S3, plus launchers killed between the commit's steps."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import MULTI_PROCESS, cli, write_config
from tests.gcs_peer import GcsEmulator
from tests.moto_peer import MotoServer

CRASH = "PRIVGATE_TEST_CRASH_AT"


@pytest.fixture(scope="module", params=["gs", "s3"])
def store(request, tmp_path_factory):
    """A bucket on a loopback peer, the peer's client environment set in this process."""
    workdir = tmp_path_factory.mktemp(f"peer-{request.param}")
    if request.param == "gs":
        peer = GcsEmulator(workdir).start()
        bucket = peer.create_bucket("privgate-test")
        env = peer.client_env()
    else:
        peer = MotoServer(workdir).start()
        env = dict(peer.client_env(), AWS_ENDPOINT_URL=peer.endpoint)
        peer.client("s3").create_bucket(
            Bucket="privgate-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        bucket = "s3://privgate-test"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield bucket, env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        peer.stop()


@pytest.fixture(scope="module")
def bucket_config(store, tmp_path_factory, keyring_path, demo_csv):
    """A config reading the demo CSV from the bucket and writing `<bucket>/out`."""
    from privgate import storage

    bucket, _ = store
    storage.upload(demo_csv, f"{bucket}/in/customers.csv")
    tmp = tmp_path_factory.mktemp("cfg")
    cfg = write_config(tmp, input_path=f"{bucket}/in/*.csv", keyring=keyring_path)
    text = open(cfg).read().replace(f"path: {tmp / 'out'}", f"path: {bucket}/out")
    with open(cfg, "w") as f:
        f.write(text)
    return cfg, f"{bucket}/out"


def _verify(out: str, keyring: str) -> dict | None:
    """The verify summary, or None when verify refuses the prefix."""
    r = cli("verify", out, "--keyring", keyring, "--json")
    if r.returncode != 0:
        assert "privgate: error:" in r.stderr, r.stderr
        return None
    return json.loads(r.stdout)


def _stagings(out: str) -> list[str]:
    from pipelines.object_staging import list_stagings

    return list_stagings(out)


def test_a_bucket_run_on_two_processes_is_finalized_by_another_process(
    store, bucket_config, keyring_path
):
    import privgate

    cfg, out = bucket_config
    killed = cli("run", cfg, "--no-progress", *MULTI_PROCESS, env={CRASH: "pipeline"})
    assert killed.returncode == 70, killed.stderr
    assert _verify(out, keyring_path) is None  # no manifest: refused
    (staging,) = _stagings(out)

    done = cli("finalize", out)
    assert done.returncode == 0, done.stderr
    assert "303 rows in, 300 protected, 3 quarantined" in done.stdout
    summary = _verify(out, keyring_path)
    assert summary is not None and summary["rows"] == 300
    assert staging.rsplit("/", 1)[1] == summary["run_id"]
    assert _stagings(out) == []

    rows = cli("read", out, "--keyring", keyring_path, "--columns", "plan", "--limit", "5")
    assert rows.returncode == 0, rows.stderr
    assert rows.stdout.splitlines()[0] == '"plan"' and len(rows.stdout.splitlines()) == 6
    table = privgate.read_table(out, keyring=keyring_path, columns=["plan"])
    assert table.num_rows == 300
    again = cli("finalize", out)
    assert again.returncode == 0 and "already finalized" in again.stdout, again.stderr


def test_a_bucket_run_finalizes_in_one_command(store, bucket_config, keyring_path):
    from pipelines.run import run

    cfg, out = bucket_config
    doc = run(cfg, show_progress=False)
    assert doc["output_dir"] == out
    summary = _verify(out, keyring_path)
    assert summary["run_id"] == doc["manifest"]["run_id"]
    assert _stagings(out) == []


@pytest.mark.parametrize(
    "step, old_readable",
    [
        ("pipeline", True),  # the job ran; nothing of the target touched
        ("signed", True),  # reconciled and signed; not committed
        ("removed-manifest", False),
        ("removed-old", False),
        ("copied", False),
        ("committed", False),  # manifest written, marker not yet removed
    ],
)
def test_a_launcher_killed_at_any_step_leaves_the_old_output_or_a_refused_prefix(
    store, bucket_config, keyring_path, step, old_readable
):
    import privgate
    from privgate import storage
    from privgate.errors import VerifyError

    cfg, out = bucket_config
    if _verify(out, keyring_path) is None:
        assert cli("run", cfg, "--no-progress").returncode == 0
    old = _verify(out, keyring_path)["run_id"]

    killed = cli("run", cfg, "--no-progress", env={CRASH: step})
    assert killed.returncode == 70, killed.stderr
    after = _verify(out, keyring_path)
    if old_readable:
        assert after is not None and after["run_id"] == old
    else:
        assert after is None  # never a readable half
        with pytest.raises(VerifyError):  # the consumer API refuses it too
            privgate.read_table(out, keyring=keyring_path)

    (staging,) = _stagings(out)
    done = cli("finalize", staging)
    assert done.returncode == 0, done.stderr
    new = _verify(out, keyring_path)
    assert new is not None and new["run_id"] == staging.rsplit("/", 1)[1] != old
    assert _stagings(out) == [] and not storage.exists(f"{out}/.privgate-publishing")


def test_finalize_refuses_an_incomplete_job_output_and_keeps_its_staging(
    store, bucket_config, keyring_path
):
    from privgate import storage

    cfg, out = bucket_config
    killed = cli("run", cfg, "--no-progress", env={CRASH: "pipeline"})
    assert killed.returncode == 70
    (staging,) = _stagings(out)
    shard = next(p for p in storage.list_objects(staging) if p.startswith("quarantine/part-"))
    storage.delete(f"{staging}/{shard}")  # as if the job had not written it yet
    before = _verify(out, keyring_path)
    refused = cli("finalize", out)
    assert refused.returncode == 1 and "incomplete" in refused.stderr, refused.stderr
    assert _stagings(out) == [staging]
    assert _verify(out, keyring_path) == before  # the target untouched
    storage.delete_prefix(staging)


def test_verify_refuses_an_extra_missing_or_changed_object(store, bucket_config, keyring_path):
    from privgate import storage

    cfg, out = bucket_config
    assert cli("run", cfg, "--no-progress").returncode == 0
    body = json.loads(storage.read_bytes(f"{out}/manifest.json"))["manifest"]
    first = body["output"]["files"][0]["path"]
    data = storage.read_bytes(f"{out}/{first}")

    storage.write_bytes(f"{out}/data/extra.parquet", b"x")
    assert _verify(out, keyring_path) is None
    storage.delete(f"{out}/data/extra.parquet")
    assert _verify(out, keyring_path) is not None

    storage.delete(f"{out}/{first}")
    assert _verify(out, keyring_path) is None
    storage.write_bytes(f"{out}/{first}", data[:-1] + bytes([data[-1] ^ 1]))
    assert _verify(out, keyring_path) is None
    storage.write_bytes(f"{out}/{first}", data)
    assert _verify(out, keyring_path) is not None


def test_a_staging_is_cleaned_only_when_its_run_is_provably_dead(
    store, bucket_config, keyring_path
):
    from pipelines.object_staging import RUN_RECORD
    from privgate import storage

    cfg, out = bucket_config
    assert cli("run", cfg, "--no-progress", env={CRASH: "pipeline"}).returncode == 70
    (dead,) = _stagings(out)  # a local run whose launcher is gone
    remote = f"{dead.rsplit('/', 1)[0]}/20000101T000000Z-dataflow"
    record = json.loads(storage.read_bytes(f"{dead}/{RUN_RECORD}"))
    record.update(run_id=remote.rsplit("/", 1)[1], runner="dataflow")
    storage.write_bytes(f"{remote}/{RUN_RECORD}", json.dumps(record).encode())
    assert cli("run", cfg, "--no-progress").returncode == 0
    assert _stagings(out) == [remote]  # a Dataflow job is never proven dead here
    storage.delete_prefix(remote)
