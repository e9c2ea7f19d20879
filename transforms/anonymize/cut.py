"""Mondrian's cut rule, shared by the exact local Mondrian and the distributed rounds.

A side of a cut is valid when it holds >= k records and, with l-diversity, >= l distinct
sensitive values (strict partitioning: every record goes to exactly one side). Dimensions are
tried widest normalized range first (ties: the earlier quasi-identifier); a numeric one is
cut at the valid threshold whose left side is closest to half, a categorical one into the
children of its common hierarchy node (children too small to stand alone share one group).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rule:
    """What every released class must satisfy: >= k records, >= l distinct sensitive values."""

    k: int
    l: int | None = None  # noqa: E741

    def ok(self, count: int, distinct: int | None = None) -> bool:
        return count >= self.k and (self.l is None or (distinct or 0) >= self.l)


def dimension_order(widths: Sequence[float]) -> list[int]:
    """Dimensions with a positive width, widest first; ties go to the earlier one."""
    return sorted((i for i, w in enumerate(widths) if w > 0), key=lambda i: (-widths[i], i))


def numeric_threshold(
    rule: Rule,
    n: int,
    left_counts: np.ndarray,
    left_distinct: np.ndarray | None = None,
    right_distinct: np.ndarray | None = None,
) -> int | None:
    """Index of the candidate threshold to cut at, or None when no candidate is valid.

    Args:
        rule: k (and l).
        n: records in the partition.
        left_counts: exact records on the left (`x <= threshold`) per candidate, ascending.
        left_distinct / right_distinct: distinct sensitive values per side (with l only).
    """
    left = np.asarray(left_counts, dtype=np.int64)
    valid = (left >= rule.k) & (n - left >= rule.k)
    if rule.l is not None:
        valid &= (np.asarray(left_distinct) >= rule.l) & (np.asarray(right_distinct) >= rule.l)
    if not valid.any():
        return None
    cand = np.flatnonzero(valid)
    return int(cand[np.argmin(np.abs(2 * left[cand] - n))])


def group_children(
    rule: Rule, counts: Sequence[int], distinct_sets: Sequence[frozenset] | None = None
) -> list[list[int]] | None:
    """Group the children of a categorical node (indexes into `counts`, in hierarchy order)
    into the sides of a cut; None when fewer than two valid sides exist.

    Every child that is valid alone is a side; the others share one side, or join the
    smallest valid side when together they are not valid.
    """
    present = [i for i, c in enumerate(counts) if c > 0]

    def distinct(members: list[int]) -> int | None:
        if distinct_sets is None:
            return None
        return len(frozenset().union(*(distinct_sets[i] for i in members)))

    sides = [[i] for i in present if rule.ok(counts[i], distinct([i]))]
    rest = [i for i in present if [i] not in sides]
    if rest:
        if rule.ok(sum(counts[i] for i in rest), distinct(rest)):
            sides.append(rest)
        elif sides:
            smallest = min(range(len(sides)), key=lambda s: (sum(counts[i] for i in sides[s]), s))
            sides[smallest] = sorted(sides[smallest] + rest)
        else:
            return None
    return sides if len(sides) >= 2 else None
