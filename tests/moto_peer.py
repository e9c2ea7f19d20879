"""A real AWS protocol peer for tests: `moto_server` on loopback, started and stopped by us.

`MotoServer(workdir).start()` runs `.venv/bin/moto_server -H 127.0.0.1 -p <free port>` (found
next to `sys.executable`) and waits until it answers. `client_env()` is the environment a
client needs (fake credentials, region, no instance metadata, no shared config, no proxy for
loopback): the `moto` fixture sets it in the test process and passes it to CLI subprocesses.
The server records requests on demand (`recording()`), so tests see what every process sent,
and can switch IAM enforcement on (`enforce_iam()`) to test credentials and permissions.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os

from tests.loopback import LoopbackServer

REGION = "eu-west-1"
FAKE_ACCESS_KEY, FAKE_SECRET = "testing", "testing"


class MotoServer(LoopbackServer):
    NAME = "moto_server"
    READY_PATH = "/moto-api/data.json"
    CONTENT_TYPE = "text/plain"

    def __init__(self, workdir):
        super().__init__(workdir, "moto_server.log")
        self.recording_path = os.path.join(self.workdir, "recording.jsonl")

    def start(self, timeout: float = 30.0) -> MotoServer:
        exe = self._venv_exe("moto_server", "moto[server]")
        env = dict(os.environ, MOTO_RECORDER_FILEPATH=self.recording_path)
        env.pop("MOTO_ENABLE_RECORDING", None)
        self._launch([exe, "-H", "127.0.0.1", "-p", str(self.port)], timeout, env)
        return self

    def client_env(self) -> dict[str, str]:
        """Environment for a boto3 client of this server (test process and subprocesses)."""
        no_proxy = ",".join(x for x in (os.environ.get("NO_PROXY"), "127.0.0.1,localhost") if x)
        return {
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.path.join(self.workdir, "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.workdir, "no-aws-credentials"),
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }

    def client(self, service: str = "kms", **credentials):
        """An admin boto3 client (the test's own view of the server)."""
        import boto3

        return boto3.session.Session().client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=credentials.get("access_key", FAKE_ACCESS_KEY),
            aws_secret_access_key=credentials.get("secret_key", FAKE_SECRET),
        )

    @contextlib.contextmanager
    def recording(self):
        """Record the requests made inside the block (by any process); yields a list that is
        filled with {"op": "Encrypt", "params": {...}} when the block ends."""
        calls: list[dict] = []
        self._request("POST", "/moto-api/recorder/reset-recording")
        self._request("POST", "/moto-api/recorder/start-recording")
        try:
            yield calls
        finally:
            self._request("POST", "/moto-api/recorder/stop-recording")
            calls.extend(self._recorded())

    def _recorded(self) -> list[dict]:
        out = []
        with open(self.recording_path) as f:
            for line in f:
                entry = json.loads(line)
                target = {k.lower(): v for k, v in entry["headers"].items()}.get("x-amz-target", "")
                body = entry.get("body") or ""
                if entry.get("body_encoded"):
                    body = base64.b64decode(body).decode("utf-8", "replace")
                try:
                    params = json.loads(body) if body else {}
                except ValueError:
                    params = {"_raw": body}
                out.append({"op": target.rsplit(".", 1)[-1], "params": params})
        return out

    @contextlib.contextmanager
    def enforce_iam(self):
        """IAM authentication and authorization on for the block (moto's
        INITIAL_NO_AUTH_ACTION_COUNT = 0): only IAM users' access keys work, per policy."""
        self._request("POST", "/moto-api/reset-auth", b"0")
        try:
            yield
        finally:
            self._request("POST", "/moto-api/reset-auth", b"inf")

    def iam_user(self, name: str, actions: list[str]) -> dict[str, str]:
        """Create an IAM user allowed exactly `actions` on every resource; returns its
        credentials as environment variables (create users before `enforce_iam()`)."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="privgate",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
