"""Detection in the pipeline: `privgate scan` proposes a runnable schema that flags every
PII column of the demo data; the keep-guard stops a run that keeps a PII column; scrub in
the demo output; all with the network refused."""

import json
import re

import pytest
import yaml

from pipelines.run import run
from pipelines.scan import scan
from privgate.reader import read_table
from schemas.columns import parse_schema
from tests.conftest import cli, write_config

DEMO_PII = {
    "full_name": "PERSON",
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "ssn": "US_SSN",
    "ip_address": "IP_ADDRESS",
}


@pytest.fixture(scope="module")
def proposed(demo_csv):
    return scan(demo_csv, "csv", sample=300)


def test_scan_flags_every_pii_column_and_loads(proposed):
    schema = parse_schema(yaml.safe_load(proposed), "proposed.yaml")
    cols = {c.name: c for c in schema.columns}
    for name, entity in DEMO_PII.items():
        assert cols[name].pii == entity, name
        assert cols[name].action in ("tokenize", "drop", "encrypt", "mask"), name
    assert cols["notes"].action == "scrub"
    assert all(c.action != "keep" for n, c in cols.items() if n in DEMO_PII)


def test_scan_output_holds_no_value(proposed, demo_csv):
    import csv

    with open(demo_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows[:50]:
        for c in ("full_name", "email", "phone", "ssn", "ip_address"):
            assert r[c] not in proposed


def test_proposed_schema_runs_and_passes_the_guard(proposed, demo_csv, keyring_path, tmp_path):
    schema_path = tmp_path / "proposed.yaml"
    schema_path.write_text(proposed)
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path, schema=str(schema_path))
    body = run(cfg, show_progress=False)["manifest"]
    assert body["keep_guard"]["findings"] == []
    assert body["reconciliation"]["balanced"]


KEEP_EMAIL = """\
    columns:
      customer_id: {type: string, action: tokenize}
      email: {type: string, action: keep}
      plan: {type: string, action: keep}
    """


def test_keep_guard_fails_a_run_that_keeps_a_pii_column(demo_csv, keyring_path, tmp_path):
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path, schema=KEEP_EMAIL)
    r = cli("run", cfg)
    assert r.returncode == 3
    assert "email" in r.stderr and "EMAIL_ADDRESS" in r.stderr
    assert not re.search(r"\S+@\S+\.\w+", r.stderr)  # names the entity, never a value
    assert not (tmp_path / "out").exists()


def test_keep_guard_warn_mode_lets_the_run_through_and_records_it(demo_csv, keyring_path, tmp_path):
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path, schema=KEEP_EMAIL)
    with open(cfg, "a") as f:
        f.write("guard: warn\n")
    body = run(cfg, show_progress=False)["manifest"]
    findings = body["keep_guard"]["findings"]
    assert [f["column"] for f in findings] == ["email"]
    assert findings[0]["entity"] == "EMAIL_ADDRESS" and findings[0]["prevalence"] > 0.9


def test_declared_pii_label_on_a_keep_column_is_accepted(demo_csv, keyring_path, tmp_path):
    schema = KEEP_EMAIL.replace(
        "email: {type: string, action: keep}",
        "email: {type: string, pii: EMAIL_ADDRESS, action: keep}",
    )
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path, schema=schema)
    body = run(cfg, show_progress=False)["manifest"]
    assert body["keep_guard"]["findings"] == []
    assert {c["name"]: c["key_group"] for c in body["columns"]}["email"] == "pii"


def test_scrub_and_guard_work_with_the_network_refused(
    network_refused, demo_csv, keyring_path, tmp_path
):
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    doc = run(cfg, show_progress=False)
    notes = read_table(doc["output_dir"], keyring=keyring_path, columns=["notes"])
    cells = [n for n in notes.column("notes").to_pylist() if n]
    assert cells and not any(re.search(r"\S+@\S+\.\w+", n) for n in cells)
    assert json.dumps(doc["manifest"]["keep_guard"]["columns"]) == '["plan"]'


def test_the_detector_misses_names_the_residual_gate_must_still_see(det):
    """The premise of the residual gate's own-row evidence (tests/test_gates_pipeline.py):
    these notes keep their names through scrub, whatever the threshold."""
    from tests.gates_data import MISSED_NAMES, MISSED_NOTES

    notes = [t.format(name=n, lower=n.lower()) for n in MISSED_NAMES for t in MISSED_NOTES]
    for threshold in (0.4, 0.2):
        spans = det.detect(notes, score_threshold=threshold)
        for note, found in zip(notes, spans, strict=True):
            assert not [s for s in found if s.entity == "PERSON"], note


# --------------------------------------------------------------------------- column classes


def _write_csv(path, table) -> str:
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, str(path))
    return str(path)


def _keep_all(table) -> str:
    cols = "".join(f'  "{n}": {{type: string, action: keep}}\n' for n in table.column_names)
    return "columns:\n" + cols


def test_census_country_column_passes_the_guard_warned_and_named(keyring_path, tmp_path):
    from tests.test_detect_guard import census_table
    from transforms.gates import checks as gate_checks

    table = census_table().drop_columns(["contact"])
    data = _write_csv(tmp_path / "census.csv", table)
    cfg = write_config(tmp_path, input_path=data, keyring=keyring_path, schema=_keep_all(table))
    with open(cfg, "a") as f:
        f.write("gates:\n  k_anonymity: {quasi_identifiers: [race], k: 2}\n")
    body = run(cfg, show_progress=False)["manifest"]
    guard = body["keep_guard"]
    assert guard["passed"] and guard["findings"] == []
    warned = {w["column"]: w["entity"] for w in guard["warnings"]}
    assert warned.get("native-country") == "LOCATION" and "race" in warned
    report = json.load(open(tmp_path / "out" / "report" / "validation.json"))
    check = next(c for c in report["checks"] if c["name"] == "keep_guard")
    assert check["passed"] and "'native-country' (LOCATION)" in gate_checks.summary(check)


def test_census_with_a_kept_email_column_still_fails(keyring_path, tmp_path):
    from tests.test_detect_guard import census_table

    table = census_table()
    data = _write_csv(tmp_path / "census.csv", table)
    cfg = write_config(tmp_path, input_path=data, keyring=keyring_path, schema=_keep_all(table))
    r = cli("run", cfg)
    assert r.returncode == 3
    assert "contact" in r.stderr and "EMAIL_ADDRESS" in r.stderr
    assert "native-country' is kept but" not in r.stderr  # named as a warning, not a failure
    assert not (tmp_path / "out").exists()


def test_scan_of_an_identity_export_runs_as_is(keyring_path, tmp_path):
    from tests.test_detect_propose import identity_table

    table, classes = identity_table(rows=300)
    data = _write_csv(tmp_path / "identity.csv", table)
    text = scan(data, "csv", sample=300)
    cols = {c.name: c for c in parse_schema(yaml.safe_load(text), "proposed.yaml").columns}
    assert all(cols[n].action != "keep" for n, k in classes.items() if k == "direct")
    assert cols["CCNumber"].action == "drop" and "scientific notation" in text
    # country, nationality, party and name-set columns are kept as they are (not tokenized)
    assert {cols[n].action for n in ("CountryFull", "Nationality", "Party", "NameSet")} == {"keep"}
    (tmp_path / "proposed.yaml").write_text(text)
    cfg = write_config(
        tmp_path, input_path=data, keyring=keyring_path, schema=str(tmp_path / "proposed.yaml")
    )
    body = run(cfg, show_progress=False)["manifest"]
    assert body["keep_guard"]["passed"] and body["keep_guard"]["findings"] == []
    assert {w["column"] for w in body["keep_guard"]["warnings"]} >= {"CountryFull", "Party"}
    assert body["reconciliation"]["balanced"]


DESTROYING = {"drop", "redact", "mask", "tokenize", "encrypt"}


@pytest.mark.parametrize(
    "make, kept",
    [
        ("officials_table", {"party", "state", "gender", "type"}),
        ("passengers_table", {"Sex", "Survived", "Pclass", "Embarked"}),
    ],
)
def test_scan_of_officials_and_passenger_lists_protects_identifiers_and_runs_as_is(
    make, kept, keyring_path, tmp_path
):
    """Issue 12's public-records shapes: every identifier (office street addresses,
    handles with and without `@`, `Last, Title. First` names, member ids) is protected;
    party and other categories stay as they are; ticket numbers and fares are not
    scrubbed as phone numbers; the proposal runs through the pipeline unedited."""
    import tests.labelled_data as labelled

    table, classes = getattr(labelled, make)()
    data = _write_csv(tmp_path / f"{make}.csv", table)
    text = scan(data, "csv", sample=300)
    cols = {c.name: c for c in parse_schema(yaml.safe_load(text), "proposed.yaml").columns}
    assert set(cols) == set(classes)
    for name, klass in classes.items():
        if klass == "direct":
            assert cols[name].action != "keep", name
        else:
            assert cols[name].action not in DESTROYING | {"scrub"}, (name, cols[name].action)
    assert all(cols[n].action == "keep" for n in kept)
    for name in [n for n, k in classes.items() if k == "direct"]:
        assert not any(str(v) in text for v in table.column(name).to_pylist()[:50]), name
    (tmp_path / "proposed.yaml").write_text(text)
    cfg = write_config(
        tmp_path, input_path=data, keyring=keyring_path, schema=str(tmp_path / "proposed.yaml")
    )
    body = run(cfg, show_progress=False)["manifest"]
    assert body["keep_guard"]["passed"] and body["keep_guard"]["findings"] == []
    assert body["reconciliation"]["balanced"]
