"""The Great Expectations adapter: schema and user suites whose results never carry a value
from the data."""

from __future__ import annotations

import json
import logging
import textwrap

import pyarrow as pa
import pytest

from privgate.errors import ConfigError, DataError
from tests.gates_data import gates_schema, input_expectations
from transforms.gates import checks, gx

SECRET = "ZZ-SECRET-7c1e-VALUE"


@pytest.fixture(scope="module")
def gx_suite():
    """Importing Great Expectations takes seconds: build the schema suite once."""
    return input_expectations(gates_schema())


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
        from transforms.gates import gx

        gx.import_gx()
        assert "great_expectations.expectations.core" in sys.modules
        assert type(sys.modules["scipy.stats"]).__name__ == "_LazyModule"
        assert "scipy.stats._distn_infrastructure" not in sys.modules
        assert type(sys.modules["altair"]).__name__ == "_LazyModule"
        assert not [m for m in sys.modules if m.startswith(("google.cloud.", "boto"))]
        assert not [f for f in sys.meta_path if isinstance(f, gx._GxImportFinder)]
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


def test_the_schema_suite_helper_covers_the_gates_schema(gx_suite):
    kinds = {(e.expectation_type, e.column) for e in gx_suite.expectations}
    for col in ("id", "name", "age", "income"):
        assert ("expect_column_to_exist", col) in kinds
        assert ("expect_column_values_to_be_in_type_list", col) in kinds
    assert ("expect_column_values_to_not_be_null", "age") in kinds
    assert ("expect_column_values_to_not_be_null", "dx") not in kinds  # nullable
    assert ("expect_column_values_to_be_in_set", "gender") in kinds
    assert ("expect_column_values_to_be_between", "income") in kinds


def test_run_suite_passes_clean_typed_input(gx_suite):
    r = gx.run_suite(_typed_input(), gx_suite, "input_contract")
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
    r = gx.run_suite(t, gx_suite, "input_contract")
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
    r = gx.run_suite(t, suite, "output_expectations")
    text = json.dumps(r)
    assert SECRET not in text and "987654" not in text
    by_type = {e["type"]: e for e in r["expectations"]}
    assert by_type["expect_table_row_count_to_be_between"]["observed_value"] == 6
    assert "observed_value" not in by_type["expect_column_max_to_be_between"]
    assert by_type["expect_column_values_to_match_regex"]["unexpected_count"] == 6
    assert r["success"] is False and r["critical_failed"] == 5


def test_run_suite_missing_column_is_a_failure_not_a_crash(gx_suite):
    r = gx.run_suite(_typed_input().drop_columns(["zip"]), gx_suite, "input_contract")
    failed = {(e["type"], e["column"]) for e in r["expectations"] if not e["success"]}
    assert ("expect_column_to_exist", "zip") in failed
    assert r["success"] is False


def test_merge_suite_results_over_batches(gx_suite):
    t = _typed_input(6).set_column(2, "age", pa.array([None, 1, None, 3, 4, 5], pa.int64()))
    whole = gx.run_suite(t, gx_suite, "input_contract")
    merged = gx.merge_suite_results(
        [
            gx.run_suite(t.slice(0, 2), gx_suite, "input_contract"),
            gx.run_suite(t.slice(2), gx_suite, "input_contract"),
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
    import great_expectations

    def boom(*a, **k):
        raise RuntimeError(f"could not handle {SECRET}")

    monkeypatch.setattr(great_expectations.ValidationDefinition, "run", boom)
    with pytest.raises(DataError) as e:
        gx.run_suite(_typed_input(), gx_suite, "input_contract")
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
    suite = gx.load_suite(str(p))
    assert suite.name == "user_out" and len(suite.expectations) == 2
    t = _typed_input().set_column(6, "gender", pa.array([SECRET] * 6))
    r = gx.run_suite(t, suite, "output_expectations")
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
            gx.load_suite(str(p))
        assert e.value.key_path == key_path, text
    with pytest.raises(ConfigError):
        gx.load_suite(str(tmp_path / "missing.json"))


def test_suite_check_uses_critical_failures_only(gx_suite):
    t = _typed_input().set_column(2, "age", pa.array([None, 1, 2, 3, 4, 5], pa.int64()))
    r = gx.run_suite(t, gx_suite, "input_contract")
    assert r["warnings"] == 1 and r["critical_failed"] == 0
    assert checks.InputContractCheck.build(r)["passed"] is True
