"""Google Cloud KMS backend (`keys.kms: gcp-kms`): master keys are Cloud KMS symmetric keys.

privgate's master keys `pii`, `data` and `footer` map to three Cloud KMS CryptoKeys (purpose
ENCRYPT_DECRYPT). Key bytes are wrapped with Cloud KMS `Encrypt` and unwrapped with `Decrypt`;
the master key id and the caller's context travel as additional authenticated data, so a
wrapped key moved to another master key, keyring or dataset does not decrypt. Every call
carries CRC32C checksums and checks the service's, as Google's data-integrity guidelines ask.
Wrapped keys read `gcp-kms:<master>:<cryptoKeyVersion number>:<base64 ciphertext>`.

Settings (run config `keys.gcp-kms:`; stored in the keyring file, nothing secret)::

    keys:
      kms: gcp-kms
      keyring: ../.privgate/keyring.json
      gcp-kms:
        keys:
          pii: projects/P/locations/europe-west1/keyRings/privgate/cryptoKeys/pii
          data: projects/P/locations/europe-west1/keyRings/privgate/cryptoKeys/data
          footer: projects/P/locations/europe-west1/keyRings/privgate/cryptoKeys/footer
        timeout: 10           # optional: seconds per KMS operation, retries included
        # endpoint: 127.0.0.1:PORT   # tests only: a loopback server, plaintext gRPC,
        #                              anonymous credentials

privgate does not create keys in a cloud project; create them first, then the keyring::

    gcloud kms keyrings create privgate --location europe-west1
    gcloud kms keys create pii --keyring privgate --location europe-west1 --purpose encryption
    (the same for data and footer)
    privgate keys init --config run.yaml

Credentials: Application Default Credentials (the attached service account on Dataflow or
GCE, `gcloud auth application-default login` on a workstation, or
GOOGLE_APPLICATION_CREDENTIALS). IAM roles, granted on the three keys:

* runs (workers and launcher), `keys init`: `roles/cloudkms.cryptoKeyEncrypterDecrypter`;
  the launcher, `keys init` and `keys list` also read each key's primary version
  (`cloudkms.cryptoKeys.get`, e.g. `roles/cloudkms.viewer`) for the manifest and listing;
* readers of protected outputs: `roles/cloudkms.cryptoKeyDecrypter` is enough;
* `keys rotate`: `roles/cloudkms.admin` (new key version, primary version update) plus
  `roles/cloudkms.cryptoKeyEncrypterDecrypter` (the data-protection keys are re-wrapped).

Rotation creates a new key version and makes it primary; older versions must stay ENABLED
for outputs written before the rotation to remain readable (disabling or destroying one
makes them unreadable: that is crypto-shredding). Cloud KMS makes a new primary visible to
Encrypt eventually (typically within a minute, rarely hours), so the instance that rotated
encrypts with the new version by name: `keys rotate` re-wraps the data-protection keys under
it. Runs inside that window may still wrap Parquet KEKs under the previous version; every
wrapped key records the version actually used, the manifest records the primary.

Calls time out after `timeout` seconds including bounded retries of UNAVAILABLE and
DEADLINE_EXCEEDED, so an unreachable service fails in seconds with a KeyringError. One
gRPC client per instance, created on first use and shared by threads; a forked child makes
its own (a gRPC channel must not cross fork()).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import re
import threading
import time
import weakref

import google.auth.exceptions
import google_crc32c
import grpc
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import kms_v1

from privgate.errors import KeyringError
from privgate.kms import MASTER_KEYS, Kms

KIND = "gcp-kms"
SETTINGS = ("keys", "endpoint", "timeout")
DEFAULT_TIMEOUT = 10.0
INTEGRITY_ATTEMPTS = 3  # Google: retry a limited number of times on a checksum mismatch
_KEY_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+")
_VERSION_NAME = re.compile(r"(?P<key>.+)/cryptoKeyVersions/(?P<version>[0-9]+)")
_STATE = kms_v1.CryptoKeyVersion.CryptoKeyVersionState
_ENCRYPT_DECRYPT = kms_v1.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT
# the role that grants each call, for PERMISSION_DENIED messages
_ROLE = {
    "encrypt": "roles/cloudkms.cryptoKeyEncrypterDecrypter",
    "decrypt": "roles/cloudkms.cryptoKeyEncrypterDecrypter (or cryptoKeyDecrypter)",
    "get_crypto_key": "roles/cloudkms.viewer (cloudkms.cryptoKeys.get)",
    "get_crypto_key_version": "roles/cloudkms.viewer (cloudkms.cryptoKeyVersions.get)",
    "create_crypto_key_version": "roles/cloudkms.admin",
    "update_crypto_key_primary_version": "roles/cloudkms.admin",
}
_INSTANCES: weakref.WeakSet = weakref.WeakSet()
_TRANSPORT_LOGGERS = (
    "google.cloud.kms_v1.services.key_management_service.transports.grpc",
    "google.cloud.kms_v1.services.key_management_service.transports.rest",
)


class _NoPayloads(logging.Filter):
    """google-cloud-kms logs every request and response at DEBUG with the payload attached
    (plaintext key bytes, base64 in JSON): such records never leave its transport loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (hasattr(record, "request") or hasattr(record, "response"))


for _name in _TRANSPORT_LOGGERS:
    logging.getLogger(_name).addFilter(_NoPayloads())


def _crc(data: bytes) -> int:
    return google_crc32c.value(data)


def _aad_fields(master_key_id: str, aad: bytes) -> dict:
    """The request's AAD (the master key id binds a wrapped key to it) and its checksum."""
    full = master_key_id.encode() + b"\0" + aad
    return {
        "additional_authenticated_data": full,
        "additional_authenticated_data_crc32c": _crc(full),
    }


def _setting_error(path: str, message: str) -> KeyringError:
    return KeyringError(f"keys.{KIND}.{path}: {message}")


def parse_settings(settings) -> tuple[dict[str, str], str | None, float]:
    """Validate `keys.gcp-kms` settings offline (KeyringError naming the setting)."""
    if not isinstance(settings, dict):
        raise KeyringError(f"keys.{KIND}: must be a mapping of settings with 'keys'")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise _setting_error(unknown[0], f"unknown setting (have: {', '.join(SETTINGS)})")
    keys = settings.get("keys")
    if not isinstance(keys, dict):
        raise _setting_error(
            "keys",
            "required: a mapping of master key id (pii, data, footer) to a Cloud KMS key name",
        )
    extra = sorted(set(keys) - set(MASTER_KEYS))
    if extra:
        raise _setting_error(
            f"keys.{extra[0]}", f"unknown master key (have: {', '.join(MASTER_KEYS)})"
        )
    for m in MASTER_KEYS:
        name = keys.get(m)
        if name is None:
            raise _setting_error(f"keys.{m}", "missing")
        if isinstance(name, str) and "/cryptoKeyVersions/" in name:
            raise _setting_error(
                f"keys.{m}",
                "must name a CryptoKey, not a key version "
                "(the primary version is used, so rotation works)",
            )
        if not isinstance(name, str) or not _KEY_NAME.fullmatch(name):
            raise _setting_error(
                f"keys.{m}",
                "must be a Cloud KMS key name projects/P/locations/L/keyRings/R/cryptoKeys/K",
            )
    endpoint = settings.get("endpoint")
    if endpoint is not None and not _is_loopback_endpoint(endpoint):
        raise _setting_error(
            "endpoint",
            "must be a loopback HOST:PORT such as "
            "127.0.0.1:8443 (a local test server); omit it to use Cloud KMS",
        )
    timeout = settings.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise _setting_error("timeout", "must be a number of seconds in (0, 600]")
    return {m: keys[m] for m in MASTER_KEYS}, endpoint, float(timeout)


def _is_loopback_endpoint(endpoint) -> bool:
    if not isinstance(endpoint, str):
        return False
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return False
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GcpKms(Kms):
    """Master keys in Google Cloud KMS, one CryptoKey per master key id (see module doc).

    Args:
        settings: `{"keys": {"pii": KEY_NAME, "data": ..., "footer": ...}, "timeout": s,
            "endpoint": "127.0.0.1:PORT" (tests)}`.
    Raises:
        KeyringError: invalid settings (naming the setting).
    """

    name = KIND

    def __init__(self, settings: dict):
        self._keys, self._endpoint, self._timeout = parse_settings(settings)
        self._retry = gretry.Retry(
            initial=0.1,
            maximum=1.0,
            multiplier=2.0,
            timeout=self._timeout,
            predicate=gretry.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded),
        )
        self._lock = threading.Lock()
        self._client = None
        self._pinned: dict[str, int] = {}  # master -> version this instance made primary
        _INSTANCES.add(self)

    def __repr__(self) -> str:
        return f"GcpKms(keys={self._keys!r}, endpoint={self._endpoint!r})"

    # ------------------------------------------------------------------ client

    def _get_client(self):
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._new_client()
                client = self._client
        return client

    def _new_client(self):
        if self._endpoint is not None:
            # a loopback test server: plaintext gRPC, anonymous credentials (never ADC, never
            # the metadata server), no HTTP proxy from the environment
            from google.auth.credentials import AnonymousCredentials
            from google.cloud.kms_v1.services.key_management_service.transports import (
                KeyManagementServiceGrpcTransport,
            )

            endpoint = self._endpoint
            transport = KeyManagementServiceGrpcTransport(
                host=endpoint,
                credentials=AnonymousCredentials(),
                channel=lambda *_a, **_k: grpc.insecure_channel(
                    endpoint, options=[("grpc.enable_http_proxy", 0)]
                ),
            )
            return kms_v1.KeyManagementServiceClient(transport=transport)
        try:
            return kms_v1.KeyManagementServiceClient()
        except google.auth.exceptions.DefaultCredentialsError:
            raise KeyringError(
                f"{KIND}: no Google credentials found (Application Default Credentials): run "
                "`gcloud auth application-default login`, attach a service account, or set "
                "GOOGLE_APPLICATION_CREDENTIALS"
            ) from None

    def close(self) -> None:
        """Close the gRPC channel (a later call opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.transport.close()

    def _reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._client = None  # the parent's channel is abandoned, never used or closed here

    # ------------------------------------------------------------------ calls

    def _key_name(self, master_key_id: str) -> str:
        try:
            return self._keys[master_key_id]
        except KeyError:
            raise KeyringError(
                f"unknown master key '{master_key_id}' (have: {', '.join(self._keys)})"
            ) from None

    def _intact_call(self, method: str, master_key_id: str, request: dict, intact):
        """`_call`, repeated (at most INTEGRITY_ATTEMPTS times) until `intact(response)`:
        the CRC32C checks Google's data-integrity guidelines ask for."""
        for _ in range(INTEGRITY_ATTEMPTS):
            resp = self._call(method, master_key_id, request)
            if intact(resp):
                return resp
        raise KeyringError(
            f"Cloud KMS {method.capitalize()} for master key '{master_key_id}' failed its CRC32C "
            f"integrity checks {INTEGRITY_ATTEMPTS} times (data corrupted in transit)"
        )

    def _call(self, method: str, master_key_id: str, request: dict, retry: bool = True):
        try:
            return getattr(self._get_client(), method)(
                request=request, retry=self._retry if retry else None, timeout=self._timeout
            )
        except (gexc.GoogleAPIError, google.auth.exceptions.GoogleAuthError) as e:
            raise self._error(method, master_key_id, e) from None

    def _error(self, method: str, m: str, e: Exception) -> KeyringError:
        key = self._keys.get(m, "?")
        where = self._endpoint or "cloudkms.googleapis.com"
        detail = (getattr(e, "message", None) or str(e))[:300]
        if isinstance(e, gexc.RetryError | gexc.DeadlineExceeded | gexc.ServiceUnavailable):
            return KeyringError(
                f"Cloud KMS at {where} did not answer {method} for master key '{m}' within "
                f"{self._timeout:g} s ({type(getattr(e, 'cause', None) or e).__name__}); check "
                "the network, the endpoint and the service status"
            )
        if isinstance(e, gexc.NotFound):
            return KeyringError(
                f"Cloud KMS key for master key '{m}' not found: {key}. privgate does not create "
                "keys in a cloud project: create it (gcloud kms keys create ... --purpose "
                "encryption) or fix keys.gcp-kms.keys." + m
            )
        if isinstance(e, gexc.PermissionDenied):
            return KeyringError(
                f"Cloud KMS denied {method} on the key for master key '{m}' ({key}): grant "
                f"the caller {_ROLE.get(method, 'the needed role')} on it ({detail})"
            )
        if isinstance(e, gexc.Unauthenticated | google.auth.exceptions.GoogleAuthError):
            return KeyringError(
                f"Cloud KMS rejected the credentials for {method} ({type(e).__name__}): check "
                "Application Default Credentials"
            )
        if isinstance(e, gexc.InvalidArgument) and method == "decrypt":
            return KeyringError(
                f"cannot unwrap a key under master key '{m}' (Cloud KMS key {key}): wrong "
                f"key, wrong context (AAD) or tampered key material ({detail})"
            )
        if isinstance(e, gexc.FailedPrecondition):
            return KeyringError(
                f"Cloud KMS key for master key '{m}' ({key}) cannot be used: a key version "
                f"is disabled, destroyed or not yet generated ({detail})"
            )
        code = getattr(e, "grpc_status_code", None)
        return KeyringError(
            f"Cloud KMS {method} failed for master key '{m}' ({key}): "
            f"{code.name if code else type(e).__name__}: {detail}"
        )

    @staticmethod
    def _version(version_name: str, key: str, m: str) -> int:
        match = _VERSION_NAME.fullmatch(version_name or "")
        if not match or match["key"] != key:
            raise KeyringError(
                f"Cloud KMS answered with an unexpected key version for master "
                f"key '{m}' (expected a version of {key})"
            )
        return int(match["version"])

    # ------------------------------------------------------------------ Kms interface

    def wrap(self, master_key_id: str, key: bytes, aad: bytes = b"") -> str:
        name = self._key_name(master_key_id)
        pinned = self._pinned.get(master_key_id)
        target = f"{name}/cryptoKeyVersions/{pinned}" if pinned else name
        request = {
            "name": target,
            "plaintext": key,
            "plaintext_crc32c": _crc(key),
            **_aad_fields(master_key_id, aad),
        }
        resp = self._intact_call(
            "encrypt",
            master_key_id,
            request,
            lambda r: (
                r.verified_plaintext_crc32c
                and r.verified_additional_authenticated_data_crc32c
                and r.ciphertext_crc32c == _crc(r.ciphertext)
            ),
        )
        version = self._version(resp.name, name, master_key_id)
        if pinned and version != pinned:
            raise KeyringError(
                f"Cloud KMS encrypted with version {version} of the key for "
                f"master key '{master_key_id}', not the requested {pinned}"
            )
        return f"{KIND}:{master_key_id}:{version}:{base64.b64encode(resp.ciphertext).decode()}"

    def unwrap(self, master_key_id: str, wrapped: str, aad: bytes = b"") -> bytes:
        try:
            kind, mk_id, version, blob = wrapped.split(":", 3)
            ciphertext = base64.b64decode(blob.encode("ascii"), validate=True)
        except (ValueError, binascii.Error, UnicodeEncodeError):
            raise KeyringError(f"malformed wrapped key for master key '{master_key_id}'") from None
        if kind != KIND or mk_id != master_key_id or not version.isdigit():
            raise KeyringError(
                f"wrapped key belongs to '{kind}:{mk_id}', not {KIND} master key '{master_key_id}'"
            )
        request = {
            "name": self._key_name(master_key_id),
            "ciphertext": ciphertext,
            "ciphertext_crc32c": _crc(ciphertext),
            **_aad_fields(master_key_id, aad),
        }
        resp = self._intact_call(
            "decrypt", master_key_id, request, lambda r: r.plaintext_crc32c == _crc(r.plaintext)
        )
        return resp.plaintext

    def _primary(self, m: str) -> int:
        name = self._key_name(m)
        key = self._call("get_crypto_key", m, {"name": name})
        if key.purpose != _ENCRYPT_DECRYPT or not key.primary.name:
            raise KeyringError(
                f"Cloud KMS key for master key '{m}' ({name}) is not a "
                "symmetric ENCRYPT_DECRYPT key with a primary version"
            )
        return self._version(key.primary.name, name, m)

    def versions(self) -> dict[str, int]:
        """Primary cryptoKeyVersion number of each master key's CryptoKey."""
        return {m: self._primary(m) for m in self._keys}

    def ensure_master_keys(self, masters: tuple[str, ...]) -> None:
        """`keys init`: each key exists, is ENCRYPT_DECRYPT with an enabled primary version,
        and this identity may encrypt and decrypt with it (a probe round trip). Missing keys
        are an error: privgate does not create keys in a cloud project."""
        for m in masters:
            name = self._key_name(m)
            key = self._call("get_crypto_key", m, {"name": name})
            if key.purpose != _ENCRYPT_DECRYPT:
                raise KeyringError(
                    f"Cloud KMS key for master key '{m}' ({name}) has purpose "
                    f"{key.purpose.name}; privgate needs ENCRYPT_DECRYPT "
                    "(gcloud kms keys create ... --purpose encryption)"
                )
            if key.primary.state != _STATE.ENABLED:
                raise KeyringError(
                    f"Cloud KMS key for master key '{m}' ({name}) has no enabled primary version"
                )
        super().ensure_master_keys(masters)

    def rotate(self, master_key_id: str) -> int:
        """New key version made primary; older versions stay enabled and keep decrypting."""
        name = self._key_name(master_key_id)
        # not retried: a retried create could make two versions
        created = self._call(
            "create_crypto_key_version",
            master_key_id,
            {"parent": name, "crypto_key_version": {}},
            retry=False,
        )
        version = self._version(created.name, name, master_key_id)
        deadline, state = time.monotonic() + self._timeout, created.state
        delay = 0.05
        while state == _STATE.PENDING_GENERATION:  # Cloud HSM versions take a moment
            if time.monotonic() > deadline:
                raise KeyringError(
                    f"Cloud KMS key version {created.name} for master key "
                    f"'{master_key_id}' still generating after "
                    f"{self._timeout:g} s; retry `privgate keys rotate`"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            state = self._call(
                "get_crypto_key_version", master_key_id, {"name": created.name}
            ).state
        if state != _STATE.ENABLED:
            raise KeyringError(
                f"Cloud KMS key version {created.name} for master key "
                f"'{master_key_id}' is {state.name}, not ENABLED"
            )
        self._call(
            "update_crypto_key_primary_version",
            master_key_id,
            {"name": name, "crypto_key_version_id": str(version)},
        )
        self._pinned[master_key_id] = version
        return version


def _after_fork_in_child() -> None:
    for kms in list(_INSTANCES):
        kms._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
