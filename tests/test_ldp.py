"""Local DP core: laws, privacy audits, estimators, memoization, randomness source, ledger.

Statistical tests draw from `SeededSource` (fixed seeds, so every run sees the same numbers)
and state their confidence; each also has a counterpart showing it rejects a broken
mechanism, so none of them passes vacuously.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import hmac
import json
import math
import os
import pickle
import random
import stat

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from privgate import estimate as est
from privgate.errors import PrivgateError
from privgate.ledger import BudgetExceeded, EpsilonLedger, LedgerError, ledger_path_for
from transforms import ldp


class SeededSource:
    """TEST ONLY: reproducible uniforms from numpy's PCG64 with a fixed seed.

    PCG64 is not cryptographic (its state can be recovered from outputs); production code
    uses `ldp.SecureRandomSource` or `ldp.KeyedPrfSource`, and transforms/ldp.py does not
    import numpy.random at all (checked below). This class lives only in the tests.
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
        return ldp.GeometricMechanism(eps, bounds or INT_BOUNDS)
    b = bounds or (INT_BOUNDS if integer else FLOAT_BOUNDS)
    return ldp.MECHANISMS[name](eps, b, integer=integer)


# --------------------------------------------------------------------------- randomness


def test_secure_source_gives_53_bit_uniforms():
    u = ldp.SecureRandomSource().uniforms(50_000, 3)
    assert u.shape == (50_000, 3) and u.dtype == np.float64
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.all(u * 2.0**53 == np.floor(u * 2.0**53))  # exact multiples of 2**-53
    # A broken source (constant, truncated bits, shared columns) fails these at 1e-6.
    for j in range(3):
        assert stats.kstest(u[:, j], "uniform").pvalue > 1e-6
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 5 / math.sqrt(50_000)


def _all_columns():
    """(type, mechanism, values, kwargs) for every mechanism through apply_ldp."""
    n = 1000
    ages = pa.array(np.arange(n) % 80 + 10)
    income = pa.array(np.linspace(-10.0, 300_000.0, n))
    cases = [("int", "geometric", ages, {"bounds": [17, 90]})]
    for m in NUMERIC:
        cases.append(("float", m, income, {"bounds": [0, 250_000]}))
        cases.append(("int", m, ages, {"bounds": [17, 90]}))
    cases.append(
        (
            "string",
            "grr",
            pa.array(["female", "male", "other", "male"] * 250),
            {"categories": ["female", "male", "other"]},
        )
    )
    cases.append(("bool", "rr", pa.array([True, False] * 500), {}))
    return cases


@pytest.mark.parametrize(
    "typ, mech, values, kw", _all_columns(), ids=lambda c: c if isinstance(c, str) else None
)
def test_mechanisms_draw_only_from_os_urandom(monkeypatch, typ, mech, values, kw):
    def refuse(*a, **k):
        raise AssertionError("non-cryptographic generator used")

    for name in dir(np.random):
        if not name.startswith("_") and callable(getattr(np.random, name)):
            monkeypatch.setattr(np.random, name, refuse)
    for name in (
        "random",
        "uniform",
        "randint",
        "randrange",
        "getrandbits",
        "choice",
        "choices",
        "gauss",
        "normalvariate",
        "expovariate",
        "shuffle",
        "sample",
    ):
        monkeypatch.setattr(random, name, refuse)
    calls = []
    real = os.urandom

    def spy(size):
        calls.append(size)
        return real(size)

    monkeypatch.setattr(os, "urandom", spy)
    out, _ = ldp.apply_ldp(
        values, type=typ, mechanism=mech, epsilon=1.0, source=ldp.SecureRandomSource(), **kw
    )
    draws = ldp.build_mechanism(type=typ, mechanism=mech, epsilon=1.0, **kw).draws
    assert calls == [8 * len(values) * draws]  # all the noise, from the OS CSPRNG
    assert len(out) == len(values)


def test_production_module_imports_no_numpy_or_python_prng():
    tree = ast.parse(open(ldp.__file__).read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in ("random", "numpy.random")]
        elif isinstance(node, ast.ImportFrom):
            if node.module in ("random", "numpy.random") or (
                node.module == "numpy" and any(a.name == "random" for a in node.names)
            ):
                found.append(node.module)
        elif isinstance(node, ast.Attribute) and node.attr in ("random", "default_rng"):
            found.append(ast.unparse(node))
    assert found == []


@pytest.mark.parametrize("name", list(ldp.MECHANISMS))
def test_each_mechanism_takes_its_draws_in_one_call(name):
    class Counting:
        def __init__(self):
            self.calls = []
            self.inner = SeededSource(0)

        def uniforms(self, n, k):
            self.calls.append((n, k))
            return self.inner.uniforms(n, k)

    if name == "grr":
        mech, x = ldp.GrrMechanism(1.0, 3), np.array([0, 1, 2, 1])
    elif name == "rr":
        mech, x = ldp.RrMechanism(1.0), np.array([True, False, True, True])
    else:
        mech, x = numeric(name, integer=True), np.array([17, 40, 90, 55])
    src = Counting()
    mech.perturb(x, src)
    assert src.calls == [(4, mech.draws)]
    assert mech.draws <= ldp.UNIFORMS_PER_DIGEST  # one HMAC per record when memoized


# --------------------------------------------------------------------------- RR / GRR laws


def _transition_counts(mech, n_per_row, seed):
    counts = np.zeros((mech.k, mech.k))
    for v in range(mech.k):
        x = np.full(n_per_row, bool(v) if isinstance(mech, ldp.RrMechanism) else v)
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
        ldp.RrMechanism(0.5),
        ldp.RrMechanism(2.0),
        ldp.GrrMechanism(1.0, 3),
        ldp.GrrMechanism(2.0, 6),
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
        if isinstance(mech, ldp.GrrMechanism)
        else ldp.RrMechanism(mech.epsilon + 0.15)
    )
    assert _chi2_pvalue(counts, wrong.transition_matrix()) < 1e-3


def test_grr_reports_every_other_category_uniformly():
    mech = ldp.GrrMechanism(0.1, 5)
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
        return ldp.RrMechanism(eps), True, False, lambda y: y
    if name == "grr":
        return ldp.GrrMechanism(eps, 3), 0, 1, lambda y: y == 0
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
        assert grid.count == 2**ldp.GRID_BITS
    lo = grid.origin if grid.step is not None else min(grid.points)
    hi = grid.origin + grid.count * grid.step if grid.step is not None else max(grid.points)
    assert lo <= y.min() and y.max() <= hi


def test_laplace_is_clamped_at_the_declared_tail():
    mech = numeric("laplace", 8.0, bounds=(0.0, 1.0))  # b = 0.25 t: clamp at 3 t
    y = mech.perturb(np.zeros(200_000), SeededSource(19))
    g = mech.grid()
    assert y.max() <= g.origin + g.count * g.step and y.min() >= g.origin


# --------------------------------------------------------------------------- estimators


ESTIMATOR_REPEATS = 200
ESTIMATOR_N = 2000


def _z_scores_mean(name, integer, population):
    mech = numeric(name, 1.0, integer)
    typ = "int" if integer or name == "geometric" else "float"
    truth = float(np.mean(np.clip(population, mech.lower, mech.upper)))
    src = SeededSource(23)
    z = []
    for _ in range(ESTIMATOR_REPEATS):
        y = mech.perturb(population, src)
        e = est.estimate_mean(
            pa.array(y), mechanism=name, epsilon=1.0, bounds=[mech.lower, mech.upper], type=typ
        )
        z.append((e.mean - truth) / e.std_error)
    return np.array(z)


@pytest.mark.parametrize("name, integer", MOMENT_CASES)
def test_mean_estimator_unbiased_with_calibrated_standard_error(name, integer):
    mech = numeric(name, 1.0, integer)
    x = mech.lower + 0.3 * (mech.upper - mech.lower)
    population = np.full(ESTIMATOR_N, round(x) if integer else x)
    z = _z_scores_mean(name, integer, population)
    assert abs(z.mean()) < 4 / math.sqrt(ESTIMATOR_REPEATS)
    assert 0.82 < z.std() < 1.18  # the reported s.e. is the real spread


@pytest.mark.parametrize("name", ["piecewise", "geometric"])
def test_mean_estimator_on_mixed_values_is_unbiased_and_conservative(name):
    integer = name == "geometric"
    mech = numeric(name, 1.0, integer)
    pop = np.linspace(mech.lower - 10, mech.upper + 10, ESTIMATOR_N)
    z = _z_scores_mean(name, integer, np.rint(pop) if integer else pop)
    assert abs(z.mean()) < 4 / math.sqrt(ESTIMATOR_REPEATS)
    assert z.std() < 1.1


@pytest.mark.parametrize(
    "mechanism, cats, truth",
    [
        ("grr", ["female", "male", "other"], [0.5, 0.3, 0.2]),
        ("grr", ["a", "b", "c", "d", "e"], [0.05, 0.05, 0.1, 0.2, 0.6]),
        ("rr", None, [0.8, 0.2]),
    ],
)
def test_frequency_estimator_unbiased_with_calibrated_standard_error(mechanism, cats, truth):
    n = ESTIMATOR_N
    counts = np.round(np.array(truth) * n).astype(int)
    idx = np.repeat(np.arange(len(truth)), counts)
    if mechanism == "rr":
        values, typ = pa.array(idx.astype(bool)), "bool"
    else:
        values, typ = pa.array(np.array(cats)[idx]), "string"
    src = SeededSource(29)
    z = []
    for _ in range(ESTIMATOR_REPEATS):
        out, bad = ldp.apply_ldp(
            values, type=typ, mechanism=mechanism, epsilon=1.0, categories=cats, source=src
        )
        assert not bad.any()
        e = est.estimate_frequencies(
            out, mechanism=mechanism, epsilon=1.0, categories=cats, type=typ
        )
        z.append((e.frequencies - counts / n) / e.std_errors)
        assert e.counts.sum() == pytest.approx(n)
    z = np.array(z)
    assert np.all(np.abs(z.mean(axis=0)) < 4 / math.sqrt(ESTIMATOR_REPEATS))
    assert np.all((z.std(axis=0) > 0.82) & (z.std(axis=0) < 1.18))


def test_estimators_refuse_the_wrong_kind_of_mechanism():
    with pytest.raises(ValueError):
        est.estimate_mean(pa.array([1.0]), mechanism="grr", epsilon=1.0, bounds=None)
    with pytest.raises(ValueError):
        est.estimate_frequencies(pa.array([1.0]), mechanism="laplace", epsilon=1.0)
    with pytest.raises(ValueError, match="outside its declared categories"):
        est.estimate_frequencies(
            pa.array(["x"]), mechanism="grr", epsilon=1.0, categories=["a", "b"]
        )


def test_metadata_round_trip_through_parquet(tmp_path):
    src = SeededSource(31)
    n = 5000
    age = pa.array(np.arange(n) % 70 + 18)
    gender = pa.array(np.array(["female", "male", "x"])[np.arange(n) % 3])
    smoker = pa.array(np.arange(n) % 4 == 0)
    cols = {
        "age": dict(type="int", mechanism=None, epsilon=1.0, bounds=[17, 90]),
        "gender": dict(
            type="string", mechanism=None, epsilon=1.0, categories=["female", "male"], other="other"
        ),
        "smoker": dict(type="bool", mechanism=None, epsilon=0.5),
    }
    arrays, fields = [], []
    for name, raw in (("age", age), ("gender", gender), ("smoker", smoker)):
        out, _ = ldp.apply_ldp(raw, source=src, **cols[name])
        md = est.ldp_metadata(**cols[name])
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in md.items())
        arrays.append(out)
        fields.append(pa.field(name, out.type, metadata=md))
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)
    table = pq.read_table(path)
    schema = table.schema
    e_age = est.estimate_from_metadata(table["age"], schema.field("age").metadata)
    assert abs(e_age.mean - float(np.mean(np.clip(age, 17, 90)))) < 4 * e_age.std_error
    e_gender = est.estimate_from_metadata(table["gender"], schema.field("gender").metadata)
    assert e_gender.categories == ("female", "male", "other")
    assert np.all(np.abs(e_gender.frequencies - 1 / 3) < 4 * e_gender.std_errors)
    e_smoker = est.estimate_from_metadata(table["smoker"], schema.field("smoker").metadata)
    assert abs(e_smoker.frequencies[1] - 0.25) < 4 * e_smoker.std_errors[1]
    util = est.ldp_utility(schema.field("age").metadata, n)
    assert util["std_error"] == pytest.approx(util["noise_std"] / math.sqrt(n))
    prm = est.parse_ldp_metadata(schema.field("age").metadata)
    assert util["std_error"] == pytest.approx(
        est.standard_error(prm["mechanism"], 1.0, [17, 90], n=n, type="int")
    )
    assert est.ldp_utility(schema.field("age").metadata, 0) == {
        "noise_std": util["noise_std"],
        "std_error": None,  # no released record: no estimate, not the n = 1 figure
    }
    assert util["noise_std"] == pytest.approx(
        math.sqrt(2 * math.exp(-1 / 73)) / (1 - math.exp(-1 / 73))
    )
    grid = json.loads(schema.field("age").metadata[b"privgate.ldp.grid"])
    assert grid["step"] == 1.0
    with pytest.raises(ValueError):
        est.estimate_from_metadata(table["age"], {})


def test_standard_error_scales_with_n():
    s1 = est.standard_error("piecewise", 1.0, [0, 250_000], n=100)
    s2 = est.standard_error("piecewise", 1.0, [0, 250_000], n=10_000)
    assert s1 == pytest.approx(10 * s2)
    assert est.standard_error("grr", 1.0, categories=["a", "b", "c"], n=1) > 0


# --------------------------------------------------------------------------- apply_ldp


@pytest.mark.parametrize(
    "typ, values, kw, arrow_type",
    [
        ("int", [20, None, 95, 5], {"bounds": [17, 90]}, pa.int64()),
        ("int", [20, None, 95, 5], {"bounds": [17, 90], "mechanism": "piecewise"}, pa.int64()),
        ("float", [1.5, None, 3e9], {"bounds": [0, 250_000]}, pa.float64()),
        ("string", ["male", None, "female"], {"categories": ["female", "male"]}, pa.string()),
        ("bool", [True, None, False], {}, pa.bool_()),
    ],
)
def test_apply_ldp_keeps_types_and_nulls(typ, values, kw, arrow_type):
    arr = pa.array(values)
    out, bad = ldp.apply_ldp(arr, type=typ, epsilon=1.0, source=SeededSource(37), **kw)
    assert out.type == arrow_type and len(out) == len(arr)
    assert out.is_null().to_pylist() == arr.is_null().to_pylist()
    assert not bad.any()


def test_apply_ldp_marks_out_of_category_values_bad_unless_other():
    arr = pa.chunked_array([["female", "SECRET-VALUE"], [None, "male"]])
    out, bad = ldp.apply_ldp(
        arr, type="string", epsilon=1.0, categories=["female", "male"], source=SeededSource(41)
    )
    assert bad.tolist() == [False, True, False, False]
    assert out.is_null().to_pylist() == [False, True, True, False]
    out, bad = ldp.apply_ldp(
        arr,
        type="string",
        epsilon=50.0,
        categories=["female", "male"],
        other="other",
        source=SeededSource(41),
    )
    assert not bad.any()
    assert out.to_pylist() == ["female", "other", None, "male"]  # eps 50: kept w.p. ~1


def test_apply_ldp_quarantines_nan_and_clips_infinities():
    arr = pa.array([float("nan"), float("inf"), -float("inf")])
    out, bad = ldp.apply_ldp(
        arr, type="float", epsilon=1.0, bounds=[0, 10], source=SeededSource(43)
    )
    assert bad.tolist() == [True, False, False]
    assert out.is_null().to_pylist() == [True, False, False]
    assert np.isfinite(out.to_numpy(zero_copy_only=False)[1:]).all()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"type": "float", "mechanism": "geometric", "bounds": [0, 1]}, "does not serve"),
        ({"type": "bool", "mechanism": "grr"}, "does not serve"),
        ({"type": "float", "mechanism": "gaussian", "bounds": [0, 1]}, "unknown mechanism"),
        ({"type": "float"}, "need bounds"),
        ({"type": "float", "bounds": [5, 5]}, "lower < upper"),
        ({"type": "int", "bounds": [0.5, 9]}, "whole numbers"),
        ({"type": "string", "categories": ["a"]}, "at least 2"),
        ({"type": "string", "categories": ["a", "a"]}, "distinct"),
        ({"type": "bool", "epsilon": 0.0}, "epsilon"),
        ({"type": "bool", "epsilon": float("nan")}, "epsilon"),
        ({"type": "date", "bounds": [0, 1]}, "unsupported column type"),
    ],
)
def test_apply_ldp_rejects_bad_config(kw, match):
    kw = {"epsilon": 1.0, **kw}
    with pytest.raises(ValueError, match=match):
        ldp.apply_ldp(pa.array([1]), source=SeededSource(0), **kw)


def test_errors_never_carry_values():
    with pytest.raises(ValueError) as e:
        ldp.GrrMechanism(1.0, 3).perturb(np.array([7654321]), SeededSource(0))
    assert "7654321" not in str(e.value)
    with pytest.raises(ValueError) as e:
        numeric("laplace").perturb(np.array([float("nan"), 1234.5]), SeededSource(0))
    assert "1234.5" not in str(e.value)
    # Arrow's own cast errors quote the value; apply_ldp replaces them.
    for typ, arr in (
        ("int", pa.array([2**64 - 7], pa.uint64())),
        ("float", pa.array(["98765-secret"])),
    ):
        with pytest.raises(ValueError) as e:
            ldp.apply_ldp(arr, type=typ, epsilon=1.0, bounds=[0, 9], source=SeededSource(0))
        assert "secret" not in str(e.value) and str(2**64 - 7) not in str(e.value)


# --------------------------------------------------------------------------- memoization

KEY = bytes(range(32))


def prf(key=KEY, rks=("r1", "r2", "r3"), column="age", values=("30", "40", "50"), version=1, k=2):
    return ldp.KeyedPrfSource(key, list(rks), column, list(values), version).uniforms(len(rks), k)


def test_prf_source_same_inputs_same_uniforms_changed_value_fresh():
    base = prf()
    assert np.array_equal(base, prf())
    changed = prf(values=("30", "41", "50"))
    assert np.array_equal(changed[[0, 2]], base[[0, 2]])
    assert not np.any(changed[1] == base[1])
    for other in (prf(key=bytes(32)), prf(version=2), prf(column="income")):
        assert not np.any(other == base)


def test_prf_source_encoding_is_unambiguous():
    a = prf(rks=("ab",), values=("c",))
    b = prf(rks=("a",), values=("bc",))
    assert not np.any(a == b)


def test_prf_source_is_hmac_sha256_and_expands_blocks():
    src = ldp.KeyedPrfSource(KEY, ["r1"], "age", ["30"], 3)
    u = src.uniforms(1, 6)
    assert np.array_equal(u[:, :4], src.uniforms(1, 4))
    for block in (0, 1):
        msg = (
            ldp.PRF_DOMAIN
            + b"3:age"
            + (3).to_bytes(8, "big")
            + block.to_bytes(4, "big")
            + b"2:r1:30"
        )
        words = np.frombuffer(hmac.new(KEY, msg, hashlib.sha256).digest(), dtype=">u8")
        expect = (words >> np.uint64(11)).astype(float) * 2.0**-53
        got = u[0, 4 * block : 4 * block + 4]
        assert np.array_equal(got, expect[: len(got)])


def test_prf_uniforms_are_uniform_and_independent():
    n = 20_000
    u = ldp.KeyedPrfSource(KEY, [f"r{i}" for i in range(n)], "c", ["v"] * n, 1).uniforms(n, 4)
    for j in range(4):
        assert stats.kstest(u[:, j], "uniform").pvalue > 1e-4
    assert abs(np.corrcoef(u[:, 0], u[:, 3])[0, 1]) < 5 / math.sqrt(n)


def test_prf_source_refuses_pickling_and_hides_key():
    src = ldp.KeyedPrfSource(KEY, ["r1"], "age", ["30"], 1)
    with pytest.raises(TypeError):
        pickle.dumps(src)
    with pytest.raises(TypeError):
        copy.deepcopy(src)
    assert KEY.hex() not in repr(src) and "r1" not in repr(src)
    with pytest.raises(ValueError):
        ldp.KeyedPrfSource(b"short", ["r1"], "age", ["30"], 1)
    with pytest.raises(ValueError):
        ldp.KeyedPrfSource(KEY, ["r1", "r2"], "age", ["30"], 1)
    with pytest.raises(ValueError):
        src.uniforms(2, 1)


def _memo_run(values, key=KEY, epsilon=1.0, rks=None, column="income", **cfg):
    cfg = {"type": "float", "mechanism": "piecewise", "bounds": [0, 250_000], **cfg}
    rks = rks or [f"c{i}" for i in range(len(values))]
    arr = pa.array(values)
    src = ldp.memoized_source(key, rks, column, arr, 1, epsilon=epsilon, **cfg)
    return ldp.apply_ldp(arr, epsilon=epsilon, source=src, **cfg)[0].to_pylist()


def test_memoized_apply_ldp_repeats_and_redraws_on_change():
    values = [1000.0, 50_000.0, None, 250_000.0, 300_000.0]
    first = _memo_run(values)
    assert first == _memo_run(values)  # re-run: same release
    assert first[2] is None
    changed = _memo_run([1000.0, 50_001.0, None, 250_000.0, 300_000.0])
    assert changed[0] == first[0] and changed[3:] == first[3:]
    assert changed[1] != first[1]
    assert _memo_run(values, key=bytes(32)) != first
    assert _memo_run(values, epsilon=2.0) != first  # config change: fresh, not correlated

    # The PRF input is the value itself (not only the record key): fresh uniforms.
    def uniforms(vals):
        return ldp.memoized_source(
            KEY,
            ["c0", "c1"],
            "income",
            pa.array(vals),
            1,
            type="float",
            mechanism="piecewise",
            epsilon=1.0,
            bounds=[0, 250_000],
        ).uniforms(2, 2)

    u1, u2 = uniforms([1000.0, 50_000.0]), uniforms([1000.0, 50_001.0])
    assert np.array_equal(u1[0], u2[0]) and not np.any(u1[1] == u2[1])
    # Values the mechanism sees as equal (both clipped to U) share a record's noise.
    same_rk = ["c0", "c0"]
    assert len(set(_memo_run([250_000.0, 999_999.0], rks=same_rk))) == 1


@pytest.mark.parametrize(
    "typ, values, kw",
    [
        ("int", [20, 40, None], {"bounds": [17, 90]}),
        ("string", ["a", "zz", None], {"categories": ["a", "b"], "other": "o"}),
        ("bool", [True, False, None], {}),
    ],
)
def test_memoized_every_type_is_reproducible(typ, values, kw):
    """Same key, record keys and values: the same release. And the noise really comes from
    the key: another key (or other record keys) changes some of the 400 non-null outputs.
    Two independent releases of one record agree with probability at most 0.61 (bool, the
    worst of the three, at epsilon 1: p^2 + (1-p)^2 with p = e/(e+1)), so all 400 agreeing
    by chance has probability < 1e-80."""
    arr = pa.array(values * 200)
    rks = [f"r{i}" for i in range(len(arr))]

    def run(key=KEY, rks=rks):
        src = ldp.memoized_source(
            key, rks, "c", arr, 1, type=typ, mechanism=None, epsilon=1.0, **kw
        )
        return ldp.apply_ldp(arr, type=typ, epsilon=1.0, source=src, **kw)[0].to_pylist()

    first = run()
    assert first == run()
    assert [v is None for v in first] == [v is None for v in arr.to_pylist()]
    assert first != run(key=bytes(b ^ 1 for b in KEY))
    assert first != run(rks=[f"s{i}" for i in range(len(arr))])


# --------------------------------------------------------------------------- ledger


def test_ledger_refuses_a_run_past_the_lifetime_budget(tmp_path):
    ledger = EpsilonLedger(str(tmp_path / "epsilon-ledger.json"))
    assert ledger.spent("ds") == 0.0
    assert ledger.check("ds", 1.0, 1.5) == 1.0
    ledger.record("ds", "run-1", 1.0)
    # The same run repeated with fresh noise would spend again: refused.
    with pytest.raises(BudgetExceeded) as e:
        ledger.check("ds", 1.0, 1.5)
    assert e.value.exit_code == 3 and isinstance(e.value, PrivgateError)
    assert "ds" in str(e.value)
    assert ledger.spent("other") == 0.0  # budgets are per dataset
    entry = ledger.record("ds", "run-2", 1.0, overrun=True)
    assert entry.overrun and ledger.spent("ds") == 2.0


def test_ledger_charges_memoized_runs_once(tmp_path):
    ledger = EpsilonLedger(str(tmp_path / "l.json"))
    first = ledger.record("ds", "r1", 1.0, memoized=True, memo_id="k1:cfgA")
    repeat = ledger.record("ds", "r2", 1.0, memoized=True, memo_id="k1:cfgA")
    assert (first.charged, repeat.charged) == (1.0, 0.0)
    assert repeat.memoized
    assert ledger.check("ds", 1.0, 1.0, memoized=True, memo_id="k1:cfgA") == 1.0
    with pytest.raises(BudgetExceeded):  # another noise domain is new information
        ledger.check("ds", 1.0, 1.5, memoized=True, memo_id="k2:cfgA")
    ledger.record("ds", "r3", 0.5, memoized=False)
    assert ledger.spent("ds") == 1.5
    # Past the maximum now, yet a memoized repeat releases nothing new: allowed.
    assert ledger.check("ds", 1.0, 1.0, memoized=True, memo_id="k1:cfgA") == 1.5
    with pytest.raises(BudgetExceeded):
        ledger.check("ds", 0.1, 1.0)
    assert [e.run_id for e in ledger.entries("ds")] == ["r1", "r2", "r3"]


def test_ledger_file_is_private_json_and_sums_exactly(tmp_path):
    path = ledger_path_for(str(tmp_path / "keyring.json"))
    assert path == str(tmp_path / "epsilon-ledger.json")
    ledger = EpsilonLedger(path)
    for i in range(3):
        ledger.record("ds", f"r{i}", 0.1, time="2026-11-29T00:00:00+00:00")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.load(open(path))
    assert doc["format"] == "privgate-epsilon-ledger" and len(doc["datasets"]["ds"]) == 3
    assert ledger.check("ds", 0.2, 0.5) == pytest.approx(0.5)  # 0.1*3 + 0.2 is not > 0.5
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_ledger_unreadable_is_an_error_not_a_reset(tmp_path):
    path = tmp_path / "epsilon-ledger.json"
    path.write_text("{not json")
    ledger = EpsilonLedger(str(path))
    with pytest.raises(LedgerError):
        ledger.spent("ds")
    with pytest.raises(LedgerError):
        ledger.record("ds", "r1", 1.0)
    assert path.read_text() == "{not json"


def test_two_runs_that_both_passed_the_check_cannot_both_spend_the_budget(tmp_path):
    """check() and record() are separate steps (the run happens in between): record()
    checks again under the ledger's lock and refuses the later run, recording nothing."""
    ledger = EpsilonLedger(str(tmp_path / "l.json"))
    assert ledger.check("ds", 1.0, 1.5) == 1.0  # run A passes
    assert ledger.check("ds", 1.0, 1.5) == 1.0  # run B passes too, concurrently
    ledger.record("ds", "run-a", 1.0, lifetime_max=1.5)
    with pytest.raises(BudgetExceeded, match="from 1 to 2"):
        ledger.record("ds", "run-b", 1.0, lifetime_max=1.5)
    assert [e.run_id for e in ledger.entries("ds")] == ["run-a"]
    # an allowed overrun passes no maximum and is recorded as such
    assert ledger.record("ds", "run-c", 1.0, overrun=True).overrun
