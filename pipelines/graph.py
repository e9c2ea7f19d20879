"""The run's Beam pipeline: the runner picked from the Beam args, then `ProtectDataset`."""

from __future__ import annotations

from schemas.config import RunConfig

LOCAL_RUNNERS = ("direct", "directrunner", "fnapirunner")  # lower case, as Beam matches


def runner_name(beam_args: list[str]) -> str | None:
    """The value of `--runner` in the Beam args, or None."""
    for i, a in enumerate(beam_args):
        if a.startswith("--runner="):
            return a.split("=", 1)[1]
        if a == "--runner" and i + 1 < len(beam_args):
            return beam_args[i + 1]
    return None


def is_local_runner(beam_args: list[str]) -> bool:
    """True when the pipeline runs on this machine: no `--runner`, or DirectRunner /
    FnApiRunner in any case, with or without the `Runner` suffix or a dotted path."""
    runner = runner_name(beam_args)
    return runner is None or runner.rsplit(".", 1)[-1].lower() in LOCAL_RUNNERS


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


def build_pipeline(cfg: RunConfig, files: list[str], staging: str, beam_args: list[str]):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.stages import ProtectDataset

    if is_local_runner(beam_args):
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


def run_pipeline(
    cfg: RunConfig,
    files: list[str],
    staging: str,
    beam_args: list[str],
    show_progress: bool | None,
) -> None:
    """Run the pipeline into `staging` (progress shown on a terminal) and wait for it."""
    from transforms.progress import Display

    with Display(enabled=show_progress):
        build_pipeline(cfg, files, staging, beam_args).run().wait_until_finish()
