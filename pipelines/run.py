"""`privgate run CONFIG [Beam options...]`: the run's phases, in order, one call each."""

from __future__ import annotations

import logging

from pipelines.budget import open_budget
from pipelines.config import check_plugins, load_run_config
from pipelines.dataflow import dataflow_dry_run, is_dataflow
from pipelines.graph import run_pipeline
from pipelines.guard import KeepGuard
from pipelines.inputs import InputHead, input_head, match_inputs, precheck_headers
from pipelines.keys import check_keyring_placement, open_run_keyring
from pipelines.publish import Staging, local_target
from pipelines.reconcile import build_manifest, read_census
from pipelines.workers import SideWorkers
from privgate import manifest as mf
from schemas.config import RunConfig

log = logging.getLogger("privgate.run")


def run(
    config: str | RunConfig,
    beam_args: list[str] | None = None,
    show_progress: bool | None = None,
    allow_budget_overrun: bool = False,
) -> dict:
    """Run the protection pipeline; return the signed manifest document plus `output_dir`.

    With `--runner DataflowRunner` only a dry run is possible so far (`dataflow_dry_run`).

    Raises:
        ConfigError (exit 2), KeyringError / DataError (exit 1; also repeated record keys
        under memoized ldp), BudgetExceeded (exit 3: the run would pass
        privacy.lifetime_epsilon_max), GateError (exit 3: the keep-guard
        found PII in a `keep` column). On any failure the output path is left
        as it was and no budget is spent.
    """
    cfg = load_run_config(config) if isinstance(config, str) else check_plugins(config)
    beam_args = list(beam_args or [])
    check_keyring_placement(cfg, beam_args)  # only a cloud-KMS keyring leaves this machine
    if is_dataflow(beam_args):  # builds and validates the job; submits nothing
        return dataflow_dry_run(cfg, beam_args)
    target = local_target(cfg)
    keyring = open_run_keyring(cfg)  # keys first: fails before any data is read
    files = match_inputs(cfg)
    precheck_headers(cfg, files)
    with SideWorkers() as side:  # fixed-cost checks run beside the pipeline
        head = input_head(cfg, files, *_head_rows(cfg))
        guard = KeepGuard(cfg, head.valid, side.detect)
        gates = _start_gates(cfg, head, side)
        budget = open_budget(cfg, keyring, allow_budget_overrun)
        with Staging(target, cfg.source) as staging:  # removed on any failure
            log.info("run %s: %d input file(s) -> %s", staging.run_id, len(files), staging.target)
            run_pipeline(cfg, files, staging.path, beam_args, show_progress)
            if budget:  # refuses repeated record keys; a memoized charge depends on the input
                budget.settle(read_census(staging.path))
            body = build_manifest(
                cfg,
                staging.run_id,
                staging.started.isoformat(timespec="seconds"),
                keyring,
                staging.path,
                budget,
                guard.result(raise_on_fail=gates is None),
            )
            if gates is not None:
                gates.evaluate(staging.path, keyring, body)
            staging.drop_work()
            doc = mf.sign(body, keyring.signing_key())
            staging.write_manifest(doc)
            if budget:  # spend before release: a crash after this over-counts, never under
                budget.record(staging.run_id)
            staging.publish()
    if gates is not None:
        gates.raise_if_failed(body, staging.target)
    return dict(doc, output_dir=staging.target)


def _head_rows(cfg: RunConfig) -> tuple[int, int]:
    """Rows of the input head the keep-guard and the gates need: contract-valid rows, rows
    before the quarantine split."""
    rows = KeepGuard.rows_wanted(cfg)
    if cfg.gates is None:
        return rows, 0
    from pipelines.gates import Gates

    return max(rows, Gates.rows_wanted(cfg)), Gates.typed_rows_wanted(cfg)


def _start_gates(cfg: RunConfig, head: InputHead, side: SideWorkers):
    """The run's gate (its side jobs started), or None without a `gates:` section."""
    if cfg.gates is None:
        return None
    from pipelines.gates import Gates

    return Gates(cfg, head, side.detect, side.gx)
