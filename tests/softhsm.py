"""A fresh SoftHSM2 token in a temporary directory, for the PKCS#11 backend's tests.

SoftHSM2 reads `SOFTHSM2_CONF` when the library is first initialized in a process, so
`init_token` must run before anything in the test process loads the module; it sets the
variable in `os.environ` (inherited by CLI subprocesses) and returns it for explicit `env=`.
The config sets `library.reset_on_fork = true`: a forked child then cannot use the parent's
sessions (as with a networked HSM), so a backend that does not re-initialize after fork fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class SoftHsmToken:
    conf: str
    label: str
    pin: str
    pin_env: str

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process that uses the token (CLI subprocesses)."""
        return {"SOFTHSM2_CONF": self.conf, self.pin_env: self.pin}

    def settings(self, prefix: str) -> dict:
        """`keys.pkcs11` settings with key labels `<prefix>-pii`, ... (one set per test)."""
        return {
            "module": MODULE,
            "token": self.label,
            "pin_env": self.pin_env,
            "keys": {m: f"{prefix}-{m}" for m in ("pii", "data", "footer")},
        }


def init_token(
    directory: str, label: str = "privgate-test", pin_env: str = "PRIVGATE_PKCS11_PIN"
) -> SoftHsmToken:
    """Initialize a token in `directory` and point this process at it.

    Raises:
        RuntimeError: SoftHSM2 is missing, or the library was already loaded in this process
            (with another config, so the token would not be found).
    """
    import pkcs11

    util = shutil.which("softhsm2-util")
    if util is None or not os.path.exists(MODULE):
        raise RuntimeError("SoftHSM2 is not installed: run `make test-peers` (Debian softhsm2)")
    if any(os.path.realpath(p) == os.path.realpath(MODULE) for p in pkcs11._loaded):
        raise RuntimeError("libsofthsm2 was loaded before SOFTHSM2_CONF was set")
    tokendir = os.path.join(directory, "tokens")
    os.makedirs(tokendir, mode=0o700)
    conf = os.path.join(directory, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write(
            f"directories.tokendir = {tokendir}\nobjectstore.backend = file\n"
            "log.level = ERROR\nslots.removable = false\nlibrary.reset_on_fork = true\n"
        )
    token = SoftHsmToken(conf=conf, label=label, pin=secrets.token_hex(8), pin_env=pin_env)
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            secrets.token_hex(8),
            "--pin",
            token.pin,
        ],
        check=True,
        capture_output=True,
        env=dict(os.environ, SOFTHSM2_CONF=conf),
    )
    os.environ.update(token.env)
    return token
