"""Where ldp mechanisms get their randomness: uniform sources built on cryptographic randomness.

Every draw is an inverse-CDF transform of uniforms taken from a `UniformSource`:
`SecureRandomSource` (os.urandom, 53-bit uniforms) for fresh noise, `KeyedPrfSource`
(HMAC-SHA256) for memoized noise. numpy's generators (PCG64) are not cryptographic: their
state can be recovered from outputs, and with it the noise. Each mechanism takes a fixed
number of uniforms per record (`draws`, at most 4) in a single `uniforms()` call, so one
32-byte HMAC per record covers every mechanism.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.crypto import HmacSha256

PRF_DOMAIN = b"privgate-ldp/v1\0"
UNIFORMS_PER_DIGEST = 4  # 32-byte HMAC digest = 4 x 64-bit words, 53 bits used of each

_TWO_M53 = 2.0**-53


@runtime_checkable
class UniformSource(Protocol):
    """Where mechanisms get their randomness: independent uniforms in [0, 1)."""

    def uniforms(self, n: int, k: int) -> np.ndarray:
        """Return an (n, k) float64 array of uniforms in [0, 1), k per record."""
        ...


def _check_shape(n: int, k: int) -> tuple[int, int]:
    n, k = int(n), int(k)
    if n < 0 or k < 1:
        raise ValueError("uniforms(n, k) needs n >= 0 and k >= 1")
    return n, k


def _words_to_unit(words: np.ndarray) -> np.ndarray:
    # Top 53 bits of each 64-bit word -> exact float64 multiples of 2**-53 in [0, 1).
    return (words >> np.uint64(11)).astype(np.float64) * _TWO_M53


class SecureRandomSource:
    """Fresh uniforms from the operating system's CSPRNG (`os.urandom`), 53-bit resolution.

    Holds no state, so it may be built anywhere (and pickled).
    """

    def uniforms(self, n: int, k: int) -> np.ndarray:
        """Return (n, k) uniforms in [0, 1) from os.urandom(8 * n * k).

        Args:
            n: number of records.
            k: uniforms per record.
        Returns:
            float64 array of shape (n, k).
        Raises:
            ValueError: n < 0 or k < 1.
        """
        n, k = _check_shape(n, k)
        raw = os.urandom(8 * n * k)  # looked up at call time so tests can spy on it
        return _words_to_unit(np.frombuffer(raw, dtype="<u8")).reshape(n, k)

    def __repr__(self) -> str:
        return "SecureRandomSource()"


def _binary_array(values, what: str, *, allow_null: bool) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(list(values), type=pa.string())
    try:
        if not (
            pa.types.is_binary(values.type)
            or pa.types.is_string(values.type)
            or pa.types.is_large_string(values.type)
            or pa.types.is_fixed_size_binary(values.type)
        ):
            values = pc.cast(values, pa.string())  # e.g. integer record keys, as decimal
        values = pc.cast(values, pa.binary())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise TypeError(f"{what} cannot be read as strings") from None
    if values.null_count:
        if not allow_null:
            raise ValueError(f"{what} contains nulls")
        values = pc.fill_null(values, b"")
    return values


class KeyedPrfSource:
    """Memoized uniforms: a keyed PRF of (noise domain, version, record key, value).

    Record i's uniforms are the 64-bit words of HMAC-SHA256(key, PRF_DOMAIN ||
    len:column || version || block || len:record_key || ":" || value_i), top 53 bits each;
    one HMAC per record and block gives 4 uniforms (block b serves draws 4b .. 4b+3), so
    every registered mechanism costs one HMAC per record. Equal inputs give equal uniforms;
    a changed value, key, column or version gives an independent draw.

    The key never leaves this object: it is not in its repr and pickling it raises.

    Args:
        key: PRF key bytes (>= 16 bytes), from the keyring.
        record_keys: one non-null record key per row (list of str, or a pyarrow array).
        column: the noise domain; `memoized_source` passes `noise_domain(...)`: dataset,
            record-key column, column name and mechanism parameters.
        values: the mechanism input per row, canonically encoded (list of str, or a pyarrow
            string/binary array); nulls are allowed (their draws are not used).
        version: key version (>= 0); bumping it re-draws all noise.
    Raises:
        ValueError: short key, mismatched lengths, null record key, negative version.
    """

    def __init__(self, key: bytes, record_keys, column: str, values, version: int):
        if not isinstance(key, bytes | bytearray) or len(key) < 16:
            raise ValueError("PRF key must be at least 16 bytes")
        if int(version) < 0:
            raise ValueError("key version must be >= 0")
        rk = _binary_array(record_keys, "record keys", allow_null=False)
        vals = _binary_array(values, "values", allow_null=True)
        if len(rk) != len(vals):
            raise ValueError("record_keys and values differ in length")
        lengths = pc.cast(pc.cast(pc.binary_length(rk), pa.string()), pa.binary())
        # "len:record_key:value" is unambiguous: the length fixes where the key ends.
        self._messages = pc.binary_join_element_wise(lengths, rk, vals, b":").to_pylist()
        col = column.encode()
        self._prefix = (
            PRF_DOMAIN + str(len(col)).encode() + b":" + col + int(version).to_bytes(8, "big")
        )
        self._states = HmacSha256(bytes(key))
        self.column = column
        self.version = int(version)

    def __len__(self) -> int:
        return len(self._messages)

    def __repr__(self) -> str:  # never show key material
        return f"KeyedPrfSource(n={len(self)}, version={self.version})"

    def __reduce__(self):
        raise TypeError(
            "KeyedPrfSource holds a PRF key and must not be pickled; build it "
            "in the worker from the keyring"
        )

    def uniforms(self, n: int, k: int) -> np.ndarray:
        """Return the (n, k) memoized uniforms; n must be the number of records given.

        Args:
            n: number of records (must equal len(record_keys)).
            k: uniforms per record.
        Returns:
            float64 array of shape (n, k) in [0, 1), a pure function of the inputs.
        Raises:
            ValueError: n differs from the number of records, or k < 1.
        """
        n, k = _check_shape(n, k)
        if n != len(self._messages):
            raise ValueError(f"source built for {len(self._messages)} records, asked for {n}")
        blocks = []
        for b in range(-(-k // UNIFORMS_PER_DIGEST)):
            raw = self._states.joined(self._messages, self._prefix + b.to_bytes(4, "big"))
            blocks.append(np.frombuffer(raw, dtype=">u8").reshape(n, UNIFORMS_PER_DIGEST))
        words = blocks[0] if len(blocks) == 1 else np.hstack(blocks)
        return _words_to_unit(words[:, :k].astype(np.uint64))
