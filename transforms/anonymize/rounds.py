"""The distributed rounds of Mondrian as pure functions: statistics, the cut tree, commits.

Each round every record of a partition still being cut is keyed by its partition (a leaf of
the cut tree, found with `assign`); per partition the statistics are sums and bounded sets
(`partition_stats`, `merge_stats`), so they merge in any order to the same result; `commit`
cuts each partition with the shared rule (`cut.py`). Numeric statistics are exact counts per
bin of the partition's region, so a threshold is an approximate median but both sides'
counts are exact before a cut commits. Partitions of at most `local_rows` records, or that
no valid cut divides, become leaves, finished by the exact local Mondrian. Partition ids are
paths in the tree ("0", "0.1", ...), so nothing depends on the number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from transforms.anonymize.columns import Dimension, Encoded
from transforms.anonymize.cut import Rule, dimension_order, group_children, numeric_threshold

BINS = 256
ROOT = "0"


def _truncate(codes: Iterable[int], n: int | None) -> list[int]:
    """The n smallest distinct codes: enough to tell whether a set holds >= n values."""
    if n is None:
        return []
    return sorted(set(codes))[:n]


# --------------------------------------------------------------------------- global ranges


def ranges_stats(dims: Sequence[Dimension], enc: Encoded, l: int | None) -> dict:  # noqa: E741
    """One batch's global statistics: rows, placeable rows, numeric min/max, sensitive codes
    of the placeable and of the unplaceable rows (at most l of each)."""
    p = enc.placeable
    s = enc.sensitive
    return {
        "rows": int(len(p)),
        "placeable": int(p.sum()),
        "lo": [
            float(v[p].min()) if d.numeric and p.any() else math.inf
            for d, v in zip(dims, enc.values, strict=True)
        ],
        "hi": [
            float(v[p].max()) if d.numeric and p.any() else -math.inf
            for d, v in zip(dims, enc.values, strict=True)
        ],
        "sens": _truncate(np.unique(s[p]).tolist(), l) if s is not None else [],
        "unplaced_sens": _truncate(np.unique(s[~p]).tolist(), l) if s is not None else [],
    }


def merge_ranges(parts: Iterable[dict], n_dims: int, l: int | None) -> dict:  # noqa: E741
    out = {
        "rows": 0,
        "placeable": 0,
        "lo": [math.inf] * n_dims,
        "hi": [-math.inf] * n_dims,
        "sens": [],
        "unplaced_sens": [],
    }
    for p in parts:
        out["rows"] += p["rows"]
        out["placeable"] += p["placeable"]
        out["lo"] = [min(a, b) for a, b in zip(out["lo"], p["lo"], strict=True)]
        out["hi"] = [max(a, b) for a, b in zip(out["hi"], p["hi"], strict=True)]
        out["sens"] = _truncate(out["sens"] + p["sens"], l)
        out["unplaced_sens"] = _truncate(out["unplaced_sens"] + p["unplaced_sens"], l)
    return out


def global_ranges(dims: Sequence[Dimension], ranges: dict) -> list:
    """(lo, hi) per numeric dimension (None: categorical, or no placeable record)."""
    return [
        (ranges["lo"][i], ranges["hi"][i]) if d.numeric and ranges["placeable"] else None
        for i, d in enumerate(dims)
    ]


# --------------------------------------------------------------------------- the cut tree


def root_tree(dims: Sequence[Dimension], ranges: dict, rule: Rule, local_rows: int) -> dict:
    """The tree before any round: one partition holding every placeable record."""
    region = [list(r) if r else None for r in global_ranges(dims, ranges)]
    node = {"id": ROOT, "count": ranges["placeable"], "region": region, "cut": None}
    node["active"] = ranges["placeable"] > local_rows and ranges["placeable"] >= 2 * rule.k
    return {"nodes": [node], "top_up": None}


def _bin(d: Dimension, v: np.ndarray, region) -> np.ndarray:
    lo, hi = region
    if d.is_int:
        w = max(1, math.ceil((hi - lo + 1) / BINS))
        return np.clip((v - lo) // w, 0, BINS - 1).astype(np.int64)
    if hi <= lo:
        return np.zeros(len(v), dtype=np.int64)
    return np.clip(np.floor((v - lo) / (hi - lo) * BINS), 0, BINS - 1).astype(np.int64)


def assign(tree: dict, dims: Sequence[Dimension], enc: Encoded) -> np.ndarray:
    """Index of each row's leaf in `tree["nodes"]` (-1 for unplaceable rows)."""
    nodes = tree["nodes"]
    cur = np.where(enc.placeable, 0, -1)
    for i, node in enumerate(nodes):  # parents come before their children
        cut = node["cut"]
        if cut is None:
            continue
        mask = cur == i
        if not mask.any():
            continue
        d, v = dims[cut["dim"]], enc.values[cut["dim"]][mask]
        if d.numeric:
            side = (_bin(d, v, node["region"][cut["dim"]]) > cut["bin"]).astype(np.int64)
        else:
            child = d.hierarchy.ancestor[cut["level"]][v.astype(np.int64)]
            side = np.asarray(cut["side_of_child"], dtype=np.int64)[child]
        cur[mask] = np.asarray(cut["children"], dtype=np.int64)[side]
    return cur


def leaves(tree: dict) -> list[int]:
    return [i for i, n in enumerate(tree["nodes"]) if n["cut"] is None]


# --------------------------------------------------------------------------- statistics


def partition_stats(dims: Sequence[Dimension], enc: Encoded, rows: np.ndarray, region, l) -> dict:  # noqa: E741
    """Statistics of one partition's `rows` (indexes) in a batch: count, numeric min/max and
    per-bin counts over the partition's region, leaf counts of categorical dimensions, and
    with l the sensitive codes (at most l) of the partition, of each bin and of each leaf."""
    s = None if enc.sensitive is None else enc.sensitive[rows]
    out = {"count": int(len(rows)), "min": [], "max": [], "counts": [], "sets": []}
    for d, v, r in zip(dims, enc.values, region, strict=True):
        v = v[rows]
        out["min"].append(float(v.min()))
        out["max"].append(float(v.max()))
        cells = _bin(d, v, r) if d.numeric else v.astype(np.int64)
        size = BINS if d.numeric else d.hierarchy.size
        out["counts"].append(np.bincount(cells, minlength=size).astype(np.int64))
        if s is not None:
            pairs = np.unique(np.stack([cells, s]), axis=1)
            sets: dict[int, list[int]] = {}
            for c, code in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
                if len(sets.setdefault(c, [])) < l:
                    sets[c].append(code)
            out["sets"].append(sets)
    out["sens"] = _truncate(np.unique(s).tolist(), l) if s is not None else []
    return out


def merge_stats(parts: Iterable[dict], l: int | None) -> dict | None:  # noqa: E741
    out = None
    for p in parts:
        if out is None:
            out = {k: (list(v) if isinstance(v, list) else v) for k, v in p.items()}
            out["counts"] = [c.copy() for c in p["counts"]]
            out["sets"] = [{c: list(s) for c, s in d.items()} for d in p["sets"]]
            continue
        out["count"] += p["count"]
        out["min"] = [min(a, b) for a, b in zip(out["min"], p["min"], strict=True)]
        out["max"] = [max(a, b) for a, b in zip(out["max"], p["max"], strict=True)]
        out["counts"] = [a + b for a, b in zip(out["counts"], p["counts"], strict=True)]
        for mine, theirs in zip(out["sets"], p["sets"], strict=True):
            for c, codes in theirs.items():
                mine[c] = _truncate(mine.get(c, []) + codes, l)
        out["sens"] = _truncate(out["sens"] + p["sens"], l)
    return out


# --------------------------------------------------------------------------- commit


def _numeric_cut(rule: Rule, st: dict, i: int):
    counts = st["counts"][i]
    left = np.cumsum(counts)[:-1]
    ld = rd = None
    if rule.l is not None:
        sets = st["sets"][i]
        acc: set = set()
        ld = np.zeros(len(left), dtype=np.int64)
        for j in range(len(left)):
            acc |= set(sets.get(j, []))
            ld[j] = len(acc)
        acc = set()
        rd = np.zeros(len(left), dtype=np.int64)
        for j in range(len(left) - 1, -1, -1):
            acc |= set(sets.get(j + 1, []))
            rd[j] = len(acc)
    j = numeric_threshold(rule, st["count"], left, ld, rd)
    if j is None:
        return None
    return j, [int(left[j]), int(st["count"] - left[j])]


def _categorical_cut(rule: Rule, d: Dimension, st: dict, i: int):
    counts = st["counts"][i]
    present = np.flatnonzero(counts)
    level, child_of_leaf = d.hierarchy.child_groups(present)
    if level < 0:
        return None
    n_child = len(d.hierarchy.names[level])
    child_counts = np.bincount(child_of_leaf[present], weights=counts[present], minlength=n_child)
    sets = None
    if rule.l is not None:
        sets = [set() for _ in range(n_child)]
        for leaf, codes in st["sets"][i].items():
            sets[child_of_leaf[leaf]] |= set(codes)
        sets = [frozenset(s) for s in sets]
    sides = group_children(rule, child_counts.astype(np.int64).tolist(), sets)
    if sides is None:
        return None
    side_of_child = [0] * n_child
    for side, members in enumerate(sides):
        for c in members:
            side_of_child[c] = side
    return level, side_of_child, [int(child_counts[m].sum()) for m in sides]


def _child_regions(d: Dimension, region, st: dict, i: int, j: int):
    lo, hi = region
    pmin, pmax = st["min"][i], st["max"][i]
    if d.is_int:
        w = max(1, math.ceil((hi - lo + 1) / BINS))
        edge = lo + (j + 1) * w
        return [[pmin, min(pmax, edge - 1)], [max(pmin, edge), pmax]]
    edge = lo + (hi - lo) * (j + 1) / BINS
    return [[pmin, edge], [edge, pmax]]


def commit(
    tree: dict,
    stats: Sequence[tuple[str, dict]],
    dims: Sequence[Dimension],
    rule: Rule,
    ranges: dict,
    local_rows: int,
) -> dict:
    """The tree after one round: each active partition cut with the shared rule, or a leaf."""
    nodes = [dict(n) for n in tree["nodes"]]
    by_id = dict(stats)
    spans = global_ranges(dims, ranges)
    for i in range(len(nodes)):
        node = nodes[i]
        if not node.get("active"):
            continue
        node["active"] = False
        st = by_id.get(node["id"])
        if st is None:
            node["count"] = 0
            continue
        node["count"] = st["count"]
        widths = []
        for di, d in enumerate(dims):
            if d.numeric:
                span = spans[di][1] - spans[di][0] if spans[di] else 0.0
                widths.append((st["max"][di] - st["min"][di]) / span if span > 0 else 0.0)
            else:
                widths.append(d.hierarchy.width(np.flatnonzero(st["counts"][di])))
        for di in dimension_order(widths):
            d = dims[di]
            if d.numeric:
                found = _numeric_cut(rule, st, di)
                if found is None:
                    continue
                j, side_counts = found
                regions = _child_regions(d, node["region"][di], st, di, j)
                node["cut"] = {"dim": di, "bin": j}
            else:
                found = _categorical_cut(rule, d, st, di)
                if found is None:
                    continue
                level, side_of_child, side_counts = found
                regions = [None] * len(side_counts)
                node["cut"] = {"dim": di, "level": level, "side_of_child": side_of_child}
            children = []
            for side, count in enumerate(side_counts):
                region = [list(r) if r else None for r in node["region"]]
                if regions[side] is not None:
                    region[di] = regions[side]
                children.append(len(nodes))
                nodes.append(
                    {
                        "id": f"{node['id']}.{side}",
                        "count": count,
                        "region": region,
                        "cut": None,
                        "active": count > local_rows and count >= 2 * rule.k,
                    }
                )
            node["cut"]["children"] = children
            break
    return {"nodes": nodes, "top_up": tree.get("top_up")}


def choose_top_up(tree: dict, rule: Rule, ranges: dict) -> dict:
    """The tree with `top_up` set to the id of the leaf whose smallest class joins the
    suppressed records, when they alone would not satisfy the rule (None otherwise)."""
    from transforms.anonymize.release import needs_top_up

    distinct = len(ranges["unplaced_sens"]) if rule.l is not None else None
    unplaced = ranges["rows"] - ranges["placeable"]
    root_ok = rule.ok(ranges["placeable"], len(ranges["sens"]) if rule.l is not None else None)
    top_up = None
    if root_ok and needs_top_up(rule, unplaced, distinct):
        candidates = [tree["nodes"][i] for i in leaves(tree) if tree["nodes"][i]["count"] > 0]
        top_up = min(candidates, key=lambda n: (n["count"], n["id"]))["id"]
    return {"nodes": tree["nodes"], "top_up": top_up}
