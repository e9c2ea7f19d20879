"""The `ldp` action's options: epsilon, public bounds or categories, and the mechanism name.

Only the shape is checked here; whether the named mechanism exists and accepts these
parameters is checked where a run's config is loaded (`pipelines.config`), which knows the
mechanism registry (`transforms.ldp.mechanisms`). `LdpSpec` carries one column's parameters
to the mechanisms and writes and reads them as Parquet field metadata (`privgate.ldp.*`).

`out_of_domain` is an option of the contract stage, not of the mechanism: by default (`map`)
a string outside `categories` is reported in the `other` bucket (declared, or "other") and
NaN/infinities are taken into the bounds, because quarantining such a row would decide on the
private value and count it in the clear manifest; `quarantine` asks for exactly that.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from schemas.kit import Node

VALUE_TYPES = ("int", "float", "string", "bool")
METADATA_PREFIX = "privgate.ldp."
METADATA_VERSION = "1"
_FIXED = ("type", "mechanism", "epsilon")  # LdpSpec fields every column has
OUT_OF_DOMAIN = ("map", "quarantine")  # `out_of_domain:` values; the first is the default
DEFAULT_OTHER = "other"  # the bucket of out-of-list strings when `other:` is not declared
CONTRACT_OPTIONS = ("out_of_domain",)  # ldp options the contract stage reads, not the mechanism


def category_domain(categories: Sequence | None, other: str | None = None) -> tuple[str, ...]:
    """The public category list a string column reports into: `categories`, plus `other`
    appended when it names a bucket not already listed.

    Args:
        categories: the schema's categories.
        other: optional bucket for values outside `categories`.
    Returns:
        tuple of category strings.
    Raises:
        ValueError: fewer than 2 categories, or duplicates.
    """
    if not categories:
        raise ValueError("categories must be a non-empty list")
    dom = [str(c) for c in categories]
    if other is not None and str(other) not in dom:
        dom.append(str(other))
    if len(set(dom)) != len(dom):
        raise ValueError("categories must be distinct")
    if len(dom) < 2:
        raise ValueError("at least 2 categories are needed")
    return tuple(dom)


@dataclass(frozen=True, kw_only=True)
class LdpSpec:
    """One ldp column's parameters: what its mechanism is built from.

    Values are checked by the mechanism built from it (`transforms.ldp.mechanisms`), not
    here. A new mechanism parameter is one more optional field (and its parser in
    `parse_ldp`); `parameters()` and the noise domain pick it up.

    Attributes:
        type: column type: int, float, string or bool.
        mechanism: registry name, or None for the type's default.
        epsilon: privacy parameter (> 0).
        bounds: (L, U) for int/float columns.
        categories: category list for string columns.
        other: optional bucket for out-of-list string values.
    """

    type: str
    mechanism: str | None = None
    epsilon: float
    bounds: tuple | None = None
    categories: tuple | None = None
    other: str | None = None

    def __post_init__(self):
        for name in ("bounds", "categories"):  # frozen means frozen: no shared lists
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    def parameters(self) -> tuple[str, ...]:
        """The names of the optional parameters this spec sets, in field order."""
        return tuple(
            f.name
            for f in fields(self)
            if f.name not in _FIXED and getattr(self, f.name) is not None
        )

    def to_metadata(self, mechanism) -> dict[str, str]:
        """Parquet field metadata describing the column (all public parameters, no keys).

        Args:
            mechanism: the mechanism built from this spec
                (`transforms.ldp.mechanisms.build_mechanism`): its resolved name, epsilon,
                estimator, noise and output grid are written.
        Returns:
            {"privgate.ldp.version", ".type", ".mechanism", ".epsilon", ".estimator",
            ".noise_std", and ".bounds" and ".grid" (numeric) or ".categories" and ".other"
            (string)}: strings; lists and the grid are JSON.
        Raises:
            ValueError: invalid categories.
        """
        p = METADATA_PREFIX
        md = {
            p + "version": METADATA_VERSION,
            p + "type": self.type,
            p + "mechanism": mechanism.name,
            p + "epsilon": repr(mechanism.epsilon),
            p + "estimator": mechanism.estimator,
            p + "noise_std": repr(math.sqrt(mechanism.variance())),
        }
        if self.type in ("int", "float"):
            bounds = [int(b) if self.type == "int" else float(b) for b in self.bounds]
            md[p + "bounds"] = json.dumps(bounds)
            md[p + "grid"] = json.dumps(mechanism.grid().to_dict())
        if self.type == "string":
            md[p + "categories"] = json.dumps(list(category_domain(self.categories, self.other)))
            if self.other is not None:
                md[p + "other"] = str(self.other)
        return md

    @classmethod
    def from_metadata(cls, metadata: Mapping) -> LdpSpec:
        """The spec `to_metadata` wrote (str or bytes keys and values).

        Args:
            metadata: a field's metadata, e.g. `table.schema.field("age").metadata`.
        Returns:
            the LdpSpec; its categories already include `other`.
        Raises:
            ValueError: not an ldp column, or an unknown metadata version.
        """
        md = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in (metadata or {}).items()
        }
        p = METADATA_PREFIX
        if p + "mechanism" not in md:
            raise ValueError("field metadata does not describe an ldp column")
        if md.get(p + "version") != METADATA_VERSION:
            raise ValueError("unsupported ldp metadata version")
        cats = md.get(p + "categories")
        bounds = md.get(p + "bounds")
        return cls(
            type=md[p + "type"],
            mechanism=md[p + "mechanism"],
            epsilon=float(md[p + "epsilon"]),
            bounds=None if bounds is None else json.loads(bounds),
            categories=None if cats is None else json.loads(cats),
            other=md.get(p + "other"),
        )


def spec_from_params(ctype: str, params: Mapping) -> LdpSpec:
    """The mechanism's parameters among a column's parsed ldp options (`parse_ldp`)."""
    return LdpSpec(type=ctype, **{k: v for k, v in params.items() if k not in CONTRACT_OPTIONS})


def quarantines_out_of_domain(params: Mapping) -> bool:
    """The column asks to quarantine values outside its domain (`out_of_domain: quarantine`)."""
    return params.get("out_of_domain") == "quarantine"


def parse_ldp(node: Node, ctype: str) -> dict:
    """Validate an ldp column's options.

    A string column without `other` gets `other: "other"` unless `out_of_domain: quarantine`
    (the bucket is part of the mechanism's domain, see the module docstring).

    Args:
        node: the column mapping (keys already checked).
        ctype: the column's declared type.
    Returns:
        {"epsilon": float, and "mechanism", "bounds", "categories", "other",
        "out_of_domain" when given; "other" also by default}.
    Raises:
        ConfigError: naming the file and key path.
    """
    if ctype not in VALUE_TYPES:
        raise node.err("type", "ldp applies to int, float, string and bool columns")
    out: dict[str, Any] = {"epsilon": float(node.number("epsilon", positive=True))}
    if node.has("mechanism"):
        out["mechanism"] = node.str("mechanism")
    if node.has("bounds"):
        b = node.get("bounds")
        if not isinstance(b, list) or len(b) != 2:
            raise node.err("bounds", "must be [lower, upper]")
        lo, hi = (node.number("bounds", v) for v in b)
        if ctype == "int" and not all(isinstance(v, int) for v in b):
            raise node.err("bounds", "must be integers for an int column")
        if not lo < hi:
            raise node.err("bounds", "lower must be < upper")
        out["bounds"] = [lo, hi]
    if node.has("categories"):
        cats = node.get("categories")
        if (
            not isinstance(cats, list)
            or len(cats) < 2
            or not all(isinstance(c, str) and c for c in cats)
            or len(set(cats)) != len(cats)
        ):
            raise node.err("categories", "must be a list of at least 2 distinct strings")
        out["categories"] = list(cats)
    if node.has("other"):
        out["other"] = node.str("other")
    if node.has("out_of_domain"):
        out["out_of_domain"] = node.str("out_of_domain", choices=OUT_OF_DOMAIN)
        if ctype == "bool":
            raise node.err("out_of_domain", "a bool column has no value outside its domain")
    if quarantines_out_of_domain(out) and "other" in out:
        raise node.err(
            "out_of_domain", "quarantine refuses out-of-list values; other would map them"
        )
    if ctype == "string" and not quarantines_out_of_domain(out):
        out.setdefault("other", DEFAULT_OTHER)
    return out


def note(col: dict) -> str:
    """The report's one-line summary of an ldp column's options."""
    ldp = col.get("ldp") or {}
    mech = ldp.get("mechanism") or col.get("mechanism") or ""
    parts = [f"ε = {col.get('epsilon')}", mech]
    if col.get("bounds"):
        parts.append(f"bounds {col['bounds'][0]}–{col['bounds'][1]}")
    if col.get("categories"):
        parts.append(f"{len(col['categories'])} categories")
    if quarantines_out_of_domain(col):
        parts.append("out-of-domain quarantined")
    return ", ".join(p for p in parts if p)
