"""The one-run privacy audit: a model's canary scores and the secret coins -> epsilon, p-value.

Steinke, Nasr, Jagielski (2023), "Privacy Auditing with One (1) Training Run"
(arXiv:2305.08846), Theorem 3.1 with delta = 0: m candidates are each included by an
independent fair coin S_i; an auditor who sees only the trained model guesses "in" or "out"
for r of them. If the training (everything from the coins to the model) is eps-DP with
respect to each candidate, the number of correct guesses W is stochastically dominated by
Bin(r, e^eps / (1 + e^eps)). So the largest eps with P[Bin(r, p(eps)) >= v] <= alpha is a
lower bound on the true epsilon at confidence 1 - alpha, from one training run.

Provenance: under "this model never saw this release" the scores are independent of the
coins (which are secret, keyed and fair), so each guess is right with probability exactly 1/2
and W ~ Bin(r, 1/2); the p-value is P[Bin(r, 1/2) >= v].

Secret canaries: Secret-Sharer exposure (Carlini et al. 2019), log2 of the number of
references plus one, minus log2 of the secret's rank among them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
# Default guess counts: fractions of m guessed, half "in" (top scores) and half "out" (bottom),
# and the same numbers all "in" (`default_guess_counts`).
DEFAULT_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class GuessResult:
    """One guess count: k_in top scores guessed "in", k_out bottom scores guessed "out"."""

    k_in: int
    k_out: int
    correct: int
    epsilon_lower_bound: float  # at the audit's per-count level (alpha / number of counts)
    p_value: float  # P[Bin(r, 1/2) >= correct], not yet corrected for the number of counts

    @property
    def guesses(self) -> int:
        return self.k_in + self.k_out


@dataclass(frozen=True)
class AuditResult:
    """The audit of one model's scores.

    Attributes:
        candidates: m, the number of candidates scored.
        included: how many coins said "in" (known only to a key holder).
        alpha: the confidence level of the epsilon bound is 1 - alpha.
        epsilon_lower_bound: the largest bound over the guess counts, each at alpha / G
            (Bonferroni over G counts; G = 1 when the counts were pre-registered).
        p_value: the provenance p-value, min over counts times G (capped at 1).
        best: the guess count that gave the epsilon bound.
        counts: every guess count's result.
    """

    candidates: int
    included: int
    alpha: float
    epsilon_lower_bound: float
    p_value: float
    best: GuessResult
    counts: tuple[GuessResult, ...]

    def to_dict(self) -> dict:
        return {
            "candidates": self.candidates,
            "included": self.included,
            "confidence": 1 - self.alpha,
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "p_value": self.p_value,
            "bonferroni_counts": len(self.counts),
            "best": _count_dict(self.best),
            "counts": [_count_dict(c) for c in self.counts],
        }


def _count_dict(c: GuessResult) -> dict:
    return {
        "k_in": c.k_in,
        "k_out": c.k_out,
        "guesses": c.guesses,
        "correct": c.correct,
        "epsilon_lower_bound": c.epsilon_lower_bound,
        "p_value": c.p_value,
    }


def epsilon_lower_bound(correct: int, guesses: int, alpha: float = ALPHA) -> float:
    """The largest eps with P[Bin(guesses, e^eps/(1+e^eps)) >= correct] <= alpha (0 if none).

    P[Bin(r, p) >= v] is the regularized incomplete beta I_p(v, r - v + 1), increasing in p,
    so the largest admissible p is its inverse at alpha (the one-sided Clopper-Pearson bound).
    """
    from scipy.special import betaincinv

    if not 0 <= correct <= guesses:
        raise ValueError("correct guesses must be between 0 and the number of guesses")
    if correct == 0:
        return 0.0
    p = float(betaincinv(correct, guesses - correct + 1, alpha))
    if p <= 0.5:
        return 0.0
    if p >= 1.0:
        return math.inf
    return math.log(p / (1 - p))


def provenance_p_value(correct: int, guesses: int) -> float:
    """P[Bin(guesses, 1/2) >= correct]: the chance of this many right guesses by luck."""
    from scipy.stats import binom

    if guesses == 0:
        return 1.0
    return float(binom.sf(correct - 1, guesses, 0.5))


def default_guess_counts(m: int) -> list[tuple[int, int]]:
    """The stated grid: for each fraction f of m, r = f*m guesses split evenly in/out, and
    (for r <= m/2) r guesses all "in" (a model may be sure of its members without being sure
    of anything about the others, e.g. under label noise)."""
    counts = []
    for f in DEFAULT_FRACTIONS:
        r = min(m, max(2, int(round(f * m))))
        for pair in ((r // 2, r - r // 2), (r, 0) if r <= m // 2 else None):
            if pair is not None and pair not in counts:
                counts.append(pair)
    return counts


def guess_order(scores: np.ndarray) -> np.ndarray:
    """Candidate positions from highest to lowest score; ties by position (no coin involved)."""
    return np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64)))


def correct_guesses(order: np.ndarray, coins: np.ndarray, k_in: int, k_out: int) -> int:
    """Right guesses when the top k_in of `order` are guessed "in" and the bottom k_out "out"."""
    if k_in + k_out > len(order) or k_in < 0 or k_out < 0:
        raise ValueError("the guess counts must be non-negative and add up to at most m")
    top = int(coins[order[:k_in]].sum())
    bottom = int(k_out - coins[order[len(order) - k_out :]].sum()) if k_out else 0
    return top + bottom


def audit(
    scores: Sequence[float] | np.ndarray,
    coins: Sequence[bool] | np.ndarray,
    guess_counts: Sequence[tuple[int, int]] | None = None,
    alpha: float = ALPHA,
) -> AuditResult:
    """Audit scores (higher = more likely a member) against the inclusion coins.

    Args:
        scores: one score per candidate, in candidate order.
        coins: the inclusion coins, in candidate order.
        guess_counts: (k_in, k_out) pairs. One pair: pre-registered, the bound is at alpha.
            Several (default: `default_guess_counts(m)`): each is evaluated at alpha / G and
            the largest bound is reported (Bonferroni), the p-value is the smallest times G.
        alpha: one minus the confidence of the epsilon bound.
    Raises:
        ValueError: scores and coins differ in length, a score is NaN, or a count is invalid.
    """
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(coins, dtype=bool)
    if s.shape != c.shape or s.ndim != 1:
        raise ValueError("one score per candidate is needed")
    if np.isnan(s).any():
        raise ValueError("scores must not be NaN")
    m = len(s)
    pairs = list(guess_counts) if guess_counts else default_guess_counts(m)
    level = alpha / len(pairs)
    order = guess_order(s)
    results = []
    for k_in, k_out in pairs:
        v = correct_guesses(order, c, k_in, k_out)
        results.append(
            GuessResult(
                k_in,
                k_out,
                v,
                epsilon_lower_bound(v, k_in + k_out, level),
                provenance_p_value(v, k_in + k_out),
            )
        )
    best = max(results, key=lambda r: (r.epsilon_lower_bound, -r.p_value))
    p = min(1.0, min(r.p_value for r in results) * len(results))
    return AuditResult(m, int(c.sum()), alpha, best.epsilon_lower_bound, p, best, tuple(results))


def exposure(secret_score: float, reference_scores: np.ndarray) -> float:
    """Secret-Sharer exposure of one secret against references drawn from the same format.

    log2(R + 1) - log2(rank), rank = 1 + references scoring at least as high (higher score =
    more likely the model saw it); 0 when the secret ranks last, log2(R + 1) when first.
    """
    refs = np.asarray(reference_scores, dtype=np.float64)
    rank = 1 + int((refs >= secret_score).sum())
    return math.log2(len(refs) + 1) - math.log2(rank)


def exposure_summary(scores: np.ndarray, coins: np.ndarray, reference_scores: np.ndarray) -> dict:
    """Exposure of the planted secrets beside that of the candidates left out (a baseline)."""
    refs = np.sort(np.asarray(reference_scores, dtype=np.float64))
    s = np.asarray(scores, dtype=np.float64)
    # rank = 1 + references >= score, for every candidate at once
    ranks = 1 + len(refs) - np.searchsorted(refs, s, side="left")
    exp = math.log2(len(refs) + 1) - np.log2(ranks)

    def stats(x: np.ndarray) -> dict:
        if not len(x):
            return {"n": 0, "mean": None, "median": None, "max": None}
        return {
            "n": int(len(x)),
            "mean": float(x.mean()),
            "median": float(np.median(x)),
            "max": float(x.max()),
        }

    c = np.asarray(coins, dtype=bool)
    return {
        "references": int(len(refs)),
        "max_exposure": math.log2(len(refs) + 1),
        "planted": stats(exp[c]),
        "left_out": stats(exp[~c]),
    }
