"""`privgate run CONFIG [Beam options...]`: the run's phases, in order, one call each."""

from __future__ import annotations

import logging

from pipelines.beam_logs import value_free_beam_logs
from pipelines.budget import open_budget
from pipelines.config import check_plugins, load_run_config
from pipelines.dataflow import COMMAND_LINE, dataflow_run, is_dataflow
from pipelines.finalize import finish, head_rows, run_record, start_gates
from pipelines.graph import run_pipeline
from pipelines.guard import KeepGuard
from pipelines.inputs import input_head, match_inputs, precheck_headers
from pipelines.keys import check_keyring_placement, open_run_keyring
from pipelines.object_staging import crash_point
from pipelines.publish import open_staging, output_target
from pipelines.workers import SideWorkers
from privgate.errors import ConfigError
from schemas.config import RunConfig

log = logging.getLogger("privgate.run")


def run(
    config: str | RunConfig,
    beam_args: list[str] | None = None,
    show_progress: bool | None = None,
    allow_budget_overrun: bool = False,
    no_wait: bool = False,
) -> dict:
    """Run the protection pipeline; return the signed manifest document plus `output_dir`.

    With `--runner DataflowRunner` the job is submitted, waited for and finalized
    (`dataflow_run`); `no_wait` returns once it is submitted (`privgate finalize` later).

    Raises:
        ConfigError (exit 2), KeyringError / DataError (exit 1; also repeated record keys
        under memoized ldp), BudgetExceeded (exit 3: the run would pass
        privacy.lifetime_epsilon_max), GateError (exit 3: the keep-guard
        found PII in a `keep` column). On any failure the output path is left
        as it was and no budget is spent.
    """
    with value_free_beam_logs():  # also for callers without the CLI's log handlers
        return _run(config, beam_args, show_progress, allow_budget_overrun, no_wait)


def _run(config, beam_args, show_progress, allow_budget_overrun, no_wait) -> dict:
    cfg = load_run_config(config) if isinstance(config, str) else check_plugins(config)
    beam_args = list(beam_args or [])
    check_keyring_placement(cfg, beam_args)  # only a cloud-KMS keyring leaves this machine
    if is_dataflow(beam_args):  # submits, waits and finalizes (no_wait: submits only)
        return dataflow_run(
            cfg, beam_args, no_wait=no_wait, allow_budget_overrun=allow_budget_overrun
        )
    if no_wait:
        raise ConfigError(COMMAND_LINE, "--no_wait", "only with --runner DataflowRunner")
    target = output_target(cfg)  # a local directory or a gs:// / s3:// prefix
    keyring = open_run_keyring(cfg)  # keys first: fails before any data is read
    files = match_inputs(cfg, beam_args)
    precheck_headers(cfg, files)
    with SideWorkers() as side:  # fixed-cost checks run beside the pipeline
        head = input_head(cfg, files, *head_rows(cfg))
        guard = KeepGuard(cfg, head.valid, side.detect)
        gates = start_gates(cfg, head, side)
        budget = open_budget(cfg, keyring, allow_budget_overrun)
        with open_staging(target, cfg.source) as staging:  # removed on any failure
            staging.write_record(run_record(cfg, staging, files, allow_budget_overrun))
            log.info("run %s: %d input file(s) -> %s", staging.run_id, len(files), staging.target)
            run_pipeline(cfg, files, staging.job_path, beam_args, show_progress)
            crash_point("pipeline")  # tests: `privgate finalize` takes over from here
            doc = finish(cfg, keyring, staging, guard, gates, budget)
    if gates is not None:
        gates.raise_if_failed(doc["manifest"], staging.target)
    return dict(doc, output_dir=staging.target)
