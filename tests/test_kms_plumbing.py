"""The external-KMS keyring plumbing, with a file-backed test KMS (real backends: test_kms_*)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from privgate.errors import ConfigError
from tests import fake_kms
from tests.kms_contract import check_backend, check_keyring_end_to_end, write_and_read_files


def test_fake_backend_passes_the_contract(test_kms):
    check_backend(fake_kms.FakeKms(test_kms))


def test_external_keyring_end_to_end(tmp_path, demo_csv, test_kms, monkeypatch):
    # the CLI runs in a subprocess that knows no test-kms: register it through sitecustomize
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "from privgate import kms\n"
        "kms.KMS_BACKENDS['test-kms'] = "
        "kms.KmsBackend('tests.fake_kms', 'FakeKms', None, 'none')\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {"PYTHONPATH": os.pathsep.join([str(site), root])}
    manifest = check_keyring_end_to_end(tmp_path, demo_csv, "test-kms", test_kms, env=env)
    assert manifest["encryption"]["master_key_versions"] == {"data": 1, "footer": 1, "pii": 1}


def test_kek_round_trips_do_not_grow_with_files_or_columns(keyring_path, tmp_path):
    """Double wrapping + one CryptoFactory per Kms object: 3 wraps for 10 files x 10 columns
    (one KEK per master key), 3 unwraps to read them all back."""
    from privgate.keyring import open_keyring
    from privgate.kms import Kms

    class Counting(Kms):
        name = "counting"

        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def wrap(self, *a):
            self.calls += 1
            return self.inner.wrap(*a)

        def unwrap(self, *a):
            self.calls += 1
            return self.inner.unwrap(*a)

        def versions(self):
            return self.inner.versions()

    inner = open_keyring(keyring_path).kms
    writer_kms, reader_kms = Counting(inner), Counting(inner)
    write_and_read_files(writer_kms, reader_kms, tmp_path, files=10, columns=10)
    assert writer_kms.calls == 3
    assert reader_kms.calls == 3


def test_config_kms_must_match_the_keyring(tmp_path, demo_csv, keyring_path):
    from pipelines.run import run
    from tests.conftest import write_config
    from tests.softhsm import MODULE

    cfg = write_config(
        tmp_path,
        input_path=demo_csv,
        keyring=keyring_path,
        kms="pkcs11",
        kms_settings={
            "module": MODULE,
            "token": "t",
            "keys": {"pii": "a", "data": "b", "footer": "c"},
        },
    )
    with pytest.raises(ConfigError, match="keys.kms: is pkcs11 but keyring .* uses the local"):
        run(cfg, show_progress=False)


def test_settings_for_another_kms_are_a_config_error(tmp_path, demo_csv, keyring_path):
    from schemas.config import load_config
    from tests.conftest import write_config

    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    text = open(cfg).read().replace("  kms: local\n", "  kms: local\n  aws-kms: {region: x}\n")
    open(cfg, "w").write(text)
    with pytest.raises(ConfigError, match="keys.aws-kms: settings for another KMS"):
        load_config(cfg)


def test_local_keyring_imports_no_kms_client_library(keyring_path):
    code = (
        "import sys; from privgate.keyring import open_keyring; "
        f"k = open_keyring({keyring_path!r}); k.data_key('token'); "
        "bad = [m for m in ('boto3', 'pkcs11', 'google.cloud.kms_v1', 'grpc') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "kind, settings, where",
    [
        (
            "aws-kms",
            {"region": "eu-west-1", "keys": {"pii": "alias/a", "data": "alias/b"}},
            "keys.aws-kms.keys.footer",
        ),
        ("gcp-kms", {"keys": {"pii": "x"}}, "keys.gcp-kms"),
        ("pkcs11", {"module": "relative.so", "token": "t", "keys": {}}, "keys.pkcs11.module"),
    ],
)
def test_bad_kms_settings_are_config_errors_naming_file_and_key(
    tmp_path, demo_csv, keyring_path, kind, settings, where
):
    from pipelines.config import load_run_config
    from tests.conftest import write_config

    cfg = write_config(
        tmp_path, input_path=demo_csv, keyring=keyring_path, kms=kind, kms_settings=settings
    )
    with pytest.raises(ConfigError) as e:
        load_run_config(cfg)
    assert str(e.value).startswith(f"{cfg}: {where}")
    assert e.value.exit_code == 2
