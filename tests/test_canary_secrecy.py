"""No inclusion coin (nor the canary key) in any unencrypted file, log or report of a run."""

from __future__ import annotations

import base64
import json
import os

import numpy as np

from privgate.keyring import open_keyring
from tests.canary_data import CANARIES, SCHEMA, write_customers
from tests.conftest import cli, write_config
from tests.test_dataflow import cloud_keyring, moto  # noqa: F401 (fixtures)
from transforms.canaries.generate import canary_key, coins


def _coin_forms(bits: np.ndarray, key: bytes) -> list[bytes]:
    """The coin vector as anyone might write it: bit strings (and inverted), packed bytes in
    hex/base64, JSON/Python lists, the first planted ids as a list; and the canary key."""
    forms = []
    for b in (bits, ~bits):
        s = "".join("1" if x else "0" for x in b)
        forms += [s[:48].encode()]
        packed = np.packbits(b.astype(np.uint8)).tobytes()
        forms += [packed[:12], packed.hex()[:24].encode(), base64.b64encode(packed)[:16]]
        forms += [json.dumps([bool(x) for x in b[:16]]).encode()[1:-1]]
        forms += [json.dumps([int(x) for x in b[:24]]).encode()[1:-1]]
        forms += [repr([bool(x) for x in b[:16]]).encode()[1:-1]]
    ids = np.nonzero(bits)[0][:10].tolist()
    forms += [json.dumps(ids).encode()[1:-1], ",".join(map(str, ids)).encode()]
    forms += [key, key.hex().encode(), base64.b64encode(key), base64.urlsafe_b64encode(key)]
    return forms


def test_no_coin_in_any_unencrypted_file_log_or_report(tmp_path, keyring_path):
    data = write_customers(tmp_path / "customers.csv")
    cfg = write_config(tmp_path, input_path=data, keyring=keyring_path, schema=SCHEMA)
    with open(cfg, "a") as f:
        f.write(CANARIES + "\ngates: {k_anonymity: {quasi_identifiers: [age], k: 2}}\n")
    run = cli("--log-level", "DEBUG", "run", cfg)
    assert run.returncode in (0, 3), run.stderr[-2000:]
    out = str(tmp_path / "out")
    key = canary_key(open_keyring(keyring_path).data_key("token"), "test_ds")
    bits = coins(key, "test_ds", 300)
    assert 100 < bits.sum() < 200
    scores = tmp_path / "scores.csv"
    scores.write_text("id,score\n" + "".join(f"{i},{int(b)}\n" for i, b in enumerate(bits)))
    audit_json = cli(
        "--log-level",
        "DEBUG",
        "audit",
        out,
        "--scores",
        str(scores),
        "--keyring",
        keyring_path,
        "--json",
    )
    audit_text = cli(
        "--log-level", "DEBUG", "audit", out, "--scores", str(scores), "--keyring", keyring_path
    )
    export = tmp_path / "canaries.csv"
    exported = cli(
        "--log-level", "DEBUG", "canaries", out, "--keyring", keyring_path, "-o", str(export)
    )
    assert audit_json.returncode == audit_text.returncode == exported.returncode == 0
    texts = {
        "run stdout": run.stdout,
        "run stderr": run.stderr,
        "audit json": audit_json.stdout + audit_json.stderr,
        "audit text": audit_text.stdout + audit_text.stderr,
        "export log": exported.stdout + exported.stderr,
    }
    blobs = {name: t.encode() for name, t in texts.items()}
    clear, encrypted = [], []
    for parent, _, names in os.walk(out):
        for n in names:
            path = os.path.join(parent, n)
            raw = open(path, "rb").read()
            (encrypted if n.endswith(".parquet") else clear).append(path)
            if n.endswith(".parquet"):
                assert raw[:4] == b"PARE" and raw[-4:] == b"PARE", path  # encrypted footer
            else:
                blobs[os.path.relpath(path, out)] = raw
    assert any(p.endswith("manifest.json") for p in clear)
    assert any(p.endswith(".html") for p in clear)  # the gate's report was scanned too
    assert any("/canaries/" in p for p in encrypted)
    blobs["canaries export"] = export.read_bytes()
    forms = _coin_forms(bits, key)
    # the scan finds coins written the usual ways (a check of the scan itself)
    for leaky in (
        json.dumps(bits.tolist()),
        json.dumps(np.nonzero(bits)[0].tolist()),
        str([bool(x) for x in bits]),
    ):
        assert any(f in leaky.encode() for f in forms), leaky[:40]
    for name, blob in blobs.items():
        for form in forms:
            assert form not in blob, f"a coin form found in {name}"
    # the export holds no column that tells the coins apart
    import pyarrow.csv as pacsv

    t = pacsv.read_csv(str(export))
    for col in t.column_names:
        if col == "id":
            continue
        values = t.column(col).to_pylist()
        assert values != [bool(b) for b in bits] and values != [int(b) for b in bits], col
    assert json.loads(audit_json.stdout)["p_value"] < 1e-20  # the coins were really used


def test_the_dataflow_job_holds_the_planting_step_and_no_key_or_coin(
    cloud_keyring,  # noqa: F811 (the fixture imported above)
    network_refused,
    tmp_path,
    demo_csv,
):
    from pipelines.run import run
    from tests.test_dataflow import DATAFLOW, _config, _on_gcs, _unpacked

    _, _, key_forms, token = cloud_keyring  # Dataflow needs a cloud-KMS keyring
    cfg = _config(tmp_path, demo_csv, cloud_keyring)
    with open(cfg, "a") as f:
        f.write("canaries: {count: 300, kind: mislabeled, label: plan}\n")
    doc = run(_on_gcs(cfg, tmp_path), [*DATAFLOW, "--dry_run=True"], show_progress=False)
    job = doc["result"].job
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert {"Protect/PlantCanaries", "Protect/WriteCanaries", "Protect/WithCanaries"} <= names
    blob = job.proto_pipeline.SerializeToString() + type(job.proto).serialize(job.proto)
    blob += json.dumps(job.options.get_all_options(), default=str).encode()
    text = b"\n".join(_unpacked(blob))
    assert b"PlantCanariesFn" in text  # the scan sees inside the pickled DoFns
    key = canary_key(token, "test_ds")
    for form in _coin_forms(coins(key, "test_ds", 300), key) + key_forms:
        assert form not in text
