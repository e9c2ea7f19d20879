"""A file-backed KMS for testing the external-keyring plumbing (not a backend users pick).

The real backends are tested against real protocol peers (SoftHSM2, moto_server, a gRPC fake
of Cloud KMS); this one only lets the keyring/pipeline tests run without any of them. Master
keys live in the JSON file named by `settings["store"]`, so spawned workers see the same keys.
"""

from __future__ import annotations

import base64
import json
import os
import threading

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privgate.errors import KeyringError
from privgate.kms import Kms

CALLS = {"wrap": 0, "unwrap": 0}


class FakeKms(Kms):
    name = "test-kms"

    def __init__(self, settings: dict):
        self._store = settings["store"]
        self._lock = threading.Lock()
        if not os.path.exists(self._store):
            self._save(
                {
                    m: {"current": 1, "versions": {"1": self._new()}}
                    for m in ("pii", "data", "footer")
                }
            )

    @staticmethod
    def _new() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    def _load(self) -> dict:
        with open(self._store) as f:
            return json.load(f)

    def _save(self, keys: dict) -> None:
        with open(self._store, "w") as f:
            json.dump(keys, f)

    def wrap(self, master_key_id: str, key: bytes, aad: bytes = b"") -> str:
        CALLS["wrap"] += 1
        entry = self._load()[master_key_id]
        v = entry["current"]
        nonce = os.urandom(12)
        ct = AESGCM(base64.b64decode(entry["versions"][str(v)])).encrypt(nonce, key, aad)
        return f"test-kms:{master_key_id}:{v}:{base64.b64encode(nonce + ct).decode()}"

    def unwrap(self, master_key_id: str, wrapped: str, aad: bytes = b"") -> bytes:
        CALLS["unwrap"] += 1
        kind, mk, v, blob = wrapped.split(":", 3)
        if kind != "test-kms" or mk != master_key_id:
            raise KeyringError(f"wrapped key is not for test-kms master key '{master_key_id}'")
        raw = base64.b64decode(blob)
        key = base64.b64decode(self._load()[master_key_id]["versions"][v])
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], aad)
        except Exception:
            raise KeyringError(f"cannot unwrap under master key '{master_key_id}'") from None

    def versions(self) -> dict[str, int]:
        return {m: e["current"] for m, e in sorted(self._load().items())}

    def rotate(self, master_key_id: str) -> int:
        with self._lock:
            keys = self._load()
            entry = keys[master_key_id]
            entry["current"] += 1
            entry["versions"][str(entry["current"])] = self._new()
            self._save(keys)
            return entry["current"]
