"""The Beam layer of canaries: `PlantCanariesFn` generates, protects and splits candidate shards.

The DoFn carries only the frozen run config; in `setup()` it opens the keyring by its path,
derives the canary key and reads the input head it draws marginals from (the same sorted
files and rows on every worker, so every worker regenerates the same candidates).
"""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa

from privgate.errors import DataError, value_free_errors
from schemas.config import RunConfig
from transforms.canaries.generate import (
    CANARY_LINE,
    ID,
    REFERENCE,
    build_profile,
    canary_key,
    candidates,
    coins,
    shards,
)
from transforms.read import input_files, input_head

EXPORT = "export"


def canary_jobs(cfg: RunConfig) -> list[tuple[str, int, int]]:
    """The shards a run generates: ("candidate", start, stop), then secret references."""
    spec = cfg.canaries
    jobs = [("candidate", a, b) for a, b in shards(spec.count)]
    if spec.kind == "secret":
        jobs += [("reference", a, b) for a, b in shards(spec.references, spec.count)]
    return jobs


def export_schema(cfg: RunConfig, out_schema: pa.Schema) -> pa.Schema:
    """The `canaries/` files' schema: `id`, the protected columns, `reference` (secret kind)."""
    fields = [pa.field(ID, pa.int64())] + list(out_schema)
    if cfg.canaries.kind == "secret":
        fields.append(pa.field(REFERENCE, pa.bool_()))
    return pa.schema(fields)


class PlantCanariesFn(beam.DoFn):
    """(role, start, stop) -> the planted candidates' protected rows (main output); every
    candidate's protected row with its `id` (`export`); the shard's planted count (`stats`);
    with memoized ldp the planted rows' record-key census (`census`)."""

    def __init__(self, cfg: RunConfig, stats_tag: str, census_tag: str):
        self._cfg, self._stats_tag, self._census_tag = cfg, stats_tag, census_tag

    def setup(self):
        from privgate.keyring import open_keyring
        from transforms.ldp.census import memoized_ldp
        from transforms.protect import detector_for, keyed_ops, output_schema

        cfg = self._cfg
        keyring = open_keyring(cfg.keys.keyring)
        self._key = canary_key(keyring.data_key("token"), cfg.dataset)
        self._ops = keyed_ops(keyring)
        self._out_schema = output_schema(cfg.schema)
        self._export_schema = export_schema(cfg, self._out_schema)
        self._detector = detector_for(cfg.schema)
        self._census = memoized_ldp(cfg.schema)
        with value_free_errors("canaries: reading the input sample"):
            files = input_files(cfg.input.path)
            if not files:  # every worker must draw from the same rows, or none may plant
                raise DataError(f"canaries: no input file matches {cfg.input.path} on a worker")
            head, _ = input_head(files, cfg.input, cfg.schema, cfg.canaries.sample)
        self._profile = build_profile(head, cfg.schema, cfg.canaries)

    def process(self, job: tuple[str, int, int]):
        from transforms.ldp.census import table_census
        from transforms.protect import protect_table

        role, start, stop = job
        cfg = self._cfg
        with value_free_errors("canaries: protecting candidates"):
            raw = candidates(
                self._key, cfg.dataset, cfg.schema, cfg.canaries, self._profile, start, stop, role
            )
            out = protect_table(
                raw, cfg.schema, self._ops, self._out_schema, self._detector, cfg.dataset
            )
            ids = pa.array(range(start, stop), pa.int64())
            export = out.add_column(0, ID, ids)
            if cfg.canaries.kind == "secret":
                flag = pa.array([role == "reference"] * len(ids), pa.bool_())
                export = export.append_column(REFERENCE, flag)
            planted = None
            if role == "candidate":
                mask = pa.array(coins(self._key, cfg.dataset, stop, start))
                planted = out.filter(mask)
                census = (
                    table_census(self._ops.ldp_key, raw.filter(mask), cfg.schema)
                    if self._census
                    else None
                )
        yield beam.pvalue.TaggedOutput(EXPORT, export.cast(self._export_schema))
        if planted is None:
            return
        yield beam.pvalue.TaggedOutput(
            self._stats_tag, json.dumps({CANARY_LINE: {"planted": planted.num_rows}})
        )
        if census is not None:
            yield beam.pvalue.TaggedOutput(self._census_tag, census)
        if planted.num_rows:
            yield planted


def plant_canaries(pipeline, cfg: RunConfig, rows, census, sink, stats_tag: str, census_tag: str):
    """Wire the canary shards into a run: returns (rows with the planted candidates, census with
    theirs, the shards' count lines). Every candidate's protected row goes to
    `<staging>/canaries/` through `sink` (every column under the `pii` master key)."""
    from transforms.protect import output_schema

    planted = (
        pipeline
        | "CanaryShards" >> beam.Create(canary_jobs(cfg))
        | "PlantCanaries"
        >> beam.ParDo(PlantCanariesFn(cfg, stats_tag, census_tag)).with_outputs(
            EXPORT, stats_tag, census_tag, main="rows"
        )
    )
    schema = export_schema(cfg, output_schema(cfg.schema))
    planted[EXPORT] | "WriteCanaries" >> sink(
        "canaries", schema, {name: "pii" for name in schema.names}
    )
    rows = (rows, planted.rows) | "WithCanaries" >> beam.Flatten()
    census = (census, planted[census_tag]) | "WithCanaryCensus" >> beam.Flatten()
    return rows, census, planted[stats_tag]
