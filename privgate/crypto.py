"""Keyed crypto primitives over many values at once: HMAC-SHA256, vectorized AES-SIV.

Per-value keyed crypto is the floor of the pipeline's cost, so both work on whole lists or
arrays of values; the column actions (`transforms.actions.KeyedOps`) and memoized LDP noise
(`transforms.ldp`) build on them.

AES-SIV (RFC 5297): per-value `AESSIV.encrypt` costs ~1 us of Python overhead; a column of a
million distinct values spends seconds there. Every step of SIV is AES on 16-byte blocks, so
values of equal length can be processed together: one AES-ECB call over all their blocks per
CBC step (S2V/CMAC) and one for the CTR keystream. The output is bit-identical to
`cryptography`'s `AESSIV` (tests compare them on random inputs of every length class), which is
what decrypts it (`KeyedOps.decrypt`), so `VectorSiv` only ever encrypts.

Only the primitive AES block function comes from `cryptography` (ECB mode is used as the raw
block cipher here, never as an encryption mode for data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_RB = 0x87


def aes_blocks(key: bytes, blocks: np.ndarray) -> np.ndarray:
    """AES-encrypt each 16-byte row of a (n, 16) uint8 array."""
    if len(blocks) == 0:
        return blocks.copy()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out = enc.update(np.ascontiguousarray(blocks).tobytes()) + enc.finalize()
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, 16)


def _dbl(block: np.ndarray) -> np.ndarray:
    """Doubling in GF(2^128) (RFC 5297 dbl) of one (16,) or many (n, 16) blocks."""
    b = block.astype(np.uint16)
    shifted = ((b << 1) & 0xFF).astype(np.uint8)
    carry = (b >> 7).astype(np.uint8)
    shifted[..., :-1] |= carry[..., 1:]
    msb = carry[..., 0]
    shifted[..., -1] ^= (msb * _RB).astype(np.uint8)
    return shifted


def _cmac_one(key: bytes, k1: np.ndarray, k2: np.ndarray, msg: bytes) -> np.ndarray:
    """AES-CMAC of one message (used for the constant parts of S2V)."""
    n = max(1, -(-len(msg) // 16))
    m = np.zeros(n * 16, dtype=np.uint8)
    m[: len(msg)] = np.frombuffer(msg, dtype=np.uint8)
    blocks = m.reshape(n, 16)
    if msg and len(msg) % 16 == 0:
        blocks[-1] ^= k1
    else:
        blocks[-1, len(msg) % 16] = 0x80
        blocks[-1] ^= k2
    x = np.zeros(16, dtype=np.uint8)
    for blk in blocks:
        x = aes_blocks(key, (x ^ blk)[None, :])[0]
    return x


class VectorSiv:
    """AES-SIV encryption with one associated-data item, vectorized by value length.

    Args:
        key: 64-byte AES-SIV key (RFC 5297: first half for S2V/CMAC, second for CTR).
        associated_data: the single associated-data item bound to every value.
    """

    def __init__(self, key: bytes, associated_data: bytes):
        if len(key) != 64:
            raise ValueError("AES-SIV key must be 64 bytes")
        self._mac_key, self._ctr_key = key[:32], key[32:]
        zero = np.zeros((1, 16), dtype=np.uint8)
        self._k1 = _dbl(aes_blocks(self._mac_key, zero)[0])
        self._k2 = _dbl(self._k1)
        d = _cmac_one(self._mac_key, self._k1, self._k2, bytes(16))
        d = _dbl(d) ^ _cmac_one(self._mac_key, self._k1, self._k2, associated_data)
        self._d = d  # S2V state before the plaintext item; constant per (key, AD)

    def __reduce__(self):
        raise TypeError("VectorSiv holds a key and must not be pickled")

    def encrypt_fixed(self, plain: np.ndarray) -> np.ndarray:
        """Encrypt n values of equal length L given as an (n, L) uint8 array.

        Returns:
            (n, 16 + L) uint8 array: synthetic IV followed by the ciphertext.
        """
        n, length = plain.shape
        # S2V final step
        if length >= 16:
            t = plain.copy()
            t[:, length - 16 :] ^= self._d
        else:
            t = np.zeros((n, 16), dtype=np.uint8)
            t[:, :length] = plain
            t[:, length] = 0x80
            t ^= _dbl(self._d)
        v = self._cmac_many(t)
        # CTR with the IV's bits 63 and 31 (from the right) cleared
        q = v.copy()
        q[:, 8] &= 0x7F
        q[:, 12] &= 0x7F
        nblocks = -(-length // 16)
        if nblocks:
            ctr = np.repeat(q, nblocks, axis=0).reshape(n, nblocks, 16)
            low = ctr[:, :, 12:16].copy().view(">u4").reshape(n, nblocks)
            low = low + np.arange(nblocks, dtype=np.uint32)[None, :]
            ctr[:, :, 12:16] = low.astype(">u4").view(np.uint8).reshape(n, nblocks, 4)
            stream = aes_blocks(self._ctr_key, ctr.reshape(-1, 16)).reshape(n, nblocks * 16)
            cipher = plain ^ stream[:, :length]
        else:
            cipher = np.zeros((n, 0), dtype=np.uint8)
        return np.concatenate([v, cipher], axis=1)

    def _cmac_many(self, msgs: np.ndarray) -> np.ndarray:
        """AES-CMAC of n messages of equal length (>= 16 bytes here, as S2V guarantees)."""
        n, length = msgs.shape
        nblocks = -(-length // 16)
        padded = np.zeros((n, nblocks * 16), dtype=np.uint8)
        padded[:, :length] = msgs
        if length % 16 == 0:
            padded[:, -16:] ^= self._k1
        else:
            padded[:, length] = 0x80
            padded[:, -16:] ^= self._k2
        x = np.zeros((n, 16), dtype=np.uint8)
        for i in range(nblocks):
            x = aes_blocks(self._mac_key, x ^ padded[:, i * 16 : (i + 1) * 16])
        return x


try:  # optional C extension (setup.py); the Python path below is the reference
    from privgate import _hmac as _fast_hmac
except ImportError:  # pragma: no cover - depends on the build machine
    _fast_hmac = None


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) over many short messages. Used by tokens, date shifts and
    memoized LDP noise; per-value keyed crypto is the pipeline's floor.

    `joined` runs in C (`privgate._hmac`, OpenSSL's SHA-256, GIL released: ~0.3 us per value)
    when the extension was built, else in Python with the keyed inner/outer states
    precomputed once and copied per message (~1.2 us per value); both are bit-identical."""

    def __init__(self, key: bytes):
        self._key = bytes(key)  # for the C path; this object is never pickled or logged
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __reduce__(self):
        raise TypeError("HMAC states hold a key and must not be pickled")

    def many(self, values: Sequence[bytes], prefix: bytes = b"") -> list[bytes]:
        """HMAC(key, prefix || v) for each v, as 32-byte digests."""
        inner0 = self._inner.copy()
        inner0.update(prefix)

        # map() over a closure with pre-bound copy methods: ~10% faster than a for loop.
        def one(m, icopy=inner0.copy, ocopy=self._outer.copy):
            i = icopy()
            i.update(m)
            o = ocopy()
            o.update(i.digest())
            return o.digest()

        return list(map(one, values))

    def joined(self, values: Sequence[bytes], prefix: bytes = b"") -> bytes:
        """`many`, concatenated (32 bytes per value)."""
        if _fast_hmac is not None:
            return _fast_hmac.joined(self._key, prefix, values)
        return b"".join(self.many(values, prefix))
