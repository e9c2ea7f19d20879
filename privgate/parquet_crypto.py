"""Parquet modular encryption glue shared by the writer (workers) and the reader.

pyarrow's `CryptoFactory` and `KmsConnectionConfig` are not picklable, so they are built where
they are used (a sink's `open()`, a reader call) around an already-opened `Kms`.
"""

from __future__ import annotations

import threading

from privgate.kms import Kms

ALGORITHM = "AES_GCM_V1"


_LOCK = threading.Lock()


def crypto_factory(kms: Kms):
    """A pyarrow CryptoFactory whose KMS client delegates to our `Kms`, one per `Kms` object
    per process: pyarrow caches KEKs in the factory (double wrapping), so KMS round trips
    per worker do not grow with the number of files or columns."""
    with _LOCK:
        factory = getattr(kms, "_arrow_factory", None)
        if factory is None:
            factory = kms._arrow_factory = _new_factory(kms)
        return factory


def _new_factory(kms: Kms):
    import pyarrow.parquet.encryption as pe

    class _ArrowKmsClient(pe.KmsClient):
        def __init__(self, _config):
            super().__init__()

        def wrap_key(self, key_bytes, master_key_identifier):
            return kms.wrap(master_key_identifier, key_bytes)

        def unwrap_key(self, wrapped_key, master_key_identifier):
            return kms.unwrap(master_key_identifier, wrapped_key)

    return pe.CryptoFactory(_ArrowKmsClient)


def kms_config():
    import pyarrow.parquet.encryption as pe

    return pe.KmsConnectionConfig()


def encryption_properties(kms: Kms, column_keys: dict[str, list[str]]):
    """File encryption properties: every column listed under a master key, footer encrypted."""
    import pyarrow.parquet.encryption as pe

    config = pe.EncryptionConfiguration(
        footer_key="footer",
        column_keys={k: list(v) for k, v in column_keys.items() if v},
        encryption_algorithm=ALGORITHM,
        plaintext_footer=False,
        double_wrapping=True,
        internal_key_material=True,
        data_key_length_bits=256,
    )
    return crypto_factory(kms).file_encryption_properties(kms_config(), config)


def decryption_properties(kms: Kms):
    import pyarrow.parquet.encryption as pe

    return crypto_factory(kms).file_decryption_properties(
        kms_config(), pe.DecryptionConfiguration()
    )
