"""A frozen copy of the exact local Mondrian as of session 6 (before its speed-up): the
golden reference the faster `transforms.anonymize.local.mondrian` must match exactly."""

from __future__ import annotations

import numpy as np

SUPPRESSED = -1


def _ok(rule, count, distinct=None):
    return count >= rule.k and (rule.l is None or (distinct or 0) >= rule.l)


def _dimension_order(widths):
    return sorted((i for i, w in enumerate(widths) if w > 0), key=lambda i: (-widths[i], i))


def _numeric_threshold(rule, n, left_counts, left_distinct=None, right_distinct=None):
    left = np.asarray(left_counts, dtype=np.int64)
    valid = (left >= rule.k) & (n - left >= rule.k)
    if rule.l is not None:
        valid &= (np.asarray(left_distinct) >= rule.l) & (np.asarray(right_distinct) >= rule.l)
    if not valid.any():
        return None
    cand = np.flatnonzero(valid)
    return int(cand[np.argmin(np.abs(2 * left[cand] - n))])


def _group_children(rule, counts, distinct_sets=None):
    present = [i for i, c in enumerate(counts) if c > 0]

    def distinct(members):
        if distinct_sets is None:
            return None
        return len(frozenset().union(*(distinct_sets[i] for i in members)))

    sides = [[i] for i in present if _ok(rule, counts[i], distinct([i]))]
    rest = [i for i in present if [i] not in sides]
    if rest:
        if _ok(rule, sum(counts[i] for i in rest), distinct(rest)):
            sides.append(rest)
        elif sides:
            smallest = min(range(len(sides)), key=lambda s: (sum(counts[i] for i in sides[s]), s))
            sides[smallest] = sorted(sides[smallest] + rest)
        else:
            return None
    return sides if len(sides) >= 2 else None


def _common_level(h, present):
    for level in range(h.levels):
        nodes = h.ancestor[level][present]
        if (nodes == nodes[0]).all():
            return level
    return h.levels - 1


def _width(h, present):
    if h.size <= 1:
        return 0.0
    level = _common_level(h, present)
    under = h.leaves_under[level][h.ancestor[level][present[0]]]
    return (under - 1) / (h.size - 1)


def _child_groups(h, present):
    level = _common_level(h, present)
    if level == 0:
        return -1, h.ancestor[0]
    return level - 1, h.ancestor[level - 1]


def _present(d, codes):
    return np.flatnonzero(np.bincount(codes, minlength=d.hierarchy.size))


def _numeric_cut(rule, v, s):
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
    j = _numeric_threshold(rule, len(v), left, ld, rd)
    return None if j is None else v <= uniq[j]


def _categorical_cut(rule, d, codes, s):
    level, child_of_leaf = _child_groups(d.hierarchy, _present(d, codes))
    if level < 0:
        return None
    child = child_of_leaf[codes]
    kids, inverse, counts = np.unique(child, return_inverse=True, return_counts=True)
    sets = None
    if rule.l is not None:
        sets = [frozenset(np.unique(s[inverse == i]).tolist()) for i in range(len(kids))]
    sides = _group_children(rule, counts.tolist(), sets)
    if sides is None:
        return None
    side_of_kid = np.empty(len(kids), dtype=np.int64)
    for side, members in enumerate(sides):
        side_of_kid[members] = side
    return side_of_kid[inverse], len(sides)


def _widths(dims, values, ranges):
    out = []
    for d, v, r in zip(dims, values, ranges, strict=True):
        if d.numeric:
            span = r[1] - r[0] if r else 0.0
            out.append(float((v.max() - v.min()) / span) if span > 0 else 0.0)
        else:
            out.append(_width(d.hierarchy, _present(d, v)))
    return out


def _cut(dims, enc, rule, ranges, idx):
    vals = [v[idx] for v in enc.values]
    s = None if enc.sensitive is None else enc.sensitive[idx]
    for i in _dimension_order(_widths(dims, vals, ranges)):
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


def mondrian(dims, enc, rule, ranges):
    """(class per row, number of classes), exactly as the session-6 implementation."""
    n = len(enc.placeable)
    out = np.full(n, SUPPRESSED, dtype=np.int64)
    root = np.flatnonzero(enc.placeable)
    distinct = None if enc.sensitive is None else len(np.unique(enc.sensitive[root]))
    if not _ok(rule, len(root), distinct):
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
