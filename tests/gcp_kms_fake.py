"""An in-process fake of Google Cloud KMS, served over real gRPC on 127.0.0.1.

Cloud KMS has no emulator. This fake speaks the real wire protocol: a generic gRPC handler for
`google.cloud.kms.v1.KeyManagementService` whose messages are (de)serialized by the client
library's own proto-plus types, so `privgate.kms_gcp` is tested through the real
`KeyManagementServiceClient`, its retries, timeouts and error mapping. It runs on threads of
the pytest process; CLI subprocesses reach it over loopback.

Behaviour copied from the real service (symmetric ENCRYPT_DECRYPT keys):
- real AES-256-GCM behind every key version; the ciphertext names its version, so Decrypt
  (addressed to the CryptoKey) finds it after a rotation; additional authenticated data is
  enforced (a wrong AAD fails with INVALID_ARGUMENT, as Cloud KMS does);
- CRC32C integrity fields: request checksums are verified (mismatch -> INVALID_ARGUMENT) and
  acknowledged (`verified_*_crc32c`), responses carry `ciphertext_crc32c`/`plaintext_crc32c`;
- unknown keys -> NOT_FOUND; disabled versions -> FAILED_PRECONDITION; new versions are not
  primary until UpdateCryptoKeyPrimaryVersion. A primary change is eventually consistent in
  Cloud KMS (Encrypt may keep using the previous primary for a minute, rarely hours):
  `primary_lag = True` holds Encrypt on the previous primary until `settle()`.

For tests: `calls` counts requests per method, `requests` records them, `inject()` makes the
next calls of a method fail with a status or return a corrupted field.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from concurrent import futures

import google_crc32c
import grpc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.cloud import kms_v1
from google.protobuf import timestamp_pb2

SERVICE = "google.cloud.kms.v1.KeyManagementService"
_MAGIC = b"FKMS"
_ENABLED = kms_v1.CryptoKeyVersion.CryptoKeyVersionState.ENABLED
_DISABLED = kms_v1.CryptoKeyVersion.CryptoKeyVersionState.DISABLED
_PENDING = kms_v1.CryptoKeyVersion.CryptoKeyVersionState.PENDING_GENERATION


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _crc(data: bytes) -> int:
    return google_crc32c.value(data)


def _now():
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


class FakeCloudKms:
    """Cloud KMS symmetric keys behind a loopback gRPC server.

    Args:
        key_names: CryptoKey resource names that exist (each starts with version 1, primary).
        pending_polls: how many GetCryptoKeyVersion calls a new version stays
            PENDING_GENERATION (as Cloud HSM versions do for a moment).
    """

    primary_lag = False

    def __init__(self, key_names=(), pending_polls: int = 0):
        self._lock = threading.Lock()
        self._keys: dict[str, dict] = {}
        self.pending_polls = pending_polls
        self.calls: Counter = Counter()
        self.requests: list[tuple[str, object]] = []
        self._faults: dict[str, list[tuple]] = {}
        self._server = None
        self.endpoint = ""
        for name in key_names:
            self.add_key(name)

    # ------------------------------------------------------------------ test controls

    def add_key(self, name: str) -> None:
        with self._lock:
            self._keys[name] = {
                "primary": 1,
                "serving": 1,
                "created": _now(),
                "versions": {1: self._new_version()},
            }

    @staticmethod
    def _new_version(state=_ENABLED, polls: int = 0) -> dict:
        return {"key": os.urandom(32), "state": state, "polls": polls, "created": _now()}

    def disable(self, name: str, version: int) -> None:
        with self._lock:
            self._keys[name]["versions"][version]["state"] = _DISABLED

    def primary(self, name: str) -> int:
        with self._lock:
            return self._keys[name]["primary"]

    def settle(self) -> None:
        """Let Encrypt see every key's current primary version."""
        with self._lock:
            for key in self._keys.values():
                key["serving"] = key["primary"]

    def reset(self) -> None:
        """Forget counts, recorded requests, pending faults and behaviour switches (not keys)."""
        with self._lock:
            self.pending_polls, self.primary_lag = 0, False
            self.calls.clear()
            self.requests.clear()
            self._faults.clear()

    def inject(
        self,
        method: str,
        *,
        status: grpc.StatusCode | None = None,
        corrupt: str | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` abort with `status`, or answer with the
        response field `corrupt` damaged (a checksum off by one, a flag cleared, bytes
        flipped) as a link that corrupts data in transit would."""
        with self._lock:
            self._faults.setdefault(method, []).extend([(status, corrupt)] * times)

    # ------------------------------------------------------------------ server

    def start(self) -> str:
        """Serve on a free loopback port; returns the endpoint `127.0.0.1:PORT`."""
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._handler(name, fn),
                request_deserializer=req.deserialize,
                response_serializer=resp.serialize,
            )
            for name, fn, req, resp in (
                ("Encrypt", self._encrypt, kms_v1.EncryptRequest, kms_v1.EncryptResponse),
                ("Decrypt", self._decrypt, kms_v1.DecryptRequest, kms_v1.DecryptResponse),
                (
                    "GetCryptoKey",
                    self._get_crypto_key,
                    kms_v1.GetCryptoKeyRequest,
                    kms_v1.CryptoKey,
                ),
                (
                    "GetCryptoKeyVersion",
                    self._get_crypto_key_version,
                    kms_v1.GetCryptoKeyVersionRequest,
                    kms_v1.CryptoKeyVersion,
                ),
                (
                    "CreateCryptoKeyVersion",
                    self._create_version,
                    kms_v1.CreateCryptoKeyVersionRequest,
                    kms_v1.CryptoKeyVersion,
                ),
                (
                    "UpdateCryptoKeyPrimaryVersion",
                    self._update_primary,
                    kms_v1.UpdateCryptoKeyPrimaryVersionRequest,
                    kms_v1.CryptoKey,
                ),
            )
        }
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)]
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.endpoint = f"127.0.0.1:{port}"
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def _handler(self, method: str, fn):
        def handle(request, context):
            with self._lock:
                self.calls[method] += 1
                self.requests.append((method, request))
                faults = self._faults.get(method)
                status, corrupt = faults.pop(0) if faults else (None, None)
            if status is not None:
                context.abort(status, f"injected {status.name} for {method}")
            try:
                response = fn(request)
            except _Abort as e:
                context.abort(e.code, e.message)
            if corrupt:
                _corrupt(response, corrupt)
            return response

        return handle

    # ------------------------------------------------------------------ the service

    def _key(self, name: str) -> dict:
        key = self._keys.get(name)
        if key is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"CryptoKey {name} not found.")
        return key

    @staticmethod
    def _check_crc(data: bytes, crc, field: str) -> bool:
        if crc is None:
            return False
        if crc != _crc(data):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"The checksum in field {field} did not match the data in field "
                f"{field.removesuffix('_crc32c')}.",
            )
        return True

    def _encrypt(self, req: kms_v1.EncryptRequest) -> kms_v1.EncryptResponse:
        with self._lock:
            name, version = req.name, None
            if "/cryptoKeyVersions/" in name:
                name, _, v = name.partition("/cryptoKeyVersions/")
                version = int(v)
            key = self._key(name)
            version = version or key["serving"]
            entry = key["versions"].get(version)
        if entry is None or entry["state"] != _ENABLED:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{name}/cryptoKeyVersions/{version} is not enabled.",
            )
        if len(req.plaintext) > 64 * 1024:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "The plaintext is too large.")
        verified_pt = self._check_crc(req.plaintext, req.plaintext_crc32c, "plaintext_crc32c")
        verified_aad = self._check_crc(
            req.additional_authenticated_data,
            req.additional_authenticated_data_crc32c,
            "additional_authenticated_data_crc32c",
        )
        nonce = os.urandom(12)
        header = _MAGIC + version.to_bytes(4, "big")
        ct = (
            header
            + nonce
            + AESGCM(entry["key"]).encrypt(
                nonce, req.plaintext, header + req.additional_authenticated_data
            )
        )
        return kms_v1.EncryptResponse(
            name=f"{name}/cryptoKeyVersions/{version}",
            ciphertext=ct,
            ciphertext_crc32c=_crc(ct),
            verified_plaintext_crc32c=verified_pt,
            verified_additional_authenticated_data_crc32c=verified_aad,
            protection_level=kms_v1.ProtectionLevel.SOFTWARE,
        )

    def _decrypt(self, req: kms_v1.DecryptRequest) -> kms_v1.DecryptResponse:
        self._check_crc(req.ciphertext, req.ciphertext_crc32c, "ciphertext_crc32c")
        self._check_crc(
            req.additional_authenticated_data,
            req.additional_authenticated_data_crc32c,
            "additional_authenticated_data_crc32c",
        )
        invalid = _Abort(
            grpc.StatusCode.INVALID_ARGUMENT, "Decryption failed: the ciphertext is invalid."
        )
        ct = req.ciphertext
        if len(ct) < 8 + 12 + 16 or ct[:4] != _MAGIC:
            raise invalid
        version = int.from_bytes(ct[4:8], "big")
        with self._lock:
            key = self._key(req.name)
            entry = key["versions"].get(version)
            primary = key["primary"]
        if entry is None:
            raise invalid
        if entry["state"] != _ENABLED:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{req.name}/cryptoKeyVersions/{version} is not enabled.",
            )
        try:
            pt = AESGCM(entry["key"]).decrypt(
                ct[8:20], ct[20:], ct[:8] + req.additional_authenticated_data
            )
        except InvalidTag:
            raise invalid from None
        return kms_v1.DecryptResponse(
            plaintext=pt,
            plaintext_crc32c=_crc(pt),
            used_primary=version == primary,
            protection_level=kms_v1.ProtectionLevel.SOFTWARE,
        )

    def _version_message(self, name: str, version: int, entry: dict) -> kms_v1.CryptoKeyVersion:
        return kms_v1.CryptoKeyVersion(
            name=f"{name}/cryptoKeyVersions/{version}",
            state=entry["state"],
            protection_level=kms_v1.ProtectionLevel.SOFTWARE,
            create_time=entry["created"],
            algorithm=kms_v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm.GOOGLE_SYMMETRIC_ENCRYPTION,
        )

    def _key_message(self, name: str, key: dict) -> kms_v1.CryptoKey:
        primary = key["primary"]
        return kms_v1.CryptoKey(
            name=name,
            purpose=kms_v1.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT,
            create_time=key["created"],
            primary=self._version_message(name, primary, key["versions"][primary]),
        )

    def _get_crypto_key(self, req: kms_v1.GetCryptoKeyRequest) -> kms_v1.CryptoKey:
        with self._lock:
            return self._key_message(req.name, self._key(req.name))

    def _get_crypto_key_version(self, req) -> kms_v1.CryptoKeyVersion:
        name, _, v = req.name.partition("/cryptoKeyVersions/")
        with self._lock:
            entry = self._key(name)["versions"].get(int(v) if v.isdigit() else -1)
            if entry is None:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"CryptoKeyVersion {req.name} not found.")
            if entry["state"] == _PENDING:
                entry["polls"] -= 1
                if entry["polls"] < 0:
                    entry["state"] = _ENABLED
            return self._version_message(name, int(v), entry)

    def _create_version(self, req) -> kms_v1.CryptoKeyVersion:
        with self._lock:
            key = self._key(req.parent)
            version = max(key["versions"]) + 1
            state = _PENDING if self.pending_polls else _ENABLED
            key["versions"][version] = self._new_version(state, self.pending_polls)
            return self._version_message(req.parent, version, key["versions"][version])

    def _update_primary(self, req) -> kms_v1.CryptoKey:
        with self._lock:
            key = self._key(req.name)
            v = int(req.crypto_key_version_id) if req.crypto_key_version_id.isdigit() else -1
            entry = key["versions"].get(v)
            if entry is None:
                raise _Abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"CryptoKeyVersion {req.name}/cryptoKeyVersions/"
                    f"{req.crypto_key_version_id} not found.",
                )
            if entry["state"] != _ENABLED:
                raise _Abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{req.name}/cryptoKeyVersions/{v} is not enabled.",
                )
            key["primary"] = v
            if not self.primary_lag:
                key["serving"] = v
            return self._key_message(req.name, key)


def _corrupt(response, field: str) -> None:
    value = getattr(response, field)
    if isinstance(value, bool):
        setattr(response, field, not value)
    elif isinstance(value, int):
        setattr(response, field, (value + 1) % 2**32)
    elif isinstance(value, bytes):
        setattr(response, field, bytes([value[0] ^ 1]) + value[1:])
    else:
        raise ValueError(f"cannot corrupt field {field}")
