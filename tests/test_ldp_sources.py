"""Uniform sources: 53-bit uniforms from os.urandom, and the keyed PRF of memoized noise.

Also that every mechanism draws only from its source (never a PRNG), in one call per batch.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import hmac
import math
import os
import pickle
import random

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

import transforms.ldp as ldp_package
from schemas.ldp import LdpSpec
from tests.test_ldp_mechanisms import NUMERIC, SeededSource, numeric
from transforms.ldp import column, mechanisms, sources
from transforms.ldp.column import apply_ldp
from transforms.ldp.mechanisms import MECHANISMS, GrrMechanism, RrMechanism, build_mechanism
from transforms.ldp.sources import (
    PRF_DOMAIN,
    UNIFORMS_PER_DIGEST,
    KeyedPrfSource,
    SecureRandomSource,
)

# --------------------------------------------------------------------------- randomness


def test_secure_source_gives_53_bit_uniforms():
    u = SecureRandomSource().uniforms(50_000, 3)
    assert u.shape == (50_000, 3) and u.dtype == np.float64
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.all(u * 2.0**53 == np.floor(u * 2.0**53))  # exact multiples of 2**-53
    # A broken source (constant, truncated bits, shared columns) fails these at 1e-6.
    for j in range(3):
        assert stats.kstest(u[:, j], "uniform").pvalue > 1e-6
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 5 / math.sqrt(50_000)


def _all_columns():
    """(type, mechanism, values, kwargs) for every mechanism through apply_ldp."""
    n = 1000
    ages = pa.array(np.arange(n) % 80 + 10)
    income = pa.array(np.linspace(-10.0, 300_000.0, n))
    cases = [("int", "geometric", ages, {"bounds": [17, 90]})]
    for m in NUMERIC:
        cases.append(("float", m, income, {"bounds": [0, 250_000]}))
        cases.append(("int", m, ages, {"bounds": [17, 90]}))
    cases.append(
        (
            "string",
            "grr",
            pa.array(["female", "male", "other", "male"] * 250),
            {"categories": ["female", "male", "other"]},
        )
    )
    cases.append(("bool", "rr", pa.array([True, False] * 500), {}))
    return cases


@pytest.mark.parametrize(
    "typ, mech, values, kw", _all_columns(), ids=lambda c: c if isinstance(c, str) else None
)
def test_mechanisms_draw_only_from_os_urandom(monkeypatch, typ, mech, values, kw):
    def refuse(*a, **k):
        raise AssertionError("non-cryptographic generator used")

    for name in dir(np.random):
        if not name.startswith("_") and callable(getattr(np.random, name)):
            monkeypatch.setattr(np.random, name, refuse)
    for name in (
        "random",
        "uniform",
        "randint",
        "randrange",
        "getrandbits",
        "choice",
        "choices",
        "gauss",
        "normalvariate",
        "expovariate",
        "shuffle",
        "sample",
    ):
        monkeypatch.setattr(random, name, refuse)
    calls = []
    real = os.urandom

    def spy(size):
        calls.append(size)
        return real(size)

    monkeypatch.setattr(os, "urandom", spy)
    spec = LdpSpec(type=typ, mechanism=mech, epsilon=1.0, **kw)
    out, _ = apply_ldp(values, spec, source=SecureRandomSource())
    draws = build_mechanism(spec).draws
    assert calls == [8 * len(values) * draws]  # all the noise, from the OS CSPRNG
    assert len(out) == len(values)


@pytest.mark.parametrize("module", [ldp_package, sources, mechanisms, column])
def test_production_modules_import_no_numpy_or_python_prng(module):
    tree = ast.parse(open(module.__file__).read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in ("random", "numpy.random")]
        elif isinstance(node, ast.ImportFrom):
            if node.module in ("random", "numpy.random") or (
                node.module == "numpy" and any(a.name == "random" for a in node.names)
            ):
                found.append(node.module)
        elif isinstance(node, ast.Attribute) and node.attr in ("random", "default_rng"):
            found.append(ast.unparse(node))
    assert found == []


@pytest.mark.parametrize("name", list(MECHANISMS))
def test_each_mechanism_takes_its_draws_in_one_call(name):
    class Counting:
        def __init__(self):
            self.calls = []
            self.inner = SeededSource(0)

        def uniforms(self, n, k):
            self.calls.append((n, k))
            return self.inner.uniforms(n, k)

    if name == "grr":
        mech, x = GrrMechanism(1.0, 3), np.array([0, 1, 2, 1])
    elif name == "rr":
        mech, x = RrMechanism(1.0), np.array([True, False, True, True])
    else:
        mech, x = numeric(name, integer=True), np.array([17, 40, 90, 55])
    src = Counting()
    mech.perturb(x, src)
    assert src.calls == [(4, mech.draws)]
    assert mech.draws <= UNIFORMS_PER_DIGEST  # one HMAC per record when memoized


# --------------------------------------------------------------------------- keyed PRF source

KEY = bytes(range(32))


def prf(key=KEY, rks=("r1", "r2", "r3"), column="age", values=("30", "40", "50"), version=1, k=2):
    return KeyedPrfSource(key, list(rks), column, list(values), version).uniforms(len(rks), k)


def test_prf_source_same_inputs_same_uniforms_changed_value_fresh():
    base = prf()
    assert np.array_equal(base, prf())
    changed = prf(values=("30", "41", "50"))
    assert np.array_equal(changed[[0, 2]], base[[0, 2]])
    assert not np.any(changed[1] == base[1])
    for other in (prf(key=bytes(32)), prf(version=2), prf(column="income")):
        assert not np.any(other == base)


def test_prf_source_encoding_is_unambiguous():
    a = prf(rks=("ab",), values=("c",))
    b = prf(rks=("a",), values=("bc",))
    assert not np.any(a == b)


def test_prf_source_is_hmac_sha256_and_expands_blocks():
    src = KeyedPrfSource(KEY, ["r1"], "age", ["30"], 3)
    u = src.uniforms(1, 6)
    assert np.array_equal(u[:, :4], src.uniforms(1, 4))
    for block in (0, 1):
        msg = PRF_DOMAIN + b"3:age" + (3).to_bytes(8, "big") + block.to_bytes(4, "big") + b"2:r1:30"
        words = np.frombuffer(hmac.new(KEY, msg, hashlib.sha256).digest(), dtype=">u8")
        expect = (words >> np.uint64(11)).astype(float) * 2.0**-53
        got = u[0, 4 * block : 4 * block + 4]
        assert np.array_equal(got, expect[: len(got)])


def test_prf_uniforms_are_uniform_and_independent():
    n = 20_000
    u = KeyedPrfSource(KEY, [f"r{i}" for i in range(n)], "c", ["v"] * n, 1).uniforms(n, 4)
    for j in range(4):
        assert stats.kstest(u[:, j], "uniform").pvalue > 1e-4
    assert abs(np.corrcoef(u[:, 0], u[:, 3])[0, 1]) < 5 / math.sqrt(n)


def test_prf_source_refuses_pickling_and_hides_key():
    src = KeyedPrfSource(KEY, ["r1"], "age", ["30"], 1)
    with pytest.raises(TypeError):
        pickle.dumps(src)
    with pytest.raises(TypeError):
        copy.deepcopy(src)
    assert KEY.hex() not in repr(src) and "r1" not in repr(src)
    with pytest.raises(ValueError):
        KeyedPrfSource(b"short", ["r1"], "age", ["30"], 1)
    with pytest.raises(ValueError):
        KeyedPrfSource(KEY, ["r1", "r2"], "age", ["30"], 1)
    with pytest.raises(ValueError):
        src.uniforms(2, 1)
