"""Publication: which output paths a run may replace, and staging beside a concurrent run."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pipelines.config import load_run_config
from pipelines.publish import Staging, local_target
from pipelines.run import run
from privgate.errors import ConfigError
from privgate.reader import verify
from tests.conftest import ROOT, cli, write_config

SCHEMA = """\
columns:
  id:   {type: string, action: tokenize}
  name: {type: string, nullable: true, action: mask, keep_first: 1}
  n:    {type: int, action: generalize, bucket: 10}
"""
CSV = "id,name,n\na,Ann,3\nb,Bob,17\n"


def _input(directory) -> str:
    directory.mkdir(exist_ok=True)
    path = directory / "in.csv"
    path.write_text(CSV)
    return str(path)


def _config(tmp_path, keyring, output="out", input_path=None) -> str:
    input_path = input_path or _input(tmp_path / "data")
    return write_config(
        tmp_path, input_path=input_path, keyring=keyring, schema=SCHEMA, output=output
    )


# --------------------------------------------------------------------------- what a run replaces


def test_input_directory_as_output_is_refused_and_input_survives(tmp_path, keyring_path):
    data = _input(tmp_path / "data")
    r = cli("run", _config(tmp_path, keyring_path, output="data", input_path=data))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "output.path" in r.stderr and "Traceback" not in r.stderr
    assert open(data).read() == CSV
    assert sorted(os.listdir(tmp_path / "data")) == ["in.csv"]


def test_non_empty_foreign_directory_is_refused(tmp_path, keyring_path):
    cfg = _config(tmp_path, keyring_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"output.path: .*not a previous privgate output"):
        run(cfg, show_progress=False)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    assert not [n for n in os.listdir(tmp_path) if ".privgate-" in n]


@pytest.mark.parametrize(
    "manifest",
    [
        "{}",  # JSON, but not a privgate manifest
        '{"manifest": {"format": "privgate-manifest/1"}, "signature": {}}',  # lists nothing
    ],
)
def test_a_foreign_manifest_json_does_not_make_a_directory_replaceable(
    tmp_path, keyring_path, manifest
):
    cfg = load_run_config(_config(tmp_path, keyring_path))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json").write_text(manifest)
    (tmp_path / "out" / "data.csv").write_text("x")
    with pytest.raises(ConfigError, match="output.path"):
        local_target(cfg)


def test_output_path_that_is_a_file_or_a_symlink_is_refused(tmp_path, keyring_path):
    cfg = load_run_config(_config(tmp_path, keyring_path))
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ConfigError, match="output.path: .*not a directory"):
        local_target(cfg)
    os.remove(tmp_path / "out")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "out")
    with pytest.raises(ConfigError, match="output.path: .*symbolic link"):
        local_target(cfg)


def test_empty_directory_and_previous_output_are_replaced(tmp_path, keyring_path):
    cfg = _config(tmp_path, keyring_path)
    (tmp_path / "out").mkdir()
    first = run(cfg, show_progress=False)["manifest"]
    second = run(cfg, show_progress=False)["manifest"]
    assert first["run_id"] != second["run_id"]
    assert verify(str(tmp_path / "out"), keyring=keyring_path)["run_id"] == second["run_id"]
    assert not [n for n in os.listdir(tmp_path) if ".privgate-" in n]


def test_previous_output_holding_a_foreign_file_is_refused(tmp_path, keyring_path):
    cfg = _config(tmp_path, keyring_path)
    run(cfg, show_progress=False)
    (tmp_path / "out" / "data" / "extra.parquet").write_bytes(b"not listed in the manifest")
    with pytest.raises(ConfigError, match=r"output.path: .*data/extra.parquet"):
        run(cfg, show_progress=False)
    assert (tmp_path / "out" / "data" / "extra.parquet").exists()


@pytest.mark.parametrize(
    "input_rel, output_rel, key",
    [
        ("data/in.csv", "data", "input.path"),  # output contains the input
        ("data/*.csv", "data", "input.path"),  # output is the input directory
        ("data/*.csv", "data/out", "input.path"),  # output inside the input directory
        ("data/in.csv", ".", "input.path"),  # output above the input
        ("data/in.csv", "data/in.csv", "input.path"),  # output is the input file
    ],
)
def test_output_overlapping_the_input_is_refused(
    tmp_path, keyring_path, input_rel, output_rel, key
):
    _input(tmp_path / "data")
    cfg = load_run_config(
        _config(tmp_path, keyring_path, output=output_rel, input_path=str(tmp_path / input_rel))
    )
    with pytest.raises(ConfigError, match=f"output.path: .*{key}"):
        local_target(cfg)


@pytest.mark.parametrize("output_rel", ["keys", "."])
def test_output_that_is_or_holds_the_keyring_directory_is_refused(tmp_path, output_rel):
    from privgate.keyring import init_keyring

    base = tmp_path / "run"
    (base / "keys").mkdir(parents=True)
    keyring = str(base / "keys" / "keyring.json")
    init_keyring(keyring)
    data = _input(tmp_path / "data")
    cfg = load_run_config(_config(base, keyring, output=output_rel, input_path=data))
    with pytest.raises(ConfigError, match="output.path: .*keys.keyring"):
        local_target(cfg)
    # a directory beside or below the keyring is fine: a run touches only the target and
    # its own hidden siblings (.<name>.privgate-*)
    for rel in ("out", "keys/out"):
        cfg = load_run_config(_config(base, keyring, output=rel, input_path=data))
        assert local_target(cfg) == str(base / rel)


def test_target_that_became_foreign_during_the_run_is_not_replaced(tmp_path, keyring_path):
    cfg = load_run_config(_config(tmp_path, keyring_path))
    target = local_target(cfg)
    with pytest.raises(ConfigError, match="output.path"):
        with Staging(target, cfg.source) as staging:
            os.makedirs(target)
            (tmp_path / "out" / "notes.txt").write_text("written by someone during the run")
            staging.publish()
    assert (tmp_path / "out" / "notes.txt").exists()
    assert not [n for n in os.listdir(tmp_path) if ".privgate-" in n]


# --------------------------------------------------------------------------- concurrent runs

HOLD_STAGING = textwrap.dedent("""\
    import sys
    from pipelines.publish import Staging
    s = Staging(sys.argv[1])
    print(s.path, flush=True)
    sys.stdin.read()  # hold the staging directory until the test closes stdin
""")


def test_a_concurrent_runs_live_staging_survives_another_runs_start(tmp_path):
    target = str(tmp_path / "out")
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_STAGING, target],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        live = other.stdout.readline().strip()
        assert os.path.isdir(live)
        with Staging(target) as mine:
            assert os.path.isdir(live) and os.path.isdir(mine.path)
    finally:
        other.kill()
        other.wait()
    assert other.returncode == -signal.SIGKILL
    # its owner is gone: the next run's start removes it
    with Staging(target) as mine:
        assert not os.path.exists(live) and os.path.isdir(mine.path)


def test_an_epsilon_ledger_inside_the_output_is_refused(tmp_path, keyring_path):
    """The ledger must outlive the output it is replaced with: one inside `output.path` would
    be written there (budget spent), then make the target unreplaceable for every later run."""
    cfg = _config(tmp_path, keyring_path)
    text = (
        open(cfg)
        .read()
        .replace(
            "lifetime_epsilon_max: 1000}",
            f"lifetime_epsilon_max: 1000, ledger: {tmp_path}/out/l.json}}",
        )
    )
    open(cfg, "w").write(text)
    with pytest.raises(ConfigError, match=r"output.path: .*overlaps privacy.ledger"):
        run(cfg, show_progress=False)
    assert not (tmp_path / "out").exists()
