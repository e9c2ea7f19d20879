"""Object-store peers for tests: a bucket on the GCS emulator or on moto's S3, its client
environment set in the test process, and what the object-store tests check with."""

from __future__ import annotations

import contextlib
import json
import os

from tests.conftest import cli, write_config
from tests.gcs_peer import GcsEmulator
from tests.moto_peer import MotoServer

BUCKET = "privgate-test"


@contextlib.contextmanager
def bucket_store(kind: str, workdir):
    """Yield (bucket URL, client environment, peer) of a peer started for the block; the
    environment is set in this process meanwhile (CLI subprocesses inherit it)."""
    if kind == "gs":
        peer = GcsEmulator(workdir).start()
        bucket = peer.create_bucket(BUCKET)
        env = peer.client_env()
    else:
        peer = MotoServer(workdir).start()
        env = dict(peer.client_env(), AWS_ENDPOINT_URL=peer.endpoint)
        peer.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        bucket = f"s3://{BUCKET}"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield bucket, env, peer
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        peer.stop()


def bucket_config(bucket: str, tmp, keyring: str, csv: str) -> tuple[str, str]:
    """A config reading `csv` (uploaded to the bucket) and writing `<bucket>/out`."""
    from privgate import storage

    storage.upload(csv, f"{bucket}/in/customers.csv")
    cfg = write_config(tmp, input_path=f"{bucket}/in/*.csv", keyring=keyring)
    with open(cfg, encoding="utf-8") as f:
        text = f.read().replace(f"path: {tmp / 'out'}", f"path: {bucket}/out")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(text)
    return cfg, f"{bucket}/out"


def verify_summary(out: str, keyring: str) -> dict | None:
    """`privgate verify --json` of `out` in a subprocess, or None when it refuses."""
    r = cli("verify", out, "--keyring", keyring, "--json")
    if r.returncode != 0:
        assert "privgate: error:" in r.stderr, r.stderr
        return None
    return json.loads(r.stdout)


def stagings(out: str) -> list[str]:
    from pipelines.object_staging import list_stagings

    return list_stagings(out)
