"""`privgate run CONFIG [Beam options...]`: build the pipeline, run it, reconcile, sign, publish.

Atomic output (local filesystem): everything is written to a hidden staging directory beside
the target (`.<name>.privgate-tmp-<run id>`); only after the pipeline finished, every input
row was reconciled and the manifest was signed is the staging directory renamed onto the
target. A failed or killed run leaves the target as it was.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import logging
import os
import posixpath
import shutil
import sys
import uuid
from collections import Counter

from pipelines.config import check_plugins, load_run_config
from privgate import __version__
from privgate import manifest as mf
from privgate.errors import ConfigError, DataError
from privgate.keyring import open_keyring
from privgate.kms import kek_context
from schemas.config import RunConfig

log = logging.getLogger("privgate.run")

LOCAL_RUNNERS = (None, "DirectRunner", "FnApiRunner")


def _runner_name(beam_args: list[str]) -> str | None:
    for i, a in enumerate(beam_args):
        if a.startswith("--runner="):
            return a.split("=", 1)[1]
        if a == "--runner" and i + 1 < len(beam_args):
            return beam_args[i + 1]
    return None


def _without_runner(beam_args: list[str]) -> list[str]:
    out, skip = [], False
    for a in beam_args:
        if skip:
            skip = False
            continue
        if a == "--runner":
            skip = True
            continue
        if not a.startswith("--runner="):
            out.append(a)
    return out


def match_inputs(cfg: RunConfig) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    try:
        results = FileSystems.match([cfg.input.path])[0].metadata_list
    except Exception:  # Beam raises BeamIOError with the pattern; keep it generic
        results = []
    files = sorted(m.path for m in results if not os.path.basename(m.path).startswith("."))
    if not files:
        raise ConfigError(cfg.source, "input.path", f"no input files match {cfg.input.path}")
    return files


def precheck_headers(cfg: RunConfig, files: list[str]) -> None:
    """Fail before the pipeline starts if a file lacks a declared column (CSV/Parquet)."""
    from transforms.read import _check_columns, read_header

    for path in files:
        names = read_header(path, cfg.input)
        if names:
            _check_columns(path, names, cfg.schema, strict=True)


class SideWorker:
    """One spawned process for fixed-cost checks (spaCy/Presidio and Great Expectations load
    in ~2-3 s each): it runs while the pipeline runs and keeps what it loaded for later jobs
    (a run uses one for detection, one for GX). Started on the first job; jobs get input
    samples, never keys."""

    def __init__(self):
        self._pool = None

    def submit(self, fn, *args):
        """Queue `fn(*args)` in the worker; returns a Future (`result()` waits; a worker
        that died raises BrokenProcessPool instead of hanging)."""
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent
            )
        return self._pool.submit(fn, *args)

    def close(self):
        """Cancel queued jobs, let a running one finish, and join the worker process (which
        skips its interpreter's teardown: see `_die_with_parent`)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _die_with_parent() -> None:
    """Side worker initializer: if the run is killed (even SIGKILL), the worker goes too
    (Linux PR_SET_PDEATHSIG; elsewhere the worker exits when its job queue closes). And when
    it is shut down, it exits without tearing down its interpreter (spaCy, GX: up to
    ~2 s): multiprocessing has run its finalizers by then, and the jobs' results are sent."""
    import atexit
    import ctypes
    import signal

    atexit.register(_exit_now)  # registered first, so it runs after every library's handler
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def input_head(cfg: RunConfig, files: list[str], rows: int):
    """The first `rows` contract-valid input rows (typed), or None: the keep-guard's sample,
    the input contract's and the report's before-plots."""
    import pyarrow as pa

    from transforms.contract import check_batch
    from transforms.read import RawBatch, read_file

    parts, n = [], 0
    for path in files:
        for item in read_file(path, cfg.input, cfg.schema):
            if isinstance(item, RawBatch):
                good, _ = check_batch(
                    item.table, cfg.schema, path, item.row_offset, cfg.input.max_cell_bytes
                )
                parts.append(good)
                n += good.num_rows
            if n >= rows:
                break
        if n >= rows:
            break
    return pa.concat_tables(parts).slice(0, rows) if parts else None


class KeepGuard:
    """Classify every `keep` string column on a sample of the input (the keep-guard).

    The sample is the first contract-valid rows of the inputs (up to 5x `guard.sample`),
    from which the classifier takes an evenly spaced `guard.sample` values per column. The
    classification runs in the side worker while the pipeline runs; `result()` joins it
    before anything is published, so a failing guard leaves no output and spends no budget.
    """

    def __init__(self, cfg: RunConfig, head, side: SideWorker):
        self.cfg = cfg
        schema = cfg.schema
        self.columns = [
            (c.name, c.action, c.type, c.pii)
            for c in schema.columns
            if c.action == "keep" and c.type == "string"
        ]
        self._future = None
        self._sampled = 0
        if not self.columns or head is None:
            return
        sample = head.select([c[0] for c in self.columns]).slice(0, cfg.guard.sample * 5)
        self._sampled = sample.num_rows
        self._future = side.submit(
            _classify_keep_columns,
            sample,
            self.columns,
            cfg.guard.max_prevalence,
            cfg.guard.sample,
            schema.nlp_model,
            schema.recognizers,
        )

    @staticmethod
    def rows_wanted(cfg: RunConfig) -> int:
        return cfg.guard.sample * 5

    def result(self, raise_on_fail: bool = True) -> dict | None:
        """The manifest's `keep_guard` section, or None when no column is kept as a string.

        Args:
            raise_on_fail: False when a `gates:` section folds the guard into the verdict
                (the output is then published as refused, with a report saying why).
        Raises:
            GateError (exit 3): PII above `guard.max_prevalence` in mode `fail`.
        """
        from privgate.errors import GateError
        from transforms.detect.guard import guard_message

        if not self.columns:
            return None
        guard = self.cfg.guard
        findings = self._future.result() if self._future is not None else []
        section = {
            "mode": guard.mode,
            "max_prevalence": guard.max_prevalence,
            "columns": [c[0] for c in self.columns],
            "sampled_rows": self._sampled,
            "findings": [
                {"column": c, "entity": e, "prevalence": round(p, 4)} for c, e, p in findings
            ],
        }
        section["passed"] = not findings or guard.mode == "warn"
        if findings:
            message = guard_message(findings, guard.max_prevalence)
            if guard.mode == "fail" and raise_on_fail:
                raise GateError(message)
            log.warning("keep-guard (%s): %s", guard.mode, message)
        return section


def _classify_keep_columns(sample, columns, max_prevalence, n, model, recognizers):
    """Runs in the guard's worker process."""
    from transforms.detect.engine import get_detector
    from transforms.detect.guard import guard_findings

    return guard_findings(
        sample, columns, max_prevalence, detector=get_detector(model, recognizers), sample=n
    )


def build_pipeline(cfg: RunConfig, files: list[str], staging: str, beam_args: list[str]):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.stages import ProtectDataset

    runner = _runner_name(beam_args)
    if runner in LOCAL_RUNNERS:
        # FnApiRunner directly: Beam's DirectRunner would first try to download Prism.
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        options = PipelineOptions(_without_runner(beam_args))
        p = beam.Pipeline(runner=FnApiRunner(), options=options)
    else:
        p = beam.Pipeline(options=PipelineOptions(beam_args))
    (
        p
        | "ListInputs" >> beam.Create(files)
        | "Distribute" >> beam.Reshuffle()
        | "Protect" >> ProtectDataset(cfg, staging)
    )
    return p


# ------------------------------------------------------------------ Dataflow (dry run only)

COMMAND_LINE = "command line"


def is_dataflow(beam_args: list[str]) -> bool:
    """True when the Beam args name Dataflow's runner (Beam accepts any case, with or without
    the `Runner` suffix, or the dotted class path)."""
    runner = _runner_name(beam_args)
    return runner is not None and runner.rsplit(".", 1)[-1].lower() in (
        "dataflow",
        "dataflowrunner",
    )


def _dry_run_requested(options) -> bool:
    # Beam declares --dry_run without a type: any string, 'False' included, is truthy to it.
    from apache_beam.options.pipeline_options import TestOptions

    text = str(options.view_as(TestOptions).dry_run).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(COMMAND_LINE, "--dry_run", "must be True or False")


def _check_dataflow_options(beam_args: list[str]) -> None:
    """Usage errors (exit 2) before Beam starts: a real run, or options whose absence makes
    Beam fail late or hang (a missing or non-gs:// temp_location: ~120 s of credential
    retries while it looks for a default bucket, even in a dry run)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    options = PipelineOptions(beam_args)
    if not _dry_run_requested(options):
        raise ConfigError(
            COMMAND_LINE,
            "--dry_run",
            "DataflowRunner: only dry runs (--dry_run=True) are supported so far; a real run "
            "needs gs:// output with the manifest written last and the keyring on the workers "
            "(see README, 'Running on Dataflow')",
        )
    gcp = options.view_as(GoogleCloudOptions)
    if not gcp.temp_location:
        raise ConfigError(
            COMMAND_LINE, "--temp_location", "required with DataflowRunner (gs://BUCKET/tmp)"
        )
    if not gcp.temp_location.startswith("gs://"):
        raise ConfigError(
            COMMAND_LINE,
            "--temp_location",
            f"must be a gs:// path with DataflowRunner, not {gcp.temp_location}",
        )
    for name in ("project", "region"):
        if not getattr(gcp, name):
            raise ConfigError(COMMAND_LINE, f"--{name}", "required with DataflowRunner")


def _split_target(target: str) -> tuple[str, str]:
    if "://" in target:
        parent, name = posixpath.split(target.rstrip("/"))
        return parent, name
    return os.path.split(os.path.abspath(target))


def dataflow_dry_run(cfg: RunConfig, beam_args: list[str]) -> dict:
    """`--runner DataflowRunner --dry_run=True`: build and validate the Dataflow job offline.

    The graph is the local run's (`build_pipeline`, `transforms/stages.py`); Beam's
    DataflowRunner translates and validates it and returns before anything is submitted (no
    credentials, no network). Read: the config and schema, the keyring file's clear header
    (no passphrase, no KMS call: workers open keys in `setup()`), and the headers of local
    input files. Written: nothing. Not run: the keep-guard, gates, reconciliation, manifest,
    epsilon ledger and publication, which follow the pipeline in a real run.

    Returns:
        {"dry_run": True, "runner", "job_name", "transforms", "input_files", "output_dir",
        "staging", "notes", "result"}; `result.job` is Beam's Dataflow `Job`
        (`proto_pipeline`, `proto`).
    Raises:
        ConfigError (exit 2): not a dry run (real Dataflow runs are not supported yet), or
        --temp_location / --project / --region missing, or temp_location not on gs://.
    """

    _check_dataflow_options(beam_args)
    notes = []
    # The clear header only: the file exists, is 0600 and names the configured KMS.
    check_keyring_matches(cfg)
    notes.append(
        f"workers open the keyring file {cfg.keys.keyring} in setup(): it must "
        "exist at that path on every worker"
    )
    if "://" in cfg.input.path:
        files = [cfg.input.path]  # listing gs:// needs credentials; a real run lists at launch
        notes.append("input files not listed (needs credentials): the job holds the pattern")
    else:
        files = match_inputs(cfg)
        precheck_headers(cfg, files)
        notes.append("input is on this machine's disk: Dataflow workers cannot read it")
    parent, name = _split_target(cfg.output.path)
    if "://" in cfg.output.path and "://" not in parent:  # gs://bucket: no room for staging
        raise ConfigError(
            cfg.source, "output.path", "must be a directory inside a bucket (gs://BUCKET/PATH)"
        )
    if "://" not in parent:
        notes.append("output is a local directory: Dataflow workers cannot write it")
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    staging = f"{parent}/.{name}.privgate-tmp-{run_id}"
    result = build_pipeline(cfg, files, staging, beam_args).run()
    job = result.job
    return {
        "dry_run": True,
        "runner": "DataflowRunner",
        "job_name": job.proto.name,
        "transforms": len(job.proto_pipeline.components.transforms),
        "input_files": files,
        "output_dir": f"{parent}/{name}",
        "staging": staging,
        "notes": notes,
        "result": result,
    }


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


def _read_stats(staging: str) -> list[dict]:
    stats = []
    for path in sorted(glob.glob(os.path.join(staging, "_work", "stats*"))):
        with open(path, encoding="utf-8") as f:
            stats.extend(json.loads(line) for line in f if line.strip())
    return sorted(stats, key=lambda s: s["path"])


def _column_entry(c, n_rows: int) -> dict:
    entry = dict(
        name=c.name,
        **c.to_dict(),
        key_group=c.key_group if c.action != "drop" else None,
        output_type=c.output_type,
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


class Budget:
    """The epsilon a run spends (ldp columns), checked against the ledger before the run and
    recorded after it succeeded, before its output is published."""

    def __init__(self, cfg: RunConfig, keyring, allow_overrun: bool):
        from privgate.ledger import EpsilonLedger, ledger_path_for
        from transforms.ldp import noise_domain

        schema = cfg.schema
        self.cfg, self.epsilon = cfg, schema.record_epsilon
        self.memoized = schema.record_key is not None
        domains = [noise_domain(c.name, **c.ldp_params) for c in schema.ldp_columns]
        self.memo_id = hashlib.sha256(
            json.dumps([keyring.keyring_id, domains]).encode()
        ).hexdigest()[:32]
        self.ledger = EpsilonLedger(cfg.privacy.ledger or ledger_path_for(cfg.keys.keyring))
        self.spent_before = self.ledger.spent(cfg.dataset)
        self.charge = self.ledger.charge_for(
            cfg.dataset, self.epsilon, memoized=self.memoized, memo_id=self.memo_id
        )
        self.overrun = False
        from privgate.ledger import BudgetExceeded

        try:
            self.ledger.check(
                cfg.dataset,
                self.epsilon,
                cfg.privacy.lifetime_epsilon_max,
                memoized=self.memoized,
                memo_id=self.memo_id,
            )
        except BudgetExceeded:
            if not allow_overrun:
                raise
            self.overrun = True
            log.warning("budget overrun allowed by --allow-budget-overrun; recorded")

    def record(self, run_id: str) -> None:
        # checked again under the ledger's lock: a concurrent run may have spent it meanwhile
        self.ledger.record(
            self.cfg.dataset,
            run_id,
            self.epsilon,
            memoized=self.memoized,
            memo_id=self.memo_id,
            overrun=self.overrun,
            lifetime_max=None if self.overrun else self.cfg.privacy.lifetime_epsilon_max,
        )

    def summary(self) -> dict:
        p = self.cfg.privacy
        return {
            "record_epsilon": self.epsilon,
            "record_epsilon_max": p.record_epsilon_max,
            "lifetime_epsilon_max": p.lifetime_epsilon_max,
            "memoized_noise": self.memoized,
            "lifetime_spent_before": self.spent_before,
            "charged": self.charge,
            "lifetime_spent_after": self.spent_before + self.charge,
            "budget_overrun_allowed": self.overrun,
        }


def build_manifest(
    cfg: RunConfig,
    run_id: str,
    started: str,
    keyring,
    staging: str,
    budget: Budget | None = None,
    guard: dict | None = None,
) -> dict:
    kek_kms = keyring.kms.bound(kek_context(cfg.dataset))
    out_files, _ = _describe_files(staging, "data", kek_kms)
    q_files, reasons = _describe_files(staging, "quarantine", kek_kms)
    stats = _read_stats(staging)
    input_rows = sum(s["rows"] for s in stats)
    output_rows = sum(f["rows"] for f in out_files)
    q_rows = sum(f["rows"] for f in q_files)
    if input_rows != output_rows + q_rows:
        raise DataError(
            f"row reconciliation failed: {input_rows} input rows, {output_rows} output rows, "
            f"{q_rows} quarantined; output not published"
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
        "columns": [_column_entry(c, output_rows) for c in schema.columns],
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
        },
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
        "gate": None,
    }


def _write_manifest(staging: str, doc: dict) -> None:
    path = os.path.join(staging, mf.MANIFEST)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _publish(staging: str, target: str, run_id: str) -> None:
    """Swap the finished staging directory onto the target path."""
    parent, name = os.path.split(target)
    old = os.path.join(parent, f".{name}.privgate-old-{run_id}")
    if os.path.lexists(target):
        os.rename(target, old)
    os.rename(staging, target)
    fd = os.open(parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if os.path.lexists(old):
        shutil.rmtree(old, ignore_errors=True)


def _clean_stale(target: str) -> None:
    parent, name = os.path.split(target)
    for stale in glob.glob(os.path.join(parent, f".{name}.privgate-*")):
        shutil.rmtree(stale, ignore_errors=True)


def check_keyring_matches(cfg: RunConfig) -> None:
    """keys.kms (and keys.<kms> settings, when given) must describe the keyring file (read
    from its clear header: no passphrase, no KMS call)."""
    from privgate.keyring import keyring_kms

    kind, settings = keyring_kms(cfg.keys.keyring)
    if kind != cfg.keys.kms:
        raise ConfigError(
            cfg.source,
            "keys.kms",
            f"is {cfg.keys.kms} but keyring {cfg.keys.keyring} uses the {kind} KMS",
        )
    wanted = cfg.keys.settings_dict()
    if wanted and wanted != settings:
        raise ConfigError(
            cfg.source,
            f"keys.{kind}",
            f"differs from the settings recorded in "
            f"keyring {cfg.keys.keyring} (see `privgate keys list`)",
        )


def run(
    config: str | RunConfig,
    beam_args: list[str] | None = None,
    show_progress: bool | None = None,
    allow_budget_overrun: bool = False,
) -> dict:
    """Run the protection pipeline; return the signed manifest document plus `output_dir`.

    With `--runner DataflowRunner` only a dry run is possible so far (`dataflow_dry_run`).

    Raises:
        ConfigError (exit 2), KeyringError / DataError (exit 1), BudgetExceeded (exit 3: the
        run would pass privacy.lifetime_epsilon_max), GateError (exit 3: the keep-guard
        found PII in a `keep` column). On any failure the output path is left
        as it was and no budget is spent.
    """
    from transforms.progress import Display

    cfg = load_run_config(config) if isinstance(config, str) else check_plugins(config)
    beam_args = list(beam_args or [])
    if is_dataflow(beam_args):  # builds and validates the job; submits nothing
        return dataflow_dry_run(cfg, beam_args)
    target = cfg.output.path
    if "://" in target:
        raise ConfigError(
            cfg.source, "output.path", "only local output directories are supported so far"
        )
    # Keys first: a keyring that cannot be opened fails before any data is read.
    keyring = open_keyring(cfg.keys.keyring)
    check_keyring_matches(cfg)
    for name in ("token", "siv", "date_shift"):
        keyring.data_key(name)
    keyring.signing_key()

    files = match_inputs(cfg)
    precheck_headers(cfg, files)
    side = SideWorker()  # spaCy/Presidio: keep-guard, then residual PII
    gx_side = SideWorker()  # Great Expectations: the input contract, in parallel (gates only)
    try:  # the side workers are closed on every path
        head_rows = KeepGuard.rows_wanted(cfg)
        if cfg.gates is not None:
            from pipelines.gates import Gates

            head_rows = max(head_rows, Gates.rows_wanted(cfg))
        head = input_head(cfg, files, head_rows)
        guard = KeepGuard(cfg, head, side)
        gates = Gates(cfg, head, side, gx_side) if cfg.gates is not None else None
        budget = Budget(cfg, keyring, allow_budget_overrun) if cfg.schema.ldp_columns else None

        started = dt.datetime.now(dt.UTC)
        run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        target = os.path.abspath(target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _clean_stale(target)
        staging = os.path.join(
            os.path.dirname(target), f".{os.path.basename(target)}.privgate-tmp-{run_id}"
        )
        os.makedirs(staging)
        try:
            log.info("run %s: %d input file(s) -> %s", run_id, len(files), target)
            with Display(enabled=show_progress):
                pipeline = build_pipeline(cfg, files, staging, beam_args)
                pipeline.run().wait_until_finish()
            guard_section = guard.result(raise_on_fail=cfg.gates is None)
            body = build_manifest(
                cfg,
                run_id,
                started.isoformat(timespec="seconds"),
                keyring,
                staging,
                budget,
                guard_section,
            )
            shutil.rmtree(os.path.join(staging, "_work"))
            if gates is not None:
                body["gate"] = gates.evaluate(staging, keyring, body)
                body["report"] = {
                    "files": [
                        {
                            "path": f"report/{name}",
                            "sha256": mf.file_sha256(os.path.join(staging, "report", name)),
                        }
                        for name in sorted(os.listdir(os.path.join(staging, "report")))
                    ]
                }
            doc = mf.sign(body, keyring.signing_key())
            _write_manifest(staging, doc)
            if budget:  # spend before release: a crash after this over-counts, never under
                budget.record(run_id)
            _publish(staging, target, run_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        side.close()
        gx_side.close()
    gate = body.get("gate")
    if gate and gate["status"] == "failed":
        from privgate.errors import GateError

        raise GateError(
            f"gate failed ({', '.join(gate['failed'])}); the output at {target} "
            "is marked refused; see report/index.html"
        )
    return dict(doc, output_dir=target)
