"""The column-level ldp API: apply_ldp over pyarrow columns, memoized noise, noise domains."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from schemas.ldp import LdpSpec
from tests.test_ldp_mechanisms import SeededSource, numeric
from transforms.ldp.column import apply_ldp, memoized_source, noise_domain
from transforms.ldp.mechanisms import GrrMechanism

# --------------------------------------------------------------------------- apply_ldp


@pytest.mark.parametrize(
    "typ, values, kw, arrow_type",
    [
        ("int", [20, None, 95, 5], {"bounds": [17, 90]}, pa.int64()),
        ("int", [20, None, 95, 5], {"bounds": [17, 90], "mechanism": "piecewise"}, pa.int64()),
        ("float", [1.5, None, 3e9], {"bounds": [0, 250_000]}, pa.float64()),
        ("string", ["male", None, "female"], {"categories": ["female", "male"]}, pa.string()),
        ("bool", [True, None, False], {}, pa.bool_()),
    ],
)
def test_apply_ldp_keeps_types_and_nulls(typ, values, kw, arrow_type):
    arr = pa.array(values)
    out, bad = apply_ldp(arr, LdpSpec(type=typ, epsilon=1.0, **kw), source=SeededSource(37))
    assert out.type == arrow_type and len(out) == len(arr)
    assert out.is_null().to_pylist() == arr.is_null().to_pylist()
    assert not bad.any()


def test_apply_ldp_marks_out_of_category_values_bad_unless_other():
    arr = pa.chunked_array([["female", "SECRET-VALUE"], [None, "male"]])
    spec = LdpSpec(type="string", epsilon=1.0, categories=["female", "male"])
    out, bad = apply_ldp(arr, spec, source=SeededSource(41))
    assert bad.tolist() == [False, True, False, False]
    assert out.is_null().to_pylist() == [False, True, True, False]
    spec = LdpSpec(type="string", epsilon=50.0, categories=["female", "male"], other="other")
    out, bad = apply_ldp(arr, spec, source=SeededSource(41))
    assert not bad.any()
    assert out.to_pylist() == ["female", "other", None, "male"]  # eps 50: kept w.p. ~1


def test_apply_ldp_counts_nan_as_the_lower_bound_and_clips_infinities():
    """Issue 13.5: marking NaN bad (to quarantine) decided on the private value. NaN now
    counts as the lower bound and infinities are clipped: nothing is bad, and NaN shares
    the noise of the lower bound (epsilon 50 keeps the inputs: outputs near 0, 10, 0)."""
    arr = pa.array([float("nan"), float("inf"), -float("inf"), 0.0])
    spec = LdpSpec(type="float", epsilon=50.0, bounds=[0, 10])
    out, bad = apply_ldp(arr, spec, source=SeededSource(43))
    assert not bad.any() and out.null_count == 0
    y = out.to_numpy(zero_copy_only=False)
    assert np.isfinite(y).all() and abs(y[0]) < 1 and abs(y[1] - 10) < 1 and abs(y[2]) < 1
    src = memoized_source(KEY, ["r", "r"], "x", arr[::3], 1, spec, record_key="id", dataset="d")
    assert len(set(apply_ldp(arr[::3], spec, source=src)[0].to_pylist())) == 1


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"type": "float", "mechanism": "geometric", "bounds": [0, 1]}, "does not serve"),
        ({"type": "bool", "mechanism": "grr"}, "does not serve"),
        ({"type": "float", "mechanism": "gaussian", "bounds": [0, 1]}, "unknown mechanism"),
        ({"type": "float"}, "need bounds"),
        ({"type": "float", "bounds": [5, 5]}, "lower < upper"),
        ({"type": "int", "bounds": [0.5, 9]}, "whole numbers"),
        ({"type": "string", "categories": ["a"]}, "at least 2"),
        ({"type": "string", "categories": ["a", "a"]}, "distinct"),
        ({"type": "bool", "epsilon": 0.0}, "epsilon"),
        ({"type": "bool", "epsilon": float("nan")}, "epsilon"),
        ({"type": "date", "bounds": [0, 1]}, "unsupported column type"),
    ],
)
def test_apply_ldp_rejects_bad_config(kw, match):
    kw = {"epsilon": 1.0, **kw}
    with pytest.raises(ValueError, match=match):
        apply_ldp(pa.array([1]), LdpSpec(**kw), source=SeededSource(0))


def test_errors_never_carry_values():
    with pytest.raises(ValueError) as e:
        GrrMechanism(1.0, 3).perturb(np.array([7654321]), SeededSource(0))
    assert "7654321" not in str(e.value)
    with pytest.raises(ValueError) as e:
        numeric("laplace").perturb(np.array([float("nan"), 1234.5]), SeededSource(0))
    assert "1234.5" not in str(e.value)
    # Arrow's own cast errors quote the value; apply_ldp replaces them.
    for typ, arr in (
        ("int", pa.array([2**64 - 7], pa.uint64())),
        ("float", pa.array(["98765-secret"])),
    ):
        with pytest.raises(ValueError) as e:
            apply_ldp(arr, LdpSpec(type=typ, epsilon=1.0, bounds=[0, 9]), source=SeededSource(0))
        assert "secret" not in str(e.value) and str(2**64 - 7) not in str(e.value)


# --------------------------------------------------------------------------- memoization

KEY = bytes(range(32))


def _memo_run(values, key=KEY, epsilon=1.0, rks=None, column="income", **cfg):
    spec = LdpSpec(
        **{"type": "float", "mechanism": "piecewise", "bounds": [0, 250_000], **cfg},
        epsilon=epsilon,
    )
    rks = rks or [f"c{i}" for i in range(len(values))]
    arr = pa.array(values)
    src = memoized_source(key, rks, column, arr, 1, spec, record_key="id", dataset="ds")
    return apply_ldp(arr, spec, source=src)[0].to_pylist()


def test_memoized_apply_ldp_repeats_and_redraws_on_change():
    values = [1000.0, 50_000.0, None, 250_000.0, 300_000.0]
    first = _memo_run(values)
    assert first == _memo_run(values)  # re-run: same release
    assert first[2] is None
    changed = _memo_run([1000.0, 50_001.0, None, 250_000.0, 300_000.0])
    assert changed[0] == first[0] and changed[3:] == first[3:]
    assert changed[1] != first[1]
    assert _memo_run(values, key=bytes(32)) != first
    assert _memo_run(values, epsilon=2.0) != first  # config change: fresh, not correlated

    # The PRF input is the value itself (not only the record key): fresh uniforms.
    def uniforms(vals):
        spec = LdpSpec(type="float", mechanism="piecewise", epsilon=1.0, bounds=[0, 250_000])
        return memoized_source(
            KEY, ["c0", "c1"], "income", pa.array(vals), 1, spec, record_key="id", dataset="ds"
        ).uniforms(2, 2)

    u1, u2 = uniforms([1000.0, 50_000.0]), uniforms([1000.0, 50_001.0])
    assert np.array_equal(u1[0], u2[0]) and not np.any(u1[1] == u2[1])
    # Values the mechanism sees as equal (both clipped to U) share a record's noise.
    same_rk = ["c0", "c0"]
    assert len(set(_memo_run([250_000.0, 999_999.0], rks=same_rk))) == 1


@pytest.mark.parametrize(
    "typ, values, kw",
    [
        ("int", [20, 40, None], {"bounds": [17, 90]}),
        ("string", ["a", "zz", None], {"categories": ["a", "b"], "other": "o"}),
        ("bool", [True, False, None], {}),
    ],
)
def test_memoized_every_type_is_reproducible(typ, values, kw):
    """Same key, record keys and values: the same release. And the noise really comes from
    the key: another key (or other record keys) changes some of the 400 non-null outputs.
    Two independent releases of one record agree with probability at most 0.61 (bool, the
    worst of the three, at epsilon 1: p^2 + (1-p)^2 with p = e/(e+1)), so all 400 agreeing
    by chance has probability < 1e-80."""
    arr = pa.array(values * 200)
    rks = [f"r{i}" for i in range(len(arr))]

    spec = LdpSpec(type=typ, mechanism=None, epsilon=1.0, **kw)

    def run(key=KEY, rks=rks):
        src = memoized_source(key, rks, "c", arr, 1, spec, record_key="id", dataset="ds")
        return apply_ldp(arr, spec, source=src)[0].to_pylist()

    first = run()
    assert first == run()
    assert [v is None for v in first] == [v is None for v in arr.to_pylist()]
    assert first != run(key=bytes(b ^ 1 for b in KEY))
    assert first != run(rks=[f"s{i}" for i in range(len(arr))])


def test_the_record_key_column_and_the_dataset_key_the_noise():
    """Issue 13.1 and 13.2: the same rows keyed on another column, or released as another
    dataset, draw independent noise (so the ledger must charge them, and two datasets under
    one keyring cannot be linked through equal outputs)."""
    spec = LdpSpec(type="float", epsilon=1.0, bounds=[0, 10])

    def uniforms(record_key="id", dataset="ds"):
        src = memoized_source(
            KEY,
            ["r1", "r2"],
            "x",
            pa.array([1.0, 2.0]),
            1,
            spec,
            record_key=record_key,
            dataset=dataset,
        )
        return src.uniforms(2, 2)

    base = uniforms()
    assert np.array_equal(base, uniforms())
    assert not np.any(base == uniforms(record_key="ssn"))
    assert not np.any(base == uniforms(dataset="other"))
    domain = json.loads(noise_domain("x", spec, record_key="id", dataset="ds"))
    assert (domain["record_key"], domain["dataset"], domain["column"]) == ("id", "ds", "x")


# Noise domains as this version writes them: they key the PRF and the ledger's memoized
# charge, so a change re-draws all memoized noise and charges reruns again. (Issue 13 added
# the record-key column and the dataset, and the default `other` bucket of string columns.)
NOISE_DOMAINS = [
    (
        LdpSpec(type="float", epsilon=1.0, bounds=[0, 250000]),
        '{"bounds":["0.0","250000.0"],"categories":null,"column":"col","dataset":"ds",'
        '"epsilon":"1.0","mechanism":"piecewise","other":null,"record_key":"id","type":"float"}',
    ),
    (
        LdpSpec(type="int", epsilon=1.0, bounds=[17, 90]),
        '{"bounds":["17.0","90.0"],"categories":null,"column":"col","dataset":"ds",'
        '"epsilon":"1.0","mechanism":"geometric","other":null,"record_key":"id","type":"int"}',
    ),
    (
        LdpSpec(type="string", epsilon=1.0, categories=["female", "male"], other="other"),
        '{"bounds":null,"categories":["female","male","other"],"column":"col","dataset":"ds",'
        '"epsilon":"1.0","mechanism":"grr","other":"other","record_key":"id","type":"string"}',
    ),
    (
        LdpSpec(type="bool", mechanism="rr", epsilon=0.5),
        '{"bounds":null,"categories":null,"column":"col","dataset":"ds","epsilon":"0.5",'
        '"mechanism":"rr","other":null,"record_key":"id","type":"bool"}',
    ),
]


@pytest.mark.parametrize("spec, text", NOISE_DOMAINS, ids=lambda x: getattr(x, "type", None))
def test_noise_domain_is_unchanged(spec, text):
    assert noise_domain("col", spec, record_key="id", dataset="ds") == text
