"""Checks every KMS backend must pass; each backend's test module calls them with a live peer.

`check_backend(kms)`: wrap/unwrap round trips, AAD and master-key binding, key bytes never in
wrapped strings or `repr`, thread safety. `check_keyring_end_to_end(...)`: a keyring on that
KMS created with `privgate keys init --config`, a pipeline run, reads, verify, a rotation that
keeps tokens stable and old outputs readable, and manifest master-key versions.
"""

from __future__ import annotations

import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from privgate.errors import KeyringError


def check_backend(kms, masters=("pii", "data", "footer")) -> None:
    keys = {m: os.urandom(32) for m in masters}
    wrapped = {m: kms.wrap(m, k, b"ctx-1") for m, k in keys.items()}
    for m, w in wrapped.items():
        kind, mk, version, blob = w.split(":", 3)
        assert kind == kms.name and mk == m and version and ":" not in version and blob
        assert kms.unwrap(m, w, b"ctx-1") == keys[m]
        assert keys[m].hex() not in w and base64.b64encode(keys[m]).decode() not in w
    a, b = masters[0], masters[1]
    with pytest.raises(KeyringError):  # other AAD
        kms.unwrap(a, wrapped[a], b"ctx-2")
    with pytest.raises(KeyringError):  # other master key
        kms.unwrap(b, wrapped[a], b"ctx-1")
    blob = wrapped[a]
    flipped = blob[:-6] + ("A" if blob[-6] != "A" else "B") + blob[-5:]
    with pytest.raises(KeyringError):  # tampered ciphertext
        kms.unwrap(a, flipped, b"ctx-1")
    assert set(kms.versions()) >= set(masters)
    assert all(k.hex() not in repr(kms) for k in keys.values())
    # thread safety: pyarrow unwraps from pool threads
    items = [(m, os.urandom(32)) for m in masters for _ in range(20)]
    with ThreadPoolExecutor(8) as pool:
        got = list(
            pool.map(lambda mk: kms.unwrap(mk[0], kms.wrap(mk[0], mk[1], b"t"), b"t"), items)
        )
    assert got == [k for _, k in items]


def check_keyring_end_to_end(tmp_path, demo_csv, kind: str, settings: dict, env=None) -> dict:
    """Returns the first run's manifest. `env`: extra environment for CLI subprocesses."""
    from pipelines.run import run
    from privgate.keyring import describe_keyring, keyring_kms, open_keyring, rotate_keyring
    from privgate.reader import read_table, verify
    from tests.conftest import cli, write_config

    path = str(tmp_path / f"{kind}-keyring.json")
    cfg = write_config(
        tmp_path, input_path=demo_csv, keyring=path, output="old", kms=kind, kms_settings=settings
    )
    r = cli("keys", "init", "--config", cfg, env=env)
    assert r.returncode == 0, r.stderr
    assert keyring_kms(path) == (kind, settings)
    assert os.stat(path).st_mode & 0o777 == 0o600
    doc = json.load(open(path))
    assert "master_keys" not in doc and "ciphertext" not in doc  # master keys stay in the KMS
    kr = open_keyring(path)
    before = {n: kr.data_key(n) for n in ("token", "siv", "date_shift", "ldp")}
    text = open(path).read()
    for k in before.values():
        assert k.hex() not in text and base64.b64encode(k).decode() not in text

    old = run(cfg, show_progress=False)
    versions = old["manifest"]["encryption"]["master_key_versions"]
    assert set(versions) == {"pii", "data", "footer"}
    verify(old["output_dir"], keyring=path)
    first = read_table(old["output_dir"], keyring=path)
    assert first.num_rows > 0
    r = cli(
        "read", old["output_dir"], "--keyring", path, "--limit", "3", "--format", "jsonl", env=env
    )
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stderr

    new_versions = rotate_keyring(path)
    assert set(new_versions) == {"pii", "data", "footer"}
    assert all(str(new_versions[m]) != str(versions[m]) for m in versions)
    after = open_keyring(path)
    assert {n: after.data_key(n) for n in before} == before  # same data keys, re-wrapped
    info = describe_keyring(path)
    assert {m: str(e["current"]) for m, e in info["master_keys"].items()} == {
        m: str(v) for m, v in new_versions.items()
    }
    for m, e in info["master_keys"].items():  # first use of both versions, with a time
        assert set(e["versions"]) == {str(versions[m]), str(new_versions[m])}
        assert all(isinstance(t, str) and t[:2] == "20" for t in e["versions"].values())
    new = run(
        write_config(
            tmp_path,
            input_path=demo_csv,
            keyring=path,
            output="new",
            kms=kind,
            kms_settings=settings,
        ),
        show_progress=False,
    )
    assert {m: str(v) for m, v in new["manifest"]["encryption"]["master_key_versions"].items()} == {
        m: str(v) for m, v in new_versions.items()
    }
    again = read_table(old["output_dir"], keyring=path)  # written before the rotation
    second = read_table(new["output_dir"], keyring=path)
    assert again.equals(first)
    assert first.column("customer_id").equals(second.column("customer_id"))
    assert first.column("ssn").equals(second.column("ssn"))
    r = cli("keys", "list", "--keyring", path, env=env)
    assert r.returncode == 0 and kind in r.stdout, r.stderr
    return old["manifest"]
