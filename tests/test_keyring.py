"""The local keyring: creation, protection of the file, failures before any data is read."""

import base64
import json
import os
import pickle

import pytest

from privgate.errors import KeyringError
from privgate.keyring import PASSPHRASE_ENV, init_keyring, open_keyring


def test_init_writes_0600_and_reopens(tmp_path):
    path = str(tmp_path / "k" / "keyring.json")
    kr = init_keyring(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = open_keyring(path)
    assert again.keyring_id == kr.keyring_id
    assert again.data_key("token") == kr.data_key("token")
    assert len(kr.data_key("siv")) == 64
    from privgate import keyring as k

    assert k._clear_public_key(path, k._read_doc(path)) == kr.public_key_bytes  # readable
    with pytest.raises(KeyringError, match="already exists"):
        init_keyring(path)


def test_file_holds_no_key_in_clear(tmp_path):
    path = str(tmp_path / "keyring.json")
    kr = init_keyring(path)
    raw = open(path, "rb").read()

    for name in ("token", "siv", "date_shift", "ldp"):
        k = kr.data_key(name)
        for form in (k, k.hex().encode(), base64.b64encode(k)):
            assert form not in raw
    assert set(json.loads(raw)) >= {"ciphertext", "kdf", "public_key"}


def test_refuses_group_readable_file(tmp_path):
    path = str(tmp_path / "keyring.json")
    init_keyring(path)
    os.chmod(path, 0o640)
    with pytest.raises(KeyringError, match="readable by group or others"):
        open_keyring(path)


def test_wrong_or_missing_passphrase_and_missing_file(tmp_path, monkeypatch):
    path = str(tmp_path / "keyring.json")
    init_keyring(path)
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(KeyringError, match="wrong passphrase"):
        open_keyring(path)
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(KeyringError, match=PASSPHRASE_ENV):
        open_keyring(path)
    with pytest.raises(KeyringError, match="keyring not found"):
        open_keyring(str(tmp_path / "nope.json"))


def test_tampered_file_is_refused(tmp_path):
    path = str(tmp_path / "keyring.json")
    init_keyring(path)
    doc = json.load(open(path))
    doc["public_key"] = doc["public_key"][:-4] + "AAA="
    with open(path, "w") as f:
        json.dump(doc, f)
    with pytest.raises(KeyringError, match="tampered"):
        open_keyring(path)


def test_restricted_view_cannot_use_pii_master(keyring_path):
    kr = open_keyring(keyring_path)
    view = kr.restricted({"data", "footer"})
    wrapped = kr.kms.wrap("data", b"k" * 16)
    assert view.kms.unwrap("data", wrapped) == b"k" * 16
    with pytest.raises(KeyringError, match="'pii' is not available"):
        view.kms.wrap("pii", b"k" * 16)
    with pytest.raises(KeyringError, match="'pii' is not available"):
        view.data_key("token")
    with pytest.raises(KeyringError, match="no signing key"):
        view.signing_key()


def test_wrapped_keys_bind_master_key_and_context(keyring_path):
    kms = open_keyring(keyring_path).kms
    w = kms.wrap("pii", b"x" * 32, b"ctx")
    assert kms.unwrap("pii", w, b"ctx") == b"x" * 32
    with pytest.raises(KeyringError):
        kms.unwrap("data", w, b"ctx")
    with pytest.raises(KeyringError):
        kms.unwrap("pii", w, b"other")


def test_keyring_is_not_picklable(keyring_path):
    with pytest.raises(TypeError, match="must not be pickled"):
        pickle.dumps(open_keyring(keyring_path))
    kms = open_keyring(keyring_path).kms  # nor its KMS, or a view of it
    for view in (kms, kms.bound("privgate-dataset:x"), kms.restricted({"data"})):
        with pytest.raises(TypeError, match="must not be pickled"):
            pickle.dumps(view)
    assert "key" not in repr(open_keyring(keyring_path)).lower().replace("keyring", "")


def _reencrypt_payload(path: str, edit) -> None:
    """Decrypt a local keyring's payload with the passphrase, apply `edit`, write it back
    encrypted as the keyring would (what someone holding the passphrase could do)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from privgate import keyring as k

    doc = json.load(open(path))
    header = {
        f: doc[f] for f in ("format", "version", "keyring_id", "kms", "public_key", "kdf", "aead")
    }
    key = k._derive(os.environ[PASSPHRASE_ENV], k._unb64(doc["kdf"]["salt"]), doc["kdf"])
    payload = json.loads(
        AESGCM(key).decrypt(
            k._unb64(doc["nonce"]), k._unb64(doc["ciphertext"]), k._header_aad(header)
        )
    )
    edit(payload)
    nonce = os.urandom(12)
    doc["nonce"] = k._b64(nonce)
    doc["ciphertext"] = k._b64(
        AESGCM(key).encrypt(nonce, json.dumps(payload).encode(), k._header_aad(header))
    )
    with open(path, "w") as f:
        json.dump(doc, f)


def test_missing_master_key_is_refused_before_use(tmp_path):
    path = str(tmp_path / "keyring.json")
    init_keyring(path)
    _reencrypt_payload(path, lambda payload: payload["master_keys"].pop("footer"))
    with pytest.raises(KeyringError, match="lacks master key\\(s\\): footer"):
        open_keyring(path)


def test_rotation_keeps_tokens_and_old_outputs_readable(tmp_path, demo_csv):
    from pipelines.run import run
    from privgate.keyring import describe_keyring, rotate_keyring
    from privgate.reader import read_table
    from tests.conftest import cli, write_config

    path = str(tmp_path / "keyring.json")
    init_keyring(path)
    before = {n: open_keyring(path).data_key(n) for n in ("token", "siv", "date_shift", "ldp")}
    old = run(
        write_config(tmp_path, input_path=demo_csv, keyring=path, output="old"), show_progress=False
    )
    assert old["manifest"]["encryption"]["master_key_versions"] == {
        "data": 1,
        "footer": 1,
        "pii": 1,
    }
    assert rotate_keyring(path) == {"pii": 2, "data": 2, "footer": 2}
    assert os.stat(path).st_mode & 0o777 == 0o600
    after = open_keyring(path)
    assert {n: after.data_key(n) for n in before} == before  # same data keys, re-wrapped
    info = describe_keyring(path)
    assert info["master_keys"]["pii"]["current"] == 2
    assert set(info["master_keys"]["pii"]["versions"]) == {"1", "2"}
    assert info["data_protection_keys"]["token"]["master_key_version"] == 2
    text = json.dumps(info)
    for k in before.values():
        assert k.hex() not in text and base64.b64encode(k).decode() not in text
    # outputs written before the rotation stay readable; new ones use v2; tokens are stable
    first = read_table(old["output_dir"], keyring=path)
    new = run(
        write_config(tmp_path, input_path=demo_csv, keyring=path, output="new"), show_progress=False
    )
    assert new["manifest"]["encryption"]["master_key_versions"]["pii"] == 2
    second = read_table(new["output_dir"], keyring=path)
    assert first.column("customer_id").equals(second.column("customer_id"))
    assert first.column("ssn").equals(second.column("ssn"))
    r = cli("keys", "list", "--keyring", path)
    assert r.returncode == 0 and "current v2" in r.stdout


# ------------------------------------------------------------- the clear public key


def _their_public_key() -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().public_key().public_bytes_raw()


def _replace_in_file(path: str, **fields) -> dict:
    with open(path) as f:
        doc = json.load(f)
    for k, v in fields.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    with open(path, "w") as f:
        json.dump(doc, f)
    return doc


def _assert_no_key_bytes(err: BaseException, *keys: bytes) -> None:
    text = str(err)
    for k in keys:
        for form in (k.hex(), base64.b64encode(k).decode(), base64.b64encode(k).decode()[:16]):
            assert form not in text


def test_external_keyring_with_a_replaced_public_key_is_refused(tmp_path, test_kms):
    path = str(tmp_path / "keyring.json")
    genuine = init_keyring(path, "test-kms", test_kms).public_key_bytes
    theirs = _their_public_key()
    _replace_in_file(path, public_key=base64.b64encode(theirs).decode())
    with pytest.raises(KeyringError, match="public key") as e:
        open_keyring(path)
    _assert_no_key_bytes(e.value, theirs, genuine)
    _replace_in_file(path, public_key=base64.b64encode(genuine).decode())
    assert open_keyring(path).public_key_bytes == genuine


def test_external_keyring_check_cannot_be_moved_from_another_keyring(tmp_path, test_kms):
    """Another keyring's public key together with its check, on the same KMS: refused (the
    check is bound to the keyring id)."""
    a, b = str(tmp_path / "a.json"), str(tmp_path / "b.json")
    init_keyring(a, "test-kms", test_kms)
    init_keyring(b, "test-kms", test_kms)
    with open(b) as f:
        other = json.load(f)
    _replace_in_file(a, public_key=other["public_key"], public_key_check=other["public_key_check"])
    with pytest.raises(KeyringError, match="public key"):
        open_keyring(a)


def test_external_keyring_without_a_check_is_authenticated_by_its_signing_key(tmp_path, test_kms):
    """A keyring file written before the check existed: the public key is compared with the
    one derived from the unwrapped signing key (needs the `pii` master key)."""
    path = str(tmp_path / "keyring.json")
    genuine = init_keyring(path, "test-kms", test_kms).public_key_bytes
    _replace_in_file(path, public_key_check=None)
    assert open_keyring(path).public_key_bytes == genuine
    theirs = _their_public_key()
    _replace_in_file(path, public_key=base64.b64encode(theirs).decode())
    with pytest.raises(KeyringError, match="public key does not match its signing key") as e:
        open_keyring(path)
    _assert_no_key_bytes(e.value, theirs, genuine)
    # a rotation (by a key holder) adds the KMS-wrapped copy
    from privgate.keyring import rotate_keyring

    _replace_in_file(path, public_key=base64.b64encode(genuine).decode())
    rotate_keyring(path)
    _replace_in_file(path, public_key=base64.b64encode(theirs).decode())
    with pytest.raises(KeyringError, match="does not match its KMS-wrapped copy"):
        open_keyring(path)


def test_local_keyring_public_key_must_match_its_signing_key(tmp_path):
    """Even re-encrypted with the passphrase, a payload whose signing key is not the header's
    public key's is refused."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from privgate import keyring as k

    path = str(tmp_path / "keyring.json")
    genuine = init_keyring(path).public_key_bytes
    other = k._b64(Ed25519PrivateKey.generate().private_bytes_raw())
    _reencrypt_payload(path, lambda payload: payload.update(signing_key=other))
    with pytest.raises(KeyringError, match="public key") as e:
        open_keyring(path)
    _assert_no_key_bytes(e.value, genuine)


def test_export_public_refuses_a_replaced_public_key(tmp_path, test_kms, monkeypatch):
    """The key people pin comes from the opened (authenticated) keyring, not the clear field."""
    from pipelines.cli import main

    path = str(tmp_path / "keyring.json")
    init_keyring(path, "test-kms", test_kms)
    pem = str(tmp_path / "pub.pem")
    assert main(["keys", "export-public", "--keyring", path, "-o", pem]) == 0
    _replace_in_file(path, public_key=base64.b64encode(_their_public_key()).decode())
    os.remove(pem)
    assert main(["keys", "export-public", "--keyring", path, "-o", pem]) != 0
    assert not os.path.exists(pem)
