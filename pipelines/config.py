"""Loading a run's config: the policy language's checks plus those that need a plug-in.

`schemas/` knows no plug-in. Here, where a run starts, each KMS backend validates its own
settings and each ldp column's mechanism is built once from its parameters, so a bad value
still exits 2 naming the file and the key path before any data is read.
"""

from __future__ import annotations

from privgate.errors import ConfigError, KeyringError
from privgate.kms import check_kms_settings
from schemas.config import RunConfig, load_config
from transforms.ldp import build_mechanism


def check_plugins(cfg: RunConfig) -> RunConfig:
    """Run the plug-in checks on a parsed config.

    Returns:
        `cfg`, unchanged.
    Raises:
        ConfigError: naming the config (KMS settings) or schema file (ldp) and the key path.
    """
    settings = cfg.keys.settings_dict()
    if settings:
        try:
            check_kms_settings(cfg.keys.kms, settings)
        except KeyringError as e:
            msg = str(e)
            where = "" if msg.startswith("keys.") else f"keys.{cfg.keys.kms}"
            raise ConfigError(cfg.source, where, msg) from None
    for c in cfg.schema.ldp_columns:
        try:
            build_mechanism(**c.ldp_params)
        except ValueError as e:
            raise ConfigError(
                cfg.schema.source, f"columns.{c.name}.action", str(e).removeprefix("ldp: ")
            ) from None
    return cfg


def load_run_config(path: str) -> RunConfig:
    """Load a run config and its schema, with every check a run needs before reading data.

    Raises:
        ConfigError: with the file and key path of the first problem found.
    """
    return check_plugins(load_config(path))
