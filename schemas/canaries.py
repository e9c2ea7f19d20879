"""The `canaries:` section of a run config: how many candidate canaries, of which kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.columns import Schema
from schemas.kit import Node

KINDS = ("mislabeled", "secret")
MAX_COUNT = 1_000_000


@dataclass(frozen=True)
class CanarySpec:
    """`canaries:` in the run config.

    Attributes:
        count: m, the number of candidates; each is planted iff its secret coin says so.
        kind: `mislabeled` (the label column set against the data) or `secret` (a
            high-entropy string in `field`).
        label: the label column of mislabeled canaries.
        field: the string column that carries a secret canary's secret.
        references: reference secrets drawn from the same format (secret canaries' exposure).
        sample: input-head rows whose per-column marginals the candidates are drawn from.
    """

    count: int
    kind: str
    label: str | None = None
    field: str | None = None
    references: int = 1000
    sample: int = 1000

    def to_dict(self) -> dict:
        d = {"count": self.count, "kind": self.kind, "sample": self.sample}
        if self.kind == "mislabeled":
            d["label"] = self.label
        else:
            d.update(field=self.field, references=self.references)
        return d


def parse_canaries(data: Any, source: str, schema: Schema) -> CanarySpec:
    """Validate the `canaries:` mapping against the schema. Raises ConfigError (file + key)."""
    node = Node(
        data, source, "canaries", ("count", "kind", "label", "field", "references", "sample")
    )
    count = node.int("count", required=True, minimum=2)
    if count > MAX_COUNT:
        raise node.err("count", f"must be at most {MAX_COUNT:,}")
    kind = node.str("kind", required=True, choices=KINDS)
    wanted, other = ("label", "field") if kind == "mislabeled" else ("field", "label")
    if node.has(other):
        raise node.err(other, f"{kind} canaries take `{wanted}`, not `{other}`")
    name = node.str(wanted, required=True)
    try:
        col = schema.column(name)
    except KeyError:
        raise node.err(wanted, "must name a column declared in the schema") from None
    if col.output_type is None:
        raise node.err(wanted, "names a dropped column: the canary would not be released")
    if kind == "mislabeled" and col.type not in ("string", "bool", "int"):
        raise node.err("label", "the label column must be a string, bool or int column")
    if kind == "secret" and col.type != "string":
        raise node.err("field", "a secret canary's field must be a string column")
    if kind == "secret" and name == schema.record_key:
        raise node.err("field", "the record key cannot carry the secret")
    if kind == "mislabeled" and node.has("references"):
        raise node.err("references", "only secret canaries take references")
    return CanarySpec(
        count=count,
        kind=kind,
        label=name if kind == "mislabeled" else None,
        field=name if kind == "secret" else None,
        references=node.int("references", 1000, minimum=1),
        sample=node.int("sample", 1000, minimum=1),
    )
