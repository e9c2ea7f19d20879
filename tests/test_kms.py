"""The KMS abstraction: the backend registry, bound and restricted views (no KMS peer needed).

This module doubles as a registered backend (`MemoryKms`, `parse_settings`): registering a
backend is one `KmsBackend` line naming its module, class and settings parser.
"""

from __future__ import annotations

import os
import pickle

import pytest

from privgate import kms as kms_mod
from privgate.errors import KeyringError
from privgate.kms import KmsBackend, kek_context
from tests.kms_contract import check_backend

MEMORY = KmsBackend("tests.test_kms", "MemoryKms", "parse_settings", "none")


def parse_settings(settings: dict) -> None:
    if settings.get("masters") != list(kms_mod.MASTER_KEYS):
        raise KeyringError("keys.test-memory.masters: must list pii, data, footer")


class MemoryKms(kms_mod.Kms):
    """XOR 'wrapping' under per-master pads, remembering each wrap's AAD: a test double."""

    name = "test-memory"

    def __init__(self, settings: dict):
        parse_settings(settings)
        self._pads = {m: os.urandom(32) for m in settings["masters"]}
        self.aads: list[bytes] = []

    def wrap(self, master_key_id: str, key: bytes, aad: bytes = b"") -> str:
        self.aads.append(aad)
        body = bytes(a ^ b for a, b in zip(key, self._pads[master_key_id], strict=True))
        return f"{self.name}:{master_key_id}:1:{(body + aad).hex()}"

    def unwrap(self, master_key_id: str, wrapped: str, aad: bytes = b"") -> bytes:
        self.aads.append(aad)
        kind, mk, _, blob = wrapped.split(":", 3)
        raw = bytes.fromhex(blob)
        if kind != self.name or mk != master_key_id or raw[32:] != aad:
            raise KeyringError(f"cannot unwrap a key under master key '{master_key_id}'")
        return bytes(a ^ b for a, b in zip(raw[:32], self._pads[master_key_id], strict=True))

    def versions(self) -> dict[str, int]:
        return dict.fromkeys(self._pads, 1)


@pytest.fixture
def memory(monkeypatch):
    monkeypatch.setitem(kms_mod.KMS_BACKENDS, "test-memory", MEMORY)
    return {"masters": list(kms_mod.MASTER_KEYS)}


def test_a_registered_backend_is_built_from_its_registry_line(memory):
    kms = kms_mod.external_kms("test-memory", memory)
    assert isinstance(kms, MemoryKms)
    assert kms_mod.kms_kinds() == ("local", "pkcs11", "aws-kms", "gcp-kms", "test-memory")
    check_backend(kms)


def test_settings_are_checked_by_the_backends_parser(memory):
    kms_mod.check_kms_settings("test-memory", memory)
    with pytest.raises(KeyringError, match=r"^keys\.test-memory\.masters: "):
        kms_mod.check_kms_settings("test-memory", {"masters": ["pii"]})


def test_unknown_kind_names_the_kinds_there_are():
    with pytest.raises(KeyringError, match=r"\(have: local, pkcs11, aws-kms, gcp-kms\)$"):
        kms_mod.external_kms("nope", {})


def test_missing_client_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(
        kms_mod.KMS_BACKENDS,
        "test-missing",
        KmsBackend("privgate_no_such_module", "X", "parse_settings", "aws"),
    )
    kms_mod.check_kms_settings("test-missing", {})  # deferred to when the keyring is opened
    with pytest.raises(KeyringError, match=r"pip install 'privgate\[aws\]'"):
        kms_mod.external_kms("test-missing", {})


def test_bound_view_supplies_the_context_and_is_one_per_context(memory):
    kms = MemoryKms(memory)
    view = kms.bound(kek_context("ds"))
    assert view is kms.bound(kek_context("ds")) and view is not kms.bound(kek_context("other"))
    assert view.name == kms.name and view.versions() == kms.versions()
    key = os.urandom(32)
    wrapped = view.wrap("data", key)
    assert kms.aads[-1] == b"privgate-dataset:ds"
    assert kms.unwrap("data", wrapped, b"privgate-dataset:ds") == key
    with pytest.raises(KeyringError):
        kms.bound(kek_context("other")).unwrap("data", wrapped)
    assert view.wrap("data", key, b"explicit") and kms.aads[-1] == b"explicit"


def test_restricted_view_refuses_other_master_keys(memory):
    kms = MemoryKms(memory)
    view = kms.restricted({"data", "footer"})
    assert view.unwrap("data", kms.wrap("data", bytes(32))) == bytes(32)
    assert view.versions() == {"data": 1, "footer": 1}
    with pytest.raises(KeyringError, match="^master key 'pii' is not available to this keyring$"):
        view.wrap("pii", bytes(32))
    narrower = view.restricted({"footer", "pii"})
    assert narrower.versions() == {"footer": 1}
    with pytest.raises(KeyringError, match="'data' is not available"):
        narrower.unwrap("data", kms.wrap("data", bytes(32)))


def test_a_kms_and_its_views_refuse_pickling(memory):
    kms = MemoryKms(memory)
    for obj in (kms, kms.bound("c"), kms.restricted({"data"})):
        with pytest.raises(TypeError, match="must not be pickled"):
            pickle.dumps(obj)


def test_rotation_is_refused_where_the_backend_cannot_rotate(memory):
    with pytest.raises(KeyringError, match="the test-memory KMS cannot rotate"):
        MemoryKms(memory).rotate("pii")
