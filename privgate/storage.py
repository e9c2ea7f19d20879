"""Object-store paths (gs://, s3://) for everything outside the Beam graph, through pyarrow.fs.

Beam's own IO (the pipeline's reads and sinks, matching inputs) goes through
`apache_beam.io.filesystems.FileSystems`; this module serves the launcher's finalize step and
the consumer API (`privgate.verify` / `read_table`), which must not import Beam. pyarrow is
already loaded by both, and its GCS and S3 clients take an endpoint override, so the same
code runs against the loopback emulators of the tests:

* gs://: `STORAGE_EMULATOR_HOST` (the variable Google's client libraries honour) points at an
  emulator and connects anonymously; otherwise Application Default Credentials.
* s3://: `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (the variables boto3, and so Beam's S3
  filesystem, honour) override the endpoint; credentials and region as for the AWS SDK.

Local paths are never sent to a store client: `read_bytes` reads them with `open`; other
callers keep their plain `os` code (and its speed) for local paths.
Every call that reaches a store counts itself in `REQUESTS` (a benchmark reads the count).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import posixpath
from urllib.parse import urlparse

from privgate.errors import PrivgateError

SCHEMES = ("gs", "s3")
REQUESTS: collections.Counter = collections.Counter()  # operation -> calls made to a store
_CHUNK = 1 << 22


def is_url(path: str) -> bool:
    """True for a gs:// or s3:// path (any other scheme is refused by `_split`)."""
    return "://" in path


def join(base: str, *parts: str) -> str:
    """`base` joined with `parts` ('/' for URLs, the OS separator for local paths)."""
    if is_url(base):
        return posixpath.join(base.rstrip("/"), *parts)
    return os.path.join(base, *parts)


def split(path: str) -> tuple[str, str]:
    """(parent, name) of a path (a URL keeps its scheme and bucket in the parent)."""
    if is_url(path):
        return posixpath.split(path.rstrip("/"))
    return os.path.split(os.path.abspath(path))


def _split(url: str) -> tuple[str, str]:
    """(scheme, 'bucket/key') of a URL.

    Raises:
        PrivgateError: a scheme other than gs:// or s3://, or no bucket.
    """
    parsed = urlparse(url)
    if parsed.scheme not in SCHEMES or not parsed.netloc:
        raise PrivgateError(f"{url}: only gs://BUCKET/... and s3://BUCKET/... paths are supported")
    return parsed.scheme, (parsed.netloc + parsed.path).rstrip("/")


@functools.cache
def _filesystem(scheme: str, endpoint: str | None):
    import pyarrow.fs as pafs

    if scheme == "gs":
        if endpoint:
            parsed = urlparse(endpoint if "://" in endpoint else "http://" + endpoint)
            return pafs.GcsFileSystem(
                anonymous=True, scheme=parsed.scheme, endpoint_override=parsed.netloc
            )
        return pafs.GcsFileSystem()
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else "https://" + endpoint)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        kwargs = {"region": region} if region else {}
        return pafs.S3FileSystem(endpoint_override=parsed.netloc, scheme=parsed.scheme, **kwargs)
    return pafs.S3FileSystem()


def _fs(url: str):
    """(pyarrow FileSystem, path inside it) for a URL, the endpoint read from the environment."""
    scheme, path = _split(url)
    if scheme == "gs":
        endpoint = os.environ.get("STORAGE_EMULATOR_HOST") or None
    else:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return _filesystem(scheme, endpoint), path


def _count(op: str) -> None:
    REQUESTS[op] += 1


def read_bytes(url: str) -> bytes:
    """The whole object (one request), or the whole file for a local path.

    Raises:
        FileNotFoundError: no such object or file; OSError: the store or disk failed.
    """
    if not is_url(url):
        with open(url, "rb") as f:
            return f.read()
    fs, path = _fs(url)
    _count("get")
    with fs.open_input_stream(path) as f:
        return f.read()


def download(url: str, local_path: str) -> str:
    """Copy the object to `local_path` (one request, streamed); return its sha256."""
    fs, path = _fs(url)
    _count("get")
    h = hashlib.sha256()
    with fs.open_input_stream(path) as src, open(local_path, "wb") as dst:
        while chunk := src.read(_CHUNK):
            h.update(chunk)
            dst.write(chunk)
    return h.hexdigest()


def sha256(url: str) -> str:
    """The sha256 of the object, streamed (one request)."""
    fs, path = _fs(url)
    _count("get")
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_bytes(url: str, data: bytes) -> None:
    """Create or replace the object (one upload)."""
    fs, path = _fs(url)
    _count("put")
    with fs.open_output_stream(path) as f:
        f.write(data)


def upload(local_path: str, url: str) -> None:
    """Copy a local file to the object `url` (one upload, streamed)."""
    fs, path = _fs(url)
    _count("put")
    with open(local_path, "rb") as src, fs.open_output_stream(path) as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)


def copy(src: str, dst: str) -> None:
    """Copy an object inside one store (server side: the bytes do not pass through here)."""
    fs, src_path = _fs(src)
    _, dst_path = _fs(dst)
    _count("copy")
    fs.copy_file(src_path, dst_path)


def exists(url: str) -> bool:
    """True when an object (not a prefix) exists at `url`."""
    import pyarrow.fs as pafs

    fs, path = _fs(url)
    _count("stat")
    return fs.get_file_info(path).type == pafs.FileType.File


def list_objects(prefix: str) -> dict[str, int]:
    """{path relative to `prefix` ('/'-separated): size} of every object under it, at any
    depth (one listing; pseudo-directories are not objects and are left out)."""
    import pyarrow.fs as pafs

    fs, path = _fs(prefix)
    _count("list")
    infos = fs.get_file_info(pafs.FileSelector(path + "/", recursive=True, allow_not_found=True))
    start = len(path) + 1
    return {i.path[start:]: i.size for i in infos if i.type == pafs.FileType.File}


def delete(url: str) -> None:
    """Delete one object; an absent object is not an error."""
    fs, path = _fs(url)
    _count("delete")
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass


def delete_prefix(prefix: str) -> None:
    """Delete every object under `prefix` (one listing, one request per object)."""
    for rel in list_objects(prefix):
        delete(join(prefix, rel))
