"""The keyring: its file format, the local KMS it embeds, `Keyring` (an opened keyring).

Layout of the key hierarchy:
- master keys (`pii`, `data`, `footer`) live in a KMS. They wrap the Parquet key-encryption
  keys (pyarrow double wrapping) and privgate's data-protection keys; they never leave the KMS
  through this interface. The local keyring keeps them in its passphrase-encrypted file.
- data-protection keys (token HMAC key, AES-SIV key, date-shift PRF key) are stored wrapped
  under the `pii` master key and unwrapped in the worker that needs them.
- an Ed25519 signing key signs manifests; its public half is stored in clear in the file and
  authenticated whenever the keyring is opened: a local keyring's header (which holds it) is
  the AES-GCM AAD of the payload, and the public key must be the signing key's; an external
  keyring holds the public key also wrapped under the `footer` master key (which every reader
  needs) with the keyring id as AAD. A public key read without opening the keyring is not
  authenticated, so nothing here offers one.

The keyring file is JSON, AES-256-GCM encrypted under a key derived from the passphrase in
`PRIVGATE_KEYRING_PASSPHRASE` with scrypt (memory-hard), written 0600 and refused when
group/world-readable. Secrets are never logged, pickled or passed as constructor arguments
of pipeline objects: workers call `open_keyring(path)` in `setup()`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import stat
import threading
import uuid
from collections.abc import Callable

from privgate.errors import KeyringError, PrivgateError
from privgate.kms import MASTER_KEYS, Kms, external_kms, remote_kms_kinds

PASSPHRASE_ENV = "PRIVGATE_KEYRING_PASSPHRASE"
KEYRING_ENV = "PRIVGATE_KEYRING"
# data-protection key name -> (wrapping master key, length in bytes)
DATA_PROTECTION_KEYS = {
    "token": ("pii", 32),
    "siv": ("pii", 64),
    "date_shift": ("pii", 32),
    "ldp": ("pii", 32),
}
FORMAT = "privgate-keyring"
SCRYPT = {"n": 2**17, "r": 8, "p": 1}


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s.encode("ascii"), validate=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class LocalKms(Kms):
    """Master keys held in the local keyring file; AES-256-GCM wrapping.

    `allowed` restricts which master keys this instance may use (least privilege: a reader of
    non-PII columns needs only `data` and `footer`).
    """

    name = "local"

    def __init__(self, master_keys: dict, allowed: frozenset[str] | None = None):
        self._keys = master_keys  # id -> {"current": int, "versions": {str(v): {"key": b64}}}
        self._allowed = frozenset(master_keys) if allowed is None else allowed

    def _key(self, master_key_id: str, version: int | None = None) -> tuple[int, bytes]:
        if master_key_id not in self._allowed or master_key_id not in self._keys:
            raise KeyringError(f"master key '{master_key_id}' is not available to this keyring")
        entry = self._keys[master_key_id]
        version = entry["current"] if version is None else version
        try:
            return version, _unb64(entry["versions"][str(version)]["key"])
        except KeyError:
            raise KeyringError(
                f"master key '{master_key_id}' has no version {version} in this keyring"
            ) from None

    def wrap(self, master_key_id: str, key: bytes, aad: bytes = b"") -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        version, mk = self._key(master_key_id)
        nonce = os.urandom(12)
        ct = AESGCM(mk).encrypt(nonce, key, master_key_id.encode() + b"\0" + aad)
        return f"local:{master_key_id}:{version}:{_b64(nonce + ct)}"

    def unwrap(self, master_key_id: str, wrapped: str, aad: bytes = b"") -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            kind, mk_id, version, blob = wrapped.split(":", 3)
            raw = _unb64(blob)
            version = int(version)
        except ValueError:
            raise KeyringError(f"malformed wrapped key for master key '{master_key_id}'") from None
        if kind != "local" or mk_id != master_key_id:
            raise KeyringError(
                f"wrapped key belongs to '{kind}:{mk_id}', not local master key '{master_key_id}'"
            )
        _, mk = self._key(master_key_id, version)
        try:
            return AESGCM(mk).decrypt(raw[:12], raw[12:], master_key_id.encode() + b"\0" + aad)
        except InvalidTag:
            raise KeyringError(
                f"cannot unwrap a key under master key '{master_key_id}': wrong keyring "
                "or tampered key material"
            ) from None

    def versions(self) -> dict[str, int]:
        return {k: v["current"] for k, v in sorted(self._keys.items()) if k in self._allowed}

    def restricted(self, allowed: set[str]) -> LocalKms:
        return LocalKms(self._keys, frozenset(allowed) & self._allowed)


class Keyring:
    """An opened keyring: a KMS plus wrapped data-protection keys and the signing key."""

    def __init__(
        self,
        path: str,
        keyring_id: str,
        kms: Kms,
        dpks: dict,
        signing: bytes | Callable[[], bytes] | None,
        public_key: bytes,
    ):
        self.path = path
        self.keyring_id = keyring_id
        self.kms = kms
        self._dpks = dpks  # name -> {"master_key": id, "wrapped": str}
        self._signing = signing
        self.public_key_bytes = public_key
        self._cache: dict[str, bytes] = {}

    def __repr__(self) -> str:  # never show key material
        return f"Keyring(id={self.keyring_id!r}, kms={self.kms.name!r})"

    def __reduce__(self):
        raise TypeError("a Keyring holds secrets and must not be pickled; open it in setup()")

    def data_key(self, name: str) -> bytes:
        """Unwrapped data-protection key `name` (token, siv, date_shift)."""
        if name not in self._cache:
            entry = self._dpks.get(name)
            if entry is None:
                raise KeyringError(f"keyring has no data-protection key '{name}'")
            aad = f"{self.keyring_id}:{name}".encode()
            self._cache[name] = self.kms.unwrap(entry["master_key"], entry["wrapped"], aad)
        return self._cache[name]

    def signing_key(self):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if self._signing is None:
            raise KeyringError("this keyring view has no signing key")
        if callable(self._signing):  # external KMS: unwrapped on first use only
            self._signing = self._signing()
        return Ed25519PrivateKey.from_private_bytes(self._signing)

    def public_key(self):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        return Ed25519PublicKey.from_public_bytes(self.public_key_bytes)

    def restricted(self, masters: set[str]) -> Keyring:
        """A view that can use only the given master keys (and cannot sign)."""
        return Keyring(
            self.path,
            self.keyring_id,
            self.kms.restricted(masters),
            self._dpks,
            None,
            self.public_key_bytes,
        )


# --------------------------------------------------------------------------- file format


def _derive(passphrase: str, salt: bytes, params: dict) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(
        passphrase.encode("utf-8")
    )


def _header_aad(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _passphrase() -> str:
    p = os.environ.get(PASSPHRASE_ENV)
    if not p:
        raise KeyringError(f"set {PASSPHRASE_ENV} to the keyring passphrase")
    return p


def resolve_keyring_path(path: str | None) -> str:
    path = path or os.environ.get(KEYRING_ENV)
    if not path:
        raise KeyringError(f"no keyring given: pass --keyring PATH or set {KEYRING_ENV}")
    return path


def _new_signing_key() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    sk = Ed25519PrivateKey.generate()
    raw_sk = sk.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_pk = sk.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return raw_sk, raw_pk


def _derived_public_key(raw_sk: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(raw_sk).public_key().public_bytes_raw()


def _check_public_key(path: str, public_key: bytes, vouched: bytes, by: str) -> None:
    """Refuse a keyring whose clear public key is not the one `by` vouches for."""
    if not hmac.compare_digest(public_key, vouched):
        raise KeyringError(
            f"{path}: the keyring's public key does not match its {by}: the file was "
            "tampered with; refusing it"
        )


def _public_key_aad(keyring_id: str) -> bytes:
    return f"{keyring_id}:public_key".encode()


def _wrap_public_key(kms: Kms, keyring_id: str, raw_pk: bytes) -> str:
    """The public key wrapped under `footer` (needed by every reader), bound to the keyring."""
    return kms.wrap("footer", raw_pk, _public_key_aad(keyring_id))


def init_keyring(path: str, kms: str = "local", settings: dict | None = None) -> Keyring:
    """Create a new keyring at `path` (refuses to overwrite). Returns it opened.

    `kms="local"`: master keys in the passphrase-encrypted file. Any other kind (see
    `privgate.kms.KMS_BACKENDS`): master keys stay in that KMS; the file holds only the
    backend's non-secret `settings`, the data-protection keys and the signing key wrapped by
    it, and the public key; it needs no passphrase.
    """
    _refuse_object_write(path)
    if os.path.exists(path):
        raise KeyringError(f"{path}: a keyring already exists; refusing to overwrite it")
    if kms != "local":
        return _init_external(path, kms, dict(settings or {}))
    passphrase = _passphrase()
    keyring_id = str(uuid.uuid4())
    created = _now()
    masters = {
        m: {"current": 1, "versions": {"1": {"key": _b64(os.urandom(32)), "created": created}}}
        for m in MASTER_KEYS
    }
    kms = LocalKms(masters)
    dpks = {
        name: {
            "master_key": mk,
            "wrapped": kms.wrap(mk, os.urandom(n), f"{keyring_id}:{name}".encode()),
            "created": created,
        }
        for name, (mk, n) in DATA_PROTECTION_KEYS.items()
    }
    raw_sk, raw_pk = _new_signing_key()
    payload = {
        "created": created,
        "master_keys": masters,
        "dpks": dpks,
        "signing_key": _b64(raw_sk),
    }
    _write(path, keyring_id, raw_pk, payload, passphrase, create=True)
    return _open_uncached(path)


def _write(
    path: str, keyring_id: str, raw_pk: bytes, payload: dict, passphrase: str, create: bool
) -> None:
    """Encrypt `payload` under a fresh salt and nonce and write the keyring file (0600):
    a new file with O_EXCL, or an atomic replacement (temp file + rename)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt = os.urandom(16)
    header = {
        "format": FORMAT,
        "version": 1,
        "keyring_id": keyring_id,
        "kms": "local",
        "public_key": _b64(raw_pk),
        "kdf": {"name": "scrypt", **SCRYPT, "salt": _b64(salt)},
        "aead": "AES-256-GCM",
    }
    nonce = os.urandom(12)
    ct = AESGCM(_derive(passphrase, salt, SCRYPT)).encrypt(
        nonce, json.dumps(payload).encode(), _header_aad(header)
    )
    _write_doc(path, dict(header, nonce=_b64(nonce), ciphertext=_b64(ct)), create)


def _write_doc(path: str, doc: dict, create: bool) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    target = path if create else f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    if not create:
        os.replace(target, path)


def _wrap_all(
    kms: Kms,
    keyring_id: str,
    dpk_bytes: dict[str, bytes],
    raw_sk: bytes,
    created: str,
    dpks: dict | None = None,
) -> tuple[dict, dict, str]:
    """The data-protection keys, the signing key and the public key check, wrapped by `kms`."""
    dpks = dpks or {}
    out = {}
    for name, key in dpk_bytes.items():
        mk = DATA_PROTECTION_KEYS[name][0]
        out[name] = dict(
            dpks.get(name, {"created": created}),
            master_key=mk,
            wrapped=kms.wrap(mk, key, f"{keyring_id}:{name}".encode()),
        )
        if name in dpks:
            out[name]["rewrapped"] = created
    signing = {
        "master_key": "pii",
        "wrapped": kms.wrap("pii", raw_sk, f"{keyring_id}:signing".encode()),
    }
    return out, signing, _wrap_public_key(kms, keyring_id, _derived_public_key(raw_sk))


def _init_external(path: str, kind: str, settings: dict) -> Keyring:
    kms = external_kms(kind, settings)
    kms.ensure_master_keys(MASTER_KEYS)
    keyring_id = str(uuid.uuid4())
    created = _now()
    raw_sk, raw_pk = _new_signing_key()
    dpk_bytes = {name: os.urandom(n) for name, (_, n) in DATA_PROTECTION_KEYS.items()}
    dpks, signing, public_key_check = _wrap_all(kms, keyring_id, dpk_bytes, raw_sk, created)
    doc = {
        "format": FORMAT,
        "version": 1,
        "keyring_id": keyring_id,
        "kms": kind,
        "kms_settings": settings,
        "public_key": _b64(raw_pk),
        "public_key_check": public_key_check,
        "created": created,
        "dpks": dpks,
        "signing_key": signing,
        # when privgate first used each master key version (the KMS keeps the keys)
        "master_key_history": {m: {str(v): created} for m, v in kms.versions().items()},
    }
    _write_doc(path, doc, create=True)
    return _open_uncached(path)


def _open_external(path: str, doc: dict) -> Keyring:
    """Open an external keyring, authenticating its clear public key with the KMS: the
    `footer`-wrapped copy, or (a file written before that copy existed) the signing key."""
    try:
        kind, settings, dpks, signing = (
            doc["kms"],
            doc["kms_settings"],
            doc["dpks"],
            doc["signing_key"],
        )
    except KeyError as e:
        raise KeyringError(f"{path}: keyring lacks '{e.args[0]}'") from None
    keyring_id, public_key = doc["keyring_id"], _clear_public_key(path, doc)
    kms = external_kms(kind, settings)

    def unwrap_signing_key() -> bytes:
        raw_sk = kms.unwrap(
            signing["master_key"], signing["wrapped"], f"{keyring_id}:signing".encode()
        )
        _check_public_key(path, public_key, _derived_public_key(raw_sk), "signing key")
        return raw_sk

    check = doc.get("public_key_check")
    if check is None:
        signing_key = unwrap_signing_key()
    else:
        try:
            vouched = kms.unwrap("footer", check, _public_key_aad(keyring_id))
        except KeyringError as e:
            raise KeyringError(
                f"{path}: cannot authenticate the keyring's public key: {e}"
            ) from None
        _check_public_key(path, public_key, vouched, "KMS-wrapped copy")
        signing_key = unwrap_signing_key  # unwrapped on first use only (needs `pii`)
    return Keyring(path, keyring_id, kms, dpks, signing_key, public_key)


def _clear_public_key(path: str, doc: dict) -> bytes:
    try:
        return _unb64(doc["public_key"])
    except (KeyError, ValueError, AttributeError):
        raise KeyringError(f"{path}: keyring has no readable public key") from None


def rotate_keyring(path: str, masters: tuple[str, ...] = MASTER_KEYS) -> dict[str, int]:
    """Add a new version of each named master key and re-wrap the data-protection keys.

    The data-protection keys themselves do not change, so tokens, ciphertexts and date
    shifts stay stable; old master key versions are kept, so outputs written before the
    rotation stay readable; new runs wrap under the new versions (recorded in manifests).

    Returns:
        {master key id: new current version}.
    Raises:
        KeyringError: unknown master key, or the keyring cannot be opened.
    """
    unknown = [m for m in masters if m not in MASTER_KEYS]
    if unknown:
        raise KeyringError(f"unknown master key '{unknown[0]}' (have: {', '.join(MASTER_KEYS)})")
    _refuse_object_write(path)
    kr = _open_uncached(path)
    doc = _read_doc(path)
    if doc["kms"] != "local":
        dpk_bytes = {name: kr.data_key(name) for name in doc["dpks"]}
        raw_sk = kr.signing_key().private_bytes_raw()
        versions = {m: kr.kms.rotate(m) for m in masters}
        now = _now()
        history = doc.setdefault("master_key_history", {})
        for m, v in versions.items():
            history.setdefault(m, {})[str(v)] = now
        doc["dpks"], doc["signing_key"], doc["public_key_check"] = _wrap_all(
            kr.kms, kr.keyring_id, dpk_bytes, raw_sk, now, doc["dpks"]
        )
        _write_doc(path, doc, create=False)
        _CACHE.clear()
        return versions
    payload = _payload(path)
    dpk_bytes = {name: kr.data_key(name) for name in payload["dpks"]}
    created = _now()
    for m in masters:
        entry = payload["master_keys"][m]
        version = max(int(v) for v in entry["versions"]) + 1
        entry["versions"][str(version)] = {"key": _b64(os.urandom(32)), "created": created}
        entry["current"] = version
    kms = LocalKms(payload["master_keys"])
    for name, entry in payload["dpks"].items():
        entry["wrapped"] = kms.wrap(
            entry["master_key"], dpk_bytes[name], f"{kr.keyring_id}:{name}".encode()
        )
        entry["rewrapped"] = created
    _write(path, kr.keyring_id, kr.public_key_bytes, payload, _passphrase(), create=False)
    _CACHE.clear()
    return {m: payload["master_keys"][m]["current"] for m in masters}


def describe_keyring(path: str) -> dict:
    """Ids, versions and creation times of a keyring's keys (never key bytes)."""
    doc = _read_doc(path)
    if doc["kms"] != "local":
        kms = _open_uncached(path).kms
        return {
            "keyring_id": doc["keyring_id"],
            "kms": doc["kms"],
            "kms_settings": doc["kms_settings"],
            "created": doc["created"],
            "master_keys": {
                m: {"current": v, "versions": doc.get("master_key_history", {}).get(m, {})}
                for m, v in sorted(kms.versions().items())
            },
            "data_protection_keys": _describe_dpks(doc["dpks"]),
        }
    payload = _payload(path)
    return {
        "keyring_id": doc["keyring_id"],
        "kms": doc["kms"],
        "created": payload["created"],
        "master_keys": {
            m: {
                "current": e["current"],
                "versions": {
                    v: x["created"]
                    for v, x in sorted(e["versions"].items(), key=lambda kv: int(kv[0]))
                },
            }
            for m, e in sorted(payload["master_keys"].items())
        },
        "data_protection_keys": _describe_dpks(payload["dpks"]),
    }


def _describe_dpks(dpks: dict) -> dict:
    """The listing of wrapped data-protection keys: master key, its version, creation time."""
    return {
        n: {
            "wrapped_by": e["master_key"],
            "master_key_version": _wrapped_version(e["wrapped"]),
            "created": e.get("created"),
        }
        for n, e in sorted(dpks.items())
    }


def _wrapped_version(wrapped: str) -> int | str:
    """The master key version recorded in a wrapped key `<kind>:<master>:<version>:<blob>`."""
    v = wrapped.split(":")[2]
    return int(v) if v.isdigit() else v


def is_object_path(path: str) -> bool:
    """True for an object-store URI (gs://, s3://) rather than a local file."""
    return "://" in path


def _read_object(path: str) -> bytes:
    """The bytes of a keyring in an object store, through `privgate.storage` (pyarrow.fs; no
    Beam, as the consumer API opens keyrings too; endpoints from the environment)."""
    from privgate import storage

    try:
        return storage.read_bytes(path)
    except FileNotFoundError:
        raise KeyringError(f"{path}: keyring not found") from None
    except (OSError, PrivgateError) as e:  # the store's errors name the object, not its bytes
        raise KeyringError(f"{path}: cannot read keyring object ({type(e).__name__})") from None


def _refuse_object_write(path: str) -> None:
    if is_object_path(path):
        raise KeyringError(
            f"{path}: keyrings are created and rotated in a local file; copy the file to the "
            "object store afterwards (it holds no secret when its KMS is a cloud KMS)"
        )


def _read_local(path: str) -> bytes:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise KeyringError(
            f"{path}: keyring not found (create one with `privgate keys init --keyring {path}`)"
        ) from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyringError(
            f"{path}: keyring is readable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):o}); run `chmod 600 {path}`"
        )
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        raise KeyringError(f"{path}: cannot read keyring file") from None


def _read_doc(path: str, raw: bytes | None = None) -> dict:
    """The keyring document (from `raw` when the bytes were read already). An object-store
    keyring has no file mode (the bucket's IAM says who reads it) and must name a remote
    KMS: its master keys then stay in the cloud KMS."""
    if raw is None:
        raw = _read_object(path) if is_object_path(path) else _read_local(path)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise KeyringError(f"{path}: cannot read keyring file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != 1:
        raise KeyringError(f"{path}: not a privgate keyring (version 1)")
    if is_object_path(path) and doc.get("kms") not in remote_kms_kinds():
        raise KeyringError(
            f"{path}: a {doc.get('kms')} keyring cannot be opened from an object store: only "
            f"keyrings of a cloud KMS ({', '.join(remote_kms_kinds())}) may leave the machine "
            "that holds their master keys"
        )
    return doc


def keyring_kms(path: str) -> tuple[str, dict]:
    """The KMS kind and (non-secret) settings a keyring file names."""
    doc = _read_doc(path)
    return doc["kms"], doc.get("kms_settings", {})


def _payload(path: str) -> dict:
    """The decrypted keyring payload (KeyringError on a wrong passphrase or tampering)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    doc = _read_doc(path)
    passphrase = _passphrase()
    header = {
        k: doc[k] for k in ("format", "version", "keyring_id", "kms", "public_key", "kdf", "aead")
    }
    kdf = doc["kdf"]
    try:
        key = _derive(passphrase, _unb64(kdf["salt"]), kdf)
        return json.loads(
            AESGCM(key).decrypt(
                _unb64(doc["nonce"]), _unb64(doc["ciphertext"]), _header_aad(header)
            )
        )
    except InvalidTag:
        raise KeyringError(
            f"{path}: cannot open keyring: wrong passphrase or tampered file"
        ) from None


def _open_uncached(path: str, raw: bytes | None = None) -> Keyring:
    doc = _read_doc(path, raw)
    if doc.get("kms") != "local":
        return _open_external(path, doc)
    payload = _payload(path)
    missing = [m for m in MASTER_KEYS if m not in payload["master_keys"]]
    if missing:
        raise KeyringError(f"{path}: keyring lacks master key(s): {', '.join(missing)}")
    raw_sk, public_key = _unb64(payload["signing_key"]), _clear_public_key(path, doc)
    _check_public_key(path, public_key, _derived_public_key(raw_sk), "signing key")
    return Keyring(
        path,
        doc["keyring_id"],
        LocalKms(payload["master_keys"]),
        payload["dpks"],
        raw_sk,
        public_key,
    )


_CACHE: dict[tuple, Keyring] = {}
_LOCK = threading.Lock()


def open_keyring(path: str | None = None) -> Keyring:
    """Open (and cache per process) the keyring at `path` or `$PRIVGATE_KEYRING`.

    Raises:
        KeyringError: missing file, unsafe permissions, missing passphrase, wrong passphrase,
            or a missing master key. Raised before any data is read.
    """
    path = resolve_keyring_path(path)
    # the passphrase only as a digest: a cache key is no place for a secret
    passphrase_id = hashlib.sha256(os.environ.get(PASSPHRASE_ENV, "").encode()).digest()
    raw = None
    if is_object_path(path):  # one small read per open; KMS calls only when the bytes change
        raw = _read_object(path)
        ident = (path, hashlib.sha256(raw).digest(), passphrase_id)
    else:
        path = os.path.abspath(path)
        try:
            st = os.stat(path)
            ident = (path, st.st_mtime_ns, st.st_size, passphrase_id)
        except FileNotFoundError:
            ident = None
    with _LOCK:
        if ident is not None and ident in _CACHE:
            return _CACHE[ident]
        kr = _open_uncached(path, raw)
        if ident is not None:
            _CACHE.clear()
            _CACHE[ident] = kr
        return kr
