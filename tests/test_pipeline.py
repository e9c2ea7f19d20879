"""End to end: the demo policy on synthetic data through the Beam pipeline, then verify/read.

Covers the spine's done-when list: encrypted output (PARE, unreadable without keys), no raw
protected value anywhere in the output, stable tokens per keyring, reidentify, tamper
detection, row reconciliation, least-privilege reads, atomic output.
"""

import csv
import json
import os
import pickle
import re
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.run import run
from privgate.errors import ConfigError, DataError, KeyringError, VerifyError
from privgate.keyring import open_keyring
from privgate.reader import read_table, verify
from tests.conftest import MULTI_PROCESS, cli, write_config

PROTECTED = ("customer_id", "full_name", "email", "phone", "ssn", "ip_address")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_csv, keyring_path):
    tmp = tmp_path_factory.mktemp("run")
    cfg = write_config(tmp, input_path=demo_csv, keyring=keyring_path)
    doc = run(cfg, show_progress=False)
    return cfg, doc["output_dir"], doc


def raw_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def protected_values(path):
    """Raw values of columns that must not survive (len >= 4 to avoid trivial matches)."""
    vals = set()
    for r in raw_rows(path):
        for c in PROTECTED:
            v = r.get(c)
            if v and len(v) >= 4 and not v.isdigit():
                vals.add(v)
    return vals


def test_output_files_are_encrypted_parquet(demo_run):
    _, out, doc = demo_run
    files = [os.path.join(out, f["path"]) for f in doc["manifest"]["output"]["files"]]
    files += [os.path.join(out, f["path"]) for f in doc["manifest"]["quarantine"]["files"]]
    assert files
    for path in files:
        with open(path, "rb") as f:
            assert f.read(4) == b"PARE"
        with pytest.raises(OSError, match="no decryption"):
            pq.read_table(path)


def test_no_raw_protected_value_in_the_decrypted_data(demo_run, demo_csv, keyring_path):
    _, out, _ = demo_run
    secrets = protected_values(demo_csv)
    assert len(secrets) > 1000
    table = read_table(out, keyring=keyring_path)
    cells = {str(x) for col in table.columns for x in col.to_pylist()}
    assert not (cells & secrets)
    assert "full_name" not in table.column_names and "ip_address" not in table.column_names


def _found(values: set[str], paths: list) -> set[str]:
    blobs = [open(p, "rb").read() for p in paths]
    return {v for v in values if any(v.encode() in b for b in blobs)}


def _files(directory) -> list[str]:
    return [os.path.join(r, n) for r, _, names in os.walk(directory) for n in names]


def test_no_raw_protected_value_in_any_byte_of_the_output(demo_csv, keyring_path, tmp_path):
    """A byte scan sees plaintext only where it is stored uncompressed (zstd hides it as
    well as AES does), so this run writes uncompressed Parquet, and controls written the
    same way without encryption show that the scan finds the values there."""
    import dataclasses

    from pipelines.config import load_run_config
    from privgate.parquet_crypto import decryption_properties

    cfg = load_run_config(write_config(tmp_path, input_path=demo_csv, keyring=keyring_path))
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, compression="NONE"))
    doc = run(cfg, show_progress=False)
    out, body = doc["output_dir"], doc["manifest"]
    props = decryption_properties(
        open_keyring(keyring_path).kms.bound(body["encryption"]["kek_context"])
    )
    secrets = protected_values(demo_csv)
    control = tmp_path / "control"
    control.mkdir()
    # control 1: the raw protected columns as plaintext, uncompressed Parquet
    rows = raw_rows(demo_csv)
    raw = pa.table({c: [r.get(c) for r in rows] for c in PROTECTED})
    pq.write_table(raw, control / "input.parquet", compression="NONE")
    assert _found(secrets, [control / "input.parquet"]) == secrets
    # control 2: the quarantine (raw failing rows) decrypted and written without encryption
    q_values = set()
    for f in body["quarantine"]["files"]:
        path = os.path.join(out, f["path"])
        pf = pq.ParquetFile(path, decryption_properties=props)
        assert pf.metadata.row_group(0).column(0).compression == "UNCOMPRESSED"
        pq.write_table(pf.read(), control / os.path.basename(path), compression="NONE")
        q_values |= _found(secrets, [control / os.path.basename(path)])
    assert len(q_values) >= 3  # the failing rows' names, emails, ... in the clear
    # the encrypted output, stored just as uncompressed: no value in any byte
    for f in body["output"]["files"]:
        pf = pq.ParquetFile(os.path.join(out, f["path"]), decryption_properties=props)
        assert pf.metadata.row_group(0).column(0).compression == "UNCOMPRESSED"
    assert _found(secrets, _files(out)) == set()


def test_a_lost_row_fails_reconciliation_and_publishes_nothing(
    demo_csv, keyring_path, tmp_path, monkeypatch
):
    """The reconciliation compares the reader's row count with the rows in the staged output
    and quarantine files; a stage that loses a row stops the run before the gate."""
    import transforms.stages as stages
    from privgate.ledger import EpsilonLedger, ledger_path_for

    real = stages.protect_table
    monkeypatch.setattr(stages, "protect_table", lambda t, *a: real(t.slice(1), *a))
    ledger = EpsilonLedger(ledger_path_for(keyring_path))
    spent = ledger.spent("test_ds")
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    with pytest.raises(DataError, match="row reconciliation failed: 303 input rows"):
        run(cfg, show_progress=False)
    assert not (tmp_path / "out").exists()
    assert not [n for n in os.listdir(tmp_path) if ".privgate-" in n]
    assert ledger.spent("test_ds") == spent


def test_read_returns_policy_shaped_rows_and_reconciles(demo_run, demo_csv, keyring_path):
    _, out, doc = demo_run
    body = doc["manifest"]
    table = read_table(out, keyring=keyring_path)
    assert table.column_names == [
        "customer_id",
        "email",
        "phone",
        "ssn",
        "birth_date",
        "zip",
        "age",
        "signup_at",
        "notes",
        "plan",
        "income",
        "gender",
        "smoker",
    ]
    n_in = len(raw_rows(demo_csv))  # 300 good rows + 3 broken ones
    rec = body["reconciliation"]
    assert rec["input_rows"] == 303 == n_in
    assert rec["output_rows"] == table.num_rows == 300
    assert rec["quarantined_rows"] == 3
    assert body["quarantine"]["by_reason"] == {"columns": 1, "null:customer_id": 1, "type:age": 1}
    assert body["dropped_columns"] == {"by_policy": ["full_name"], "undeclared": ["ip_address"]}
    assert all(t.startswith("tk_") for t in table.column("customer_id").to_pylist())
    assert all(z is None or len(z) == 3 for z in table.column("zip").to_pylist())
    assert set(table.column("age").to_pylist()) <= set(range(0, 100, 25))  # bucket: 25
    notes = [n for n in table.column("notes").to_pylist() if n]
    assert notes and not any(re.search(r"\S+@\S+\.\w+", n) for n in notes)
    assert any("<PERSON_" in n for n in notes) and any("<PHONE_NUMBER_" in n for n in notes)
    assert table.schema.field("birth_date").type == pa.date32()
    assert all(d.month == 1 and d.day == 1 for d in table.column("birth_date").to_pylist())


def test_manifest_lists_hashes_and_keys_never_key_bytes(demo_run, keyring_path):
    _, out, doc = demo_run
    body = doc["manifest"]
    assert body["input"]["files"][0]["sha256"] and body["input"]["rows"] == 303
    enc = body["encryption"]
    assert enc["algorithm"] == "AES_GCM_V1"
    assert set(enc["column_keys"]["data"]) == {
        "birth_date",
        "zip",
        "age",
        "plan",
        "income",
        "gender",
        "smoker",
    }
    assert enc["master_key_versions"] == {"data": 1, "footer": 1, "pii": 1}
    text = open(os.path.join(out, "manifest.json"), "rb").read()
    kr = open_keyring(keyring_path)
    import base64

    for name in ("token", "siv", "date_shift", "ldp"):
        k = kr.data_key(name)
        for form in (k, k.hex().encode(), base64.b64encode(k)):
            assert form not in text


def test_quarantine_readable_by_key_holder(demo_run, keyring_path):
    _, out, _ = demo_run
    q = read_table(out, keyring=keyring_path, quarantine=True)
    assert sorted(q.column("_reason").to_pylist()) == ["columns", "null:customer_id", "type:age"]
    rec = {r["_reason"]: r["_record"] for r in q.to_pylist()}
    assert json.loads(rec["type:age"])["age"] == "unknown"
    assert "C999003" in rec["columns"]


def test_least_privilege_read_without_pii_master(demo_run, keyring_path):
    _, out, _ = demo_run
    view = open_keyring(keyring_path).restricted({"data", "footer"})
    t = read_table(out, keyring=view, columns=["plan", "zip", "age", "birth_date"])
    assert t.num_rows == 300
    with pytest.raises(KeyringError, match="'pii' is not available"):
        read_table(out, keyring=view, columns=["email"])


def test_same_keyring_same_tokens_other_keyring_different(
    demo_run, demo_csv, keyring_path, other_keyring_path, tmp_path
):
    _, out, _ = demo_run
    first = read_table(out, keyring=keyring_path)
    cfg2 = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path, output="again")
    out2 = run(cfg2, show_progress=False)["output_dir"]
    second = read_table(out2, keyring=keyring_path)
    for c in ("customer_id", "phone", "ssn", "email", "signup_at"):
        assert first.column(c).to_pylist() == second.column(c).to_pylist()
    cfg3 = write_config(tmp_path, input_path=demo_csv, keyring=other_keyring_path, output="other")
    third = read_table(run(cfg3, show_progress=False)["output_dir"], keyring=other_keyring_path)
    a, b = first.column("customer_id").to_pylist(), third.column("customer_id").to_pylist()
    assert not set(a) & set(b)


def test_reidentify_recovers_encrypted_value(demo_run, demo_csv, keyring_path):
    _, out, _ = demo_run
    table = read_table(out, keyring=keyring_path, columns=["ssn"], limit=2)
    cts = table.column("ssn").to_pylist()
    r = cli("reidentify", out, "--column", "ssn", "--keyring", keyring_path, *cts)
    assert r.returncode == 0, r.stderr
    raw = [row["ssn"] for row in raw_rows(demo_csv)[:2]]
    assert r.stdout.split() == raw
    r = cli("reidentify", out, "--column", "phone", "--keyring", keyring_path, "tk_00")
    assert r.returncode == 1 and "not reversible" in r.stderr


def test_flipped_byte_fails_verify_and_read(demo_run, keyring_path, tmp_path):
    _, out, doc = demo_run
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    assert cli("verify", copy, "--keyring", keyring_path).returncode == 0
    path = os.path.join(copy, doc["manifest"]["output"]["files"][0]["path"])
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(path, "wb").write(bytes(data))
    r = cli("verify", copy, "--keyring", keyring_path)
    assert r.returncode == 1 and "does not match its sha256" in r.stderr
    with pytest.raises(VerifyError):
        read_table(copy, keyring=keyring_path)
    # even past the hash check, AES-GCM refuses the modified file
    from privgate.parquet_crypto import decryption_properties

    kms = open_keyring(keyring_path).kms
    with pytest.raises(OSError):
        pq.ParquetFile(
            path,
            decryption_properties=decryption_properties(
                kms.bound(doc["manifest"]["encryption"]["kek_context"])
            ),
        ).read()
    # the KEKs are bound to the dataset: another dataset's context cannot unwrap them
    good = os.path.join(out, doc["manifest"]["output"]["files"][0]["path"])
    with pytest.raises(KeyringError, match="cannot unwrap"):
        pq.ParquetFile(
            good, decryption_properties=decryption_properties(kms.bound("privgate-dataset:other"))
        ).read()


def test_tampered_manifest_and_missing_manifest_are_refused(demo_run, keyring_path, tmp_path):
    _, out, _ = demo_run
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    mpath = os.path.join(copy, "manifest.json")
    doc = json.load(open(mpath))
    doc["manifest"]["output"]["rows"] += 1
    json.dump(doc, open(mpath, "w"))
    with pytest.raises(VerifyError, match="signature does not verify"):
        verify(copy, keyring=keyring_path)
    os.remove(mpath)
    with pytest.raises(VerifyError, match="no manifest.json"):
        verify(copy, keyring=keyring_path)


def test_verify_with_exported_public_key_and_foreign_key(
    demo_run, keyring_path, other_keyring_path, tmp_path
):
    _, out, _ = demo_run
    pem = str(tmp_path / "pub.pem")
    assert cli("keys", "export-public", "--keyring", keyring_path, "-o", pem).returncode == 0
    r = cli("verify", out, "--public-key", pem, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 300
    r = cli("verify", out, "--keyring", other_keyring_path)
    assert r.returncode == 1 and "signed by another key" in r.stderr


def test_extra_file_in_output_is_refused(demo_run, keyring_path, tmp_path):
    _, out, _ = demo_run
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    open(os.path.join(copy, "data", "part-99999.parquet"), "wb").write(b"PARE")
    with pytest.raises(VerifyError, match="not in the manifest"):
        verify(copy, keyring=keyring_path)


def test_jsonl_and_parquet_inputs_give_the_same_protected_rows(
    demo_run, demo_csv, keyring_path, tmp_path
):
    import pyarrow.csv as pacsv

    _, out, _ = demo_run
    expected = read_table(out, keyring=keyring_path)
    src = pacsv.read_csv(
        demo_csv,
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in raw_rows(demo_csv)[0]},
            strings_can_be_null=True,
            null_values=[""],
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=lambda row: "skip"),
    )
    src = src.slice(0, 300)  # the well-formed rows
    jsonl = tmp_path / "in.jsonl"
    with open(jsonl, "w") as f:
        for row in src.to_pylist():
            f.write(json.dumps(row) + "\n")
    pq.write_table(src, tmp_path / "in.parquet")
    for fmt, path in (("jsonl", jsonl), ("parquet", tmp_path / "in.parquet")):
        cfg = write_config(
            tmp_path, input_path=path, keyring=keyring_path, fmt=fmt, output=f"out_{fmt}"
        )
        got = read_table(run(cfg, show_progress=False)["output_dir"], keyring=keyring_path)
        assert got.num_rows == 300
        for c in expected.column_names:
            assert got.column(c).to_pylist() == expected.column(c).to_pylist()[:300], (fmt, c)


def test_failed_run_leaves_previous_output_untouched(demo_run, demo_csv, keyring_path, tmp_path):
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    out = run(cfg, show_progress=False)["output_dir"]
    before = open(os.path.join(out, "manifest.json"), "rb").read()
    strict = write_config(
        tmp_path,
        input_path=demo_csv,
        keyring=keyring_path,
        schema="""\
        unknown_columns: fail
        columns:
          plan: {type: string, action: keep}
        """,
    )
    with pytest.raises(DataError, match="not declared in the schema") as e:
        run(strict, show_progress=False)
    assert "column 'age' is not declared" in str(e.value)  # first undeclared, sorted
    assert open(os.path.join(out, "manifest.json"), "rb").read() == before
    leftovers = [n for n in os.listdir(tmp_path) if ".privgate-" in n]
    assert leftovers == []
    verify(out, keyring=keyring_path)


def test_missing_declared_column_is_a_schema_error(demo_csv, keyring_path, tmp_path):
    cfg = write_config(
        tmp_path,
        input_path=demo_csv,
        keyring=keyring_path,
        schema="""\
        columns:
          plan: {type: string, action: keep}
          loyalty_tier: {type: string, action: keep}
        """,
    )
    r = cli("run", cfg)
    assert r.returncode == 2
    assert "declared column 'loyalty_tier' is missing" in r.stderr


def test_config_error_exit_2_with_key_path(tmp_path, keyring_path, demo_csv):
    cfg = write_config(
        tmp_path,
        input_path=demo_csv,
        keyring=keyring_path,
        schema="""\
        columns:
          age: {type: int, action: generalize, bucket: -1}
        """,
    )
    r = cli("run", cfg)
    assert r.returncode == 2
    assert "schema.yaml: columns.age.bucket: must be a positive integer" in r.stderr


def test_keyring_problems_fail_before_reading_data(tmp_path, demo_csv, keyring_path):
    cfg = write_config(
        tmp_path,
        input_path=str(tmp_path / "nothing-here.csv"),
        keyring=str(tmp_path / "missing.json"),
    )
    # the input does not exist either: the keyring error must come first
    with pytest.raises(KeyringError, match="keyring not found"):
        run(cfg, show_progress=False)
    r = cli(
        "run",
        write_config(tmp_path, input_path=demo_csv, keyring=keyring_path),
        env={"PRIVGATE_KEYRING_PASSPHRASE": "wrong"},
    )
    assert r.returncode == 1 and "wrong passphrase" in r.stderr
    assert not os.path.exists(tmp_path / "out")


def test_no_input_files_is_a_config_error(tmp_path, keyring_path):
    cfg = write_config(
        tmp_path, input_path=str(tmp_path / "in" / "none-*.csv"), keyring=keyring_path
    )
    with pytest.raises(ConfigError, match="input.path: no input files match"):
        run(cfg, show_progress=False)


def test_pipeline_objects_carry_no_key_material(demo_run, keyring_path):
    import base64

    from schemas.config import load_config
    from transforms.stages import ProtectColumnsFn, ProtectDataset

    cfg_path, _, _ = demo_run
    cfg = load_config(cfg_path)
    blob = pickle.dumps(ProtectColumnsFn(cfg.schema, cfg.keys.keyring, cfg.dataset))
    blob += pickle.dumps(ProtectDataset(cfg, "/tmp/x"))
    kr = open_keyring(keyring_path)
    for name in ("token", "siv", "date_shift", "ldp"):
        k = kr.data_key(name)
        for form in (k, k.hex().encode(), base64.b64encode(k)):
            assert form not in blob


def test_run_opens_no_network_socket(network_refused, demo_csv, keyring_path, tmp_path):
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    doc = run(cfg, show_progress=False)
    assert doc["manifest"]["output"]["rows"] == 300


def test_multi_process_workers_give_the_same_output(demo_run, demo_csv, keyring_path, tmp_path):
    """FnApiRunner with two worker processes: catches state that exists only in the launching
    process (workers must open the keyring themselves from its path)."""
    _, out, _ = demo_run
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path, output="mp")
    r = cli("run", cfg, "--no-progress", *MULTI_PROCESS)
    assert r.returncode == 0, r.stderr[-2000:]
    got = read_table(str(tmp_path / "mp"), keyring=keyring_path)
    expected = read_table(out, keyring=keyring_path)
    assert got.num_rows == expected.num_rows == 300
    for c in ("customer_id", "phone", "ssn", "signup_at", "income", "notes"):
        assert sorted(map(str, got.column(c).to_pylist())) == sorted(
            map(str, expected.column(c).to_pylist())
        ), c
