"""A fake Dataflow v1b3 endpoint on loopback, and a guard that refuses any other host.

With the GCS emulator of `tests/gcs_peer.py` serving gs://, `FakeDataflow()` answers the REST
calls Beam's Dataflow client makes (`projects.locations.jobs.create`, `get`, `messages`),
records each submitted job, and "runs" a job the way Dataflow would: it fetches the staged
Runner API pipeline (`pipeline.pb`) from the bucket and executes that proto with Beam's
FnApiRunner in worker *subprocesses*, so workers hold only what the job carries.
`loopback_only(monkeypatch)` makes any non-loopback connection in this process fail the test.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def gcs_objects(prefix: str) -> list[str]:
    """gs:// URIs of every object under `prefix` (through privgate.storage)."""
    from privgate import storage

    return [storage.join(prefix, rel) for rel in sorted(storage.list_objects(prefix))]


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


def _job_path(path: str) -> list[str]:
    """['projects', P, 'locations', L, 'jobs', ID, ...] of a v1b3 request path."""
    return urllib.parse.urlparse(path).path.split("/")[2:]


class FakeDataflow:
    """A fake Dataflow v1b3 REST endpoint on loopback that records jobs and can run them.

    Beam's client talks REST to it when `--dataflow_endpoint` contains `localhost` (any other
    host gets gRPC), so tests pass `http://localhost:PORT`. `auto_run`: a submitted job runs
    at once (in a thread; the job reports RUNNING, then DONE or FAILED); otherwise it stays
    QUEUED until `run_job(job_id)`; "fail": it fails at once, with an error message.
    """

    def __init__(self, auto_run: bool | str = True, workers: int = 2):
        # auto_run: True runs each job, False leaves it queued, "fail" fails it at once
        self.auto_run, self.workers = auto_run, workers
        self.jobs: dict[str, dict] = {}  # id -> {"body": bytes, "job": dict, "state": str}
        self.requests: list[tuple[str, str]] = []
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.endpoint = f"http://localhost:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeDataflow:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def state(self, job_id: str) -> str:
        return self.jobs[job_id]["state"]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                fake.requests.append(("POST", self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = _job_path(self.path)
                if len(parts) != 5 or parts[4] != "jobs":
                    return self._send(404, {"error": {"code": 404, "message": "not faked"}})
                job = json.loads(body)
                with fake._lock:
                    job_id = f"fake-job-{len(fake.jobs) + 1}"
                    fake.jobs[job_id] = {"body": body, "job": job, "state": "JOB_STATE_QUEUED"}
                if fake.auto_run == "fail":
                    fake.fail_job(job_id, "Traceback: the worker failed (fake)")
                elif fake.auto_run:
                    threading.Thread(target=fake.run_job, args=(job_id,), daemon=True).start()
                return self._send(200, fake._job_doc(job_id, parts[1], parts[3]))

            def do_GET(self):
                fake.requests.append(("GET", self.path))
                parts = _job_path(self.path)
                if len(parts) < 6 or parts[5] not in fake.jobs:
                    return self._send(404, {"error": {"code": 404, "message": "no such job"}})
                if len(parts) == 7 and parts[6] == "messages":
                    return self._send(200, fake._messages(parts[5]))
                if len(parts) == 7 and parts[6] == "metrics":
                    return self._send(200, {})
                return self._send(200, fake._job_doc(parts[5], parts[1], parts[3]))

        return Handler

    def _job_doc(self, job_id: str, project: str, location: str) -> dict:
        entry = self.jobs[job_id]
        return {
            "id": job_id,
            "projectId": project,
            "location": location,
            "name": entry["job"].get("name", ""),
            "clientRequestId": entry["job"].get("clientRequestId", ""),
            "labels": entry["job"].get("labels", {}),
            "currentState": entry["state"],
        }

    def _messages(self, job_id: str) -> dict:
        """A failed job's error, as Dataflow reports one (Beam stops polling on it)."""
        if job_id not in self.errors:
            return {}
        return {
            "jobMessages": [
                {
                    "id": "1",
                    "time": "2026-12-04T00:00:00Z",
                    "messageText": self.errors[job_id],
                    "messageImportance": "JOB_MESSAGE_ERROR",
                }
            ]
        }

    def fail_job(self, job_id: str, error: str) -> None:
        """End a job as failed without running it (a worker crash, a cancelled job)."""
        self.errors[job_id] = error
        self.jobs[job_id]["state"] = "JOB_STATE_FAILED"

    def options(self, job_id: str) -> dict:
        """The pipeline options the job was submitted with."""
        return self.jobs[job_id]["job"]["environment"]["sdkPipelineOptions"]["options"]

    def run_job(self, job_id: str) -> None:
        """Run the job as Dataflow would: the staged Runner API proto, executed by Beam's
        FnApiRunner in worker subprocesses (nothing of the launcher's process state)."""
        from apache_beam.options.pipeline_options import PipelineOptions
        from apache_beam.portability import python_urns
        from apache_beam.portability.api import beam_runner_api_pb2
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        from privgate import storage

        self.jobs[job_id]["state"] = "JOB_STATE_RUNNING"
        try:
            options = self.options(job_id)
            proto = beam_runner_api_pb2.Pipeline.FromString(
                storage.read_bytes(options["pipelineUrl"])
            )
            command = f"{sys.executable} -m apache_beam.runners.worker.sdk_worker_main"
            for env in proto.components.environments.values():  # Dataflow's container -> a process
                env.urn, env.payload = python_urns.SUBPROCESS_SDK, command.encode()
            runner = FnApiRunner()
            runner._num_workers = self.workers  # what --direct_num_workers sets
            # the job's options are not re-parsed (JSON turns ints into floats Beam refuses):
            # privgate's DoFns read none; workers find the emulators from the environment
            result = runner.run_via_runner_api(proto, PipelineOptions([]))
            result.wait_until_finish()
            self.jobs[job_id]["state"] = "JOB_STATE_DONE"
        except BaseException as e:  # the job failed (argparse exits): report it as Dataflow would
            self.errors[job_id] = f"{type(e).__name__}: {e}"
            self.jobs[job_id]["state"] = "JOB_STATE_FAILED"
