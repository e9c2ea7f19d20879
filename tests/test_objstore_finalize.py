"""`privgate finalize` on local staging: a killed launcher's run finished by another process.

The launcher is killed between steps with `PRIVGATE_TEST_CRASH_AT=<step>` (an `os._exit` at a
checkpoint: no cleanup, like a kill); the object-store versions are in test_objstore_e2e.py.
"""

from __future__ import annotations

import glob
import os

import pytest

from privgate.errors import DataError
from tests.conftest import cli, write_config


def _staging(tmp_path) -> list[str]:
    return glob.glob(str(tmp_path / ".out.privgate-tmp-*"))


def test_a_run_killed_after_its_pipeline_is_finalized_by_another_process(
    tmp_path, keyring_path, demo_csv
):
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    killed = cli("run", cfg, "--no-progress", env={"PRIVGATE_TEST_CRASH_AT": "pipeline"})
    assert killed.returncode == 70, killed.stderr
    assert not (tmp_path / "out").exists()
    (staging,) = _staging(tmp_path)
    assert os.path.exists(os.path.join(staging, "_work", "run.json"))
    assert cli("verify", str(tmp_path / "out"), "--keyring", keyring_path).returncode == 1

    done = cli("finalize", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "finalized run" in done.stdout and "303 rows in, 300 protected" in done.stdout
    assert not _staging(tmp_path)
    ok = cli("verify", str(tmp_path / "out"), "--keyring", keyring_path, "--json")
    assert ok.returncode == 0, ok.stderr
    again = cli("finalize", str(tmp_path / "out"))  # idempotent
    assert again.returncode == 0 and "already finalized" in again.stdout, again.stderr


def test_finalize_refuses_an_incomplete_job_output(tmp_path, keyring_path, demo_csv):
    from pipelines.finalize import finalize
    from pipelines.object_staging import CRASH_ENV

    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    assert cli("run", cfg, "--no-progress", env={CRASH_ENV: "pipeline"}).returncode == 70
    (staging,) = _staging(tmp_path)
    (shard,) = glob.glob(os.path.join(staging, "data", "part-*"))
    os.remove(shard)  # a job that has not written all its shards yet
    with pytest.raises(DataError, match="incomplete"):
        finalize(staging)
    assert os.path.isdir(staging)  # left for a rerun: the job may still be writing
    assert not (tmp_path / "out").exists()


def test_finalize_refuses_a_config_changed_since_the_run(tmp_path, keyring_path, demo_csv):
    from pipelines.finalize import finalize
    from pipelines.object_staging import CRASH_ENV
    from privgate.errors import ConfigError

    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    assert cli("run", cfg, "--no-progress", env={CRASH_ENV: "pipeline"}).returncode == 70
    with open(cfg, "a", encoding="utf-8") as f:
        f.write("# edited\n")
    with pytest.raises(ConfigError, match="changed since run"):
        finalize(str(tmp_path / "out"))
