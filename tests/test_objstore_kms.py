"""An object-store run with an external-KMS keyring: s3:// input and output and an `aws-kms`
keyring, both on one moto_server, two worker processes, in one command."""

from __future__ import annotations

import json

import pytest

from tests.conftest import MULTI_PROCESS, cli
from tests.objstore_peers import bucket_config, bucket_store, stagings, verify_summary


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with bucket_store("s3", tmp_path_factory.mktemp("peer-s3")) as s:
        yield s


def test_an_s3_run_with_an_aws_kms_keyring_commits_in_one_command(s3, tmp_path, demo_csv):
    import privgate
    from privgate.keyring import keyring_kms
    from privgate.kms import MASTER_KEYS
    from privgate.kms_aws import AwsKms
    from tests.moto_peer import REGION

    bucket, _, moto = s3
    settings = {
        "region": REGION,
        "endpoint_url": moto.endpoint,
        "keys": {m: f"alias/objstore-{m}" for m in MASTER_KEYS},
    }
    AwsKms(settings).ensure_master_keys(MASTER_KEYS)
    keyring = str(tmp_path / "aws-keyring.json")
    cfg, out = bucket_config(bucket, tmp_path, keyring, demo_csv)
    text = (
        open(cfg)
        .read()
        .replace("  kms: local\n", f"  kms: aws-kms\n  aws-kms: {json.dumps(settings)}\n")
    )
    with open(cfg, "w") as f:
        f.write(text)
    made = cli("keys", "init", "--config", cfg)
    assert made.returncode == 0, made.stderr
    assert keyring_kms(keyring)[0] == "aws-kms"

    r = cli("run", cfg, "--no-progress", *MULTI_PROCESS)
    assert r.returncode == 0, r.stderr
    summary = verify_summary(out, keyring)
    assert summary is not None and summary["rows"] == 300
    assert stagings(out) == []
    assert privgate.read_table(out, keyring=keyring, columns=["plan"]).num_rows == 300
