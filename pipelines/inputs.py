"""The run's inputs: the files a config's `input.path` matches, their headers, their head."""

from __future__ import annotations

import os
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
    from apache_beam.io.filesystems import FileSystems

    use_beam_options(beam_args)
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
    from transforms.contract import contract_check
    from transforms.read import RawBatch, read_file

    valid, typed, n, n_typed = [], [], 0, 0
    for path in files:
        for item in read_file(path, cfg.input, cfg.schema):
            if isinstance(item, RawBatch):
                checked = contract_check(
                    item.table, cfg.schema, path, item.row_offset, cfg.input.max_cell_bytes
                )
                valid.append(checked.good)
                n += checked.good.num_rows
                if n_typed < typed_rows:
                    typed.append(checked.typed)
                    n_typed += checked.typed.num_rows
            if n >= rows and n_typed >= typed_rows:
                break
        if n >= rows and n_typed >= typed_rows:
            break
    return InputHead(
        pa.concat_tables(valid).slice(0, rows) if valid else None,
        pa.concat_tables(typed).slice(0, typed_rows) if typed else None,
    )
