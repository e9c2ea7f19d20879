"""Unbiased estimates from locally-private (ldp) columns, for analysts and training code.

Every `ldp` column of a privgate output carries its mechanism parameters in its Parquet
field metadata (`schemas.ldp.LdpSpec.to_metadata`), so an analyst needs only the table:

    >>> import pyarrow.parquet as pq
    >>> from privgate.estimate import estimate_from_metadata
    >>> table = pq.read_table("out/part-0.parquet")
    >>> est = estimate_from_metadata(table["income"], table.schema.field("income").metadata)
    >>> est.mean, est.std_error                       # numeric column
    >>> est = estimate_from_metadata(table["gender"], table.schema.field("gender").metadata)
    >>> dict(zip(est.categories, est.frequencies))     # categorical / bool column

Numeric mechanisms are unbiased in data units, so the mean of the outputs estimates the mean
of the (clipped) true values. Randomized response is de-biased per category:
count_v = (C_v - n q) / (p - q). Nulls are ignored (n counts non-null outputs).
`theoretical_noise_std` and `standard_error` give the figures for the manifest's utility
section without any data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.ldp import LdpSpec, category_domain
from transforms.ldp.mechanisms import (
    MECHANISMS,
    CategoricalMechanism,
    NumericMechanism,
    build_mechanism,
)


@dataclass(frozen=True)
class MeanEstimate:
    """Estimated mean of a numeric ldp column.

    Attributes:
        mean: unbiased estimate of the mean of the clipped true values.
        std_error: standard error from the outputs' sample variance. It includes the spread
            of the true values, so it is exact for the mean of a population the records are
            an iid sample of, and conservative for the mean of these very records.
        theoretical_std_error: worst-case noise-only standard error, from the closed form.
        n: number of non-null outputs used.
    """

    mean: float
    std_error: float
    theoretical_std_error: float
    n: int


@dataclass(frozen=True)
class FrequencyEstimate:
    """Estimated category counts and frequencies of a categorical or bool ldp column.

    Attributes:
        categories: the public categories (False, True for bool columns).
        counts: unbiased count estimates (may be negative or exceed n: do not clip them
            before summing, that would re-introduce bias).
        frequencies: counts / n.
        std_errors: standard errors of `frequencies` (plug-in, Wang et al. 2017).
        n: number of non-null outputs used.
    """

    categories: tuple
    counts: np.ndarray
    frequencies: np.ndarray
    std_errors: np.ndarray
    n: int


def _type_for(mechanism: str, type: str | None) -> str:
    if type is not None:
        return type
    cls = MECHANISMS.get(mechanism)
    if cls is None:
        raise ValueError(f"unknown ldp mechanism '{mechanism}'")
    return cls.value_types[0]


def _mechanism(mechanism, epsilon, bounds, categories, other, type):
    typ = _type_for(mechanism, type)
    spec = LdpSpec(
        type=typ,
        mechanism=mechanism,
        epsilon=epsilon,
        bounds=bounds,
        categories=categories,
        other=other,
    )
    return typ, build_mechanism(spec)


def _non_null(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(np.asarray(values))
    return values.drop_null() if values.null_count else values


def estimate_mean(
    values, *, mechanism: str, epsilon: float, bounds: Sequence[float], type: str | None = None
) -> MeanEstimate:
    """Unbiased mean of a numeric ldp column, with its standard error.

    Args:
        values: the protected column (pyarrow Array/ChunkedArray or numpy array).
        mechanism: mechanism name (piecewise, laplace, duchi, hybrid, geometric).
        epsilon: the epsilon it was released with.
        bounds: the [L, U] it was clipped to.
        type: "int" or "float"; inferred from the mechanism when None (float, except
            geometric).
    Returns:
        MeanEstimate.
    Raises:
        ValueError: a categorical mechanism, bad parameters, or no non-null values.
    """
    _, mech = _mechanism(mechanism, epsilon, bounds, None, None, type)
    if not isinstance(mech, NumericMechanism):
        raise ValueError(f"'{mechanism}' is not a numeric mechanism; use estimate_frequencies")
    y = _non_null(values).to_numpy(zero_copy_only=False).astype(np.float64)
    n = y.shape[0]
    if n == 0:
        raise ValueError("no non-null values to estimate from")
    se = float(np.std(y, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return MeanEstimate(float(np.mean(y)), se, math.sqrt(mech.variance() / n), n)


def estimate_frequencies(
    values, *, mechanism: str, epsilon: float, categories=None, other=None, type: str | None = None
) -> FrequencyEstimate:
    """Unbiased category frequencies of a grr/rr ldp column, with standard errors.

    Args:
        values: the protected column (strings for grr, booleans for rr).
        mechanism: "grr" or "rr".
        epsilon: the epsilon it was released with.
        categories: the category list (grr); `other` as configured.
        other: the out-of-list bucket, if the column had one.
        type: "string" or "bool"; inferred from the mechanism when None.
    Returns:
        FrequencyEstimate, categories in the public order.
    Raises:
        ValueError: a numeric mechanism, bad parameters, no non-null values, or an output
            outside the categories (the column was not produced by this mechanism).
    """
    typ, mech = _mechanism(mechanism, epsilon, None, categories, other, type)
    if not isinstance(mech, CategoricalMechanism):
        raise ValueError(f"'{mechanism}' is not a categorical mechanism; use estimate_mean")
    arr = _non_null(values)
    n = len(arr)
    if n == 0:
        raise ValueError("no non-null values to estimate from")
    if typ == "bool":
        cats: tuple = (False, True)
        idx = pc.cast(arr, pa.bool_()).to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        cats = category_domain(categories, other)
        idx_arr = pc.index_in(pc.cast(arr, pa.string()), value_set=pa.array(cats, pa.string()))
        if idx_arr.null_count:
            raise ValueError("column holds values outside its declared categories")
        idx = idx_arr.to_numpy(zero_copy_only=False).astype(np.int64)
    observed = np.bincount(idx, minlength=len(cats)).astype(np.float64)
    p, q = mech.p, mech.q
    counts = (observed - n * q) / (p - q)
    freqs = counts / n
    # Plug-in variance of the count (Wang et al. 2017): n q(1-q)/(p-q)^2 + n f(1-p-q)/(p-q),
    # with f clipped to [0, 1] only inside the variance.
    f = np.clip(freqs, 0.0, 1.0)
    var_counts = n * (f * p * (1 - p) + (1 - f) * q * (1 - q)) / (p - q) ** 2
    return FrequencyEstimate(cats, counts, freqs, np.sqrt(var_counts) / n, n)


def theoretical_noise_std(
    mechanism: str,
    epsilon: float,
    bounds=None,
    categories=None,
    *,
    other=None,
    type: str | None = None,
) -> float:
    """Worst-case per-record noise standard deviation of a mechanism (closed form).

    Args:
        mechanism: mechanism name.
        epsilon: privacy parameter.
        bounds: [L, U] for numeric mechanisms.
        categories: category list for grr (rr needs none).
        other: the out-of-list bucket, if any.
        type: column type; inferred from the mechanism when None.
    Returns:
        For numeric mechanisms, sqrt(max over [L, U] of Var(output | x)) in data units; for
        grr/rr, the standard deviation of one record's unbiased indicator estimate
        (1[y = v] - q) / (p - q), worst case over categories (frequency units).
    Raises:
        ValueError: unknown mechanism or bad parameters.
    """
    _, mech = _mechanism(mechanism, epsilon, bounds, categories, other, type)
    return math.sqrt(mech.variance())


def standard_error(
    mechanism: str,
    epsilon: float,
    bounds=None,
    categories=None,
    *,
    n: int,
    other=None,
    type: str | None = None,
) -> float:
    """Worst-case noise-only standard error of the column's estimator at n records.

    Args:
        mechanism, epsilon, bounds, categories, other, type: as `theoretical_noise_std`.
        n: number of records (> 0).
    Returns:
        theoretical_noise_std / sqrt(n): of the mean (numeric, data units) or of each
        category's frequency (categorical).
    Raises:
        ValueError: n < 1 or bad parameters.
    """
    if int(n) < 1:
        raise ValueError("n must be >= 1")
    return theoretical_noise_std(
        mechanism, epsilon, bounds, categories, other=other, type=type
    ) / math.sqrt(int(n))


# --------------------------------------------------------------------------- metadata


def estimate_from_metadata(array, metadata: Mapping) -> MeanEstimate | FrequencyEstimate:
    """The right unbiased estimate for an ldp column, given its field metadata.

    Args:
        array: the protected column (pyarrow Array/ChunkedArray or numpy array).
        metadata: the column's field metadata (as written by `LdpSpec.to_metadata`).
    Returns:
        MeanEstimate for numeric columns, FrequencyEstimate for string/bool columns.
    Raises:
        ValueError: metadata missing or invalid.
    """
    spec = LdpSpec.from_metadata(metadata)
    kw = {"mechanism": spec.mechanism, "epsilon": spec.epsilon, "type": spec.type}
    if spec.type in ("int", "float"):
        return estimate_mean(array, bounds=spec.bounds, **kw)
    return estimate_frequencies(array, categories=spec.categories, other=spec.other, **kw)


def ldp_utility(metadata: Mapping, n: int) -> dict[str, float | None]:
    """The manifest's utility figures for one ldp column.

    Args:
        metadata: the column's ldp metadata.
        n: number of released records.
    Returns:
        {"noise_std": per-record worst-case noise std, "std_error": estimator's worst-case
        standard error at n (`standard_error`), or None when nothing was released (n = 0)}.
    """
    std = math.sqrt(build_mechanism(LdpSpec.from_metadata(metadata)).variance())
    return {"noise_std": std, "std_error": std / math.sqrt(int(n)) if int(n) >= 1 else None}
