"""Column actions: pure, vectorized operators over pyarrow arrays (no Beam here).

Each action is one function `(array, spec, ctx) -> array | None` in `ACTIONS`; adding one is
one function and one registry line (and its option keys in `schemas.model`). Keyed actions
run once per distinct value (`_map_distinct`) because per-value keyed crypto is the floor of
the pipeline's cost and real columns repeat.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.model import ColumnSpec

TOKEN_PREFIX = "tk_"
CIPHER_PREFIX = "ae_"
TOKEN_BYTES = 16  # 128 bits kept of HMAC-SHA256

ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


class KeyedOps:
    """Keyed primitives over lists of values. Built in a worker from unwrapped keys.

    Args:
        token_key: HMAC-SHA256 key for tokens (32 bytes).
        siv_key: AES-SIV key for reversible deterministic encryption (64 bytes).
        date_shift_key: PRF key for per-record date offsets (32 bytes).
    """

    def __init__(self, token_key: bytes, siv_key: bytes, date_shift_key: bytes):
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV

        self._token = _HmacSha256(token_key)
        self._shift = _HmacSha256(date_shift_key)
        self._siv = AESSIV(siv_key)

    def __reduce__(self):
        raise TypeError("KeyedOps holds keys and must not be pickled; build it in setup()")

    def tokens(self, values: Sequence[str], domain: str = "") -> list[str]:
        """`tk_` + 128-bit hex HMAC-SHA256 of (domain, value); equal inputs give equal tokens."""
        digests = self._token.many(values, domain.encode() + b"\0")
        return [TOKEN_PREFIX + d[:TOKEN_BYTES].hex() for d in digests]

    def encrypt(self, values: Sequence[str], domain: str = "") -> list[str]:
        """`ae_` + base64url(AES-SIV(value)), deterministic, associated data = domain."""
        aad = [b"privgate:" + domain.encode()]
        enc = self._siv.encrypt
        return [
            CIPHER_PREFIX + base64.urlsafe_b64encode(enc(v.encode(), aad)).rstrip(b"=").decode()
            for v in values
        ]

    def decrypt(self, token: str, domain: str = "") -> str:
        """Inverse of `encrypt` for a key holder. Raises ValueError on a foreign ciphertext."""
        from cryptography.exceptions import InvalidTag

        if not token.startswith(CIPHER_PREFIX):
            raise ValueError("not a privgate ciphertext (missing ae_ prefix)")
        body = token[len(CIPHER_PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return self._siv.decrypt(raw, [b"privgate:" + domain.encode()]).decode()
        except (InvalidTag, ValueError):
            raise ValueError("ciphertext does not decrypt under this keyring and column") from None

    def shift_fractions(self, record_keys: Sequence[str]) -> np.ndarray:
        """One keyed uniform draw in [0, 1) per record key (64-bit resolution)."""
        digests = self._shift.many(record_keys, b"date_shift\0")
        words = np.frombuffer(b"".join(d[:8] for d in digests), dtype=">u8")
        return words.astype(np.float64) / 2.0**64


class _HmacSha256:
    """HMAC-SHA256 with the keyed inner/outer states precomputed (RFC 2104); ~2x hmac.new."""

    def __init__(self, key: bytes):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def many(self, values: Sequence[str], prefix: bytes = b"") -> list[bytes]:
        inner0 = self._inner.copy()
        inner0.update(prefix)
        outer0 = self._outer
        out = []
        append = out.append
        for v in values:
            i = inner0.copy()
            i.update(v.encode())
            o = outer0.copy()
            o.update(i.digest())
            append(o.digest())
        return out


class ActionContext:
    """What keyed actions need for one batch: the keyed ops and the batch's record keys."""

    def __init__(self, ops: KeyedOps | None, record_keys: pa.Array | None = None):
        self.ops = ops
        self.record_keys = record_keys
        self._fractions: np.ndarray | None = None

    def shift_fractions(self) -> np.ndarray:
        if self._fractions is None:
            if self.record_keys is None:
                raise ValueError("date_shift needs the schema's record_key")
            keys = pc.cast(self.record_keys, pa.string())
            self._fractions = _map_distinct_np(keys, self.ops.shift_fractions)
        return self._fractions


# --------------------------------------------------------------------------- helpers


def _as_string(arr: pa.Array) -> pa.Array:
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_date(arr.type) or pa.types.is_timestamp(arr.type):
        # ISO 8601 text, stable across runs and readers.
        return pc.strftime(arr, format="%Y-%m-%d" if pa.types.is_date(arr.type)
                           else "%Y-%m-%dT%H:%M:%S.%fZ")
    return pc.cast(arr, pa.string())


def _map_distinct(arr: pa.Array, fn: Callable[[list[str]], list[str]]) -> pa.Array:
    """Apply `fn` to the distinct non-null values of a string array; nulls stay null."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    enc = arr.dictionary_encode()
    mapped = pa.array(fn(enc.dictionary.to_pylist()), pa.string())
    return mapped.take(enc.indices)


def _map_distinct_np(arr: pa.Array, fn: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    enc = arr.dictionary_encode()
    mapped = fn(enc.dictionary.to_pylist())
    return mapped[enc.indices.to_numpy(zero_copy_only=False)]


def _validity(arr: pa.Array) -> np.ndarray | None:
    if arr.null_count == 0:
        return None
    return arr.is_null().to_numpy(zero_copy_only=False)


# --------------------------------------------------------------------------- actions


def keep(arr, spec, ctx):
    return arr


def drop(arr, spec, ctx):
    return None


def redact(arr, spec, ctx):
    return pa.nulls(len(arr), ARROW_TYPES[spec.type])


def mask(arr, spec, ctx):
    """Replace all but `keep_first`/`keep_last` characters with `char`.

    A value no longer than keep_first + keep_last is masked entirely, so short values are
    never shown whole.
    """
    s = _as_string(arr)
    first, last, char = spec.params["keep_first"], spec.params["keep_last"], spec.params["char"]
    n = pc.utf8_length(s)
    shown = pc.greater(n, first + last)
    head = pc.if_else(shown, pc.utf8_slice_codeunits(s, 0, first), "")
    tail = pc.if_else(shown, pc.utf8_slice_codeunits(s, -last) if last else "", "")
    hidden = pc.subtract(n, pc.add(pc.utf8_length(head), pc.utf8_length(tail)))
    stars = pc.binary_repeat(pa.scalar(char), hidden)
    return pc.binary_join_element_wise(head, stars, tail, "")


def tokenize(arr, spec, ctx):
    domain = spec.params.get("domain", "")
    return _map_distinct(_as_string(arr), lambda vs: ctx.ops.tokens(vs, domain))


def encrypt(arr, spec, ctx):
    domain = spec.params.get("domain", "")
    return _map_distinct(_as_string(arr), lambda vs: ctx.ops.encrypt(vs, domain))


def generalize(arr, spec, ctx):
    p = spec.params
    if "keep_prefix" in p:
        return pc.utf8_slice_codeunits(arr, 0, p["keep_prefix"])
    if "date_part" in p:
        return pc.floor_temporal(arr, unit=p["date_part"])
    bucket = p["bucket"]
    values = arr.fill_null(0).to_numpy(zero_copy_only=False)
    if spec.type == "int":
        out = (values // bucket) * bucket
    else:
        out = np.floor(values / bucket) * bucket
    return pa.array(out, type=arr.type, mask=_validity(arr))


def date_shift(arr, spec, ctx):
    """Move dates by a keyed offset in [-max_days, +max_days], one draw per record key."""
    m = spec.params["max_days"]
    days = np.floor(ctx.shift_fractions() * (2 * m + 1)).astype(np.int64) - m
    if spec.type == "date":
        base = arr.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
        shifted = pa.array(base.astype(np.int64) + days, pa.int32(), mask=_validity(arr))
        return shifted.cast(pa.date32())
    base = arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    shifted = pa.array(base + days * 86_400_000_000, pa.int64(), mask=_validity(arr))
    return shifted.cast(arr.type)


ACTIONS: dict[str, Callable[[pa.Array, ColumnSpec, ActionContext], pa.Array | None]] = {
    "keep": keep,
    "drop": drop,
    "redact": redact,
    "mask": mask,
    "tokenize": tokenize,
    "encrypt": encrypt,
    "generalize": generalize,
    "date_shift": date_shift,
}
