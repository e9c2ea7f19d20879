"""A GCS peer for tests: `gcp-storage-emulator` on loopback, started and stopped by us.

`GcsEmulator(workdir).start()` runs `.venv/bin/gcp-storage-emulator start -H 127.0.0.1 --port
<free port> --in-memory` and waits until it answers. `client_env()` is what a client needs:
`STORAGE_EMULATOR_HOST` (Google's client library, and so Beam's GCS filesystem, and privgate's
pyarrow client point there) and a fake Application Default Credentials file holding an
access token that never expires, so Beam finds credentials at once (without one it retries
the credential lookup for ~25 s per process) and nothing ever asks a token server. The
emulator logs every request; `requests()` counts them (what the benchmark reports).
"""

from __future__ import annotations

import json
import os
import re

from tests.loopback import LoopbackServer

PROJECT = "privgate-test"
_REQUEST = re.compile(r'"(GET|POST|PUT|DELETE|PATCH) ')


class GcsEmulator(LoopbackServer):
    NAME = "gcp-storage-emulator"

    def __init__(self, workdir):
        super().__init__(workdir, "gcs_emulator.log")
        self.adc_path = os.path.join(self.workdir, "fake-adc.json")

    def start(self, timeout: float = 30.0) -> GcsEmulator:
        exe = self._venv_exe("gcp-storage-emulator", "gcp-storage-emulator")
        with open(self.adc_path, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "type": "authorized_user",
                    "client_id": "test",
                    "client_secret": "test",
                    "refresh_token": "test",
                    "token": "test-token",
                    "expiry": "2999-01-01T00:00:00Z",
                    "token_uri": "http://127.0.0.1:9/token",  # never called: closed port
                },
                f,
            )
        self._launch(
            [exe, "start", "-H", "127.0.0.1", "--port", str(self.port), "--in-memory"], timeout
        )
        return self

    def create_bucket(self, name: str) -> str:
        self._request(
            "POST", f"/storage/v1/b?project={PROJECT}", json.dumps({"name": name}).encode()
        )
        return f"gs://{name}"

    def requests(self) -> int:
        """Requests the emulator has answered so far (from its log)."""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if _REQUEST.search(line))

    def client_env(self) -> dict[str, str]:
        no_proxy = ",".join(x for x in (os.environ.get("NO_PROXY"), "127.0.0.1,localhost") if x)
        return {
            "STORAGE_EMULATOR_HOST": self.endpoint,
            "GOOGLE_APPLICATION_CREDENTIALS": self.adc_path,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "NO_GCE_CHECK": "True",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
