"""A server process on loopback for tests: started on a free port, awaited, stopped by us."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # Linux: the server goes when the test process dies
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class LoopbackServer:
    """Subclasses name the server (`NAME`) and the path that answers once it is up
    (`READY_PATH`); `log_path` collects its output."""

    NAME = "server"
    READY_PATH = "/"
    CONTENT_TYPE = "application/json"

    def __init__(self, workdir, log_name: str):
        self.workdir = str(workdir)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(self.workdir, log_name)
        self.proc: subprocess.Popen | None = None
        # urllib without proxies: the server is on loopback
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @staticmethod
    def _venv_exe(name: str, package: str) -> str:
        """The venv's console script `name` (installed by `package`), or a clear error."""
        exe = os.path.join(os.path.dirname(sys.executable), name)
        if not os.path.exists(exe):
            raise RuntimeError(f"{exe} not found: install {package} into the venv")
        return exe

    def _launch(self, argv: list[str], timeout: float, env: dict | None = None) -> None:
        """Start `argv` and wait until READY_PATH answers (RuntimeError after `timeout`)."""
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.NAME} exited ({self.proc.returncode}): {self._tail()}")
            try:
                self._request("GET", self.READY_PATH, timeout=1)
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"{self.NAME} did not answer in {timeout}s: {self._tail()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def _tail(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")

    def _request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 10
    ) -> bytes:
        req = urllib.request.Request(
            self.endpoint + path,
            data=body,
            method=method,
            headers={"Content-Type": self.CONTENT_TYPE},
        )
        with self._http.open(req, timeout=timeout) as r:
            return r.read()
