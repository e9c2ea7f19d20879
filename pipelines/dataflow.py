"""A run on Dataflow: the job submitted (then waited for and finalized), or a dry run."""

from __future__ import annotations

import datetime as dt
import os
import posixpath

from pipelines.graph import build_pipeline, runner_name
from pipelines.inputs import match_inputs, precheck_headers
from pipelines.keys import check_keyring_matches
from pipelines.object_staging import staging_name
from pipelines.publish import new_run_id
from privgate.errors import ConfigError, DataError
from schemas.config import RunConfig

COMMAND_LINE = "command line"


def is_dataflow(beam_args: list[str]) -> bool:
    """True when the Beam args name Dataflow's runner (Beam accepts any case, with or without
    the `Runner` suffix, or the dotted class path)."""
    runner = runner_name(beam_args)
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


def _check_dataflow_options(beam_args: list[str]) -> bool:
    """Usage errors (exit 2) before Beam starts: options whose absence makes Beam fail late
    or hang (a missing or non-gs:// temp_location: ~120 s of credential retries while it
    looks for a default bucket, even in a dry run). Returns True for a dry run."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    options = PipelineOptions(beam_args)
    dry_run = _dry_run_requested(options)
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
    return dry_run


def _check_paths_on_gcs(cfg: RunConfig) -> None:
    """A real job reads and writes where its workers can: object-store paths only."""
    for key, path in (("input.path", cfg.input.path), ("output.path", cfg.output.path)):
        if "://" not in path:
            raise ConfigError(
                cfg.source,
                key,
                f"is a local path ({path}): Dataflow workers cannot reach this machine's disk; "
                "use gs://BUCKET/...",
            )


def _split_target(target: str) -> tuple[str, str]:
    if "://" in target:
        parent, name = posixpath.split(target.rstrip("/"))
        return parent, name
    return os.path.split(os.path.abspath(target))


def dataflow_run(
    cfg: RunConfig,
    beam_args: list[str],
    *,
    no_wait: bool = False,
    allow_budget_overrun: bool = False,
) -> dict:
    """`--runner DataflowRunner`: submit the job, wait for it, then finalize (`finalize`:
    reconcile, gates, report, sign, manifest last); or, with `no_wait`, submit and return.

    Before submitting, on the launcher: the config, the keyring opened (a cloud KMS: its
    data keys unwrapped, so a missing permission fails here, not on the workers), the
    epsilon budget checked, inputs matched and their headers checked, and the run record
    (`_work/run.json`: run id, config path and hashes, input files; no secret) written
    first into the staging prefix the job writes. The job carries the keyring's *path*;
    workers open it in `setup()`. Nothing is signed before `finalize`.

    Returns:
        With `no_wait` (or a dry run): {"submitted": True, "job_id", "run_id", "staging",
        "output_dir", "result"}; otherwise the finalized, signed manifest document plus
        `output_dir` (as `privgate run` returns for a local run).
    Raises:
        ConfigError (exit 2): usage (see `_check_dataflow_options`), a local input or
        output path; KeyringError (exit 1), BudgetExceeded (exit 3); DataError (exit 1):
        the job failed or was cancelled (nothing committed, the staging kept) or finalize
        refused; GateError (exit 3) from finalize.
    """
    if _check_dataflow_options(beam_args):
        return dataflow_dry_run(cfg, beam_args)
    from pipelines.budget import open_budget
    from pipelines.finalize import finalize, run_record
    from pipelines.keys import open_run_keyring
    from pipelines.publish import open_staging, output_target

    _check_paths_on_gcs(cfg)
    target = output_target(cfg)
    keyring = open_run_keyring(cfg)  # on the launcher: a KMS that refuses fails before submit
    open_budget(cfg, keyring, allow_budget_overrun)  # refuses a run past the lifetime budget
    files = match_inputs(cfg)
    precheck_headers(cfg, files)
    guard_before_submit(cfg, files)
    with open_staging(target, cfg.source) as staging:  # removed if the submit fails
        staging.write_record(run_record(cfg, staging, files, allow_budget_overrun, "dataflow"))
        labels = [f"--labels=privgate-run={staging.run_id.lower()}"]  # the run, from the job
        result = build_pipeline(cfg, files, staging.job_path, [*beam_args, *labels]).run()
    submitted = {
        "submitted": True,
        "job_id": result.job_id(),
        "run_id": staging.run_id,
        "staging": staging.job_path,
        "output_dir": target,
        "result": result,
    }
    if no_wait:
        return submitted
    try:
        result.wait_until_finish()
    except Exception as e:  # Beam's text may quote a worker's traceback: name the state only
        raise DataError(
            f"Dataflow job {submitted['job_id']} (run {staging.run_id}) did not finish "
            f"({type(e).__name__}): nothing was committed; the staging {staging.job_path} is "
            "kept (see the job's logs; remove it, or rerun)"
        ) from None
    return finalize(staging.job_path, keyring=keyring)


def guard_before_submit(cfg: RunConfig, files: list[str]) -> None:
    """The keep-guard on the launcher, before a job is paid for: a direct identifier kept in a
    string column fails here (GateError, exit 3; nothing submitted, no staging) as it would
    fail `finalize` after the job. With a `gates:` section the guard is part of the verdict
    (the output is published as refused, with a report saying why), so it runs in finalize
    only; so does a guard in `warn` mode (its warnings once, in the manifest)."""
    from pipelines.guard import KeepGuard

    if cfg.gates is not None or cfg.guard.mode != "fail" or not KeepGuard.kept_strings(cfg):
        return
    from pipelines.inputs import input_head
    from pipelines.workers import SideWorkers

    with SideWorkers() as side:
        head = input_head(cfg, files, KeepGuard.rows_wanted(cfg), 0)
        KeepGuard(cfg, head.valid, side.detect).result(raise_on_fail=True, log_warnings=False)


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
        ConfigError (exit 2): --temp_location / --project / --region missing, or
        temp_location not on gs://.
    """

    _check_dataflow_options(beam_args)
    notes = []
    # The clear header only: the file exists, is 0600 and names the configured KMS.
    check_keyring_matches(cfg)
    notes.append(
        f"workers open the keyring {cfg.keys.keyring} in setup(): it must be readable "
        "there (an object-store path, or a file in the worker image)"
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
    run_id = new_run_id(dt.datetime.now(dt.UTC))
    if "://" in parent:  # where a real run's job would write (`object_staging`)
        staging = staging_name(f"{parent}/{name}", run_id)
    else:
        staging = os.path.join(parent, f".{name}.privgate-tmp-{run_id}")
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
