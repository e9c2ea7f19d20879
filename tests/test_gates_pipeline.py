"""The governance gate end to end: the shipped demo config passes and writes a report; a
variant with quasi-identifiers too fine fails with exit 3, a report saying why, and
`privgate verify` refusing the output; reports hold no raw protected value."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from pipelines.run import run
from privgate.errors import GateError, VerifyError
from privgate.reader import read_table, verify
from tests.conftest import ROOT, cli, write_config
from tests.gates_data import MISSED_NAMES, MISSED_NOTES


def _demo_config(tmp_path, keyring, demo_csv, **changes):
    """configs/demo.yaml with its paths moved into tmp_path (and optional changes)."""
    with open(os.path.join(ROOT, "configs", "demo.yaml")) as f:
        cfg = yaml.safe_load(f)
    cfg["input"]["path"] = demo_csv
    cfg["schema"] = os.path.join(ROOT, "schemas", "demo_customers.yaml")
    cfg["output"]["path"] = str(tmp_path / "out")
    cfg["keys"]["keyring"] = keyring
    cfg["privacy"]["ledger"] = str(tmp_path / "ledger.json")
    for key, value in changes.items():
        cfg["gates"][key] = value
    for col, rel in cfg.get("anonymize", {}).get("hierarchies", {}).items():
        cfg["anonymize"]["hierarchies"][col] = os.path.join(ROOT, "configs", rel)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="module")
def demo_2000(tmp_path_factory):
    from pipelines.demo_data import write_demo_csv

    return write_demo_csv(str(tmp_path_factory.mktemp("gdata") / "customers.csv"), 2000)


def test_shipped_demo_config_passes_the_gate_with_a_report(tmp_path, keyring_path, demo_2000):
    import multiprocessing

    doc = run(_demo_config(tmp_path, keyring_path, demo_2000), show_progress=False)
    assert not multiprocessing.active_children()  # the side worker is stopped, not leaked
    body = doc["manifest"]
    assert body["gate"] == {"status": "passed", "failed": []}
    out = doc["output_dir"]
    report = json.load(open(os.path.join(out, "report", "validation.json")))
    names = {c["name"] for c in report["checks"]}
    assert "reconciliation" not in names  # enforced before the gate (build_manifest)
    assert names >= {
        "output_columns",
        "ldp_domain",
        "k_anonymity",
        "l_diversity",
        "residual_pii",
        "input_contract",
    }
    # The demo's scrubbed notes keep some customers' names (NER misses them): the residual
    # check sees them from each row's own raw name, under the demo's 5% limit.
    res = next(c for c in report["checks"] if c["name"] == "residual_pii")
    notes = res["details"]["by_column"]["notes"]
    assert notes["own_row"]["by_source"]["full_name"] == notes["own_row"]["leaking"] > 0
    assert 0 < notes["rate"] <= 0.05 and "own_row" in notes["evidence"]
    html = open(os.path.join(out, "report", "index.html"), encoding="utf-8").read()
    assert "GATE PASSED" in html and "<svg" in html
    assert not re.search(r"https?://|<script|src=", html)
    assert cli("verify", out, "--keyring", keyring_path).returncode == 0


def test_too_fine_quasi_identifiers_fail_the_gate_and_verify_refuses(
    tmp_path, keyring_path, demo_2000
):
    cfg = _demo_config(
        tmp_path,
        keyring_path,
        demo_2000,
        k_anonymity={"quasi_identifiers": ["age", "zip", "gender"], "k": 5},
    )
    with open(cfg) as f:  # measured, not enforced (with anonymize: a config error, below)
        data = yaml.safe_load(f)
    del data["anonymize"]
    with open(cfg, "w") as f:
        yaml.safe_dump(data, f)
    r = cli("run", cfg)
    assert r.returncode == 3, r.stderr
    assert "k_anonymity" in r.stderr
    out = tmp_path / "out"
    report = json.load(open(out / "report" / "validation.json"))
    assert report["status"] == "failed" and "k_anonymity" in report["failed"]
    k = next(c for c in report["checks"] if c["name"] == "k_anonymity")
    assert k["details"]["records_below_k"] > 0
    assert "GATE FAILED" in (out / "report" / "index.html").read_text(encoding="utf-8")
    v = cli("verify", str(out), "--keyring", keyring_path)
    assert v.returncode == 1 and "gate failed" in v.stderr
    with pytest.raises(VerifyError, match="gate failed"):
        read_table(str(out), keyring=keyring_path)
    with pytest.raises(GateError):
        run(cfg, show_progress=False)
    import multiprocessing

    assert not multiprocessing.active_children()


def test_reports_hold_no_raw_protected_value(tmp_path, keyring_path, demo_2000):
    out = run(_demo_config(tmp_path, keyring_path, demo_2000), show_progress=False)["output_dir"]
    with open(demo_2000, newline="") as f:
        rows = list(csv.DictReader(f))
    values = {
        r[c]
        for r in rows
        for c in (
            "customer_id",
            "full_name",
            "email",
            "phone",
            "ssn",
            "ip_address",
            "notes",
            "income",
        )
        if r.get(c) and len(r[c]) >= 5
    }
    blobs = [
        open(os.path.join(out, "report", n), "rb").read()
        for n in os.listdir(os.path.join(out, "report"))
    ]
    blobs.append(open(os.path.join(out, "manifest.json"), "rb").read())
    for v in values:
        assert not any(v.encode() in b for b in blobs)


def test_modified_report_is_refused(tmp_path, keyring_path, demo_2000):
    out = run(_demo_config(tmp_path, keyring_path, demo_2000), show_progress=False)["output_dir"]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    page = copy / "report" / "index.html"
    page.write_text(
        page.read_text(encoding="utf-8").replace("GATE PASSED", "GATE PASSED!"), encoding="utf-8"
    )
    with pytest.raises(VerifyError, match="report/index.html does not match"):
        verify(str(copy), keyring=keyring_path)


def test_gates_config_errors_name_the_key(tmp_path, keyring_path, demo_2000):
    cfg = _demo_config(
        tmp_path, keyring_path, demo_2000, k_anonymity={"quasi_identifiers": ["full_name"], "k": 5}
    )
    r = cli("run", cfg)
    assert r.returncode == 2
    assert "gates.k_anonymity.quasi_identifiers" in r.stderr
    cfg = _demo_config(  # a gate over a column the enforced release does not generalize
        tmp_path, keyring_path, demo_2000, k_anonymity={"quasi_identifiers": ["gender"], "k": 5}
    )
    r = cli("run", cfg)
    assert r.returncode == 2 and "not in anonymize.quasi_identifiers" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_kept_pii_column_fails_the_gate_with_a_report(tmp_path, keyring_path, demo_2000):
    with open(os.path.join(ROOT, "schemas", "demo_customers.yaml")) as f:
        schema = yaml.safe_load(f)
    schema["columns"]["email"] = {"type": "string", "action": "keep"}
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    cfg_path = _demo_config(tmp_path, keyring_path, demo_2000)
    cfg = yaml.safe_load(open(cfg_path))
    cfg["schema"] = str(tmp_path / "schema.yaml")
    open(cfg_path, "w").write(yaml.safe_dump(cfg))
    r = cli("run", cfg_path)
    assert r.returncode == 3 and "keep_guard" in r.stderr
    report = json.load(open(tmp_path / "out" / "report" / "validation.json"))
    guard = next(c for c in report["checks"] if c["name"] == "keep_guard")
    assert not guard["passed"]
    assert guard["details"]["findings"][0]["column"] == "email"
    assert guard["details"]["findings"][0]["entity"] == "EMAIL_ADDRESS"
    assert cli("verify", str(tmp_path / "out"), "--keyring", keyring_path).returncode == 1


def test_full_run_with_gates_opens_no_socket_in_any_process(tmp_path, keyring_path, demo_csv):
    """Every Python process of the run (the CLI, the spawned side worker with spaCy,
    Presidio and Great Expectations) starts with sockets refused via sitecustomize."""
    site = tmp_path / "site"
    site.mkdir()
    attempts = tmp_path / "attempts.log"
    (site / "sitecustomize.py").write_text(
        "import os, socket\n"
        "def _refuse(*a, **k):\n"
        "    with open(os.environ['PRIVGATE_TEST_SOCKET_LOG'], 'a') as f:\n"
        "        f.write(f'{os.getpid()} {a[1:2]!r}\\n')\n"
        "    raise OSError('network refused by privgate test')\n"
        "socket.socket.connect = _refuse\n"
        "socket.socket.connect_ex = _refuse\n"
        "socket.getaddrinfo = _refuse\n"
        "socket.create_connection = _refuse\n"
    )
    cfg = _demo_config(tmp_path, keyring_path, demo_csv)
    env = dict(
        os.environ, PYTHONPATH=f"{site}{os.pathsep}{ROOT}", PRIVGATE_TEST_SOCKET_LOG=str(attempts)
    )
    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.getaddrinfo('x', 1)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "network refused by privgate test" in probe.stderr  # the guard is really active
    attempts.unlink()
    r = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", cfg],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode in (0, 3), r.stderr[-1500:]
    assert not attempts.exists(), attempts.read_text()
    report = json.load(open(tmp_path / "out" / "report" / "validation.json"))
    assert {c["name"] for c in report["checks"]} >= {"residual_pii", "input_contract", "keep_guard"}


# ------------------------------------------------------------------ the input contract's cost


def _small_gates_config(tmp_path, keyring_path, rows, schema, gates="{}"):
    """A CSV of `rows` (a list of lines after the header) and a run config with `gates`."""
    data = tmp_path / "in.csv"
    data.write_text("\n".join(rows) + "\n")
    cfg = write_config(tmp_path, input_path=str(data), keyring=keyring_path, schema=schema)
    with open(cfg, "a") as f:
        f.write(f"gates: {gates}\n")
    return cfg


def test_gates_without_user_suites_never_import_great_expectations(
    tmp_path, keyring_path, demo_2000
):
    """Fresh interpreter, the shipped demo gates (no user suite): the launcher never imports
    Great Expectations and no side job runs in a second (GX) worker. (The demo's k = 5 holds
    on its 2,000 rows; on 300 rows some keyrings' ldp noise leaves a class below 5.)"""
    cfg = _demo_config(tmp_path, keyring_path, demo_2000)
    code = textwrap.dedent(
        f"""
        import json, sys
        from pipelines import workers

        jobs = []
        submit = workers.SideWorker.submit

        def spy(self, fn, *args):
            jobs.append([id(self), fn.__module__ + "." + fn.__qualname__])
            return submit(self, fn, *args)

        workers.SideWorker.submit = spy
        from pipelines.run import run

        run({cfg!r}, show_progress=False)
        print(json.dumps({{"gx": "great_expectations" in sys.modules, "jobs": jobs}}))
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-2000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["gx"] is False
    assert len({worker for worker, _ in seen["jobs"]}) == 1, seen["jobs"]  # detection only
    assert not [job for _, job in seen["jobs"] if "input" in job], seen["jobs"]
    report = json.load(open(tmp_path / "out" / "report" / "validation.json"))
    assert "input_contract" in {c["name"] for c in report["checks"]}


def test_input_contract_counts_every_input_row(tmp_path, keyring_path):
    """A bad cell at row 50,000 (beyond any head sample) is counted, by column and rule; the
    report shows the counts, never the value."""
    rows = ["id,age,score"] + [f"{i},{20 + i % 50},{i % 100}" for i in range(60_000)]
    rows[50_000] = "49999,old-ish,1"  # type:age, quarantined
    rows[55_000] = "54999,33,150"  # score outside its bounds: clipped, counted
    schema = """\
        columns:
          id: {type: int, action: keep}
          age: {type: int, action: generalize, bucket: 10}
          score: {type: float, action: ldp, epsilon: 1.0, bounds: [0, 100]}
        """
    cfg = _small_gates_config(tmp_path, keyring_path, rows, schema)
    doc = run(cfg, show_progress=False)
    assert doc["manifest"]["quarantine"]["by_reason"] == {"type:age": 1}
    report = json.load(open(tmp_path / "out" / "report" / "validation.json"))
    contract = next(c for c in report["checks"] if c["name"] == "input_contract")
    d = contract["details"]
    assert contract["passed"] is True  # the run quarantines/clips these rows by policy
    assert d["warnings"] == 2 and d["critical_failed"] == 0
    failed = {(e["column"], e["type"]): e for e in d["expectations"] if not e["success"]}
    assert set(failed) == {
        ("age", "expect_column_values_to_parse_as_type"),
        ("score", "expect_column_values_to_be_between"),
    }
    for e in failed.values():
        assert e["element_count"] == 60_000 and e["unexpected_count"] == 1
        assert e["severity"] == "warning" and e["source"] == "schema"
    assert {e["column"] for e in d["expectations"]} == {"id", "age", "score"}
    html = (tmp_path / "out" / "report" / "index.html").read_text(encoding="utf-8")
    assert "expect_column_values_to_parse_as_type" in html and "old-ish" not in html


def test_user_input_suite_sees_the_rows_the_contract_quarantines(tmp_path, keyring_path):
    rows = ["id,age"] + [f"{i},{30 + i}" for i in range(20)]
    rows[5] = "4,"  # age missing in a non-nullable column: quarantined (null:age)
    suite = tmp_path / "input.json"
    suite.write_text(
        json.dumps(
            {
                "name": "mine",
                "expectations": [
                    {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 20}},
                    {
                        "type": "expect_column_values_to_not_be_null",
                        "kwargs": {"column": "age"},
                        "severity": "warning",
                    },
                ],
            }
        )
    )
    schema = """\
        columns:
          id: {type: int, action: keep}
          age: {type: int, action: keep}
        """
    cfg = _small_gates_config(
        tmp_path, keyring_path, rows, schema, gates=f"{{input_expectations: {suite}}}"
    )
    doc = run(cfg, show_progress=False)
    assert doc["manifest"]["quarantine"]["by_reason"] == {"null:age": 1}
    report = json.load(open(tmp_path / "out" / "report" / "validation.json"))
    mine = next(c for c in report["checks"] if c["name"] == "input_expectations")
    by_type = {e["type"]: e for e in mine["details"]["expectations"]}
    assert by_type["expect_table_row_count_to_equal"]["success"] is True  # 20 rows, not 19
    assert by_type["expect_column_values_to_not_be_null"]["unexpected_count"] == 1


# ------------------------------------------------------------------ an empty output


def test_a_run_with_every_row_quarantined_fails_the_gate_with_a_report(tmp_path, keyring_path):
    """Every row fails the contract (age is not an int): 0 output rows. The gate must not
    crash; k-anonymity and l-diversity hold vacuously (an empty output re-identifies nobody),
    but the `output_rows` check fails, so an all-quarantined run cannot look healthy."""
    rows = ["id,name,age,gender,notes"] + [
        f"{i},Shane Mckenzie,old,f,called back" for i in range(30)
    ]
    schema = """\
        record_key: id
        columns:
          id: {type: string, action: tokenize}
          name: {type: string, pii: PERSON, action: tokenize}
          age: {type: int, action: generalize, bucket: 10}
          gender: {type: string, action: ldp, epsilon: 1.0, categories: [f, m]}
          notes: {type: string, action: scrub}
        """
    gates = (
        "{residual_pii_max: 0.01, k_anonymity: {quasi_identifiers: [age], k: 5},"
        " l_diversity: {sensitive: gender, l: 2}}"
    )
    cfg = _small_gates_config(tmp_path, keyring_path, rows, schema, gates)
    r = cli("run", cfg)
    assert r.returncode == 3, r.stderr[-2000:]
    assert "output_rows" in r.stderr and "no partial counts" not in r.stderr
    out = tmp_path / "out"
    report = json.load(open(out / "report" / "validation.json"))
    by_name = {c["name"]: c for c in report["checks"]}
    assert report["failed"] == ["output_rows"]
    assert by_name["output_rows"]["details"]["output_rows"] == 0
    assert by_name["output_rows"]["details"]["quarantined_rows"] == 30
    manifest = json.load(open(out / "manifest.json"))["manifest"]
    assert manifest["reconciliation"]["quarantined_rows"] == 30  # balanced, and enforced
    k = by_name["k_anonymity"]
    assert k["passed"] is True and k["details"]["records"] == 0
    assert k["details"]["min_class_size"] is None
    assert by_name["l_diversity"]["passed"] is True
    assert by_name["residual_pii"]["passed"] is True
    html = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "GATE FAILED" in html and "0 output rows" in html
    assert "Mckenzie" not in html
    v = cli("verify", str(out), "--keyring", keyring_path)
    assert v.returncode == 1 and "gate failed" in v.stderr


# ------------------------------------------------------------------ residual PII, independent


def test_residual_gate_sees_a_name_the_scrubber_missed(tmp_path, keyring_path):
    """`name: tokenize`, `notes: scrub`; every note holds its own row's name in a form the
    detector misses. The gate must fail on the notes column, from the row's own raw name
    found in its output (counts only: no name reaches the report)."""
    rows = ["id,name,plan,notes"]
    for i in range(30):
        name = MISSED_NAMES[i % 3]
        note = MISSED_NOTES[(i // 3) % 3].format(name=name, lower=name.lower())
        rows.append(f"{i},{name},basic,{note}")
    rows += [f"{i},Ann Lee,basic,announcement sent" for i in range(30, 40)]  # no word match
    schema = """\
        record_key: id
        columns:
          id: {type: string, action: tokenize}
          name: {type: string, action: tokenize}
          plan: {type: string, action: keep}
          notes: {type: string, action: scrub}
        """
    cfg = _small_gates_config(tmp_path, keyring_path, rows, schema, "{residual_pii_max: 0.01}")
    r = cli("run", cfg)
    assert r.returncode == 3, r.stderr[-2000:]
    assert "residual_pii" in r.stderr
    out = tmp_path / "out"
    report = json.load(open(out / "report" / "validation.json"))
    res = next(c for c in report["checks"] if c["name"] == "residual_pii")
    d = res["details"]
    assert res["passed"] is False and d["failed_columns"] == ["notes"]
    notes = d["by_column"]["notes"]
    assert notes["own_row"] == {
        "checked": 40,
        "leaking": 30,
        "rate": 0.75,
        "by_source": {"id": 0, "name": 30},
    }
    assert "own_row" in notes["evidence"] and notes["passed"] is False
    assert notes["detector"]["score_threshold"] < 0.4  # below the scrubber's
    plan = d["by_column"]["plan"]
    assert plan["passed"] is True and plan["own_row"]["leaking"] == 0
    html = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "GATE FAILED" in html and "notes" in html
    blobs = [html, (out / "report" / "validation.json").read_text(), r.stderr]
    for name in MISSED_NAMES + ["Ann Lee"]:
        for part in name.split():
            assert not any(part.lower() in b.lower() for b in blobs), part
