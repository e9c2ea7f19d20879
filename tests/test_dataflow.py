"""Dataflow readiness, offline: `--runner DataflowRunner --dry_run=True` builds and validates
the job without credentials or network and writes nothing; the job carries no key; usage
errors that would make Beam hang are refused up front; the flex template's metadata names
what its launcher accepts."""

# ruff: noqa: F401, F811 -- fixtures imported from other test modules, used as arguments

import base64
import bz2
import json
import os
import re
import time
import zlib

import pytest

from pipelines.run import run
from privgate.errors import ConfigError
from tests.conftest import PASSPHRASE, ROOT, cli, key_forms, write_config
from tests.test_kms_aws import created_settings, moto

DATAFLOW = [
    "--runner",
    "DataflowRunner",
    "--project",
    "demo-proj",
    "--region",
    "europe-west1",
    "--temp_location",
    "gs://demo-bucket/tmp",
]
STAGES = (
    "ListInputs",
    "Distribute",
    "Protect/ReadFiles",
    "Protect/CheckContract",
    "Protect/ProtectColumns",
    "Protect/WriteProtected",
    "Protect/WriteQuarantine",
    "Protect/WriteStats",
)


@pytest.fixture(scope="module")
def cloud_keyring(moto, tmp_path_factory):
    """An aws-kms keyring (moto; the only kinds a Dataflow job may use are cloud KMSs): its
    path, settings, every form of its keys and its token key (taken before a test refuses the
    network)."""
    from privgate.keyring import init_keyring

    path = str(tmp_path_factory.mktemp("cloud-keys") / "keyring.json")
    settings = created_settings(moto)
    token = init_keyring(path, "aws-kms", settings).data_key("token")
    return path, settings, key_forms(path), token


def _config(tmp_path, demo_csv, cloud_keyring) -> str:
    path, settings, *_ = cloud_keyring
    return write_config(
        tmp_path, input_path=demo_csv, keyring=path, kms="aws-kms", kms_settings=settings
    )


def _on_gcs(cfg_path, tmp_path, *, output="gs://demo-bucket/protected/test_ds", input=None):
    """Point the config's output (and optionally input) at gs:// URIs."""
    with open(cfg_path) as f:
        text = f.read()
    text = text.replace(f"  path: {tmp_path / 'out'}\n", f"  path: {output}\n")
    if input is not None:
        text = re.sub(r"(input:\n  path: ).*\n", rf"\g<1>{input}\n", text)
    with open(cfg_path, "w") as f:
        f.write(text)
    return cfg_path


def _unpacked(blob: bytes) -> list[bytes]:
    """`blob` plus every pickled payload inside it: Beam stores DoFns, sinks and Create's
    values as base64 of bz2 (or zlib) compressed pickles, where a key would not show."""
    out = [blob]
    for m in re.finditer(rb"[A-Za-z0-9+/]{64,}={0,2}", blob):
        try:
            raw = base64.b64decode(m.group(0))
        except ValueError:
            continue
        for decompress in (bz2.decompress, zlib.decompress):
            try:
                out.append(decompress(raw))
            except (OSError, ValueError, zlib.error):
                pass
    return out


def test_dry_run_cli_validates_the_job_and_writes_nothing(tmp_path, cloud_keyring, demo_csv):
    cfg = _config(tmp_path, demo_csv, cloud_keyring)
    before = sorted(os.listdir(tmp_path))
    t0 = time.monotonic()
    r = cli("run", cfg, *DATAFLOW, "--dry_run=True", "--setup_file", "./setup.py")
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    assert "dry run" in r.stdout and "nothing was submitted and no output was written" in r.stdout
    assert "DataflowRunner job beamapp-" in r.stdout
    assert "Traceback" not in r.stderr
    assert elapsed < 60, f"dry run took {elapsed:.1f} s"
    assert sorted(os.listdir(tmp_path)) == before  # no output, no staging directory


def test_dry_run_job_holds_the_graph_and_no_key(network_refused, tmp_path, cloud_keyring, demo_csv):
    cfg = _on_gcs(_config(tmp_path, demo_csv, cloud_keyring), tmp_path)
    doc = run(cfg, [*DATAFLOW, "--dry_run=True"], show_progress=False)
    assert doc["dry_run"] is True
    assert doc["output_dir"] == "gs://demo-bucket/protected/test_ds"
    assert doc["staging"].startswith("gs://demo-bucket/protected/.test_ds.privgate-tmp/")
    job = doc["result"].job
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert set(STAGES) <= names
    assert doc["transforms"] == len(names)

    blob = job.proto_pipeline.SerializeToString() + type(job.proto).serialize(job.proto)
    blob += json.dumps(job.options.get_all_options(), default=str).encode()
    parts = _unpacked(blob)
    text = b"\n".join(parts)
    # The scan sees inside the pickled DoFns: the keyring *path* and the staging prefix are
    # there (workers open the keyring in setup()), so a key would be found too.
    keyring_path, _, forms, _ = cloud_keyring
    assert os.path.abspath(keyring_path).encode() in text
    assert b"ProtectColumnsFn" in text and doc["staging"].encode() in text
    assert os.path.abspath(keyring_path).encode() not in blob  # only inside the pickles
    for form in forms:
        assert form not in text
    assert PASSPHRASE.encode() not in text


def test_dry_run_with_gs_input_lists_nothing(network_refused, tmp_path, cloud_keyring, demo_csv):
    cfg = _on_gcs(
        _config(tmp_path, demo_csv, cloud_keyring),
        tmp_path,
        input="gs://demo-bucket/raw/*.csv",
    )
    doc = run(cfg, [*DATAFLOW, "--dry_run=True"], show_progress=False)
    assert doc["input_files"] == ["gs://demo-bucket/raw/*.csv"]
    assert any("not listed" in n for n in doc["notes"])
    assert os.listdir(tmp_path) == ["run.yaml"]


def test_non_gs_temp_location_is_a_quick_usage_error(tmp_path, cloud_keyring, demo_csv):
    cfg = _config(tmp_path, demo_csv, cloud_keyring)
    args = [a if a != "gs://demo-bucket/tmp" else str(tmp_path / "tmp") for a in DATAFLOW]
    t0 = time.monotonic()
    r = cli("run", cfg, *args, "--dry_run=True")
    elapsed = time.monotonic() - t0
    assert r.returncode == 2, r.stderr[-2000:]
    assert "--temp_location" in r.stderr and "gs://" in r.stderr
    assert elapsed < 30, f"took {elapsed:.1f} s (Beam's credential retries take ~120 s)"
    assert sorted(os.listdir(tmp_path)) == ["run.yaml"]


@pytest.mark.parametrize(
    "drop, extra, key",
    [
        ("--temp_location", ["--dry_run=True"], "--temp_location"),  # missing: Beam would hang
        ("--project", ["--dry_run=True"], "--project"),
        (None, ["--dry_run=False"], "input.path"),  # a real run ('False' is truthy to Beam)
        (None, [], "input.path"),  # a real run: workers cannot read this machine's disk
        (None, ["--dry_run=maybe"], "--dry_run"),
    ],
)
def test_dataflow_usage_errors_exit_2(tmp_path, cloud_keyring, demo_csv, drop, extra, key):
    cfg = _config(tmp_path, demo_csv, cloud_keyring)
    args = list(DATAFLOW)
    if drop:
        i = args.index(drop)
        del args[i : i + 2]
    with pytest.raises(ConfigError) as e:
        run(cfg, args + extra, show_progress=False)
    assert e.value.exit_code == 2 and e.value.key_path == key
    assert sorted(os.listdir(tmp_path)) == ["run.yaml"]


@pytest.mark.parametrize("output", ["gs://demo-bucket", "gs://demo-bucket/"])
def test_dry_run_output_at_a_bucket_root_is_a_config_error(
    tmp_path, cloud_keyring, demo_csv, output
):
    cfg = _on_gcs(_config(tmp_path, demo_csv, cloud_keyring), tmp_path, output=output)
    with pytest.raises(ConfigError) as e:
        run(cfg, [*DATAFLOW, "--dry_run=True"], show_progress=False)
    assert e.value.key_path == "output.path"


def test_real_dataflow_run_with_local_paths_is_refused_by_the_cli(
    tmp_path, cloud_keyring, demo_csv
):
    cfg = _config(tmp_path, demo_csv, cloud_keyring)
    r = cli("run", cfg, *DATAFLOW, "--dry_run=False")
    assert r.returncode == 2
    assert "input.path" in r.stderr and "Dataflow workers cannot reach" in r.stderr
    assert "Traceback" not in r.stderr
    cfg = _on_gcs(cfg, tmp_path, input="gs://demo-bucket/raw/*.csv", output=str(tmp_path / "o"))
    r = cli("run", cfg, *DATAFLOW)
    assert r.returncode == 2 and "output.path" in r.stderr, r.stderr[-2000:]


def test_flex_template_metadata_matches_the_launcher(
    network_refused, tmp_path, cloud_keyring, demo_csv, capsys
):
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines import flex_main

    with open(os.path.join(ROOT, "dataflow", "metadata.json")) as f:
        meta = json.load(f)
    assert meta["name"] and meta["description"]
    params = {p["name"]: p for p in meta["parameters"]}
    assert set(params) == {"config", "dry_run"}
    assert not params["config"]["isOptional"]
    launcher = {a.dest for a in flex_main.parser()._actions}
    beam = set(PipelineOptions([]).get_all_options())
    for name, p in params.items():
        assert name in launcher or name in beam, name
        assert p["label"] and p["helpText"]
    cfg = _config(tmp_path, demo_csv, cloud_keyring)
    assert re.fullmatch(params["config"]["regexes"][0], cfg)
    # What the launcher VM runs: template parameters plus Dataflow's options, no --runner.
    argv = [f"--config={cfg}", "--dry_run=true"] + [
        f"{k}={v}" for k, v in zip(DATAFLOW[2::2], DATAFLOW[3::2], strict=True)
    ]
    assert flex_main.main(argv) == 0
    assert "dry run: DataflowRunner job" in capsys.readouterr().out
    with open(os.path.join(ROOT, "dataflow", "Dockerfile")) as f:
        docker = f.read()
    assert 'ENV FLEX_TEMPLATE_PYTHON_PY_FILE="${WORKDIR}/pipelines/flex_main.py"' in docker
    assert "--require-hashes" in docker and "FLEX_TEMPLATE_PYTHON_SETUP_FILE" in docker


def test_flex_template_launcher_submits_without_waiting(monkeypatch):
    from pipelines import cli, flex_main

    seen = []
    monkeypatch.setattr(cli, "main", lambda argv: seen.append(argv) or 0)
    assert flex_main.main(["--config=/template/configs/x.yaml", "--project=p"]) == 0
    (argv,) = seen
    assert argv[:2] == ["run", "/template/configs/x.yaml"]
    assert "--no_wait" in argv and "--runner=DataflowRunner" in argv


def test_no_wait_with_a_local_runner_is_a_usage_error(tmp_path, cloud_keyring, demo_csv):
    cfg = _config(tmp_path, demo_csv, cloud_keyring)
    with pytest.raises(ConfigError) as e:
        run(cfg, [], show_progress=False, no_wait=True)
    assert e.value.key_path == "--no_wait"
