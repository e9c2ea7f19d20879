"""The distributed rounds without Beam: a cut commits only with exact side counts >= k."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from schemas.anonymize import AnonymizeSpec, HierarchySpec, LDiversityRule
from transforms.anonymize import rounds
from transforms.anonymize.columns import dimensions, encode
from transforms.anonymize.release import rule_of

EDU = HierarchySpec(
    "edu.csv",
    (("BA", "Higher", "*"), ("MA", "Higher", "*"), ("HS", "School", "*"), ("GED", "School", "*")),
)


def _run_rounds(table: pa.Table, spec: AnonymizeSpec, batches: int, n_rounds: int):
    dims = dimensions(spec, table.schema)
    rule = rule_of(spec)
    sens = spec.l_diversity.sensitive if spec.l_diversity else None
    l = rule.l  # noqa: E741
    parts = [
        table.slice(i, table.num_rows // batches + 1)
        for i in range(0, table.num_rows, table.num_rows // batches + 1)
    ]
    ranges = rounds.merge_ranges(
        [rounds.ranges_stats(dims, encode(p, dims, sens), l) for p in parts], len(dims), l
    )
    tree = rounds.root_tree(dims, ranges, rule, spec.local_rows)
    for _ in range(n_rounds):
        stats: dict[str, list] = {}
        for p in parts:
            enc = encode(p, dims, sens)
            leaf = rounds.assign(tree, dims, enc)
            for i in np.unique(leaf[leaf >= 0]).tolist():
                node = tree["nodes"][i]
                if node.get("active"):
                    st = rounds.partition_stats(
                        dims, enc, np.flatnonzero(leaf == i), node["region"], l
                    )
                    stats.setdefault(node["id"], []).append(st)
        merged = sorted((pid, rounds.merge_stats(s, l)) for pid, s in stats.items())
        tree = rounds.commit(tree, merged, dims, rule, ranges, spec.local_rows)
    return dims, tree


@pytest.mark.parametrize("l", [None, 2])
def test_committed_cuts_have_exact_side_counts_of_at_least_k(l):  # noqa: E741
    rng = np.random.default_rng(11)
    n = 5000
    table = pa.table(
        {
            "x": rng.lognormal(0, 2, n),  # skewed float: bin edges are approximate medians
            "age": rng.integers(0, 1000, n),
            "edu": rng.choice(["BA", "MA", "HS", "GED"], n, p=[0.6, 0.3, 0.05, 0.05]),
            "dx": rng.choice(["a", "b", "c"], n, p=[0.9, 0.05, 0.05]),
        }
    )
    spec = AnonymizeSpec(
        k=7,
        quasi_identifiers=("x", "age", "edu"),
        hierarchies=(("edu", EDU),),
        l_diversity=LDiversityRule("dx", l) if l else None,
        local_rows=40,
    )
    dims, tree = _run_rounds(table, spec, batches=4, n_rounds=8)
    nodes = tree["nodes"]
    assert sum(n["cut"] is not None for n in nodes) > 20  # the rounds really cut
    leaf = rounds.assign(tree, dims, encode(table, dims, "dx"))
    sizes = np.bincount(leaf, minlength=len(nodes))
    dx = np.array(table["dx"].to_pylist())
    for i, node in enumerate(nodes):
        if node["cut"] is None:  # a leaf: its recorded count is its real size, >= k
            assert sizes[i] == node["count"] >= 7
            if l:
                assert len(set(dx[leaf == i])) >= l
    assert sizes.sum() == n


def test_the_same_tree_whatever_the_batching():
    rng = np.random.default_rng(2)
    table = pa.table({"x": rng.normal(0, 1, 3000), "age": rng.integers(0, 90, 3000)})
    spec = AnonymizeSpec(k=5, quasi_identifiers=("x", "age"), local_rows=50)
    _, a = _run_rounds(table, spec, batches=1, n_rounds=6)
    _, b = _run_rounds(table, spec, batches=7, n_rounds=6)
    assert a == b
