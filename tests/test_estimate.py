"""Unbiased estimates from ldp columns (privgate.estimate), the consumer API of a training job.

Estimators are checked over many seeded releases: unbiased within 4 standard errors of the
mean z-score, and their reported standard errors match the real spread.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from privgate import estimate as est
from schemas.columns import parse_schema
from schemas.ldp import LdpSpec
from tests.test_ldp_mechanisms import MOMENT_CASES, SeededSource, numeric
from transforms.ldp.column import apply_ldp
from transforms.ldp.mechanisms import build_mechanism

# --------------------------------------------------------------------------- estimators


ESTIMATOR_REPEATS = 200
ESTIMATOR_N = 2000


def _z_scores_mean(name, integer, population):
    mech = numeric(name, 1.0, integer)
    typ = "int" if integer or name == "geometric" else "float"
    truth = float(np.mean(np.clip(population, mech.lower, mech.upper)))
    src = SeededSource(23)
    z = []
    for _ in range(ESTIMATOR_REPEATS):
        y = mech.perturb(population, src)
        e = est.estimate_mean(
            pa.array(y), mechanism=name, epsilon=1.0, bounds=[mech.lower, mech.upper], type=typ
        )
        z.append((e.mean - truth) / e.std_error)
    return np.array(z)


@pytest.mark.parametrize("name, integer", MOMENT_CASES)
def test_mean_estimator_unbiased_with_calibrated_standard_error(name, integer):
    mech = numeric(name, 1.0, integer)
    x = mech.lower + 0.3 * (mech.upper - mech.lower)
    population = np.full(ESTIMATOR_N, round(x) if integer else x)
    z = _z_scores_mean(name, integer, population)
    assert abs(z.mean()) < 4 / math.sqrt(ESTIMATOR_REPEATS)
    assert 0.82 < z.std() < 1.18  # the reported s.e. is the real spread


@pytest.mark.parametrize("name", ["piecewise", "geometric"])
def test_mean_estimator_on_mixed_values_is_unbiased_and_conservative(name):
    integer = name == "geometric"
    mech = numeric(name, 1.0, integer)
    pop = np.linspace(mech.lower - 10, mech.upper + 10, ESTIMATOR_N)
    z = _z_scores_mean(name, integer, np.rint(pop) if integer else pop)
    assert abs(z.mean()) < 4 / math.sqrt(ESTIMATOR_REPEATS)
    assert z.std() < 1.1


@pytest.mark.parametrize(
    "mechanism, cats, truth",
    [
        ("grr", ["female", "male", "other"], [0.5, 0.3, 0.2]),
        ("grr", ["a", "b", "c", "d", "e"], [0.05, 0.05, 0.1, 0.2, 0.6]),
        ("rr", None, [0.8, 0.2]),
    ],
)
def test_frequency_estimator_unbiased_with_calibrated_standard_error(mechanism, cats, truth):
    n = ESTIMATOR_N
    counts = np.round(np.array(truth) * n).astype(int)
    idx = np.repeat(np.arange(len(truth)), counts)
    if mechanism == "rr":
        values, typ = pa.array(idx.astype(bool)), "bool"
    else:
        values, typ = pa.array(np.array(cats)[idx]), "string"
    src = SeededSource(29)
    z = []
    for _ in range(ESTIMATOR_REPEATS):
        spec = LdpSpec(type=typ, mechanism=mechanism, epsilon=1.0, categories=cats)
        out, bad = apply_ldp(values, spec, source=src)
        assert not bad.any()
        e = est.estimate_frequencies(
            out, mechanism=mechanism, epsilon=1.0, categories=cats, type=typ
        )
        z.append((e.frequencies - counts / n) / e.std_errors)
        assert e.counts.sum() == pytest.approx(n)
    z = np.array(z)
    assert np.all(np.abs(z.mean(axis=0)) < 4 / math.sqrt(ESTIMATOR_REPEATS))
    assert np.all((z.std(axis=0) > 0.82) & (z.std(axis=0) < 1.18))


def test_out_of_list_values_in_the_default_bucket_keep_the_estimates_unbiased():
    """Issue 13.5: an out-of-list value is reported in the default `other` bucket, one more
    category of the mechanism's domain, so every declared category's de-biased frequency stays
    unbiased and `other` estimates the out-of-list share. Over 200 seeded releases of 2,000
    records, the mean z-score of each category is within 4 / sqrt(200) of 0 (4 standard
    errors of that mean) and the z-scores' spread is 1 within 18% (as the test above)."""
    schema = parse_schema(
        {
            "columns": {
                "g": {"type": "string", "action": "ldp", "epsilon": 1.0, "categories": ["f", "m"]}
            }
        }
    )
    spec = schema.column("g").ldp_params
    metadata = spec.to_metadata(build_mechanism(spec))
    n, truth = ESTIMATOR_N, np.array([0.5, 0.3, 0.2])
    raw = ["f"] * 1000 + ["m"] * 600 + ["robot", "alien"] * 200  # 20% outside the list
    values = pa.array(raw)
    src = SeededSource(53)
    z = []
    for _ in range(ESTIMATOR_REPEATS):
        out, bad = apply_ldp(values, spec, source=src)
        assert not bad.any()
        e = est.estimate_from_metadata(out, metadata)
        assert e.categories == ("f", "m", "other") and e.n == n
        z.append((e.frequencies - truth) / e.std_errors)
    z = np.array(z)
    assert np.all(np.abs(z.mean(axis=0)) < 4 / math.sqrt(ESTIMATOR_REPEATS))
    assert np.all((z.std(axis=0) > 0.82) & (z.std(axis=0) < 1.18))


def test_estimators_refuse_the_wrong_kind_of_mechanism():
    with pytest.raises(ValueError):
        est.estimate_mean(pa.array([1.0]), mechanism="grr", epsilon=1.0, bounds=None)
    with pytest.raises(ValueError):
        est.estimate_frequencies(pa.array([1.0]), mechanism="laplace", epsilon=1.0)
    with pytest.raises(ValueError, match="outside its declared categories"):
        est.estimate_frequencies(
            pa.array(["x"]), mechanism="grr", epsilon=1.0, categories=["a", "b"]
        )


def test_metadata_round_trip_through_parquet(tmp_path):
    src = SeededSource(31)
    n = 5000
    age = pa.array(np.arange(n) % 70 + 18)
    gender = pa.array(np.array(["female", "male", "x"])[np.arange(n) % 3])
    smoker = pa.array(np.arange(n) % 4 == 0)
    cols = {
        "age": LdpSpec(type="int", mechanism=None, epsilon=1.0, bounds=[17, 90]),
        "gender": LdpSpec(
            type="string", mechanism=None, epsilon=1.0, categories=["female", "male"], other="other"
        ),
        "smoker": LdpSpec(type="bool", mechanism=None, epsilon=0.5),
    }
    arrays, fields = [], []
    for name, raw in (("age", age), ("gender", gender), ("smoker", smoker)):
        out, _ = apply_ldp(raw, cols[name], source=src)
        md = cols[name].to_metadata(build_mechanism(cols[name]))
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in md.items())
        arrays.append(out)
        fields.append(pa.field(name, out.type, metadata=md))
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)
    table = pq.read_table(path)
    schema = table.schema
    e_age = est.estimate_from_metadata(table["age"], schema.field("age").metadata)
    assert abs(e_age.mean - float(np.mean(np.clip(age, 17, 90)))) < 4 * e_age.std_error
    e_gender = est.estimate_from_metadata(table["gender"], schema.field("gender").metadata)
    assert e_gender.categories == ("female", "male", "other")
    assert np.all(np.abs(e_gender.frequencies - 1 / 3) < 4 * e_gender.std_errors)
    e_smoker = est.estimate_from_metadata(table["smoker"], schema.field("smoker").metadata)
    assert abs(e_smoker.frequencies[1] - 0.25) < 4 * e_smoker.std_errors[1]
    util = est.ldp_utility(schema.field("age").metadata, n)
    assert util["std_error"] == pytest.approx(util["noise_std"] / math.sqrt(n))
    spec = LdpSpec.from_metadata(schema.field("age").metadata)
    assert util["std_error"] == pytest.approx(
        est.standard_error(spec.mechanism, 1.0, [17, 90], n=n, type="int")
    )
    assert est.ldp_utility(schema.field("age").metadata, 0) == {
        "noise_std": util["noise_std"],
        "std_error": None,  # no released record: no estimate, not the n = 1 figure
    }
    assert util["noise_std"] == pytest.approx(
        math.sqrt(2 * math.exp(-1 / 73)) / (1 - math.exp(-1 / 73))
    )
    grid = json.loads(schema.field("age").metadata[b"privgate.ldp.grid"])
    assert grid["step"] == 1.0
    with pytest.raises(ValueError):
        est.estimate_from_metadata(table["age"], {})


def test_standard_error_scales_with_n():
    s1 = est.standard_error("piecewise", 1.0, [0, 250_000], n=100)
    s2 = est.standard_error("piecewise", 1.0, [0, 250_000], n=10_000)
    assert s1 == pytest.approx(10 * s2)
    assert est.standard_error("grr", 1.0, categories=["a", "b", "c"], n=1) > 0
