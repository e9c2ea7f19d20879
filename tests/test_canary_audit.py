"""The one-run audit's math: epsilon lower bound, provenance p-value, exposure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transforms.canaries.audit import (
    audit,
    correct_guesses,
    default_guess_counts,
    epsilon_lower_bound,
    exposure,
    exposure_summary,
    guess_order,
    provenance_p_value,
)

M = 10_000


def _randomized_response(rng, eps: float, m: int = M):
    """The coins, and scores of an eps-DP mechanism that is tight: each candidate's coin
    released through randomized response (kept with probability e^eps / (1 + e^eps))."""
    coins = rng.random(m) < 0.5
    kept = rng.random(m) < math.exp(eps) / (1 + math.exp(eps))
    return coins, np.where(kept, coins, ~coins).astype(np.float64)


def test_epsilon_bound_holds_and_is_tight_on_randomized_response():
    # eps = 2 with pre-registered counts (m/2 "in", m/2 "out"): the Clopper-Pearson bound on
    # 1e4 guesses sits ~0.005 below the observed accuracy, and 0.9 eps (p = 0.858) leaves
    # ~0.023 (7 standard deviations) below p(eps) = 0.881, minus at most ~0.011 lost when the
    # fixed split does not match the number of released 1s (ties broken by position). At
    # eps = 1 that margin is 4.6 sd and the split costs more: 11/1000 trials fell below
    # 0.9 eps, so eps = 2 is the one where ">= 0.9 eps in 99%" is a property, not luck.
    # Measured on 10,000 trials (seed 12345): 1.26% above eps (the theorem allows 5%),
    # 0.05% below 0.9 eps; so 1,000 trials fail these thresholds with probability < 1e-11.
    rng = np.random.default_rng(17)
    eps, trials = 2.0, 1000
    hats = np.array(
        [
            audit(*reversed(_randomized_response(rng, eps)), [(M // 2, M // 2)]).epsilon_lower_bound
            for _ in range(trials)
        ]
    )
    assert (hats <= eps).mean() >= 0.95
    assert (hats >= 0.9 * eps).mean() >= 0.99


def test_bonferroni_search_stays_below_epsilon():
    # the default grid of guess counts, each at alpha / G: still a 95% lower bound
    rng = np.random.default_rng(18)
    eps = 2.0
    hats = [
        audit(*reversed(_randomized_response(rng, eps))).epsilon_lower_bound for _ in range(300)
    ]
    assert np.mean(np.array(hats) <= eps) >= 0.95
    assert np.median(hats) > 0.8 * eps  # the search costs a little, not everything


def test_p_values_are_uniform_when_scores_ignore_the_data():
    # Scores independent of the coins (a model that never saw the release): each guess is
    # right with probability 1/2, so p = P[Bin(r, 1/2) >= v] is uniform up to the binomial's
    # steps (~0.008 at r = 1e4, below the KS critical value 0.052 at n = 1000). KS test at
    # alpha = 0.01, fixed seed; and no more than 1% + 3 sd of p-values fall below 0.01.
    rng = np.random.default_rng(19)
    pvals = []
    for _ in range(1000):
        coins = rng.random(M) < 0.5
        scores = rng.normal(size=M)
        pvals.append(audit(scores, coins, [(M // 2, M // 2)]).p_value)
    pvals = np.array(pvals)
    assert stats.kstest(pvals, "uniform").pvalue > 0.01
    assert (pvals < 0.01).mean() <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / 1000)


def test_bonferroni_p_value_is_conservative_under_the_null():
    rng = np.random.default_rng(20)
    pvals = np.array(
        [audit(rng.normal(size=2000), rng.random(2000) < 0.5).p_value for _ in range(1000)]
    )
    # P[p <= 0.05] <= 0.05 (Bonferroni); 3 sd of slack for the 1,000 draws
    assert (pvals <= 0.05).mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1000)


def test_epsilon_bound_matches_its_definition():
    # the bound is the largest eps whose binomial tail is still <= alpha
    for v, r in ((60, 100), (700, 1000), (990, 1000), (100, 100)):
        e = epsilon_lower_bound(v, r, 0.05)
        p = math.exp(e) / (1 + math.exp(e))
        assert stats.binom.sf(v - 1, r, p) == pytest.approx(0.05, rel=1e-6)
        p_above = math.exp(e + 1e-3) / (1 + math.exp(e + 1e-3))
        assert stats.binom.sf(v - 1, r, p_above) > 0.05
    assert epsilon_lower_bound(50, 100) == 0.0  # chance level proves nothing
    assert epsilon_lower_bound(0, 10) == 0.0
    with pytest.raises(ValueError):
        epsilon_lower_bound(11, 10)


def test_provenance_p_value_is_the_binomial_tail():
    assert provenance_p_value(10, 10) == pytest.approx(2**-10)
    assert provenance_p_value(0, 10) == pytest.approx(1.0)
    assert provenance_p_value(60, 100) == pytest.approx(stats.binom.sf(59, 100, 0.5))


def test_guesses_take_top_scores_in_and_bottom_scores_out():
    scores = np.array([0.9, 0.1, 0.5, 0.8, 0.2, 0.5])
    coins = np.array([True, False, True, False, False, True])
    order = guess_order(scores)
    assert order.tolist() == [0, 3, 2, 5, 4, 1]  # ties (0.5) by position
    # top 2 "in": 0 (in), 3 (out) -> 1 right; bottom 2 "out": 4, 1 (both out) -> 2 right
    assert correct_guesses(order, coins, 2, 2) == 3
    with pytest.raises(ValueError):
        correct_guesses(order, coins, 4, 3)


def test_audit_reports_every_count_and_rejects_bad_input():
    scores = np.arange(100, dtype=float)
    coins = scores >= 50  # perfect scores
    r = audit(scores, coins)
    assert len(r.counts) == len(default_guess_counts(100))
    assert r.best.correct == r.best.guesses
    assert r.p_value < 1e-20 and r.epsilon_lower_bound > 2
    d = r.to_dict()
    assert set(d) >= {"p_value", "epsilon_lower_bound", "counts", "candidates"}
    with pytest.raises(ValueError):
        audit(scores[:-1], coins)
    with pytest.raises(ValueError):
        audit(np.full(100, np.nan), coins)


def test_exposure_of_a_top_ranked_secret_is_maximal():
    refs = np.arange(1023, dtype=float)
    assert exposure(5000.0, refs) == pytest.approx(10.0)  # first of 1024
    assert exposure(-1.0, refs) == pytest.approx(0.0)  # last
    s = exposure_summary(np.array([5000.0, -1.0]), np.array([True, False]), refs)
    assert s["planted"]["mean"] == pytest.approx(10.0)
    assert s["left_out"]["max"] == pytest.approx(0.0)


def test_the_grid_finds_a_model_sure_only_of_its_members():
    # 70% of members memorized (top score), the other members scored lowest (label noise),
    # non-members in between: even splits are near chance, "in"-only guesses are all right
    rng = np.random.default_rng(21)
    coins = rng.random(2000) < 0.5
    remembered = rng.random(2000) < 0.7
    scores = np.where(coins, np.where(remembered, 1.0, -1.0), 0.0)
    r = audit(scores, coins)
    assert (r.best.k_out, r.best.correct) == (0, r.best.guesses)
    assert r.epsilon_lower_bound > 3 and r.p_value < 1e-50
    assert audit(scores, coins, [(500, 500)]).epsilon_lower_bound < r.epsilon_lower_bound / 2
