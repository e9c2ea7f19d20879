"""A table's quasi-identifiers and sensitive column as numpy arrays the cut rule works on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.anonymize import AnonymizeSpec
from transforms.anonymize.hierarchy import UNKNOWN, Hierarchy

_NULL_CODE = int.from_bytes(
    hashlib.blake2b(b"\x00null", digest_size=8).digest(), "big", signed=True
)


@dataclass
class Dimension:
    """One quasi-identifier: numeric (`hierarchy` None) or categorical (leaf codes)."""

    name: str
    hierarchy: Hierarchy | None
    is_int: bool = False  # integer values (ints, and dates as days since 1970-01-01)
    is_date: bool = False

    @property
    def numeric(self) -> bool:
        return self.hierarchy is None


def dimensions(spec: AnonymizeSpec, arrow_schema: pa.Schema) -> list[Dimension]:
    """The spec's quasi-identifiers, in config order, typed from the protected output schema."""
    out = []
    for q in spec.quasi_identifiers:
        h = spec.hierarchy(q)
        ftype = arrow_schema.field(q).type
        is_date = pa.types.is_date32(ftype)
        out.append(
            Dimension(
                q, Hierarchy(h) if h else None, pa.types.is_integer(ftype) or is_date, is_date
            )
        )

    return out


@dataclass
class Encoded:
    """A table's QI values per dimension (float64 / int64 leaf codes), which rows can be
    placed (no null, no value outside a hierarchy), and stable sensitive-value codes."""

    values: list[np.ndarray]
    placeable: np.ndarray
    sensitive: np.ndarray | None


def encode(table: pa.Table, dims: list[Dimension], sensitive: str | None) -> Encoded:
    values, placeable = [], np.ones(table.num_rows, dtype=bool)
    for d in dims:
        col = table.column(d.name)
        if d.numeric:
            if d.is_date:
                col = pc.cast(col, pa.int32())
            v = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
            placeable &= ~np.isnan(v)  # nulls arrive as NaN
            values.append(np.where(np.isnan(v), 0.0, v))
        else:
            codes = d.hierarchy.encode(col.combine_chunks())
            placeable &= codes != UNKNOWN
            values.append(np.where(codes == UNKNOWN, 0, codes))
    sens = sensitive_codes(table.column(sensitive)) if sensitive else None
    return Encoded(values, placeable, sens)


def sensitive_codes(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A stable 64-bit code per value (the same in every process; null is a value of its own),
    so distinct counts merge across workers without carrying the values themselves."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    enc = pc.cast(arr, pa.string()).dictionary_encode()
    digests = [
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big", signed=True)
        for s in enc.dictionary.to_pylist()
    ]
    table = np.array(digests + [_NULL_CODE], dtype=np.int64)
    idx = pc.fill_null(enc.indices, len(digests)).to_numpy(zero_copy_only=False)
    return table[idx]
