"""The AWS KMS backend against a real protocol peer: moto_server on loopback (tests/moto_peer.py).

Everything talks to 127.0.0.1 only: the `moto` fixture sets fake credentials, the region and
no instance metadata in this process and hands the same environment to CLI subprocesses.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import uuid

import pytest

from privgate.errors import KeyringError
from privgate.kms import MASTER_KEYS, kek_context
from privgate.kms_aws import AwsKms
from tests.kms_contract import (
    assert_no_secret,
    check_backend,
    check_debug_logs_carry_no_key,
    check_keyring_end_to_end,
    check_unknown_master_key,
    write_and_read_files,
)
from tests.loopback import free_port
from tests.moto_peer import REGION, MotoServer


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("AWS_PROFILE", raising=False)
            mp.delenv("AWS_SESSION_TOKEN", raising=False)
            for k, v in server.client_env().items():
                mp.setenv(k, v)
            yield server
    finally:
        server.stop()


def aws_settings(moto, prefix: str | None = None) -> dict:
    """Settings for the moto server; aliases with a fresh prefix unless one is given."""
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    return {
        "region": REGION,
        "endpoint_url": moto.endpoint,
        "keys": {m: f"alias/{prefix}-{m}" for m in MASTER_KEYS},
    }


def created_settings(moto) -> dict:
    """Settings naming fresh aliases, created (key + alias each) through keys init's hook."""
    s = aws_settings(moto)
    AwsKms(s).ensure_master_keys(MASTER_KEYS)
    return s


@pytest.fixture(scope="session")
def settings(moto):
    """Master keys shared by the tests that do not change them (saves KMS set-up time)."""
    return created_settings(moto)


@pytest.fixture
def fresh_settings(moto):
    """Master keys of their own, for tests that rotate or disable them."""
    return created_settings(moto)


@pytest.fixture
def aws_kms(settings):
    return AwsKms(settings)


def alias_target(moto, alias: str) -> str:
    return moto.client().describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]


# ---------------------------------------------------------------------------- contract


def test_backend_passes_the_contract(aws_kms, settings, moto):
    check_backend(aws_kms)
    wrapped = aws_kms.wrap("pii", os.urandom(32), b"x")
    version = wrapped.split(":")[2]
    assert version == alias_target(moto, settings["keys"]["pii"])  # the key id, not an ARN
    assert aws_kms.versions() == {m: alias_target(moto, settings["keys"][m]) for m in MASTER_KEYS}
    assert "arn:" not in wrapped and repr(aws_kms).startswith("AwsKms(region='eu-west-1'")


def test_unknown_master_key_is_named(aws_kms, moto):
    admin = moto.client()
    n_keys = len(admin.list_keys()["Keys"])
    check_unknown_master_key(aws_kms)
    assert len(admin.list_keys()["Keys"]) == n_keys  # rotate("nope") created nothing


def test_keys_init_creates_missing_aliases_once(moto):
    s = aws_settings(moto)
    admin = moto.client()
    with pytest.raises(admin.exceptions.NotFoundException):
        admin.describe_key(KeyId=s["keys"]["pii"])
    AwsKms(s).ensure_master_keys(MASTER_KEYS)
    first = {m: admin.describe_key(KeyId=a)["KeyMetadata"] for m, a in s["keys"].items()}
    assert all(
        k["KeySpec"] == "SYMMETRIC_DEFAULT"
        and k["KeyUsage"] == "ENCRYPT_DECRYPT"
        and k["KeyState"] == "Enabled"
        for k in first.values()
    )
    assert len({k["KeyId"] for k in first.values()}) == 3
    n_keys = len(admin.list_keys()["Keys"])
    AwsKms(s).ensure_master_keys(MASTER_KEYS)  # idempotent: existing aliases are used
    assert len(admin.list_keys()["Keys"]) == n_keys
    admin.disable_key(KeyId=first["data"]["KeyId"])  # moto still encrypts with it; we check
    with pytest.raises(KeyringError, match=r"master key 'data' .* is Disabled, not Enabled"):
        AwsKms(s).ensure_master_keys(MASTER_KEYS)


def test_keys_given_as_key_id_or_arn_work_but_are_not_rotated(aws_kms, settings, moto):
    ids = {m: alias_target(moto, a) for m, a in settings["keys"].items()}
    arn = moto.client().describe_key(KeyId=ids["data"])["KeyMetadata"]["Arn"]
    by_id = AwsKms(
        dict(settings, keys={"pii": ids["pii"], "data": arn, "footer": settings["keys"]["footer"]})
    )
    for m in MASTER_KEYS:  # the same KMS keys, addressed three ways: blobs interchange
        assert aws_kms.unwrap(m, by_id.wrap(m, b"k" * 32, b"c"), b"c") == b"k" * 32
        assert by_id.unwrap(m, aws_kms.wrap(m, b"k" * 32, b"c"), b"c") == b"k" * 32
    with pytest.raises(KeyringError, match="privgate rotates by moving an alias"):
        by_id.rotate("pii")


# ---------------------------------------------------------------------------- end to end


def test_keyring_end_to_end_on_moto(tmp_path, demo_csv, moto):
    """keys init (creating the aliases) -> run -> verify/read -> rotate -> run -> old output
    still readable, tokens stable; meanwhile the server saw every KEK wrapped under the
    dataset's encryption context."""
    import pyarrow.parquet as pq

    from privgate.keyring import open_keyring
    from privgate.parquet_crypto import decryption_properties

    s = aws_settings(moto)
    with moto.recording() as calls:
        manifest = check_keyring_end_to_end(tmp_path, demo_csv, "aws-kms", s, env=moto.client_env())
    first = manifest["encryption"]["master_key_versions"]
    assert manifest["encryption"]["kek_context"] == kek_context("test_ds")
    admin = moto.client()
    for m, alias in s["keys"].items():  # rotated: alias moved, the old key kept and enabled
        assert alias_target(moto, alias) != first[m]
        assert admin.describe_key(KeyId=first[m])["KeyMetadata"]["KeyState"] == "Enabled"

    ops = [c["op"] for c in calls]
    assert {"CreateKey", "CreateAlias", "Encrypt", "Decrypt", "DescribeKey", "UpdateAlias"} <= set(
        ops
    )
    crypto = [c["params"] for c in calls if c["op"] in ("Encrypt", "Decrypt")]
    assert all(p["EncryptionContext"]["privgate-master"] in MASTER_KEYS for p in crypto)
    assert all(p.get("KeyId") for p in crypto)
    kek_wraps = [
        p
        for p in crypto
        if "Plaintext" in p and p["EncryptionContext"].get("privgate-dataset") == "test_ds"
    ]
    assert {p["EncryptionContext"]["privgate-master"] for p in kek_wraps} == set(MASTER_KEYS)
    assert all(
        p["EncryptionContext"]["privgate-context"] == kek_context("test_ds") for p in kek_wraps
    )

    # the output's KEKs do not unwrap under another dataset's context
    kr = open_keyring(str(tmp_path / "aws-kms-keyring.json"))
    part = next((tmp_path / "old" / "data").glob("*.parquet"))
    assert (
        pq.read_table(
            part, decryption_properties=decryption_properties(kr.kms.bound(kek_context("test_ds")))
        ).num_rows
        > 0
    )
    with pytest.raises(KeyringError, match="InvalidCiphertextException"):  # via pyarrow
        pq.read_table(
            part, decryption_properties=decryption_properties(kr.kms.bound(kek_context("other_ds")))
        )


# ---------------------------------------------------------------------------- context


def test_encryption_context_names_the_dataset_and_is_enforced_by_kms(aws_kms, settings, moto):
    sent = []
    aws_kms.client.meta.events.register(
        "before-call.kms.Encrypt", lambda params, **kw: sent.append(params["body"])
    )
    key = os.urandom(32)
    wrapped = aws_kms.bound(kek_context("ds_a")).wrap("data", key)
    assert len(sent) == 1 and json.loads(sent[0])["EncryptionContext"] == {
        "privgate-master": "data",
        "privgate-context": "privgate-dataset:ds_a",
        "privgate-dataset": "ds_a",
    }
    assert aws_kms.bound(kek_context("ds_a")).unwrap("data", wrapped) == key
    with pytest.raises(KeyringError, match="another dataset or purpose") as e:
        aws_kms.bound(kek_context("ds_b")).unwrap("data", wrapped)
    assert_no_secret(e.value, key)
    with pytest.raises(KeyringError, match="InvalidCiphertextException"):
        aws_kms.unwrap("data", wrapped)  # no context at all

    # the server, not our code, refuses: the same blob straight to KMS
    _, _, version, blob = wrapped.split(":", 3)
    admin = moto.client()
    ctx = json.loads(sent[0])["EncryptionContext"]
    assert (
        admin.decrypt(KeyId=version, CiphertextBlob=base64.b64decode(blob), EncryptionContext=ctx)[
            "Plaintext"
        ]
        == key
    )
    with pytest.raises(admin.exceptions.InvalidCiphertextException):
        admin.decrypt(
            KeyId=version,
            CiphertextBlob=base64.b64decode(blob),
            EncryptionContext=dict(ctx, **{"privgate-dataset": "ds_b"}),
        )

    # a blob relabelled as another master key's fails in KMS too (context, then key id)
    pii_version = alias_target(moto, settings["keys"]["pii"])
    for forged in (f"aws-kms:pii:{version}:{blob}", f"aws-kms:data:{pii_version}:{blob}"):
        with pytest.raises(KeyringError, match="cannot unwrap a key"):
            aws_kms.bound(kek_context("ds_a")).unwrap(forged.split(":")[1], forged)


# ---------------------------------------------------------------------------- round trips


def count_calls(kms: AwsKms) -> dict[str, int]:
    counts: dict[str, int] = {}

    def on_call(event_name, **kw):
        op = event_name.rsplit(".", 1)[-1]
        counts[op] = counts.get(op, 0) + 1

    kms.client.meta.events.register("before-call.kms", on_call)
    return counts


@pytest.mark.parametrize("n_files", [1, 10])
def test_kek_round_trips_do_not_grow_with_files_or_columns(settings, tmp_path, n_files):
    """10 columns under two master keys plus the footer: 3 Encrypt calls to write any number
    of files (one KEK per master key, cached), 3 Decrypt calls to read them back."""
    writer, reader = AwsKms(settings), AwsKms(settings)
    wrote, read = count_calls(writer), count_calls(reader)
    write_and_read_files(
        writer.bound(kek_context("ds")),
        reader.bound(kek_context("ds")),
        tmp_path,
        files=n_files,
    )
    assert wrote == {"Encrypt": 3} and read == {"Decrypt": 3}


SMALL_SCHEMA = """\
    columns:
      customer_id: {type: string, action: tokenize}
      ssn:         {type: string, pii: US_SSN, action: encrypt}
      age:         {type: int, action: generalize, bucket: 25}
    """


def test_pipeline_run_round_trips_do_not_grow_with_input_files(tmp_path, demo_csv, moto):
    """Counted on the server, so worker processes count too: a run over 1 input file and one
    over 3 files make the same, small number of KMS calls."""
    from pipelines.run import run
    from privgate import keyring as kr_mod
    from tests.conftest import write_config

    lines = open(demo_csv).read().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    many = tmp_path / "many"
    many.mkdir()
    for i in range(3):
        (many / f"part{i}.csv").write_text(header + "".join(rows[i::3]))
    keyring = str(tmp_path / "keyring.json")
    kr_mod.init_keyring(keyring, "aws-kms", aws_settings(moto))
    counts = []
    for name, path in (("one", demo_csv), ("three", str(many / "*.csv"))):
        d = tmp_path / name
        d.mkdir()
        cfg = write_config(d, input_path=path, keyring=keyring, schema=SMALL_SCHEMA, kms="aws-kms")
        kr_mod._CACHE.clear()  # each run opens the keyring cold, as a new process would
        with moto.recording() as calls:
            result = run(cfg, show_progress=False)
        assert len(result["manifest"]["input"]["files"]) == (1 if name == "one" else 3)
        counts.append(sorted(c["op"] for c in calls))
    assert counts[0] == counts[1], counts
    assert counts[0].count("Encrypt") == 3 and len(counts[0]) <= 16, counts[0]


# ---------------------------------------------------------------------------- failures


def test_unreachable_endpoint_fails_fast_with_the_endpoint_named(moto):
    port = free_port()  # nothing listens there
    kms = AwsKms(dict(aws_settings(moto), endpoint_url=f"http://127.0.0.1:{port}"))
    key = os.urandom(32)
    t0 = time.monotonic()
    with pytest.raises(
        KeyringError,
        match=rf"cannot reach AWS KMS at http://127.0.0.1:{port} "
        r"\(EndpointConnectionError; 3 attempt",
    ) as e:
        kms.wrap("pii", key)
    assert time.monotonic() - t0 < 10  # default settings: 3 attempts, short backoff
    assert_no_secret(e.value, key)


def test_silent_endpoint_times_out_instead_of_hanging(moto):
    """A peer that accepts connections and never answers: read timeout x max_attempts, each
    attempt a new connection (counted), then a KeyringError."""
    accepted, held = [], []
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(8)
    black_hole.settimeout(0.1)
    stop = threading.Event()

    def accept_and_hold():
        while not stop.is_set():
            try:
                conn, _ = black_hole.accept()
            except OSError:
                continue
            accepted.append(1)
            held.append(conn)

    thread = threading.Thread(target=accept_and_hold, daemon=True)
    thread.start()
    port = black_hole.getsockname()[1]
    kms = AwsKms(
        dict(
            aws_settings(moto),
            endpoint_url=f"http://127.0.0.1:{port}",
            read_timeout=0.5,
            max_attempts=2,
        )
    )
    t0 = time.monotonic()
    try:
        with pytest.raises(
            KeyringError,
            match=r"ReadTimeoutError; 2 attempt\(s\), timeouts "
            r"5s connect / 0.5s read",
        ):
            kms.unwrap("pii", "aws-kms:pii:1234abcd-0000-0000-0000-000000000000:AAAA", b"c")
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        thread.join(5)
        for c in held:
            c.close()
        black_hole.close()
    assert len(accepted) == 2 and 1.0 <= elapsed < 6


def test_unknown_alias_names_the_alias_and_the_master_key(moto):
    kms = AwsKms(aws_settings(moto, prefix="never-created"))
    with pytest.raises(
        KeyringError,
        match=r"cannot wrap a key under master key 'pii' "
        r"\(alias/never-created-pii\): NotFoundException",
    ):
        kms.wrap("pii", os.urandom(32))
    with pytest.raises(KeyringError, match="NotFoundException"):
        kms.versions()


def test_bad_credentials_are_refused_without_echoing_them(settings, moto, monkeypatch):
    key, secret = os.urandom(32), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYsecretkey"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    kms = AwsKms(settings)
    with (
        moto.enforce_iam(),
        pytest.raises(
            KeyringError, match="InvalidClientTokenId: AWS did not accept the credentials"
        ) as e,
    ):
        kms.wrap("pii", key)
    assert_no_secret(e.value, key, secret, "AKIAIOSFODNN7EXAMPLE")


def test_missing_credentials_fail_before_any_request(settings, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    t0 = time.monotonic()
    with pytest.raises(KeyringError, match=r"no usable AWS credentials \(NoCredentialsError\)"):
        AwsKms(settings).wrap("pii", os.urandom(32))
    assert time.monotonic() - t0 < 5


def test_documented_iam_permissions_suffice_and_missing_ones_are_named(
    fresh_settings, moto, monkeypatch
):
    """The permissions the module docstring lists, as IAM policies enforced by moto."""
    run_perms = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
    users = {
        "runner": moto.iam_user(f"runner-{uuid.uuid4().hex[:6]}", run_perms),
        "writer-only": moto.iam_user(
            f"wo-{uuid.uuid4().hex[:6]}", ["kms:Encrypt", "kms:DescribeKey"]
        ),
        "reader": moto.iam_user(f"rd-{uuid.uuid4().hex[:6]}", ["kms:Decrypt"]),
        "init": moto.iam_user(
            f"init-{uuid.uuid4().hex[:6]}", run_perms + ["kms:CreateKey", "kms:CreateAlias"]
        ),
        "rotate": moto.iam_user(
            f"rot-{uuid.uuid4().hex[:6]}",
            run_perms + ["kms:CreateKey", "kms:GetKeyPolicy", "kms:UpdateAlias"],
        ),
    }

    def as_user(name: str, s: dict = fresh_settings) -> AwsKms:
        for k, v in users[name].items():
            monkeypatch.setenv(k, v)
        return AwsKms(s)

    key = os.urandom(32)
    with moto.enforce_iam():
        runner = as_user("runner")
        wrapped = runner.wrap("pii", key, b"c")
        assert runner.unwrap("pii", wrapped, b"c") == key and set(runner.versions()) == {
            "pii",
            "data",
            "footer",
        }
        runner.ensure_master_keys(MASTER_KEYS)  # existing keys: describe + probe only
        with pytest.raises(
            KeyringError,
            match="not authorized to perform: kms:GetKeyPolicy; the caller needs kms:GetKeyPolicy",
        ):
            runner.rotate("pii")  # rotation needs more than a run
        with pytest.raises(KeyringError, match=r"kms:Decrypt") as e:
            as_user("writer-only").unwrap("pii", wrapped, b"c")
        assert_no_secret(e.value, key, users["writer-only"]["AWS_SECRET_ACCESS_KEY"])
        reader = as_user("reader")
        assert reader.unwrap("pii", wrapped, b"c") == key
        with pytest.raises(KeyringError, match=r"kms:Encrypt"):
            reader.wrap("pii", key, b"c")
        fresh = aws_settings(moto)
        as_user("init", fresh).ensure_master_keys(MASTER_KEYS)
        rotator = as_user("rotate")
        new = rotator.rotate("pii")
        assert rotator.unwrap("pii", wrapped, b"c") == key
        assert rotator.wrap("pii", key).split(":")[2] == new


# ---------------------------------------------------------------------------- rotation


def test_rotate_moves_the_alias_copies_the_policy_and_keeps_old_blobs(fresh_settings, moto):
    settings, aws_kms = fresh_settings, AwsKms(fresh_settings)
    admin = moto.client()
    alias = settings["keys"]["pii"]
    old = alias_target(moto, alias)
    policy = json.loads(admin.get_key_policy(KeyId=old, PolicyName="default")["Policy"])
    policy["Statement"].append(
        {
            "Sid": "privgate-test-marker",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    admin.put_key_policy(KeyId=old, PolicyName="default", Policy=json.dumps(policy))
    key = os.urandom(32)
    before = aws_kms.wrap("pii", key, b"c")

    new = aws_kms.rotate("pii")
    assert new != old and ":" not in new and "/" not in new
    assert alias_target(moto, alias) == new
    assert "privgate-test-marker" in admin.get_key_policy(KeyId=new, PolicyName="default")["Policy"]
    assert aws_kms.versions()["pii"] == new == AwsKms(settings).versions()["pii"]
    sent = []
    aws_kms.client.meta.events.register(
        "before-call.kms.Encrypt", lambda params, **kw: sent.append(json.loads(params["body"]))
    )
    assert aws_kms.wrap("pii", key, b"c").split(":")[2] == new
    assert sent[0]["KeyId"] == new  # pinned: AWS aliases are only eventually consistent
    assert aws_kms.unwrap("pii", before, b"c") == key  # the old key still decrypts
    assert admin.describe_key(KeyId=old)["KeyMetadata"]["KeyState"] == "Enabled"
    assert aws_kms.rotate("pii") not in (old, new)


# ---------------------------------------------------------------------------- hygiene


def test_one_client_per_object_however_many_threads(settings, monkeypatch):
    import boto3

    made = []
    real = boto3.session.Session.client

    def counting(self, *a, **k):
        made.append(a[0] if a else k.get("service_name"))
        time.sleep(0.05)  # widen the window in which unguarded creation would race
        return real(self, *a, **k)

    monkeypatch.setattr(boto3.session.Session, "client", counting)
    kms = AwsKms(settings)
    barrier = threading.Barrier(8)

    def work(_):
        barrier.wait()
        return kms.unwrap("data", kms.wrap("data", b"k" * 32, b"t"), b"t")

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(work, range(8))) == {b"k" * 32}
    assert made == ["kms"]


def test_debug_logs_carry_no_key_bytes(aws_kms, caplog):
    """botocore logs request and response bodies at DEBUG."""
    check_debug_logs_carry_no_key(aws_kms, caplog, "botocore")


@pytest.mark.parametrize(
    "change, message",
    [
        # one row per setting rule; the message names the setting's path
        ({"region": None}, r"keys.aws-kms.region: required"),
        ({"region": "Ireland"}, r"keys.aws-kms.region: required, an AWS region"),
        ({"keys": None}, r"keys.aws-kms.keys: required"),
        ({"keys": {"pii": "alias/a", "data": "alias/b"}}, r"keys.aws-kms.keys.footer: missing"),
        (
            {"keys": {"pii": "alias/a", "data": "alias/b", "footer": "alias/c", "x": "alias/d"}},
            r"keys.aws-kms.keys.x: unknown master key \(have: pii, data, footer\)",
        ),
        (
            {"keys": {"pii": "alias/a b", "data": "alias/b", "footer": "alias/c"}},
            r"keys.aws-kms.keys.pii: must be alias/NAME",
        ),
        (
            {
                "keys": {
                    "pii": "arn:aws:kms:us-east-1:123456789012:key/abc",
                    "data": "alias/b",
                    "footer": "alias/c",
                }
            },
            r"keys.aws-kms.keys.pii: the ARN's region us-east-1",
        ),
        ({"endpoint_url": "http://kms.example.com"}, r"keys.aws-kms.endpoint_url: http:// only"),
        ({"endpoint_url": "https://user:pw@kms.example.com"}, r"endpoint_url: must not carry"),
        ({"endpoint_url": "ftp://x"}, r"keys.aws-kms.endpoint_url: must be an https:// URL"),
        (
            {"secret_access_key": "x"},
            r"keys.aws-kms.secret_access_key: unknown setting .* "
            r"credential chain",
        ),
        ({"read_timeout": 0}, r"keys.aws-kms.read_timeout: must be a number"),
        ({"max_attempts": 0}, r"keys.aws-kms.max_attempts: must be an integer"),
    ],
)
def test_bad_settings_name_the_setting(change, message):
    s = {"region": REGION, "keys": {m: f"alias/p-{m}" for m in MASTER_KEYS}}
    s.update(change)
    s = {k: v for k, v in s.items() if v is not None}
    with pytest.raises(KeyringError, match=message) as e:
        AwsKms(s)
    assert "user:pw" not in str(e.value)


def test_backend_is_registered_and_settings_stay_plain(moto):
    from privgate.kms import external_kms

    s = aws_settings(moto)
    kms = external_kms("aws-kms", s)
    assert isinstance(kms, AwsKms) and kms.name == "aws-kms"
    assert json.loads(json.dumps(s)) == s  # what the keyring file stores
