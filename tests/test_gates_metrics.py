"""Gate metrics: k-anonymity / l-diversity (whole table and merged batches), ldp domain counts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from privgate.errors import DataError
from tests.gates_data import QI_TABLE, gates_schema, ldp_output
from transforms.gates import metrics


@pytest.mark.parametrize(
    "k, min_size, classes_below, records_below, passed",
    [
        (1, 1, 0, 0, True),  # every class has at least one record
        (2, 1, 3, 3, False),  # the three singletons
        (3, 1, 5, 7, False),  # singletons + the two pairs (null,null) and (40,100)
        (4, 1, 6, 10, False),  # every class
    ],
)
def test_k_anonymity_exact_on_hand_built_table(k, min_size, classes_below, records_below, passed):
    r = metrics.k_anonymity(QI_TABLE, ["age", "zip"], k)
    assert r["records"] == 10
    assert r["classes"] == 6
    assert r["min_class_size"] == min_size
    assert r["classes_below_k"] == classes_below
    assert r["records_below_k"] == records_below
    assert r["passed"] is passed


def test_k_anonymity_nulls_form_their_own_class():
    t = pa.table({"a": pa.array([None, None, None], pa.int64()), "b": [None, None, None]})
    r = metrics.k_anonymity(t, ["a", "b"], 3)
    assert (r["classes"], r["min_class_size"], r["passed"]) == (1, 3, True)


def test_k_anonymity_histogram_buckets():
    sizes = [1] * 3 + [2] * 4 + [7] * 5 + [120] * 2
    keys = np.repeat(np.arange(len(sizes)), sizes)
    r = metrics.k_anonymity(pa.table({"q": keys}), ["q"], 5)
    hist = {h["size"]: (h["classes"], h["records"]) for h in r["histogram"]}
    assert hist["1"] == (3, 3)
    assert hist["2"] == (4, 8)
    assert hist["5-9"] == (5, 35)
    assert hist["100+"] == (2, 240)
    assert hist["3"] == (0, 0)
    assert sum(c for c, _ in hist.values()) == r["classes"]
    assert sum(n for _, n in hist.values()) == r["records"] == sum(sizes)


def test_k_anonymity_empty_table_is_vacuously_anonymous():
    r = metrics.k_anonymity(QI_TABLE.slice(0, 0), ["age", "zip"], 5)
    assert (r["records"], r["classes"], r["min_class_size"], r["passed"]) == (0, 0, None, True)


@pytest.mark.parametrize("cut", [1, 4, 7])
def test_merged_partial_counts_equal_whole_table(cut):
    cols = ["age", "zip", "dx"]
    parts = [
        metrics.class_counts(QI_TABLE.slice(0, cut), cols),
        metrics.class_counts(QI_TABLE.slice(cut), cols),
    ]
    merged = metrics.merge_class_counts(parts, cols)
    assert metrics.k_anonymity_from_counts(merged, ["age", "zip"], 2) == metrics.k_anonymity(
        QI_TABLE, ["age", "zip"], 2
    )
    assert metrics.l_diversity_from_counts(merged, ["age", "zip"], "dx", 2) == metrics.l_diversity(
        QI_TABLE, ["age", "zip"], "dx", 2
    )


def test_merged_partial_counts_equal_whole_table_random_batches():
    rng = np.random.default_rng(3)
    t = pa.table({"a": rng.integers(0, 20, 5000), "b": rng.choice(["x", "y", "z"], 5000)})
    parts = [
        metrics.class_counts(b, ["a", "b"])
        for b in t.to_batches(max_chunksize=700)
        for b in [pa.Table.from_batches([b])]
    ]
    assert len(parts) > 5
    merged = metrics.merge_class_counts(parts, ["a", "b"])
    assert metrics.k_anonymity_from_counts(merged, ["a", "b"], 200) == metrics.k_anonymity(
        t, ["a", "b"], 200
    )


def test_l_diversity_from_counts_grouped_by_more_columns():
    # partial counts over (age, zip, dx): l-diversity over age alone must re-aggregate first
    counts = metrics.class_counts(QI_TABLE, ["age", "zip", "dx"])
    assert metrics.l_diversity_from_counts(counts, ["age"], "dx", 2) == metrics.l_diversity(
        QI_TABLE, ["age"], "dx", 2
    )
    assert metrics.l_diversity(QI_TABLE, ["age"], "dx", 2)["min_l"] == 1  # age 50: {flu}


@pytest.mark.parametrize(
    "l, min_l, classes_below, records_below, passed",
    [
        (1, 1, 0, 0, True),
        # distinct dx per class: (30,941) {flu,cold}=2, (40,100) {flu}=1, (null,null) {cold,null}=2,
        # (50,200) 1, (30,null) 1, (40,941) 1
        (2, 1, 4, 5, False),
        (3, 1, 6, 10, False),
    ],
)
def test_l_diversity_exact(l, min_l, classes_below, records_below, passed):  # noqa: E741
    r = metrics.l_diversity(QI_TABLE, ["age", "zip"], "dx", l)
    assert r["classes"] == 6
    assert r["min_l"] == min_l
    assert r["classes_below_l"] == classes_below
    assert r["records_below_l"] == records_below
    assert r["passed"] is passed


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: metrics.k_anonymity(QI_TABLE, ["nope"], 2), DataError),  # unknown column
        (lambda: metrics.k_anonymity(QI_TABLE, [], 2), ValueError),  # no quasi-identifier
        (lambda: metrics.k_anonymity(QI_TABLE, ["age", "age"], 2), ValueError),
        (lambda: metrics.k_anonymity(QI_TABLE, ["age"], 0), ValueError),  # k < 1
        (lambda: metrics.k_anonymity(QI_TABLE, ["age"], True), ValueError),
        (lambda: metrics.l_diversity(QI_TABLE, ["age", "dx"], "dx", 2), ValueError),
    ],
)
def test_k_l_bad_arguments(call, exc):
    with pytest.raises(exc):
        call()


def test_k_anonymity_1e5_rows_is_fast():
    import time

    rng = np.random.default_rng(0)
    n = 100_000
    t = pa.table(
        {"a": rng.integers(0, 80, n), "b": rng.choice(["x", "y"], n), "c": rng.integers(0, 300, n)}
    )
    start = time.perf_counter()
    r = metrics.k_anonymity(t, ["a", "b", "c"], 5)
    assert time.perf_counter() - start < 1.0
    assert r["records"] == n


def test_ldp_domain_counts_merge():
    t = ldp_output(100)
    parts = [
        metrics.ldp_domain_counts(t.slice(0, 40), gates_schema()),
        metrics.ldp_domain_counts(t.slice(40), gates_schema()),
    ]
    assert metrics.merge_ldp_domain_counts(parts) == metrics.ldp_domain_counts(t, gates_schema())
