"""Gate checks: the registry, each check's computation and summary, the verdict."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.gates_data import QI_TABLE, gates_schema, ldp_output
from transforms.gates import checks as gate_checks
from transforms.gates import metrics


def test_gate_verdict_collects_failed_names_in_order():
    checks = [
        gate_checks.check("a", True, {}),
        gate_checks.check("x", False, {}),
        gate_checks.KAnonymityCheck.build(metrics.k_anonymity(QI_TABLE, ["age", "zip"], 2)),
    ]
    verdict = gate_checks.gate_verdict(checks)
    assert verdict["status"] == "failed"
    assert verdict["failed"] == ["x", "k_anonymity"]
    assert [c["name"] for c in verdict["checks"]] == ["a", "x", "k_anonymity"]
    assert gate_checks.gate_verdict(checks[:1])["status"] == "passed"


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
        gate_checks.gate_verdict(checks)


def test_residual_pii_check_rate_and_tables():
    c = gate_checks.ResidualPiiCheck.build(
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
    assert (
        gate_checks.ResidualPiiCheck.build({"plan": {"sampled": 10, "flagged": 0}}, 0.0)["passed"]
        is True
    )
    assert (
        gate_checks.ResidualPiiCheck.build({"p": {"sampled": 10, "flagged": 9}}, None)["passed"]
        is True
    )
    with pytest.raises(ValueError):
        gate_checks.ResidualPiiCheck.build({"p": {"sampled": 1, "flagged": 2}}, 0.0)


def test_output_columns_check():
    s = gates_schema()
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
    assert gate_checks.OutputColumnsCheck.build(good, s)["passed"] is True
    bad = good.remove(0).append(pa.field("name", pa.string()))
    bad = bad.set(bad.get_field_index("age"), pa.field("age", pa.string()))
    d = gate_checks.OutputColumnsCheck.build(bad, s)["details"]
    assert (d["missing"], d["unexpected"], d["type_mismatch"]) == (["id"], ["name"], ["age"])


def test_ldp_domain_check_passes_real_mechanism_output():
    c = gate_checks.LdpDomainCheck.build(ldp_output(), gates_schema())
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
    t = ldp_output(3)
    t = t.set_column(t.schema.get_field_index(column), column, values)
    c = gate_checks.LdpDomainCheck.build(t, gates_schema())
    assert c["passed"] is False
    got = c["details"]["columns"][column]["outside"]
    assert got >= 1 if outside is None else got == outside


def test_ldp_domain_check_metadata_mismatch_and_missing_column():
    from schemas.ldp import LdpSpec
    from transforms.ldp.mechanisms import build_mechanism

    t = ldp_output(5)
    spec = LdpSpec(type="float", epsilon=2.0, bounds=[0, 1000])
    md = spec.to_metadata(build_mechanism(spec))
    t = t.cast(t.schema.set(0, t.schema.field("income").with_metadata(md)))
    cols = gate_checks.LdpDomainCheck.build(t, gates_schema())["details"]["columns"]
    assert cols["income"]["metadata_ok"] is False
    c = gate_checks.LdpDomainCheck.build(t.drop_columns(["smoker"]), gates_schema())
    assert c["passed"] is False and c["details"]["columns"]["smoker"]["present"] is False


# --------------------------------------------------------------------------- the registry


class _RowsDatedCheck(gate_checks.GateCheck):
    """A toy check, as a user would add one: every output row carries a date."""

    name = "rows_dated"

    @classmethod
    def build(cls, rows: int, dated: int) -> dict:
        return gate_checks.check(cls.name, dated == rows, {"rows": rows, "dated": dated})

    @classmethod
    def summary(cls, c) -> str:
        d = c["details"]
        return f"{d['dated']:,} of {d['rows']:,} rows dated"


def test_adding_a_check_is_one_class_and_one_registry_line(monkeypatch):
    from transforms.report.html import build_html

    monkeypatch.setitem(gate_checks.CHECKS, _RowsDatedCheck.name, _RowsDatedCheck)
    verdict = gate_checks.gate_verdict(
        [gate_checks.check("rows_read", True, {}), _RowsDatedCheck.build(10, 7)]
    )
    assert verdict["failed"] == ["rows_dated"]
    page = build_html(verdict, {}, {})
    # once in the failed-checks list under the banner, once in the table of checks
    assert page.count("7 of 10 rows dated") == 2


def test_an_unregistered_check_renders_the_fallback_summary():
    """Decided: a name missing from `CHECKS` does not fail. The verdict takes any name and the
    report must render every check it holds, so it shows the generic "passed" / "failed" (or
    a suite's summary when the details are a suite result: a suite run under another name)."""
    from transforms.report.html import build_html

    assert _RowsDatedCheck.name not in gate_checks.CHECKS
    suite = {"expectations": [], "evaluated": 3, "critical_failed": 1, "warnings": 0}
    verdict = gate_checks.gate_verdict(
        [
            _RowsDatedCheck.build(10, 7),
            gate_checks.check("my_suite", False, suite),
        ]
    )
    assert [gate_checks.summary(c) for c in verdict["checks"]] == [
        "failed",
        "3 expectations; 1 critical failed, 0 warnings",
    ]
    page = build_html(verdict, {}, {})
    assert "<li><b>rows_dated</b>: failed</li>" in page
    assert "rows dated" not in page


def test_registry_maps_each_name_to_its_class():
    assert gate_checks.CHECKS, "no gate check registered"
    for name, kind in gate_checks.CHECKS.items():
        assert issubclass(kind, gate_checks.GateCheck)
        assert kind.name == name and name


@pytest.mark.parametrize(
    "built, text",
    [
        (
            lambda: gate_checks.ResidualPiiCheck.build({"a": {"sampled": 400, "flagged": 2}}, 0.01),
            "0.50% of sampled values with PII (2 of 400); max 1.00%",
        ),
        (
            lambda: gate_checks.ResidualPiiCheck.build({"a": {"sampled": 4, "flagged": 0}}, None),
            "0.00% of sampled values with PII (0 of 4); no limit",
        ),
        (
            lambda: gate_checks.KAnonymityCheck.build(
                metrics.k_anonymity(QI_TABLE, ["age", "zip"], 2)
            ),
            "smallest class 1 (k = 2); 3 records in 3 classes below k; 6 classes over 10 records",
        ),
        (
            lambda: gate_checks.LDiversityCheck.build(
                metrics.l_diversity(QI_TABLE, ["age", "zip"], "dx", 2)
            ),
            "fewest distinct 'dx' per class: 1 (l = 2); 5 records in 4 classes below l",
        ),
        (
            lambda: gate_checks.OutputColumnsCheck.build(
                pa.schema([("zz", pa.int64())]), gates_schema()
            ),
            "missing: id, age, zip, dx, income, gender, smoker, born, seen; unexpected: zz",
        ),
        (
            lambda: gate_checks.LdpDomainCheck.build(
                {"x": {"present": True, "metadata_ok": True, "outside": 1200}}, gates_schema()
            ),
            "1 ldp columns; 1,200 values outside their domain",
        ),
        (
            lambda: gate_checks.KeepGuardCheck.build(
                {"passed": True, "mode": "fail", "max_prevalence": 0.05, "findings": []}
            ),
            "no PII above 5.00% in kept columns",
        ),
        (
            lambda: gate_checks.InputContractCheck.build(
                {"success": True, "expectations": [], "evaluated": 9}
                | {"critical_failed": 0, "warnings": 2}
            ),
            "9 expectations; 0 critical failed, 2 warnings",
        ),
        (
            lambda: gate_checks.KAnonymityCheck.build({"passed": True}) | {"details": None},
            "smallest class – (k = None); – records in – classes below k; – classes over – records",
        ),
        # details a class cannot read fall back to passed / failed
        (
            lambda: gate_checks.check("ldp_domain", False, {"columns": {"x": {"outside": "?"}}}),
            "failed",
        ),
        (lambda: gate_checks.check("input_contract", True, {"evaluated": 9}), "passed"),
    ],
)
def test_each_registered_check_summarizes_its_details(built, text):
    assert gate_checks.summary(built()) == text


def test_pure_cores_import_neither_beam_nor_great_expectations():
    """Fresh interpreter: the gate metrics, checks, the GX adapter (GX comes on first use)
    and the report load without Beam or Great Expectations."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import transforms.gates.metrics, transforms.gates.checks, transforms.gates.gx\n"
        "import transforms.report.html\n"
        "bad = [m for m in sys.modules if m.startswith(('apache_beam', 'great_expectations'))]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
