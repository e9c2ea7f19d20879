"""PKCS#11 master keys (`keys.kms: pkcs11`): an HSM, a smart card, or SoftHSM2.

The three master keys (`pii`, `data`, `footer`) are AES-256 secret keys on a PKCS#11 token,
created non-extractable and sensitive: their bytes never leave the token, and every wrap and
unwrap is an AES-GCM encryption or decryption done by the token itself. Run config:

```yaml
keys:
  kms: pkcs11
  keyring: ../.privgate/keyring.json
  pkcs11:
    module: /usr/lib/softhsm/libsofthsm2.so   # absolute path of the vendor's PKCS#11 library
    token: privgate                           # token label
    pin_env: PRIVGATE_PKCS11_PIN              # env var holding the user PIN (this is the default)
    keys: {pii: privgate-pii, data: privgate-data, footer: privgate-footer}  # key labels
```

`privgate keys init --config RUNCONFIG` logs in, creates version 1 of each master key the token
does not hold yet (an existing key under a configured label is used if it is an AES-256 key
that is sensitive and non-extractable; anything else is refused), and writes a keyring file
holding only these settings, the wrapped data-protection and signing keys, and the public key.
The PIN is read from the environment variable named by `pin_env` in every process that opens
the keyring (workers included) and is never written anywhere. Each configured label must be
distinct (one key per master key id).

Versions: each version of a master key is its own token object carrying the configured label
and `CKA_ID` = the version number in ASCII (`b"1"`, `b"2"`, ...); the highest id is current.
`privgate keys rotate` generates the next version; older versions stay on the token and keep
unwrapping what they wrapped (a wrapped key names its version:
`pkcs11:<master key id>:<version>:<base64 of IV + ciphertext + tag>`). Deleting an old
version from the token makes outputs written under it unreadable.

Wrapping: CKM_AES_GCM, a random 96-bit IV, a 128-bit tag, and the master key id plus the
caller's context as additional authenticated data, so a wrapped key moved to another master
key, dataset or purpose does not unwrap.

Processes and threads: python-pkcs11 is not safe for concurrent use, so one process-wide lock
serializes every PKCS#11 call (pyarrow unwraps from its pool threads). A wrap or unwrap takes
~25 us on SoftHSM2, and the calls per run do not grow with files or columns (pyarrow caches
the key-encryption keys). Each process logs in once per (module, token) and caches key
handles, never key bytes. A forked child re-initializes the library and logs in again on
first use (the parent's sessions are not valid in the child). The token's user must be
allowed to open a read/write session (key generation and rotation write to the token).

Install the client library with `pip install 'privgate[pkcs11]'`; for tests, Debian's
`softhsm2` package (`make test-peers`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import threading
import time

import pkcs11
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.mechanisms import GCMParams, Mechanism

from privgate.errors import KeyringError
from privgate.kms import MASTER_KEYS, Kms

DEFAULT_PIN_ENV = "PRIVGATE_PKCS11_PIN"
_SETTINGS = ("module", "token", "pin_env", "keys")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IV_BYTES, _TAG_BITS = 12, 128
_KEY_CHECKS = (
    Attribute.KEY_TYPE,
    Attribute.VALUE_LEN,
    Attribute.TOKEN,
    Attribute.SENSITIVE,
    Attribute.EXTRACTABLE,
)
# a lost login or session (another session of this process logged out, token re-inserted):
# reconnect once and retry
_SESSION_LOST = (
    p11e.UserNotLoggedIn,
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.ObjectHandleInvalid,
    p11e.KeyHandleInvalid,
    p11e.DeviceRemoved,
    p11e.TokenNotPresent,
)
_PIN_ERRORS = {
    p11e.PinIncorrect: "wrong PIN",
    p11e.PinLocked: "PIN locked",
    p11e.PinExpired: "PIN expired",
    p11e.PinInvalid: "invalid PIN",
    p11e.PinLenRange: "PIN of the wrong length",
    p11e.UserPinNotInitialized: "user PIN not initialized on the token",
}

# One lock for every PKCS#11 call in this process: python-pkcs11 crashes under concurrent use.
_LOCK = threading.RLock()
_TOKENS: dict[tuple[str, str], _TokenConnection] = {}
_STALE_MODULES: set[str] = set()  # modules to re-initialize (set in a forked child)
# PINs are compared as HMACs under a per-process key, so no instance keeps a PIN around
_PIN_TAG_KEY = os.urandom(32)


def _after_fork_in_child() -> None:
    global _LOCK
    _LOCK = threading.RLock()  # the parent's is held by the forking thread (see `before`)
    for conn in _TOKENS.values():
        conn.forget()
        _STALE_MODULES.add(conn.module)


# Holding the lock across fork() means no PKCS#11 call is half-done in the child's copy.
os.register_at_fork(
    before=lambda: _LOCK.acquire(),
    after_in_parent=lambda: _LOCK.release(),
    after_in_child=_after_fork_in_child,
)


def _pin_tag(pin: str) -> bytes:
    return hmac.new(_PIN_TAG_KEY, pin.encode("utf-8"), hashlib.sha256).digest()


def _load_library(module: str):
    """The process's `pkcs11.lib` for `module`, re-initialized if this is a forked child."""
    try:
        lib = pkcs11.lib(module)
    except p11e.PKCS11Error as e:
        raise KeyringError(
            f"keys.pkcs11.module: cannot load PKCS#11 module {module} ({type(e).__name__})"
        ) from None
    if module in _STALE_MODULES:
        try:
            lib.reinitialize()
        except p11e.PKCS11Error:  # a library that resets itself on fork is not initialized
            if not lib.initialized:
                lib.initialize()
        _STALE_MODULES.discard(module)
    return lib


class _TokenConnection:
    """The process's logged-in session on one token, and its cached key handles."""

    def __init__(self, module: str, token_label: str):
        self.module, self.token_label = module, token_label
        self.session = None
        self.pin_tag: bytes | None = None
        self.handles: dict[tuple[str, int], object] = {}  # (label, version) -> key handle

    def forget(self) -> None:
        """Drop the session and handles without calling the library (after fork)."""
        self.session, self.pin_tag, self.handles = None, None, {}

    def close(self) -> None:
        if self.session is not None:
            try:
                self.session.close()  # logs out: the next login checks the PIN again
            except p11e.PKCS11Error:
                pass  # already gone (logged out elsewhere, token removed): nothing to close
        self.forget()

    def login(self, pin: str, pin_env: str) -> None:
        self.close()
        lib = _load_library(self.module)
        try:
            token = _find_token(lib, self.module, self.token_label)
        except p11e.NoSuchToken:
            raise KeyringError(
                f"keys.pkcs11.token: no token labelled '{self.token_label}' in "
                f"{self.module} (tokens: {_token_labels(lib)})"
            ) from None
        except p11e.MultipleTokensReturned:
            raise KeyringError(
                f"keys.pkcs11.token: several tokens are labelled "
                f"'{self.token_label}' in {self.module}"
            ) from None
        try:
            self.session = _open_session(token, pin)
        except tuple(_PIN_ERRORS) as e:
            raise KeyringError(
                f"cannot log in to PKCS#11 token '{self.token_label}': "
                f"{_PIN_ERRORS[type(e)]} (from ${pin_env})"
            ) from None
        except p11e.PKCS11Error as e:
            raise KeyringError(
                f"cannot log in to PKCS#11 token '{self.token_label}' ({type(e).__name__})"
            ) from None
        self.pin_tag = _pin_tag(pin)


def _find_token(lib, module: str, label: str, attempts: int = 6):
    """`lib.get_token`, rescanning the slots a few times (~1.5 s in all) before giving up: a
    token can be briefly invisible to one process while another one opens it (seen with
    SoftHSM2's file store when two Beam workers log in at once) or while a device settles."""
    for attempt in range(attempts):
        try:
            return lib.get_token(token_label=label)
        except p11e.NoSuchToken:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)
            _rescan(lib, module)


def _open_session(token, pin: str, attempts: int = 5):
    """A logged-in read-write session. SoftHSM2's file store can fail a login with
    CKR_GENERAL_ERROR while another process writes the token (seen when several Beam workers
    log in at once): retried with backoff (~0.75 s in all) before giving up."""
    for attempt in range(attempts):
        try:
            try:
                return token.open(rw=True, user_pin=pin)
            except p11e.UserAlreadyLoggedIn:
                # login state is per process: other code here already logged in to this token
                return token.open(rw=True)
        except p11e.GeneralError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)


def _rescan(lib, module: str) -> None:
    """`lib.reinitialize()` (caller holds `_LOCK`). Its C_Finalize ends every session of this
    process on `module`, so the connections to its tokens drop their sessions and handles
    without calling the library: their next call logs in again instead of first failing on
    a dead session (where python-pkcs11 leaves a half-started object search behind, whose
    finalizer then raises SessionHandleInvalid)."""
    try:
        lib.reinitialize()
    except p11e.PKCS11Error:
        pass
    finally:
        for conn in _TOKENS.values():
            if conn.module == module:
                conn.forget()


def _token_labels(lib) -> str:
    try:
        labels = sorted(repr(t.label) for t in lib.get_tokens() if t.label)  # '' = uninitialized
        return ", ".join(labels) or "none"
    except p11e.PKCS11Error:
        return "cannot list them"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def parse_settings(settings: dict) -> tuple[str, str, str, dict[str, str]]:
    """Validate `keys.pkcs11` settings offline (KeyringError naming the setting)."""
    if not isinstance(settings, dict):
        raise KeyringError("keys.pkcs11: must be a mapping of settings")
    unknown = sorted(set(settings) - set(_SETTINGS))
    if unknown:
        raise KeyringError(
            f"keys.pkcs11.{unknown[0]}: unknown setting (have: {', '.join(_SETTINGS)})"
        )
    module = settings.get("module")
    if not isinstance(module, str) or not os.path.isabs(module):
        raise KeyringError(
            "keys.pkcs11.module: must be the absolute path of a PKCS#11 module "
            "(e.g. /usr/lib/softhsm/libsofthsm2.so)"
        )
    if not os.path.isfile(module):
        raise KeyringError(f"keys.pkcs11.module: no such file: {module}")
    token = settings.get("token")
    if not isinstance(token, str) or not token.strip():
        raise KeyringError("keys.pkcs11.token: must be the label of a PKCS#11 token")
    pin_env = settings.get("pin_env", DEFAULT_PIN_ENV)
    if not isinstance(pin_env, str) or not _ENV_NAME.fullmatch(pin_env):
        raise KeyringError("keys.pkcs11.pin_env: must be the name of an environment variable")
    labels = settings.get("keys")
    if not isinstance(labels, dict):
        raise KeyringError(
            f"keys.pkcs11.keys: must map each master key id "
            f"({', '.join(MASTER_KEYS)}) to a key label on the token"
        )
    extra = sorted(set(labels) - set(MASTER_KEYS))
    if extra:
        raise KeyringError(
            f"keys.pkcs11.keys.{extra[0]}: unknown master key (have: {', '.join(MASTER_KEYS)})"
        )
    for m in MASTER_KEYS:
        if not isinstance(labels.get(m), str) or not labels[m].strip():
            raise KeyringError(f"keys.pkcs11.keys.{m}: must be the label of a key on the token")
    if len(set(labels.values())) != len(labels):
        raise KeyringError("keys.pkcs11.keys: each master key id needs its own label")
    return os.path.realpath(module), token, pin_env, dict(labels)


class Pkcs11Kms(Kms):
    """Master keys as non-extractable AES-256 keys on a PKCS#11 token; AES-GCM in the token.

    Args:
        settings: the non-secret settings (`module`, `token`, `pin_env`, `keys`), as in the
            run config's `keys.pkcs11` and the keyring file.
    Raises:
        KeyringError: invalid settings, a module that does not load, an unknown token, an
            unset PIN variable or a PIN the token refuses (checked here, before any data).
    """

    name = "pkcs11"

    def __init__(self, settings: dict):
        self._module, self._token, self._pin_env, self._labels = parse_settings(settings)
        self._pin_tag = _pin_tag(self._read_pin())
        self._current: dict[str, int] = {}  # master key id -> version this instance wraps with
        with _LOCK:
            conn = _TOKENS.get((self._module, self._token))
            if conn is None:
                conn = _TOKENS[(self._module, self._token)] = _TokenConnection(
                    self._module, self._token
                )
            self._conn = conn
        self._call(lambda session: None, "logging in")  # fail here, before any data

    def __repr__(self) -> str:
        return f"Pkcs11Kms(module={self._module!r}, token={self._token!r}, keys={self._labels!r})"

    # ------------------------------------------------------------------ session and keys

    def _read_pin(self) -> str:
        pin = os.environ.get(self._pin_env)
        if not pin:
            raise KeyringError(
                f"set {self._pin_env} to the user PIN of PKCS#11 token '{self._token}'"
            )
        return pin

    def _session(self):
        """The logged-in session (caller holds `_LOCK`); logs in again with this instance's
        PIN after a fork, a lost session, or when another instance logged in with another."""
        conn = self._conn
        if conn.session is None or conn.pin_tag != self._pin_tag:
            pin = self._read_pin()
            self._pin_tag = _pin_tag(pin)
            if conn.session is None or conn.pin_tag != self._pin_tag:
                conn.login(pin, self._pin_env)
        return conn.session

    def _call(self, op, what: str):
        """Run `op(session)` under the process lock; one reconnect if the session was lost."""
        with _LOCK:
            for attempt in (1, 2):
                try:
                    return op(self._session())
                except _SESSION_LOST as e:
                    self._conn.close()
                    if attempt == 1:
                        continue
                    failure = type(e).__name__
                except p11e.PKCS11Error as e:
                    failure = type(e).__name__
                raise KeyringError(f"PKCS#11 token '{self._token}': {what} failed ({failure})")

    def _label(self, master_key_id: str) -> str:
        try:
            return self._labels[master_key_id]
        except KeyError:
            raise KeyringError(
                f"unknown master key '{master_key_id}' (have: {', '.join(self._labels)})"
            ) from None

    def _find(self, session, master_key_id: str, version: int | None = None) -> dict:
        """{version: handle} of the master key's objects (one version, or all)."""
        label = self._label(master_key_id)
        attrs = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
        if version is not None:
            attrs[Attribute.ID] = str(version).encode("ascii")
        found: dict[int, object] = {}
        for obj in session.get_objects(attrs):
            raw = obj[Attribute.ID]
            if not raw.isdigit() or raw.startswith(b"0"):  # bytes.isdigit: ASCII digits only
                raise KeyringError(
                    f"PKCS#11 token '{self._token}': key labelled '{label}' has "
                    f"CKA_ID 0x{raw.hex()}, not a version number (ASCII digits)"
                )
            v = int(raw)
            if v in found:
                raise KeyringError(
                    f"PKCS#11 token '{self._token}': two keys labelled '{label}' "
                    f"have version {v}; delete one"
                )
            found[v] = obj
        return found

    def _missing(self, master_key_id: str) -> KeyringError:
        return KeyringError(
            f"PKCS#11 token '{self._token}' has no key labelled '{self._labels[master_key_id]}' "
            f"(master key '{master_key_id}'); create it with `privgate keys init --config ...`"
        )

    def _checked(self, master_key_id: str, version: int, key):
        """`key` if it is a token AES-256 key that is sensitive and non-extractable."""
        a = key.get_attributes(list(_KEY_CHECKS))
        ok = (
            a.get(Attribute.KEY_TYPE) == KeyType.AES
            and a.get(Attribute.VALUE_LEN) == 32
            and a.get(Attribute.TOKEN) is True
            and a.get(Attribute.SENSITIVE) is True
            and a.get(Attribute.EXTRACTABLE) is False
        )
        if not ok:
            raise KeyringError(
                f"PKCS#11 token '{self._token}': key '{self._labels[master_key_id]}' version "
                f"{version} must be a token AES-256 key with CKA_SENSITIVE=true and "
                "CKA_EXTRACTABLE=false; refusing to use it"
            )
        return key

    def _key(self, session, master_key_id: str, version: int | None = None):
        """(version, handle) of a version of a master key, or of its current version."""
        label, handles, found = self._label(master_key_id), self._conn.handles, {}
        if version is None and master_key_id not in self._current:
            found = self._find(session, master_key_id)
            if not found:
                raise self._missing(master_key_id)
            self._current[master_key_id] = max(found)
        if version is None:
            version = self._current[master_key_id]
        if (label, version) not in handles:
            found = found or self._find(session, master_key_id, version)
            if version not in found:
                raise KeyringError(
                    f"PKCS#11 token '{self._token}' has no version {version} of "
                    f"master key '{master_key_id}' (label '{label}')"
                )
            handles[(label, version)] = self._checked(master_key_id, version, found[version])
        return version, handles[(label, version)]

    def _generate(self, session, master_key_id: str, version: int):
        label = self._label(master_key_id)
        key = session.generate_key(
            KeyType.AES,
            256,
            label=label,
            id=str(version).encode("ascii"),
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
            },
        )
        same = {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.LABEL: label,
            Attribute.ID: str(version).encode("ascii"),
        }
        if len(list(session.get_objects(same))) != 1:  # a concurrent rotation
            key.destroy()
            raise KeyringError(
                f"PKCS#11 token '{self._token}': another process created version "
                f"{version} of master key '{master_key_id}' at the same time; "
                "retry"
            )
        self._conn.handles[(label, version)] = self._checked(master_key_id, version, key)
        self._current[master_key_id] = version
        return version

    # ------------------------------------------------------------------ Kms interface

    def wrap(self, master_key_id: str, key: bytes, aad: bytes = b"") -> str:
        iv = os.urandom(_IV_BYTES)
        params = GCMParams(iv, master_key_id.encode() + b"\0" + aad, _TAG_BITS)

        def op(session):
            version, handle = self._key(session, master_key_id)
            return version, handle.encrypt(
                bytes(key), mechanism=Mechanism.AES_GCM, mechanism_param=params
            )

        version, ct = self._call(op, f"wrapping under master key '{master_key_id}'")
        return f"pkcs11:{master_key_id}:{version}:{_b64(iv + ct)}"

    def unwrap(self, master_key_id: str, wrapped: str, aad: bytes = b"") -> bytes:
        try:
            kind, mk_id, version, blob = wrapped.split(":", 3)
            raw = base64.b64decode(blob.encode("ascii"), validate=True)
            if not (version.isascii() and version.isdigit()):
                raise ValueError
        except ValueError:
            raise KeyringError(f"malformed wrapped key for master key '{master_key_id}'") from None
        if kind != "pkcs11" or mk_id != master_key_id:
            raise KeyringError(
                f"wrapped key belongs to '{kind}:{mk_id}', not pkcs11 master key '{master_key_id}'"
            )
        if len(raw) < _IV_BYTES + _TAG_BITS // 8:
            raise KeyringError(f"malformed wrapped key for master key '{master_key_id}'")
        params = GCMParams(raw[:_IV_BYTES], master_key_id.encode() + b"\0" + aad, _TAG_BITS)

        def op(session):
            _, handle = self._key(session, master_key_id, int(version))
            try:
                return handle.decrypt(
                    raw[_IV_BYTES:], mechanism=Mechanism.AES_GCM, mechanism_param=params
                )
            except (
                p11e.GeneralError,
                p11e.EncryptedDataInvalid,
                p11e.EncryptedDataLenRange,
                p11e.FunctionFailed,
            ):  # SoftHSM2 reports a bad GCM tag as a general error
                raise KeyringError(
                    f"cannot unwrap a key under master key '{master_key_id}' version {version}:"
                    " wrong token or keyring, or tampered key material"
                ) from None

        return self._call(op, f"unwrapping under master key '{master_key_id}'")

    def versions(self) -> dict[str, int]:
        def op(session):
            return {m: self._key(session, m)[0] for m in sorted(self._labels)}

        return self._call(op, "reading master key versions")

    def rotate(self, master_key_id: str) -> int:
        """Generate the next version of `master_key_id` on the token and make it current."""
        self._label(master_key_id)

        def op(session):
            found = self._find(session, master_key_id)
            if not found:
                raise self._missing(master_key_id)
            return self._generate(session, master_key_id, max(found) + 1)

        return self._call(op, f"rotating master key '{master_key_id}'")

    def ensure_master_keys(self, masters: tuple[str, ...]) -> None:
        """Create version 1 of each master key the token lacks; check the existing ones."""

        def op(session):
            for m in masters:
                found = self._find(session, m)
                if not found:
                    self._generate(session, m, 1)
                for v in found:
                    self._key(session, m, v)  # checks sensitive / non-extractable
            self._current.clear()  # re-read the current versions

        self._call(op, "creating master keys")
        super().ensure_master_keys(masters)  # a wrap/unwrap probe of each
