"""The exact in-memory Mondrian: one worker's partition (or a small table) cut to the end."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transforms.anonymize.columns import Dimension, Encoded
from transforms.anonymize.cut import Rule, dimension_order, group_children

SUPPRESSED = -1


def _tree_order(h) -> np.ndarray | None:
    """Leaf codes in an order where every node's leaves are adjacent (depth first), or None
    when there is none or several top nodes (a hand-built spec; parse_hierarchy accepts only
    trees under one top)."""
    order = np.lexsort(h.ancestor)  # the last key (the top) sorts first
    for a in h.ancestor:
        nodes = a[order]
        runs = 1 + np.count_nonzero(nodes[1:] != nodes[:-1])
        if runs != len(np.unique(nodes)):
            return None
    return order if len(np.unique(h.ancestor[-1])) == 1 else None


class _Matrix:
    """The quasi-identifiers as one float64 matrix, so a partition's values are one gather
    and its minima and maxima two reductions. A numeric dimension is one column of values.
    A categorical one is one column of depth-first leaf ranks when its hierarchy is a tree:
    the common node of a set of leaves is then that of its lowest and highest rank; else its
    node code at every level below the top (column 0: the leaf code), the common node's level
    being the lowest where minimum == maximum."""

    def __init__(self, dims: Sequence[Dimension], enc: Encoded, ranges: Sequence):
        # per dimension: (first column, numeric span or None, hierarchy, node code per level
        # per leaf rank or None)
        cols, self.dims = [], []
        for d, v, r in zip(dims, enc.values, ranges, strict=True):
            c, h = len(cols), d.hierarchy
            if d.numeric:
                cols.append(v)
                self.dims.append((c, r[1] - r[0] if r else 0.0, None, None))
                continue
            order = _tree_order(h)
            if order is None:
                cols.extend([v] + [h.ancestor[lv][v] for lv in range(1, h.levels - 1)])
                self.dims.append((c, None, h, None))
            else:
                rank = np.empty(h.size, np.int64)
                rank[order] = np.arange(h.size)
                cols.append(rank[v])
                self.dims.append((c, None, h, [a[order].tolist() for a in h.ancestor]))
        self.values = np.stack(cols).astype(np.float64)  # a row per column: fast reductions

    def widths(self, lo: list[float], hi: list[float]) -> tuple[list[float], list[int]]:
        """Normalized width per dimension from the columns' minima and maxima, and the
        common node's level of each categorical one (0 for numeric ones)."""
        widths, levels = [], []
        for c, span, h, by_rank in self.dims:
            if h is None:
                widths.append((hi[c] - lo[c]) / span if span > 0 else 0.0)
                levels.append(0)
                continue
            level = h.levels - 1
            if by_rank is None:
                for lv in range(level):
                    if lo[c + lv] == hi[c + lv]:
                        level = lv
                        break
                node = h.ancestor[level][int(lo[c])]
            else:
                a, b = int(lo[c]), int(hi[c])
                for lv in range(level):
                    if by_rank[lv][a] == by_rank[lv][b]:
                        level = lv
                        break
                node = by_rank[level][a]
            under = h.leaves_under[level][node]
            widths.append((under - 1) / (h.size - 1) if h.size > 1 else 0.0)
            levels.append(level)
        return widths, levels

    def children(self, i: int, level: int, sub: np.ndarray) -> np.ndarray:
        """The code of the node below the common one (at `level` - 1) of each record in
        `sub`, for categorical dimension `i`."""
        c, _, _, by_rank = self.dims[i]
        if by_rank is None:
            return sub[c + level - 1]
        return np.asarray(by_rank[level - 1])[sub[c].astype(np.int64)]


def _numeric_cut(rule: Rule, v: np.ndarray, s: np.ndarray | None) -> np.ndarray | None:
    """Left mask of the exact numeric cut of `v` (n >= 2k values), or None.

    The cut's left count is a boundary between distinct values (in ascending order) in
    [lo, hi]: >= k records a side and, with l, the l-th first occurrence of a sensitive value
    on the left and the l-th last one on the right. It is the boundary closest to half
    (ties: the lower one)."""
    n = len(v)
    lo, hi = rule.k, n - rule.k
    if rule.l is None:
        sv = np.sort(v)
    else:
        order = np.argsort(v, kind="stable")
        sv, ss = v[order], s[order]
        _, first = np.unique(ss, return_index=True)
        if len(first) < rule.l:
            return None
        _, last_rev = np.unique(ss[::-1], return_index=True)
        lo = max(lo, int(np.sort(first)[rule.l - 1]) + 1)
        hi = min(hi, n - 1 - int(np.sort(last_rev)[rule.l - 1]))
        if lo > hi:
            return None
    # the largest boundary <= min(hi, n/2) and the smallest >= max(lo, n/2)
    below = int(np.searchsorted(sv, sv[min(hi, n // 2)], side="left"))
    upto = int(np.searchsorted(sv, sv[max(lo, (n + 1) // 2) - 1], side="right"))
    if below >= lo and (upto > hi or n - 2 * below <= 2 * upto - n):
        return v < sv[below]
    return v <= sv[upto - 1] if upto <= hi else None


def _categorical_cut(rule: Rule, child: np.ndarray, s: np.ndarray | None):
    """Side index per record of the cut into the children `child` (a code per record), or
    None."""
    kids, inverse, counts = np.unique(child, return_inverse=True, return_counts=True)
    sets = None
    if rule.l is not None:
        sets = [frozenset(np.unique(s[inverse == i]).tolist()) for i in range(len(kids))]
    sides = group_children(rule, counts.tolist(), sets)
    if sides is None:
        return None
    side_of_kid = np.empty(len(kids), dtype=np.int64)
    for side, members in enumerate(sides):
        side_of_kid[members] = side
    return side_of_kid[inverse], len(sides)


def mondrian(
    dims: Sequence[Dimension], enc: Encoded, rule: Rule, ranges: Sequence
) -> tuple[np.ndarray, int]:
    """Cut the placeable rows into classes that each satisfy `rule`.

    Args:
        dims: the quasi-identifiers.
        enc: the rows' encoded values.
        rule: k (and l), each >= 1 (the config asks >= 2).
        ranges: global (lo, hi) per numeric dimension (None for categorical ones).
    Returns:
        (class per row, number of classes); SUPPRESSED (-1) for rows that are not placeable
        or when the placeable rows together do not satisfy the rule. Classes are numbered in
        the order of the cuts (left before right), so the numbering does not depend on the
        order of the rows.
    """
    n = len(enc.placeable)
    out = np.full(n, SUPPRESSED, dtype=np.int64)
    root = np.flatnonzero(enc.placeable)
    if not rule.ok(len(root), _distinct(enc, root)):
        return out, 0
    matrix = _Matrix(dims, enc, ranges)
    stack, n_classes = [root], 0
    while stack:
        idx = stack.pop()
        parts = _cut(matrix, enc, rule, idx) if len(idx) >= 2 * rule.k else None
        if parts is None:
            out[idx] = n_classes
            n_classes += 1
        else:
            stack.extend(reversed(parts))
    return out, n_classes


def _distinct(enc: Encoded, idx: np.ndarray) -> int | None:
    return None if enc.sensitive is None else len(np.unique(enc.sensitive[idx]))


def _cut(matrix: _Matrix, enc: Encoded, rule: Rule, idx: np.ndarray):
    """The parts of partition `idx` (row numbers) after the first valid cut, or None."""
    sub = np.take(matrix.values, idx, axis=1)  # C-contiguous, unlike values[:, idx]
    widths, levels = matrix.widths(sub.min(axis=1).tolist(), sub.max(axis=1).tolist())
    s = None if enc.sensitive is None else enc.sensitive[idx]
    for i in dimension_order(widths):
        c, span, _, _ = matrix.dims[i]
        if span is not None:
            left = _numeric_cut(rule, sub[c], s)
            if left is not None:
                return [idx[left], idx[~left]]
        elif levels[i] > 0:
            cut = _categorical_cut(rule, matrix.children(i, levels[i], sub), s)
            if cut is not None:
                side, n_sides = cut
                return [idx[side == j] for j in range(n_sides)]
    return None
