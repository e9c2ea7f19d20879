"""Read: input files -> raw Arrow tables of the declared columns (minimized at read time).

Only declared columns are parsed; undeclared ones are listed (never read into the pipeline)
and the run fails under `unknown_columns: fail`. CSV cells are read as bytes so the contract
check owns decoding and typing; rows the CSV parser rejects (wrong field count) and JSON lines
that do not parse go straight to the quarantine. Errors name the file, never a value.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from privgate.errors import DataError, SchemaMismatchError
from schemas.columns import Schema
from schemas.config import InputSpec
from transforms.contract import quarantine_rows

_JSON_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


@dataclass
class FileStats:
    """What was read from one input file (goes into the manifest)."""

    path: str
    sha256: str = ""
    rows: int = 0  # every data row seen: parsed + rejected by the parser
    columns: list = field(default_factory=list)
    undeclared: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class RawBatch:
    """Declared columns of `rows` consecutive input rows, as read (not yet typed)."""

    source: str
    row_offset: int
    table: pa.Table


class _HashingReader(io.RawIOBase):
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw):
        self._raw = raw
        self.hash = hashlib.sha256()

    def readable(self):
        return True

    def read(self, n=-1):
        data = self._raw.read(n)
        self.hash.update(data)
        return data

    def readinto(self, b):
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self):
        while self.read(1 << 20):
            pass

    def close(self):
        self._raw.close()
        super().close()


def _open(path: str):
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    try:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as e:  # Beam wraps OS errors in its own types
        raise DataError(f"{path}: cannot open input file ({type(e).__name__})") from None


def _check_columns(path: str, names: list[str], schema: Schema, strict: bool) -> list[str]:
    """Validate a file's column names against the schema; return the undeclared ones."""
    declared = set(schema.names)
    seen, dup = set(), set()
    for n in names:
        (dup if n in seen else seen).add(n)
    for n in sorted(dup & declared):
        raise SchemaMismatchError(f"{path}: column '{n}' appears more than once in the header")
    if strict:
        missing = [c for c in schema.names if c not in seen]
        if missing:
            raise SchemaMismatchError(
                f"{path}: declared column '{missing[0]}' is missing from the input"
            )
    undeclared = sorted(n for n in seen if n not in declared)
    if undeclared and schema.unknown_columns == "fail":
        raise SchemaMismatchError(
            f"{path}: column '{undeclared[0]}' is not declared in the schema "
            "(unknown_columns: fail)"
        )
    return undeclared


def read_csv_header(path: str, spec: InputSpec) -> list[str]:
    """Column names from the first record of a CSV file (a UTF-8 BOM is accepted)."""
    with _open(path) as f:
        head = f.read(1 << 20)
    if not head:
        return []
    encoding = (
        "utf-8-sig"
        if spec.csv.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        else spec.csv.encoding
    )
    text = head.decode(encoding, errors="replace")
    reader = csv.reader(
        io.StringIO(text), delimiter=spec.csv.delimiter, quotechar=spec.csv.quotechar
    )
    return next(reader, [])


def read_header(path: str, spec: InputSpec) -> list[str] | None:
    """Column names of a CSV or Parquet file; None for JSONL (keys vary per line)."""
    if spec.format == "csv":
        return read_csv_header(path, spec)
    if spec.format == "parquet":
        import pyarrow.parquet as pq

        with _open(path) as f:
            return pq.ParquetFile(f).schema_arrow.names
    return None


def _iter_csv(path, spec, schema, stats) -> Iterator[RawBatch | pa.Table]:
    header = read_csv_header(path, spec)
    stats.columns = header
    if not header:  # an empty file holds no rows: nothing to protect, nothing lost
        with _open(path) as f:
            stats.sha256 = hashlib.sha256(f.read()).hexdigest()
        return
    stats.undeclared = _check_columns(path, header, schema, strict=True)
    # Rename undeclared duplicates so pyarrow accepts the names; they are never read.
    names, seen = [], {}
    for n in header:
        seen[n] = seen.get(n, 0) + 1
        names.append(n if seen[n] == 1 else f"{n}\0dup{seen[n]}")
    declared = list(schema.names)
    rejected: list = []

    def on_invalid(row):
        rejected.append((row.number, row.text))
        return "skip"

    _quiet_undecodable_rows()
    f = _HashingReader(_open(path))
    try:
        yield from _csv_arrow_batches(f, path, spec, declared, names, rejected, on_invalid, stats)
        f.drain()
    except _UndecodableRow:
        # pyarrow gave up on a block (a rejected row it cannot decode for our handler, a row
        # over the block size, ...): continue this file with Python's csv module from the
        # first record not yet accounted for.
        f.close()
        yield from _iter_csv_python(path, spec, schema, stats, names, skip=stats.rows)
        return
    finally:
        f.close()
    stats.sha256 = f.hash.hexdigest()


def _csv_arrow_batches(f, path, spec, declared, names, rejected, on_invalid, stats):
    import pyarrow.csv as pacsv

    reader = _safe_call(
        path,
        lambda: pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(
                column_names=names,
                skip_rows=1,
                encoding=spec.csv.encoding,
                block_size=max(1 << 22, 4 * spec.max_cell_bytes),
                use_threads=False,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=spec.csv.delimiter,
                quote_char=spec.csv.quotechar,
                newlines_in_values=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=declared,
                column_types={c: pa.binary() for c in declared},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        ),
    )
    offset = 0
    for batch in _safe_batches(reader, path):
        table = pa.Table.from_batches([batch])
        yield RawBatch(path, offset, table)
        offset += table.num_rows
        stats.rows += table.num_rows
        if rejected:
            yield _rejected(rejected, path)
            stats.rows += len(rejected)
            rejected.clear()
    if rejected:
        yield _rejected(rejected, path)
        stats.rows += len(rejected)


def _iter_csv_python(path, spec, schema, stats, names, skip: int):
    """Slow, exact fallback for CSV files pyarrow cannot report on (see _iter_csv)."""
    _raise_csv_field_limit()
    f = _HashingReader(_open(path))
    text = io.TextIOWrapper(
        io.BufferedReader(f, 1 << 20),
        encoding=spec.csv.encoding,
        errors="surrogateescape",
        newline="",
    )
    reader = csv.reader(text, delimiter=spec.csv.delimiter, quotechar=spec.csv.quotechar)
    idx = [names.index(c) for c in schema.names]
    good: list[list[str]] = []
    bad: list[tuple[int, str]] = []
    offset = stats.rows
    records = 0

    def flush():
        nonlocal offset
        if good:
            cols = {
                c: pa.array([_cell(r[i]) for r in good], pa.binary())
                for c, i in zip(schema.names, idx, strict=True)
            }
            yield RawBatch(path, offset, pa.table(cols))
            offset += len(good)
            stats.rows += len(good)
            good.clear()
        if bad:
            yield _rejected(bad, path)
            stats.rows += len(bad)
            bad.clear()

    try:
        next(reader, None)  # header
        for rec in reader:
            if not rec:  # blank line: pyarrow skips these too
                continue
            records += 1
            if records <= skip:
                continue
            if len(rec) == len(names):
                good.append(rec)
            else:
                bad.append((reader.line_num, _text(spec.csv.delimiter.join(rec))))
            if len(good) + len(bad) >= spec.batch_rows:
                yield from flush()
        yield from flush()
        f.drain()
    except csv.Error:
        raise DataError(f"{path}: cannot parse input near line {reader.line_num}") from None
    finally:
        f.close()
    stats.sha256 = f.hash.hexdigest()


# Python's csv refuses a field over 131,072 characters by default and cannot resume after
# that error, so one long cell would fail the file. This path takes over rows pyarrow gave
# up on, long ones included, so the record itself is its only bound; the contract's size rule
# quarantines a cell over input.max_cell_bytes (`size:<col>`). A C long holds the limit.
_CSV_FIELD_LIMIT = 2**31 - 1


def _raise_csv_field_limit() -> None:
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:  # process-wide: only ever raised
        csv.field_size_limit(_CSV_FIELD_LIMIT)


def _quiet_undecodable_rows() -> None:
    """Drop pyarrow's reports of our invalid-row handler failing to decode a row.

    pyarrow decodes a rejected row before calling the handler and reports a failure through
    `sys.unraisablehook`, whose default prints the error, quoting the row's bytes, to stderr.
    The reader already handles that row (the Python path takes over), so the report is noise
    that leaks input; every other unraisable error still reaches the previous hook.
    """
    previous = sys.unraisablehook
    if getattr(previous, "privgate_quiet", False):
        return

    def hook(unraisable):
        ours = getattr(unraisable.object, "__module__", None) == __name__
        if not (ours and isinstance(unraisable.exc_value, UnicodeDecodeError)):
            previous(unraisable)

    hook.privgate_quiet = True
    sys.unraisablehook = hook


def _cell(v: str) -> bytes | None:
    return v.encode("utf-8", "surrogateescape") if v else None


def _text(v: str) -> str:
    return v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _UndecodableRow(Exception):
    """pyarrow's CSV reader failed on a block; the Python reader takes over."""


def _safe_call(path: str, fn):
    try:
        return fn()
    except (UnicodeDecodeError, pa.ArrowInvalid):
        # The error text quotes the row; drop it and let the exact Python path take over.
        raise _UndecodableRow() from None


def _rejected(rows: list, path: str) -> pa.Table:
    raw = pa.table({"raw_line": pa.array([t for _, t in rows], pa.string())})
    numbers = [-1 if n is None else n for n, _ in rows]
    return quarantine_rows(raw, ["columns"] * len(rows), path, numbers)


def _safe_batches(reader, path: str):
    """Iterate a pyarrow reader; its errors quote input lines, so replace their text."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (UnicodeDecodeError, pa.ArrowInvalid):
            # e.g. a rejected row pyarrow cannot decode for our handler, or a row larger than
            # the block size. The error text quotes the row; drop it and fall back.
            raise _UndecodableRow() from None
        yield batch


def _iter_jsonl(path, spec, schema, stats) -> Iterator[RawBatch | pa.Table]:
    import pyarrow.json as pajson

    declared = list(schema.names)
    explicit = pa.schema([(c.name, _JSON_TYPES.get(c.type, pa.string())) for c in schema.columns])
    undeclared: set = set()
    f = _HashingReader(_open(path))
    buf = io.BufferedReader(f, 1 << 20)
    offset = 0
    try:
        while True:
            lines = buf.readlines(1 << 22)
            if not lines:
                break
            lines = [ln for ln in lines if ln.strip()]
            if not lines:
                continue
            chunk = b"".join(ln if ln.endswith(b"\n") else ln + b"\n" for ln in lines)
            try:
                table = pajson.read_json(
                    io.BytesIO(chunk),
                    read_options=pajson.ReadOptions(use_threads=False, block_size=len(chunk) + 1),
                    parse_options=pajson.ParseOptions(
                        explicit_schema=explicit, unexpected_field_behavior="infer"
                    ),
                )
                if table.num_rows != len(lines):  # e.g. a line of one stray byte, skipped
                    raise pa.ArrowInvalid("row count differs from line count")
                undeclared.update(n for n in table.column_names if n not in explicit.names)
                yield RawBatch(path, offset, table.select(declared))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                # Slow path for this chunk only: per line, to quarantine just the bad ones.
                yield from _jsonl_lines(lines, path, offset, schema, undeclared)
            offset += len(lines)
            stats.rows += len(lines)
        f.drain()
    finally:
        f.close()
    stats.sha256 = f.hash.hexdigest()
    stats.undeclared = _check_columns(path, declared + sorted(undeclared), schema, strict=False)
    stats.columns = stats.undeclared and declared + stats.undeclared or declared


def _jsonl_lines(lines, path, offset, schema: Schema, undeclared: set):
    cols: dict[str, list] = {c: [] for c in schema.names}
    kept_rows: list[int] = []
    bad_raw, bad_reason, bad_rows = [], [], []
    for i, line in enumerate(lines):
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            obj = None
        if not isinstance(obj, dict):
            bad_raw.append(line.decode("utf-8", "backslashreplace").rstrip("\n"))
            bad_reason.append("json")
            bad_rows.append(offset + i)
            continue
        undeclared.update(k for k in obj if k not in cols)
        nested = next((c for c in schema.names if isinstance(obj.get(c), (dict, list))), None)
        if nested is not None:
            bad_raw.append(json.dumps(obj, ensure_ascii=False))
            bad_reason.append(f"type:{nested}")
            bad_rows.append(offset + i)
            continue
        for c in schema.names:
            v = obj.get(c)
            cols[c].append(
                None if v is None else ("true" if v is True else "false" if v is False else str(v))
            )
        kept_rows.append(offset + i)
    if bad_raw:
        raw = pa.table({"raw_line": pa.array(bad_raw, pa.string())})
        yield quarantine_rows(raw, bad_reason, path, bad_rows)
    # Rows kept here are not contiguous; emit one single-row-offset batch per run of rows.
    table = pa.table({c: pa.array(v, pa.string()) for c, v in cols.items()})
    start = 0
    while start < len(kept_rows):
        end = start + 1
        while end < len(kept_rows) and kept_rows[end] == kept_rows[end - 1] + 1:
            end += 1
        yield RawBatch(path, kept_rows[start], table.slice(start, end - start))
        start = end


def _iter_parquet(path, spec, schema, stats) -> Iterator[RawBatch | pa.Table]:
    import pyarrow.parquet as pq

    # Hash on a thread while batches are decoded (both release the GIL on large buffers).
    hasher = _Background(lambda: _sha256_file(path))
    with _open(path) as f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError):
            raise DataError(f"{path}: not a readable Parquet file") from None
        names = pf.schema_arrow.names
        stats.columns = names
        stats.undeclared = _check_columns(path, names, schema, strict=True)
        offset = 0
        batches = pf.iter_batches(batch_size=spec.batch_rows, columns=list(schema.names))
        for batch in _prefetch(batches):
            table = pa.Table.from_batches([batch])
            yield RawBatch(path, offset, table)
            offset += table.num_rows
            stats.rows += table.num_rows
    stats.sha256 = hasher.result()


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with _open(path) as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class _Background:
    """Run `fn` on a thread; `result()` joins and re-raises its exception."""

    def __init__(self, fn):
        self._out, self._err = None, None

        def target():
            try:
                self._out = fn()
            except BaseException as e:  # re-raised by result()
                self._err = e

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def result(self):
        self._thread.join()
        if self._err is not None:
            raise self._err
        return self._out


def _prefetch(iterator, depth: int = 2):
    """Yield from `iterator`, producing the next items on a thread (decode overlaps work)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


_READERS = {"csv": _iter_csv, "jsonl": _iter_jsonl, "parquet": _iter_parquet}


def read_file(
    path: str, spec: InputSpec, schema: Schema
) -> Iterator[RawBatch | pa.Table | FileStats]:
    """Yield RawBatch (rows to check), pa.Table (quarantine rows), and finally FileStats."""
    stats = FileStats(path)
    yield from _READERS[spec.format](path, spec, schema, stats)
    yield stats


def input_files(pattern: str) -> list[str]:
    """The files `pattern` matches (local, gs:// or s3://), sorted, hidden files skipped;
    [] when nothing matches."""
    import os

    from apache_beam.io.filesystems import FileSystems

    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # Beam raises BeamIOError with the pattern; keep it generic
        found = []
    return sorted(m.path for m in found if not os.path.basename(m.path).startswith("."))


def input_head(
    files: list[str], spec: InputSpec, schema: Schema, rows: int, typed_rows: int = 0
) -> tuple[pa.Table | None, pa.Table | None]:
    """The first `rows` contract-valid rows of `files` and their first `typed_rows` rows
    before the quarantine split (None where nothing was read): read on the launcher before
    the pipeline, and by the canary DoFn in `setup()` (the same rows on every worker)."""
    from transforms.contract import contract_check

    valid, typed, n, n_typed = [], [], 0, 0
    for path in files:
        for item in read_file(path, spec, schema):
            if isinstance(item, RawBatch):
                checked = contract_check(
                    item.table, schema, path, item.row_offset, spec.max_cell_bytes
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
    return (
        pa.concat_tables(valid).slice(0, rows) if valid else None,
        pa.concat_tables(typed).slice(0, typed_rows) if typed else None,
    )
