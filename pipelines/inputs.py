"""The run's inputs: the files a config's `input.path` matches, their headers, their head."""

from __future__ import annotations

import os

from privgate.errors import ConfigError
from schemas.model import RunConfig


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
