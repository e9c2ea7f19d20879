"""Exact Mondrian: a golden table worked by hand, and properties on random tables."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.anonymize import AnonymizeSpec, HierarchySpec, LDiversityRule
from transforms.anonymize.release import anonymize_table

EDU = HierarchySpec(
    "edu.csv",
    (
        ("Bachelors", "Higher", "*"),
        ("Masters", "Higher", "*"),
        ("Doctorate", "Higher", "*"),
        ("HS-grad", "Secondary", "*"),
        ("11th", "Secondary", "*"),
    ),
)


def golden_table() -> pa.Table:
    return pa.table(
        {
            "id": list(range(8)),
            "age": [23, 25, 27, 29, 41, 45, 52, 60],
            "edu": ["Bachelors", "Masters", "Doctorate", "Bachelors"]
            + ["HS-grad", "11th", "HS-grad", "11th"],
        }
    )


def test_golden_table_worked_by_hand():
    # k=2 over (age, edu). Root: age range 37/37 = 1.0, edu under "*" 4/4 = 1.0: a tie goes
    # to the earlier QI, age. Sorted ages 23 25 27 29 | 41 45 52 60: the valid threshold
    # closest to half is 29 (4 | 4).
    # Left {23,25,27,29} (all Higher): age width 6/37, edu node "Higher" (3-1)/4 = 0.5 ->
    # edu first: children Bachelors(2), Masters(1), Doctorate(1); Bachelors alone is valid,
    # Masters+Doctorate (2) is valid -> {23,29 Bachelors} {25,27 Masters/Doctorate}.
    # Right {41,45,52,60} (all Secondary): age 19/37 = 0.51 > edu 0.25 -> age at 45:
    # {41,45} {52,60}.
    spec = AnonymizeSpec(k=2, quasi_identifiers=("age", "edu"), hierarchies=(("edu", EDU),))
    out, cert = anonymize_table(golden_table(), spec)
    rows = sorted(
        zip(out["id"].to_pylist(), out["age"].to_pylist(), out["edu"].to_pylist(), strict=True)
    )
    assert rows == [
        (0, "[23, 29]", "Bachelors"),
        (1, "[25, 27]", "Higher"),
        (2, "[25, 27]", "Higher"),
        (3, "[23, 29]", "Bachelors"),
        (4, "[41, 45]", "Secondary"),
        (5, "[41, 45]", "Secondary"),
        (6, "[52, 60]", "Secondary"),
        (7, "[52, 60]", "Secondary"),
    ]
    assert cert["k_reached"] == 2 and cert["classes"] == 4 and cert["suppressed"] == 0
    # NCP age: (6*2 + 2*2 + 4*2 + 8*2) / 37 / 8; edu: (0*2 + 0.5*2 + 0.25*4) / 8
    assert cert["ncp"]["age"] == pytest.approx((12 + 4 + 8 + 16) / 37 / 8)
    assert cert["ncp"]["edu"] == pytest.approx((0 + 1 + 1) / 8)
    assert cert["gcp"] == pytest.approx((cert["ncp"]["age"] + cert["ncp"]["edu"]) / 2)
    assert cert["discernibility"] == 4 * 4
    assert out.schema.field("age").type == pa.string()


def test_numeric_outputs_lower_and_midpoint():
    t = pa.table({"age": [20, 22, 30, 34]})
    low, _ = anonymize_table(
        t, AnonymizeSpec(k=2, quasi_identifiers=("age",), numeric_output="lower")
    )
    mid, _ = anonymize_table(
        t, AnonymizeSpec(k=2, quasi_identifiers=("age",), numeric_output="midpoint")
    )
    assert low["age"].to_pylist() == [20, 20, 30, 30] and low.schema.field("age").type == pa.int64()
    assert mid["age"].to_pylist() == [21.0, 21.0, 32.0, 32.0]


@pytest.mark.parametrize("output", ["interval", "lower", "midpoint"])
def test_released_types_are_the_ones_the_manifest_states(output):
    # the manifest's columns[].output_type comes from the spec, the files from released_schema
    from transforms.anonymize.release import released_schema
    from transforms.arrow import ARROW_TYPES

    declared = {"age": "int", "born": "date", "score": "float", "edu": "string", "n": "int"}
    schema = pa.schema([(c, ARROW_TYPES[t]) for c, t in declared.items()])
    spec = AnonymizeSpec(
        k=2,
        quasi_identifiers=("age", "born", "score", "edu"),
        hierarchies=(("edu", EDU),),
        numeric_output=output,
    )
    stated = {c: spec.released_output_type(c, t) for c, t in declared.items()}
    assert released_schema(schema, spec) == pa.schema(
        [(c, ARROW_TYPES[t]) for c, t in stated.items()]
    )
    assert stated["edu"] == "string" and stated["n"] == "int"
    want = {"interval": "string", "lower": "int", "midpoint": "float"}[output]
    assert stated["age"] == want
    assert stated["born"] == {"interval": "string", "lower": "date", "midpoint": "date"}[output]


def test_unplaceable_rows_suppressed_and_topped_up_to_k():
    # one null age: the suppressed class would hold 1 < k=3 record, so the smallest released
    # class joins it (3 + 1 = 4 suppressed), and every released class still has >= 3
    t = pa.table({"age": [1, 2, 3, 10, 11, 12, 13, None], "v": list(range(8))})
    out, cert = anonymize_table(
        t, AnonymizeSpec(k=3, quasi_identifiers=("age",), max_suppression=0.5)
    )
    assert cert["suppressed"] == 4 and cert["k_reached"] == 4
    nulls = [
        v for a, v in zip(out["age"].to_pylist(), out["v"].to_pylist(), strict=True) if a is None
    ]
    assert sorted(nulls) == [0, 1, 2, 7]
    assert cert["within_max_suppression"]


def test_too_small_input_is_wholly_suppressed():
    out, cert = anonymize_table(
        pa.table({"age": [1, 2]}), AnonymizeSpec(k=5, quasi_identifiers=("age",))
    )
    assert out["age"].null_count == 2 and cert["k_reached"] is None
    assert not cert["within_max_suppression"]


def test_l_diversity_is_a_cut_condition():
    # without l the ages cut in two; the left half holds one diagnosis only, so with l=2 the
    # cut is refused and one class remains
    t = pa.table({"age": [1, 2, 3, 4, 5, 6], "dx": ["a", "a", "a", "b", "c", "a"]})
    plain, c1 = anonymize_table(t, AnonymizeSpec(k=3, quasi_identifiers=("age",)))
    ldiv, c2 = anonymize_table(
        t,
        AnonymizeSpec(k=3, quasi_identifiers=("age",), l_diversity=LDiversityRule("dx", 2)),
    )
    assert c1["classes"] == 2 and c2["classes"] == 1 and c2["l_reached"] == 3


# --------------------------------------------------------------------------- properties

LEAVES = [r[0] for r in EDU.rows]


def _interval_holds(released: str, value: float) -> bool:
    lo, hi = (float(x) for x in re.fullmatch(r"\[(.+), (.+)\]", released).groups())
    return lo <= value <= hi


def _covers(node: str, leaf: str) -> bool:
    return any(r[0] == leaf and node in r for r in EDU.rows)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 40)),
            st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 2)),
            st.sampled_from(LEAVES),
            st.sampled_from(["x", "y", "z"]),
        ),
        min_size=0,
        max_size=120,
    ),
    k=st.integers(2, 6),
    l=st.one_of(st.none(), st.integers(2, 3)),  # noqa: E741
)
def test_release_properties(rows, k, l):  # noqa: E741
    t = pa.table(
        {
            "id": list(range(len(rows))),
            "age": pa.array([r[0] for r in rows], pa.int64()),
            "score": pa.array([r[1] for r in rows], pa.float64()),
            "edu": pa.array([r[2] for r in rows], pa.string()),
            "dx": pa.array([r[3] for r in rows], pa.string()),
        }
    )
    spec = AnonymizeSpec(
        k=k,
        quasi_identifiers=("age", "score", "edu"),
        hierarchies=(("edu", EDU),),
        l_diversity=LDiversityRule("dx", l) if l else None,
    )
    out, cert = anonymize_table(t, spec)
    assert out.num_rows == t.num_rows and out["id"].to_pylist() == list(range(len(rows)))
    classes: dict[tuple, list[int]] = {}
    suppressed = []
    for i, (a, s, e) in enumerate(
        zip(*(out[c].to_pylist() for c in ("age", "score", "edu")), strict=True)
    ):
        if a is None:
            assert s is None and e is None  # a suppressed record loses every QI
            suppressed.append(i)
            continue
        classes.setdefault((a, s, e), []).append(i)
        raw = rows[i]
        assert _interval_holds(a, raw[0]) and _interval_holds(s, raw[1]) and _covers(e, raw[2])
    # each record in exactly one class or suppressed
    assert sorted(suppressed + [i for m in classes.values() for i in m]) == list(range(len(rows)))
    for members in classes.values():
        assert len(members) >= k
        if l:
            assert len({rows[i][3] for i in members}) >= l
    if suppressed:  # the all-null class is a class too
        assert len(suppressed) >= k or not classes
    assert cert["suppressed"] == len(suppressed) and cert["classes"] == len(classes)
    assert cert["k_reached"] == (min(map(len, classes.values())) if classes else None)
    if not any(r[0] is None for r in rows) and len(rows) >= k and not l:
        assert not suppressed  # plain Mondrian never needs to suppress a placeable record
    assert 0 <= cert["gcp"] <= 1


def test_class_numbering_does_not_depend_on_row_order():
    rng = np.random.default_rng(7)
    t = pa.table(
        {
            "id": np.arange(500),
            "age": rng.integers(0, 90, 500),
            "edu": rng.choice(LEAVES, 500),
        }
    )
    spec = AnonymizeSpec(k=4, quasi_identifiers=("age", "edu"), hierarchies=(("edu", EDU),))
    a, _ = anonymize_table(t, spec)
    perm = rng.permutation(500)
    b, _ = anonymize_table(t.take(perm), spec)
    assert a.sort_by("id").equals(b.sort_by("id"))


def test_date_quasi_identifier_is_cut_by_its_range():
    import datetime as dt

    days = [dt.date(1980, 1, 1), dt.date(1980, 6, 1), dt.date(1990, 1, 1), dt.date(1991, 1, 1)]
    t = pa.table({"born": pa.array(days, pa.date32())})
    out, cert = anonymize_table(t, AnonymizeSpec(k=2, quasi_identifiers=("born",)))
    assert (
        out["born"].to_pylist()
        == ["[1980-01-01, 1980-06-01]"] * 2 + ["[1990-01-01, 1991-01-01]"] * 2
    )
    assert cert["ncp"]["born"] == pytest.approx(
        (152 + 365) / (dt.date(1991, 1, 1) - days[0]).days / 2
    )
    low, _ = anonymize_table(
        t, AnonymizeSpec(k=2, quasi_identifiers=("born",), numeric_output="lower")
    )
    assert low.schema.field("born").type == pa.date32()
    assert low["born"].to_pylist() == [days[0], days[0], days[2], days[2]]
    mid, _ = anonymize_table(
        t, AnonymizeSpec(k=2, quasi_identifiers=("born",), numeric_output="midpoint")
    )
    assert mid["born"].to_pylist()[0] == dt.date(1980, 3, 17)  # 152 days / 2, rounded down
