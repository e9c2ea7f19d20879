"""The `ldp` action's options: epsilon, public bounds or categories, and the mechanism name.

Only the shape is checked here; whether the named mechanism exists and accepts these
parameters is checked where a run's config is loaded (`pipelines.config`), which knows the
mechanism registry (`transforms.ldp`).
"""

from __future__ import annotations

from typing import Any

from schemas.kit import Node

VALUE_TYPES = ("int", "float", "string", "bool")


def parse_ldp(node: Node, ctype: str) -> dict:
    """Validate an ldp column's options.

    Args:
        node: the column mapping (keys already checked).
        ctype: the column's declared type.
    Returns:
        {"epsilon": float, and "mechanism", "bounds", "categories", "other" when given}.
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
    return ", ".join(p for p in parts if p)
