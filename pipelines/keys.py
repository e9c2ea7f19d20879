"""The run's keys: the keyring opened, checked against the config, before any data is read."""

from __future__ import annotations

from pipelines.graph import is_local_runner, runner_name
from privgate.errors import ConfigError
from privgate.keyring import is_object_path, open_keyring
from privgate.kms import remote_kms_kinds
from schemas.config import RunConfig

# why a keyring of this kind must stay on the launcher machine
_BOUND_TO_THIS_MACHINE = {
    "local": "its master keys are in the file itself, under a passphrase: every worker "
    "would need both",
    "pkcs11": "its master keys are on a PKCS#11 token, a device or library on one machine",
}


def check_keyring_placement(cfg: RunConfig, beam_args: list[str]) -> None:
    """Only a keyring of a cloud KMS (aws-kms, gcp-kms) may leave the launcher machine: be
    read from an object store, or be opened by the workers of a non-local runner.

    Raises:
        ConfigError (exit 2): `keys.keyring` is an object-store path, or the runner is not
        local, and `keys.kms` is not a cloud KMS.
    """
    kind, remote = cfg.keys.kms, remote_kms_kinds()
    if is_object_path(cfg.keys.keyring) and cfg.schema.ldp_columns and not cfg.privacy.ledger:
        raise ConfigError(
            cfg.source,
            "privacy.ledger",
            "required when keys.keyring is an object-store path: the default epsilon ledger "
            "is a local file beside the keyring",
        )
    if kind in remote:
        return
    why = _BOUND_TO_THIS_MACHINE.get(kind, "its master keys are bound to this machine")
    if is_object_path(cfg.keys.keyring):
        raise ConfigError(
            cfg.source,
            "keys.keyring",
            f"is an object-store path, but a {kind} keyring must stay a local file ({why}); "
            f"keep it local, or use a keyring of a cloud KMS ({', '.join(remote)})",
        )
    if not is_local_runner(beam_args):
        runner = runner_name(beam_args)
        raise ConfigError(
            cfg.source,
            "keys.kms",
            f"is {kind}, but --runner {runner} runs workers on other machines, which open the "
            f"keyring in setup() and cannot use a {kind} keyring ({why}); use a keyring of a "
            f"cloud KMS ({', '.join(remote)}): `privgate keys init --config` creates one",
        )


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
