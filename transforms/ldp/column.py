"""The column-level ldp API: perturb one batch of one column as its `LdpSpec` says.

Nulls stay null; numbers are clipped to the public bounds (NaN counts as the lower bound); a
string outside the public categories maps to `other`, or is marked bad (to quarantine) when
the spec has no `other` bucket. Messages never carry values.

**Memoized noise.** With a record key, uniforms come from HMAC-SHA256(prf_key,
noise domain || key version || block || record key || value): re-running on the same data
releases the same outputs, and a changed value gets a fresh draw. The value fed to the PRF
is the mechanism's input (clipped number, category), and the noise domain covers the
dataset, the record-key column, the column and every mechanism parameter, so changing any
of them draws fresh noise rather than correlated noise (and the ledger charges it).
"""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.ldp import LdpSpec, category_domain
from transforms.ldp.mechanisms import build_mechanism, check_epsilon, resolve_mechanism
from transforms.ldp.sources import KeyedPrfSource, UniformSource

OUTPUT_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string(), "bool": pa.bool_()}


def _validity(values: pa.Array) -> np.ndarray:
    if values.null_count == 0:
        return np.ones(len(values), dtype=bool)
    return values.is_valid().to_numpy(zero_copy_only=False)


def _inputs(values, spec: LdpSpec):
    """Mechanism inputs as numpy plus masks (valid = non-null, bad = to quarantine)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        raise TypeError("values must be a pyarrow Array")
    try:
        return _inputs_unchecked(values, spec)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # Arrow's cast errors quote the offending value; ours name only the type.
        raise ValueError(f"ldp: column cannot be read as {spec.type}") from None


def _inputs_unchecked(values: pa.Array, spec: LdpSpec):
    type, bounds, other = spec.type, spec.bounds, spec.other
    valid = _validity(values)
    bad = np.zeros(len(values), dtype=bool)
    if type == "int":
        x = pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False)
        x = np.clip(x, int(bounds[0]), int(bounds[1]))
    elif type == "float":
        x = pc.fill_null(pc.cast(values, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        # NaN counts as the lower bound: marking it bad would quarantine on a private value.
        x = np.clip(np.where(np.isnan(x), bounds[0], x), float(bounds[0]), float(bounds[1])) + 0.0
    elif type == "string":
        dom = category_domain(spec.categories, other)
        idx = pc.index_in(pc.cast(values, pa.string()), value_set=pa.array(dom, pa.string()))
        idx = pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        missing = (idx < 0) & valid
        if other is not None:
            idx[missing] = dom.index(str(other))
        else:
            bad = missing
        x = np.where(idx < 0, 0, idx)
    else:
        x = pc.fill_null(pc.cast(values, pa.bool_()), False).to_numpy(zero_copy_only=False)
    return x, valid, bad


def _canonical(x: np.ndarray, spec: LdpSpec, use: np.ndarray) -> pa.Array:
    """PRF value encoding of mechanism inputs: 8-byte big-endian numbers, category strings,
    one byte for booleans; empty for rows whose draws are not used."""
    n = x.shape[0]
    if spec.type in ("int", "float"):
        raw = x.astype(">i8" if spec.type == "int" else ">f8").tobytes()
        arr = pa.Array.from_buffers(pa.binary(8), n, [None, pa.py_buffer(raw)])
    elif spec.type == "string":
        arr = pa.array(category_domain(spec.categories, spec.other), pa.string()).take(
            pa.array(x, pa.int64())
        )
    else:
        arr = pa.Array.from_buffers(
            pa.binary(1), n, [None, pa.py_buffer(x.astype(np.uint8).tobytes())]
        )
    arr = pc.cast(arr, pa.binary())
    return pc.if_else(pa.array(use), arr, pa.scalar(b"", pa.binary()))


def prf_inputs(values, spec: LdpSpec) -> pa.Array:
    """The value part of each row's PRF message: the canonical mechanism input.

    Args:
        values: the column's values (pyarrow Array or ChunkedArray).
        spec: the column's ldp parameters.
    Returns:
        a binary array; empty for nulls and bad values (their draws are not used).
    Raises:
        ValueError: invalid config, or values that cannot be read as the column's type.
    """
    build_mechanism(spec)  # validates the config before any value is read
    x, valid, bad = _inputs(values, spec)
    return _canonical(x, spec, valid & ~bad)


def noise_domain(column: str, spec: LdpSpec, *, record_key: str, dataset: str) -> str:
    """Canonical text of everything that shapes a column's noise (for the PRF and ledger).

    Every field of the spec is in it (a new parameter joins by itself), with the mechanism
    resolved, epsilon and bounds as exact reprs and the categories as the public domain, and
    so are the dataset and the record-key column: keying the same rows on another column, or
    releasing them as another dataset, draws independent noise.

    Args:
        column: column name.
        spec: the column's ldp parameters.
        record_key: the schema's record-key column.
        dataset: the run's dataset name.
    Returns:
        a JSON string; equal configs give equal strings.
    """
    doc = {f.name: getattr(spec, f.name) for f in fields(spec)}
    doc.update(
        column=column,
        record_key=record_key,
        dataset=dataset,
        mechanism=resolve_mechanism(spec.type, spec.mechanism),
        epsilon=repr(check_epsilon(spec.epsilon)),
        bounds=None if spec.bounds is None else [repr(float(b)) for b in spec.bounds],
        categories=(
            None if spec.categories is None else list(category_domain(spec.categories, spec.other))
        ),
    )
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def memoized_source(
    key: bytes,
    record_keys,
    column: str,
    values,
    version: int,
    spec: LdpSpec,
    *,
    record_key: str,
    dataset: str,
) -> KeyedPrfSource:
    """A KeyedPrfSource for one batch of one column, keyed on the *mechanism input*.

    The PRF sees the clipped number (or the category after `other` mapping), so two raw
    values that the mechanism treats alike share noise, while any change of the effective
    value draws fresh noise. The noise domain (`noise_domain`) includes the column config,
    the record-key column and the dataset.

    Args:
        key: PRF key from the keyring.
        record_keys: one record key per row (pyarrow array or list of str).
        column: column name.
        values: the column's values (pyarrow Array), same rows as record_keys.
        version: key version.
        spec: the column's ldp parameters.
        record_key: the name of the record-key column.
        dataset: the run's dataset name.
    Returns:
        a KeyedPrfSource to pass to `apply_ldp` with the same `values`.
    Raises:
        ValueError: invalid config or mismatched lengths.
    """
    enc = prf_inputs(values, spec)
    domain = noise_domain(column, spec, record_key=record_key, dataset=dataset)
    return KeyedPrfSource(key, record_keys, domain, enc, version)


def apply_ldp(
    values: pa.Array, spec: LdpSpec, *, source: UniformSource
) -> tuple[pa.Array, np.ndarray]:
    """Perturb one batch of one column with a local-DP mechanism.

    Nulls stay null. Numbers are clipped to `bounds`, and NaN counts as the lower bound. A
    string outside `categories` maps to `other` when given; otherwise it is marked in
    `bad_mask` (the contract stage quarantines such rows first, under
    `out_of_domain: quarantine`) and output as null. Messages never contain values.

    Args:
        values: the column's values (pyarrow Array or ChunkedArray).
        spec: the column's ldp parameters; output types are int64, float64, string, bool
            for int, float, string, bool columns, and a spec without a mechanism takes the
            type's default (geometric, piecewise, grr, rr).
        source: `SecureRandomSource()` for fresh noise, or `memoized_source(...)` built for
            these same rows.
    Returns:
        (perturbed pyarrow Array, bad_mask bool numpy array).
    Raises:
        ValueError: invalid config.
        TypeError: values is not a pyarrow array.
    """
    mech = build_mechanism(spec)
    x, valid, bad = _inputs(values, spec)
    y = mech.perturb(x, source)
    mask = ~valid | bad
    if spec.type == "string":
        dom = pa.array(category_domain(spec.categories, spec.other), pa.string())
        out = dom.take(pa.array(y, pa.int64(), mask=mask))
    else:
        out = pa.array(y, OUTPUT_TYPES[spec.type], mask=mask)
    return out, bad
