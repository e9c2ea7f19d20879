"""The Beam wiring of enforced k-anonymity: Mondrian's distributed rounds, then local finishes.

`EnforceKAnonymity` takes the protected tables and returns the released tables and one JSON
certificate line. Global ranges come from a combine; each round keys the records of
partitions still being cut by partition id and merges their statistics with a per-key
combiner, and the new cut tree reaches the next round as a side input; the leaves are then
grouped and finished by the exact local Mondrian (`transforms.anonymize`). Every merge is a
sum, a minimum or a bounded sorted set, so the release does not depend on the worker count.
No key material: Mondrian works on already-protected values.
"""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pyarrow as pa

from privgate.errors import value_free_errors
from schemas.anonymize import AnonymizeSpec
from transforms.anonymize import rounds
from transforms.anonymize.certificate import CERTIFICATE_LINE, finish, merge_partials
from transforms.anonymize.columns import dimensions, encode
from transforms.anonymize.local import SUPPRESSED, mondrian
from transforms.anonymize.release import (
    generalize,
    released_schema,
    rule_of,
    suppress_smallest,
)

CERTIFICATE = "certificate"
UNPLACED = ""  # the group-by key of rows with a null QI or a value outside its hierarchy


class _Compiled:
    """What every DoFn derives from the spec: dimensions, rule, sensitive column."""

    def __init__(self, spec: AnonymizeSpec, arrow_schema: pa.Schema):
        self.spec, self.arrow_schema = spec, arrow_schema

    def setup(self):
        self.dims = dimensions(self.spec, self.arrow_schema)
        self.rule = rule_of(self.spec)
        ld = self.spec.l_diversity
        self.sensitive = ld.sensitive if ld else None
        self.l = ld.l if ld else None
        self.out_schema = released_schema(self.arrow_schema, self.spec)

    def encode(self, table: pa.Table):
        return encode(table, self.dims, self.sensitive)


def _pack(table: pa.Table) -> bytes:
    """A table as zstd-compressed Arrow IPC. Every round reads the records and the group-by
    holds them again (in memory on FnApiRunner, in the shuffle on Dataflow): fewer bytes."""
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _unpack(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class RangesFn(beam.CombineFn):
    """Packed tables -> global ranges and counts (`rounds.ranges_stats`)."""

    def __init__(self, spec: AnonymizeSpec, arrow_schema: pa.Schema):
        self._c = _Compiled(spec, arrow_schema)
        self._n = len(spec.quasi_identifiers)
        self._l = spec.l_diversity.l if spec.l_diversity else None

    def setup(self):
        self._c.setup()

    def create_accumulator(self):
        return rounds.merge_ranges([], self._n, self._l)

    def add_input(self, acc, packed: bytes):
        if not hasattr(self._c, "dims"):  # runners that skip CombineFn.setup
            self._c.setup()
        with value_free_errors("anonymize: ranges"):
            part = rounds.ranges_stats(self._c.dims, self._c.encode(_unpack(packed)), self._l)
        return rounds.merge_ranges([acc, part], self._n, self._l)

    def merge_accumulators(self, accs):
        return rounds.merge_ranges(accs, self._n, self._l)

    def extract_output(self, acc):
        return acc


class PartitionStatsFn(beam.DoFn):
    """Packed table -> (partition id, statistics) for each partition still being cut."""

    def __init__(self, spec: AnonymizeSpec, arrow_schema: pa.Schema):
        self._c = _Compiled(spec, arrow_schema)

    def setup(self):
        self._c.setup()

    def process(self, packed: bytes, tree: dict):
        nodes = tree["nodes"]
        if not any(n.get("active") for n in nodes):
            return
        with value_free_errors("anonymize: partition statistics"):
            enc = self._c.encode(_unpack(packed))
            leaf = rounds.assign(tree, self._c.dims, enc)
            out = []
            for i in np.unique(leaf[leaf >= 0]).tolist():
                if nodes[i].get("active"):
                    rows = np.flatnonzero(leaf == i)
                    out.append(
                        (
                            nodes[i]["id"],
                            rounds.partition_stats(
                                self._c.dims, enc, rows, nodes[i]["region"], self._c.l
                            ),
                        )
                    )
        yield from out


class MergeStatsFn(beam.CombineFn):
    """Per-partition statistics merged (sums and bounded sets: any order, same result)."""

    def __init__(self, l):  # noqa: E741
        self._l = l

    def create_accumulator(self):
        return None

    def add_input(self, acc, stats):
        return rounds.merge_stats([s for s in (acc, stats) if s is not None], self._l)

    def merge_accumulators(self, accs):
        return rounds.merge_stats([a for a in accs if a is not None], self._l)

    def extract_output(self, acc):
        return acc


class KeyLeafFn(beam.DoFn):
    """Packed table -> (leaf id, packed rows); unplaceable rows under `UNPLACED` (one group, at most
    max_suppression of the records in a run that succeeds)."""

    def __init__(self, spec: AnonymizeSpec, arrow_schema: pa.Schema):
        self._c = _Compiled(spec, arrow_schema)

    def setup(self):
        self._c.setup()

    def process(self, packed: bytes, tree: dict):
        c = self._c
        with value_free_errors("anonymize: partitions"):
            table = _unpack(packed)
            leaf = rounds.assign(tree, c.dims, c.encode(table))
            out = []
            order = np.argsort(leaf, kind="stable")
            sorted_leaf = leaf[order]
            bounds = np.flatnonzero(np.r_[True, sorted_leaf[1:] != sorted_leaf[:-1], True])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                i = int(sorted_leaf[a])
                key = tree["nodes"][i]["id"] if i >= 0 else UNPLACED
                out.append((key, _pack(table.take(pa.array(order[a:b])))))
        yield from out


class FinishPartitionFn(beam.DoFn):
    """(leaf id, packed tables) -> the leaf's released table by the exact local Mondrian
    (unplaceable rows: suppressed), tagged with its partial certificate."""

    def __init__(self, spec: AnonymizeSpec, arrow_schema: pa.Schema):
        self._c = _Compiled(spec, arrow_schema)

    def setup(self):
        self._c.setup()

    def process(self, element, tree: dict, ranges: dict):
        pid, tables = element
        c = self._c
        with value_free_errors("anonymize: local Mondrian"):
            table = pa.concat_tables([_unpack(t) for t in tables])
            enc = c.encode(table)
            spans = rounds.global_ranges(c.dims, ranges)
            if pid == UNPLACED:
                classes = np.full(table.num_rows, SUPPRESSED, dtype=np.int64)
            else:
                classes, _ = mondrian(c.dims, enc, c.rule, spans)
                if pid == tree["top_up"]:
                    classes = suppress_smallest(classes)
            released, partial = generalize(table, c.dims, enc, classes, c.spec, spans, c.out_schema)
            partial["partitions"] = int(pid != UNPLACED)
        yield released
        yield beam.pvalue.TaggedOutput(CERTIFICATE, partial)


class EnforceKAnonymity(beam.PTransform):
    """Protected tables -> (released tables, one JSON certificate line)."""

    def __init__(self, spec: AnonymizeSpec, arrow_schema: pa.Schema):
        super().__init__()
        self._spec, self._schema = spec, arrow_schema

    def expand(self, rows):
        spec, schema = self._spec, self._schema
        dims = dimensions(spec, schema)
        rule = rule_of(spec)
        l = spec.l_diversity.l if spec.l_diversity else None  # noqa: E741
        rows = rows | "Pack" >> beam.Map(_pack)  # every round reads the records
        ranges = rows | "GlobalRanges" >> beam.CombineGlobally(RangesFn(spec, schema))
        ranges_si = beam.pvalue.AsSingleton(ranges)
        tree = ranges | "RootPartition" >> beam.Map(
            lambda r: rounds.root_tree(dims, r, rule, spec.local_rows)
        )
        for r in range(spec.rounds):
            stats = (
                rows
                | f"KeyPartitions{r}"
                >> beam.ParDo(PartitionStatsFn(spec, schema), beam.pvalue.AsSingleton(tree))
                | f"PartitionStats{r}" >> beam.CombinePerKey(MergeStatsFn(l))
                | f"CollectStats{r}" >> beam.combiners.ToList()
            )
            tree = tree | f"Cut{r}" >> beam.Map(
                lambda t, st, rg: rounds.commit(t, sorted(st), dims, rule, rg, spec.local_rows),
                beam.pvalue.AsSingleton(stats),
                ranges_si,
            )
        tree = tree | "TopUp" >> beam.Map(
            lambda t, rg: rounds.choose_top_up(t, rule, rg), ranges_si
        )
        tree_si = beam.pvalue.AsSingleton(tree)
        finished = (
            rows
            | "KeyLeaves" >> beam.ParDo(KeyLeafFn(spec, schema), tree_si)
            | "GroupLeaves" >> beam.GroupByKey()
            | "FinishLeaves"
            >> beam.ParDo(FinishPartitionFn(spec, schema), tree_si, ranges_si).with_outputs(
                CERTIFICATE, main="released"
            )
        )
        certificate = (
            finished[CERTIFICATE]
            | "MergeCertificates"
            >> beam.CombineGlobally(lambda parts: merge_partials(parts, spec.quasi_identifiers))
            | "Certificate" >> beam.Map(lambda p: json.dumps({CERTIFICATE_LINE: finish(p, spec)}))
        )
        return finished.released, certificate
