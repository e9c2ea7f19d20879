"""The exact in-memory Mondrian: one worker's partition (or a small table) cut to the end."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transforms.anonymize.columns import Dimension, Encoded
from transforms.anonymize.cut import Rule, dimension_order, group_children, numeric_threshold

SUPPRESSED = -1


def _numeric_cut(rule: Rule, v: np.ndarray, s: np.ndarray | None) -> np.ndarray | None:
    """Left mask of the exact numeric cut, or None."""
    uniq, counts = np.unique(v, return_counts=True)
    if len(uniq) < 2:
        return None
    left = np.cumsum(counts)[:-1]
    ld = rd = None
    if rule.l is not None:
        order = np.argsort(v, kind="stable")
        ss = s[order]
        _, first = np.unique(ss, return_index=True)
        _, last_rev = np.unique(ss[::-1], return_index=True)
        last = len(ss) - 1 - last_rev
        ld = np.searchsorted(np.sort(first), left, side="left")
        rd = len(last) - np.searchsorted(np.sort(last), left, side="left")
    j = numeric_threshold(rule, len(v), left, ld, rd)
    return None if j is None else v <= uniq[j]


def _categorical_cut(rule: Rule, d: Dimension, codes: np.ndarray, s: np.ndarray | None):
    """Side index per record of the categorical cut, or None."""
    present = _present(d, codes)
    level, child_of_leaf = d.hierarchy.child_groups(present)
    if level < 0:
        return None
    child = child_of_leaf[codes]
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


def widths(dims: Sequence[Dimension], values: list[np.ndarray], ranges: Sequence) -> list[float]:
    """Normalized width of each dimension over the given values (`ranges`: global (lo, hi)
    of numeric dimensions, None for categorical ones)."""
    out = []
    for d, v, r in zip(dims, values, ranges, strict=True):
        if d.numeric:
            span = r[1] - r[0] if r else 0.0
            out.append(float((v.max() - v.min()) / span) if span > 0 else 0.0)
        else:
            out.append(d.hierarchy.width(_present(d, v)))
    return out


def _present(d: Dimension, codes: np.ndarray) -> np.ndarray:
    """The leaf codes present (sorted): a bincount, faster than np.unique on small domains."""
    return np.flatnonzero(np.bincount(codes, minlength=d.hierarchy.size))


def mondrian(
    dims: Sequence[Dimension], enc: Encoded, rule: Rule, ranges: Sequence
) -> tuple[np.ndarray, int]:
    """Cut the placeable rows into classes that each satisfy `rule`.

    Args:
        dims: the quasi-identifiers.
        enc: the rows' encoded values.
        rule: k (and l).
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
    stack, n_classes = [root], 0
    while stack:
        idx = stack.pop()
        parts = _cut(dims, enc, rule, ranges, idx) if len(idx) >= 2 * rule.k else None
        if parts is None:
            out[idx] = n_classes
            n_classes += 1
        else:
            stack.extend(reversed(parts))
    return out, n_classes


def _distinct(enc: Encoded, idx: np.ndarray) -> int | None:
    return None if enc.sensitive is None else len(np.unique(enc.sensitive[idx]))


def _cut(dims, enc: Encoded, rule: Rule, ranges, idx: np.ndarray) -> list[np.ndarray] | None:
    vals = [v[idx] for v in enc.values]
    s = None if enc.sensitive is None else enc.sensitive[idx]
    for i in dimension_order(widths(dims, vals, ranges)):
        if dims[i].numeric:
            left = _numeric_cut(rule, vals[i], s)
            if left is not None:
                return [idx[left], idx[~left]]
        else:
            cut = _categorical_cut(rule, dims[i], vals[i], s)
            if cut is not None:
                side, n_sides = cut
                return [idx[side == j] for j in range(n_sides)]
    return None
