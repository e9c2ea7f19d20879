"""The PKCS#11 backend against a real SoftHSM2 token, initialized by the tests in a temp dir
(tests/softhsm.py). Each test uses its own key labels on the one session-wide token."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import uuid

import pkcs11
import pytest

from privgate import kms_pkcs11
from privgate.errors import KeyringError
from privgate.kms import MASTER_KEYS, kek_context
from privgate.kms_pkcs11 import Pkcs11Kms
from tests.kms_contract import (
    check_backend,
    check_keyring_end_to_end,
    check_unknown_master_key,
    write_and_read_files,
)
from tests.softhsm import MODULE, init_token


@pytest.fixture(scope="session")
def hsm(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in ("SOFTHSM2_CONF", "PRIVGATE_PKCS11_PIN")}
    yield init_token(str(tmp_path_factory.mktemp("softhsm")))
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def settings(hsm):
    """Settings with key labels of this test only (created by `kms` or by `keys init`)."""
    return hsm.settings(f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def kms(settings):
    k = Pkcs11Kms(settings)
    k.ensure_master_keys(MASTER_KEYS)
    return k


def _token_script(hsm, body: str) -> dict:
    """Run `body` in a fresh interpreter logged in to the token on its own (python-pkcs11
    only, not privgate), with `session` and `Attribute` in scope; it sets `out` (JSON)."""
    code = (
        textwrap.dedent(f"""\
        import json, os, pkcs11
        from pkcs11 import Attribute, KeyType, ObjectClass, exceptions
        token = pkcs11.lib({MODULE!r}).get_token(token_label={hsm.label!r})
        out = {{}}
        with token.open(rw=True, user_pin=os.environ[{hsm.pin_env!r}]) as session:
        """)
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "print(json.dumps(out))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, **hsm.env),
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# --------------------------------------------------------------------------- the contract


def test_backend_passes_the_contract(kms):
    check_backend(kms)
    assert kms.versions() == {"data": 1, "footer": 1, "pii": 1}


def test_unknown_master_key_is_named(kms):
    check_unknown_master_key(kms)
    assert kms.versions() == {"data": 1, "footer": 1, "pii": 1}  # rotate("nope") made nothing


def test_keyring_end_to_end_on_softhsm(tmp_path, demo_csv, settings, hsm):
    manifest = check_keyring_end_to_end(tmp_path, demo_csv, "pkcs11", settings, env=hsm.env)
    assert manifest["encryption"]["master_key_versions"] == {"data": 1, "footer": 1, "pii": 1}
    assert hsm.pin not in (tmp_path / "pkcs11-keyring.json").read_text()
    # the rotation made version 2 of each master key on the token, version 1 is still there
    labels = list(settings["keys"].values())
    got = _token_script(
        hsm,
        f"""\
        for label in {labels!r}:
            out[label] = sorted(o[Attribute.ID].decode() for o in session.get_objects(
                {{Attribute.LABEL: label, Attribute.CLASS: ObjectClass.SECRET_KEY}}))
        """,
    )
    assert got == {label: ["1", "2"] for label in labels}


def test_rotation_keeps_old_versions_unwrapping(kms, settings):
    key = os.urandom(32)
    old = kms.wrap("pii", key, b"ctx")
    assert kms.rotate("pii") == 2
    new = kms.wrap("pii", key, b"ctx")
    assert old.split(":")[2] == "1" and new.split(":")[2] == "2"
    assert kms.unwrap("pii", old, b"ctx") == key and kms.unwrap("pii", new, b"ctx") == key
    assert kms.versions() == {"data": 1, "footer": 1, "pii": 2}
    fresh = Pkcs11Kms(settings)  # another process opening the keyring reads the token
    assert fresh.versions() == {"data": 1, "footer": 1, "pii": 2}
    assert fresh.unwrap("pii", old, b"ctx") == key
    assert fresh.wrap("pii", key, b"ctx").split(":")[2] == "2"


def test_keys_init_is_idempotent_on_the_token(kms, settings):
    wrapped = kms.wrap("data", b"k" * 32)
    again = Pkcs11Kms(settings)
    again.ensure_master_keys(MASTER_KEYS)  # a second `keys init` uses the same keys
    assert again.unwrap("data", wrapped) == b"k" * 32
    assert again.versions() == {"data": 1, "footer": 1, "pii": 1}


# --------------------------------------------------------------------------- the keys


def test_master_keys_are_sensitive_and_not_extractable(kms, settings, hsm):
    labels = list(settings["keys"].values())
    got = _token_script(
        hsm,
        f"""\
        wrapper = session.generate_key(KeyType.AES, 256, template={{Attribute.WRAP: True}})
        for label in {labels!r}:
            key = session.get_key(label=label, object_class=ObjectClass.SECRET_KEY)
            a = key.get_attributes([Attribute.TOKEN, Attribute.PRIVATE, Attribute.SENSITIVE,
                                    Attribute.EXTRACTABLE, Attribute.ALWAYS_SENSITIVE,
                                    Attribute.NEVER_EXTRACTABLE, Attribute.VALUE_LEN,
                                    Attribute.WRAP, Attribute.UNWRAP, Attribute.ID])
            row = {{Attribute(attr).name: (v.decode() if isinstance(v, bytes) else v)
                    for attr, v in a.items()}}
            row["key_type"] = key.key_type.name
            try:
                key[Attribute.VALUE]
                row["value"] = "readable"
            except exceptions.PKCS11Error as e:
                row["value"] = type(e).__name__
            try:
                wrapper.wrap_key(key)
                row["export"] = "wrapped"
            except exceptions.PKCS11Error as e:
                row["export"] = type(e).__name__
            out[label] = row
        """,
    )
    for label in labels:
        assert got[label] == {
            "TOKEN": True,
            "PRIVATE": True,
            "SENSITIVE": True,
            "EXTRACTABLE": False,
            "ALWAYS_SENSITIVE": True,
            "NEVER_EXTRACTABLE": True,
            "VALUE_LEN": 32,
            "WRAP": False,
            "UNWRAP": False,
            "ID": "1",
            "key_type": "AES",
            "value": "AttributeSensitive",
            "export": "KeyUnextractable",
        }, label


def test_wrapped_format_is_plain_aes_gcm_on_the_token(kms, settings, hsm):
    """Keyring files outlive this code: a wrapped key is IV (12) + ciphertext + 128-bit tag
    under CKM_AES_GCM with AAD = master key id + NUL + context, decryptable by any PKCS#11
    client; the master key id in the AAD binds it to its master key."""
    import base64

    key = os.urandom(32)
    kind, master, version, blob = kms.wrap("pii", key, b"ctx").split(":")
    assert (kind, master, version) == ("pkcs11", "pii", "1")
    raw = base64.b64decode(blob)
    assert len(raw) == 12 + 32 + 16
    got = _token_script(
        hsm,
        f"""\
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams
        key = session.get_key(label={settings["keys"]["pii"]!r}, id=b"1",
                              object_class=ObjectClass.SECRET_KEY)
        raw = {raw!r}
        for name, aad in [("bound", b"pii\\0ctx"), ("bare", b"ctx"), ("other", b"data\\0ctx")]:
            try:
                out[name] = key.decrypt(raw[12:], mechanism=Mechanism.AES_GCM,
                                        mechanism_param=GCMParams(raw[:12], aad, 128)).hex()
            except exceptions.PKCS11Error as e:
                out[name] = type(e).__name__
        """,
    )
    assert got["bound"] == key.hex()
    assert key.hex() not in (got["bare"], got["other"])


def test_an_extractable_key_under_a_configured_label_is_refused(settings, hsm):
    _token_script(
        hsm,
        f"""\
        session.generate_key(KeyType.AES, 256, label={settings["keys"]["footer"]!r}, id=b"1",
                             store=True, template={{Attribute.SENSITIVE: False,
                                                   Attribute.EXTRACTABLE: True}})
        """,
    )
    kms = Pkcs11Kms(settings)
    with pytest.raises(KeyringError, match="CKA_EXTRACTABLE=false; refusing"):
        kms.ensure_master_keys(MASTER_KEYS)
    with pytest.raises(KeyringError, match="refusing"):
        kms.wrap("footer", b"k" * 32)


# --------------------------------------------------------------------------- processes


def test_forked_child_unwraps_and_parent_keeps_working(kms):
    """The token config resets the library in a forked child (tests/softhsm.py): the child
    must re-initialize and log in again. Threads unwrapping while the parent forks must not
    leave the child a held lock."""
    key = os.urandom(32)
    wrapped = kms.wrap("data", key, b"fork")
    ctx = multiprocessing.get_context("fork")
    stop, errors = threading.Event(), []

    def hammer():
        while not stop.is_set():
            try:
                assert kms.unwrap("data", wrapped, b"fork") == key
            except Exception as e:  # reported below; a thread cannot fail the test itself
                errors.append(repr(e))
                return

    def child(conn):
        try:
            fresh = os.urandom(32)
            conn.send(
                (
                    kms.unwrap("data", wrapped, b"fork"),
                    kms.unwrap("pii", kms.wrap("pii", fresh), b"") == fresh,
                )
            )
        except Exception as e:
            conn.send(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            receive, send = ctx.Pipe(duplex=False)
            p = ctx.Process(target=child, args=(send,))
            p.start()
            p.join(30)
            if p.is_alive():
                p.kill()
            assert p.exitcode == 0 and receive.poll(), "forked child hung or died"
            assert receive.recv() == (key, True)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert kms.unwrap("data", wrapped, b"fork") == key  # the parent's session still works
    assert kms.unwrap("pii", kms.wrap("pii", key), b"") == key


def test_session_logged_out_elsewhere_in_the_process_is_recovered(kms):
    """`Session.close()` logs out every session of the process (FIELD-NOTES); the next call
    logs in again instead of failing."""
    wrapped = kms.wrap("footer", b"f" * 32)
    kms._conn.session.close()  # stands in for other code closing a logged-in session
    assert kms.unwrap("footer", wrapped) == b"f" * 32


# --------------------------------------------------------------------------- errors


def test_wrong_pin_is_refused_even_when_the_process_is_logged_in(kms, settings, hsm, monkeypatch):
    wrapped = kms.wrap("pii", b"p" * 32)  # this process is logged in to the token
    wrong = hsm.pin[::-1] + "x"
    monkeypatch.setenv("PRIVGATE_TEST_OTHER_PIN", wrong)
    with pytest.raises(KeyringError, match=r"wrong PIN \(from \$PRIVGATE_TEST_OTHER_PIN\)") as e:
        Pkcs11Kms(dict(settings, pin_env="PRIVGATE_TEST_OTHER_PIN"))
    assert wrong not in str(e.value) and hsm.pin not in str(e.value)
    assert f"'{hsm.label}'" in str(e.value)
    assert kms.unwrap("pii", wrapped) == b"p" * 32  # the right PIN logs in again


def test_missing_pin_variable_names_the_variable(settings, hsm, monkeypatch):
    monkeypatch.delenv("PRIVGATE_TEST_UNSET_PIN", raising=False)
    with pytest.raises(
        KeyringError,
        match=f"set PRIVGATE_TEST_UNSET_PIN to the user PIN of PKCS#11 token '{hsm.label}'",
    ) as e:
        Pkcs11Kms(dict(settings, pin_env="PRIVGATE_TEST_UNSET_PIN"))
    assert hsm.pin not in str(e.value)


def test_unknown_token_label_lists_the_tokens(settings, hsm):
    with pytest.raises(
        KeyringError,
        match=r"keys.pkcs11.token: no token labelled 'nope' in "
        rf".*\(tokens: '{hsm.label}'\)",
    ) as e:
        Pkcs11Kms(dict(settings, token="nope"))
    assert hsm.pin not in str(e.value)


def test_looking_for_a_token_drops_the_sessions_it_ends(kms, settings, monkeypatch):
    """An unknown token label rescans the slots (re-initializing the library ends every
    session of the process): the other connections drop their sessions and log in again on
    their next call, instead of failing on the dead session first (python-pkcs11 then leaves
    a half-started search whose finalizer raises SessionHandleInvalid)."""
    import gc

    wrapped = kms.wrap("data", b"d" * 32)
    with pytest.raises(KeyringError, match="no token labelled 'nope'"):
        Pkcs11Kms(dict(settings, token="nope"))
    assert kms._conn.session is None and kms._conn.handles == {}
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    assert kms.rotate("data") == 2  # searches the token
    assert kms.unwrap("data", wrapped) == b"d" * 32
    gc.collect()
    assert [u.exc_type.__name__ for u in unraisable] == []


def test_missing_key_label_says_to_run_keys_init(settings, hsm):
    kms = Pkcs11Kms(settings)  # no ensure_master_keys: the labels do not exist
    label = settings["keys"]["pii"]
    with pytest.raises(
        KeyringError,
        match=f"has no key labelled '{label}' \\(master key 'pii'\\).*privgate keys init",
    ) as e:
        kms.wrap("pii", b"x" * 32)
    assert hsm.pin not in str(e.value)
    with pytest.raises(KeyringError, match="has no key labelled"):
        kms.versions()
    with pytest.raises(KeyringError, match="has no key labelled"):
        kms.rotate("pii")


def test_unwrap_of_a_missing_version_names_it(kms):
    wrapped = kms.wrap("data", b"d" * 32)
    later = wrapped.replace("pkcs11:data:1:", "pkcs11:data:7:")
    with pytest.raises(KeyringError, match="no version 7 of master key 'data'"):
        kms.unwrap("data", later)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"module": None}, "keys.pkcs11.module: must be the absolute path"),
        ({"module": "libsofthsm2.so"}, "keys.pkcs11.module: must be the absolute path"),
        ({"module": "/nonexistent/libp11.so"}, "keys.pkcs11.module: no such file"),
        ({"module": "NOT_A_LIBRARY"}, "keys.pkcs11.module: cannot load PKCS#11 module"),
        ({"token": ""}, "keys.pkcs11.token: must be the label"),
        ({"pin_env": "NOT A NAME"}, "keys.pkcs11.pin_env: must be the name of an environment"),
        ({"keys": None}, "keys.pkcs11.keys: must map each master key id"),
        ({"keys": {"pii": "a", "data": "b"}}, "keys.pkcs11.keys.footer: must be the label"),
        (
            {"keys": {"pii": "a", "data": "b", "footer": "c", "extra": "d"}},
            r"keys.pkcs11.keys.extra: unknown master key \(have: pii, data, footer\)",
        ),
        ({"keys": {"pii": "a", "data": "a", "footer": "c"}}, "each master key id needs its own"),
        ({"slot": 0}, "keys.pkcs11.slot: unknown setting"),
    ],
)
def test_invalid_settings_name_the_setting(settings, change, message, tmp_path):
    if change.get("module") == "NOT_A_LIBRARY":
        (tmp_path / "not-a-module.so").write_text("not a shared library")
        change = {"module": str(tmp_path / "not-a-module.so")}
    bad = {k: v for k, v in dict(settings, **change).items() if v is not None}
    with pytest.raises(KeyringError, match=message):
        Pkcs11Kms(bad)


def test_keys_init_with_a_wrong_pin_fails_clearly(tmp_path, demo_csv, settings, hsm):
    from tests.conftest import cli, write_config

    keyring = tmp_path / "keyring.json"
    cfg = write_config(
        tmp_path, input_path=demo_csv, keyring=str(keyring), kms="pkcs11", kms_settings=settings
    )
    wrong = hsm.pin[::-1] + "0"
    r = cli("keys", "init", "--config", cfg, env=dict(hsm.env, **{hsm.pin_env: wrong}))
    assert r.returncode != 0 and "wrong PIN" in r.stderr, r.stderr
    assert wrong not in r.stderr + r.stdout and hsm.pin not in r.stderr + r.stdout
    assert not keyring.exists()


def test_repr_shows_no_pin(kms, hsm):
    assert hsm.pin not in repr(kms) and "pkcs11" in repr(kms).lower()
    assert hsm.pin not in repr(vars(kms))


# --------------------------------------------------------------------------- round trips


def test_token_round_trips_do_not_grow_with_files_or_columns(settings, kms, tmp_path, monkeypatch):
    """Double wrapping + one CryptoFactory per Kms: writing 10 files x 10 columns costs one
    AES-GCM encryption on the token per master key, reading them all back one decryption
    each (counted at python-pkcs11, i.e. real token calls)."""
    calls = {"encrypt": 0, "decrypt": 0}
    for op in calls:
        original = getattr(
            pkcs11.types.EncryptMixin if op == "encrypt" else pkcs11.types.DecryptMixin, op
        )

        def counting(self, *a, _op=op, _original=original, **k):
            calls[_op] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(
            pkcs11.types.EncryptMixin if op == "encrypt" else pkcs11.types.DecryptMixin,
            op,
            counting,
        )

    written = {}
    write_and_read_files(
        Pkcs11Kms(settings).bound(kek_context("ds")),
        Pkcs11Kms(settings).bound(kek_context("ds")),
        tmp_path,
        after_write=lambda: written.update(calls),
    )
    assert written == {"encrypt": 3, "decrypt": 0}
    assert calls == {"encrypt": 3, "decrypt": 3}


def test_one_lock_serializes_every_token_call(kms, monkeypatch):
    """python-pkcs11 crashes under concurrent use: no two token calls may overlap."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    active, overlaps = [0], []
    original = pkcs11.types.DecryptMixin.decrypt

    def decrypt(self, *a, **k):
        active[0] += 1
        if active[0] > 1:
            overlaps.append(active[0])
        time.sleep(0.001)  # widen the window a missing lock would leave
        try:
            return original(self, *a, **k)
        finally:
            active[0] -= 1

    monkeypatch.setattr(pkcs11.types.DecryptMixin, "decrypt", decrypt)
    wrapped = kms.wrap("data", b"z" * 32)
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: kms.unwrap("data", wrapped), range(64))) == {b"z" * 32}
    assert overlaps == []


def test_documented_settings_example_is_valid(hsm):
    import yaml

    doc = kms_pkcs11.__doc__
    example = yaml.safe_load(doc.split("```yaml\n")[1].split("```")[0])
    settings = example["keys"]["pkcs11"]
    assert example["keys"]["kms"] == "pkcs11" and settings["pin_env"] == hsm.pin_env
    kms = Pkcs11Kms(dict(settings, token=hsm.label))
    assert kms._labels == {m: f"privgate-{m}" for m in MASTER_KEYS}


def test_multi_process_runner_workers_log_in_to_the_token(tmp_path, demo_csv, settings, hsm):
    """Beam workers in other processes open the keyring themselves and log in to the token
    (nothing from the launcher's session can reach them)."""
    from privgate.reader import read_table
    from tests.conftest import MULTI_PROCESS, cli, write_config

    path = str(tmp_path / "hsm-keyring.json")
    cfg = write_config(
        tmp_path, input_path=demo_csv, keyring=path, kms="pkcs11", kms_settings=settings
    )
    assert cli("keys", "init", "--config", cfg, env=hsm.env).returncode == 0
    r = cli("run", cfg, "--no-progress", *MULTI_PROCESS, env=hsm.env)
    assert r.returncode == 0, r.stderr[-2000:]
    out = read_table(str(tmp_path / "out"), keyring=path)
    assert out.num_rows == 300  # demo_csv: 300 good rows (+3 quarantined)


def test_login_retries_a_transient_general_error_then_gives_up(monkeypatch):
    """SoftHSM2 can fail a login with CKR_GENERAL_ERROR while another process writes the
    token: a few retries, then the error (a broken token still fails, and fast)."""
    from pkcs11 import exceptions as p11e

    class Token:
        def __init__(self, failures):
            self.failures, self.calls = failures, 0

        def open(self, rw, user_pin=None):
            self.calls += 1
            if self.calls <= self.failures:
                raise p11e.GeneralError()
            return ("session", rw, user_pin)

    monkeypatch.setattr(kms_pkcs11.time, "sleep", lambda s: None)
    flaky = Token(failures=2)
    assert kms_pkcs11._open_session(flaky, "1234") == ("session", True, "1234")
    assert flaky.calls == 3
    broken = Token(failures=99)
    with pytest.raises(p11e.GeneralError):
        kms_pkcs11._open_session(broken, "1234")
    assert broken.calls == 5
