"""LDP mechanisms: their laws, privacy audits, moments, output grids, and the registry.

Statistical tests draw from `SeededSource` (fixed seeds, so every run sees the same numbers)
and state their confidence; each also has a counterpart showing it rejects a broken
mechanism, so none of them passes vacuously.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from privgate import estimate as est
from schemas.ldp import LdpSpec
from transforms.ldp.column import noise_domain
from transforms.ldp.mechanisms import (
    DEFAULT_MECHANISM,
    GRID_BITS,
    MECHANISMS,
    GeometricMechanism,
    GrrMechanism,
    LaplaceMechanism,
    RrMechanism,
    build_mechanism,
)


class SeededSource:
    """TEST ONLY: reproducible uniforms from numpy's PCG64 with a fixed seed.

    PCG64 is not cryptographic (its state can be recovered from outputs); production code
    uses `SecureRandomSource` or `KeyedPrfSource`, and transforms/ldp/ does not import
    numpy.random at all (checked in test_ldp_sources). This class lives only in the tests.
    """

    def __init__(self, seed: int):
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def uniforms(self, n: int, k: int) -> np.ndarray:
        return self._rng.random((n, k))


FLOAT_BOUNDS = (0.0, 1000.0)
INT_BOUNDS = (17, 90)
NUMERIC = ["piecewise", "laplace", "duchi", "hybrid"]


def numeric(name, eps=1.0, integer=False, bounds=None):
    if name == "geometric":
        return GeometricMechanism(eps, bounds or INT_BOUNDS)
    b = bounds or (INT_BOUNDS if integer else FLOAT_BOUNDS)
    return MECHANISMS[name](eps, b, integer=integer)


# --------------------------------------------------------------------------- RR / GRR laws


def _transition_counts(mech, n_per_row, seed):
    counts = np.zeros((mech.k, mech.k))
    for v in range(mech.k):
        x = np.full(n_per_row, bool(v) if isinstance(mech, RrMechanism) else v)
        y = mech.perturb(x, SeededSource(seed + v)).astype(np.int64)
        counts[v] = np.bincount(y, minlength=mech.k)
    return counts


def _chi2_pvalue(counts, matrix):
    n = counts.sum(axis=1, keepdims=True)
    expected = n * matrix
    chi2 = ((counts - expected) ** 2 / expected).sum()
    dof = matrix.shape[0] * (matrix.shape[1] - 1)
    return stats.chi2.sf(chi2, dof)


@pytest.mark.parametrize(
    "mech",
    [
        RrMechanism(0.5),
        RrMechanism(2.0),
        GrrMechanism(1.0, 3),
        GrrMechanism(2.0, 6),
    ],
    ids=["rr-0.5", "rr-2", "grr-1-k3", "grr-2-k6"],
)
def test_rr_grr_transition_matrix_chi_square(mech):
    counts = _transition_counts(mech, 30_000, seed=11)
    # Correct law accepted at the 1e-3 level...
    assert _chi2_pvalue(counts, mech.transition_matrix()) > 1e-3
    # ...and the same counts reject the law of a mechanism with epsilon off by 0.15.
    wrong = (
        type(mech)(mech.epsilon + 0.15, mech.k)
        if isinstance(mech, GrrMechanism)
        else RrMechanism(mech.epsilon + 0.15)
    )
    assert _chi2_pvalue(counts, wrong.transition_matrix()) < 1e-3


def test_grr_reports_every_other_category_uniformly():
    mech = GrrMechanism(0.1, 5)
    y = mech.perturb(np.full(100_000, 2), SeededSource(5))
    counts = np.bincount(y, minlength=5)
    others = np.delete(counts, 2)
    assert stats.chisquare(others).pvalue > 1e-3
    # The same counts reject a law that favours one of the others by 5% (the test bites).
    skewed = np.array([1.05, 1.0, 1.0, 1.0])
    assert stats.chisquare(others, others.sum() * skewed / skewed.sum()).pvalue < 1e-3


# --------------------------------------------------------------------------- epsilon audit

AUDIT_N = 400_000
AUDIT_ALPHA = 1e-5  # per one-sided Clopper-Pearson bound
AUDIT_MARGIN = 0.06  # the audit must come within this of epsilon (catches over-noising)


def _audit_case(name, eps):
    """(mechanism, input x, neighbour x', worst-case event S as a predicate on outputs)."""
    if name == "rr":
        return RrMechanism(eps), True, False, lambda y: y
    if name == "grr":
        return GrrMechanism(eps, 3), 0, 1, lambda y: y == 0
    mech = numeric(name, eps)
    lo, hi = mech.lower, mech.upper
    # S = {y >= U}: the likelihood ratio between x = U and x' = L is exactly e^eps on it.
    return mech, hi, lo, lambda y: y >= hi


def empirical_epsilon_lower_bound(mech, x, x_prime, event, n=AUDIT_N, alpha=AUDIT_ALPHA):
    """Clopper-Pearson lower bound on ln(P[S|x] / P[S|x']) (confidence >= 1 - 2 alpha)."""
    k1 = int(event(mech.perturb(np.full(n, x), SeededSource(101))).sum())
    k2 = int(event(mech.perturb(np.full(n, x_prime), SeededSource(202))).sum())
    p1_low = stats.beta.ppf(alpha, k1, n - k1 + 1)
    p2_high = stats.beta.ppf(1 - alpha, k2 + 1, n - k2)
    return math.log(p1_low / p2_high)


AUDITED = ["rr", "grr", "laplace", "piecewise", "geometric", "duchi", "hybrid"]


@pytest.mark.parametrize("eps", [0.5, 2.0])
@pytest.mark.parametrize("name", AUDITED)
def test_empirical_epsilon_audit(name, eps):
    mech, x, x_prime, event = _audit_case(name, eps)
    lb = empirical_epsilon_lower_bound(mech, x, x_prime, event)
    assert lb <= eps  # no evidence of leaking more than epsilon
    assert lb >= eps - AUDIT_MARGIN  # and not needlessly noisy


@pytest.mark.parametrize("name", ["rr", "laplace", "piecewise", "geometric"])
@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_epsilon_audit_catches_misstated_epsilon(name, factor):
    eps = 1.0
    # A mechanism that runs at factor * eps while claiming eps (to prove the audit bites).
    lb = empirical_epsilon_lower_bound(*_audit_case(name, eps * factor))
    assert not (eps - AUDIT_MARGIN <= lb <= eps)


# --------------------------------------------------------------------------- numeric laws


def _pm_cdf(y, t, eps):
    """Piecewise mechanism CDF in t units (Wang et al. 2019), written out independently."""
    e2 = math.exp(eps / 2)
    c = (e2 + 1) / (e2 - 1)
    left = (c + 1) / 2 * t - (c - 1) / 2
    right = left + c - 1
    p_in = e2 / (e2 + 1) / (c - 1)
    p_out = 1 / (e2 + 1) / (c + 1)
    y = np.clip(y, -c, c)
    return (
        p_out * (np.minimum(y, left) + c)
        + p_in * np.clip(y - left, 0, right - left)
        + p_out * np.clip(y - right, 0, None)
    )


def _to_t(mech, y):
    return (np.asarray(y, float) - (mech.lower + mech.upper) / 2) / ((mech.upper - mech.lower) / 2)


@pytest.mark.parametrize("t", [-1.0, 0.3, 1.0])
def test_piecewise_output_ks_against_its_law(t):
    eps = 1.0
    mech = numeric("piecewise", eps)
    x = 500 + 500 * t
    y = _to_t(mech, mech.perturb(np.full(100_000, x), SeededSource(7)))
    assert stats.kstest(y, lambda v: _pm_cdf(v, t, eps)).pvalue > 1e-3
    assert stats.kstest(y, lambda v: _pm_cdf(v, t, eps * 1.15)).pvalue < 1e-3


def test_laplace_noise_ks_against_its_law():
    eps = 1.0
    mech = numeric("laplace", eps)
    noise = mech.perturb(np.full(100_000, 300.0), SeededSource(8)) - 300.0
    scale = 2 / eps * 500  # b = 2/eps in t units, half-width 500
    assert stats.kstest(noise, stats.laplace(scale=scale).cdf).pvalue > 1e-3
    assert stats.kstest(noise, stats.laplace(scale=scale * 0.95).cdf).pvalue < 1e-3


def test_geometric_noise_chi_square_against_its_law():
    eps = 1.0
    mech = numeric("geometric", eps)
    x = 50
    z = mech.perturb(np.full(200_000, x), SeededSource(9)) - x
    a = eps / (INT_BOUNDS[1] - INT_BOUNDS[0])  # scipy dlaplace: pmf ~ exp(-a |k|)
    edges = np.arange(-300, 301, 15)

    def pvalue(a_):
        law = stats.dlaplace(a_)
        probs = np.diff(np.concatenate([[0.0], law.cdf(edges[1:-1] - 1), [1.0]]))
        counts = np.bincount(np.searchsorted(edges[1:-1] - 1, z, side="left"), minlength=len(probs))
        return stats.chisquare(counts, probs * len(z)).pvalue

    assert pvalue(a) > 1e-3
    assert pvalue(a * 1.05) < 1e-3


def test_duchi_sign_probability_binomial():
    eps, t = 1.0, 0.4
    mech = numeric("duchi", eps)
    y = mech.perturb(np.full(100_000, 500 + 500 * t), SeededSource(10))
    p_plus = 0.5 + t * (math.exp(eps) - 1) / (2 * (math.exp(eps) + 1))
    k = int((y > 500).sum())
    assert stats.binomtest(k, len(y), p_plus).pvalue > 1e-3
    assert stats.binomtest(k, len(y), p_plus + 0.01).pvalue < 1e-3


# --------------------------------------------------------------------------- moments


MOMENT_CASES = [(m, False) for m in NUMERIC] + [(m, True) for m in NUMERIC] + [("geometric", True)]


@pytest.mark.parametrize("name, integer", MOMENT_CASES)
@pytest.mark.parametrize("t", [-1.0, -0.2, 0.6])
def test_mechanism_unbiased_and_variance_matches_closed_form(name, integer, t):
    mech = numeric(name, 1.0, integer)
    x = mech.lower + (t + 1) / 2 * (mech.upper - mech.lower)
    if integer:
        x = round(x)
    n = 200_000
    y = mech.perturb(np.full(n, x), SeededSource(13)).astype(float)
    var = mech.variance(x)
    z = (y.mean() - x) / math.sqrt(var / n)
    assert abs(z) < 4.5  # unbiased (4.5 sigma, fixed seed)
    # Sample variance within 3% (its relative s.e. is <= 0.6% at n=2e5 for these laws).
    assert y.var(ddof=1) == pytest.approx(var, rel=0.03)


def test_variance_closed_forms_match_field_notes_table():
    # Worst-case per-record variance on t in [-1, 1] (bounds [-1, 1] so units are t units).
    table = {
        1.0: {"laplace": 8.0, "duchi": 4.68, "piecewise": 5.22, "hybrid": 4.29},
        4.0: {"laplace": 0.50, "duchi": 1.08, "piecewise": 0.24, "hybrid": 0.22},
    }
    for eps, row in table.items():
        for name, v in row.items():
            got = est.theoretical_noise_std(name, eps, [-1, 1]) ** 2
            assert got == pytest.approx(v, abs=0.006), (name, eps)


def test_hybrid_is_duchi_below_threshold():
    mech = numeric("hybrid", 0.5)
    duchi = numeric("duchi", 0.5)
    assert mech.variance(100.0) == pytest.approx(duchi.variance(100.0))
    y = mech.perturb(np.full(1000, 100.0), SeededSource(3))
    assert set(np.unique(y)) <= set(duchi.grid().points)


# --------------------------------------------------------------------------- grid


@pytest.mark.parametrize("name, integer", MOMENT_CASES)
def test_outputs_lie_on_the_declared_grid(name, integer):
    mech = numeric(name, 1.0, integer)
    x = np.linspace(mech.lower - 50, mech.upper + 50, 20_000)  # includes clipped values
    y = mech.perturb(np.rint(x) if integer else x, SeededSource(17))
    grid = mech.grid()
    assert grid.contains(y).all()
    if integer:
        assert y.dtype == np.int64
    elif grid.step is not None:
        assert not grid.contains(y + grid.step / 3).any()  # the check can fail
        assert grid.count == 2**GRID_BITS
    lo = grid.origin if grid.step is not None else min(grid.points)
    hi = grid.origin + grid.count * grid.step if grid.step is not None else max(grid.points)
    assert lo <= y.min() and y.max() <= hi


def test_laplace_is_clamped_at_the_declared_tail():
    mech = numeric("laplace", 8.0, bounds=(0.0, 1.0))  # b = 0.25 t: clamp at 3 t
    y = mech.perturb(np.zeros(200_000), SeededSource(19))
    g = mech.grid()
    assert y.max() <= g.origin + g.count * g.step and y.min() >= g.origin


# --------------------------------------------------------------------------- registry


DOMAIN = {
    "int": {"bounds": [17, 90]},
    "float": {"bounds": [0, 1]},
    "string": {"categories": ["a", "b"]},
    "bool": {},
}


def test_each_type_has_its_declared_default():
    assert DEFAULT_MECHANISM == {
        "int": "geometric",
        "float": "piecewise",
        "string": "grr",
        "bool": "rr",
    }
    for typ, name in DEFAULT_MECHANISM.items():
        assert typ in MECHANISMS[name].value_types
        assert type(build_mechanism(LdpSpec(type=typ, epsilon=1.0, **DOMAIN[typ]))).name == name


@pytest.mark.parametrize(
    "kw, message",
    [
        (
            {"type": "float", "bounds": [0, 1], "categories": ["a", "b"]},
            "ldp: categories/other apply to string columns only",
        ),
        ({"type": "int", "other": "o"}, "ldp: categories/other apply to string columns only"),
        ({"type": "float"}, "ldp: float columns need bounds"),
        ({"type": "int", "mechanism": "laplace"}, "ldp: int columns need bounds"),
        ({"type": "string", "bounds": [0, 1]}, "ldp: bounds apply to numeric columns only"),
        ({"type": "string"}, "categories must be a non-empty list"),
        (
            {"type": "bool", "bounds": [0, 1], "other": "o"},
            "ldp: bounds apply to numeric columns only",
        ),
        ({"type": "bool", "categories": ["a", "b"]}, "ldp: bool columns take no categories"),
        ({"type": "bool", "other": "o"}, "ldp: bool columns take no categories"),
        (
            {"type": "float", "mechanism": "grr"},
            "ldp: mechanism 'grr' does not serve float columns",
        ),
        (
            {"type": "float", "mechanism": "gauss"},
            "ldp: unknown mechanism 'gauss' (known: piecewise, laplace, duchi, hybrid, "
            "geometric, grr, rr)",
        ),
    ],
)
def test_build_mechanism_refuses_with_the_exact_message(kw, message):
    with pytest.raises(ValueError) as e:
        build_mechanism(LdpSpec(epsilon=1.0, **kw))
    assert str(e.value) == message


@dataclass(frozen=True, kw_only=True)
class ShiftSpec(LdpSpec):
    """A spec with one new parameter, as `schemas.ldp.LdpSpec` would gain it."""

    shift: float | None = None


class ShiftedLaplace(LaplaceMechanism):
    """A new mechanism taking the new parameter: one class, registered below."""

    name = "shifted"
    parameters = ("bounds", "shift")

    @classmethod
    def from_spec(cls, spec):
        mech = super().from_spec(spec)
        mech.shift = spec.shift
        return mech


def test_a_mechanism_with_a_new_parameter_is_one_class(monkeypatch):
    monkeypatch.setitem(MECHANISMS, ShiftedLaplace.name, ShiftedLaplace)
    spec = ShiftSpec(type="float", mechanism="shifted", epsilon=1.0, bounds=[0, 1], shift=2.0)
    assert build_mechanism(spec).shift == 2.0
    domain = noise_domain("c", spec, record_key="id", dataset="ds")
    assert json.loads(domain)["shift"] == 2.0  # new noise on a change
    with pytest.raises(ValueError, match="^ldp: shift does not apply to mechanism 'laplace'$"):
        build_mechanism(
            ShiftSpec(type="float", mechanism="laplace", epsilon=1.0, bounds=[0, 1], shift=2.0)
        )
