"""The Dataflow dry run: the run's job built and validated offline, nothing submitted."""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import uuid

from pipelines.graph import build_pipeline, runner_name
from pipelines.inputs import match_inputs, precheck_headers
from pipelines.keys import check_keyring_matches
from privgate.errors import ConfigError
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
