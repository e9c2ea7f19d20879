"""Canaries planted by a run: reconciled, committed, exported, the same on any worker count."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow as pa
import pytest

from pipelines.canaries import audit_output, read_canaries
from pipelines.run import run
from privgate.keyring import open_keyring
from privgate.reader import read_table, verify
from tests.canary_data import CANARIES, SCHEMA, write_customers
from tests.conftest import cli, write_config
from transforms.canaries.generate import canary_key, coins


def _config(tmp_path, keyring, canaries=CANARIES, output="out", rows=400):
    data = write_customers(tmp_path / "customers.csv", rows)
    path = write_config(tmp_path, input_path=data, keyring=keyring, schema=SCHEMA, output=output)
    with open(path, "a") as f:
        f.write(canaries + "\n")
    return path


def _coins(keyring_path, count, dataset="test_ds"):
    key = canary_key(open_keyring(keyring_path).data_key("token"), dataset)
    return coins(key, dataset, count)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, keyring_path):
    tmp = tmp_path_factory.mktemp("canary_run")
    doc = run(_config(tmp, keyring_path), show_progress=False)
    return doc, tmp


def test_planted_canaries_are_reconciled_apart_from_input_rows(planted, keyring_path):
    doc, _ = planted
    body = doc["manifest"]
    c = _coins(keyring_path, 300)
    rec = body["reconciliation"]
    assert rec["canary_rows"] == int(c.sum()) == body["canaries"]["planted"]
    assert rec["input_rows"] == 400
    assert rec["output_rows"] == 400 + int(c.sum()) - rec["quarantined_rows"]
    assert body["canaries"]["count"] == 300 and body["canaries"]["kind"] == "mislabeled"
    assert body["canaries"]["coin_commitment"].startswith("hmac-sha256:")
    assert verify(doc["output_dir"], keyring=keyring_path)["run_id"] == body["run_id"]


def test_the_export_lists_every_candidate_and_the_release_holds_the_planted_ones(
    planted, keyring_path
):
    doc, _ = planted
    export = read_canaries(doc["output_dir"], keyring_path)
    assert export.column("id").to_pylist() == list(range(300))
    assert "coin" not in " ".join(export.column_names)
    c = _coins(keyring_path, 300)
    data = read_table(doc["output_dir"], keyring=keyring_path)
    released = set(data.column("customer_id").to_pylist())
    tokens = np.array(export.column("customer_id").to_pylist())
    assert all(t in released for t in tokens[c])
    assert not any(t in released for t in tokens[~c])
    # the released form: the planted rows of the release are the export's rows, column for column
    cols = [n for n in data.column_names]
    by_token = {r["customer_id"]: r for r in data.select(cols).to_pylist()}
    for row in export.filter(pa.array(c)).select(cols).to_pylist():
        assert by_token[row["customer_id"]] == row
    # mislabeled: every candidate carries a plan other than the usual `basic`
    assert set(export.column("plan").to_pylist()) <= {"plus", "pro"}


def test_candidates_are_not_copies_of_real_rows(planted, keyring_path, tmp_path):
    doc, tmp = planted
    export = read_canaries(doc["output_dir"], keyring_path)
    # a masked email keeps its last 4 characters: the real ones all end in ".org", the
    # candidates' are drawn letter by letter in the same shape
    ends = [e[-4:] for e in export.column("email").to_pylist()]
    assert all(e[0] == "." and e[1:].isalpha() for e in ends)
    assert ends.count(".org") < 5
    real = read_table(doc["output_dir"], keyring=keyring_path)
    real_tokens = set(real.column("customer_id").to_pylist())
    assert len(set(export.column("customer_id").to_pylist())) == 300
    assert real.num_rows > 400  # the planted ones joined
    assert len(real_tokens) == real.num_rows  # no candidate took a real customer's key


def test_same_candidates_and_coins_for_1_and_4_workers(planted, tmp_path, keyring_path):
    doc1, _ = planted
    cfg = _config(tmp_path, keyring_path, output="out4")
    doc4 = run(
        cfg,
        ["--direct_num_workers", "4", "--direct_running_mode", "multi_processing"],
        show_progress=False,
    )
    b1, b4 = doc1["manifest"], doc4["manifest"]
    assert b1["canaries"]["coin_commitment"] == b4["canaries"]["coin_commitment"]
    assert b1["canaries"]["planted"] == b4["canaries"]["planted"]
    e1 = read_canaries(doc1["output_dir"], keyring_path)
    e4 = read_canaries(doc4["output_dir"], keyring_path)
    assert e1.equals(e4)  # memoized ldp: even the noisy income is the same

    def rows(doc):
        t = read_table(doc["output_dir"], keyring=keyring_path)
        return sorted(json.dumps(r, default=str, sort_keys=True) for r in t.to_pylist())

    assert rows(doc1) == rows(doc4)


def test_audit_separates_a_model_that_saw_the_release(planted, keyring_path, tmp_path):
    doc, _ = planted
    c = _coins(keyring_path, 300)
    member = audit_output(doc["output_dir"], {i: float(b) for i, b in enumerate(c)}, keyring_path)
    assert member["p_value"] < 1e-20 and member["epsilon_lower_bound"] > 1
    rng = np.random.default_rng(3)
    blind = audit_output(
        doc["output_dir"], {i: float(s) for i, s in enumerate(rng.normal(size=300))}, keyring_path
    )
    assert blind["p_value"] > 0.01 and blind["epsilon_lower_bound"] < 1
    scores = tmp_path / "scores.csv"
    scores.write_text("id,score\n" + "".join(f"{i},{int(b)}\n" for i, b in enumerate(c)))
    r = cli(
        "audit", doc["output_dir"], "--scores", str(scores), "--keyring", keyring_path, "--json"
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["p_value"] == pytest.approx(member["p_value"])
    assert out["epsilon_lower_bound"] == pytest.approx(member["epsilon_lower_bound"])
    r = cli(
        "audit",
        doc["output_dir"],
        "--scores",
        str(scores),
        "--keyring",
        keyring_path,
        "--guesses",
        "100:100",
    )
    assert r.returncode == 0 and "epsilon lower bound" in r.stdout
    assert "1 guess count(s)" in r.stdout


def test_audit_refuses_another_keyring_and_bad_scores(
    planted, keyring_path, other_keyring_path, tmp_path
):
    doc, _ = planted
    scores = tmp_path / "scores.csv"
    scores.write_text("id,score\n" + "".join(f"{i},0.5\n" for i in range(300)))
    r = cli("audit", doc["output_dir"], "--scores", str(scores), "--keyring", other_keyring_path)
    assert r.returncode == 1  # the other keyring's public key does not verify the manifest
    for body, message in (
        ("id,score\n" + "".join(f"{i},0.5\n" for i in range(299)), "1 candidate(s) unscored"),
        ("id,score\n0,0.5\n0,0.7\n", "line 3: id 0 is scored twice"),
        ("id,score\n0,abc\n", "line 2: expected an integer id and a number"),
        ("id,score\n0,nan\n", "line 2: the score is not a finite number"),
        ("id,score\n9999,1\n", "id 9999 is not a canary"),
        ("name,value\n", "line 1: the header must be `id,score`"),
    ):
        scores.write_text(body)
        r = cli("audit", doc["output_dir"], "--scores", str(scores), "--keyring", keyring_path)
        assert r.returncode == 1 and message in r.stderr, r.stderr


def test_canaries_command_writes_csv_and_parquet(planted, keyring_path, tmp_path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    doc, _ = planted
    for fmt, reader in (("csv", pacsv.read_csv), ("parquet", pq.read_table)):
        out = tmp_path / f"canaries.{fmt}"
        r = cli(
            "canaries",
            doc["output_dir"],
            "--keyring",
            keyring_path,
            "--format",
            fmt,
            "-o",
            str(out),
        )
        assert r.returncode == 0, r.stderr
        t = reader(str(out))
        assert t.num_rows == 300 and t.column_names[0] == "id"


def test_a_release_without_canaries_is_refused_by_the_commands(tmp_path, keyring_path):
    doc = run(_config(tmp_path, keyring_path, canaries=""), show_progress=False)
    assert "canaries" not in doc["manifest"]
    r = cli("canaries", doc["output_dir"], "--keyring", keyring_path, "-o", str(tmp_path / "x"))
    assert r.returncode == 1 and "has no canaries" in r.stderr
    assert not os.path.exists(tmp_path / "x")


def test_secret_canaries_report_exposure_against_their_references(tmp_path, keyring_path):
    spec = "canaries: {count: 60, kind: secret, field: motto, references: 40}"
    doc = run(_config(tmp_path, keyring_path, canaries=spec), show_progress=False)
    export = read_canaries(doc["output_dir"], keyring_path)
    assert export.column("id").to_pylist() == list(range(100))
    assert export.column("reference").to_pylist() == [False] * 60 + [True] * 40
    c = _coins(keyring_path, 60)
    released = set(read_table(doc["output_dir"], keyring=keyring_path).column("motto").to_pylist())
    secrets_ = export.column("motto").to_pylist()
    assert [s in released for s in secrets_[:60]] == c.tolist()
    assert not released & set(secrets_[60:])  # references are never released
    # a model that memorized the planted secrets ranks them above every reference
    scores = {i: (2.0 if i < 60 and c[i] else 0.0) for i in range(60)}
    scores.update({60 + j: 1.0 for j in range(40)})
    r = audit_output(doc["output_dir"], scores, keyring_path)
    e = r["exposure"]
    assert e["planted"]["mean"] == pytest.approx(math.log2(41))
    assert e["left_out"]["max"] == pytest.approx(0.0)
