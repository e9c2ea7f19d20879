"""OpenDP as an independent reference for privgate's LDP mechanisms.

OpenDP (dev extra) samples with its own CSPRNG, which cannot be seeded: each comparison is a
two-sample test whose false-alarm rate is stated (1e-4), and each is paired with a check
that the same test rejects a mechanism with the wrong scale. OpenDP's privacy maps also
confirm that privgate's parameters give exactly the epsilon it claims.
"""

from __future__ import annotations

import math

import numpy as np
import opendp.prelude as dp
import pytest
from scipy import stats

from tests.test_ldp_mechanisms import SeededSource
from transforms.ldp.mechanisms import (
    GeometricMechanism,
    GrrMechanism,
    LaplaceMechanism,
    RrMechanism,
)

dp.enable_features("contrib", "floating-point")

ALPHA = 1e-4
N = 50_000


def test_laplace_noise_matches_opendp_laplace():
    eps, lo, hi = 1.0, 0.0, 1000.0
    mech = LaplaceMechanism(eps, (lo, hi))
    n = 20_000  # OpenDP's float Laplace takes ~25 us per element
    ours = mech.perturb(np.full(n, 500.0), SeededSource(1)) - 500.0
    scale = (hi - lo) / eps  # b = 2/eps in t units times the half-width
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    meas = dp.m.make_laplace(*space, scale=scale)
    assert meas.map(hi - lo) == pytest.approx(eps)  # sensitivity U - L costs exactly eps
    theirs = np.asarray(meas([0.0] * n))
    assert stats.ks_2samp(ours, theirs).pvalue > ALPHA
    wider = np.asarray(dp.m.make_laplace(*space, scale=scale * 1.3)([0.0] * n))
    assert stats.ks_2samp(ours, wider).pvalue < ALPHA


def _same_law_pvalue(a, b, edges):
    """Chi-square two-sample test on the two samples binned at `edges` (empty bins dropped)."""

    def binned(z):
        return np.bincount(np.searchsorted(edges, z, side="right"), minlength=len(edges) + 1)

    table = np.vstack([binned(a), binned(b)])
    return stats.chi2_contingency(table[:, table.sum(axis=0) > 0]).pvalue


def test_geometric_noise_matches_opendp_discrete_laplace():
    eps, lo, hi = 1.0, 17, 90
    mech = GeometricMechanism(eps, (lo, hi))
    ours = mech.perturb(np.full(N, 50), SeededSource(2)) - 50
    scale = (hi - lo) / eps  # alpha = exp(-1/scale) = exp(-eps/(U-L))
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
    meas = dp.m.make_laplace(*space, scale=scale)
    assert meas.map(hi - lo) == pytest.approx(eps)
    theirs = np.asarray(meas([0] * N))
    edges = np.arange(-300, 301, 20)
    assert _same_law_pvalue(ours, theirs, edges) > ALPHA
    wider = np.asarray(dp.m.make_laplace(*space, scale=scale * 1.2)([0] * N))
    assert _same_law_pvalue(ours, wider, edges) < ALPHA


@pytest.mark.parametrize("eps, k", [(0.5, 3), (1.0, 4), (2.0, 6)])
def test_grr_epsilon_matches_opendp_randomized_response(eps, k):
    mech = GrrMechanism(eps, k)
    cats = [f"c{i}" for i in range(k)]
    meas = dp.m.make_randomized_response(categories=cats, prob=mech.p)
    assert meas.map(1) == pytest.approx(eps, rel=1e-9)
    # Keep rates agree: OpenDP's scalar sampler, 5000 draws (it is slow per element).
    n = 5000
    theirs = sum(meas("c0") == "c0" for _ in range(n))
    ours = int((mech.perturb(np.zeros(n, dtype=np.int64), SeededSource(3)) == 0).sum())
    table = [[theirs, n - theirs], [ours, n - ours]]
    assert stats.chi2_contingency(table).pvalue > ALPHA


@pytest.mark.parametrize("eps", [0.5, 2.0])
def test_rr_epsilon_matches_opendp_randomized_response_bool(eps):
    mech = RrMechanism(eps)
    meas = dp.m.make_randomized_response_bool(prob=mech.p)
    assert meas.map(1) == pytest.approx(eps, rel=1e-9)
    assert math.isclose(mech.p, math.exp(eps) / (1 + math.exp(eps)))
