"""`privgate verify` / `read_table` against swapped, replayed, padded and re-signed outputs.

Three runs share one keyring: A and A2 of dataset `test_ds` (A2 on fewer rows), B of
dataset `other_ds` (other rows). Each test changes a copy of an output the way an attacker
with write access to the directory (or to the reader's keyring file) could, and checks the
reader refuses it or reads only what the signed manifest vouches for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import types

import pytest

from pipelines.run import run
from privgate import manifest as mf
from privgate.errors import KeyringError, PrivgateError, VerifyError
from privgate.reader import read_table, verify
from tests.conftest import cli, write_config


def _run(tmp, input_path, keyring, dataset="test_ds") -> str:
    cfg = write_config(tmp, input_path=input_path, keyring=keyring)
    if dataset != "test_ds":
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("dataset: test_ds", f"dataset: {dataset}"))
    return run(cfg, show_progress=False)["output_dir"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_csv, keyring_path):
    """{"a", "a2", "b"}: output directories of three runs with one keyring."""
    tmp = tmp_path_factory.mktemp("verify")
    with open(demo_csv, encoding="utf-8") as f:
        lines = f.readlines()
    fewer = tmp / "fewer.csv"
    fewer.write_text("".join(lines[:101]), encoding="utf-8")
    # B holds other records: the ledger refuses the same records under a second name
    others = tmp / "others.csv"
    others.write_text("".join(lines[:1] + lines[101:]), encoding="utf-8")
    out = {}
    for name, path, dataset in (
        ("a", demo_csv, "test_ds"),
        ("a2", str(fewer), "test_ds"),
        ("b", str(others), "other_ds"),
    ):
        d = tmp / name
        d.mkdir()
        out[name] = _run(d, path, keyring_path, dataset)
    return out


def _copy(src: str, tmp_path, name: str = "copy") -> str:
    dst = str(tmp_path / name)
    shutil.copytree(src, dst)
    return dst


def _body(out: str) -> dict:
    with open(os.path.join(out, mf.MANIFEST)) as f:
        return json.load(f)["manifest"]


# ------------------------------------------------------------------ the dataset, pinned


def test_a_signed_output_of_another_dataset_is_refused_when_the_dataset_is_pinned(
    runs, keyring_path, tmp_path
):
    swapped = _copy(runs["b"], tmp_path, "test_ds")  # B's output where A's should be
    assert verify(swapped, keyring=keyring_path)["dataset"] == "other_ds"  # signed, intact
    with pytest.raises(VerifyError, match="'other_ds'.*'test_ds'"):
        verify(swapped, keyring=keyring_path, dataset="test_ds")
    with pytest.raises(VerifyError, match="'other_ds'.*'test_ds'"):
        read_table(swapped, keyring=keyring_path, dataset="test_ds")
    assert verify(swapped, keyring=keyring_path, dataset="other_ds")["dataset"] == "other_ds"
    assert read_table(swapped, keyring=keyring_path, dataset="other_ds").num_rows > 0
    for command in ("verify", "read"):
        r = cli(command, swapped, "--keyring", keyring_path, "--dataset", "test_ds")
        assert r.returncode == 1, r.stderr
        assert "'other_ds'" in r.stderr and "'test_ds'" in r.stderr
    r = cli("verify", swapped, "--keyring", keyring_path, "--dataset", "other_ds")
    assert r.returncode == 0, r.stderr


def test_verify_shows_the_run_id_and_time(runs, keyring_path):
    out = runs["a2"]
    body = _body(out)
    got = verify(out, keyring=keyring_path)
    assert (got["run_id"], got["started_at"], got["finished_at"]) == (
        body["run_id"],
        body["started_at"],
        body["finished_at"],
    )
    r = cli("verify", out, "--keyring", keyring_path)
    assert r.returncode == 0, r.stderr
    assert body["run_id"] in r.stdout and body["finished_at"] in r.stdout
    assert "test_ds" in r.stdout
    r = cli("verify", out, "--keyring", keyring_path, "--json")
    summary = json.loads(r.stdout)
    for key in ("run_id", "dataset", "started_at", "finished_at"):
        assert summary[key] == body[key], key


def test_a_replayed_older_run_is_told_apart_by_its_run_id(runs, keyring_path, tmp_path):
    """An older signed output of the same dataset verifies (it is genuine); what tells it
    apart is the run id and time verify shows, which differ from the newer run's."""
    replayed = _copy(runs["a2"], tmp_path)
    newer, older = verify(runs["a"], keyring=keyring_path), verify(replayed, keyring=keyring_path)
    assert older["dataset"] == newer["dataset"] and older["run_id"] != newer["run_id"]
    r = cli("verify", replayed, "--keyring", keyring_path, "--json")
    assert json.loads(r.stdout)["run_id"] == older["run_id"]


# ------------------------------------------------------------------ the whole tree


@pytest.mark.parametrize(
    "added, shown",
    [
        ("data.parquet", "data.parquet"),  # a file at the top level
        ("data2/part-00000-of-00001.parquet", "data2"),  # a directory beside data/
        ("data2/", "data2"),  # an empty directory
        (".hidden", ".hidden"),
        ("data/nested/part-00000-of-00001.parquet", "data/nested"),
        ("report/index.html", "report/index.html"),  # a report the run did not write
        ("_work/stats-00000.jsonl", "_work"),
    ],
)
def test_anything_added_anywhere_in_the_tree_is_refused_naming_it(
    runs, keyring_path, tmp_path, added, shown
):
    out = _copy(runs["a"], tmp_path)
    data_file = _body(out)["output"]["files"][0]["path"]
    path = os.path.join(out, added)
    if added.endswith("/"):
        os.makedirs(path)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copyfile(os.path.join(out, data_file), path)
    with pytest.raises(VerifyError, match=re.escape(f"{shown} is not in the manifest")):
        verify(out, keyring=keyring_path)
    with pytest.raises(VerifyError, match="is not in the manifest"):
        read_table(out, keyring=keyring_path)
    r = cli("verify", out, "--keyring", keyring_path)
    assert r.returncode == 1 and shown in r.stderr


def test_a_symlink_is_refused_even_to_a_listed_file(runs, keyring_path, tmp_path):
    out = _copy(runs["a"], tmp_path)
    listed = _body(out)["output"]["files"][0]["path"]
    os.symlink(os.path.join(out, listed), os.path.join(out, "data", "extra.parquet"))
    with pytest.raises(VerifyError, match="data/extra.parquet is not in the manifest"):
        verify(out, keyring=keyring_path)
    # and a listed file replaced by a symlink to identical bytes elsewhere
    out2 = _copy(runs["a"], tmp_path, "copy2")
    elsewhere = str(tmp_path / "elsewhere.parquet")
    shutil.move(os.path.join(out2, listed), elsewhere)
    os.symlink(elsewhere, os.path.join(out2, listed))
    with pytest.raises(VerifyError, match=f"{listed} is a symbolic link"):
        verify(out2, keyring=keyring_path)


# ------------------------------------------------------------------ read what was hashed


def test_read_table_parses_the_bytes_it_hashed(runs, keyring_path, tmp_path, monkeypatch):
    """The file is swapped for another genuine file of the dataset (A2's, same keys) the
    moment its hash is settled: a reader that re-opens the path after checking would return
    A2's rows; one that parses the bytes it hashed returns A's."""
    out = _copy(runs["a"], tmp_path)
    expected = read_table(out, keyring=keyring_path)
    entry = _body(out)["output"]["files"][0]
    target = os.path.join(out, entry["path"])
    with open(os.path.join(runs["a2"], _body(runs["a2"])["output"]["files"][0]["path"]), "rb") as f:
        replacement = f.read()
    real_sha256 = hashlib.sha256

    class SwapOnceHashed:
        def __init__(self, *data):
            self._h = real_sha256(*data)

        def update(self, data):
            self._h.update(data)

        def digest(self):
            return self._h.digest()

        def hexdigest(self):
            d = self._h.hexdigest()
            if d == entry["sha256"]:
                with open(target, "wb") as f:
                    f.write(replacement)
            return d

    monkeypatch.setattr(mf, "hashlib", types.SimpleNamespace(sha256=SwapOnceHashed))
    got = read_table(out, keyring=keyring_path)
    with open(target, "rb") as f:
        assert f.read() == replacement  # the swap did happen, after the hash
    assert got.num_rows == expected.num_rows == entry["rows"]
    assert got.equals(expected)


def test_a_modified_file_outside_the_section_read_is_still_refused(runs, keyring_path, tmp_path):
    out = _copy(runs["a"], tmp_path)
    q = _body(out)["quarantine"]["files"][0]["path"]
    with open(os.path.join(out, q), "ab") as f:
        f.write(b"\0")
    with pytest.raises(VerifyError, match=f"{q} does not match its sha256"):
        read_table(out, keyring=keyring_path, limit=1)
    d = _body(out)["output"]["files"][0]["path"]
    out2 = _copy(runs["a"], tmp_path, "copy2")
    with open(os.path.join(out2, d), "ab") as f:
        f.write(b"\0")
    with pytest.raises(VerifyError, match=f"{d} does not match its sha256"):
        read_table(out2, keyring=keyring_path, quarantine=True)


# ------------------------------------------------------------------ the keyring's public key


def _resign(out: str, signing_key) -> None:
    """Re-sign `out`'s manifest, after changing a data file, with `signing_key`."""
    mpath = os.path.join(out, mf.MANIFEST)
    with open(mpath) as f:
        body = json.load(f)["manifest"]
    entry = body["output"]["files"][0]
    path = os.path.join(out, entry["path"])
    with open(path, "ab") as f:
        f.write(b"appended by someone else")
    entry["sha256"], entry["bytes"] = mf.file_sha256(path), os.path.getsize(path)
    with open(mpath, "w") as f:
        json.dump(mf.sign(body, signing_key), f)


def test_a_keyring_file_with_a_replaced_public_key_cannot_vouch_for_a_resigned_output(
    runs, keyring_path, tmp_path
):
    """Whoever can edit the reader's keyring file puts their own public key in it and signs
    a changed output with their key: verify --keyring must not accept it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    theirs = Ed25519PrivateKey.generate()
    their_pk = theirs.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    out = _copy(runs["a"], tmp_path)
    _resign(out, theirs)
    keyring = str(tmp_path / "keyring.json")
    shutil.copyfile(keyring_path, keyring)
    os.chmod(keyring, 0o600)
    with open(keyring) as f:
        doc = json.load(f)
    doc["public_key"] = base64.b64encode(their_pk).decode()
    with open(keyring, "w") as f:
        json.dump(doc, f)
    with pytest.raises(KeyringError, match="tampered") as e:
        verify(out, keyring=keyring)
    assert doc["public_key"] not in str(e.value) and their_pk.hex() not in str(e.value)
    with pytest.raises(PrivgateError):
        read_table(out, keyring=keyring)
    r = cli("verify", out, "--keyring", keyring)
    assert r.returncode == 1 and "tampered" in r.stderr
    with pytest.raises(VerifyError, match="signed by another key"):
        verify(out, keyring=keyring_path)  # the genuine keyring refuses it too
