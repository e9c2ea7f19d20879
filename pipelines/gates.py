"""The governance gate at the end of a run (`gates:` in the run config).

After the pipeline finished and before the manifest is signed, the launcher streams the
encrypted output once (decrypting with the run's keyring) and computes, vectorized per batch
and merged: output columns vs the schema, row reconciliation, k-anonymity / l-diversity over
the whole output, LDP columns inside their declared domains, the residual-PII rate on a
deterministic sample of every non-tokenized string column, and the user's output suite. The
input contract (Great Expectations, derived from the schema plus the user's input suite)
runs on the first contract-valid input rows. The verdict and the per-check details go into
`report/validation.json` and `report/index.html`; the manifest records the verdict.

Costs that do not grow with rows (GX import ~2 s, detector ~2 s, matplotlib ~0.5 s) are paid
only for the parts a config asks for.
"""

from __future__ import annotations

import logging
import os

import pyarrow as pa

from schemas.model import RunConfig

log = logging.getLogger("privgate.gates")

RESIDUAL_SAMPLE = 1000  # values per column examined for residual PII
INPUT_SAMPLE_ROWS = 10_000  # rows of the input the GX input contract runs on
PLOT_ROWS = 200_000  # rows of input and output the before/after plots count
# Output columns whose values are keyed tokens/ciphertexts or nulls: nothing to detect.
_NOT_DETECTED = ("tokenize", "encrypt", "redact", "ldp")


def _output_batches(staging: str, kms):
    import glob

    import pyarrow.parquet as pq

    from privgate.parquet_crypto import decryption_properties

    props = decryption_properties(kms)
    for path in sorted(glob.glob(os.path.join(staging, "data", "*.parquet"))):
        pf = pq.ParquetFile(path, decryption_properties=props)
        for batch in pf.iter_batches():
            yield pa.Table.from_batches([batch], schema=pf.schema_arrow)


def _input_head(cfg: RunConfig, files: list[str], rows: int) -> pa.Table | None:
    from transforms.contract import check_batch
    from transforms.read import RawBatch, read_file

    parts, n = [], 0
    for path in files:
        for item in read_file(path, cfg.input, cfg.schema):
            if isinstance(item, RawBatch):
                good, _ = check_batch(item.table, cfg.schema, path, item.row_offset,
                                      cfg.input.max_cell_bytes)
                parts.append(good)
                n += good.num_rows
            if n >= rows:
                break
        if n >= rows:
            break
    return pa.concat_tables(parts).slice(0, rows) if parts else None


def _residual_pii(cfg: RunConfig, samples: dict[str, list[str]]) -> dict:
    from transforms.detect import get_detector

    det = get_detector(cfg.schema.nlp_model, cfg.schema.recognizers)
    out = {}
    for col, values in samples.items():
        spans = det.detect(values) if values else []
        entities: dict[str, int] = {}
        flagged = 0
        for found in spans:
            kinds = {s.entity for s in found}
            flagged += bool(kinds)
            for e in kinds:
                entities[e] = entities.get(e, 0) + 1
        out[col] = {"sampled": len(values), "flagged": flagged, "entities": entities}
    return out


def evaluate(cfg: RunConfig, files: list[str], staging: str, keyring, body: dict) -> dict:
    """Run every configured check on a finished (unpublished) output; write the report.

    Returns:
        {"status": "passed"|"failed", "failed": [check names], "report": {files}} for the
        manifest's `gate` section (the details are in report/validation.json).
    """
    from transforms import validate as v
    from transforms.report import column_plot, render_report

    gates, schema = cfg.gates, cfg.schema
    qis = list(gates.k_anonymity.quasi_identifiers) if gates.k_anonymity else []
    sensitive = gates.l_diversity.sensitive if gates.l_diversity else None
    class_cols = qis + ([sensitive] if sensitive else [])
    detect_cols = [c.name for c in schema.output_columns
                   if c.output_type == "string" and c.action not in _NOT_DETECTED]
    plot_cols = [c for c in schema.output_columns if c.action in ("ldp", "generalize")]
    output_suite = v.load_suite(gates.expectations) if gates.expectations else None

    partial_classes, partial_domains, suite_results = [], [], []
    samples: dict[str, list[str]] = {c: [] for c in detect_cols}
    plot_after: dict[str, list] = {c.name: [] for c in plot_cols}
    out_schema, seen = None, 0
    for table in _output_batches(staging, keyring.kms):
        out_schema = table.schema
        if class_cols:
            partial_classes.append(v.class_counts(table, class_cols))
        if schema.ldp_columns:
            partial_domains.append(v.ldp_domain_counts(table, schema))
        if output_suite is not None:
            suite_results.append(v.run_suite(table, output_suite, "output_expectations"))
        for c in detect_cols:
            need = RESIDUAL_SAMPLE - len(samples[c])
            if need > 0:
                samples[c].extend(x for x in table.column(c).drop_null().to_pylist()[:need])
        if seen < PLOT_ROWS:
            for c in plot_cols:
                plot_after[c.name].append(table.column(c.name).slice(0, PLOT_ROWS - seen))
        seen += table.num_rows

    rec = body["reconciliation"]
    guard = body.get("keep_guard")
    checks = [] if guard is None else [v.check("keep_guard", guard["passed"], {
        "mode": guard["mode"], "max_prevalence": guard["max_prevalence"],
        "findings": guard["findings"]})]
    checks += [
        v.output_columns_check(out_schema or pa.schema([]), schema),
        v.reconciliation_check(rec["input_rows"], rec["output_rows"], rec["quarantined_rows"]),
    ]
    if schema.ldp_columns:
        checks.append(v.ldp_domain_check(v.merge_ldp_domain_counts(partial_domains), schema))
    if gates.k_anonymity:
        merged = v.merge_class_counts(partial_classes, class_cols)
        checks.append(v.k_anonymity_check(v.k_anonymity_from_counts(
            merged, qis, gates.k_anonymity.k)))
        if gates.l_diversity:
            checks.append(v.l_diversity_check(v.l_diversity_from_counts(
                merged, qis, sensitive, gates.l_diversity.l)))
    if detect_cols:
        checks.append(v.residual_pii_check(_residual_pii(cfg, samples), gates.residual_pii_max))
    if output_suite is not None:
        checks.append(v.suite_check("output_expectations", v.merge_suite_results(suite_results)))

    head = _input_head(cfg, files, max(INPUT_SAMPLE_ROWS, PLOT_ROWS if plot_cols else 0))
    if head is not None:
        contract = v.input_expectations(schema)
        checks.append(v.suite_check("input_contract", v.run_suite(
            head.slice(0, INPUT_SAMPLE_ROWS), contract, "input_contract")))
        if gates.input_expectations:
            checks.append(v.suite_check("input_expectations", v.run_suite(
                head.slice(0, INPUT_SAMPLE_ROWS), v.load_suite(gates.input_expectations),
                "input_expectations")))

    verdict = v.gate_verdict(checks)
    plots = {}
    for c in plot_cols:
        if head is not None and plot_after[c.name]:
            after = pa.chunked_array(plot_after[c.name])
            plot = column_plot(c, head.column(c.name).slice(0, PLOT_ROWS), after,
                               min_count=5)
            if plot is not None:
                plots[c.name] = plot
    render_report(staging, verdict, body, plots)
    return {"status": verdict["status"], "failed": verdict["failed"]}
