"""Errors privgate raises on purpose. None of them may carry a record's value."""

import contextlib
import os


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


@contextlib.contextmanager
def value_free_errors(where: str):
    """Re-raise any error but a PrivgateError as a DataError naming `where` and the error's
    type, without its message: library messages (pyarrow's casts and parsers) quote values.

    OS errors keep their errno text (`No space left on device`), which carries no value.
    """
    try:
        yield
    except PrivgateError:
        raise
    except OSError as e:
        detail = os.strerror(e.errno) if e.errno else type(e).__name__
        raise DataError(f"{where}: {detail}") from None
    except Exception as e:
        raise DataError(
            f"{where}: {type(e).__name__} (its message is withheld: it may quote a value)"
        ) from None
