"""Dataflow flex-template launcher: `python pipelines/flex_main.py --config PATH [Beam options]`.

The template's launcher image runs this file (`FLEX_TEMPLATE_PYTHON_PY_FILE`) with the
template parameters of `dataflow/metadata.json` and Dataflow's own options (project, region,
temp and staging locations, setup file, job name) as `--name=value` arguments. It hands them
to the same entry point as `privgate run --no_wait`, so the same checks and exit codes apply:
the launcher submits the job and exits (Dataflow's rule for templates: it must not wait), and
nothing is signed until an orchestrator runs `privgate finalize OUTPUT_OR_STAGING` after the
job has finished (README, "Running on Dataflow").
"""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    """The template parameters this launcher reads itself; all other arguments go to Beam."""
    p = argparse.ArgumentParser(
        prog="privgate-flex-template", description="Launch `privgate run` as a Dataflow job."
    )
    p.add_argument(
        "--config",
        required=True,
        help="run config inside the template image, e.g. /template/configs/x.yaml",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the config with the remaining arguments as Beam options; return the exit code."""
    args, beam_args = parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        beam_args = ["--runner=DataflowRunner", *beam_args]  # a template only runs on Dataflow
    from pipelines.cli import main as privgate_main

    return privgate_main(["run", args.config, "--no-progress", "--no_wait", *beam_args])


if __name__ == "__main__":
    sys.exit(main())
