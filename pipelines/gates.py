"""The governance gate at the end of a run (`gates:` in the run config).

After the pipeline finished and before the manifest is signed, the launcher streams the
encrypted output once (decrypting with the run's keyring) and computes, vectorized per batch
and merged: output columns vs the schema, k-anonymity / l-diversity over the whole output,
LDP columns inside their declared domains, residual PII per output text column (the detector
at half the scrubber's threshold on a deterministic sample, beside the protect stage's own-row
counts: `transforms.gates.leaks`), and the user's output suite. The
input contract is the contract stage's own counts over every input row (per column and rule:
`transforms.contract.input_contract_check`); the user's input suite (Great Expectations) runs
on the first input rows, before the quarantine split. The verdict and the per-check details
go into `report/validation.json` and `report/index.html`; the manifest records the verdict.

Costs that do not grow with rows (Great Expectations import ~2 s of CPU, spaCy/Presidio ~2 s)
are paid in side worker processes (`pipelines.workers.SideWorker`) while the pipeline runs:
the detection worker loads and warms the detector (compiles its patterns) and later detects
residual PII on distinct sampled values while the launcher makes its pass over the whole
output; a user's input suite starts with the run in its own worker. Great Expectations is
imported only when the user gives a suite.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import pyarrow as pa

from privgate import manifest as mf
from privgate.kms import kek_context
from schemas.config import RunConfig

if TYPE_CHECKING:  # pragma: no cover
    from pipelines.inputs import InputHead

log = logging.getLogger("privgate.gates")

RESIDUAL_SAMPLE = 1000  # values per column examined for residual PII
RESIDUAL_SCORE_FACTOR = 0.5  # the residual detector's threshold: this share of the scrubber's
INPUT_SUITE_ROWS = 10_000  # rows of the input a user's input suite runs on
PLOT_ROWS = 50_000  # rows of input and output the before/after plots count


def _output_files(staging: str, kms):
    import glob

    import pyarrow.parquet as pq

    from privgate.parquet_crypto import decryption_properties

    props = decryption_properties(kms)
    return [
        pq.ParquetFile(p, decryption_properties=props)
        for p in sorted(glob.glob(os.path.join(staging, "data", "*.parquet")))
    ]


def _batches(files, columns: list[str] | None, empty: pa.Table | None = None):
    """Decrypt only `columns` (None: all): tokens and ciphertexts are most of the bytes.

    With `empty` (a 0-row table of the output schema), an output without rows yields it once
    (with `columns` selected), so whole-output metrics are computed over no rows, not skipped.
    """
    if columns is not None and not columns:
        return
    rows = 0
    for pf in files:
        fields = (
            pf.schema_arrow
            if columns is None
            else pa.schema([pf.schema_arrow.field(c) for c in columns])
        )
        for batch in pf.iter_batches(columns=columns):
            rows += batch.num_rows
            yield pa.Table.from_batches([batch], schema=fields)
    if not rows and empty is not None:
        yield empty if columns is None else empty.select(columns)


def _user_input_suite(head: pa.Table, suite: str) -> dict:
    """GX worker: the user's input suite on the first input rows (typed, before the
    quarantine split)."""
    from transforms.gates import gx
    from transforms.gates.checks import InputExpectationsCheck

    return InputExpectationsCheck.build(
        gx.run_suite(head, gx.load_suite(suite), InputExpectationsCheck.name)
    )


def _warm_detector(model: str, recognizers) -> None:
    """Side worker, while the pipeline runs: load the detector and compile its patterns, so
    the residual-PII check after the pipeline only detects."""
    from transforms.detect.engine import get_detector

    get_detector(model, recognizers).warm()


def _residual_counts(
    samples: dict[str, list[str]],
    model: str,
    recognizers,
    thresholds: dict[str, float] | None = None,
) -> dict:
    """Side worker: per column, how many sampled values still hold PII (distinct values are
    detected once; counts are weighted back to the sample). `thresholds`: each column's
    detection score threshold (default: the detector's)."""
    from collections import Counter

    from transforms.detect.engine import get_detector

    det = get_detector(model, recognizers)
    thresholds = thresholds or {}
    out = {}
    for col, values in samples.items():
        counts = Counter(values)
        distinct = list(counts)
        kw = {"score_threshold": thresholds[col]} if col in thresholds else {}
        spans = det.detect(distinct, **kw) if distinct else []
        entities: Counter = Counter()
        flagged = 0
        for value, found in zip(distinct, spans, strict=True):
            kinds = {s.entity for s in found}
            if kinds:
                flagged += counts[value]
                for e in kinds:
                    entities[e] += counts[value]
        out[col] = {"sampled": len(values), "flagged": flagged, "entities": dict(entities)}
        if col in thresholds:
            out[col]["score_threshold"] = thresholds[col]
    return out


def _residual_thresholds(schema) -> dict[str, float]:
    """Per sampled column, the detector's score threshold for the residual check: a fraction
    of the scrubber's (the column's own `score_threshold`, else the default), so the gate also
    counts the weaker findings the scrubber let through."""
    from schemas.detection import DEFAULT_SCORE_THRESHOLD

    sampled = set(_detect_columns(schema))
    return {
        c.name: round(
            RESIDUAL_SCORE_FACTOR * c.params.get("score_threshold", DEFAULT_SCORE_THRESHOLD), 6
        )
        for c in schema.output_columns
        if c.name in sampled
    }


def _detect_columns(schema) -> list[str]:
    """Output columns the residual-PII check samples: strings that are not keyed."""
    return [
        c.name
        for c in schema.output_columns
        if c.output_type == "string" and c.declaration.detectable
    ]


class Gates:
    """The configured gate of one run: started with the run, evaluated after the pipeline."""

    def __init__(self, cfg: RunConfig, head: InputHead, side, gx_side=None):
        """`side`: the detection worker (residual PII); `gx_side`: where a user's input suite
        runs (default: `side`; neither is started without a job)."""
        self.cfg, self.head, self.side = cfg, head.valid, side
        self._input = None
        if _detect_columns(cfg.schema):
            side.submit(_warm_detector, cfg.schema.nlp_model, cfg.schema.recognizers)
        if cfg.gates.input_expectations and head.typed is not None:
            self._input = (gx_side or side).submit(
                _user_input_suite, head.typed, cfg.gates.input_expectations
            )

    @staticmethod
    def rows_wanted(cfg: RunConfig) -> int:
        """Contract-valid input rows the report's before-plots need."""
        plots = any(c.action in ("ldp", "generalize") for c in cfg.schema.output_columns)
        return PLOT_ROWS if plots else 0

    @staticmethod
    def typed_rows_wanted(cfg: RunConfig) -> int:
        """Input rows (before the quarantine split) a user's input suite needs."""
        return INPUT_SUITE_ROWS if cfg.gates.input_expectations else 0

    def evaluate(self, staging: str, keyring, body: dict) -> None:
        """Run every configured check on the finished (unpublished) output; write the report.

        Sets the manifest body's `gate` ({"status": "passed"|"failed", "failed": [check
        names]}; the details are in report/validation.json and report/index.html) and
        `report` (the report files with their hashes).
        """
        from pipelines.reconcile import read_contract_counts, read_own_row_leaks
        from transforms.contract import input_contract_check
        from transforms.gates import checks as ck
        from transforms.gates import gx, metrics
        from transforms.report.aggregate import column_plot

        cfg, head = self.cfg, self.head
        gates, schema = cfg.gates, cfg.schema
        qis = list(gates.k_anonymity.quasi_identifiers) if gates.k_anonymity else []
        sensitive = gates.l_diversity.sensitive if gates.l_diversity else None
        class_cols = qis + ([sensitive] if sensitive else [])
        detect_cols = _detect_columns(schema)
        anonymized = set(cfg.anonymize.quasi_identifiers) if cfg.anonymize else set()
        plot_cols = [
            c
            for c in schema.output_columns
            if c.action in ("ldp", "generalize") and c.name not in anonymized
        ]
        output_suite = gx.load_suite(gates.expectations) if gates.expectations else None

        files = _output_files(staging, keyring.kms.bound(kek_context(cfg.dataset)))
        out_schema = files[0].schema_arrow if files else None
        # Pass 1, first rows only: samples for residual PII (detected in the side worker while
        # pass 2 runs) and for the plots.
        samples: dict[str, list[str]] = {c: [] for c in detect_cols}
        plot_after: dict[str, list] = {c.name: [] for c in plot_cols}
        seen = 0
        for table in _batches(
            files, list(dict.fromkeys(detect_cols + [c.name for c in plot_cols]))
        ):
            for c in detect_cols:
                need = RESIDUAL_SAMPLE - len(samples[c])
                if need > 0:
                    samples[c].extend(table.column(c).drop_null().slice(0, need).to_pylist())
            for c in plot_cols:
                plot_after[c.name].append(table.column(c.name).slice(0, PLOT_ROWS - seen))
            seen += table.num_rows
            if seen >= PLOT_ROWS and all(len(s) >= RESIDUAL_SAMPLE for s in samples.values()):
                break
        residual = (
            self.side.submit(
                _residual_counts,
                samples,
                schema.nlp_model,
                schema.recognizers,
                _residual_thresholds(schema),
            )
            if detect_cols
            else None
        )
        # Pass 2, every row: only the columns whole-output checks need (while the worker detects).
        partial_classes, partial_domains, suite_results = [], [], []
        ldp_names = [c.name for c in schema.ldp_columns]
        whole = None if output_suite is not None else list(dict.fromkeys(class_cols + ldp_names))
        from transforms.protect import output_schema

        released = output_schema(schema)
        if cfg.anonymize:  # the quasi-identifiers' released types (ranges are strings)
            from transforms.anonymize.release import released_schema

            released = released_schema(released, cfg.anonymize)
        for table in _batches(files, whole, released.empty_table()):
            if class_cols:
                partial_classes.append(metrics.class_counts(table, class_cols))
            if ldp_names:
                partial_domains.append(metrics.ldp_domain_counts(table, schema))
            if output_suite is not None:
                suite_results.append(
                    gx.run_suite(table, output_suite, ck.OutputExpectationsCheck.name)
                )

        # No reconciliation check: build_manifest already refused an unbalanced run (nothing
        # published), so a gate check over the same counts could never fail.
        guard = body.get("keep_guard")
        checks = [] if guard is None else [ck.KeepGuardCheck.build(guard)]
        rec = body["reconciliation"]
        checks += [
            ck.OutputColumnsCheck.build(out_schema or pa.schema([]), schema, released),
            ck.OutputRowsCheck.build(
                rec["input_rows"], rec["output_rows"], rec["quarantined_rows"]
            ),
        ]
        if schema.ldp_columns:
            checks.append(
                ck.LdpDomainCheck.build(metrics.merge_ldp_domain_counts(partial_domains), schema)
            )
        if gates.k_anonymity:
            merged = metrics.merge_class_counts(partial_classes, class_cols)
            checks.append(
                ck.KAnonymityCheck.build(
                    metrics.k_anonymity_from_counts(merged, qis, gates.k_anonymity.k)
                )
            )
            if gates.l_diversity:
                checks.append(
                    ck.LDiversityCheck.build(
                        metrics.l_diversity_from_counts(merged, qis, sensitive, gates.l_diversity.l)
                    )
                )
        if output_suite is not None:
            checks.append(ck.OutputExpectationsCheck.build(gx.merge_suite_results(suite_results)))
        plots = {}
        for c in plot_cols:
            if head is not None and plot_after[c.name]:
                plot = column_plot(
                    c,
                    head.column(c.name).slice(0, PLOT_ROWS),
                    pa.chunked_array(plot_after[c.name]),
                    min_count=5,
                )
                if plot is not None:
                    plots[c.name] = plot
        if residual is not None:
            checks.append(
                ck.ResidualPiiCheck.build(
                    residual.result(), gates.residual_pii_max, read_own_row_leaks(staging)
                )
            )
        checks.append(
            input_contract_check(schema, read_contract_counts(staging), cfg.input.max_cell_bytes)
        )
        if self._input is not None:
            checks.append(self._input.result())
        verdict = ck.gate_verdict(checks)
        from transforms.report.html import render_report

        render_report(staging, verdict, body, plots)  # milliseconds: SVG drawn by hand
        body["gate"] = {"status": verdict["status"], "failed": verdict["failed"]}
        body["report"] = {
            "files": [
                {
                    "path": f"report/{name}",
                    "sha256": mf.file_sha256(os.path.join(staging, "report", name)),
                }
                for name in sorted(os.listdir(os.path.join(staging, "report")))
            ]
        }

    @staticmethod
    def raise_if_failed(body: dict, target: str) -> None:
        """After publication: a failed gate is exit 3 (the output is published as refused).

        Raises:
            GateError: the manifest's gate failed.
        """
        gate = body.get("gate")
        if gate and gate["status"] == "failed":
            from privgate.errors import GateError

            raise GateError(
                f"gate failed ({', '.join(gate['failed'])}); the output at {target} "
                "is marked refused; see report/index.html"
            )
