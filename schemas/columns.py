"""A dataset schema: its declared columns, each with an input contract and one protection action.

Every action is declared once in `ACTIONS` (its option keys, their parser, its output type,
which master key encrypts its output, whether its output can still hold PII, the report's
note); the parser, the stages, the gates and the report read that declaration. Adding an
action is one `Action` here and one function in `transforms.actions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from privgate.errors import ConfigError
from schemas import ldp as ldp_options
from schemas.detection import DEFAULT_MODEL, parse_nlp_model, parse_recognizers, parse_scrub_options
from schemas.kit import ENTITY_RE, NAME_RE, Node, read_yaml

TYPES = ("string", "int", "float", "bool", "date", "timestamp")
DATE_PARTS = {"date": ("year", "month", "day"), "timestamp": ("year", "month", "day", "hour")}
_COMMON_KEYS = ("type", "action", "nullable", "format", "pii")


@dataclass(frozen=True)
class Action:
    """One protection action, declared once.

    Attributes:
        name: the `action:` value.
        options: the column keys it takes besides type/action/nullable/format/pii.
        parse: validates those options: `(node, ctype, custom_entities) -> params`.
        output: the output column's type: "same" (the declared type), "string", or None
            (the column is dropped).
        pii_key: its output is encrypted under the `pii` master key. False for the actions
            whose output analysts may read with the `data` key alone (unless the column is
            labelled `pii`): keep, generalize and ldp (its release is bounded by epsilon).
        detectable: a string output may still hold PII; the residual-PII gate samples it.
        noted: option keys the report shows (the first one set), when `note` is None.
        note: the report's one-line summary of the options, from the column's manifest entry.
    """

    name: str
    options: tuple[str, ...] = ()
    parse: Callable[[Node, str, tuple[str, ...]], dict] | None = None
    output: str | None = "same"
    pii_key: bool = True
    detectable: bool = True
    noted: tuple[str, ...] = ()
    note: Callable[[Mapping], str] | None = None

    def describe(self, col: Mapping) -> str:
        """The report's note for a column entry (`ColumnSpec.to_dict()` plus run details)."""
        if self.note is not None:
            return self.note(col)
        for key in self.noted:
            if key in col and col[key] not in (None, 0):
                return f"{key} {col[key]}"
        return ""


def _mask(node: Node, ctype: str, custom: tuple[str, ...]) -> dict:
    char = node.str("char", "*")
    if len(char) != 1:
        raise node.err("char", "must be a single character")
    return {
        "keep_first": node.int("keep_first", 0),
        "keep_last": node.int("keep_last", 0),
        "char": char,
    }


def _domain(node: Node, ctype: str, custom: tuple[str, ...]) -> dict:
    domain = node.str("domain", pattern=NAME_RE)
    return {"domain": domain} if domain else {}


def _generalize(node: Node, ctype: str, custom: tuple[str, ...]) -> dict:
    given = [k for k in ("bucket", "keep_prefix", "date_part") if node.has(k)]
    if len(given) != 1:
        raise node.err(
            "action",
            "generalize needs exactly one of bucket (int/float), keep_prefix (string), "
            "date_part (date/timestamp)",
        )
    opt = given[0]
    if opt == "bucket":
        if ctype not in ("int", "float"):
            raise node.err("bucket", "only int and float columns take a bucket")
        b = node.get("bucket")
        ok = isinstance(b, int) if ctype == "int" else isinstance(b, int | float)
        if isinstance(b, bool) or not ok or b <= 0:
            raise node.err(
                "bucket",
                "must be a positive integer" if ctype == "int" else "must be a positive number",
            )
        return {"bucket": b}
    if opt == "keep_prefix":
        if ctype != "string":
            raise node.err("keep_prefix", "only string columns take keep_prefix")
        return {"keep_prefix": node.int("keep_prefix", minimum=1)}
    if ctype not in DATE_PARTS:
        raise node.err("date_part", "only date and timestamp columns take date_part")
    return {"date_part": node.str("date_part", choices=DATE_PARTS[ctype])}


def _date_shift(node: Node, ctype: str, custom: tuple[str, ...]) -> dict:
    if ctype not in ("date", "timestamp"):
        raise node.err("action", "date_shift needs a date or timestamp column")
    return {"max_days": node.int("max_days", required=True, minimum=1)}


def _ldp(node: Node, ctype: str, custom: tuple[str, ...]) -> dict:
    return ldp_options.parse_ldp(node, ctype)


def _scrub(node: Node, ctype: str, custom: tuple[str, ...]) -> dict:
    if ctype != "string":
        raise node.err("action", "scrub needs a string column")
    return parse_scrub_options(node.data, node.source, node.path, custom)


_ACTION_LIST = (
    Action("keep", pii_key=False),
    Action("drop", output=None),
    Action("redact", detectable=False),
    Action(
        "mask",
        ("keep_first", "keep_last", "char"),
        _mask,
        output="string",
        noted=("keep_first", "keep_last"),
    ),
    Action("tokenize", ("domain",), _domain, output="string", detectable=False, noted=("domain",)),
    Action("encrypt", ("domain",), _domain, output="string", detectable=False, noted=("domain",)),
    Action(
        "generalize",
        ("bucket", "keep_prefix", "date_part"),
        _generalize,
        pii_key=False,
        noted=("bucket", "keep_prefix", "date_part"),
    ),
    Action("date_shift", ("max_days",), _date_shift, noted=("max_days",)),
    Action(
        "ldp",
        ("epsilon", "bounds", "categories", "other", "mechanism", "out_of_domain"),
        _ldp,
        pii_key=False,
        detectable=False,
        note=ldp_options.note,
    ),
    Action(
        "scrub",
        ("entities", "score_threshold", "operator", "operators", "allow_list"),
        _scrub,
        output="string",
    ),
)
ACTIONS: dict[str, Action] = {a.name: a for a in _ACTION_LIST}


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
    def declaration(self) -> Action:
        """The action's declaration in `ACTIONS`."""
        return ACTIONS[self.action]

    @property
    def key_group(self) -> str:
        """Master key that encrypts this column in the output: `pii` or `data`."""
        if self.pii or self.declaration.pii_key:
            return "pii"
        return "data"

    @property
    def output_type(self) -> str | None:
        """privgate type of the output column, or None when the column is dropped."""
        out = self.declaration.output
        return self.type if out == "same" else out

    @property
    def ldp_params(self) -> ldp_options.LdpSpec:
        """An ldp column's mechanism parameters (`transforms.ldp`, `privgate.estimate`)."""
        return ldp_options.spec_from_params(self.type, self.params)

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
    recognizers: tuple = ()  # custom PII recognizers (schemas.detection.RecognizerSpec)
    nlp_model: str = DEFAULT_MODEL  # spaCy model for NER (scan, scrub, guard)

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
        return tuple(c for c in self.columns if c.output_type is not None)

    @property
    def ldp_columns(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if c.action == "ldp")

    @property
    def record_epsilon(self) -> float:
        """A record's epsilon: the sum over its ldp columns (sequential composition)."""
        return float(sum(c.params["epsilon"] for c in self.ldp_columns))


def parse_column(name: str, raw: Any, source: str, custom_entities=()) -> ColumnSpec:
    """Validate one column of the `columns:` section. Raises ConfigError."""
    path = f"columns.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(source, path, "must be a mapping like {type: string, action: keep}")
    action = ACTIONS.get(raw.get("action")) if isinstance(raw.get("action"), str) else None
    if action is None:
        raise ConfigError(source, f"{path}.action", f"must be one of: {', '.join(ACTIONS)}")
    node = Node(raw, source, path, _COMMON_KEYS + action.options)
    ctype = node.str("type", required=True, choices=TYPES)
    fmt = node.str("format")
    if fmt is not None and ctype not in ("date", "timestamp"):
        raise node.err("format", "only date and timestamp columns take a format")
    pii = node.str("pii", pattern=ENTITY_RE)
    nullable = node.bool("nullable", False)
    params = action.parse(node, ctype, tuple(custom_entities)) if action.parse else {}
    return ColumnSpec(name, ctype, action.name, nullable, fmt, pii, params)


def parse_schema(data: Any, source: str = "<schema>", sha256: str = "") -> Schema:
    """Validate a schema mapping. Raises ConfigError naming `source` and the key path."""
    node = Node(
        data, source, "", ("unknown_columns", "record_key", "columns", "recognizers", "nlp_model")
    )
    unknown = node.str("unknown_columns", "drop", choices=("drop", "fail"))
    recognizers = parse_recognizers(node.get("recognizers") or [], source)
    nlp_model = parse_nlp_model(node.get("nlp_model"), source)
    custom = [r.entity for r in recognizers]
    cols_raw = node.get("columns", required=True)
    if not isinstance(cols_raw, dict) or not cols_raw:
        raise node.err("columns", "must be a non-empty mapping of column name to spec")
    columns = []
    for name, raw in cols_raw.items():
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise node.err(f"columns.{name}", "column names are non-empty and do not start with _")
        columns.append(parse_column(name, raw, source, custom))
    record_key = node.str("record_key")
    names = [c.name for c in columns]
    if record_key is not None and record_key not in names:
        raise node.err("record_key", "must name a declared column")
    if record_key is not None:
        rk = columns[names.index(record_key)]
        if rk.nullable:
            raise node.err("record_key", "the record key column cannot be nullable")
        if rk.action == "ldp":  # its value keys every ldp column's noise: it cannot be noisy
            raise node.err("record_key", "the record key column cannot be an ldp column")
    for c in columns:
        if c.action == "date_shift" and record_key is None:
            raise ConfigError(
                source,
                f"columns.{c.name}.action",
                "date_shift needs a record_key so a record's dates move together",
            )
    if not any(c.output_type is not None for c in columns):
        raise node.err("columns", "every column is dropped: the output would be empty")
    return Schema(tuple(columns), unknown, record_key, source, sha256, recognizers, nlp_model)


def load_schema(path: str) -> Schema:
    """Load and validate a schema file. Raises ConfigError."""
    data, digest = read_yaml(path, "schema")
    return parse_schema(data, path, digest)
