"""The `gates:` section of a run config: which governance checks a run must pass."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from privgate.errors import ConfigError
from schemas.columns import Schema
from schemas.kit import Node, resolve_path


@dataclass(frozen=True)
class KAnonymitySpec:
    """`gates.k_anonymity`: every class over the quasi-identifiers has >= k records."""

    quasi_identifiers: tuple[str, ...]
    k: int


@dataclass(frozen=True)
class LDiversitySpec:
    """`gates.l_diversity`: every class has >= l distinct values of `sensitive`."""

    sensitive: str
    l: int  # noqa: E741


@dataclass(frozen=True)
class GatesSpec:
    """The `gates:` section of a run config.

    Attributes:
        residual_pii_max: largest tolerated share of sampled output values with PII found;
            None when not configured (the rate is reported, not gated).
        k_anonymity: quasi-identifiers and k, or None.
        l_diversity: sensitive column and l (needs k_anonymity's quasi-identifiers), or None.
        expectations: absolute path of a GX suite JSON run on the output, or None.
        input_expectations: absolute path of a GX suite JSON run on the input, or None.
    """

    residual_pii_max: float | None = None
    k_anonymity: KAnonymitySpec | None = None
    l_diversity: LDiversitySpec | None = None
    expectations: str | None = None
    input_expectations: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready form (for the manifest and the report)."""
        return {
            "residual_pii_max": self.residual_pii_max,
            "k_anonymity": None
            if self.k_anonymity is None
            else {
                "quasi_identifiers": list(self.k_anonymity.quasi_identifiers),
                "k": self.k_anonymity.k,
            },
            "l_diversity": None
            if self.l_diversity is None
            else {"sensitive": self.l_diversity.sensitive, "l": self.l_diversity.l},
            "expectations": self.expectations,
            "input_expectations": self.input_expectations,
        }


_GATE_KEYS = (
    "residual_pii_max",
    "k_anonymity",
    "l_diversity",
    "expectations",
    "input_expectations",
)


def _suite_path(node: Node, key: str) -> str | None:
    v = node.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise node.err(key, "must be a non-empty path to a suite JSON file")
    resolved = resolve_path(node.source, v)
    if "://" not in resolved and not os.path.isfile(resolved):
        raise node.err(key, "file not found")
    return resolved


def parse_gates(data: Any, source: str = "<config>") -> GatesSpec:
    """Validate the `gates:` section of a run config.

    Args:
        data: the section's value (a mapping).
        source: the config file (error messages; base for relative suite paths).
    Returns:
        GatesSpec; suite paths resolved against the config file's directory.
    Raises:
        ConfigError: naming `gates.<key path>` for unknown keys and bad values.
    """
    node = Node(data, source, "gates", _GATE_KEYS)
    pii_max = node.get("residual_pii_max")
    if pii_max is not None:
        if (
            isinstance(pii_max, bool)
            or not isinstance(pii_max, int | float)
            or not math.isfinite(pii_max)
            or not 0 <= pii_max <= 1
        ):
            raise node.err("residual_pii_max", "must be a number in [0, 1]")
        pii_max = float(pii_max)

    kanon = None
    kn = node.child("k_anonymity", ("quasi_identifiers", "k"))
    if kn is not None:
        qis = kn.get("quasi_identifiers")
        if not isinstance(qis, list) or not qis or not all(isinstance(q, str) and q for q in qis):
            raise kn.err("quasi_identifiers", "must be a non-empty list of column names")
        if len(set(qis)) != len(qis):
            raise kn.err("quasi_identifiers", "must be distinct")
        kanon = KAnonymitySpec(tuple(qis), kn.int("k", required=True, minimum=2))

    ldiv = None
    ln = node.child("l_diversity", ("sensitive", "l"))
    if ln is not None:
        sens = ln.str("sensitive", required=True)
        lval = ln.int("l", required=True, minimum=2)
        if kanon is None:
            raise ConfigError(
                source,
                ln.path,
                "needs gates.k_anonymity (its quasi_identifiers define the classes)",
            )
        if sens in kanon.quasi_identifiers:
            raise ln.err("sensitive", "cannot also be a quasi-identifier")
        ldiv = LDiversitySpec(sens, lval)

    return GatesSpec(
        residual_pii_max=pii_max,
        k_anonymity=kanon,
        l_diversity=ldiv,
        expectations=_suite_path(node, "expectations"),
        input_expectations=_suite_path(node, "input_expectations"),
    )


def validate_against_schema(gates: GatesSpec, schema: Schema, source: str) -> None:
    """Check that the gates name output columns of the schema.

    Args:
        gates: the parsed gates.
        schema: the dataset schema.
        source: the config file (error messages).
    Raises:
        ConfigError: a quasi-identifier or the sensitive column is undeclared or dropped.
    """
    outputs = {c.name for c in schema.output_columns}
    declared = set(schema.names)

    def why(col: str) -> str:
        return "is dropped by the schema" if col in declared else "is not a column of the schema"

    if gates.k_anonymity is not None:
        for q in gates.k_anonymity.quasi_identifiers:
            if q not in outputs:
                raise ConfigError(
                    source,
                    "gates.k_anonymity.quasi_identifiers",
                    f"'{q}' {why(q)}; quasi-identifiers must be output columns",
                )
    if gates.l_diversity is not None:
        s = gates.l_diversity.sensitive
        if s not in outputs:
            raise ConfigError(
                source,
                "gates.l_diversity.sensitive",
                f"'{s}' {why(s)}; it must be an output column",
            )
