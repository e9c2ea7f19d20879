"""The validation kit every section of the policy language is parsed with.

A `Node` is a mapping being validated together with its file and key path, so every
`ConfigError` names both (`schemas/x.yaml: columns.age.bucket: must be a positive integer`).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from typing import Any

import yaml

from privgate.errors import ConfigError

NAME_RE = re.compile(r"^[a-z0-9_-]+$")
ENTITY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def join(path: str, key: str) -> str:
    """`columns.age` + `bucket` -> `columns.age.bucket`; `` + `x` -> `x`."""
    return f"{path}.{key}" if path else str(key)


class Node:
    """A mapping being validated, with its file and key path for error messages."""

    def __init__(self, data: Any, source: str, path: str, allowed: tuple[str, ...] | None):
        """`allowed`: the keys the mapping may have (None: any; a caller checked them)."""
        if not isinstance(data, dict):
            raise ConfigError(source, path, "must be a mapping")
        unknown = [] if allowed is None else sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ConfigError(
                source,
                join(path, unknown[0]),
                f"unknown key (allowed: {', '.join(allowed)})",
            )
        self.data, self.source, self.path = data, source, path

    def err(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, join(self.path, key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None, required: bool = False) -> Any:
        if key not in self.data:
            if required:
                raise self.err(key, "is required")
            return default
        return self.data[key]

    def str(self, key, default=None, required=False, choices=None, pattern=None) -> str | None:
        v = self.get(key, default, required)
        if v is None:
            return None
        if not isinstance(v, str) or not v:
            raise self.err(key, "must be a non-empty string")
        if choices and v not in choices:
            raise self.err(key, f"must be one of: {', '.join(choices)}")
        if pattern and not pattern.match(v):
            raise self.err(key, f"must match {pattern.pattern}")
        return v

    def int(self, key, default=None, required=False, minimum=0) -> int | None:
        v = self.get(key, default, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.err(
                key,
                "must be a positive integer"
                if minimum == 1
                else f"must be an integer >= {minimum}",
            )
        return v

    def bool(self, key, default=None) -> bool | None:
        v = self.get(key, default)
        if v is not None and not isinstance(v, bool):
            raise self.err(key, "must be true or false")
        return v

    def number(self, key: str, value: Any = None, positive: bool = False) -> float:
        """A number (int or float, not bool) given as `value` or read from `key`."""
        v = self.get(key, required=True) if value is None else value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.err(key, "must be a number")
        if positive and not v > 0:
            raise self.err(key, "must be > 0")
        return v

    def score(self, key: str, default: Any, zero_ok: bool = False) -> float:
        """A score in (0, 1] (or [0, 1] with `zero_ok`)."""
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.err(key, "must be a number between 0 and 1")
        if v > 1 or v < 0 or (v == 0 and not zero_ok):
            raise self.err(
                key,
                "must be a number in (0, 1]" if not zero_ok else "must be a number between 0 and 1",
            )
        return float(v)

    def str_list(self, key: str, default: Any = None) -> tuple[str, ...]:
        """A list of non-empty strings."""
        v = self.get(key, default)
        if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v):
            raise self.err(key, "must be a list of non-empty strings")
        return tuple(v)

    def child(self, key: str, allowed: tuple[str, ...], required=False) -> Node | None:
        v = self.get(key, None, required)
        if v is None:
            return None
        return Node(v, self.source, join(self.path, key), allowed)


def freeze(v: Any) -> Any:
    """A hashable form of nested dicts/lists (frozen dataclasses hold it)."""
    if isinstance(v, dict):
        return tuple((str(k), freeze(x)) for k, x in sorted(v.items()))
    if isinstance(v, list):
        return ("__list__",) + tuple(freeze(x) for x in v)
    return v


def thaw(v: Any) -> Any:
    """The inverse of `freeze`."""
    if isinstance(v, tuple):
        if v and v[0] == "__list__":
            return [thaw(x) for x in v[1:]]
        return {k: thaw(x) for k, x in v}
    return v


def read_file(path: str, what: str) -> bytes:
    """A config file's bytes; ConfigError `cannot read <what>: <reason>` naming the file."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(path, "", f"cannot read {what}: {e.strerror}") from None


def read_yaml(path: str, what: str) -> tuple[Any, str]:
    """Parse a YAML file; returns (data, sha256 of the bytes). Raises ConfigError."""
    raw = read_file(path, what)
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ConfigError(path, "", f"not valid YAML ({where})") from None
    return data, hashlib.sha256(raw).hexdigest()


def resolve_path(base_file: str, path: str) -> str:
    """Resolve `path` against the directory of `base_file`; URIs (gs://...) stay as they are."""
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(base_file)), path))
