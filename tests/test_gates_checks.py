"""Gate checks: the registry, each check's computation and summary, the verdict."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.gates_data import QI_TABLE, gates_schema, ldp_output
from transforms.gates import checks as gate_checks
from transforms.gates import metrics


def test_gate_verdict_collects_failed_names_in_order():
    checks = [
        gate_checks.ReconciliationCheck.build(10, 8, 2),
        gate_checks.ReconciliationCheck.build(10, 8, 1) | {"name": "x"},
        gate_checks.KAnonymityCheck.build(metrics.k_anonymity(QI_TABLE, ["age", "zip"], 2)),
    ]
    verdict = gate_checks.gate_verdict(checks)
    assert verdict["status"] == "failed"
    assert verdict["failed"] == ["x", "k_anonymity"]
    assert [c["name"] for c in verdict["checks"]] == ["reconciliation", "x", "k_anonymity"]
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


@pytest.mark.parametrize(
    "inp, out, q, passed", [(10, 7, 3, True), (10, 7, 2, False), (0, 0, 0, True), (5, 6, 0, False)]
)
def test_reconciliation_check(inp, out, q, passed):
    c = gate_checks.ReconciliationCheck.build(inp, out, q)
    assert c["passed"] is passed
    assert c["details"]["difference"] == inp - out - q


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
    from privgate.estimate import ldp_metadata

    t = ldp_output(5)
    md = ldp_metadata(type="float", mechanism=None, epsilon=2.0, bounds=[0, 1000])
    t = t.cast(t.schema.set(0, t.schema.field("income").with_metadata(md)))
    cols = gate_checks.LdpDomainCheck.build(t, gates_schema())["details"]["columns"]
    assert cols["income"]["metadata_ok"] is False
    c = gate_checks.LdpDomainCheck.build(t.drop_columns(["smoker"]), gates_schema())
    assert c["passed"] is False and c["details"]["columns"]["smoker"]["present"] is False
