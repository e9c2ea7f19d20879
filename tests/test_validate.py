"""Validation gates: k-anonymity / l-diversity (whole table and merged batches), checks and
verdict, ldp domains, and Great Expectations contracts that never carry
a value from the data."""

from __future__ import annotations

import json
import logging
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from privgate.errors import ConfigError, DataError
from schemas.columns import parse_schema
from transforms import validate as v

SECRET = "ZZ-SECRET-7c1e-VALUE"

# 10 records. Classes over (age, zip): (30,941) x3, (40,100) x2, (null,null) x2, (50,200) x1,
# (30,null) x1, (40,941) x1 -> sizes 3,2,2,1,1,1.
QI_TABLE = pa.table(
    {
        "age": pa.array([30, 30, 30, 40, 40, None, None, 50, 30, 40], pa.int64()),
        "zip": ["941", "941", "941", "100", "100", None, None, "200", None, "941"],
        "dx": ["flu", "cold", "flu", "flu", "flu", "cold", None, "flu", "cold", "flu"],
    }
)


def _schema(extra: str = "") -> object:
    import yaml

    return parse_schema(
        yaml.safe_load(
            textwrap.dedent("""\
        record_key: id
        columns:
          id:     {type: string, action: tokenize}
          name:   {type: string, action: drop}
          age:    {type: int, action: generalize, bucket: 10}
          zip:    {type: string, action: generalize, keep_prefix: 3}
          dx:     {type: string, action: keep, nullable: true}
          income: {type: float, action: ldp, epsilon: 1.0, bounds: [0, 1000]}
          gender: {type: string, action: ldp, epsilon: 1.0, categories: [f, m]}
          smoker: {type: bool, action: ldp, epsilon: 0.5}
          born:   {type: date, action: generalize, date_part: year}
          seen:   {type: timestamp, action: date_shift, max_days: 3}
        """)
            + extra
        ),
        "s.yaml",
    )


# --------------------------------------------------------------------------- k / l


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
    r = v.k_anonymity(QI_TABLE, ["age", "zip"], k)
    assert r["records"] == 10
    assert r["classes"] == 6
    assert r["min_class_size"] == min_size
    assert r["classes_below_k"] == classes_below
    assert r["records_below_k"] == records_below
    assert r["passed"] is passed


def test_k_anonymity_nulls_form_their_own_class():
    t = pa.table({"a": pa.array([None, None, None], pa.int64()), "b": [None, None, None]})
    r = v.k_anonymity(t, ["a", "b"], 3)
    assert (r["classes"], r["min_class_size"], r["passed"]) == (1, 3, True)


def test_k_anonymity_histogram_buckets():
    sizes = [1] * 3 + [2] * 4 + [7] * 5 + [120] * 2
    keys = np.repeat(np.arange(len(sizes)), sizes)
    r = v.k_anonymity(pa.table({"q": keys}), ["q"], 5)
    hist = {h["size"]: (h["classes"], h["records"]) for h in r["histogram"]}
    assert hist["1"] == (3, 3)
    assert hist["2"] == (4, 8)
    assert hist["5-9"] == (5, 35)
    assert hist["100+"] == (2, 240)
    assert hist["3"] == (0, 0)
    assert sum(c for c, _ in hist.values()) == r["classes"]
    assert sum(n for _, n in hist.values()) == r["records"] == sum(sizes)


def test_k_anonymity_empty_table_is_vacuously_anonymous():
    r = v.k_anonymity(QI_TABLE.slice(0, 0), ["age", "zip"], 5)
    assert (r["records"], r["classes"], r["min_class_size"], r["passed"]) == (0, 0, None, True)


@pytest.mark.parametrize("cut", [1, 4, 7])
def test_merged_partial_counts_equal_whole_table(cut):
    cols = ["age", "zip", "dx"]
    parts = [
        v.class_counts(QI_TABLE.slice(0, cut), cols),
        v.class_counts(QI_TABLE.slice(cut), cols),
    ]
    merged = v.merge_class_counts(parts, cols)
    assert v.k_anonymity_from_counts(merged, ["age", "zip"], 2) == v.k_anonymity(
        QI_TABLE, ["age", "zip"], 2
    )
    assert v.l_diversity_from_counts(merged, ["age", "zip"], "dx", 2) == v.l_diversity(
        QI_TABLE, ["age", "zip"], "dx", 2
    )


def test_merged_partial_counts_equal_whole_table_random_batches():
    rng = np.random.default_rng(3)
    t = pa.table({"a": rng.integers(0, 20, 5000), "b": rng.choice(["x", "y", "z"], 5000)})
    parts = [
        v.class_counts(b, ["a", "b"])
        for b in t.to_batches(max_chunksize=700)
        for b in [pa.Table.from_batches([b])]
    ]
    assert len(parts) > 5
    merged = v.merge_class_counts(parts, ["a", "b"])
    assert v.k_anonymity_from_counts(merged, ["a", "b"], 200) == v.k_anonymity(t, ["a", "b"], 200)


def test_l_diversity_from_counts_grouped_by_more_columns():
    # partial counts over (age, zip, dx): l-diversity over age alone must re-aggregate first
    counts = v.class_counts(QI_TABLE, ["age", "zip", "dx"])
    assert v.l_diversity_from_counts(counts, ["age"], "dx", 2) == v.l_diversity(
        QI_TABLE, ["age"], "dx", 2
    )
    assert v.l_diversity(QI_TABLE, ["age"], "dx", 2)["min_l"] == 1  # age 50: {flu}


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
    r = v.l_diversity(QI_TABLE, ["age", "zip"], "dx", l)
    assert r["classes"] == 6
    assert r["min_l"] == min_l
    assert r["classes_below_l"] == classes_below
    assert r["records_below_l"] == records_below
    assert r["passed"] is passed


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: v.k_anonymity(QI_TABLE, ["nope"], 2), DataError),  # unknown column
        (lambda: v.k_anonymity(QI_TABLE, [], 2), ValueError),  # no quasi-identifier
        (lambda: v.k_anonymity(QI_TABLE, ["age", "age"], 2), ValueError),
        (lambda: v.k_anonymity(QI_TABLE, ["age"], 0), ValueError),  # k < 1
        (lambda: v.k_anonymity(QI_TABLE, ["age"], True), ValueError),
        (lambda: v.l_diversity(QI_TABLE, ["age", "dx"], "dx", 2), ValueError),
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
    r = v.k_anonymity(t, ["a", "b", "c"], 5)
    assert time.perf_counter() - start < 1.0
    assert r["records"] == n


# --------------------------------------------------------------------------- checks / verdict


def test_gate_verdict_collects_failed_names_in_order():
    checks = [
        v.reconciliation_check(10, 8, 2),
        v.reconciliation_check(10, 8, 1) | {"name": "x"},
        v.k_anonymity_check(v.k_anonymity(QI_TABLE, ["age", "zip"], 2)),
    ]
    verdict = v.gate_verdict(checks)
    assert verdict["status"] == "failed"
    assert verdict["failed"] == ["x", "k_anonymity"]
    assert [c["name"] for c in verdict["checks"]] == ["reconciliation", "x", "k_anonymity"]
    assert v.gate_verdict(checks[:1])["status"] == "passed"


@pytest.mark.parametrize(
    "checks",
    [
        [],  # nothing checked must not pass
        [{"name": "a", "passed": True}, {"name": "a", "passed": True}],  # duplicate
        [{"name": "a", "passed": "yes"}],  # not a bool
        [{"passed": True}],  # no name
    ],
)
def test_gate_verdict_refuses_bad_input(checks):
    with pytest.raises(ValueError):
        v.gate_verdict(checks)


@pytest.mark.parametrize(
    "inp, out, q, passed", [(10, 7, 3, True), (10, 7, 2, False), (0, 0, 0, True), (5, 6, 0, False)]
)
def test_reconciliation_check(inp, out, q, passed):
    c = v.reconciliation_check(inp, out, q)
    assert c["passed"] is passed
    assert c["details"]["difference"] == inp - out - q


def test_residual_pii_check_rate_and_tables():
    c = v.residual_pii_check(
        {
            "notes": {"sampled": 100, "flagged": 2, "entities": {"PERSON": 2, "EMAIL_ADDRESS": 1}},
            "plan": {"sampled": 100, "flagged": 0, "entities": {}},
        },
        0.005,
    )
    d = c["details"]
    assert d["rate"] == pytest.approx(0.01)
    assert c["passed"] is False
    assert d["by_entity"] == {"EMAIL_ADDRESS": 1, "PERSON": 2}
    assert v.residual_pii_check({"plan": {"sampled": 10, "flagged": 0}}, 0.0)["passed"] is True
    assert v.residual_pii_check({"p": {"sampled": 10, "flagged": 9}}, None)["passed"] is True
    with pytest.raises(ValueError):
        v.residual_pii_check({"p": {"sampled": 1, "flagged": 2}}, 0.0)


def test_output_columns_check():
    s = _schema()
    good = pa.schema(
        [
            ("id", pa.string()),
            ("age", pa.int64()),
            ("zip", pa.string()),
            ("dx", pa.string()),
            ("income", pa.float64()),
            ("gender", pa.string()),
            ("smoker", pa.bool_()),
            ("born", pa.date32()),
            ("seen", pa.timestamp("us", tz="UTC")),
        ]
    )
    assert v.output_columns_check(good, s)["passed"] is True
    bad = good.remove(0).append(pa.field("name", pa.string()))
    bad = bad.set(bad.get_field_index("age"), pa.field("age", pa.string()))
    d = v.output_columns_check(bad, s)["details"]
    assert (d["missing"], d["unexpected"], d["type_mismatch"]) == (["id"], ["name"], ["age"])


def _ldp_output(n=200, seed=0):
    from schemas.ldp import LdpSpec
    from transforms.ldp.column import apply_ldp
    from transforms.ldp.sources import SecureRandomSource

    rng = np.random.default_rng(seed)
    src = SecureRandomSource()
    income, _ = apply_ldp(
        pa.array(rng.uniform(0, 1000, n)),
        LdpSpec(type="float", epsilon=1.0, bounds=[0, 1000]),
        source=src,
    )
    gender, _ = apply_ldp(
        pa.array(rng.choice(["f", "m"], n)),
        LdpSpec(type="string", epsilon=1.0, categories=["f", "m"]),
        source=src,
    )
    smoker, _ = apply_ldp(
        pa.array(rng.random(n) < 0.2), LdpSpec(type="bool", epsilon=0.5), source=src
    )
    return pa.table({"income": income, "gender": gender, "smoker": smoker})


def test_ldp_domain_check_passes_real_mechanism_output():
    c = v.ldp_domain_check(_ldp_output(), _schema())
    assert c["passed"] is True
    cols = c["details"]["columns"]
    assert set(cols) == {"income", "gender", "smoker"}
    assert all(e["checked"] == 200 and e["outside"] == 0 for e in cols.values())


@pytest.mark.parametrize(
    "column, values, outside",
    [
        ("income", pa.array([1.2345678, 10.0, None], pa.float64()), None),  # off the grid
        ("gender", pa.array(["f", "x", "m"]), 1),  # undeclared category
    ],
)
def test_ldp_domain_check_catches_values_outside(column, values, outside):
    t = _ldp_output(3)
    t = t.set_column(t.schema.get_field_index(column), column, values)
    c = v.ldp_domain_check(t, _schema())
    assert c["passed"] is False
    got = c["details"]["columns"][column]["outside"]
    assert got >= 1 if outside is None else got == outside


def test_ldp_domain_check_metadata_mismatch_and_missing_column():
    from schemas.ldp import LdpSpec
    from transforms.ldp.mechanisms import build_mechanism

    t = _ldp_output(5)
    spec = LdpSpec(type="float", epsilon=2.0, bounds=[0, 1000])
    md = spec.to_metadata(build_mechanism(spec))
    t = t.cast(t.schema.set(0, t.schema.field("income").with_metadata(md)))
    cols = v.ldp_domain_check(t, _schema())["details"]["columns"]
    assert cols["income"]["metadata_ok"] is False
    c = v.ldp_domain_check(t.drop_columns(["smoker"]), _schema())
    assert c["passed"] is False and c["details"]["columns"]["smoker"]["present"] is False


def test_ldp_domain_counts_merge():
    t = _ldp_output(100)
    parts = [
        v.ldp_domain_counts(t.slice(0, 40), _schema()),
        v.ldp_domain_counts(t.slice(40), _schema()),
    ]
    assert v.merge_ldp_domain_counts(parts) == v.ldp_domain_counts(t, _schema())


# --------------------------------------------------------------------------- GX contracts


@pytest.fixture(scope="module")
def gx_suite():
    """Importing Great Expectations takes seconds: build the schema suite once."""
    return v.input_expectations(_schema())


def _typed_input(n=6):
    import datetime as dt

    return pa.table(
        {
            "id": [f"c{i}" for i in range(n)],
            "name": [SECRET] * n,
            "age": pa.array([30 + i for i in range(n)], pa.int64()),
            "zip": ["94110"] * n,
            "dx": [None] + ["flu"] * (n - 1),
            "income": [100.0 * i for i in range(n)],
            "gender": ["f", "m"] * (n // 2),
            "smoker": [True, False] * (n // 2),
            "born": pa.array([dt.date(1990, 1, 1)] * n, pa.date32()),
            "seen": pa.array(
                [dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC")
            ),
        }
    )


def test_import_gx_defers_or_skips_unused_packages_and_leaves_imports_plain():
    """Fresh interpreter: GX's unused heavy dependencies stay unloaded until touched (touching
    one loads it), the cloud SDKs are not imported, and afterwards imports are plain."""
    import subprocess
    import sys

    code = textwrap.dedent(
        """
        import sys
        from transforms import validate as v

        v.import_gx()
        assert "great_expectations.expectations.core" in sys.modules
        assert type(sys.modules["scipy.stats"]).__name__ == "_LazyModule"
        assert "scipy.stats._distn_infrastructure" not in sys.modules
        assert type(sys.modules["altair"]).__name__ == "_LazyModule"
        assert not [m for m in sys.modules if m.startswith(("google.cloud.", "boto"))]
        assert not [f for f in sys.meta_path if isinstance(f, v._GxImportFinder)]
        from scipy import stats

        assert abs(stats.norm.cdf(0.0) - 0.5) < 1e-12
        assert "scipy.stats._distn_infrastructure" in sys.modules
        assert "scipy.signal" not in sys.modules
        import scipy.signal  # after import_gx: plain, even inside the lazy list
        import botocore.session  # and the skipped SDKs import normally
        from google.cloud import storage

        assert type(sys.modules["scipy.signal"]).__name__ == "module"
        assert storage.Client and botocore.session.Session
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_input_expectations_cover_the_schema(gx_suite):
    kinds = {(e.expectation_type, e.column) for e in gx_suite.expectations}
    for col in ("id", "name", "age", "income"):
        assert ("expect_column_to_exist", col) in kinds
        assert ("expect_column_values_to_be_in_type_list", col) in kinds
    assert ("expect_column_values_to_not_be_null", "age") in kinds
    assert ("expect_column_values_to_not_be_null", "dx") not in kinds  # nullable
    assert ("expect_column_values_to_be_in_set", "gender") in kinds
    assert ("expect_column_values_to_be_between", "income") in kinds


def test_run_suite_passes_clean_typed_input(gx_suite):
    r = v.run_suite(_typed_input(), gx_suite, "input_contract")
    assert r["success"] is True, [e for e in r["expectations"] if not e["success"]]
    assert r["failed"] == 0 and r["evaluated"] == len(gx_suite.expectations)
    json.dumps(r)


@pytest.mark.parametrize(
    "column, values, expectation, critical",
    [
        # a non-nullable column with a null and the secret elsewhere in the frame
        (
            "age",
            pa.array([None, 1, 2, 3, 4, 5], pa.int64()),
            "expect_column_values_to_not_be_null",
            False,
        ),
        # an ldp category outside the declared list: the failing value is the secret itself
        (
            "gender",
            pa.array([SECRET, "m", "f", "m", "f", "m"]),
            "expect_column_values_to_be_in_set",
            False,
        ),
        # bounds
        (
            "income",
            pa.array([1e9, 1.0, 2.0, 3.0, 4.0, 5.0]),
            "expect_column_values_to_be_between",
            False,
        ),
        # wrong type
        ("age", pa.array([SECRET] * 6), "expect_column_values_to_be_in_type_list", True),
    ],
)
def test_run_suite_failures_carry_no_value(
    gx_suite, column, values, expectation, critical, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    t = _typed_input()
    t = t.set_column(t.schema.get_field_index(column), column, values)
    r = v.run_suite(t, gx_suite, "input_contract")
    out, err = capfd.readouterr()
    assert SECRET not in caplog.text + out + err
    assert "Calculating Metrics" not in err  # GX progress bars are off
    failed = [e for e in r["expectations"] if not e["success"]]
    assert [(e["type"], e["column"]) for e in failed] == [(expectation, column)]
    assert r["success"] is (not critical)
    text = json.dumps(r)
    assert SECRET not in text
    assert "1000000000" not in text and "1e+09" not in text
    assert "partial_unexpected" not in text and "unexpected_list" not in text


def test_run_suite_drops_data_derived_observed_values(tmp_path):
    import great_expectations.expectations as gxe
    from great_expectations import ExpectationSuite

    suite = ExpectationSuite(
        name="user",
        expectations=[
            gxe.ExpectColumnMaxToBeBetween(column="income", max_value=10),
            gxe.ExpectColumnMostCommonValueToBeInSet(column="name", value_set=["a"]),
            gxe.ExpectColumnDistinctValuesToBeInSet(column="name", value_set=["a"]),
            gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=100),
            gxe.ExpectColumnValuesToMatchRegex(column="name", regex="^a$"),
            gxe.ExpectColumnValuesToBeUnique(column="name"),
        ],
    )
    t = _typed_input().set_column(5, "income", pa.array([0.0, 0, 0, 0, 0, 987654.25]))
    r = v.run_suite(t, suite, "output_expectations")
    text = json.dumps(r)
    assert SECRET not in text and "987654" not in text
    by_type = {e["type"]: e for e in r["expectations"]}
    assert by_type["expect_table_row_count_to_be_between"]["observed_value"] == 6
    assert "observed_value" not in by_type["expect_column_max_to_be_between"]
    assert by_type["expect_column_values_to_match_regex"]["unexpected_count"] == 6
    assert r["success"] is False and r["critical_failed"] == 5


def test_run_suite_missing_column_is_a_failure_not_a_crash(gx_suite):
    r = v.run_suite(_typed_input().drop_columns(["zip"]), gx_suite, "input_contract")
    failed = {(e["type"], e["column"]) for e in r["expectations"] if not e["success"]}
    assert ("expect_column_to_exist", "zip") in failed
    assert r["success"] is False


def test_merge_suite_results_over_batches(gx_suite):
    t = _typed_input(6).set_column(2, "age", pa.array([None, 1, None, 3, 4, 5], pa.int64()))
    whole = v.run_suite(t, gx_suite, "input_contract")
    merged = v.merge_suite_results(
        [
            v.run_suite(t.slice(0, 2), gx_suite, "input_contract"),
            v.run_suite(t.slice(2), gx_suite, "input_contract"),
        ]
    )
    key = [
        i
        for i, e in enumerate(whole["expectations"])
        if e["type"] == "expect_column_values_to_not_be_null" and e["column"] == "age"
    ][0]
    assert merged["expectations"][key]["unexpected_count"] == 2
    assert merged["expectations"][key]["element_count"] == 6
    assert merged["expectations"][key]["success"] is False
    assert merged["success"] == whole["success"] and merged["failed"] == whole["failed"]


def test_run_suite_gx_crash_message_has_no_value(gx_suite, monkeypatch):
    import great_expectations as gx

    def boom(*a, **k):
        raise RuntimeError(f"could not handle {SECRET}")

    monkeypatch.setattr(gx.ValidationDefinition, "run", boom)
    with pytest.raises(DataError) as e:
        v.run_suite(_typed_input(), gx_suite, "input_contract")
    assert SECRET not in str(e.value) and "RuntimeError" in str(e.value)


def test_load_suite_roundtrip_and_errors(tmp_path, gx_suite):
    p = tmp_path / "suite.json"
    p.write_text(
        json.dumps(
            {
                "name": "user_out",
                "expectations": [
                    {
                        "type": "expect_column_values_to_be_in_set",
                        "kwargs": {
                            "column": "gender",
                            "value_set": ["f", "m"],
                            "result_format": "COMPLETE",
                        },
                    },
                    {
                        "type": "expect_table_row_count_to_be_between",
                        "kwargs": {"min_value": 1},
                        "severity": "warning",
                    },
                ],
            }
        )
    )
    suite = v.load_suite(str(p))
    assert suite.name == "user_out" and len(suite.expectations) == 2
    t = _typed_input().set_column(6, "gender", pa.array([SECRET] * 6))
    r = v.run_suite(t, suite, "output_expectations")
    assert SECRET not in json.dumps(r) and r["success"] is False

    cases = [
        ("[1]", ""),
        ("{nope", ""),
        (
            json.dumps({"expectations": [{"type": "expect_nope", "kwargs": {}}]}),
            "expectations[0].type",
        ),
        (
            json.dumps(
                {
                    "expectations": [
                        {
                            "type": "expect_column_values_to_be_between",
                            "kwargs": {"column": "a", "min_value": "x"},
                        }
                    ]
                }
            ),
            "expectations[0].kwargs",
        ),
        (json.dumps({"expectations": [{"kwargs": {}}]}), "expectations[0].type"),
        (json.dumps({"expectations": {}}), "expectations"),
        (json.dumps({"expectations": [], "extra": 1}), "extra"),
        (
            json.dumps(
                {
                    "expectations": [
                        {
                            "type": "expect_column_to_exist",
                            "kwargs": {"column": "a"},
                            "severity": "fatal",
                        }
                    ]
                }
            ),
            "expectations[0].severity",
        ),
    ]
    for text, key_path in cases:
        p.write_text(text)
        with pytest.raises(ConfigError) as e:
            v.load_suite(str(p))
        assert e.value.key_path == key_path, text
    with pytest.raises(ConfigError):
        v.load_suite(str(tmp_path / "missing.json"))


def test_suite_check_uses_critical_failures_only(gx_suite):
    t = _typed_input().set_column(2, "age", pa.array([None, 1, 2, 3, 4, 5], pa.int64()))
    r = v.run_suite(t, gx_suite, "input_contract")
    assert r["warnings"] == 1 and r["critical_failed"] == 0
    assert v.suite_check("input_contract", r)["passed"] is True
