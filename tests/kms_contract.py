"""Checks every KMS backend must pass; each backend's test module calls them with a live peer.

`check_backend(kms)`: wrap/unwrap round trips, AAD and master-key binding, key bytes never in
wrapped strings or `repr`, thread safety. `check_unknown_master_key(kms)`: the same error from
every backend for a master key id it does not have. `check_keyring_end_to_end(...)`: a keyring
on that KMS created with `privgate keys init --config`, a pipeline run, reads, verify, a
rotation that keeps tokens stable and old outputs readable, and manifest master-key versions.

`check_debug_logs_carry_no_key(kms, caplog, logger)`: no key bytes in any DEBUG record of the
backend's client library.

Shared helpers: `write_and_read_files(...)` (encrypted Parquet written and read back through a
KMS, for the tests that count its calls) and `assert_no_secret(...)` (errors and logs).
"""

from __future__ import annotations

import base64
import json
import logging
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


def check_unknown_master_key(kms, have: str = "pii, data, footer") -> None:
    """A master key id outside the configured ones: wrap, unwrap and rotate refuse it before
    any KMS call, naming it and the known ones in the words `rotate_keyring` uses."""
    message = rf"^unknown master key 'nope' \(have: {have}\)$"
    wrapped = f"{kms.name}:nope:1:" + base64.b64encode(bytes(48)).decode()  # well-formed
    for call in (
        lambda: kms.wrap("nope", bytes(32), b"c"),
        lambda: kms.unwrap("nope", wrapped, b"c"),
        lambda: kms.rotate("nope"),
    ):
        with pytest.raises(KeyringError, match=message) as e:
            call()
        assert_no_secret(e.value)  # and no chained client error


def check_debug_logs_carry_no_key(kms, caplog, logger_name: str) -> None:
    """With `logger_name` (the client library's logger) and the root logger at DEBUG, a wrap
    and unwrap round trip logs DEBUG records of that library, and no record carries the key
    bytes anywhere in its attributes (client libraries attach payloads to records)."""
    key = os.urandom(32)
    logger = logging.getLogger(logger_name)
    level = logger.level
    with caplog.at_level(logging.DEBUG):
        logger.setLevel(logging.DEBUG)
        try:
            assert kms.unwrap("pii", kms.wrap("pii", key, b"log"), b"log") == key
        finally:
            logger.setLevel(level)
    assert any(
        r.name.startswith(logger_name) and r.levelno == logging.DEBUG for r in caplog.records
    ), f"no DEBUG record from {logger_name}: the check saw nothing"
    assert_no_secret(repr([r.__dict__ for r in caplog.records]), key, repr(key)[2:-1])


def write_and_read_files(
    kms_writer, kms_reader, tmp_path, files: int = 10, columns: int = 10, after_write=None
) -> list:
    """Write `files` encrypted Parquet files of `columns` columns (the first half under master
    key `pii`, the rest under `data`, the footer under `footer`) through `kms_writer`, call
    `after_write()` if given, then read every file back through `kms_reader` and check it.
    Both are `Kms` objects already bound to their context (`Kms.bound`), used the way
    privgate's writer and reader use them: properties per file, one factory per `Kms`.
    Returns the files' paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from privgate import parquet_crypto as pc

    table = pa.table({f"c{i}": list(range(5)) for i in range(columns)})
    half = columns // 2
    keys = {
        "pii": [f"c{i}" for i in range(half)],
        "data": [f"c{i}" for i in range(half, columns)],
    }
    paths = [tmp_path / f"{f}.parquet" for f in range(files)]
    for path in paths:
        props = pc.encryption_properties(kms_writer, keys)
        with pq.ParquetWriter(path, table.schema, encryption_properties=props) as w:
            w.write_table(table)
    if after_write is not None:
        after_write()
    for path in paths:
        props = pc.decryption_properties(kms_reader)
        assert pq.read_table(path, decryption_properties=props).equals(table), path
    return paths


def assert_no_secret(found: BaseException | str, *secrets: bytes | str) -> None:
    """No secret in an error message or a log dump: key bytes (`bytes`, in hex or base64) or
    credentials and PINs (`str`). For an error, also no chained exception, whose arguments
    (a client library's request parameters) could travel with it into logs. The failure
    message says which secret showed, never the text that holds it."""
    text = found if isinstance(found, str) else str(found)
    for i, s in enumerate(secrets):
        if isinstance(s, str):
            forms = {"as given": s}
        else:
            forms = {"in hex": s.hex(), "in base64": base64.b64encode(s).decode()}
        for form, value in forms.items():
            assert value not in text, f"secret #{i} is in the text ({form})"
    if isinstance(found, BaseException):
        assert found.__cause__ is None, type(found.__cause__).__name__
        assert found.__context__ is None or found.__suppress_context__, type(
            found.__context__
        ).__name__


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
