"""The finalize step: a staged job output reconciled, gated, signed and committed manifest-last.

`privgate run` calls `finish` right after its pipeline; `finalize` (`privgate finalize
OUTPUT_OR_STAGING`) does the same later, in another process, for a job whose launcher did not
wait (a Dataflow job submitted with `--no_wait`, a launcher that was killed). Everything it
needs is in the staging's `_work/run.json` (`run_record`: run id, start time, config path and
hashes, target, input files, who launched it; never a secret) plus the config and keyring
named there.
"""

from __future__ import annotations

import json
import os

from privgate import manifest as mf
from privgate import storage
from privgate.errors import ConfigError, DataError, VerifyError
from schemas.config import RunConfig

RUN_FORMAT = "privgate-run/1"


def run_record(
    cfg: RunConfig,
    staging,
    files: list[str],
    allow_budget_overrun: bool = False,
    runner: str = "local",
) -> dict:
    """The run record a staging carries (`_work/run.json`); `runner`: "local" or "dataflow"."""
    from pipelines.object_staging import launcher_identity

    return {
        "format": RUN_FORMAT,
        "run_id": staging.run_id,
        "started_at": staging.started_at,
        "target": staging.target,
        "config": {"path": os.path.abspath(cfg.source), "sha256": cfg.sha256},
        "schema": {"path": cfg.schema.source, "sha256": cfg.schema.sha256},
        "input_files": list(files),
        "allow_budget_overrun": bool(allow_budget_overrun),
        "runner": runner,
        "launcher": launcher_identity(),
    }


def head_rows(cfg: RunConfig) -> tuple[int, int]:
    """Rows of the input head the keep-guard and the gates need: contract-valid rows, rows
    before the quarantine split."""
    from pipelines.guard import KeepGuard

    rows = KeepGuard.rows_wanted(cfg)
    if cfg.gates is None:
        return rows, 0
    from pipelines.gates import Gates

    return max(rows, Gates.rows_wanted(cfg)), Gates.typed_rows_wanted(cfg)


def start_gates(cfg: RunConfig, head, side):
    """The run's gate (its side jobs started), or None without a `gates:` section."""
    if cfg.gates is None:
        return None
    from pipelines.gates import Gates

    return Gates(cfg, head, side.detect, side.gx)


def finish(cfg: RunConfig, keyring, staging, guard, gates, budget) -> dict:
    """Reconcile the staged output, run the gates, render the report, sign, charge the
    budget and commit (`staging.publish`); return the signed manifest document.

    Raises:
        DataError: the job's output is incomplete or does not reconcile; GateError: the
            keep-guard failed (without a `gates:` section); BudgetExceeded. Nothing is
            committed then.
    """
    from pipelines.object_staging import crash_point, job_sinks
    from pipelines.reconcile import build_manifest, read_census

    staging.fetch(job_sinks(cfg))
    if budget:  # refuses repeated record keys; a memoized charge depends on the input
        budget.settle(read_census(staging.path))
    body = build_manifest(
        cfg,
        staging.run_id,
        staging.started_at,
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
    crash_point("signed")
    if budget and not _recorded(budget, staging.run_id):  # spend before release: a crash
        budget.record(staging.run_id)  # after this over-counts, never under
    staging.publish()
    return doc


def _recorded(budget, run_id: str) -> bool:
    """A finalize rerun after a crash between charging and committing: charged already."""
    return any(e.run_id == run_id for e in budget.ledger.entries(budget.cfg.dataset))


def finalize(staging_or_output: str, *, keyring=None) -> dict:
    """Finalize a staged run: reconcile rows from the written objects, run the gates, render
    the report, sign, and commit with `manifest.json` written last.

    Idempotent: a run already committed is not redone (its manifest is returned with
    `already_finalized: True`, and a commit interrupted after its manifest is tidied).

    Args:
        staging_or_output: the staging (`<parent>/.<name>.privgate-tmp-<run id>` locally,
            `<parent>/.<name>.privgate-tmp/<run id>` on a store) or the output it commits
            to (exactly one staged run beside it, or a committed one).
        keyring: an opened Keyring (default: the config's `keys.keyring`).
    Returns:
        The signed manifest document plus `output_dir` (and `already_finalized`).
    Raises:
        DataError: no staged run, or the job's output is incomplete (still running, died)
            or does not reconcile; a live local run holds the staging.
        ConfigError (exit 2): several staged runs for one output; the config or schema
            changed since the run started; the run record is unreadable.
        GateError (exit 3): the gate failed (committed, marked refused); KeyringError.
    """
    from pipelines.budget import open_budget
    from pipelines.config import load_run_config
    from pipelines.guard import KeepGuard
    from pipelines.inputs import input_head, use_beam_options
    from pipelines.keys import open_run_keyring
    from pipelines.object_staging import job_sinks
    from pipelines.workers import SideWorkers

    staging_path, target = _locate(staging_or_output)
    record = _read_record(staging_path) if staging_path else None
    committed = _committed(target, None if record is None else record["run_id"])
    if committed is not None:
        if staging_path is not None:
            _tidy(staging_path, target, record)
        return dict(committed, output_dir=target, already_finalized=True)
    if record is None:
        raise DataError(f"{target}: no staged run and no committed output; nothing to finalize")
    staging = _adopt(staging_path, target, record)
    with staging:
        cfg = load_run_config(record["config"]["path"])
        staging.source = cfg.source  # errors name the config's output.path
        _check_unchanged(cfg, record)
        staging.fetch(job_sinks(cfg))  # an incomplete output: refused before keys or workers
        keyring = keyring or open_run_keyring(cfg)
        use_beam_options()  # the input head is read again, through Beam's filesystems
        with SideWorkers() as side:
            head = input_head(cfg, record["input_files"], *head_rows(cfg))
            guard = KeepGuard(cfg, head.valid, side.detect)
            gates = start_gates(cfg, head, side)
            budget = open_budget(cfg, keyring, record.get("allow_budget_overrun", False))
            doc = finish(cfg, keyring, staging, guard, gates, budget)
    if gates is not None:
        gates.raise_if_failed(doc["manifest"], target)
    return dict(doc, output_dir=target, already_finalized=False)


def _locate(path: str) -> tuple[str | None, str]:
    """(staging or None, target) for a staging or output path."""
    from pipelines.object_staging import STAGING_TAG, list_stagings, target_of_staging

    path = path.rstrip("/") if storage.is_url(path) else os.path.abspath(path)
    own = target_of_staging(path)
    if own is not None:
        return path, own[0]
    parent, name = storage.split(path)
    if storage.is_url(path):
        found = list_stagings(path)
    else:
        prefix = f".{name}{STAGING_TAG}"
        found = sorted(
            os.path.join(parent, n)
            for n in (os.listdir(parent) if os.path.isdir(parent) else [])
            if n.startswith(prefix)
        )
    if len(found) > 1:
        raise ConfigError(
            "command line",
            "OUTPUT_OR_STAGING",
            f"{len(found)} staged runs for {path} ({', '.join(found)}); finalize one by its "
            "staging path",
        )
    return (found[0] if found else None), path


def _read_record(staging: str) -> dict | None:
    """The staging's run record, or None when the staging is gone."""
    from pipelines.object_staging import RUN_RECORD

    where = storage.join(staging, *RUN_RECORD.split("/"))
    try:
        raw = storage.read_bytes(where)
    except FileNotFoundError:
        return None
    try:
        record = json.loads(raw)
        if record.get("format") != RUN_FORMAT or not record.get("run_id"):
            raise ValueError
    except (ValueError, AttributeError):
        raise ConfigError(where, "format", f"not a privgate run record ({RUN_FORMAT})") from None
    return record


def _committed(target: str, run_id: str | None) -> dict | None:
    """The target's manifest document when it commits `run_id` (None: any run, since no
    staging is left), else None."""
    try:
        doc = mf.load(target)
    except VerifyError:
        return None
    body = doc.get("manifest")
    if not isinstance(body, dict) or (run_id is not None and body.get("run_id") != run_id):
        return None
    return doc


def _tidy(staging: str, target: str, record: dict | None) -> None:
    """A commit interrupted after its manifest: remove the marker and the staging."""
    if storage.is_url(target):
        from pipelines.object_staging import ObjectStaging

        ObjectStaging(target, "<finalize>", record["run_id"], record["started_at"], False).tidy()


def _adopt(staging: str, target: str, record: dict):
    if storage.is_url(staging):
        from pipelines.object_staging import ObjectStaging

        return ObjectStaging(target, "<finalize>", record["run_id"], record["started_at"], False)
    from pipelines.publish import Staging

    return Staging(target, "<finalize>", adopt=record)


def _check_unchanged(cfg: RunConfig, record: dict) -> None:
    """The config and schema are the ones the job ran with (the manifest describes them)."""
    for key, now in (("config", cfg.sha256), ("schema", cfg.schema.sha256)):
        if record[key]["sha256"] != now:
            raise ConfigError(
                record[key]["path"],
                key,
                f"changed since run {record['run_id']} started; finalize needs the file the "
                "job ran with",
            )
    if record["target"].rstrip("/") != (
        cfg.output.path.rstrip("/")
        if storage.is_url(cfg.output.path)
        else os.path.abspath(cfg.output.path)
    ):
        raise ConfigError(cfg.source, "output.path", "differs from the staged run's target")
