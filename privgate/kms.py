"""The KMS abstraction: the `Kms` interface, its bound or restricted views, the backend registry.

privgate's keys rest on master keys that never leave a KMS (`MASTER_KEYS`): a backend maps
these logical ids to its own key handles and wraps or unwraps key bytes under them. The local
keyring (`privgate.keyring.LocalKms`) is the embedded default; every other backend is one
module with a `Kms` subclass plus one line in `KMS_BACKENDS`, imported only when a keyring or a
run config names it, so the local keyring works with none of the optional client libraries.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

from privgate.errors import KeyringError

MASTER_KEYS = ("pii", "data", "footer")


class Kms(ABC):
    """Wraps and unwraps key bytes under a named master key that never leaves the KMS.

    Backends: the local keyring (`privgate.keyring.LocalKms`), PKCS#11 tokens
    (`privgate.kms_pkcs11`), AWS KMS (`privgate.kms_aws`), Google Cloud KMS
    (`privgate.kms_gcp`); see `KMS_BACKENDS`.
    Master key ids are privgate's logical names (`pii`, `data`, `footer`); a backend maps them
    to its own key handles. `wrap` returns a self-describing string (`<kind>:<master>:...`)
    that records the master key version used, so `unwrap` works after a rotation. `aad` is
    authenticated (AES-GCM additional data, an AWS encryption context, GCP
    additional_authenticated_data): a wrapped key moved to another purpose fails to unwrap.
    Implementations must be thread-safe (pyarrow unwraps from pool threads) and must never
    put key bytes or secrets (PINs, credentials) in exceptions, logs or `repr`.
    """

    name = "abstract"

    def __reduce__(self):
        raise TypeError(
            "a KMS holds or reaches master keys and must not be pickled; "
            "open the keyring where it is needed"
        )

    @abstractmethod
    def wrap(self, master_key_id: str, key: bytes, aad: bytes = b"") -> str: ...

    @abstractmethod
    def unwrap(self, master_key_id: str, wrapped: str, aad: bytes = b"") -> bytes: ...

    @abstractmethod
    def versions(self) -> dict[str, int | str]:
        """Current version of each master key id (for the manifest; never key bytes)."""

    def rotate(self, master_key_id: str) -> int | str:
        """Make a new version of `master_key_id` current (old versions keep unwrapping)."""
        raise KeyringError(f"the {self.name} KMS cannot rotate master keys from privgate")

    def restricted(self, allowed: set[str]) -> Kms:
        """A view that may use only the master keys in `allowed` (least privilege)."""
        return _RestrictedKms(self, frozenset(allowed))

    def ensure_master_keys(self, masters: tuple[str, ...]) -> None:
        """Called by `keys init`: check (or, where the backend can, create) the master keys."""
        for m in masters:  # default: a wrap proves the key exists and is usable
            self.unwrap(m, self.wrap(m, b"\0" * 32, b"privgate:probe"), b"privgate:probe")

    def bound(self, context: str) -> Kms:
        """This KMS with `context` as the AAD of calls made without one: Parquet key-encryption
        keys are wrapped under the dataset's context (`kek_context`), so a KEK moved to
        another dataset does not unwrap (an AWS encryption context naming the dataset).
        One view per context and KMS object, so pyarrow's KEK cache is reused."""
        with _BOUND_LOCK:
            views = self.__dict__.setdefault("_bound_views", {})
            if context not in views:
                views[context] = _BoundKms(self, context)
            return views[context]


_BOUND_LOCK = threading.Lock()


def kek_context(dataset: str) -> str:
    """The AAD under which a dataset's Parquet KEKs are wrapped (recorded in the manifest)."""
    return f"privgate-dataset:{dataset}"


class _BoundKms(Kms):
    def __init__(self, inner: Kms, context: str):
        self._inner, self._aad = inner, context.encode("utf-8")
        self.name = inner.name

    def wrap(self, master_key_id: str, key: bytes, aad: bytes = b"") -> str:
        return self._inner.wrap(master_key_id, key, aad or self._aad)

    def unwrap(self, master_key_id: str, wrapped: str, aad: bytes = b"") -> bytes:
        return self._inner.unwrap(master_key_id, wrapped, aad or self._aad)

    def versions(self) -> dict[str, int | str]:
        return self._inner.versions()


class _RestrictedKms(Kms):
    def __init__(self, inner: Kms, allowed: frozenset[str]):
        self._inner, self._allowed = inner, allowed
        self.name = inner.name

    def _check(self, master_key_id: str) -> None:
        if master_key_id not in self._allowed:
            raise KeyringError(f"master key '{master_key_id}' is not available to this keyring")

    def wrap(self, master_key_id: str, key: bytes, aad: bytes = b"") -> str:
        self._check(master_key_id)
        return self._inner.wrap(master_key_id, key, aad)

    def unwrap(self, master_key_id: str, wrapped: str, aad: bytes = b"") -> bytes:
        self._check(master_key_id)
        return self._inner.unwrap(master_key_id, wrapped, aad)

    def versions(self) -> dict[str, int | str]:
        return {k: v for k, v in self._inner.versions().items() if k in self._allowed}

    def restricted(self, allowed: set[str]) -> Kms:
        return _RestrictedKms(self._inner, self._allowed & frozenset(allowed))


@dataclass(frozen=True)
class KmsBackend:
    """Where an external KMS backend lives; nothing is imported until a keyring names it.

    Attributes:
        module: the backend's module (it imports the backend's client library).
        cls: the `Kms` subclass in `module`, built from the (non-secret) settings mapping.
        parse_settings: the function in `module` that validates settings without contacting
            the KMS (KeyringError naming the setting, e.g. `keys.aws-kms.region: ...`);
            None when the backend checks its settings only when built.
        extra: the pip extra that installs the client library (`privgate[<extra>]`).
        remote: the master keys are a network service reachable from any machine allowed
            to use them (a cloud KMS), so the keyring may live in an object store and be
            opened by the workers of a distributed runner; False for keys bound to one
            machine (a PKCS#11 token) and for the local keyring.
    """

    module: str
    cls: str
    parse_settings: str | None
    extra: str
    remote: bool = False


# keys.kms kind -> backend: adding a backend is one module and one line here
KMS_BACKENDS: dict[str, KmsBackend] = {
    "pkcs11": KmsBackend("privgate.kms_pkcs11", "Pkcs11Kms", "parse_settings", "pkcs11"),
    "aws-kms": KmsBackend("privgate.kms_aws", "AwsKms", "parse_settings", "aws", remote=True),
    "gcp-kms": KmsBackend("privgate.kms_gcp", "GcpKms", "parse_settings", "gcp", remote=True),
}


def kms_kinds() -> tuple[str, ...]:
    """Every `keys.kms` value: `local` (the keyring file itself), then the registered backends."""
    return ("local", *KMS_BACKENDS)


def remote_kms_kinds() -> tuple[str, ...]:
    """The `keys.kms` values whose keyrings may leave the launcher machine (workers of a
    distributed runner, an object-store keyring path): the cloud KMSs."""
    return tuple(k for k, b in KMS_BACKENDS.items() if b.remote)


def check_kms_settings(kind: str, settings: dict) -> None:
    """Validate an external KMS's settings without contacting it (KeyringError naming the
    setting, e.g. `keys.aws-kms.region: ...`)."""
    backend = KMS_BACKENDS[kind]
    if backend.parse_settings is None:
        return
    try:
        mod = importlib.import_module(backend.module)
    except ImportError:
        return  # reported when the keyring is opened, with the extra to install
    getattr(mod, backend.parse_settings)(settings)


def external_kms(kind: str, settings: dict) -> Kms:
    """Instantiate an external KMS backend from its (non-secret) settings."""
    if kind not in KMS_BACKENDS:
        raise KeyringError(f"unknown KMS '{kind}' (have: {', '.join(kms_kinds())})")
    backend = KMS_BACKENDS[kind]
    try:
        mod = importlib.import_module(backend.module)
    except ImportError as e:
        raise KeyringError(
            f"the {kind} KMS needs its client library: pip install 'privgate[{backend.extra}]' "
            f"({type(e).__name__}: {e.name or 'import failed'})"
        ) from None
    return getattr(mod, backend.cls)(settings)
