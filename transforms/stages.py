"""The thin Beam layer: DoFns and composite PTransforms over the pure stage cores.

Elements are pyarrow Tables (record batches), never per-row dicts. DoFns carry only
frozen config models and the keyring *path*; keys are opened in `setup()`. Every DoFn body
raises only value-free errors (`value_free_errors`): Beam logs a DoFn's exception with its
text at ERROR before any handler of ours sees it.
"""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa

from privgate.errors import value_free_errors
from privgate.kms import kek_context
from schemas.columns import Schema
from schemas.config import InputSpec, RunConfig
from transforms import progress
from transforms.anonymize.release import released_schema
from transforms.contract import COUNTS_LINE, QUARANTINE_SCHEMA, contract_check
from transforms.gates.leaks import LEAKS_LINE, leak_plan, own_row_leaks
from transforms.ldp.census import (
    CENSUS_LINE,
    census_summary,
    empty_census,
    memoized_ldp,
    merge_census,
    table_census,
)
from transforms.mondrian import EnforceKAnonymity, SpillPlace
from transforms.protect import detector_for, keyed_ops, output_schema, protect_table
from transforms.read import FileStats, RawBatch, read_file
from transforms.write import EncryptedParquetSink

QUARANTINE = "quarantine"
STATS = "stats"
CONTRACT = "contract"
LEAKS = "leaks"
CENSUS = "census"


class ReadFilesFn(beam.DoFn):
    """file path -> RawBatch elements; quarantine tables and FileStats as tagged outputs."""

    def __init__(self, spec: InputSpec, schema: Schema):
        self._spec, self._schema = spec, schema

    def process(self, path: str):
        with value_free_errors(path):
            for item in read_file(path, self._spec, self._schema):
                if isinstance(item, RawBatch):
                    progress.add(read=item.table.num_rows)
                    yield item
                elif isinstance(item, FileStats):
                    yield beam.pvalue.TaggedOutput(STATS, json.dumps(item.to_dict()))
                else:
                    progress.add(read=item.num_rows, quarantined=item.num_rows)
                    yield beam.pvalue.TaggedOutput(QUARANTINE, item)


class CheckContractFn(beam.DoFn):
    """RawBatch -> typed table of rows meeting the contract; failing rows tagged quarantine,
    the batch's per-rule counts (the gates' input contract) tagged contract, as JSON."""

    def __init__(self, schema: Schema, max_cell_bytes: int | None = None):
        self._schema, self._max_cell_bytes = schema, max_cell_bytes

    def process(self, batch: RawBatch):
        with value_free_errors(f"{batch.source}: contract check"):
            checked = contract_check(
                batch.table, self._schema, batch.source, batch.row_offset, self._max_cell_bytes
            )
        yield beam.pvalue.TaggedOutput(CONTRACT, json.dumps({COUNTS_LINE: checked.counts}))
        if checked.quarantine is not None:
            progress.add(quarantined=checked.quarantine.num_rows)
            yield beam.pvalue.TaggedOutput(QUARANTINE, checked.quarantine)
        if checked.good.num_rows:
            yield checked.good


class ProtectColumnsFn(beam.DoFn):
    """Typed table -> protected table (column actions), keys opened in setup(); tagged outputs
    as JSON: the batch's own-row leak counts (the gates' residual-PII evidence, raw input
    beside output: `leaks`) and, with memoized ldp, its record-key census (`census`)."""

    def __init__(self, schema: Schema, keyring_path: str, dataset: str, count_leaks: bool = False):
        self._schema, self._keyring_path, self._dataset = schema, keyring_path, dataset
        self._count_leaks = count_leaks  # only a gated run needs them

    def setup(self):
        from privgate.keyring import open_keyring

        self._ops = keyed_ops(open_keyring(self._keyring_path))
        self._out_schema = output_schema(self._schema)
        self._detector = detector_for(self._schema)  # shared per process, built once
        self._leak_plan = leak_plan(self._schema) if self._count_leaks else None
        self._census = memoized_ldp(self._schema)

    def process(self, table: pa.Table):
        with value_free_errors("protecting columns"):
            out = protect_table(
                table, self._schema, self._ops, self._out_schema, self._detector, self._dataset
            )
            leaks = own_row_leaks(table, out, self._leak_plan) if self._leak_plan else None
            census = table_census(self._ops.ldp_key, table, self._schema) if self._census else None
        # outside the error boundary: downstream steps run inside these yields
        if leaks is not None:
            yield beam.pvalue.TaggedOutput(LEAKS, json.dumps({LEAKS_LINE: leaks}))
        if census is not None:
            yield beam.pvalue.TaggedOutput(CENSUS, census)
        progress.add(written=out.num_rows)
        yield out


class CountRecordKeysFn(beam.CombineFn):
    """Batch censuses -> one JSON stats line of counts over the whole input (`census_summary`)."""

    def create_accumulator(self):
        return empty_census()

    def add_input(self, accumulator, census):
        return merge_census((accumulator, census))

    def merge_accumulators(self, accumulators):
        return merge_census(accumulators)

    def extract_output(self, accumulator):
        return json.dumps({CENSUS_LINE: census_summary(accumulator)})


class ProtectDataset(beam.PTransform):
    """files -> encrypted protected Parquet + encrypted quarantine + per-file stats (JSON).

    Writes `<staging>/data/part-*.parquet`, `<staging>/quarantine/part-*.parquet` and
    `<staging>/_work/stats*.jsonl` (a line per input file, a `contract` and an
    `own_row_leaks` line per batch, with memoized ldp one `ldp_census` line for the whole
    input, and with `anonymize:` one `anonymize_certificate` line);
    the launcher reconciles and signs them afterwards.
    """

    def __init__(self, cfg: RunConfig, staging: str):
        super().__init__()
        self._cfg, self._staging = cfg, staging

    def expand(self, files):
        cfg, schema = self._cfg, self._cfg.schema
        read = files | "ReadFiles" >> beam.ParDo(ReadFilesFn(cfg.input, schema)).with_outputs(
            QUARANTINE, STATS, main="batches"
        )
        checked = read.batches | "CheckContract" >> beam.ParDo(
            CheckContractFn(schema, cfg.input.max_cell_bytes)
        ).with_outputs(QUARANTINE, CONTRACT, main="rows")
        protected = checked.rows | "ProtectColumns" >> beam.ParDo(
            ProtectColumnsFn(
                schema, cfg.keys.keyring, cfg.dataset, count_leaks=cfg.gates is not None
            )
        ).with_outputs(LEAKS, CENSUS, main="rows")

        def sink(sub: str, arrow_schema: pa.Schema, groups: dict[str, str]):
            return beam.io.Write(
                EncryptedParquetSink(
                    f"{self._staging}/{sub}/part",
                    arrow_schema,
                    groups,
                    cfg.keys.keyring,
                    cfg.output.compression,
                    cfg.output.row_group_rows,
                    kek_context(cfg.dataset),
                )
            )

        rows, census, stats = protected.rows, protected[CENSUS], [read[STATS], checked[CONTRACT]]
        if cfg.canaries is not None:  # keyed canaries join the rows (transforms/canaries)
            from transforms.canaries.plant import plant_canaries

            rows, census, planted = plant_canaries(
                files.pipeline, cfg, rows, census, sink, STATS, CENSUS
            )
            stats.append(planted)
        groups = {c.name: c.key_group for c in schema.output_columns}
        released, data_schema = rows, output_schema(schema)
        if cfg.anonymize is not None:  # k-anonymity enforced on the released rows (+canaries)
            work = SpillPlace(
                f"{self._staging}/_work/anonymize", cfg.keys.keyring, kek_context(cfg.dataset)
            )
            released, certificate = rows | "Anonymize" >> EnforceKAnonymity(
                cfg.anonymize, data_schema, work
            )
            data_schema = released_schema(data_schema, cfg.anonymize)
            stats.append(certificate)
        released | "WriteProtected" >> sink("data", data_schema, groups)
        q_groups = {name: "pii" for name in QUARANTINE_SCHEMA.names}
        (
            (read[QUARANTINE], checked[QUARANTINE])
            | "CollectQuarantine" >> beam.Flatten()
            | "WriteQuarantine" >> sink("quarantine", QUARANTINE_SCHEMA, q_groups)
        )
        stats.append(protected[LEAKS])
        if memoized_ldp(schema):  # repeated record keys are counted over the whole input
            stats.append(census | "CountRecordKeys" >> beam.CombineGlobally(CountRecordKeysFn()))
        (
            tuple(stats)
            | "CollectStats" >> beam.Flatten()
            | "WriteStats"
            >> beam.io.WriteToText(f"{self._staging}/_work/stats", file_name_suffix=".jsonl")
        )
        return protected.rows
