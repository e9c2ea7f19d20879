"""The Google Cloud KMS backend through the real `google-cloud-kms` client, against an
in-process gRPC fake of the service on 127.0.0.1 (tests/gcp_kms_fake.py)."""

from __future__ import annotations

import base64
import os
import time
import uuid

import grpc
import pytest

from privgate import keyring as keyring_mod
from privgate.errors import KeyringError
from privgate.keyring import init_keyring
from privgate.kms import MASTER_KEYS, kek_context
from privgate.kms_gcp import GcpKms
from tests.gcp_kms_fake import FakeCloudKms
from tests.kms_contract import (
    assert_no_secret,
    check_backend,
    check_debug_logs_carry_no_key,
    check_keyring_end_to_end,
    check_unknown_master_key,
    write_and_read_files,
)
from tests.loopback import free_port


@pytest.fixture(scope="module")
def fake():
    server = FakeCloudKms()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(fake):
    """Three fresh keys (a key ring per test) in the fake; its counters reset."""
    ring = f"projects/privgate-test/locations/europe-west1/keyRings/r-{uuid.uuid4().hex[:8]}"
    keys = {m: f"{ring}/cryptoKeys/{m}" for m in MASTER_KEYS}
    for name in keys.values():
        fake.add_key(name)
    fake.reset()
    return {"keys": keys, "endpoint": fake.endpoint, "timeout": 5}


@pytest.fixture
def kms(settings):
    k = GcpKms(settings)
    yield k
    k.close()


# --------------------------------------------------------------------------- contract


def test_backend_passes_the_contract(kms, fake):
    check_backend(kms)
    assert fake.calls["Encrypt"] >= 63 and fake.calls["Decrypt"] >= 63  # all via the server
    assert kms.versions() == {"pii": 1, "data": 1, "footer": 1}


def test_unknown_master_key_is_named(kms, fake):
    fake.reset()
    check_unknown_master_key(kms)
    assert sum(fake.calls.values()) == 0  # refused before any call to the service


def test_keyring_end_to_end_with_rotation(tmp_path, demo_csv, settings, fake):
    """keys init (CLI subprocess), a run, reads, verify, keys rotate, a second run, keys list:
    the subprocesses reach the fake over loopback with the endpoint stored in the keyring."""
    manifest = check_keyring_end_to_end(tmp_path, demo_csv, "gcp-kms", settings)
    assert manifest["encryption"]["master_key_versions"] == {"pii": 1, "data": 1, "footer": 1}
    assert {m: fake.primary(k) for m, k in settings["keys"].items()} == {
        "pii": 2,
        "data": 2,
        "footer": 2,
    }
    assert fake.calls["CreateCryptoKeyVersion"] == 3
    assert fake.calls["UpdateCryptoKeyPrimaryVersion"] == 3


def test_wrapped_key_names_the_version_used_and_old_versions_unwrap(kms):
    key = os.urandom(32)
    old = kms.wrap("pii", key, b"c")
    assert old.startswith("gcp-kms:pii:1:")
    assert kms.rotate("pii") == 2
    new = kms.wrap("pii", key, b"c")
    assert new.startswith("gcp-kms:pii:2:")
    assert kms.unwrap("pii", old, b"c") == kms.unwrap("pii", new, b"c") == key
    assert kms.versions() == {"pii": 2, "data": 1, "footer": 1}


def test_rotation_waits_for_a_pending_version(kms, settings, fake):
    fake.pending_polls = 2  # like a Cloud HSM version: PENDING_GENERATION for a moment
    assert kms.rotate("data") == 2
    assert fake.calls["GetCryptoKeyVersion"] == 3
    assert fake.primary(settings["keys"]["data"]) == 2


def test_rotation_rewraps_under_the_new_version_while_the_primary_propagates(
    tmp_path, settings, fake
):
    """Cloud KMS's Encrypt may keep using the previous primary for a while after a rotation;
    `keys rotate` still re-wraps the data-protection keys under the new version, so the old
    version can be disabled without losing the keyring."""
    import json

    from privgate.keyring import open_keyring, rotate_keyring

    path = str(tmp_path / "keyring.json")
    init_keyring(path, "gcp-kms", settings)
    before = open_keyring(path).data_key("token")
    fake.primary_lag = True
    assert rotate_keyring(path) == {"pii": 2, "data": 2, "footer": 2}
    doc = json.load(open(path))
    wrapped = [e["wrapped"] for e in doc["dpks"].values()] + [doc["signing_key"]["wrapped"]]
    assert all(w.startswith("gcp-kms:pii:2:") for w in wrapped), wrapped
    fake.disable(settings["keys"]["pii"], 1)
    keyring_mod._CACHE.clear()
    kr = open_keyring(path)
    assert kr.data_key("token") == before
    kr.signing_key()
    # a new instance still meets the stale primary until Cloud KMS settles
    assert GcpKms(settings).wrap("data", b"k" * 32).startswith("gcp-kms:data:1:")
    fake.settle()
    assert GcpKms(settings).wrap("data", b"k" * 32).startswith("gcp-kms:data:2:")


# --------------------------------------------------------------------------- AAD


def test_aad_is_enforced_by_the_server(kms, settings):
    from google.api_core.exceptions import InvalidArgument

    key = os.urandom(32)
    wrapped = kms.bound(kek_context("dataset_a")).wrap("footer", key)
    with pytest.raises(KeyringError, match="wrong context") as e:
        kms.bound(kek_context("dataset_b")).unwrap("footer", wrapped)
    assert_no_secret(e.value, key)
    # the refusal is the service's AES-GCM tag check, not a check in our client
    request = {
        "name": settings["keys"]["footer"],
        "ciphertext": base64.b64decode(wrapped.split(":", 3)[3]),
        "additional_authenticated_data": b"footer\0privgate-dataset:dataset_b",
    }
    with pytest.raises(InvalidArgument):
        kms._get_client().decrypt(request=request)
    request["additional_authenticated_data"] = b"footer\0privgate-dataset:dataset_a"
    assert kms._get_client().decrypt(request=request).plaintext == key


def test_parquet_keks_wrapped_under_the_dataset_context_once_per_master_key(
    settings, fake, tmp_path
):
    """Double wrapping: 10 files x 10 columns cost one Encrypt per master key, each under the
    dataset's context; reading them all back one Decrypt per master key; another dataset's
    context does not unwrap them."""
    import pyarrow.parquet as pq

    from privgate import parquet_crypto as pc

    def written():
        encrypts = [r for method, r in fake.requests if method == "Encrypt"]
        assert len(encrypts) == 3 and fake.calls["Decrypt"] == 0
        assert sorted(r.additional_authenticated_data for r in encrypts) == [
            m.encode() + b"\0privgate-dataset:ds_one" for m in ("data", "footer", "pii")
        ]
        fake.reset()

    reader_kms = GcpKms(settings)
    paths = write_and_read_files(
        GcpKms(settings).bound(kek_context("ds_one")),
        reader_kms.bound(kek_context("ds_one")),
        tmp_path,
        after_write=written,
    )
    assert fake.calls["Decrypt"] == 3 and fake.calls["Encrypt"] == 0
    other = pc.decryption_properties(reader_kms.bound(kek_context("ds_two")))
    with pytest.raises(KeyringError, match="wrong context"):
        pq.read_table(paths[0], decryption_properties=other)


PIPELINE_SCHEMA = """\
unknown_columns: drop
columns:
  customer_id: {type: string, action: tokenize}
  ssn:         {type: string, action: encrypt}
  zip:         {type: string, action: generalize, keep_prefix: 3}
"""


def test_pipeline_round_trips_do_not_grow_with_input_files(tmp_path, demo_csv, settings, fake):
    """A run over 1 file and over the same rows in 4 files make the same KMS calls; every
    Encrypt of a run is a Parquet KEK under the dataset's context."""
    from pipelines.run import run
    from tests.conftest import write_config

    keyring = str(tmp_path / "keyring.json")
    init_keyring(keyring, "gcp-kms", settings)
    lines = open(demo_csv).read().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    split = tmp_path / "split"
    split.mkdir()
    for i in range(4):
        (split / f"part-{i}.csv").write_text(header + "".join(rows[i::4]))
    calls = {}
    for label, path in (("one", demo_csv), ("four", str(split / "*.csv"))):
        keyring_mod._CACHE.clear()  # a fresh process's view: no key cached from a prior run
        fake.reset()
        sub = tmp_path / label
        sub.mkdir()
        result = run(
            write_config(
                sub,
                input_path=path,
                keyring=keyring,
                schema=PIPELINE_SCHEMA,
                kms="gcp-kms",
                kms_settings=settings,
            ),
            show_progress=False,
        )
        assert result["manifest"]["input"]["rows"] == len(rows)
        assert len(result["manifest"]["input"]["files"]) == (1 if label == "one" else 4)
        calls[label] = dict(fake.calls)
        aads = {r.additional_authenticated_data for m, r in fake.requests if m == "Encrypt"}
        assert aads and aads <= {m.encode() + b"\0privgate-dataset:test_ds" for m in MASTER_KEYS}, (
            aads
        )
    assert calls["one"] == calls["four"], calls
    assert calls["one"]["Encrypt"] <= 3 and calls["one"]["Decrypt"] <= 12, calls


# --------------------------------------------------------------------------- failures


def test_unreachable_endpoint_fails_fast_and_clearly(settings):
    port = free_port()  # nothing listens there
    kms = GcpKms(dict(settings, endpoint=f"127.0.0.1:{port}", timeout=1.5))
    key = os.urandom(32)
    started = time.monotonic()
    with pytest.raises(
        KeyringError,
        match=rf"127\.0\.0\.1:{port} did not answer encrypt "
        r"for master key 'pii' within 1\.5 s",
    ) as e:
        kms.wrap("pii", key)
    assert time.monotonic() - started < 5
    assert_no_secret(e.value, key)


def test_unknown_key_tells_the_user_to_create_it(settings, tmp_path, fake):
    missing = settings["keys"]["data"].replace("/cryptoKeys/data", "/cryptoKeys/nope")
    bad = dict(settings, keys=dict(settings["keys"], data=missing))
    kms = GcpKms(bad)
    with pytest.raises(
        KeyringError,
        match="master key 'data' not found: .*/cryptoKeys/nope. privgate does not create keys",
    ):
        kms.ensure_master_keys(MASTER_KEYS)
    with pytest.raises(KeyringError, match="not found"):
        kms.wrap("data", b"k" * 32)
    path = tmp_path / "keyring.json"
    with pytest.raises(KeyringError, match="not found"):
        init_keyring(str(path), "gcp-kms", bad)
    assert not path.exists()
    assert fake.calls["CreateCryptoKeyVersion"] == 0  # nothing created in the project


@pytest.mark.parametrize(
    "method,field",
    [
        ("Encrypt", "ciphertext_crc32c"),  # response damaged in transit
        ("Encrypt", "ciphertext"),
        ("Encrypt", "verified_plaintext_crc32c"),  # request damaged: the server says so
        ("Encrypt", "verified_additional_authenticated_data_crc32c"),
        ("Decrypt", "plaintext_crc32c"),
        ("Decrypt", "plaintext"),
    ],
)
def test_corrupted_responses_are_retried_then_refused(kms, fake, method, field):
    key = os.urandom(32)
    wrapped = kms.wrap("pii", key, b"x")
    call = (
        (lambda: kms.wrap("pii", key, b"x"))
        if method == "Encrypt"
        else (lambda: kms.unwrap("pii", wrapped, b"x"))
    )
    fake.reset()
    fake.inject(method, corrupt=field, times=1)  # once: the retry recovers
    assert call()
    assert fake.calls[method] == 2
    fake.inject(method, corrupt=field, times=3)
    with pytest.raises(KeyringError, match="CRC32C integrity") as e:
        call()
    assert_no_secret(e.value, key)
    assert fake.calls[method] == 5


def test_checksums_travel_with_every_request(kms, fake):
    import google_crc32c

    kms.unwrap("data", kms.wrap("data", b"k" * 32, b"a"), b"a")
    (_, enc), (_, dec) = fake.requests
    assert enc.plaintext_crc32c == google_crc32c.value(b"k" * 32)
    assert enc.additional_authenticated_data_crc32c == google_crc32c.value(b"data\0a")
    assert dec.ciphertext_crc32c == google_crc32c.value(dec.ciphertext)
    assert dec.additional_authenticated_data_crc32c == google_crc32c.value(b"data\0a")


def test_transient_unavailability_is_retried(kms, fake):
    fake.inject("Encrypt", status=grpc.StatusCode.UNAVAILABLE, times=2)
    assert kms.wrap("footer", b"k" * 32).startswith("gcp-kms:footer:1:")
    assert fake.calls["Encrypt"] == 3


@pytest.mark.parametrize(
    "status,method,message",
    [
        (
            grpc.StatusCode.PERMISSION_DENIED,
            "Decrypt",
            r"denied decrypt .* grant the caller roles/cloudkms\.cryptoKeyEncrypterDecrypter",
        ),
        (grpc.StatusCode.PERMISSION_DENIED, "GetCryptoKey", r"roles/cloudkms\.viewer"),
        (grpc.StatusCode.UNAUTHENTICATED, "Decrypt", "rejected the credentials"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Decrypt", "RESOURCE_EXHAUSTED"),
    ],
)
def test_service_errors_become_keyring_errors(kms, fake, status, method, message):
    key = os.urandom(32)
    wrapped = kms.wrap("pii", key)
    fake.inject(method, status=status)
    with pytest.raises(KeyringError, match=message) as e:
        kms.unwrap("pii", wrapped) if method == "Decrypt" else kms.versions()
    assert_no_secret(e.value, key)


def test_disabled_key_version_is_a_clear_error(kms, settings, fake):
    wrapped = kms.wrap("pii", b"k" * 32)
    kms.rotate("pii")
    fake.disable(settings["keys"]["pii"], 1)
    with pytest.raises(KeyringError, match="disabled, destroyed or not yet generated"):
        kms.unwrap("pii", wrapped)


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "change,message",
    [
        ({"keys": None}, "keys: required"),
        ({"keys": {"pii": "x"}}, "keys.pii: must be a Cloud KMS key name"),
        (
            {"keys": {"pii": "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"}},
            "keys.pii: must name a CryptoKey, not a key version",
        ),
        (
            {"keys": {"ldp": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}},
            r"keys.ldp: unknown master key \(have: pii, data, footer\)",
        ),
        ({"keys": {"footer": None}}, "keys.footer: missing"),
        ({"endpoint": "kms.example.com:443"}, "endpoint: must be a loopback HOST:PORT"),
        ({"endpoint": "127.0.0.1"}, "endpoint: must be a loopback HOST:PORT"),
        ({"timeout": 0}, r"timeout: must be a number of seconds in \(0, 600\]"),
        ({"timeout": "5"}, "timeout: must be a number"),
        ({"region": "eu"}, "region: unknown setting"),
    ],
)
def test_invalid_settings_name_the_setting(settings, change, message):
    bad = dict(settings)
    for k, v in change.items():
        if isinstance(v, dict):
            bad[k] = {m: n for m, n in {**settings[k], **v}.items() if n is not None}
        elif v is None:
            bad.pop(k)
        else:
            bad[k] = v
    with pytest.raises(KeyringError, match=f"keys.gcp-kms.{message}"):
        GcpKms(bad)


def test_loopback_endpoints_are_accepted(settings):
    for endpoint in ("127.0.0.1:1", "localhost:8443", "[::1]:8443", "127.0.0.2:9"):
        assert repr(GcpKms(dict(settings, endpoint=endpoint))).endswith(f"endpoint={endpoint!r})")


def test_endpoint_override_never_looks_up_application_default_credentials(kms, monkeypatch):
    import google.auth

    def no_adc(*a, **k):
        raise AssertionError("ADC lookup with an endpoint override")

    monkeypatch.setattr(google.auth, "default", no_adc)
    assert kms.unwrap("pii", kms.wrap("pii", b"k" * 32)) == b"k" * 32


def test_missing_application_default_credentials_is_a_clear_error(settings, monkeypatch):
    import google.auth
    import google.auth.exceptions

    def no_credentials(*a, **k):
        raise google.auth.exceptions.DefaultCredentialsError("no ADC in this test")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    kms = GcpKms({"keys": settings["keys"]})
    with pytest.raises(KeyringError, match="no Google credentials found .*application-default"):
        kms.wrap("pii", b"k" * 32)


# --------------------------------------------------------------------------- processes


def test_forked_child_uses_its_own_channel(kms):
    """A gRPC channel must not cross fork(): the child makes a new client and still works."""
    key = os.urandom(32)
    wrapped = kms.wrap("data", key, b"f")
    parent_client = kms._get_client()
    pid = os.fork()
    if pid == 0:  # child: report through the exit code only
        code = 3
        try:
            ok = kms.unwrap("data", wrapped, b"f") == key
            code = 0 if ok and kms._get_client() is not parent_client else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert kms._get_client() is parent_client
    assert kms.unwrap("data", wrapped, b"f") == key


def test_debug_logging_never_carries_key_bytes(kms, caplog):
    """google-cloud-kms attaches request/response payloads to DEBUG records."""
    check_debug_logs_carry_no_key(kms, caplog, "google")
