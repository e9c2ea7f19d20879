"""Shared fixtures: a test passphrase, keyrings, and small synthetic datasets with configs."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSPHRASE = "test-only-passphrase"
os.environ["PRIVGATE_KEYRING_PASSPHRASE"] = PASSPHRASE
os.environ.pop("PRIVGATE_KEYRING", None)


@pytest.fixture(scope="session")
def keyring_path(tmp_path_factory):
    from privgate.keyring import init_keyring

    path = str(tmp_path_factory.mktemp("keys") / "keyring.json")
    init_keyring(path)
    return path


@pytest.fixture(scope="session")
def other_keyring_path(tmp_path_factory):
    from privgate.keyring import init_keyring

    path = str(tmp_path_factory.mktemp("keys2") / "keyring.json")
    init_keyring(path)
    return path


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory):
    from pipelines.demo_data import write_demo_csv

    return write_demo_csv(str(tmp_path_factory.mktemp("data") / "customers.csv"), 300)


@pytest.fixture
def network_refused(monkeypatch):
    """Refuse every socket connection and DNS lookup in this process for one test."""
    import socket

    def refuse(*a, **k):
        raise OSError("network refused by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def write_config(
    tmp_path,
    *,
    input_path,
    keyring,
    fmt="csv",
    schema=None,
    output="out",
    extra_input="",
    privacy="{record_epsilon_max: 3.0, lifetime_epsilon_max: 1000}",
    kms="local",
    kms_settings=None,
) -> str:
    """Write a run config (and optionally a schema) into tmp_path; return the config path."""
    schema_path = schema or os.path.join(ROOT, "schemas", "demo_customers.yaml")
    if schema is not None and not os.path.exists(schema):
        schema_path = str(tmp_path / "schema.yaml")
        with open(schema_path, "w") as f:
            f.write(textwrap.dedent(schema))
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        dataset: test_ds
        input:
          path: {input_path}
          format: {fmt}
        {extra_input}
        schema: {schema_path}
        output:
          path: {tmp_path / output}
        keys:
          kms: {kms}
          keyring: {keyring}
        privacy: {privacy}
        """)
    )
    if kms_settings is not None:  # keys.<kms>: {...} as flow-style YAML (JSON is YAML)
        import json

        text = cfg.read_text().replace(
            f"  keyring: {keyring}\n",
            f"  keyring: {keyring}\n  {kms}: {json.dumps(kms_settings)}\n",
        )
        cfg.write_text(text)
    return str(cfg)


# Beam options for FnApiRunner with two worker processes (state only the launcher has fails)
MULTI_PROCESS = ("--direct_num_workers", "2", "--direct_running_mode", "multi_processing")


def cli(*args, env=None, check=False):
    """Run the privgate CLI in a subprocess; return CompletedProcess (text)."""
    import subprocess

    e = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        env=e,
        check=check,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def det():
    """The process-wide PII detector (loads the spaCy model on first use)."""
    from transforms.detect.engine import get_detector

    return get_detector()


@pytest.fixture
def test_kms(monkeypatch, tmp_path):
    """The file-backed test KMS (`tests/fake_kms.py`) registered as `test-kms`: an external
    keyring with no peer; returns its settings."""
    from privgate import kms as kms_mod

    monkeypatch.setitem(
        kms_mod.KMS_BACKENDS,
        "test-kms",
        kms_mod.KmsBackend("tests.fake_kms", "FakeKms", None, "none"),
    )
    return {"store": str(tmp_path / "kms-store.json")}


def key_forms(keyring_path) -> list[bytes]:
    """Every data-protection key and the signing key of a keyring, raw and as hex (both
    cases), base64 and base64url (padded or not): what a scan for leaked keys looks for."""
    import base64

    from privgate.keyring import open_keyring

    kr = open_keyring(keyring_path)
    keys = [kr.data_key(n) for n in ("token", "siv", "date_shift", "ldp")]
    keys.append(kr.signing_key().private_bytes_raw())
    forms = []
    for k in keys:
        assert len(k) >= 32
        forms += [
            k,
            k.hex().encode(),
            k.hex().upper().encode(),
            base64.b64encode(k),
            base64.urlsafe_b64encode(k),
            base64.urlsafe_b64encode(k).rstrip(b"="),
        ]
    return forms
