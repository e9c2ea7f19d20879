"""Loopback peers for Dataflow runs: a GCS emulator process and a fake Dataflow v1b3 endpoint.

`GcsEmulator(workdir).start()` runs `gcp-storage-emulator` (in memory) on 127.0.0.1; clients
find it through `STORAGE_EMULATOR_HOST` (`env()`), which google-cloud-storage and Beam's
anonymous GCS client honour. `FakeDataflow(gcs)` answers the REST calls Beam's Dataflow
client makes (`projects.locations.jobs.create`, `get`, `messages.list`), records each submitted
job, and "runs" a job the way Dataflow would: it fetches the staged Runner API pipeline
(`pipeline.pb`) from the emulator and executes that proto with Beam's FnApiRunner in worker
*subprocesses*, with the job's own pipeline options, so workers hold only what the job
carries. `loopback_only(monkeypatch)` makes any non-loopback connection in this process fail
the test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.moto_peer import free_port

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _die_with_parent() -> None:  # Linux: the emulator goes when the test process dies
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class GcsEmulator:
    """`gcp-storage-emulator` on loopback, in memory, with one bucket."""

    def __init__(self, workdir, bucket: str = "demo-bucket"):
        self.bucket = bucket
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(str(workdir), "gcs-emulator.log")
        self.proc: subprocess.Popen | None = None
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def env(self) -> dict[str, str]:
        no_proxy = ",".join(x for x in (os.environ.get("NO_PROXY"), "127.0.0.1,localhost") if x)
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "NO_PROXY": no_proxy, "no_proxy": no_proxy}

    def start(self, timeout: float = 30.0) -> GcsEmulator:
        exe = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [exe, "start", "--host", "127.0.0.1", "--port", str(self.port), "--in-memory"]
                + ["--default-bucket", self.bucket, "-q"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gcp-storage-emulator exited ({self.proc.returncode})")
            try:
                self._get(f"/storage/v1/b/{self.bucket}")
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("gcp-storage-emulator did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _get(self, path: str) -> bytes:
        with self._http.open(self.endpoint + path, timeout=10) as r:
            return r.read()

    def _object(self, uri: str) -> tuple[str, str]:
        assert uri.startswith("gs://"), uri
        bucket, name = uri[5:].split("/", 1)
        return bucket, urllib.parse.quote(name, safe="")

    def upload(self, uri: str, data: bytes) -> None:
        bucket, name = self._object(uri)
        req = urllib.request.Request(
            f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}",
            data=data,
            method="POST",
            headers={"Content-Type": "application/octet-stream"},
        )
        with self._http.open(req, timeout=10) as r:
            r.read()

    def download(self, uri: str) -> bytes:
        bucket, name = self._object(uri)
        return self._get(f"/download/storage/v1/b/{bucket}/o/{name}?alt=media")

    def list(self, prefix: str = "") -> list[str]:
        """gs:// URIs of the bucket's objects under `prefix` (a name prefix, no gs://)."""
        names, token = [], None
        while True:
            q = {"prefix": prefix} | ({"pageToken": token} if token else {})
            doc = json.loads(self._get(f"/storage/v1/b/{self.bucket}/o?{urllib.parse.urlencode(q)}"))
            names += [f"gs://{self.bucket}/{o['name']}" for o in doc.get("items", [])]
            token = doc.get("nextPageToken")
            if not token:
                return names


def loopback_only(monkeypatch) -> list:
    """Fail any connection or name lookup that is not loopback in this process; returns the
    list the refused attempts are appended to (a test asserts it stays empty)."""
    refused: list = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            refused.append(host)
            raise OSError(f"non-loopback connection refused by the test: {host}")
        return connect(self, address)

    def guarded_getaddrinfo(host, *a, **k):
        if host not in LOOPBACK and host is not None:
            refused.append(host)
            raise OSError(f"non-loopback name lookup refused by the test: {host}")
        return getaddrinfo(host, *a, **k)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return refused
