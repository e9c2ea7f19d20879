"""Local differential privacy: vectorized mechanisms over numpy arrays (pure core, no Beam).

Each record's value is perturbed on its own, so whoever reads the output learns about one
person only what an epsilon-LDP release allows. Design choices, and why:

- **Public domain only.** Numeric values are clipped to the schema's bounds [L, U] and
  categorical values are looked up in the schema's category list; neither is ever derived
  from the data (that would leak the data's extremes). Numeric mechanisms work on
  t = (x - mid) / half in [-1, 1] and map back, so their outputs are unbiased in data units.
- **Cryptographic randomness only.** Every draw is an inverse-CDF transform of uniforms
  taken from a `UniformSource`: `SecureRandomSource` (os.urandom, 53-bit uniforms) for fresh
  noise, `KeyedPrfSource` (HMAC-SHA256) for memoized noise. numpy's generators (PCG64) are
  not cryptographic: their state can be recovered from outputs, and with it the noise.
  Each mechanism takes a fixed number of uniforms per record (`draws`, at most 4) in a
  single `uniforms()` call, so one 32-byte HMAC per record covers every mechanism.
- **Fixed public output grid (Mironov 2012).** Floating-point noise has gaps whose pattern
  depends on the input. Continuous outputs are snapped to the lattice
  `origin + j * step`, j = 0 .. 2**GRID_BITS, spanning the mechanism's output range
  (GRID_BITS = 20: about a millionth of the range, e.g. ~1.0 in data units for income in
  [0, 250000] with piecewise at epsilon 1). For piecewise (and hybrid), every cell then
  collects >= 2**24 distinct 53-bit uniforms for epsilon <= 10, so realized cell
  probabilities match the ideal mechanism's to a relative 2**-24, and so does the
  likelihood-ratio bound. Snapping to the nearest point moves the mean by O(step**2),
  far below any estimator's standard error. Unbounded laws (Laplace, geometric) are
  sampled as differences of two exponential/geometric draws (two uniforms, so a tail
  cell's probability sums over 2**53 values of the second draw instead of hitting the
  coarse tail of a single uniform) and clamped at TAIL_SCALES = 12 noise scales beyond
  the bounds, where the remaining mass (< 3.1e-6 per side) is still resolved. Clamping is
  post-processing, so the guarantee is kept; the bias it adds is below 3.1e-6 noise
  scales. Integer columns use the integers as their grid.
- **Memoized noise.** With a record key, uniforms come from HMAC-SHA256(prf_key,
  noise domain || key version || block || record key || value): re-running on the same data
  releases the same outputs (no new budget spent), and a changed value gets a fresh draw.
  The value fed to the PRF is the mechanism's input (clipped number, category), and the
  noise domain covers column, mechanism, epsilon and bounds, so changing the config draws
  fresh noise rather than correlated noise.

Adding a mechanism = one `Mechanism` subclass + one line in `MECHANISMS`.
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privgate.crypto import HmacSha256

GRID_BITS = 20
TAIL_SCALES = 12.0
HYBRID_MIN_EPSILON = 0.61  # below this Wang et al.'s hybrid is pure Duchi
MAX_GEOMETRIC_SCALE = 2.0**40  # (U - L) / epsilon beyond which floor(E * w) loses integers
PRF_DOMAIN = b"privgate-ldp/v1\0"
UNIFORMS_PER_DIGEST = 4  # 32-byte HMAC digest = 4 x 64-bit words, 53 bits used of each

_TWO_M53 = 2.0**-53
VALUE_TYPES = ("int", "float", "string", "bool")
DEFAULT_MECHANISM = {"int": "geometric", "float": "piecewise", "string": "grr", "bool": "rr"}


# --------------------------------------------------------------------------- uniform sources


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
        column: the noise domain; `memoized_source` passes the column name together with
            the mechanism parameters.
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


def _draw(source: UniformSource, n: int, k: int) -> np.ndarray:
    u = np.asarray(source.uniforms(n, k), dtype=np.float64)
    if u.shape != (n, k):
        raise ValueError(f"uniform source returned shape {u.shape}, expected {(n, k)}")
    return u


# --------------------------------------------------------------------------- output grid


@dataclass(frozen=True)
class OutputGrid:
    """The public set of values a mechanism can output, in data units.

    The lattice `origin + j * step` for j = 0 .. count (when `step` is set), plus `points`.
    """

    origin: float = 0.0
    step: float | None = None
    count: int = 0
    points: tuple[float, ...] = ()

    def contains(self, y: np.ndarray) -> np.ndarray:
        """Boolean mask: which outputs lie exactly on this grid.

        Args:
            y: outputs in data units.
        Returns:
            bool array, True where y equals a lattice value or one of `points`.
        """
        y = np.asarray(y, dtype=np.float64)
        ok = np.isin(y, np.asarray(self.points, dtype=np.float64))
        if self.step is not None:
            j = np.rint((y - self.origin) / self.step)
            ok |= (j >= 0) & (j <= self.count) & (self.origin + j * self.step == y)
        return ok

    def to_dict(self) -> dict:
        """JSON-ready form (for Parquet metadata and the manifest)."""
        return {
            "origin": self.origin,
            "step": self.step,
            "count": self.count,
            "points": list(self.points),
        }


# --------------------------------------------------------------------------- mechanisms


def _check_epsilon(epsilon) -> float:
    eps = float(epsilon)
    if not math.isfinite(eps) or eps <= 0:
        raise ValueError("epsilon must be a finite number > 0")
    return eps


class Mechanism(ABC):
    """An epsilon-LDP randomizer applied to each record independently.

    Class attributes: `name` (registry key), `value_types` (column types it serves),
    `estimator` ("mean" for numeric, "frequency" for categorical), and per instance `draws`
    (uniforms per record, fixed, <= 4).
    """

    name: ClassVar[str]
    value_types: ClassVar[tuple[str, ...]]
    estimator: ClassVar[str]
    draws: int

    def __init__(self, epsilon: float):
        self.epsilon = _check_epsilon(epsilon)

    @abstractmethod
    def perturb(self, values: np.ndarray, source: UniformSource) -> np.ndarray:
        """Perturb each value independently (one `source.uniforms(n, draws)` call)."""

    @abstractmethod
    def variance(self, value=None) -> float:
        """Closed-form per-record variance at `value`, or the worst case when None."""

    @abstractmethod
    def params(self) -> dict:
        """Public parameters (for metadata and messages; never record values)."""


class NumericMechanism(Mechanism):
    """Base for bounded numeric mechanisms: clip to [L, U], map to t in [-1, 1], perturb,
    snap to the grid, map back; integer columns add an unbiased randomized rounding.

    Subclasses implement `_sample_t` (the law in t units), `_t_range` (output range before
    snapping) and `_variance_t` (closed-form variance in t units).

    Estimator: the plain mean of outputs is unbiased for the mean of the clipped inputs.

    Args:
        epsilon: privacy parameter (> 0).
        bounds: (L, U), L < U, from the schema.
        integer: the column is int64; outputs are randomized-rounded to integers.
    Raises:
        ValueError: bad epsilon or bounds.
    """

    value_types = ("float", "int")
    estimator = "mean"
    base_draws: ClassVar[int]

    def __init__(self, epsilon: float, bounds: Sequence[float], *, integer: bool = False):
        super().__init__(epsilon)
        lo, hi = _check_bounds(bounds, integer)
        self.lower, self.upper, self.integer = lo, hi, bool(integer)
        self._mid = (lo + hi) / 2.0
        self._half = (hi - lo) / 2.0
        self.draws = self.base_draws + (1 if self.integer else 0)
        t_lo, t_hi = self._t_range()
        self._t_lo = t_lo
        self._t_step = (t_hi - t_lo) / 2**GRID_BITS
        self._x_origin = self._mid + self._half * t_lo
        self._x_step = self._half * self._t_step

    # -- subclass hooks
    @abstractmethod
    def _sample_t(self, t: np.ndarray, u: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _t_range(self) -> tuple[float, float]: ...

    @abstractmethod
    def _variance_t(self, t2: float) -> float: ...

    def _worst_t2(self) -> float:
        # Variances here are linear in t**2, so the worst case is at t = 0 or |t| = 1.
        return 1.0 if self._variance_t(1.0) >= self._variance_t(0.0) else 0.0

    # -- shared machinery
    def _to_t(self, values: np.ndarray) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        if np.isnan(x).any():
            raise ValueError(f"{self.name}: values must not be NaN")
        x = np.clip(x, self.lower, self.upper)
        return np.clip((x - self._mid) / self._half, -1.0, 1.0)

    def _snap(self, t_out: np.ndarray) -> np.ndarray:
        j = np.rint((t_out - self._t_lo) / self._t_step)
        j = np.clip(j, 0, 2**GRID_BITS).astype(np.int64)
        return self._x_origin + j * self._x_step

    def _round(self, y: np.ndarray, u: np.ndarray) -> np.ndarray:
        # Randomized rounding keeps E[output] = y exactly (nearest rounding would bias the
        # mean near the law's breakpoints); it is post-processing, so epsilon is unchanged.
        f = np.floor(y)
        return (f + (u < (y - f))).astype(np.int64)

    def perturb(self, values: np.ndarray, source: UniformSource) -> np.ndarray:
        """Perturb numeric values.

        Args:
            values: data-unit values (clipped to the bounds here); NaN is refused.
            source: uniform source; called once for (n, draws) uniforms.
        Returns:
            float64 outputs on `grid()`, or int64 when `integer`.
        Raises:
            ValueError: NaN among the values.
        """
        t = self._to_t(values)
        u = _draw(source, t.shape[0], self.draws)
        y = self._output(t, u[:, : self.base_draws])
        return self._round(y, u[:, self.base_draws]) if self.integer else y

    def _output(self, t: np.ndarray, u: np.ndarray) -> np.ndarray:
        return self._snap(self._sample_t(t, u))

    def _grid_float(self) -> OutputGrid:
        return OutputGrid(self._x_origin, self._x_step, 2**GRID_BITS)

    def grid(self) -> OutputGrid:
        """The public grid outputs lie on (integers between the extremes when `integer`)."""
        g = self._grid_float()
        if not self.integer:
            return g
        if g.step is None:
            lo, hi = math.floor(min(g.points)), math.ceil(max(g.points))
        else:
            lo, hi = math.floor(g.origin), math.ceil(g.origin + g.count * g.step)
        return OutputGrid(float(lo), 1.0, hi - lo)

    def variance(self, value=None) -> float:
        """Closed-form per-record output variance in data units.

        Args:
            value: the true (clipped) value; None gives the worst case over [L, U].
        Returns:
            Var(output | value). Integer columns add the randomized rounding term: 1/6 for a
            law spread over many integers (uniform fractional part), 1/4 in the worst case.
        """
        if value is None:
            var = self._variance_t(self._worst_t2())
            rounding = 0.25
        else:
            t = float(self._to_t(np.array([value], dtype=np.float64))[0])
            var = self._variance_t(t * t)
            rounding = 1.0 / 6.0
        return var * self._half**2 + (rounding if self.integer else 0.0)

    def params(self) -> dict:
        return {
            "mechanism": self.name,
            "epsilon": self.epsilon,
            "bounds": [self.lower, self.upper],
            "integer": self.integer,
        }


def _check_bounds(bounds, integer: bool) -> tuple[float, float]:
    if bounds is None or len(bounds) != 2:
        raise ValueError("bounds must be [lower, upper]")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError("bounds must be finite with lower < upper")
    if integer and not (lo.is_integer() and hi.is_integer()):
        raise ValueError("integer bounds must be whole numbers")
    if max(abs(lo), abs(hi)) >= 2.0**52:
        raise ValueError("bounds must be below 2**52 in magnitude")
    return lo, hi


def _exponential(u: np.ndarray) -> np.ndarray:
    # Inverse CDF of Exp(1); 1 - u is exact for 53-bit u, log1p keeps small values precise.
    return -np.log1p(-u)


class PiecewiseMechanism(NumericMechanism):
    """Piecewise mechanism (Wang et al., ICDE 2019); the default for float columns.

    Output in [-C, C], C = (e^(eps/2) + 1) / (e^(eps/2) - 1): uniform on
    [l(t), r(t)] = [(C+1)/2 t - (C-1)/2, l(t) + C - 1] with probability e^(eps/2) /
    (e^(eps/2) + 1), else uniform on the rest. Var(t) = t^2 / (e^(eps/2) - 1) +
    (e^(eps/2) + 3) / (3 (e^(eps/2) - 1)^2). Stays near the true value: a usable feature.
    """

    name = "piecewise"
    base_draws = 2

    def __init__(self, epsilon: float, bounds: Sequence[float], *, integer: bool = False):
        eps = _check_epsilon(epsilon)
        self._em1 = math.expm1(eps / 2)  # e^(eps/2) - 1
        self._c = (self._em1 + 2.0) / self._em1
        self._p_center = (self._em1 + 1.0) / (self._em1 + 2.0)
        super().__init__(eps, bounds, integer=integer)

    def _t_range(self):
        return -self._c, self._c

    def _sample_t(self, t, u):
        c = self._c
        left = (c + 1.0) / 2.0 * t - (c - 1.0) / 2.0
        right = left + c - 1.0
        center = left + u[:, 1] * (c - 1.0)
        s = u[:, 1] * (c + 1.0)  # position along the two outer pieces, laid end to end
        left_len = left + c
        outer = np.where(s < left_len, -c + s, right + (s - left_len))
        return np.where(u[:, 0] < self._p_center, center, outer)

    def _variance_t(self, t2):
        em1 = self._em1
        return t2 / em1 + (em1 + 4.0) / (3.0 * em1 * em1)


class LaplaceMechanism(NumericMechanism):
    """Laplace noise t + b (E1 - E2), b = 2 / eps (sensitivity 2 on [-1, 1]).

    Var(t) = 2 b^2 = 8 / eps^2. Clamped at TAIL_SCALES * b beyond [-1, 1] (see module doc).
    """

    name = "laplace"
    base_draws = 2

    def __init__(self, epsilon: float, bounds: Sequence[float], *, integer: bool = False):
        self._b = 2.0 / _check_epsilon(epsilon)
        super().__init__(epsilon, bounds, integer=integer)

    def _t_range(self):
        reach = 1.0 + TAIL_SCALES * self._b
        return -reach, reach

    def _sample_t(self, t, u):
        # The difference of two Exp(1) draws is Laplace(1); two uniforms resolve the tails
        # far better than one inverse-CDF uniform would.
        return t + self._b * (_exponential(u[:, 0]) - _exponential(u[:, 1]))

    def _variance_t(self, t2):
        return 2.0 * self._b**2


class DuchiMechanism(NumericMechanism):
    """Duchi et al. one-bit mechanism: output +-C, C = (e^eps + 1) / (e^eps - 1), with
    P(+C) = 1/2 + t / (2C). Var(t) = C^2 - t^2. Two output values: fine for a mean, useless
    as a per-record feature.
    """

    name = "duchi"
    base_draws = 1

    def __init__(self, epsilon: float, bounds: Sequence[float], *, integer: bool = False):
        self._cd = 1.0 / math.tanh(_check_epsilon(epsilon) / 2.0)  # (e^eps+1)/(e^eps-1)
        super().__init__(epsilon, bounds, integer=integer)

    def _t_range(self):
        return -self._cd, self._cd

    def _points(self) -> tuple[float, float]:
        return self._mid - self._half * self._cd, self._mid + self._half * self._cd

    def _output(self, t, u):
        lo, hi = self._points()
        return np.where(u[:, 0] < 0.5 + t / (2.0 * self._cd), hi, lo)

    def _sample_t(self, t, u):  # pragma: no cover - _output is overridden
        raise NotImplementedError

    def _grid_float(self):
        return OutputGrid(points=self._points())

    def _variance_t(self, t2):
        return self._cd**2 - t2

    def variance(self, value=None) -> float:
        if not self.integer or value is None:
            return super().variance(value)
        # Two support points: the rounding term is exact, not the smooth-law 1/6.
        t = float(self._to_t(np.array([value], dtype=np.float64))[0])
        p_hi = 0.5 + t / (2.0 * self._cd)
        lo, hi = self._points()
        fl, fh = lo - math.floor(lo), hi - math.floor(hi)
        rounding = p_hi * fh * (1 - fh) + (1 - p_hi) * fl * (1 - fl)
        return self._variance_t(t * t) * self._half**2 + rounding


class HybridMechanism(NumericMechanism):
    """Hybrid mechanism (Wang et al. 2019): piecewise with probability
    a = 1 - e^(-eps/2), else Duchi; pure Duchi for eps <= 0.61.
    Var(t) = a Var_PM(t) + (1 - a) Var_Duchi(t). Outputs: the piecewise grid plus Duchi's
    two points.
    """

    name = "hybrid"
    base_draws = 3

    def __init__(self, epsilon: float, bounds: Sequence[float], *, integer: bool = False):
        eps = _check_epsilon(epsilon)
        self._pm = PiecewiseMechanism(eps, bounds)
        self._duchi = DuchiMechanism(eps, bounds)
        self._alpha = -math.expm1(-eps / 2.0) if eps > HYBRID_MIN_EPSILON else 0.0
        super().__init__(eps, bounds, integer=integer)

    def _t_range(self):
        return self._pm._t_range()

    def _output(self, t, u):
        # Conditional on the branch (chosen by u0), u1 and u2 are still independent uniforms.
        pm = self._pm._output(t, u[:, 1:3])
        duchi = self._duchi._output(t, u[:, 1:2])
        return np.where(u[:, 0] < self._alpha, pm, duchi)

    def _sample_t(self, t, u):  # pragma: no cover - _output is overridden
        raise NotImplementedError

    def _grid_float(self):
        g = self._pm._grid_float()
        return OutputGrid(g.origin, g.step, g.count, self._duchi._points())

    def _variance_t(self, t2):
        a = self._alpha
        return a * self._pm._variance_t(t2) + (1 - a) * self._duchi._variance_t(t2)


class GeometricMechanism(NumericMechanism):
    """Two-sided geometric noise for integers: x + G1 - G2, G ~ Geometric with
    alpha = exp(-eps / (U - L)), sampled as floor(E * (U - L) / eps), E ~ Exp(1).
    P(Z = z) = (1 - alpha) / (1 + alpha) alpha^|z|; Var = 2 alpha / (1 - alpha)^2.
    Outputs are integers clamped at TAIL_SCALES * (U - L) / eps beyond the bounds.
    """

    name = "geometric"
    value_types = ("int",)
    base_draws = 2

    def __init__(self, epsilon: float, bounds: Sequence[float], *, integer: bool = True):
        if not integer:
            raise ValueError("geometric serves int columns only")
        eps = _check_epsilon(epsilon)
        lo, hi = _check_bounds(bounds, True)
        self._w = (hi - lo) / eps
        if self._w > MAX_GEOMETRIC_SCALE:
            raise ValueError(
                "bounds too wide for geometric at this epsilon "
                "((U - L) / epsilon > 2**40); use a float mechanism"
            )
        self._reach = math.ceil(TAIL_SCALES * self._w)
        super().__init__(eps, bounds, integer=True)
        self.draws = self.base_draws  # natively integer: no rounding draw

    def _t_range(self):
        return -1.0, 1.0  # unused: outputs are integers

    def _sample_t(self, t, u):  # pragma: no cover - perturb is overridden
        raise NotImplementedError

    def perturb(self, values: np.ndarray, source: UniformSource) -> np.ndarray:
        """Add two-sided geometric noise to integers (clipped to the bounds first).

        Args:
            values: integer values.
            source: uniform source (one call for (n, 2) uniforms).
        Returns:
            int64 outputs on `grid()`.
        Raises:
            ValueError: NaN among the values.
        """
        x = np.asarray(values)
        if x.dtype.kind == "f" and np.isnan(x).any():
            raise ValueError("geometric: values must not be NaN")
        lo, hi = int(self.lower), int(self.upper)
        x = np.clip(x, lo, hi).astype(np.int64)
        u = _draw(source, x.shape[0], self.draws)
        # Cap before the int cast: anything past the clamp lands on the clamp anyway.
        cap = float(hi - lo + self._reach + 1)
        g = np.floor(np.minimum(_exponential(u) * self._w, cap)).astype(np.int64)
        return np.clip(x + g[:, 0] - g[:, 1], lo - self._reach, hi + self._reach)

    def grid(self) -> OutputGrid:
        """Integers from L - reach to U + reach (reach = ceil(TAIL_SCALES (U - L) / eps))."""
        lo = self.lower - self._reach
        return OutputGrid(float(lo), 1.0, int(self.upper - self.lower) + 2 * self._reach)

    def alpha(self) -> float:
        """The geometric ratio exp(-eps / (U - L))."""
        return math.exp(-1.0 / self._w)

    def variance(self, value=None) -> float:
        a = self.alpha()
        return 2.0 * a / (1.0 - a) ** 2

    def _variance_t(self, t2):
        return self.variance() / self._half**2


class CategoricalMechanism(Mechanism):
    """Base for randomized response over k public categories (indices 0 .. k-1).

    Keeps the true category with probability p and reports each other one with probability
    q = (1 - p) / (k - 1). Estimator: count_v = (C_v - n q) / (p - q).
    """

    estimator = "frequency"

    def __init__(self, epsilon: float, k: int):
        super().__init__(epsilon)
        if int(k) < 2:
            raise ValueError("randomized response needs at least 2 categories")
        self.k = int(k)
        e = math.exp(self.epsilon)
        self.p = e / (e + self.k - 1)
        self.q = 1.0 / (e + self.k - 1)

    def variance(self, value=None) -> float:
        """Per-record variance of the unbiased indicator estimate (1[y=v] - q) / (p - q).

        Args:
            value: the category's true frequency f in [0, 1]; None gives the worst case.
        Returns:
            (f p (1-p) + (1-f) q (1-q)) / (p - q)^2.
        """
        p, q = self.p, self.q
        a, b = p * (1 - p), q * (1 - q)
        num = max(a, b) if value is None else float(value) * a + (1 - float(value)) * b
        return num / (p - q) ** 2

    def transition_matrix(self) -> np.ndarray:
        """k x k matrix M[x, y] = P(output y | input x)."""
        m = np.full((self.k, self.k), self.q)
        np.fill_diagonal(m, self.p)
        return m

    def params(self) -> dict:
        return {"mechanism": self.name, "epsilon": self.epsilon, "k": self.k}


class GrrMechanism(CategoricalMechanism):
    """Generalized randomized response: p = e^eps / (e^eps + k - 1); default for strings.

    Args:
        epsilon: privacy parameter.
        k: number of categories (the public list, including an `other` bucket).
    """

    name = "grr"
    value_types = ("string",)
    draws = 2

    def perturb(self, values: np.ndarray, source: UniformSource) -> np.ndarray:
        """Perturb category indices.

        Args:
            values: int array of indices in [0, k).
            source: uniform source (one call for (n, 2) uniforms).
        Returns:
            int64 array of reported indices.
        Raises:
            ValueError: an index outside [0, k).
        """
        v = np.asarray(values, dtype=np.int64)
        if v.size and (v.min() < 0 or v.max() >= self.k):
            raise ValueError("grr: category index out of range")
        u = _draw(source, v.shape[0], self.draws)
        other = np.minimum(np.floor(u[:, 1] * (self.k - 1)).astype(np.int64), self.k - 2)
        other += other >= v  # skip the true category: uniform over the k - 1 others
        return np.where(u[:, 0] < self.p, v, other)


class RrMechanism(CategoricalMechanism):
    """Warner randomized response for booleans: keep with p = e^eps / (1 + e^eps)."""

    name = "rr"
    value_types = ("bool",)
    draws = 1

    def __init__(self, epsilon: float, k: int = 2):
        super().__init__(epsilon, 2)

    def perturb(self, values: np.ndarray, source: UniformSource) -> np.ndarray:
        """Perturb booleans.

        Args:
            values: bool array.
            source: uniform source (one call for (n, 1) uniforms).
        Returns:
            bool array.
        """
        v = np.asarray(values, dtype=bool)
        u = _draw(source, v.shape[0], self.draws)
        return np.where(u[:, 0] < self.p, v, ~v)


MECHANISMS: dict[str, type[Mechanism]] = {
    "piecewise": PiecewiseMechanism,
    "laplace": LaplaceMechanism,
    "duchi": DuchiMechanism,
    "hybrid": HybridMechanism,
    "geometric": GeometricMechanism,
    "grr": GrrMechanism,
    "rr": RrMechanism,
}


# --------------------------------------------------------------------------- column-level API


def category_domain(categories: Sequence | None, other: str | None = None) -> tuple[str, ...]:
    """The public category list a string column reports into: `categories`, plus `other`
    appended when it names a bucket not already listed.

    Args:
        categories: the schema's categories.
        other: optional bucket for values outside `categories`.
    Returns:
        tuple of category strings.
    Raises:
        ValueError: fewer than 2 categories, or duplicates.
    """
    if not categories:
        raise ValueError("categories must be a non-empty list")
    dom = [str(c) for c in categories]
    if other is not None and str(other) not in dom:
        dom.append(str(other))
    if len(set(dom)) != len(dom):
        raise ValueError("categories must be distinct")
    if len(dom) < 2:
        raise ValueError("at least 2 categories are needed")
    return tuple(dom)


def resolve_mechanism(type: str, mechanism: str | None) -> str:
    """The mechanism name for a column: the configured one, or the type's default.

    Raises:
        ValueError: unknown type or mechanism, or a mechanism that does not serve the type.
    """
    if type not in VALUE_TYPES:
        raise ValueError(f"ldp: unsupported column type '{type}'")
    name = mechanism or DEFAULT_MECHANISM[type]
    cls = MECHANISMS.get(name)
    if cls is None:
        raise ValueError(f"ldp: unknown mechanism '{name}' (known: {', '.join(MECHANISMS)})")
    if type not in cls.value_types:
        raise ValueError(f"ldp: mechanism '{name}' does not serve {type} columns")
    return name


def build_mechanism(
    *, type: str, mechanism: str | None, epsilon: float, bounds=None, categories=None, other=None
) -> Mechanism:
    """Build a mechanism from a column's config.

    Args:
        type: column type: int, float, string or bool.
        mechanism: registry name, or None for the type's default.
        epsilon: privacy parameter (> 0).
        bounds: [L, U] for int/float columns.
        categories: category list for string columns.
        other: optional bucket for out-of-list string values.
    Returns:
        a Mechanism instance.
    Raises:
        ValueError: a missing or misplaced parameter, or an invalid value.
    """
    name = resolve_mechanism(type, mechanism)
    cls = MECHANISMS[name]
    if type in ("int", "float"):
        if categories is not None or other is not None:
            raise ValueError("ldp: categories/other apply to string columns only")
        if bounds is None:
            raise ValueError(f"ldp: {type} columns need bounds")
        return cls(epsilon, bounds, integer=(type == "int"))
    if bounds is not None:
        raise ValueError("ldp: bounds apply to numeric columns only")
    if type == "string":
        return cls(epsilon, len(category_domain(categories, other)))
    if categories is not None or other is not None:
        raise ValueError("ldp: bool columns take no categories")
    return cls(epsilon)


def _validity(values: pa.Array) -> np.ndarray:
    if values.null_count == 0:
        return np.ones(len(values), dtype=bool)
    return values.is_valid().to_numpy(zero_copy_only=False)


def _inputs(values, type: str, bounds, categories, other):
    """Mechanism inputs as numpy plus masks (valid = non-null, bad = to quarantine)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        raise TypeError("values must be a pyarrow Array")
    try:
        return _inputs_unchecked(values, type, bounds, categories, other)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # Arrow's cast errors quote the offending value; ours name only the type.
        raise ValueError(f"ldp: column cannot be read as {type}") from None


def _inputs_unchecked(values: pa.Array, type: str, bounds, categories, other):
    valid = _validity(values)
    bad = np.zeros(len(values), dtype=bool)
    if type == "int":
        x = pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False)
        x = np.clip(x, int(bounds[0]), int(bounds[1]))
    elif type == "float":
        x = pc.fill_null(pc.cast(values, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        bad = np.isnan(x) & valid  # NaN has no place in [L, U]: quarantine, never guess
        x = np.clip(np.where(bad, bounds[0], x), float(bounds[0]), float(bounds[1])) + 0.0
    elif type == "string":
        dom = category_domain(categories, other)
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


def _canonical(x: np.ndarray, type: str, categories, other, use: np.ndarray) -> pa.Array:
    """PRF value encoding of mechanism inputs: 8-byte big-endian numbers, category strings,
    one byte for booleans; empty for rows whose draws are not used."""
    n = x.shape[0]
    if type in ("int", "float"):
        raw = x.astype(">i8" if type == "int" else ">f8").tobytes()
        arr = pa.Array.from_buffers(pa.binary(8), n, [None, pa.py_buffer(raw)])
    elif type == "string":
        arr = pa.array(category_domain(categories, other), pa.string()).take(
            pa.array(x, pa.int64())
        )
    else:
        arr = pa.Array.from_buffers(
            pa.binary(1), n, [None, pa.py_buffer(x.astype(np.uint8).tobytes())]
        )
    arr = pc.cast(arr, pa.binary())
    return pc.if_else(pa.array(use), arr, pa.scalar(b"", pa.binary()))


def noise_domain(
    column: str,
    *,
    type: str,
    mechanism: str | None,
    epsilon: float,
    bounds=None,
    categories=None,
    other=None,
) -> str:
    """Canonical text of everything that shapes a column's noise (for the PRF and ledger).

    Args:
        column: column name.
        type, mechanism, epsilon, bounds, categories, other: the column's ldp config.
    Returns:
        a JSON string; equal configs give equal strings.
    """
    name = resolve_mechanism(type, mechanism)
    doc = {
        "column": column,
        "type": type,
        "mechanism": name,
        "epsilon": repr(_check_epsilon(epsilon)),
        "bounds": None if bounds is None else [repr(float(b)) for b in bounds],
        "categories": None if categories is None else list(category_domain(categories, other)),
        "other": other,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def memoized_source(
    key: bytes,
    record_keys,
    column: str,
    values,
    version: int,
    *,
    type: str,
    mechanism: str | None,
    epsilon: float,
    bounds=None,
    categories=None,
    other=None,
) -> KeyedPrfSource:
    """A KeyedPrfSource for one batch of one column, keyed on the *mechanism input*.

    The PRF sees the clipped number (or the category after `other` mapping), so two raw
    values that the mechanism treats alike share noise, while any change of the effective
    value draws fresh noise. The noise domain includes the column config.

    Args:
        key: PRF key from the keyring.
        record_keys: one record key per row (pyarrow array or list of str).
        column: column name.
        values: the column's values (pyarrow Array), same rows as record_keys.
        version: key version.
        type, mechanism, epsilon, bounds, categories, other: the column's ldp config.
    Returns:
        a KeyedPrfSource to pass to `apply_ldp` with the same `values`.
    Raises:
        ValueError: invalid config or mismatched lengths.
    """
    config = dict(
        type=type,
        mechanism=mechanism,
        epsilon=epsilon,
        bounds=bounds,
        categories=categories,
        other=other,
    )
    build_mechanism(**config)  # validates the config before any value is read
    x, valid, bad = _inputs(values, type, bounds, categories, other)
    enc = _canonical(x, type, categories, other, valid & ~bad)
    return KeyedPrfSource(key, record_keys, noise_domain(column, **config), enc, version)


OUTPUT_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string(), "bool": pa.bool_()}


def apply_ldp(
    values: pa.Array,
    *,
    type: str,
    mechanism: str | None = None,
    epsilon: float,
    bounds=None,
    categories=None,
    other=None,
    source: UniformSource,
) -> tuple[pa.Array, np.ndarray]:
    """Perturb one batch of one column with a local-DP mechanism.

    Nulls stay null. Numbers are clipped to `bounds`. A string outside `categories` maps to
    `other` when given; otherwise it is marked in `bad_mask` (to quarantine) and output as
    null, as is a NaN in a float column. Messages never contain values.

    Args:
        values: the column's values (pyarrow Array or ChunkedArray).
        type: int, float, string or bool; output types are int64, float64, string, bool.
        mechanism: registry name, or None for the type's default (geometric, piecewise,
            grr, rr).
        epsilon: privacy parameter (> 0).
        bounds: [L, U] for numeric columns.
        categories: category list for string columns.
        other: optional bucket for out-of-list strings.
        source: `SecureRandomSource()` for fresh noise, or `memoized_source(...)` built for
            these same rows.
    Returns:
        (perturbed pyarrow Array, bad_mask bool numpy array).
    Raises:
        ValueError: invalid config.
        TypeError: values is not a pyarrow array.
    """
    mech = build_mechanism(
        type=type,
        mechanism=mechanism,
        epsilon=epsilon,
        bounds=bounds,
        categories=categories,
        other=other,
    )
    x, valid, bad = _inputs(values, type, bounds, categories, other)
    y = mech.perturb(x, source)
    mask = ~valid | bad
    if type == "string":
        dom = pa.array(category_domain(categories, other), pa.string())
        out = dom.take(pa.array(y, pa.int64(), mask=mask))
    else:
        out = pa.array(y, OUTPUT_TYPES[type], mask=mask)
    return out, bad
