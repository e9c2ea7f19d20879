"""Write: envelope-encrypted Parquet (Parquet modular encryption, AES_GCM_V1).

Every column is encrypted: personal-data columns under the `pii` master key, the rest under
`data`; the footer (schema, statistics) under `footer`. Data keys are random per file and
column, wrapped by key-encryption keys that the KMS wraps (double wrapping), and the key
material is stored inside the file, so files can be renamed and copied freely.

`EncryptedParquetSink` is a Beam `FileBasedSink` (temp files, then finalize/rename, retries).
It carries only the keyring path and key ids; keys are fetched in `open()`.
"""

from __future__ import annotations

import contextlib
import queue
import threading

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes

from privgate.errors import value_free_errors
from privgate.keyring import open_keyring
from privgate.parquet_crypto import encryption_properties


def column_key_groups(schema: pa.Schema, groups: dict[str, str]) -> dict[str, list[str]]:
    """{master key id: [columns]} covering every column of `schema` (none left plaintext)."""
    out: dict[str, list[str]] = {"pii": [], "data": []}
    for name in schema.names:
        out[groups[name]].append(name)
    return out


class EncryptedParquetSink(filebasedsink.FileBasedSink):
    """Writes Arrow tables to encrypted Parquet files; see the module docstring.

    Args:
        file_path_prefix: where finalized files go (`.../data/part`).
        schema: Arrow schema of every table written.
        groups: column name -> master key id (`pii` or `data`); every column must appear.
        keyring_path: where workers open the keyring (a path, not a secret).
        compression: parquet codec (zstd or snappy).
        row_group_rows: maximum rows per row group.
        kek_context: AAD for the KEK wraps (`privgate.kms.kek_context(dataset)`).
    """

    def __init__(
        self,
        file_path_prefix: str,
        schema: pa.Schema,
        groups: dict[str, str],
        keyring_path: str,
        compression: str,
        row_group_rows: int,
        kek_context: str = "",
    ):
        super().__init__(
            file_path_prefix,
            coder=None,
            file_name_suffix=".parquet",
            num_shards=0,
            shard_name_template="-SSSSS-of-NNNNN",
            mime_type="application/x-parquet",
            compression_type=CompressionTypes.UNCOMPRESSED,
        )
        self._schema = schema
        self._keys = column_key_groups(schema, groups)
        self._keyring_path = keyring_path
        self._compression = compression
        self._row_group_rows = row_group_rows
        self._kek_context = kek_context

    def open(self, temp_path):
        handle = super().open(temp_path)
        kms = open_keyring(self._keyring_path).kms.bound(self._kek_context)
        writer = pq.ParquetWriter(
            handle,
            self._schema,
            compression=self._compression,
            encryption_properties=encryption_properties(kms, self._keys),
        )
        return _BackgroundWriter(writer, handle, self._row_group_rows)

    def write_record(self, file_handle, table: pa.Table):
        with value_free_errors(f"{self.file_path_prefix.get()}: writing"):
            file_handle.put(table)

    def close(self, file_handle):
        with value_free_errors(f"{self.file_path_prefix.get()}: writing"):
            file_handle.close()


class _BackgroundWriter:
    """Encodes, compresses and encrypts row groups on a thread while the caller protects the
    next batch. pyarrow releases the GIL while writing, so on two cores the keyed-crypto
    loops (which hold it) and the Parquet writer overlap. Errors surface on put()/close()."""

    _DONE = object()

    def __init__(self, writer, handle, row_group_rows: int):
        self._writer, self._handle, self._rows = writer, handle, row_group_rows
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="privgate-writer", daemon=True)
        self._thread.start()

    def _loop(self):
        while (table := self._queue.get()) is not self._DONE:
            if self._error is None:
                try:
                    self._writer.write_table(table, row_group_size=self._rows)
                except BaseException as e:  # re-raised in the caller's thread
                    self._error = e

    def _raise(self):
        if self._error is not None:
            raise self._error

    def put(self, table: pa.Table) -> None:
        self._raise()
        self._queue.put(table)

    def close(self) -> None:
        self._queue.put(self._DONE)
        self._thread.join()
        try:
            self._raise()
            self._writer.close()
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to report
                self._writer.close()
            raise
        finally:
            self._handle.close()
