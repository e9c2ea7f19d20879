"""Candidate canaries and their inclusion coins, regenerated from a keyed canary key.

The canary key is derived (HKDF-SHA256, a privgate-specific salt, the dataset as info) from
the keyring's token key inside the process that needs it; it is never passed around. Coin i
is the low bit of HMAC(canary key, "coin", dataset, i): independent fair coins to anyone
without the key. Candidates are drawn from per-column marginals of an input-head sample
(`Profile`), never copied rows: each column independently, from keyed generators seeded per
(column, shard), so any worker regenerates any shard identically.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.errors import DataError
from schemas.canaries import CanarySpec
from schemas.columns import ColumnSpec, Schema
from transforms.arrow import ARROW_TYPES

CANARY_LINE = "canaries"  # key of a shard's count line in the pipeline's _work/stats*.jsonl
SHARD = 4096  # candidates per generated batch; fixed, so shards never depend on workers
ID = "id"  # the candidate's index in `privgate canaries` exports and score files
REFERENCE = "reference"  # secret canaries' exports: True on reference rows
SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32: 5 bits a character
SECRET_LENGTH = 12  # 60 bits
KEY_BITS = 64  # a string record key's candidates: random enough never to meet a real key
MIN_CATEGORY_COUNT = 3  # a categorical value seen fewer times in the sample is never copied
_QUANTILES = 101
_HKDF_SALT = b"privgate canaries v1"


def canary_key(token_key: bytes, dataset: str) -> bytes:
    """The dataset's canary key: HKDF-SHA256 of the keyring's token key (salt and info
    separate it from every other use of that key)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=b"dataset:" + dataset.encode()
    ).derive(token_key)


def _prf(key: bytes, *parts: str | int) -> bytes:
    msg = b"\0".join(p.encode() if isinstance(p, str) else struct.pack(">q", p) for p in parts)
    return hmac.digest(key, msg, hashlib.sha256)


def coins(key: bytes, dataset: str, count: int, start: int = 0) -> np.ndarray:
    """Inclusion coins of candidates start .. count - 1: HMAC(key, "coin", dataset, index)."""
    return np.array([_prf(key, "coin", dataset, i)[0] & 1 for i in range(start, count)], dtype=bool)


def coin_commitment(key: bytes, dataset: str, coin_bits: np.ndarray) -> str:
    """A hiding, binding commitment to the coins for the manifest: HMAC under a key derived
    from the canary key (no one without the keyring can test a guessed coin vector)."""
    commit_key = _prf(key, "commitment-key", dataset)
    packed = np.packbits(np.asarray(coin_bits, dtype=np.uint8)).tobytes()
    msg = dataset.encode() + b"\0" + struct.pack(">q", len(coin_bits)) + packed
    return "hmac-sha256:" + hmac.new(commit_key, msg, hashlib.sha256).hexdigest()


def _rng(key: bytes, *parts: str | int) -> np.random.Generator:
    seed = int.from_bytes(_prf(key, "draw", *parts)[:16], "big")
    return np.random.Generator(np.random.PCG64(seed))


@dataclass(frozen=True)
class Marginal:
    """How one column's candidate values are drawn.

    kind: `categories` (values, weights), `shapes` (character-class patterns of sampled values:
    `A` upper, `a` lower, `9` digit, anything else kept), `quantiles` (numbers, dates and
    timestamps as integers or floats; drawn by interpolation), `bool` (weights[0] = P[True]),
    `above` (a record key: max + 1 + index, unique by construction).
    """

    kind: str
    values: tuple = ()
    weights: tuple = ()
    null_rate: float = 0.0


@dataclass(frozen=True)
class Profile:
    """Per-column marginals of an input-head sample, and the label's values for mislabeled."""

    columns: tuple[tuple[str, Marginal], ...]
    label_values: tuple = ()  # every label value but the most frequent (mislabeled canaries)


_CLASSES = {
    "A": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "a": "abcdefghijklmnopqrstuvwxyz",
    "9": "0123456789",
}


def _shape(v: str) -> str:
    """`Ab-12` -> `Aa-99`: ASCII letters and digits by class, anything else kept."""
    for cls, chars in _CLASSES.items():
        v = v.translate(str.maketrans(chars, cls * len(chars)))
    return v


def _copyable(spec: ColumnSpec) -> bool:
    """Values of this column may be copied (frequent ones only): no PII label and an action
    whose output analysts read anyway (keep, generalize, ldp)."""
    return spec.pii is None and not spec.declaration.pii_key


def _numeric(arr: pa.Array, ctype: str) -> np.ndarray:
    if ctype == "date":
        arr = arr.cast(pa.int32())
    elif ctype == "timestamp":
        arr = arr.cast(pa.int64())
    return arr.to_numpy(zero_copy_only=False)


def _marginal(spec: ColumnSpec, arr: pa.Array, is_record_key: bool) -> Marginal:
    n = len(arr)
    null_rate = arr.null_count / n if n else 0.0
    valid = arr.drop_null()
    if len(valid) == 0:
        return Marginal("null", null_rate=1.0)
    if spec.type == "bool":
        return Marginal(
            "bool", weights=(float(pc.mean(valid.cast(pa.float64())).as_py()),), null_rate=null_rate
        )
    if is_record_key and spec.type == "int":
        return Marginal("above", values=(int(pc.max(valid).as_py()),))
    if spec.type in ("int", "float", "date", "timestamp"):
        q = np.quantile(
            _numeric(valid, spec.type).astype(np.float64), np.linspace(0, 1, _QUANTILES)
        )
        return Marginal("quantiles", values=tuple(float(x) for x in q), null_rate=null_rate)
    declared = spec.params.get("categories") if spec.action == "ldp" else None
    if spec.type == "string" and declared:  # public categories: each possible, as seen (+1)
        counts = Counter(valid.to_pylist())
        w = [counts.get(str(c), 0) + 1 for c in declared]
        return Marginal(
            "categories", tuple(str(c) for c in declared), tuple(x / sum(w) for x in w), null_rate
        )
    if spec.type == "string" and _copyable(spec) and not is_record_key:
        counts = Counter(valid.to_pylist())
        common = sorted((v, c) for v, c in counts.items() if c >= MIN_CATEGORY_COUNT)
        if common:
            total = sum(c for _, c in common)
            return Marginal(
                "categories",
                tuple(v for v, _ in common),
                tuple(c / total for _, c in common),
                null_rate,
            )
    shapes = Counter(_shape(v) for v in valid.to_pylist())
    if is_record_key:  # unique keys: a short shape is lengthened to >= KEY_BITS bits
        lengthened = Counter()
        for k, c in shapes.items():
            lengthened[_long_enough(k)] += c
        shapes = lengthened
    ordered = sorted(shapes.items())
    total = sum(c for _, c in ordered)
    return Marginal(
        "shapes", tuple(s for s, _ in ordered), tuple(c / total for _, c in ordered), null_rate
    )


def _long_enough(shape: str) -> str:
    bits = sum(4.7 if c in "Aa" else 3.3 if c == "9" else 0 for c in shape)
    return shape if bits >= KEY_BITS else shape + "-" + "a" * math.ceil((KEY_BITS - bits) / 4.7)


def _label_values(spec: ColumnSpec, arr: pa.Array) -> tuple:
    """The label values a mislabeled canary may carry: every value seen but the most frequent."""
    values = arr.drop_null().to_pylist()
    domain = spec.params.get("categories") if spec.action == "ldp" else None
    counts = Counter(values)
    if spec.type == "bool":
        domain = [True, False]
    seen = sorted(set(domain or counts), key=lambda v: (-counts.get(v, 0), str(v)))
    if len(seen) < 2:
        raise DataError(
            f"canaries: label column '{spec.name}' has fewer than two values in the input "
            "sample; a mislabeled canary needs another value than the usual one"
        )
    return tuple(sorted(seen[1:], key=str))


def build_profile(head: pa.Table, schema: Schema, spec: CanarySpec) -> Profile:
    """Marginals of the contract-valid head rows (`head`: typed, schema order).

    Raises:
        DataError: no rows to draw from, or a mislabeled label with a single value.
    """
    if head is None or head.num_rows == 0:
        raise DataError("canaries: no contract-valid input rows to draw candidates from")
    cols = tuple(
        (c.name, _marginal(c, head.column(c.name).combine_chunks(), c.name == schema.record_key))
        for c in schema.columns
    )
    label = ()
    if spec.kind == "mislabeled":
        label = _label_values(schema.column(spec.label), head.column(spec.label).combine_chunks())
    return Profile(cols, label)


def _from_shapes(rng: np.random.Generator, shapes: tuple, weights: tuple, n: int) -> list[str]:
    picks = rng.choice(len(shapes), size=n, p=np.asarray(weights))
    out = []
    for k in picks:
        s = shapes[k]
        u = rng.random(len(s))
        out.append(
            "".join(
                _CLASSES[c][int(x * len(_CLASSES[c]))] if c in _CLASSES else c
                for c, x in zip(s, u, strict=True)
            )
        )
    return out


def _draw(m: Marginal, spec: ColumnSpec, rng: np.random.Generator, ids: np.ndarray) -> pa.Array:
    n = len(ids)
    atype = ARROW_TYPES[spec.type]
    if m.kind == "null":
        return pa.nulls(n, atype)
    if m.kind == "above":
        return pa.array(m.values[0] + 1 + ids, pa.int64())
    if m.kind == "bool":
        values = pa.array(rng.random(n) < m.weights[0])
    elif m.kind == "categories":
        picks = rng.choice(len(m.values), size=n, p=np.asarray(m.weights))
        values = pa.array([m.values[k] for k in picks], pa.string())
    elif m.kind == "shapes":
        values = pa.array(_from_shapes(rng, m.values, m.weights, n), pa.string())
    else:  # quantiles
        q = np.asarray(m.values)
        x = np.interp(rng.random(n) * (len(q) - 1), np.arange(len(q)), q)
        if spec.type == "float":
            values = pa.array(x, pa.float64())
        elif spec.type == "int":
            values = pa.array(np.rint(x).astype(np.int64), pa.int64())
        elif spec.type == "date":
            values = pa.array(np.rint(x).astype(np.int32), pa.int32()).cast(pa.date32())
        else:
            values = pa.array(np.rint(x).astype(np.int64), pa.int64()).cast(atype)
    if m.null_rate > 0 and spec.nullable:
        values = pc.if_else(pa.array(rng.random(n) < m.null_rate), pa.nulls(n, atype), values)
    return values.cast(atype)


def secrets(key: bytes, dataset: str, ids: np.ndarray, role: str = "secret") -> list[str]:
    """High-entropy secrets (60 bits of base32) for the given ids; role `reference` draws the
    references from the same format."""
    out = []
    for i in ids:
        d = _prf(key, role, dataset, int(i))
        bits = int.from_bytes(d[:8], "big")
        out.append("".join(SECRET_ALPHABET[(bits >> (5 * j)) & 31] for j in range(SECRET_LENGTH)))
    return out


def candidates(
    key: bytes,
    dataset: str,
    schema: Schema,
    spec: CanarySpec,
    profile: Profile,
    start: int,
    stop: int,
    role: str = "candidate",
) -> pa.Table:
    """Candidates start .. stop - 1 as a typed table in schema order (what the contract check
    yields), drawn column by column from `profile` with keyed generators per (column, shard).

    role `reference` gives the references of secret canaries (ids from `spec.count` on): rows
    drawn the same way, with a reference secret in the field.
    """
    ids = np.arange(start, stop, dtype=np.int64)
    shard = start // SHARD
    marginals = dict(profile.columns)
    arrays = []
    for c in schema.columns:
        rng = _rng(key, dataset, role, c.name, shard)
        if spec.kind == "mislabeled" and c.name == spec.label:
            picks = rng.integers(0, len(profile.label_values), size=len(ids))
            arr = pa.array([profile.label_values[k] for k in picks]).cast(ARROW_TYPES[c.type])
        elif spec.kind == "secret" and c.name == spec.field:
            arr = pa.array(secrets(key, dataset, ids, "secret" if role == "candidate" else role))
        else:
            arr = _draw(marginals[c.name], c, rng, ids)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=list(schema.names))


def shards(count: int, first: int = 0) -> list[tuple[int, int]]:
    """The (start, stop) id ranges `count` rows from id `first` on are generated in
    (references of secret canaries take the ids after the candidates')."""
    stop = first + count
    return [(s, min(s + SHARD, stop)) for s in range(first, stop, SHARD)]
