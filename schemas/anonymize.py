"""The `anonymize:` section of a run config: the k-anonymous release Mondrian must enforce.

Quasi-identifiers are output columns (read after the column actions); a non-numeric one needs
a generalization hierarchy in ARX's CSV format (`value;level1;...;*`, one leaf per line),
parsed here so that a bad file fails at load time naming the file and the line (exit 2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from privgate.errors import ConfigError
from schemas.columns import Schema
from schemas.kit import Node, read_file, resolve_path

NUMERIC_OUTPUTS = ("interval", "lower", "midpoint")
NUMERIC_TYPES = ("int", "float", "date")
HIERARCHY_TYPES = ("string", "bool")


@dataclass(frozen=True)
class HierarchySpec:
    """A generalization hierarchy: one row per leaf, `(leaf, level1, ..., top)`.

    Every row has the same number of levels, a node has one parent, and every row ends in
    the same top node.
    """

    path: str
    rows: tuple[tuple[str, ...], ...]

    @property
    def leaves(self) -> tuple[str, ...]:
        return tuple(r[0] for r in self.rows)


@dataclass(frozen=True)
class LDiversityRule:
    """`anonymize.l_diversity`: every released class holds >= l distinct `sensitive` values."""

    sensitive: str
    l: int  # noqa: E741 (the usual name)


@dataclass(frozen=True)
class AnonymizeSpec:
    """The `anonymize:` section.

    Attributes:
        k: the smallest class size of the release.
        quasi_identifiers: output columns an attacker may know, in config order (ties in the
            cut rule go to the earlier one).
        hierarchies: quasi-identifier -> its hierarchy (every non-numeric one has one).
        l_diversity: the sensitive column and l, or None.
        max_suppression: share of records that may be suppressed (QIs nulled).
        numeric_output: how a numeric QI is released: "[lo, hi]" string, lower bound, midpoint.
        local_rows: partitions of at most this many records are finished in one worker's
            memory by the exact Mondrian; larger ones are cut by distributed rounds.
        rounds: the number of distributed rounds the Beam graph holds.
    """

    k: int
    quasi_identifiers: tuple[str, ...]
    hierarchies: tuple[tuple[str, HierarchySpec], ...] = ()
    l_diversity: LDiversityRule | None = None
    max_suppression: float = 0.01
    numeric_output: str = "interval"
    local_rows: int = 100_000
    rounds: int = 12

    def hierarchy(self, column: str) -> HierarchySpec | None:
        return dict(self.hierarchies).get(column)

    def released_output_type(self, column: str, declared: str) -> str:
        """The type `column` is released as (`declared`: its output type before Mondrian): a
        hierarchy node or an `interval` is a string, a `midpoint` of a non-date a float."""
        if column not in self.quasi_identifiers:
            return declared
        if self.hierarchy(column) is not None or self.numeric_output == "interval":
            return "string"
        if self.numeric_output == "midpoint" and declared != "date":
            return "float"
        return declared

    def to_dict(self) -> dict:
        """JSON-ready form (the manifest's certificate carries it)."""
        return {
            "k": self.k,
            "quasi_identifiers": list(self.quasi_identifiers),
            "hierarchies": {q: h.path for q, h in self.hierarchies},
            "l_diversity": None
            if self.l_diversity is None
            else {"sensitive": self.l_diversity.sensitive, "l": self.l_diversity.l},
            "max_suppression": self.max_suppression,
            "numeric_output": self.numeric_output,
        }


_KEYS = (
    "k",
    "quasi_identifiers",
    "hierarchies",
    "l_diversity",
    "max_suppression",
    "numeric_output",
    "local_rows",
    "rounds",
)


def parse_hierarchy(path: str) -> HierarchySpec:
    """Parse an ARX hierarchy CSV file (`value;level1;...;top`, `;`-separated, UTF-8).

    Raises:
        ConfigError: naming the file and the line of the first problem.
    """
    raw = read_file(path, "hierarchy")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not UTF-8 text") from None
    rows: list[tuple[str, ...]] = []
    parent: dict[tuple[int, str], str] = {}
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = tuple(f.strip() for f in line.split(";"))
        where = f"line {n}"
        if len(fields) < 2:
            raise ConfigError(path, where, "needs a value and at least one level (value;...;*)")
        if any(not f for f in fields):
            raise ConfigError(path, where, "has an empty field")
        if rows and len(fields) != len(rows[0]):
            raise ConfigError(
                path, where, f"has {len(fields)} fields, the first line has {len(rows[0])}"
            )
        if rows and fields[-1] != rows[0][-1]:
            raise ConfigError(path, where, "ends in another top node than the first line")
        if fields[0] in seen:
            raise ConfigError(path, where, "repeats a value of an earlier line")
        for level in range(len(fields) - 1):
            node = (level, fields[level])
            if parent.setdefault(node, fields[level + 1]) != fields[level + 1]:
                raise ConfigError(
                    path, where, f"gives a level-{level} node another parent than before"
                )
        seen.add(fields[0])
        rows.append(fields)
    if not rows:
        raise ConfigError(path, "", "holds no hierarchy lines")
    return HierarchySpec(path, tuple(rows))


def parse_anonymize(data: Any, source: str, schema: Schema) -> AnonymizeSpec:
    """Validate the `anonymize:` section against the schema's output columns.

    Raises:
        ConfigError: naming `anonymize.<key path>` (or a hierarchy file and its line).
    """
    node = Node(data, source, "anonymize", _KEYS)
    k = node.int("k", required=True, minimum=2)
    qis = node.get("quasi_identifiers", required=True)
    if not isinstance(qis, list) or not qis or not all(isinstance(q, str) and q for q in qis):
        raise node.err("quasi_identifiers", "must be a non-empty list of column names")
    if len(set(qis)) != len(qis):
        raise node.err("quasi_identifiers", "must be distinct")
    outputs = {c.name: c for c in schema.output_columns}
    for q in qis:
        if q not in outputs:
            why = "is dropped by the schema" if q in schema.names else "is not a column"
            raise node.err("quasi_identifiers", f"'{q}' {why}; it must be an output column")

    hier_node = node.child("hierarchies", None) or Node({}, source, "anonymize.hierarchies", None)
    hierarchies = []
    for col, rel in hier_node.data.items():
        if col not in qis:
            raise hier_node.err(str(col), "is not one of anonymize.quasi_identifiers")
        if not isinstance(rel, str) or not rel:
            raise hier_node.err(col, "must be a path to an ARX hierarchy CSV file")
        path = resolve_path(source, rel)
        if not os.path.isfile(path):
            raise hier_node.err(col, "file not found")
        hierarchies.append((col, parse_hierarchy(path)))
    with_hierarchy = {c for c, _ in hierarchies}
    for q in qis:
        otype = outputs[q].output_type
        if q in with_hierarchy:
            if otype not in HIERARCHY_TYPES:
                raise hier_node.err(q, f"a {otype} column is cut by its range, not a hierarchy")
        elif otype not in NUMERIC_TYPES:
            raise hier_node.err(q, f"is required for a {otype} quasi-identifier")

    ldiv = None
    ln = node.child("l_diversity", ("sensitive", "l"))
    if ln is not None:
        sens = ln.str("sensitive", required=True)
        if sens in qis:
            raise ln.err("sensitive", "cannot also be a quasi-identifier")
        if sens not in outputs:
            raise ln.err("sensitive", f"'{sens}' must be an output column")
        ldiv = LDiversityRule(sens, ln.int("l", required=True, minimum=2))

    return AnonymizeSpec(
        k=k,
        quasi_identifiers=tuple(qis),
        hierarchies=tuple(sorted(hierarchies)),
        l_diversity=ldiv,
        max_suppression=node.score("max_suppression", 0.01, zero_ok=True),
        numeric_output=node.str("numeric_output", "interval", choices=NUMERIC_OUTPUTS),
        local_rows=node.int("local_rows", 100_000, minimum=1),
        rounds=node.int("rounds", 12, minimum=0),
    )
