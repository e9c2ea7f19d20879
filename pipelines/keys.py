"""The run's keys: the keyring opened, checked against the config, before any data is read."""

from __future__ import annotations

from privgate.errors import ConfigError
from privgate.keyring import open_keyring
from schemas.config import RunConfig


def check_keyring_matches(cfg: RunConfig) -> None:
    """keys.kms (and keys.<kms> settings, when given) must describe the keyring file (read
    from its clear header: no passphrase, no KMS call)."""
    from privgate.keyring import keyring_kms

    kind, settings = keyring_kms(cfg.keys.keyring)
    if kind != cfg.keys.kms:
        raise ConfigError(
            cfg.source,
            "keys.kms",
            f"is {cfg.keys.kms} but keyring {cfg.keys.keyring} uses the {kind} KMS",
        )
    wanted = cfg.keys.settings_dict()
    if wanted and wanted != settings:
        raise ConfigError(
            cfg.source,
            f"keys.{kind}",
            f"differs from the settings recorded in "
            f"keyring {cfg.keys.keyring} (see `privgate keys list`)",
        )


def open_run_keyring(cfg: RunConfig):
    """Open the keyring and unwrap every key the run uses, so that a keyring that cannot be
    opened fails before any data is read.

    Returns:
        The open `Keyring`.
    Raises:
        KeyringError (exit 1), ConfigError (exit 2: `keys` does not describe the keyring).
    """
    keyring = open_keyring(cfg.keys.keyring)
    check_keyring_matches(cfg)
    for name in ("token", "siv", "date_shift"):
        keyring.data_key(name)
    keyring.signing_key()
    return keyring
