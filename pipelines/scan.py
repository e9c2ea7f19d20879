"""`privgate scan INPUT --format csv|jsonl|parquet [--sample N]`: propose a schema.

Reads the first `max_rows` rows (every column as text), classifies each column on a
deterministic sample (values: `transforms.detect.classify`; class from values, name tokens and
shape: `transforms.detect.column_class`) and prints a schema YAML that loads and runs without
edits. Comments carry the class and its evidence, never a value.
"""

from __future__ import annotations

import json

import pyarrow as pa

from privgate.errors import DataError
from schemas.columns import parse_schema
from schemas.config import CsvOptions, InputSpec
from transforms.arrow import as_string


def _csv_table(path: str, spec: InputSpec, max_rows: int) -> pa.Table:
    from transforms.contract import coerce
    from transforms.read import RawBatch, read_csv_header, read_file

    header = [h for h in read_csv_header(path, spec) if h]
    if not header:
        raise DataError(f"{path}: no header row")
    names = list(dict.fromkeys(h for h in header if not h.startswith("_")))
    schema = parse_schema(
        {"columns": {h: {"type": "string", "action": "keep", "nullable": True} for h in names}},
        path,
    )
    parts, n = [], 0
    for item in read_file(path, spec, schema):
        if isinstance(item, RawBatch):
            cols = {c: coerce(item.table.column(c), schema.column(c))[0] for c in names}
            parts.append(pa.table(cols))
            n += item.table.num_rows
            if n >= max_rows:
                break
    if not parts:
        return pa.table({c: pa.array([], pa.string()) for c in names})
    return pa.concat_tables(parts).slice(0, max_rows)


def _open(path: str):
    """A local file, or an object (gs://, s3://) through Beam's filesystems."""
    if "://" not in path:
        return open(path, "rb")
    from pipelines.inputs import use_beam_options
    from transforms.read import _open as open_input

    use_beam_options()
    return open_input(path)


def _jsonl_table(path: str, max_rows: int) -> pa.Table:
    rows = []
    with _open(path) as f:
        for line in f:
            if len(rows) >= max_rows:
                break
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # scan proposes; the run quarantines bad lines
            if isinstance(obj, dict):
                rows.append(obj)
    names = list(dict.fromkeys(k for r in rows for k in r if not k.startswith("_")))

    def text(v):
        if v is None or isinstance(v, str):
            return v
        return (
            json.dumps(v)
            if isinstance(v, (dict, list))
            else ("true" if v is True else "false" if v is False else str(v))
        )

    return pa.table({c: pa.array([text(r.get(c)) for r in rows], pa.string()) for c in names})


def _parquet_table(path: str, max_rows: int) -> pa.Table:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(_open(path) if "://" in path else path)
    parts, n = [], 0
    for batch in pf.iter_batches(batch_size=min(max_rows, 65536)):
        parts.append(pa.Table.from_batches([batch]))
        n += batch.num_rows
        if n >= max_rows:
            break
    table = pa.concat_tables(parts).slice(0, max_rows) if parts else pf.schema_arrow.empty_table()
    return pa.table(
        {
            c: as_string(table.column(c).combine_chunks())
            for c in table.column_names
            if not c.startswith("_")
        }
    )


def scan(
    path: str,
    fmt: str,
    sample: int = 1000,
    max_rows: int = 100_000,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> str:
    """Proposed schema YAML for an input file (see module docstring)."""
    from transforms.detect.engine import get_detector
    from transforms.detect.propose import propose_schema

    if "://" in path:
        from pipelines.inputs import use_beam_options

        use_beam_options()  # inputs on gs:// or s3:// are read through Beam's filesystems
    if fmt == "csv":
        spec = InputSpec(path, "csv", CsvOptions(delimiter, encoding))
        table = _csv_table(path, spec, max_rows)
    elif fmt == "jsonl":
        table = _jsonl_table(path, max_rows)
    else:
        table = _parquet_table(path, max_rows)
    return propose_schema(table, sample=sample, detector=get_detector())
