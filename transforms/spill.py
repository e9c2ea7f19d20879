"""Encrypted scratch files for a transform that reads its records more than once.

Beam's in-process runners hold in memory a PCollection that later stages read again, and
every value of a GroupByKey. A multi-pass transform (Mondrian's rounds) instead writes its
records once to envelope-encrypted Parquet under the run's `_work/` and passes file
references between stages, so memory holds references and statistics, not records. Every
column is under the `pii` master key and the footer is encrypted, like the output; the
keyring is opened in `setup()` from its path (no key material in a DoFn). `_work/` goes with
the staging when the run is finalized or fails.
"""

from __future__ import annotations

import contextlib
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from privgate.keyring import open_keyring
from privgate.kms import Kms
from privgate.parquet_crypto import decryption_properties, encryption_properties

ROW_GROUP_MAX = 1 << 20  # rows per row group at most (a group is read whole)


def open_kms(keyring_path: str, kek_context: str) -> Kms:
    return open_keyring(keyring_path).kms.bound(kek_context)


class SpillWriter:
    """One encrypted spill file: `write` appends row groups and returns their indexes."""

    def __init__(self, kms: Kms, schema: pa.Schema, directory: str):
        self.path = FileSystems.join(directory, f"{uuid.uuid4().hex}.parquet")
        self.rows = 0
        self._groups = 0
        self._handle = FileSystems.create(self.path, compression_type=CompressionTypes.UNCOMPRESSED)
        props = encryption_properties(kms, {"pii": list(schema.names)})
        self._writer = pq.ParquetWriter(
            self._handle, schema, compression="zstd", encryption_properties=props
        )

    def write(self, table: pa.Table) -> list[int]:
        """`table` as row groups of its own (at most ROW_GROUP_MAX rows each)."""
        out = []
        for start in range(0, table.num_rows, ROW_GROUP_MAX):
            part = table.slice(start, ROW_GROUP_MAX)
            self._writer.write_table(part, row_group_size=part.num_rows)
            out.append(self._groups)
            self._groups += 1
        self.rows += table.num_rows
        return out

    def close(self) -> str:
        try:
            self._writer.close()
        finally:
            self._handle.close()
        return self.path


@contextlib.contextmanager
def open_spill(kms: Kms, path: str):
    """A spill file as a `pq.ParquetFile`, its handle closed on exit."""
    handle = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    try:
        yield pq.ParquetFile(handle, decryption_properties=decryption_properties(kms))
    finally:
        handle.close()


def read_batches(kms: Kms, path: str, columns: list[str], batch_rows: int = 65_536):
    """The spill file's `columns` as tables of at most `batch_rows` rows."""
    with open_spill(kms, path) as f:
        for batch in f.iter_batches(batch_size=batch_rows, columns=columns):
            yield pa.Table.from_batches([batch])


def read_groups(kms: Kms, path: str, groups: list[int] | None = None) -> pa.Table:
    """The given row groups of a spill file (all of them when `groups` is None)."""
    with open_spill(kms, path) as f:
        return f.read() if groups is None else f.read_row_groups(groups)
