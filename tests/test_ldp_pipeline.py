"""Local DP through the whole pipeline: demo columns, de-biasing, memoized noise, budget."""

import json
import math
import os

import numpy as np
import pytest

from pipelines.run import run
from privgate.estimate import estimate_from_metadata
from privgate.keyring import init_keyring, open_keyring
from privgate.reader import read_table
from schemas.config import load_config
from tests.conftest import cli, write_config


@pytest.fixture(scope="module")
def demo_2000(tmp_path_factory):
    from pipelines.demo_data import write_demo_csv

    path = str(tmp_path_factory.mktemp("ldpdata") / "customers.csv")
    write_demo_csv(path, 2000)
    return path


def _seeded_urandom(seed: bytes):
    """Deterministic byte stream (SHA-256 in counter mode): test keyrings only."""
    import hashlib

    state = {"i": 0}

    def urandom(n: int) -> bytes:
        out = b""
        while len(out) < n:
            state["i"] += 1
            out += hashlib.sha256(seed + state["i"].to_bytes(8, "big")).digest()
        return out[:n]

    return urandom


@pytest.fixture(scope="module")
def ldp_run(tmp_path_factory, demo_2000):
    """The demo policy on 2,000 rows, with a keyring made from a fixed seed so the memoized
    LDP noise — and therefore every statistical check below — is reproducible."""
    tmp = tmp_path_factory.mktemp("ldprun")
    keyring = str(tmp / "keyring.json")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "urandom", _seeded_urandom(b"privgate-test-ldp-keyring"))
        init_keyring(keyring)
    cfg = write_config(tmp, input_path=demo_2000, keyring=keyring)
    doc = run(cfg, show_progress=False)
    return cfg, keyring, doc


def _budget_config(tmp_path, input_path, keyring, schema, *, record_max, lifetime_max):
    """write_config with `schema` and a privacy section whose ledger is tmp_path/ledger.json;
    returns (config path, ledger path)."""
    ledger = tmp_path / "ledger.json"
    cfg = write_config(
        tmp_path,
        input_path=input_path,
        keyring=keyring,
        schema=schema,
        privacy=f"{{record_epsilon_max: {record_max}, lifetime_epsilon_max: {lifetime_max}, "
        f"ledger: {ledger}}}",
    )
    return cfg, ledger


def _truth(csv_path):
    import csv

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))[:2000]  # the well-formed rows (the rest is quarantined)
    income = np.clip(np.array([float(r["income"]) for r in rows]), 0, 250000)
    gender = [r["gender"] for r in rows]
    smoker = [r["smoker"] == "true" for r in rows]
    return income, gender, smoker


def test_debiased_estimates_match_the_input_within_3_sigma(ldp_run, demo_2000):
    """Each estimate within 3 standard errors of the truth (a 99.7% interval per check;
    deterministic here because the keyring, hence the memoized noise, is seeded)."""
    _, keyring, doc = ldp_run
    out = doc["output_dir"]
    table = read_table(out, keyring=keyring)
    assert table.num_rows == 2000
    income, gender, smoker = _truth(demo_2000)

    est = estimate_from_metadata(table.column("income"), table.schema.field("income").metadata)
    assert abs(est.mean - income.mean()) <= 3 * est.std_error
    # the noise really is there: per-record values are far from the truth on average
    assert np.mean(np.abs(table.column("income").to_numpy() - income)) > 10_000

    g = estimate_from_metadata(table.column("gender"), table.schema.field("gender").metadata)
    for cat, freq, se in zip(g.categories, g.frequencies, g.std_errors, strict=True):
        assert abs(freq - gender.count(cat) / 2000) <= 3 * se, cat
    s = estimate_from_metadata(table.column("smoker"), table.schema.field("smoker").metadata)
    true_rate = np.mean(smoker)
    i = list(s.categories).index(True)
    assert abs(s.frequencies[i] - true_rate) <= 3 * s.std_errors[i]


def test_manifest_reports_budget_and_utility(ldp_run):
    _, _, doc = ldp_run
    body = doc["manifest"]
    assert body["privacy"]["record_epsilon"] == 2.5
    assert body["privacy"]["memoized_noise"] is True
    assert body["privacy"]["charged"] == 2.5
    cols = {c["name"]: c for c in body["columns"]}
    assert cols["income"]["ldp"]["mechanism"] == "piecewise"
    assert cols["income"]["ldp"]["noise_std"] > cols["income"]["ldp"]["std_error"] > 0
    assert math.isclose(
        cols["income"]["ldp"]["noise_std"] / cols["income"]["ldp"]["std_error"],
        math.sqrt(2000),
        rel_tol=0.05,
    )
    assert cols["gender"]["ldp"]["mechanism"] == "grr"
    assert cols["smoker"]["key_group"] == "data"


def test_rerun_releases_the_same_noise_and_spends_nothing(ldp_run, tmp_path):
    cfg, keyring, doc = ldp_run
    first = read_table(doc["output_dir"], keyring=keyring, columns=["income", "gender", "smoker"])
    again = run(cfg, show_progress=False)
    assert again["manifest"]["privacy"]["charged"] == 0
    second = read_table(
        again["output_dir"], keyring=keyring, columns=["income", "gender", "smoker"]
    )
    assert first.equals(second)


def test_ldp_columns_readable_with_the_data_key_only(ldp_run):
    _, keyring, doc = ldp_run
    view = open_keyring(keyring).restricted({"data", "footer"})
    t = read_table(doc["output_dir"], keyring=view, columns=["income", "gender", "smoker"])
    assert t.num_rows == 2000


def test_category_outside_the_list_goes_to_other_unless_quarantine_is_asked(tmp_path, keyring_path):
    """Issue 13.5: by default an out-of-list category is reported as `other` (inside the
    mechanism's domain: the release stays epsilon-LDP, the quarantine count reveals nothing)
    and the estimates, the metadata and the gates' domain check agree on that domain;
    `out_of_domain: quarantine` quarantines it (and the README says what that reveals)."""
    from transforms.gates.metrics import ldp_domain_counts

    path = tmp_path / "in.csv"
    path.write_text("id,gender\na,female\nb,robot\nc,male\n")
    schema = """\
        columns:
          id: {{type: string, action: tokenize}}
          gender: {{type: string, action: ldp, epsilon: 1.0, categories: [female, male]{extra}}}
        """
    cfg, _ = _budget_config(
        tmp_path, path, keyring_path, schema.format(extra=""), record_max=1.0, lifetime_max=100
    )
    doc = run(cfg, show_progress=False)
    assert doc["manifest"]["quarantine"]["by_reason"] == {}
    assert doc["manifest"]["output"]["rows"] == 3
    table = read_table(doc["output_dir"], keyring=keyring_path)
    est = estimate_from_metadata(table.column("gender"), table.schema.field("gender").metadata)
    assert est.categories == ("female", "male", "other") and est.n == 3
    assert set(table.column("gender").to_pylist()) <= set(est.categories)
    gates = ldp_domain_counts(table, load_config(cfg).schema)["gender"]
    assert gates["checked"] == 3 and gates["outside"] == 0 and gates["metadata_ok"]

    strict = ", out_of_domain: quarantine"
    cfg, _ = _budget_config(
        tmp_path, path, keyring_path, schema.format(extra=strict), record_max=1.0, lifetime_max=100
    )
    body = run(cfg, show_progress=False)["manifest"]
    assert body["quarantine"]["by_reason"] == {"domain:gender": 1}
    assert body["output"]["rows"] == 2


def test_fresh_noise_budget_is_refused_from_the_cli(tmp_path, keyring_path, demo_csv):
    schema = """\
        columns:
          plan: {type: string, action: keep}
          income: {type: float, action: ldp, epsilon: 1.0, bounds: [0, 250000]}
          smoker: {type: bool, action: ldp, epsilon: 0.5}
        """
    cfg, ledger = _budget_config(
        tmp_path, demo_csv, keyring_path, schema, record_max=1.5, lifetime_max=2.0
    )
    first = cli("run", cfg)
    assert first.returncode == 0, first.stderr
    second = cli("run", cfg)  # no record_key: fresh noise, 1.5 more would make 3.0 > 2.0
    assert second.returncode == 3, second.stderr
    assert "epsilon" in second.stderr.lower()
    manifest_before = (tmp_path / "out" / "manifest.json").read_text()
    assert json.loads(manifest_before)["manifest"]["privacy"]["charged"] == 1.5
    third = cli("run", cfg, "--allow-budget-overrun")
    assert third.returncode == 0, third.stderr
    body = json.loads((tmp_path / "out" / "manifest.json").read_text())["manifest"]
    assert body["privacy"]["budget_overrun_allowed"] is True
    assert body["privacy"]["lifetime_spent_after"] == 3.0
    entries = json.loads(ledger.read_text())["datasets"]["test_ds"]
    assert [e["overrun"] for e in entries] == [False, True]


def test_record_epsilon_over_the_max_is_a_config_error(tmp_path, keyring_path, demo_csv):
    cfg = write_config(
        tmp_path,
        input_path=demo_csv,
        keyring=keyring_path,
        privacy="{record_epsilon_max: 2.0, lifetime_epsilon_max: 10}",
    )
    r = cli("run", cfg)
    assert r.returncode == 2
    assert "privacy.record_epsilon_max: the schema's ldp columns spend 2.5 per record" in r.stderr
    with pytest.raises(Exception, match="privacy: is required"):
        load_config(
            write_config(tmp_path, input_path=demo_csv, keyring=keyring_path, privacy="null")
        )


def test_a_concurrent_run_that_spent_the_budget_stops_publication(
    tmp_path, keyring_path, demo_csv, monkeypatch
):
    """Another run records its spending while this one runs: this run is refused at record
    time (exit 3), publishes nothing and records nothing."""
    from pipelines.budget import Budget
    from privgate.ledger import BudgetExceeded, EpsilonLedger

    schema = """\
        columns:
          plan: {type: string, action: keep}
          smoker: {type: bool, action: ldp, epsilon: 1.0}
        """
    cfg, ledger = _budget_config(
        tmp_path, demo_csv, keyring_path, schema, record_max=1.0, lifetime_max=1.5
    )
    original = Budget.record

    def concurrent_run_first(self, run_id):
        EpsilonLedger(str(ledger)).record("test_ds", "the-other-run", 1.0)
        return original(self, run_id)

    monkeypatch.setattr(Budget, "record", concurrent_run_first)
    with pytest.raises(BudgetExceeded, match="from 1 to 2"):
        run(cfg, show_progress=False)
    assert not (tmp_path / "out").exists()
    assert not [p for p in os.listdir(tmp_path) if "privgate-tmp" in p]  # staging removed
    entries = json.loads(ledger.read_text())["datasets"]["test_ds"]
    assert [e["run_id"] for e in entries] == ["the-other-run"]


# --------------------------------------------------------------------------- issue 13


def _keyed_csv(path, n=200, *, id_prefix="C", income_shift=0.0):
    """A CSV with two unique key columns (id, ssn) and one ldp column."""
    lines = ["id,ssn,income"]
    for i in range(n):
        lines.append(f"{id_prefix}{i:05d},{100_000_000 + 7 * i},{1000.0 * i + income_shift}")
    path.write_text("\n".join(lines) + "\n")
    return path


_KEYED_SCHEMA = """\
    record_key: {record_key}
    columns:
      id: {{type: string, action: tokenize}}
      ssn: {{type: string, action: tokenize}}
      income: {{type: float, action: ldp, epsilon: 1.0, bounds: [0, 250000]}}
    """


def _keyed_config(tmp_path, input_path, keyring, record_key="id", lifetime_max=1.0, ledger=None):
    ledger = ledger or tmp_path / "ledger.json"
    return write_config(
        tmp_path,
        input_path=input_path,
        keyring=keyring,
        schema=_KEYED_SCHEMA.format(record_key=record_key),
        privacy=f"{{record_epsilon_max: 1.0, lifetime_epsilon_max: {lifetime_max}, "
        f"ledger: {ledger}}}",
    )


def test_switching_the_record_key_column_is_charged_as_fresh_noise(tmp_path, keyring_path):
    """Issue 13.1: runs 1 and 2 (record_key id) cost 1.0 then 0; run 3 keys the same rows on
    ssn, which draws fresh noise for every row (averaging runs 1 and 3 would cut the noise):
    it must cost epsilon again, so with lifetime_epsilon_max 1.0 it is refused (exit 3),
    publishes nothing and records nothing. So are the same rows re-keyed."""
    from privgate.ledger import BudgetExceeded

    data = _keyed_csv(tmp_path / "in.csv")
    cfg = _keyed_config(tmp_path, data, keyring_path)
    first = run(cfg, show_progress=False)
    second = run(cfg, show_progress=False)
    assert [first["manifest"]["privacy"]["charged"], second["manifest"]["privacy"]["charged"]] == [
        1.0,
        0.0,
    ]
    published = (tmp_path / "out" / "manifest.json").read_text()
    with pytest.raises(BudgetExceeded):  # refused before the data is read
        run(_keyed_config(tmp_path, data, keyring_path, record_key="ssn"), show_progress=False)
    # The same config over re-keyed rows passes that first check (it could be a repeat) and
    # is refused once the pipeline has counted what its PRF saw, before publishing.
    rekeyed = _keyed_csv(tmp_path / "rekeyed.csv", id_prefix="X")
    with pytest.raises(BudgetExceeded):
        run(_keyed_config(tmp_path, rekeyed, keyring_path), show_progress=False)
    assert (tmp_path / "out" / "manifest.json").read_text() == published
    entries = json.loads((tmp_path / "ledger.json").read_text())["datasets"]["test_ds"]
    assert [e["charged"] for e in entries] == [1.0, 0.0]


def test_whatever_changes_the_prf_inputs_is_charged(tmp_path, keyring_path):
    """Issue 13.1: the ledger's memo id covers every PRF input. Other record-key values
    (the same rows re-keyed), another record-key column and changed values each draw fresh
    noise and cost epsilon; repeating any of those inputs exactly costs nothing."""
    data = _keyed_csv(tmp_path / "in.csv")
    rekeyed = _keyed_csv(tmp_path / "rekeyed.csv", id_prefix="X")
    changed = _keyed_csv(tmp_path / "changed.csv", income_shift=1.0)

    def charged(input_path, record_key="id"):
        cfg = _keyed_config(tmp_path, input_path, keyring_path, record_key, lifetime_max=100)
        out = run(cfg, show_progress=False)
        table = read_table(out["output_dir"], keyring=keyring_path, columns=["income"])
        return out["manifest"]["privacy"]["charged"], table.column("income").to_pylist()

    c1, first = charged(data)
    c2, again = charged(data)
    c3, by_ssn = charged(data, "ssn")
    c4, by_new_ids = charged(rekeyed)
    c5, shifted = charged(changed)
    c6, by_ssn_again = charged(data, "ssn")
    assert [c1, c2, c3, c4, c5, c6] == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert again == first and by_ssn_again == by_ssn
    for other in (by_ssn, by_new_ids, shifted):  # fresh noise: almost no output repeats
        assert sum(a == b for a, b in zip(first, other, strict=True)) < 10


def test_repeated_record_keys_across_files_and_batches_refuse_memoized_ldp(tmp_path, keyring_path):
    """Issue 13.2: a repeated record key gives equal values bit-identical noisy outputs
    (equality no epsilon accounts for). Each file's keys are unique and batches hold 16
    rows, so only a count over the whole input sees the repeat: the run fails naming the
    column (never the value), publishes nothing and spends nothing."""
    from privgate.errors import DataError

    folder = tmp_path / "in"
    folder.mkdir()
    _keyed_csv(folder / "a.csv", n=40)
    b = _keyed_csv(folder / "b.csv", n=40, id_prefix="D")
    b.write_text(b.read_text().replace("D00007,", "C00031,"))  # C00031 is in a.csv too
    cfg = _keyed_config(tmp_path, f"{folder}/*.csv", keyring_path, lifetime_max=10)
    text = open(cfg).read().replace("  format: csv\n", "  format: csv\n  batch_rows: 16\n")
    open(cfg, "w").write(text)
    with pytest.raises(DataError) as e:
        run(cfg, show_progress=False)
    message = str(e.value)
    assert "record_key 'id'" in message and "C00031" not in message
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "ledger.json").exists()


def test_the_dataset_name_is_in_the_noise_domain(tmp_path, keyring_path):
    """Issue 13.2: two datasets protected under one keyring draw independent noise, so their
    ldp outputs cannot be matched row by row to link records across them. (Each keeps its own
    ledger: in one ledger the same rows under a second name are refused, see below.)"""
    data = _keyed_csv(tmp_path / "in.csv")
    outputs = []
    for dataset in ("clinic_a", "clinic_b"):
        ledger = tmp_path / f"ledger-{dataset}.json"
        cfg = _keyed_config(tmp_path, data, keyring_path, lifetime_max=10, ledger=ledger)
        text = open(cfg).read().replace("dataset: test_ds", f"dataset: {dataset}")
        open(cfg, "w").write(text)
        out = run(cfg, show_progress=False)["output_dir"]
        outputs.append(read_table(out, keyring=keyring_path).column("income").to_pylist())
    assert sum(a == b for a, b in zip(*outputs, strict=True)) < 10


def test_renaming_the_dataset_does_not_buy_fresh_noise_for_the_same_rows(tmp_path, keyring_path):
    """A careless (or clever) rename: the same rows under a new `dataset:` name would get new
    noise (the dataset is in the noise domain) and a budget of their own. The ledger knows the
    input's fingerprint under the old name: the run is refused naming it, publishes nothing
    and records nothing."""
    from privgate.errors import ConfigError

    data = _keyed_csv(tmp_path / "in.csv")
    cfg = _keyed_config(tmp_path, data, keyring_path)
    run(cfg, show_progress=False)
    published = (tmp_path / "out" / "manifest.json").read_text()
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(open(cfg).read().replace("dataset: test_ds", "dataset: test_ds_v2"))
    with pytest.raises(ConfigError, match="dataset: .*'test_ds'"):
        run(str(renamed), show_progress=False)
    assert (tmp_path / "out" / "manifest.json").read_text() == published
    datasets = json.loads((tmp_path / "ledger.json").read_text())["datasets"]
    assert list(datasets) == ["test_ds"]
