"""Keyrings off the launcher machine: only a cloud-KMS keyring may be read from an object store
or opened by the workers of a non-local runner (others are config errors, exit 2); workers in
their own processes open an aws-kms keyring from the GCS emulator in setup()."""

# ruff: noqa: F401, F811 -- fixtures imported from other test modules, used as arguments

import os

import pytest

from pipelines.run import run
from privgate import storage
from privgate.errors import ConfigError, KeyringError
from privgate.keyring import init_keyring, open_keyring
from tests.conftest import MULTI_PROCESS, cli, write_config
from tests.gcs_peer import GcsEmulator
from tests.test_kms_aws import created_settings, moto

DATAFLOW_DRY = [
    "--runner=DataflowRunner",
    "--project=demo-proj",
    "--region=europe-west1",
    "--temp_location=gs://demo-bucket/tmp",
    "--dry_run=True",
]
PKCS11 = {
    "module": "/usr/lib/softhsm/libsofthsm2.so",
    "token": "privgate",
    "keys": {"pii": "p", "data": "d", "footer": "f"},
}


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    emulator = GcsEmulator(tmp_path_factory.mktemp("gcs")).start()
    try:
        emulator.create_bucket("demo-bucket")
        with pytest.MonkeyPatch.context() as mp:
            for k, v in emulator.client_env().items():
                mp.setenv(k, v)
            yield emulator
    finally:
        emulator.stop()


def _ledger(tmp_path) -> str:
    return f"{{record_epsilon_max: 3.0, lifetime_epsilon_max: 1000, ledger: {tmp_path}/l.json}}"


@pytest.mark.parametrize("kms, settings", [("local", None), ("pkcs11", PKCS11)])
@pytest.mark.parametrize("runner", [DATAFLOW_DRY, ["--runner", "PortableRunner"]])
def test_a_keyring_bound_to_this_machine_with_a_non_local_runner_is_a_config_error(
    tmp_path, demo_csv, kms, settings, runner
):
    cfg = write_config(
        tmp_path,
        input_path=demo_csv,
        keyring=str(tmp_path / "no-such-keyring.json"),  # refused before it is looked for
        kms=kms,
        kms_settings=settings,
    )
    with pytest.raises(ConfigError) as e:
        run(cfg, runner, show_progress=False)
    assert e.value.exit_code == 2 and e.value.key_path == "keys.kms"
    assert "runs workers on other machines" in str(e.value)
    assert "aws-kms, gcp-kms" in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ["run.yaml"]


def test_local_keyring_with_dataflow_is_refused_by_the_cli(tmp_path, keyring_path, demo_csv):
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    r = cli("run", cfg, *DATAFLOW_DRY)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "keys.kms" in r.stderr and "passphrase" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("kms, settings", [("local", None), ("pkcs11", PKCS11)])
def test_a_keyring_bound_to_this_machine_at_an_object_store_path_is_a_config_error(
    tmp_path, demo_csv, kms, settings
):
    cfg = write_config(
        tmp_path,
        input_path=demo_csv,
        keyring="gs://demo-bucket/keys/keyring.json",
        kms=kms,
        kms_settings=settings,
        privacy=_ledger(tmp_path),
    )
    with pytest.raises(ConfigError) as e:  # a local run: the path alone is refused
        run(cfg, [], show_progress=False)
    assert e.value.key_path == "keys.keyring" and "must stay a local file" in str(e.value)


def test_an_object_store_keyring_needs_an_explicit_epsilon_ledger(tmp_path, demo_csv):
    cfg = write_config(
        tmp_path,
        input_path=demo_csv,
        keyring="gs://demo-bucket/keys/keyring.json",
        kms="aws-kms",
    )
    with pytest.raises(ConfigError) as e:
        run(cfg, [], show_progress=False)
    assert e.value.key_path == "privacy.ledger"


def test_keyrings_are_not_created_or_rotated_in_an_object_store():
    from privgate.keyring import rotate_keyring

    for call in (init_keyring, rotate_keyring):
        with pytest.raises(KeyringError, match="local file"):
            call("gs://demo-bucket/keys/new.json")


def test_a_local_keyring_copied_to_an_object_store_is_refused_when_opened(gcs, keyring_path):
    with open(keyring_path, "rb") as f:
        storage.write_bytes("gs://demo-bucket/keys/local.json", f.read())
    with pytest.raises(KeyringError, match="cannot be opened from an object store"):
        open_keyring("gs://demo-bucket/keys/local.json")
    with pytest.raises(KeyringError, match="keyring not found"):
        open_keyring("gs://demo-bucket/keys/missing.json")


def _keyring_on_gcs(tmp_path_factory, kind: str, settings: dict) -> str:
    """A `kind` keyring created locally, uploaded to the GCS emulator, the local copy removed."""
    local = str(tmp_path_factory.mktemp(kind) / "keyring.json")
    init_keyring(local, kind, settings)
    uri = f"gs://demo-bucket/keys/{kind}-keyring.json"
    with open(local, "rb") as f:
        storage.write_bytes(uri, f.read())
    os.remove(local)
    return uri


@pytest.fixture(scope="module")
def aws_keyring_on_gcs(gcs, moto, tmp_path_factory):
    """An aws-kms keyring (moto) that exists only in the GCS emulator."""
    settings = created_settings(moto)
    return _keyring_on_gcs(tmp_path_factory, "aws-kms", settings), settings


@pytest.fixture(scope="module")
def gcp_keyring_on_gcs(gcs, tmp_path_factory):
    """A gcp-kms keyring (the Cloud KMS fake: gRPC on 127.0.0.1, reachable from worker
    processes through the `endpoint` setting) that exists only in the GCS emulator."""
    import uuid

    from privgate.kms import MASTER_KEYS
    from tests.gcp_kms_fake import FakeCloudKms

    server = FakeCloudKms()
    server.start()
    ring = f"projects/demo-proj/locations/europe-west1/keyRings/r-{uuid.uuid4().hex[:8]}"
    keys = {m: f"{ring}/cryptoKeys/{m}" for m in MASTER_KEYS}
    for name in keys.values():
        server.add_key(name)
    settings = {"keys": keys, "endpoint": server.endpoint, "timeout": 5}
    yield _keyring_on_gcs(tmp_path_factory, "gcp-kms", settings), settings
    server.stop()


def test_workers_open_an_aws_kms_keyring_from_the_gcs_emulator(
    tmp_path, demo_csv, aws_keyring_on_gcs, moto
):
    from privgate.reader import read_table, verify

    uri, settings = aws_keyring_on_gcs
    cfg = write_config(
        tmp_path,
        input_path=demo_csv,
        keyring=uri,
        kms="aws-kms",
        kms_settings=settings,
        privacy=_ledger(tmp_path),
    )
    with moto.recording() as calls:
        doc = run(cfg, list(MULTI_PROCESS), show_progress=False)
    # the worker processes unwrapped the data keys themselves: more Decrypt calls than the
    # launcher's one round (the launcher's own keyring object is not pickled to them)
    decrypts = [c for c in calls if c["op"] == "Decrypt"]
    assert len(decrypts) > 5, [c["op"] for c in calls]
    body = verify(doc["output_dir"], keyring=uri)
    assert body["encryption"]["keyring_id"] == open_keyring(uri).keyring_id
    assert body["encryption"]["kms"] == "aws-kms"
    assert (
        read_table(doc["output_dir"], keyring=uri).num_rows == body["reconciliation"]["output_rows"]
    )


def test_a_replaced_keyring_object_is_read_again(gcs, moto, tmp_path):
    """The per-process cache is keyed by the object's bytes: a keyring replaced at the same
    URI (another run's, a rotation uploaded) is never answered from the stale copy."""
    settings = created_settings(moto)
    uri = "gs://demo-bucket/keys/replaced.json"
    ids = []
    for name in ("a.json", "b.json"):
        local = str(tmp_path / name)
        init_keyring(local, "aws-kms", settings)
        with open(local, "rb") as f:
            storage.write_bytes(uri, f.read())
        ids.append(open_keyring(uri).keyring_id)
        assert open_keyring(uri) is open_keyring(uri)  # unchanged bytes: cached
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    "args, local",
    [
        ([], True),
        (["--runner", "DirectRunner"], True),
        (["--runner=direct"], True),  # Beam accepts any case, with or without the suffix
        (["--runner=apache_beam.runners.direct.direct_runner.DirectRunner"], True),
        (["--runner=FnApiRunner"], True),
        (["--runner=DataflowRunner"], False),
        (["--runner", "dataflow"], False),
        (["--runner=PortableRunner"], False),
        (["--runner=FlinkRunner"], False),
    ],
)
def test_which_runners_keep_the_workers_on_this_machine(args, local):
    from pipelines.graph import is_local_runner

    assert is_local_runner(args) is local
