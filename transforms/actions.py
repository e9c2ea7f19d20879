"""Column actions: pure, vectorized operators over pyarrow arrays (no Beam here).

Each action is one function `(array, spec, ctx) -> array | None` in `ACTIONS`; adding one is
one function and one registry line (and its declaration in `schemas.columns.ACTIONS`). Keyed actions
run once per distinct value (`_map_distinct`) because per-value keyed crypto is the floor of
the pipeline's cost and real columns repeat.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.crypto import HmacSha256
from privgate.errors import DataError, KeyringError
from schemas.columns import ColumnSpec
from transforms.arrow import ARROW_TYPES, as_string
from transforms.limits import out_of_range

TOKEN_PREFIX = "tk_"
CIPHER_PREFIX = "ae_"
TOKEN_BYTES = 16  # 128 bits kept of HMAC-SHA256


class KeyedOps:
    """Keyed primitives over many values. Built in a worker from unwrapped keys.

    Args:
        token_key: HMAC-SHA256 key for tokens (32 bytes).
        siv_key: AES-SIV key for reversible deterministic encryption (64 bytes).
        date_shift_key: AES-256 key of the per-record date-offset PRF (32 bytes).
        ldp_key: HMAC key of memoized local-DP noise (32 bytes), if the keyring has one.
    """

    def __init__(
        self, token_key: bytes, siv_key: bytes, date_shift_key: bytes, ldp_key: bytes | None = None
    ):
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV

        self.ldp_key = ldp_key  # PRF key of memoized LDP noise (transforms.ldp.sources)
        self._token = HmacSha256(token_key)
        self._siv_key = siv_key
        self._siv = AESSIV(siv_key)
        self._vsiv: dict[str, object] = {}
        self._shift_key = date_shift_key

    def __reduce__(self):
        raise TypeError("KeyedOps holds keys and must not be pickled; build it in setup()")

    def token_digests(self, values: pa.Array, domain: str = "") -> np.ndarray:
        """(n, 16) uint8: the first 128 bits of HMAC-SHA256(token key, domain 0x00 value)."""
        joined = self._token.joined(_as_bytes_list(values), domain.encode() + b"\0")
        full = np.frombuffer(joined, dtype=np.uint8).reshape(-1, 32)
        return full[:, :TOKEN_BYTES]

    def tokens_array(self, values: pa.Array, domain: str = "") -> pa.Array:
        """`tk_` + 32 hex chars per value; equal inputs give equal tokens."""
        return _hex_strings(TOKEN_PREFIX, self.token_digests(values, domain))

    def tokens(self, values: Sequence[str], domain: str = "") -> list[str]:
        """List form of `tokens_array` (for small inputs such as scrub pseudonyms)."""
        return self.tokens_array(pa.array(values, pa.string()), domain).to_pylist()

    def encrypt_array(self, values: pa.Array, domain: str = "") -> pa.Array:
        """`ae_` + base64url(AES-SIV(value)), deterministic, associated data = domain.

        Vectorized by value length (`privgate.crypto.VectorSiv`), bit-identical to
        `AESSIV.encrypt`.
        """
        from privgate.crypto import VectorSiv

        if domain not in self._vsiv:
            self._vsiv[domain] = VectorSiv(self._siv_key, b"privgate:" + domain.encode())
        siv = self._vsiv[domain]
        return _by_length(values, lambda m: _b64url_strings(CIPHER_PREFIX, siv.encrypt_fixed(m)))

    def encrypt(self, values: Sequence[str], domain: str = "") -> list[str]:
        return self.encrypt_array(pa.array(values, pa.string()), domain).to_pylist()

    def decrypt(self, token: str, domain: str = "") -> str:
        """Inverse of `encrypt` for a key holder. Raises ValueError on a foreign ciphertext."""
        from cryptography.exceptions import InvalidTag

        if not token.startswith(CIPHER_PREFIX):
            raise ValueError("not a privgate ciphertext (missing ae_ prefix)")
        body = token[len(CIPHER_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return self._siv.decrypt(raw, [b"privgate:" + domain.encode()]).decode()
        except (InvalidTag, ValueError):
            raise ValueError("ciphertext does not decrypt under this keyring and column") from None

    def shift_fractions(self, record_digests: np.ndarray) -> np.ndarray:
        """One keyed uniform draw in [0, 1) per record: AES(date-shift key, record digest).

        The record digest is the record key's 128-bit token digest, so a record's draw is
        a PRF of its key under the date-shift key (AES as a PRF on one block)."""
        from privgate.crypto import aes_blocks

        out = aes_blocks(self._shift_key, record_digests)
        words = np.ascontiguousarray(out[:, :8]).view(">u8").reshape(-1)
        return words.astype(np.float64) / 2.0**64


class ActionContext:
    """What keyed actions need for one batch: the keyed ops, the batch's record keys and the
    dataset (memoized ldp noise is keyed on it)."""

    def __init__(
        self,
        ops: KeyedOps | None,
        record_keys: pa.Array | None = None,
        record_key_name: str | None = None,
        detector=None,
        dataset: str | None = None,
    ):
        self.ops = ops
        self.detector = detector  # transforms.detect.engine.Detector, for scrub columns
        self.record_keys = record_keys
        self.record_key_name = record_key_name
        self.dataset = dataset
        self._digests: np.ndarray | None = None

    def record_digests(self) -> np.ndarray:
        """(n, 16) token digests of each row's record key (default domain), cached."""
        if self._digests is None:
            if self.record_keys is None:
                raise DataError("date_shift needs the schema's record_key")
            keys = as_string(self.record_keys)
            if keys.null_count:
                raise DataError("record keys must not be null")
            enc = keys.dictionary_encode()
            distinct = self.ops.token_digests(enc.dictionary)
            self._digests = distinct[enc.indices.to_numpy(zero_copy_only=False)]
        return self._digests

    def shift_fractions(self) -> np.ndarray:
        return self.ops.shift_fractions(self.record_digests())


# --------------------------------------------------------------------------- helpers


def _map_distinct(arr: pa.Array, fn: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Apply `fn` to the distinct non-null values of a string array; nulls stay null."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    enc = arr.dictionary_encode()
    return fn(enc.dictionary).take(enc.indices)


def _as_bytes_list(values: pa.Array) -> list[bytes]:
    return values.cast(pa.binary()).to_pylist()


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_B64URL = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8
)


def _fixed_strings(prefix: str, chars: np.ndarray) -> pa.Array:
    """String array from an (n, w) uint8 matrix of ASCII, each row prefixed."""
    n, w = chars.shape
    p = np.frombuffer(prefix.encode(), dtype=np.uint8)
    full = np.empty((n, len(p) + w), dtype=np.uint8)
    full[:, : len(p)] = p
    full[:, len(p) :] = chars
    width = len(p) + w
    big = (n + 1) * width >= 2**31
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64 if big else np.int32)
    return pa.Array.from_buffers(
        pa.large_string() if big else pa.string(),
        n,
        [None, pa.py_buffer(offsets), pa.py_buffer(full)],
    )


def _hex_strings(prefix: str, digests: np.ndarray) -> pa.Array:
    n, w = digests.shape
    chars = np.empty((n, 2 * w), dtype=np.uint8)
    chars[:, 0::2] = _HEX[digests >> 4]
    chars[:, 1::2] = _HEX[digests & 15]
    return _fixed_strings(prefix, chars)


def _b64url_strings(prefix: str, raw: np.ndarray) -> pa.Array:
    """Unpadded base64url of each row of an (n, w) uint8 matrix, vectorized."""
    n, w = raw.shape
    wp = -(-w // 3) * 3
    padded = np.zeros((n, wp), dtype=np.uint8)
    padded[:, :w] = raw
    t = padded.reshape(n, -1, 3).astype(np.uint32)
    word = (t[:, :, 0] << 16) | (t[:, :, 1] << 8) | t[:, :, 2]
    sextets = np.stack(
        [(word >> 18) & 63, (word >> 12) & 63, (word >> 6) & 63, word & 63], axis=2
    ).reshape(n, -1)
    return _fixed_strings(prefix, _B64URL[sextets[:, : (4 * w + 2) // 3]])


def _by_length(values: pa.Array, fn: Callable[[np.ndarray], pa.Array]) -> pa.Array:
    """Apply a fixed-width function to values grouped by byte length; original order kept.

    `fn` gets an (n, L) uint8 matrix of equal-length values and returns n strings.
    """
    binary = values.cast(pa.binary())
    if binary.null_count:
        raise ValueError("_by_length expects non-null values")
    offsets = np.frombuffer(binary.buffers()[1], dtype=np.int32)[
        binary.offset : binary.offset + len(binary) + 1
    ]
    data = (
        np.frombuffer(binary.buffers()[2], dtype=np.uint8)
        if len(binary)
        else np.zeros(0, dtype=np.uint8)
    )
    lengths = np.diff(offsets)
    parts, order = [], []
    for length in np.unique(lengths):
        idx = np.nonzero(lengths == length)[0]
        starts = offsets[:-1][idx]
        matrix = (
            data[starts[:, None] + np.arange(length)[None, :]]
            if length
            else np.zeros((len(idx), 0), dtype=np.uint8)
        )
        parts.append(fn(matrix))
        order.append(idx)
    if not parts:
        return pa.array([], pa.string())
    combined = pa.concat_arrays(parts)
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[np.concatenate(order)] = np.arange(len(values))
    return combined.take(pa.array(inverse))


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
    s = as_string(arr)
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
    if spec.name == ctx.record_key_name and not domain:
        # The record key's digests are computed once per batch (date_shift uses them too).
        return _hex_strings(TOKEN_PREFIX, ctx.record_digests())
    return _map_distinct(as_string(arr), lambda vs: ctx.ops.tokens_array(vs, domain))


def encrypt(arr, spec, ctx):
    domain = spec.params.get("domain", "")
    return _map_distinct(as_string(arr), lambda vs: ctx.ops.encrypt_array(vs, domain))


def generalize(arr, spec, ctx):
    _refuse_out_of_range(arr, spec)
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
    _refuse_out_of_range(arr, spec)
    m = spec.params["max_days"]
    days = np.floor(ctx.shift_fractions() * (2 * m + 1)).astype(np.int64) - m
    if spec.type == "date":
        base = arr.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
        shifted = pa.array(base.astype(np.int64) + days, pa.int32(), mask=_validity(arr))
        return shifted.cast(pa.date32())
    base = arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    shifted = pa.array(base + days * 86_400_000_000, pa.int64(), mask=_validity(arr))
    return shifted.cast(arr.type)


def _refuse_out_of_range(arr: pa.Array, spec: ColumnSpec) -> None:
    bad = out_of_range(arr, spec)
    if bad is not None and bad.any():  # the contract check quarantines these first
        raise DataError(
            f"{spec.action}: column '{spec.name}' has values outside the range it can "
            "transform; the contract check quarantines them (range:<column>)"
        )


def scrub(arr, spec, ctx):
    """Replace PII spans inside free text (transforms.detect.scrub.scrub_array)."""
    from transforms.detect.scrub import scrub_array

    return scrub_array(as_string(arr), analyzer=ctx.detector, ops=ctx.ops, **spec.params)


LDP_KEY_VERSION = 1


def ldp(arr, spec, ctx):
    """Local differential privacy (transforms.ldp.column). With a record key the noise is a keyed
    PRF of (dataset, record-key column, record key, column config, value, key version): reruns
    release the same values; without one, fresh noise from os.urandom."""
    from transforms.ldp.column import apply_ldp, memoized_source
    from transforms.ldp.sources import SecureRandomSource

    params = spec.ldp_params
    if ctx.record_keys is not None:
        if ctx.ops.ldp_key is None:
            raise KeyringError("this keyring has no ldp key; create a new keyring")
        if ctx.dataset is None:
            raise ValueError("memoized ldp needs the dataset name (it keys the noise)")
        source = memoized_source(
            ctx.ops.ldp_key,
            as_string(ctx.record_keys),
            spec.name,
            arr,
            LDP_KEY_VERSION,
            params,
            record_key=ctx.record_key_name,
            dataset=ctx.dataset,
        )
    else:
        source = SecureRandomSource()
    out, bad = apply_ldp(arr, params, source=source)
    if bad.any():  # the contract check quarantines these first; reaching here is a bug
        raise ValueError(f"ldp: column '{spec.name}' has values outside its domain")
    return out


ACTIONS: dict[str, Callable[[pa.Array, ColumnSpec, ActionContext], pa.Array | None]] = {
    "keep": keep,
    "drop": drop,
    "redact": redact,
    "mask": mask,
    "tokenize": tokenize,
    "encrypt": encrypt,
    "generalize": generalize,
    "date_shift": date_shift,
    "ldp": ldp,
    "scrub": scrub,
}
