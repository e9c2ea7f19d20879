"""`anonymize:` in a run: the shipped demo releases a k-anonymous output, certified in the
manifest and the report, checked by the gate; too much suppression publishes nothing."""

from __future__ import annotations

import collections
import os
import re

import pytest

from pipelines.run import run
from privgate.errors import DataError
from privgate.reader import read_table
from tests.conftest import cli
from tests.test_dataflow import cloud_keyring, moto  # noqa: F401 (fixtures)
from tests.test_gates_pipeline import _demo_config


@pytest.fixture(scope="module")
def demo_1000(tmp_path_factory):
    from pipelines.demo_data import write_demo_csv

    return write_demo_csv(str(tmp_path_factory.mktemp("adata") / "customers.csv"), 1000)


def test_demo_release_is_k_anonymous_certified_and_gated(tmp_path, keyring_path, demo_1000):
    doc = run(_demo_config(tmp_path, keyring_path, demo_1000), show_progress=False)
    body = doc["manifest"]
    cert = body["anonymize"]
    assert body["gate"] == {"status": "passed", "failed": []}
    assert cert["records"] == body["output"]["rows"] == body["reconciliation"]["output_rows"]
    assert cert["k_reached"] >= 5 and cert["l_reached"] >= 2
    assert cert["suppressed"] <= 0.01 * cert["records"]
    out = read_table(doc["output_dir"], keyring=keyring_path)
    assert out.num_rows == body["output"]["rows"]
    # the manifest states the released types (ranges are strings), the files agree
    from transforms.arrow import ARROW_TYPES

    types = {c["name"]: c["output_type"] for c in body["columns"] if c["output_type"]}
    assert types["age"] == types["zip"] == types["birth_date"] == "string"
    assert {f.name: f.type for f in out.schema} == {n: ARROW_TYPES[t] for n, t in types.items()}
    qis = ("age", "zip", "birth_date")
    classes = collections.Counter(zip(*(out[q].to_pylist() for q in qis), strict=True))
    released = {key: n for key, n in classes.items() if key != (None, None, None)}
    assert min(released.values()) == cert["k_reached"] and len(released) == cert["classes"]
    assert classes.get((None, None, None), 0) == cert["suppressed"]
    assert all(re.fullmatch(r"\[\d+, \d+\]", a) for a, _, _ in released)
    assert all(re.fullmatch(r"\[\d{4}-01-01, \d{4}-01-01\]", b) for _, _, b in released)
    html = open(os.path.join(doc["output_dir"], "report", "index.html"), encoding="utf-8").read()
    assert "Enforced k-anonymity (certificate)" in html
    assert f"{cert['gcp']:.2%}" in html
    assert cli("verify", doc["output_dir"], "--keyring", keyring_path).returncode == 0


def test_more_suppression_than_allowed_publishes_nothing(tmp_path, keyring_path, demo_1000):
    import yaml

    path = _demo_config(tmp_path, keyring_path, demo_1000)
    cfg = yaml.safe_load(open(path))
    cfg["anonymize"]["k"] = 5000  # more than the input: every record would be suppressed
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    with pytest.raises(DataError, match="more than max_suppression"):
        run(path, show_progress=False)
    assert not (tmp_path / "out").exists()
    r = cli("run", path, "--no-progress")
    assert r.returncode == 1 and "max_suppression" in r.stderr


def test_two_worker_processes_release_the_same_records(tmp_path, keyring_path, demo_1000):
    from tests.conftest import MULTI_PROCESS

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = run(_demo_config(tmp_path / "a", keyring_path, demo_1000), show_progress=False)
    cfg = _demo_config(tmp_path / "b", keyring_path, demo_1000)
    r = cli("run", cfg, "--no-progress", *MULTI_PROCESS)
    assert r.returncode == 0, r.stderr
    cols = ["customer_id", "age", "zip", "birth_date", "smoker"]
    a = read_table(one["output_dir"], keyring=keyring_path).select(cols).sort_by("customer_id")
    b = read_table(str(tmp_path / "b" / "out"), keyring=keyring_path).select(cols)
    assert a.equals(b.sort_by("customer_id"))


def test_dataflow_dry_run_builds_the_rounds(
    cloud_keyring,  # noqa: F811 (the fixture imported above; Dataflow needs a cloud KMS)
    network_refused,
    tmp_path,
    demo_csv,
):
    from tests.conftest import ROOT
    from tests.test_dataflow import DATAFLOW, _config, _on_gcs

    cfg = _on_gcs(_config(tmp_path, demo_csv, cloud_keyring), tmp_path)
    zip3 = os.path.join(ROOT, "configs", "hierarchies", "demo", "zip3.csv")
    with open(cfg, "a") as f:
        f.write(
            "anonymize:\n  k: 5\n  quasi_identifiers: [age, zip]\n"
            f"  hierarchies: {{zip: {zip3}}}\n  rounds: 3\n"
        )
    doc = run(cfg, [*DATAFLOW, "--dry_run=True"], show_progress=False)
    job = doc["result"].job
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    for step in ("GlobalRanges", "PartitionStats2", "Cut2", "GroupLeaves", "FinishLeaves"):
        assert any(n.endswith(f"Anonymize/{step}") for n in names), step
    assert not any("PartitionStats3" in n for n in names)
