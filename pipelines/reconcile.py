"""The manifest body of a finished run: staged files described, every input row accounted for."""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
from collections import Counter

from privgate import __version__
from privgate import manifest as mf
from privgate.errors import DataError
from privgate.kms import kek_context
from schemas.config import RunConfig
from transforms.anonymize.certificate import CERTIFICATE_LINE
from transforms.canaries.generate import CANARY_LINE
from transforms.contract import COUNTS_LINE, merge_contract_counts
from transforms.gates.leaks import LEAKS_LINE, merge_own_row_leaks
from transforms.ldp.census import CENSUS_LINE


def _parquet_files(staging: str, sub: str) -> list[str]:
    return sorted(glob.glob(os.path.join(staging, sub, "*.parquet")))


def _describe_files(staging: str, sub: str, kms) -> tuple[list[dict], Counter | None]:
    import pyarrow.parquet as pq

    from privgate.parquet_crypto import decryption_properties

    files, reasons = [], Counter() if sub == "quarantine" else None
    props = decryption_properties(kms)
    for path in _parquet_files(staging, sub):
        pf = pq.ParquetFile(path, decryption_properties=props)
        files.append(
            {
                "path": f"{sub}/{os.path.basename(path)}",
                "sha256": mf.file_sha256(path),
                "bytes": os.path.getsize(path),
                "rows": pf.metadata.num_rows,
            }
        )
        if reasons is not None:
            for batch in pf.iter_batches(columns=["_reason"]):
                for d in batch.column(0).value_counts().to_pylist():
                    reasons[d["values"]] += d["counts"]
    return files, reasons


def _work_lines(staging: str) -> list[dict]:
    lines = []
    for path in sorted(glob.glob(os.path.join(staging, "_work", "stats*"))):
        with open(path, encoding="utf-8") as f:
            lines.extend(json.loads(line) for line in f if line.strip())
    return lines


def _read_stats(staging: str) -> list[dict]:
    skip = (COUNTS_LINE, LEAKS_LINE, CENSUS_LINE, CANARY_LINE, CERTIFICATE_LINE)
    stats = [s for s in _work_lines(staging) if not any(k in s for k in skip)]
    return sorted(stats, key=lambda s: s["path"])


def read_census(staging: str) -> dict | None:
    """The record-key census of a memoized ldp run (`census_summary`), or None without one."""
    lines = [s[CENSUS_LINE] for s in _work_lines(staging) if CENSUS_LINE in s]
    return lines[0] if len(lines) == 1 else None


def read_certificate(staging: str) -> dict | None:
    """The k-anonymity certificate of an `anonymize:` run (`transforms.anonymize`), or None.

    Raises:
        DataError: the release suppressed more records than `anonymize.max_suppression`.
    """
    lines = [s[CERTIFICATE_LINE] for s in _work_lines(staging) if CERTIFICATE_LINE in s]
    cert = lines[0] if len(lines) == 1 else None
    if cert is not None and not cert["within_max_suppression"]:
        raise DataError(
            f"anonymize: {cert['suppressed']} of {cert['records']} records would be suppressed "
            f"({cert['suppressed_share']:.2%}), more than max_suppression "
            f"{cert['max_suppression']:.2%}; output not published"
        )
    return cert


def read_contract_counts(staging: str) -> dict:
    """The contract stage's per-rule counts over every input row (`merge_contract_counts`)."""
    return merge_contract_counts(s[COUNTS_LINE] for s in _work_lines(staging) if COUNTS_LINE in s)


def read_own_row_leaks(staging: str) -> dict:
    """The protect stage's own-row leak counts over every output row (`merge_own_row_leaks`)."""
    return merge_own_row_leaks(s[LEAKS_LINE] for s in _work_lines(staging) if LEAKS_LINE in s)


def _column_entry(c, n_rows: int, anonymize) -> dict:
    otype = c.output_type
    if anonymize is not None and otype is not None:  # Mondrian's ranges and nodes are strings
        otype = anonymize.released_output_type(c.name, otype)
    entry = dict(
        name=c.name,
        **c.to_dict(),
        key_group=c.key_group if c.action != "drop" else None,
        output_type=otype,
    )
    if c.action == "ldp":
        from privgate.estimate import ldp_utility
        from transforms.protect import ldp_field_metadata

        meta = ldp_field_metadata(c)
        entry["ldp"] = {
            "mechanism": meta["privgate.ldp.mechanism"],
            "estimator": meta["privgate.ldp.estimator"],
            **ldp_utility(meta, n_rows),  # noise_std per record, std_error at n (None at 0)
        }
    return entry


def build_manifest(
    cfg: RunConfig,
    run_id: str,
    started: str,
    keyring,
    staging: str,
    budget=None,
    guard: dict | None = None,
) -> dict:
    """The unsigned manifest body of the run staged in `staging`.

    Raises:
        DataError: input rows != output rows + quarantined rows (nothing is published).
    """
    kek_kms = keyring.kms.bound(kek_context(cfg.dataset))
    out_files, _ = _describe_files(staging, "data", kek_kms)
    q_files, reasons = _describe_files(staging, "quarantine", kek_kms)
    stats = _read_stats(staging)
    input_rows = sum(s["rows"] for s in stats)
    output_rows = sum(f["rows"] for f in out_files)
    q_rows = sum(f["rows"] for f in q_files)
    canaries = None  # planted canaries are output rows that no input row accounts for
    if cfg.canaries is not None:
        from pipelines.canaries import manifest_section

        c_files, _ = _describe_files(staging, "canaries", kek_kms)
        canaries = manifest_section(cfg, keyring, c_files, _work_lines(staging))
    planted = canaries["planted"] if canaries else 0
    if input_rows + planted != output_rows + q_rows:
        raise DataError(
            f"row reconciliation failed: {input_rows} input rows, {output_rows} output rows, "
            f"{q_rows} quarantined"
            + (f", {planted} canaries" if canaries else "")
            + "; output not published"
        )
    schema = cfg.schema
    undeclared = sorted({c for s in stats for c in s["undeclared"]})
    return {
        "format": mf.FORMAT,
        "run_id": run_id,
        "dataset": cfg.dataset,
        "started_at": started,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "privgate_version": __version__,
        "config": {"path": cfg.source, "sha256": cfg.sha256},
        "schema": {
            "path": schema.source,
            "sha256": schema.sha256,
            "record_key": schema.record_key,
            "unknown_columns": schema.unknown_columns,
        },
        "input": {
            "format": cfg.input.format,
            "files": [{"path": s["path"], "sha256": s["sha256"], "rows": s["rows"]} for s in stats],
            "rows": input_rows,
        },
        "columns": [_column_entry(c, output_rows, cfg.anonymize) for c in schema.columns],
        "privacy": budget.summary() if budget else None,
        "keep_guard": guard,
        "dropped_columns": {
            "by_policy": [c.name for c in schema.columns if c.action == "drop"],
            "undeclared": undeclared,
        },
        "output": {"files": out_files, "rows": output_rows},
        "quarantine": {
            "files": q_files,
            "rows": q_rows,
            "by_reason": dict(sorted((reasons or {}).items())),
        },
        "reconciliation": {
            "input_rows": input_rows,
            "output_rows": output_rows,
            "quarantined_rows": q_rows,
            "balanced": True,
            **({"canary_rows": planted} if canaries else {}),
        },
        **({"canaries": canaries} if canaries else {}),
        "encryption": {
            "scheme": "parquet-modular-encryption",
            "algorithm": "AES_GCM_V1",
            "footer_key": "footer",
            "column_keys": {
                g: [c.name for c in schema.output_columns if c.key_group == g]
                for g in ("pii", "data")
            },
            "quarantine_key": "pii",
            "double_wrapping": True,
            "kms": keyring.kms.name,
            "keyring_id": keyring.keyring_id,
            "master_key_versions": keyring.kms.versions(),
            "kek_context": kek_context(cfg.dataset),
        },
        "anonymize": read_certificate(staging),
        "gate": None,
    }
