"""The exact local Mondrian gives, class for class, the output of its frozen pre-speed-up copy
(tests/mondrian_reference.py) on seeded random tables: same cuts, tie-breaks and numbering."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.anonymize import AnonymizeSpec, HierarchySpec, LDiversityRule
from tests.mondrian_reference import mondrian as reference_mondrian
from tests.test_anonymize_core import EDU
from transforms.anonymize.columns import dimensions, encode
from transforms.anonymize.local import mondrian
from transforms.anonymize.release import rule_of, value_ranges

# four levels, leaves of one node not adjacent in file order
JOB = HierarchySpec(
    "job.csv",
    (
        ("nurse", "care", "health", "*"),
        ("welder", "metal", "trade", "*"),
        ("doctor", "care", "health", "*"),
        ("smith", "metal", "trade", "*"),
        ("chemist", "lab", "health", "*"),
        ("plumber", "pipes", "trade", "*"),
        ("clerk", "office", "admin", "*"),
    ),
)
# not a tree (built by hand, so parse_hierarchy's checks did not run): "mixed" has two parents
MIXED = HierarchySpec(
    "mixed.csv",
    (
        ("a", "mixed", "P", "*"),
        ("b", "mixed", "Q", "*"),
        ("c", "solo", "P", "*"),
        ("d", "x", "Q", "*"),
    ),
)
SEX = HierarchySpec("sex.csv", (("F", "*"), ("M", "*")))
TOPS = HierarchySpec(  # a tree, but under two top nodes (built by hand too)
    "tops.csv", (("u", "U", "T1"), ("v", "U", "T1"), ("w", "W", "T2"), ("z", "W", "T2"))
)
HIERARCHIES = (("edu", EDU), ("job", JOB), ("mixed", MIXED), ("sex", SEX), ("tops", TOPS))


def _table(seed: int, n: int) -> pa.Table:
    """Ties (few distinct ages and scores), duplicated rows, nulls and values outside the
    hierarchies (unplaceable), a date and a float quasi-identifier."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 18 + rng.integers(3, 60), n)
    score = np.round(rng.normal(0, 1, n), int(rng.integers(0, 3)))
    born = [dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 20000, n)]
    edu = rng.choice([r[0] for r in EDU.rows] + ["Unknown"], n, p=[0.3, 0.2, 0.1, 0.2, 0.19, 0.01])
    job = rng.choice([r[0] for r in JOB.rows], n)
    mixed = rng.choice(["a", "b", "c", "d"], n)
    sex = rng.choice(["F", "M"], n)
    tops = rng.choice(["u", "v", "w", "z"], n, p=[0.4, 0.3, 0.2, 0.1])
    dx = rng.choice(["flu", "cold", "none", "asthma"], n, p=[0.55, 0.25, 0.15, 0.05])
    t = pa.table(
        {
            "age": pa.array(age, pa.int64(), mask=rng.random(n) < 0.01),
            "score": pa.array(score, pa.float64()),
            "born": pa.array(born, pa.date32()),
            "edu": pa.array(edu.tolist(), pa.string(), mask=rng.random(n) < 0.01),
            "job": job.tolist(),
            "mixed": mixed.tolist(),
            "sex": sex.tolist(),
            "tops": tops.tolist(),
            "dx": pa.array(dx.tolist(), pa.string(), mask=rng.random(n) < 0.02),
        }
    )
    dup = rng.integers(0, n, n // 5)  # exact duplicates of a fifth of the rows
    return pa.concat_tables([t, t.take(pa.array(dup))])


def _both(table: pa.Table, spec: AnonymizeSpec, widen: float = 0.0):
    dims = dimensions(spec, table.schema)
    enc = encode(table, dims, spec.l_diversity.sensitive if spec.l_diversity else None)
    # `widen`: global ranges wider than the table's, as a Beam leaf partition sees them
    ranges = [r and (r[0] - widen, r[1] + widen) for r in value_ranges(dims, enc)]
    return (
        reference_mondrian(dims, enc, rule_of(spec), ranges),
        mondrian(dims, enc, rule_of(spec), ranges),
    )


def _spec(qis, k, l=None):  # noqa: E741
    return AnonymizeSpec(
        k=k,
        quasi_identifiers=qis,
        hierarchies=tuple(h for h in HIERARCHIES if h[0] in qis),
        l_diversity=LDiversityRule("dx", l) if l else None,
    )


QI_SETS = [
    ("age", "score", "born", "edu", "job", "mixed", "sex"),
    ("age", "edu"),
    ("score", "born"),
    ("edu", "job", "sex"),
    ("job", "mixed"),
    ("tops", "age", "sex"),
]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("qis", QI_SETS)
@pytest.mark.parametrize("k,l", [(2, None), (5, None), (3, 2), (4, 3)])
def test_same_classes_as_the_frozen_reference(seed, qis, k, l):  # noqa: E741
    table = _table(seed, 400 + 150 * seed)
    (want, want_n), (got, got_n) = _both(table, _spec(qis, k, l), widen=3.0 * (seed % 2))
    assert got_n == want_n
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


def test_hierarchies_that_are_not_one_tree_take_the_per_level_columns():
    # the golden tables hold both kinds of categorical dimension
    from transforms.anonymize.hierarchy import Hierarchy
    from transforms.anonymize.local import _tree_order

    assert _tree_order(Hierarchy(MIXED)) is None and _tree_order(Hierarchy(TOPS)) is None
    # nodes coded in file order: health < trade < admin, care < metal < lab < pipes < office
    order = _tree_order(Hierarchy(JOB))
    assert [JOB.rows[i][0] for i in order] == [
        "nurse", "doctor", "chemist", "welder", "smith", "plumber", "clerk"
    ]  # fmt: skip


def test_the_reference_tables_are_cut_deep():
    # the comparison above means something only if the tables are cut into many classes
    # and hold unplaceable rows
    (want, n), _ = _both(_table(0, 400), _spec(QI_SETS[0], 2))
    assert n > 100 and (want == -1).any()
    (want, n), _ = _both(_table(1, 550), _spec(QI_SETS[0], 3, 2))
    assert n > 40


def test_same_classes_on_a_large_table():
    table = _table(11, 20_000)
    (want, want_n), (got, got_n) = _both(table, _spec(QI_SETS[0], 5))
    assert got_n == want_n > 1000
    np.testing.assert_array_equal(got, want)


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 6)),
            st.sampled_from([-0.0, 0.0, 0.5, 1.5, 2.0]),
            st.sampled_from([r[0] for r in JOB.rows] + ["?"]),
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from(["x", "y", "z", None]),
        ),
        max_size=60,
    ),
    k=st.integers(1, 6),
    l=st.one_of(st.none(), st.integers(1, 3)),  # noqa: E741
)
def test_same_classes_on_small_tables(rows, k, l):  # noqa: E741
    # small partitions near 2k, n = 2k exactly, k = 1, signed zeros, one distinct value
    table = pa.table(
        {
            "age": pa.array([r[0] for r in rows], pa.int64()),
            "score": pa.array([r[1] for r in rows], pa.float64()),
            "job": pa.array([r[2] for r in rows], pa.string()),
            "mixed": pa.array([r[3] for r in rows], pa.string()),
            "dx": pa.array([r[4] for r in rows], pa.string()),
        }
    )
    (want, want_n), (got, got_n) = _both(table, _spec(("age", "score", "job", "mixed"), k, l))
    assert got_n == want_n
    np.testing.assert_array_equal(got, want)
