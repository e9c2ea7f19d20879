"""Real Dataflow runs against loopback peers: `privgate run --runner DataflowRunner` submits the
job to a fake Dataflow endpoint (tests/dataflow_fake.py), which runs the staged pipeline proto
in worker processes, then the launcher finalizes; `--no_wait` submits and exits unsigned and
`privgate finalize` (another process) commits. Nothing reaches a non-loopback host, and the
submitted job and staged artifacts hold no key byte."""

# ruff: noqa: F401, F811 -- fixtures imported from other test modules, used as arguments

import re

import pytest

import pipelines.finalize
from pipelines.run import run
from privgate import manifest as mf
from privgate import storage
from tests.conftest import cli, key_forms, write_config
from tests.dataflow_fake import FakeDataflow, gcs_objects, loopback_only
from tests.test_dataflow import _unpacked
from tests.test_dataflow_keys import aws_keyring_on_gcs, gcp_keyring_on_gcs, gcs
from tests.test_kms_aws import moto

BUCKET = "gs://demo-bucket"


@pytest.fixture(scope="module")
def gcs_input(gcs, demo_csv):
    uri = f"{BUCKET}/raw/customers.csv"
    with open(demo_csv, "rb") as f:
        storage.write_bytes(uri, f.read())
    return uri


def _config(tmp_path, gcs_input, keyring, name: str, kms: str = "aws-kms") -> tuple[str, str]:
    uri, settings = keyring
    cfg = write_config(
        tmp_path,
        input_path=gcs_input,
        keyring=uri,
        kms=kms,
        kms_settings=settings,
        privacy="{record_epsilon_max: 3.0, lifetime_epsilon_max: 1000, "
        f"ledger: {tmp_path}/ledger.json}}",
    )
    output = f"{BUCKET}/protected/{name}"
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace(f"  path: {tmp_path / 'out'}\n", f"  path: {output}\n"))
    return cfg, output


def _dataflow_args(fake: FakeDataflow) -> list[str]:
    return [
        "--runner=DataflowRunner",
        "--project=demo-proj",
        "--region=europe-west1",
        f"--temp_location={BUCKET}/tmp",
        f"--dataflow_endpoint={fake.endpoint}",  # REST, as it names localhost
        "--no_auth",  # anonymous Dataflow and staging clients
    ]


@pytest.fixture
def fake_dataflow(gcs, request):
    fake = FakeDataflow(auto_run=getattr(request, "param", True)).start()
    yield fake
    fake.stop()


def _scan_for_keys(fake, gcs, job_id, keyring_uri):
    """The submitted job's JSON and every object staged under temp_location, pickles
    unpacked: no key byte; the keyring *path* is there (so the scan sees inside pickles)."""
    blobs = [fake.jobs[job_id]["body"]]
    staged = gcs_objects(f"{BUCKET}/tmp")
    assert any(u.endswith("/pipeline.pb") for u in staged), staged
    blobs += [storage.read_bytes(u) for u in staged]
    text = b"\n".join(part for blob in blobs for part in _unpacked(blob))
    assert keyring_uri.encode() in text and b"ProtectColumnsFn" in text
    for form in key_forms(keyring_uri):
        assert form not in text


@pytest.mark.parametrize("kms", ["aws-kms", "gcp-kms"])
def test_dataflow_run_submits_waits_then_finalizes(
    monkeypatch, request, tmp_path, gcs, gcs_input, fake_dataflow, kms
):
    from privgate.reader import read_table, verify

    keyring = request.getfixturevalue(f"{kms[:3]}_keyring_on_gcs")
    cfg, output = _config(tmp_path, gcs_input, keyring, f"waited-{kms}", kms)
    manifest_uri = storage.join(output, "manifest.json")
    at_finalize = []
    real_finalize = pipelines.finalize.finalize

    def spy(staging, **kw):
        (job_id,) = fake_dataflow.jobs
        at_finalize.append((fake_dataflow.state(job_id), storage.exists(manifest_uri)))
        return real_finalize(staging, **kw)

    monkeypatch.setattr(pipelines.finalize, "finalize", spy)
    refused = loopback_only(monkeypatch)
    doc = run(cfg, _dataflow_args(fake_dataflow), show_progress=False)
    assert refused == []
    (job_id,) = fake_dataflow.jobs
    assert fake_dataflow.errors == {}
    # finalize ran once, after the job was done and before any manifest existed
    assert at_finalize == [("JOB_STATE_DONE", False)]
    assert doc["output_dir"] == output and storage.exists(manifest_uri)
    body = verify(output, keyring=keyring[0])
    assert body["run_id"] == doc["manifest"]["run_id"]
    r = body["reconciliation"]
    assert body["encryption"]["kms"] == kms
    assert r["input_rows"] >= 300 and r["output_rows"] + r["quarantined_rows"] == r["input_rows"]
    assert read_table(output, keyring=keyring[0]).num_rows == r["output_rows"]
    job = fake_dataflow.jobs[job_id]["job"]
    assert job["labels"]["privgate-run"] == body["run_id"].lower()
    assert fake_dataflow.requests[0][0] == "POST"
    _scan_for_keys(fake_dataflow, gcs, job_id, keyring[0])


@pytest.mark.parametrize("fake_dataflow", [False], indirect=True)  # the job waits for run_job
def test_no_wait_submits_unsigned_and_finalize_commits_after_the_job(
    monkeypatch, capsys, tmp_path, gcs, gcs_input, aws_keyring_on_gcs, fake_dataflow
):
    from pipelines.cli import main

    cfg, output = _config(tmp_path, gcs_input, aws_keyring_on_gcs, "nowait")
    signed = []
    monkeypatch.setattr(mf, "sign", lambda *a, **k: signed.append(1))
    refused = loopback_only(monkeypatch)
    rc = main(["run", cfg, *_dataflow_args(fake_dataflow), "--no_wait", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert refused == [] and signed == []
    (job_id,) = fake_dataflow.jobs
    assert fake_dataflow.state(job_id) == "JOB_STATE_QUEUED"
    staging = re.search(r"staging +(\S+)", out).group(1)
    assert f"submitted Dataflow job {job_id}" in out and f"privgate finalize {staging}" in out
    assert staging.startswith(f"{BUCKET}/protected/.nowait.privgate-tmp/")
    assert not storage.exists(storage.join(output, "manifest.json"))
    monkeypatch.undo()  # the finalize processes below sign for real

    early = cli("finalize", staging)  # the job has not run: its output is incomplete
    assert early.returncode == 1 and "incomplete" in early.stderr, early.stderr[-2000:]
    assert not storage.exists(storage.join(output, "manifest.json"))

    fake_dataflow.run_job(job_id)
    assert fake_dataflow.state(job_id) == "JOB_STATE_DONE", fake_dataflow.errors
    listed = gcs_objects(f"{BUCKET}/protected")
    assert any(u.startswith(staging) for u in listed), listed
    done = cli("finalize", output)  # by the output path: the one staging beside it
    assert done.returncode == 0, done.stderr[-2000:]
    assert storage.exists(storage.join(output, "manifest.json"))
    again = cli("finalize", output)
    assert again.returncode == 0 and "already finalized" in again.stdout
    ver = cli("verify", output, "--keyring", aws_keyring_on_gcs[0])
    assert ver.returncode == 0, ver.stderr[-2000:]
    _scan_for_keys(fake_dataflow, gcs, job_id, aws_keyring_on_gcs[0])


@pytest.mark.parametrize("fake_dataflow", ["fail"], indirect=True)
def test_a_failed_job_commits_nothing_and_keeps_its_staging(
    monkeypatch, tmp_path, gcs, gcs_input, aws_keyring_on_gcs, fake_dataflow
):
    from privgate.errors import DataError

    cfg, output = _config(tmp_path, gcs_input, aws_keyring_on_gcs, "failed")
    refused = loopback_only(monkeypatch)
    with pytest.raises(DataError) as e:
        run(cfg, _dataflow_args(fake_dataflow), show_progress=False)
    assert refused == []
    (job_id,) = fake_dataflow.jobs
    assert f"Dataflow job {job_id}" in str(e.value) and "nothing was committed" in str(e.value)
    assert "Traceback" not in str(e.value)  # the job's error text is not repeated
    assert not storage.exists(storage.join(output, "manifest.json"))
    assert any("/.failed.privgate-tmp/" in u for u in gcs_objects(f"{BUCKET}/protected")), (
        "staging kept"
    )


def test_the_loopback_guard_refuses_a_google_host(monkeypatch):
    import socket

    refused = loopback_only(monkeypatch)
    with pytest.raises(OSError, match="non-loopback"):
        socket.create_connection(("dataflow.googleapis.com", 443), timeout=1)
    with pytest.raises(OSError, match="non-loopback"):
        socket.socket().connect(("142.250.0.1", 443))
    assert refused == ["dataflow.googleapis.com", "142.250.0.1"]


def test_a_kept_direct_identifier_fails_before_a_job_is_submitted(
    monkeypatch, tmp_path, gcs, gcs_input, aws_keyring_on_gcs, fake_dataflow
):
    """The keep-guard runs on the launcher before the submit (no gates: it would fail
    finalize after a paid-for job): exit 3 naming the column, no job, no staging."""
    import os

    import yaml

    from privgate.errors import GateError
    from tests.conftest import ROOT

    with open(os.path.join(ROOT, "schemas", "demo_customers.yaml")) as f:
        schema = yaml.safe_load(f)
    schema["columns"]["email"] = {"type": "string", "action": "keep"}
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    cfg, output = _config(tmp_path, gcs_input, aws_keyring_on_gcs, "kept-email")
    text = open(cfg).read()
    text = re.sub(r"(?m)^schema: .*$", f"schema: {tmp_path / 'schema.yaml'}", text)
    open(cfg, "w").write(text)
    refused = loopback_only(monkeypatch)
    with pytest.raises(GateError, match="email") as e:
        run(cfg, _dataflow_args(fake_dataflow), show_progress=False)
    assert e.value.exit_code == 3 and "@" not in str(e.value)  # the column, not a value
    assert refused == [] and fake_dataflow.jobs == {} and fake_dataflow.requests == []
    assert not any("kept-email" in u for u in gcs_objects(f"{BUCKET}/protected"))
    r = cli("run", cfg, *_dataflow_args(fake_dataflow), "--no-progress")
    assert r.returncode == 3 and "email" in r.stderr, r.stderr
    assert fake_dataflow.jobs == {}
