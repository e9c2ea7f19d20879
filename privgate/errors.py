"""Errors privgate raises on purpose. None of them may carry a record's value."""


class PrivgateError(Exception):
    """Base class; `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(PrivgateError):
    """An invalid run config or schema: names the file and the key path."""

    exit_code = 2

    def __init__(self, source: str, key_path: str, message: str):
        self.source, self.key_path = source, key_path
        where = f"{source}: {key_path}: " if key_path else f"{source}: "
        super().__init__(where + message)


class KeyringError(PrivgateError):
    """The keyring or KMS cannot be opened or lacks a key (raised before data is read)."""


class DataError(PrivgateError):
    """Input that cannot be processed as a whole (names file and column, never a value)."""


class VerifyError(PrivgateError):
    """An output directory that fails signature, hash or completeness checks."""


class SchemaMismatchError(DataError):
    """The input's columns do not fit the schema (missing, duplicated or undeclared columns
    under `unknown_columns: fail`): a contract error, so exit 2 like a config error."""

    exit_code = 2


class GateError(PrivgateError):
    """A gate refused the data (the keep-guard, later the validation gates): exit 3."""

    exit_code = 3
