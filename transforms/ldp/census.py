"""The record-key census of a memoized ldp run: counts over every released row of its input.

Memoized noise is a PRF of (noise domain, record key, value), so two facts about the whole
input decide whether a release is sound and what it costs; neither can be seen in one batch:

- **Repeated record keys.** Rows that share a record key and a value get bit-identical noisy
  outputs: equality that no epsilon accounts for. The launcher refuses such a run.
- **The input fingerprint.** A memoized run re-releases nothing new only when its PRF saw
  exactly the inputs of an earlier run (same record keys, same values); the ledger's memo id
  ends with this fingerprint, so any other input is charged as fresh noise.

Each batch gives a `Census` (`table_census`); censuses merge in any order (`merge_census`);
`census_summary` turns the merged one into counts and a hex fingerprint. Digests are
HMAC-SHA256 under the ldp key, domain-separated from the noise PRF, and never leave the
pipeline: the summary holds no value and no per-row digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.crypto import HmacSha256
from schemas.columns import Schema
from transforms.arrow import as_string
from transforms.ldp.column import prf_inputs

CENSUS_LINE = "ldp_census"  # key of the census line in the pipeline's _work/stats*.jsonl
_KEY_PREFIX = b"privgate-ldp-census/record-key/v1\0"
_INPUT_PREFIX = b"privgate-ldp-census/prf-inputs/v1\0"


@dataclass(frozen=True)
class Census:
    """What a batch (or a merge of batches) tells about its record keys and PRF inputs.

    Attributes:
        rows: released rows counted.
        key_digests: per chunk, an (n, 2) uint64 array: 16 bytes of a keyed digest of each
            row's record key (equal keys, equal digests).
        input_sum: (4,) uint64, the sum mod 2**64 per word of each row's keyed digest of its
            record key and every ldp column's PRF input (order-free, so it merges).
    """

    rows: int
    key_digests: tuple[np.ndarray, ...]
    input_sum: np.ndarray


def empty_census() -> Census:
    """The census of no rows (the start of a merge)."""
    return Census(0, (), np.zeros(4, dtype=np.uint64))


def memoized_ldp(schema: Schema) -> bool:
    """The schema releases ldp columns with memoized noise (it has a record key)."""
    return schema.record_key is not None and bool(schema.ldp_columns)


def _lengths(arr: pa.Array) -> pa.Array:
    return pc.cast(pc.cast(pc.binary_length(arr), pa.string()), pa.binary())


def table_census(key: bytes, table: pa.Table, schema: Schema) -> Census:
    """The census of one contract-checked batch of a memoized ldp schema.

    Args:
        key: the keyring's ldp key (the noise PRF's key).
        table: the batch, typed (the rows the protect stage releases).
        schema: the dataset schema (`memoized_ldp(schema)` holds).
    Returns:
        the batch's Census.
    Raises:
        ValueError: a null record key, or a value the ldp stage could not read either.
    """
    keys = as_string(table.column(schema.record_key).combine_chunks())
    if keys.null_count:
        raise ValueError("record keys must not be null")
    keys = pc.cast(keys, pa.binary())
    parts = [_lengths(keys), keys]
    for c in schema.ldp_columns:
        enc = prf_inputs(table.column(c.name), c.ldp_params)
        parts += [_lengths(enc), enc]
    # "len:key:len:value:..." is unambiguous: each length fixes where its field ends.
    messages = pc.binary_join_element_wise(*parts, b":").to_pylist()
    hmac = HmacSha256(bytes(key))
    n = len(messages)
    key_raw = hmac.joined(keys.to_pylist(), _KEY_PREFIX)
    key_digests = np.frombuffer(key_raw, dtype=">u8").reshape(n, 4)[:, :2].astype(np.uint64)
    input_raw = hmac.joined(messages, _INPUT_PREFIX)
    words = np.frombuffer(input_raw, dtype=">u8").reshape(n, 4).astype(np.uint64)
    return Census(n, (key_digests,), words.sum(axis=0, dtype=np.uint64))


def merge_census(parts) -> Census:
    """Merge censuses of disjoint row sets (batches, files, workers), in any order."""
    rows, chunks, total = 0, [], np.zeros(4, dtype=np.uint64)
    for part in parts:
        rows += part.rows
        chunks.extend(part.key_digests)
        total = total + part.input_sum  # uint64 arrays wrap mod 2**64
    return Census(rows, tuple(chunks), total)


def census_summary(census: Census) -> dict:
    """Counts and the input fingerprint of a (merged) census: no value, no per-row digest.

    Returns:
        {"rows": rows counted, "repeated": rows whose record key an earlier row already had,
        "fingerprint": 32 hex digits, equal for equal multisets of (record key, PRF inputs)}.
    """
    if census.key_digests:
        d = np.concatenate(census.key_digests)
        d = d[np.lexsort((d[:, 1], d[:, 0]))]
        repeated = int(np.count_nonzero(np.all(d[1:] == d[:-1], axis=1)))
    else:
        repeated = 0
    body = int(census.rows).to_bytes(8, "big") + census.input_sum.astype(">u8").tobytes()
    return {
        "rows": int(census.rows),
        "repeated": repeated,
        "fingerprint": hashlib.sha256(body).hexdigest()[:32],
    }
