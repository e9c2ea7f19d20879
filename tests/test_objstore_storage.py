"""`privgate.storage` on both loopback peers: what the finalize step and the readers rely on."""

from __future__ import annotations

import pytest

from privgate import storage
from privgate.errors import PrivgateError
from tests.objstore_peers import bucket_store


@pytest.fixture(scope="module", params=["gs", "s3"])
def bucket(request, tmp_path_factory):
    with bucket_store(request.param, tmp_path_factory.mktemp(f"peer-{request.param}")) as s:
        yield s[0]


def test_objects_are_listed_at_any_depth_without_prefixes_or_siblings(bucket):
    written = {"manifest.json": b"{}", "data/part-0.parquet": b"PAR1", "report/index.html": b"<p>"}
    for rel, data in written.items():
        storage.write_bytes(f"{bucket}/out/{rel}", data)
    storage.write_bytes(f"{bucket}/out2/x", b"a sibling whose name extends the prefix")
    storage.write_bytes(f"{bucket}/.out.privgate-tmp/r1/_work/run.json", b"{}")
    assert storage.list_objects(f"{bucket}/out") == {k: len(v) for k, v in written.items()}
    assert storage.list_objects(f"{bucket}/absent") == {}


def test_read_copy_delete_and_hash_round_trip(bucket, tmp_path):
    import hashlib

    data = bytes(range(256)) * 4096
    storage.write_bytes(f"{bucket}/rt/a.bin", data)
    storage.copy(f"{bucket}/rt/a.bin", f"{bucket}/rt/b.bin")
    assert storage.read_bytes(f"{bucket}/rt/b.bin") == data
    assert storage.sha256(f"{bucket}/rt/b.bin") == hashlib.sha256(data).hexdigest()
    local = tmp_path / "b.bin"
    assert storage.download(f"{bucket}/rt/b.bin", str(local)) == hashlib.sha256(data).hexdigest()
    storage.upload(str(local), f"{bucket}/rt/c.bin")
    assert storage.exists(f"{bucket}/rt/c.bin")
    storage.delete_prefix(f"{bucket}/rt")
    assert storage.list_objects(f"{bucket}/rt") == {}
    storage.delete(f"{bucket}/rt/a.bin")  # absent: not an error
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(f"{bucket}/rt/a.bin")


def test_a_url_of_another_scheme_is_refused_by_name():
    with pytest.raises(PrivgateError, match=r"hdfs://nn/x: only gs://BUCKET"):
        storage.read_bytes("hdfs://nn/x")
    assert storage.join("gs://b/out/", "data", "p") == "gs://b/out/data/p"
    assert storage.split("s3://b/p/out") == ("s3://b/p", "out")
