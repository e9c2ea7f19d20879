"""The run's inputs: the files a config's `input.path` matches, their headers, their head."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from privgate.errors import ConfigError
from schemas.config import RunConfig


def use_beam_options(beam_args: list[str] | tuple = ()) -> None:
    """Give Beam's filesystems in this process the run's options: the launcher (and
    `privgate finalize`) lists and reads inputs before any pipeline sets them, and Beam's S3
    filesystem refuses to work without options (`--s3_endpoint_url`, or boto3's
    `AWS_ENDPOINT_URL`)."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    FileSystems.set_options(PipelineOptions(list(beam_args)))


def match_inputs(cfg: RunConfig, beam_args: list[str] | tuple = ()) -> list[str]:
    """The input files `input.path` matches (local, gs:// or s3://), sorted.

    Raises:
        ConfigError (exit 2): nothing matches.
    """
    from transforms.read import input_files

    use_beam_options(beam_args)
    files = input_files(cfg.input.path)
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


@dataclass(frozen=True)
class InputHead:
    """The first rows of the inputs, read once before the pipeline starts.

    Attributes:
        valid: contract-valid rows (typed), or None: the keep-guard's sample and the
            report's before-plots.
        typed: rows before the quarantine split (typed; a cell that broke its type is null),
            or None: what a user's input suite sees, rows the contract quarantines included.
    """

    valid: pa.Table | None
    typed: pa.Table | None


def input_head(cfg: RunConfig, files: list[str], rows: int, typed_rows: int = 0) -> InputHead:
    """The first `rows` contract-valid input rows and the first `typed_rows` input rows."""
    from transforms.read import input_head as read_head

    return InputHead(*read_head(files, cfg.input, cfg.schema, rows, typed_rows))
