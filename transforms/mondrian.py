"""The Beam wiring of enforced k-anonymity: Mondrian's distributed rounds, then local finishes.

`EnforceKAnonymity` takes the protected tables and returns the released tables and one JSON
certificate line. The records are written once to encrypted spill files under the run's
`_work/` (`transforms.spill`) while their global ranges are combined; every later stage
reads the files and passes references, so the in-process runners hold file names and
statistics, never the records (a PCollection read by several stages, and a GroupByKey's
values, stay in their memory). Each round reads the QI columns of every file and merges the
statistics of partitions still being cut with a per-key combiner; the new cut tree reaches the
next round as a side input. Then each file's rows are sorted by leaf into one spill file (a
row group per leaf), the row-group references are grouped by leaf, and each leaf is read and
finished by the exact local Mondrian (`transforms.anonymize`). Every merge is a sum, a minimum
or a bounded sorted set, so the release does not depend on the worker count.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.transforms import window
from apache_beam.utils.windowed_value import WindowedValue

from privgate.errors import value_free_errors
from schemas.anonymize import AnonymizeSpec
from transforms import progress, spill
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
RANGES = "ranges"
UNPLACED = ""  # the group-by key of rows with a null QI or a value outside its hierarchy
ROLL_ROWS = 1 << 18  # rows per spill file of records: what one worker holds to sort by leaf


@dataclass(frozen=True)
class SpillPlace:
    """Where the spill files go and how workers open their key: a directory under the run's
    `_work/`, the keyring *path* and the KEK context (no secret)."""

    directory: str
    keyring_path: str
    kek_context: str = ""


class _Compiled:
    """What every DoFn derives from the spec: dimensions, rule, sensitive column, and the
    spill files' key (opened in `setup()` from the keyring path)."""

    def __init__(self, spec: AnonymizeSpec, arrow_schema: pa.Schema, work: SpillPlace):
        self.spec, self.arrow_schema, self.work = spec, arrow_schema, work

    def setup(self):
        self.dims = dimensions(self.spec, self.arrow_schema)
        self.rule = rule_of(self.spec)
        ld = self.spec.l_diversity
        self.sensitive = ld.sensitive if ld else None
        self.l = ld.l if ld else None
        self.out_schema = released_schema(self.arrow_schema, self.spec)
        self.columns = [d.name for d in self.dims] + ([self.sensitive] if self.sensitive else [])
        self.kms = spill.open_kms(self.work.keyring_path, self.work.kek_context)

    def encode(self, table: pa.Table):
        return encode(table, self.dims, self.sensitive)


class _MondrianFn(beam.DoFn):
    def __init__(self, spec: AnonymizeSpec, arrow_schema: pa.Schema, work: SpillPlace):
        self._c = _Compiled(spec, arrow_schema, work)

    def setup(self):
        self._c.setup()


class SpillRowsFn(_MondrianFn):
    """Protected tables -> spill file paths (a file per bundle, rolled every ROLL_ROWS rows),
    each table's global range statistics tagged RANGES."""

    def start_bundle(self):
        self._writer = None

    def process(self, table: pa.Table):
        c = self._c
        with value_free_errors("anonymize: staging the records"):
            part = rounds.ranges_stats(c.dims, c.encode(table), c.l)
            if table.num_rows:
                if self._writer is None:
                    self._writer = spill.SpillWriter(
                        c.kms, table.schema, f"{c.work.directory}/rows"
                    )
                self._writer.write(table)
        progress.add(anonymized=table.num_rows)
        yield beam.pvalue.TaggedOutput(RANGES, part)
        if self._writer is not None and self._writer.rows >= ROLL_ROWS:
            yield self._close()

    def _close(self) -> str:
        with value_free_errors("anonymize: staging the records"):
            path, self._writer = self._writer.close(), None
        return path

    def finish_bundle(self):
        if self._writer is not None:
            gw = window.GlobalWindow()
            yield WindowedValue(self._close(), gw.max_timestamp(), (gw,))


class MergeRangesFn(beam.CombineFn):
    """Per-table global ranges merged (sums, minima, maxima, bounded sets)."""

    def __init__(self, n_dims: int, l):  # noqa: E741
        self._n, self._l = n_dims, l

    def create_accumulator(self):
        return rounds.merge_ranges([], self._n, self._l)

    def add_input(self, acc, part):
        return rounds.merge_ranges([acc, part], self._n, self._l)

    def merge_accumulators(self, accs):
        return rounds.merge_ranges(accs, self._n, self._l)

    def extract_output(self, acc):
        return acc


class PartitionStatsFn(_MondrianFn):
    """Spill file -> (partition id, statistics) for each partition still being cut, read a
    batch of QI columns at a time (`round_no`: shown in the progress line)."""

    def __init__(
        self, spec: AnonymizeSpec, arrow_schema: pa.Schema, work: SpillPlace, round_no: int
    ):
        super().__init__(spec, arrow_schema, work)
        self._round = round_no

    def process(self, path: str, tree: dict):
        nodes = tree["nodes"]
        if not any(n.get("active") for n in nodes):
            return
        progress.reach(anonymize_round=self._round)
        c = self._c
        merged: dict[int, dict] = {}
        with value_free_errors("anonymize: partition statistics"):
            for table in spill.read_batches(c.kms, path, c.columns):
                enc = c.encode(table)
                leaf = rounds.assign(tree, c.dims, enc)
                for i in np.unique(leaf[leaf >= 0]).tolist():
                    if nodes[i].get("active"):
                        st = rounds.partition_stats(
                            c.dims, enc, np.flatnonzero(leaf == i), nodes[i]["region"], c.l
                        )
                        merged[i] = rounds.merge_stats([merged[i], st], c.l) if i in merged else st
        for i, st in merged.items():
            yield nodes[i]["id"], st


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


class KeyLeafFn(_MondrianFn):
    """Spill file -> its rows sorted by leaf into a new spill file, a row group per leaf ->
    (leaf id, (file, row groups)); unplaceable rows under `UNPLACED` (one group, at most
    max_suppression of the records in a run that succeeds). Holds one file's rows."""

    def process(self, path: str, tree: dict):
        c = self._c
        out = []
        with value_free_errors("anonymize: partitions"):
            table = spill.read_groups(c.kms, path)
            leaf = rounds.assign(tree, c.dims, c.encode(table))
            order = np.argsort(leaf, kind="stable")
            sorted_leaf = leaf[order]
            bounds = np.flatnonzero(np.r_[True, sorted_leaf[1:] != sorted_leaf[:-1], True])
            writer = spill.SpillWriter(c.kms, table.schema, f"{c.work.directory}/leaves")
            try:
                for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                    i = int(sorted_leaf[a])
                    key = tree["nodes"][i]["id"] if i >= 0 else UNPLACED
                    groups = writer.write(table.take(pa.array(order[a:b])))
                    out.append((key, (writer.path, groups)))
            finally:
                writer.close()
        yield from out


class FinishPartitionFn(_MondrianFn):
    """(leaf id, row-group references) -> the leaf's released table by the exact local Mondrian,
    tagged with its partial certificate. Holds one leaf; the unplaceable rows (suppressed,
    however many) are released one spill file's share at a time."""

    def process(self, element, tree: dict, ranges: dict):
        pid, pieces = element
        c = self._c
        by_file: dict[str, list[int]] = defaultdict(list)
        for path, groups in pieces:
            by_file[path].extend(groups)
        spans = rounds.global_ranges(c.dims, ranges)
        if pid == UNPLACED:
            parts = []
            for path in sorted(by_file):
                with value_free_errors("anonymize: suppressing unplaceable records"):
                    table = spill.read_groups(c.kms, path, sorted(by_file[path]))
                    classes = np.full(table.num_rows, SUPPRESSED, dtype=np.int64)
                    released, partial = generalize(
                        table, c.dims, c.encode(table), classes, c.spec, spans, c.out_schema
                    )
                parts.append(partial)
                progress.add(released=released.num_rows)
                yield released
            partial = merge_partials(parts, c.spec.quasi_identifiers)
            partial["partitions"] = 0
            yield beam.pvalue.TaggedOutput(CERTIFICATE, partial)
            return
        with value_free_errors("anonymize: local Mondrian"):
            table = pa.concat_tables(
                [spill.read_groups(c.kms, p, sorted(by_file[p])) for p in sorted(by_file)]
            )
            enc = c.encode(table)
            classes, _ = mondrian(c.dims, enc, c.rule, spans)
            if pid == tree["top_up"]:
                classes = suppress_smallest(classes)
            released, partial = generalize(table, c.dims, enc, classes, c.spec, spans, c.out_schema)
            partial["partitions"] = 1
        progress.add(released=released.num_rows)
        yield released
        yield beam.pvalue.TaggedOutput(CERTIFICATE, partial)


class EnforceKAnonymity(beam.PTransform):
    """Protected tables -> (released tables, one JSON certificate line).

    Args:
        spec: the `anonymize:` section.
        arrow_schema: the protected tables' schema.
        work: where the encrypted spill files go (a directory under the run's `_work/`) and
            the keyring path their key is opened from.
    """

    def __init__(self, spec: AnonymizeSpec, arrow_schema: pa.Schema, work: SpillPlace):
        super().__init__()
        self._spec, self._schema, self._work = spec, arrow_schema, work

    def expand(self, rows):
        spec, schema, work = self._spec, self._schema, self._work
        dims = dimensions(spec, schema)
        rule = rule_of(spec)
        l = spec.l_diversity.l if spec.l_diversity else None  # noqa: E741
        staged = rows | "SpillRecords" >> beam.ParDo(SpillRowsFn(spec, schema, work)).with_outputs(
            RANGES, main="files"
        )
        files = staged.files  # every later stage reads the records from these files
        ranges = staged[RANGES] | "GlobalRanges" >> beam.CombineGlobally(
            MergeRangesFn(len(dims), l)
        )
        ranges_si = beam.pvalue.AsSingleton(ranges)
        tree = ranges | "RootPartition" >> beam.Map(
            lambda r: rounds.root_tree(dims, r, rule, spec.local_rows)
        )
        for r in range(spec.rounds):
            stats = (
                files
                | f"KeyPartitions{r}"
                >> beam.ParDo(
                    PartitionStatsFn(spec, schema, work, r + 1), beam.pvalue.AsSingleton(tree)
                )
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
            files
            | "SortByLeaf" >> beam.ParDo(KeyLeafFn(spec, schema, work), tree_si)
            | "GroupLeaves" >> beam.GroupByKey()
            | "FinishLeaves"
            >> beam.ParDo(FinishPartitionFn(spec, schema, work), tree_si, ranges_si).with_outputs(
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
