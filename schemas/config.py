"""A run config (`configs/*.yaml`): where data comes from, its schema, outputs, keys, budget.

Parsed once into frozen dataclasses; unknown keys and bad values fail at load time with a
`ConfigError` naming the file and the key path. There is no silent default policy. Checks
that need a plug-in (a KMS backend's settings, an ldp mechanism's parameters) run where a
run loads its config: `pipelines.config.load_run_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from privgate.errors import ConfigError
from privgate.kms import kms_kinds
from schemas.anonymize import AnonymizeSpec, parse_anonymize
from schemas.canaries import CanarySpec, parse_canaries
from schemas.columns import Schema, load_schema
from schemas.detection import GuardConfig, parse_guard
from schemas.gates import GatesSpec, parse_gates, validate_against_schema
from schemas.kit import NAME_RE, Node, freeze, read_yaml, resolve_path, thaw

FORMATS = ("csv", "jsonl", "parquet")
LOCAL_KMS = "local"  # the first of `kms_kinds()`: the local keyring file


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
        return thaw(self.settings)


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
    guard: GuardConfig = GuardConfig()  # the keep-guard (default: fail above 1%)
    gates: GatesSpec | None = None  # None: no gate, no report
    canaries: CanarySpec | None = None  # None: no canaries planted
    anonymize: AnonymizeSpec | None = None  # None: no enforced k-anonymous release


def _parse_input(node: Node, source: str) -> InputSpec:
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
    return InputSpec(
        path=resolve_path(source, inp.str("path", required=True)),
        format=fmt,
        csv=csv,
        batch_rows=inp.int("batch_rows", 65536, minimum=1),
        max_cell_bytes=inp.int("max_cell_bytes", 1 << 20, minimum=1),
    )


def _parse_keys(node: Node, source: str) -> KeysSpec:
    kinds = kms_kinds()
    keys = node.child("keys", ("kms", "keyring") + kinds[1:], required=True)
    kms = keys.str("kms", LOCAL_KMS, choices=kinds)
    extra = [k for k in kinds[1:] if k != kms and keys.get(k) is not None]
    if extra:
        raise keys.err(extra[0], f"settings for another KMS than keys.kms ({kms})")
    settings = keys.get(kms) if kms != LOCAL_KMS else None
    if settings is not None and not isinstance(settings, dict):
        raise keys.err(kms, "must be a mapping of KMS settings")
    return KeysSpec(
        kms=kms,
        keyring=resolve_path(source, keys.str("keyring", required=True)),
        settings=freeze(settings or {}),
    )


def _parse_privacy(node: Node, schema: Schema) -> PrivacySpec | None:
    priv = node.child("privacy", ("record_epsilon_max", "lifetime_epsilon_max", "ledger"))
    if priv is None:
        if schema.ldp_columns:
            raise node.err(
                "privacy",
                "is required when the schema has ldp columns "
                "(record_epsilon_max, lifetime_epsilon_max)",
            )
        return None
    record_max = priv.number("record_epsilon_max", positive=True)
    lifetime_max = priv.number("lifetime_epsilon_max", positive=True)
    if schema.record_epsilon > record_max + 1e-12:
        raise priv.err(
            "record_epsilon_max",
            f"the schema's ldp columns spend {schema.record_epsilon:g} per record, "
            f"more than {record_max:g}",
        )
    ledger = priv.str("ledger")
    return PrivacySpec(
        float(record_max),
        float(lifetime_max),
        resolve_path(node.source, ledger) if ledger else None,
    )


def parse_config(data: Any, source: str = "<config>", sha256: str = "") -> RunConfig:
    """Validate a run config mapping; loads the schema it names."""
    node = Node(
        data,
        source,
        "",
        (
            "dataset",
            "input",
            "schema",
            "output",
            "keys",
            "privacy",
            "guard",
            "gates",
            "canaries",
            "anonymize",
        ),
    )
    dataset = node.str("dataset", required=True, pattern=NAME_RE)
    input_spec = _parse_input(node, source)
    schema = load_schema(resolve_path(source, node.str("schema", required=True)))
    out = node.child("output", ("path", "compression", "row_group_rows"), required=True)
    output = OutputSpec(
        path=resolve_path(source, out.str("path", required=True)),
        compression=out.str("compression", "zstd", choices=("zstd", "snappy")),
        row_group_rows=out.int("row_group_rows", 131072, minimum=1),
    )
    keys = _parse_keys(node, source)
    privacy = _parse_privacy(node, schema)
    guard = parse_guard(node.get("guard"), source)
    gates = None
    if node.get("gates") is not None:
        gates = parse_gates(node.get("gates"), source)
        validate_against_schema(gates, schema, source)
    canaries = None
    if node.get("canaries") is not None:
        canaries = parse_canaries(node.get("canaries"), source, schema)
    anonymize = None
    if node.get("anonymize") is not None:
        anonymize = parse_anonymize(node.get("anonymize"), source, schema)
    _gates_fit_release(gates, anonymize, source)
    return RunConfig(
        dataset,
        input_spec,
        schema,
        output,
        keys,
        source,
        sha256,
        privacy,
        guard,
        gates,
        canaries,
        anonymize,
    )


def _gates_fit_release(gates: GatesSpec | None, anonymize: AnonymizeSpec | None, source: str):
    """With an enforced release, the k-anonymity gate must be one the release passes by
    construction: classes over some of the enforced quasi-identifiers are unions of released
    classes, so they hold at least anonymize.k records (and its l distinct sensitive values).
    A gate over another column, or a larger k or l, would refuse what Mondrian made.

    Raises:
        ConfigError: naming the gate key and what the `anonymize:` section would need.
    """
    if gates is None or anonymize is None or gates.k_anonymity is None:
        return
    gate = gates.k_anonymity
    others = [q for q in gate.quasi_identifiers if q not in anonymize.quasi_identifiers]
    if others:
        raise ConfigError(
            source,
            "gates.k_anonymity.quasi_identifiers",
            f"{', '.join(others)} not in anonymize.quasi_identifiers: the release is not "
            "generalized over it (add it there, or drop it from the gate)",
        )
    if gate.k > anonymize.k:
        raise ConfigError(
            source, "gates.k_anonymity.k", f"{gate.k} is above anonymize.k ({anonymize.k})"
        )
    want, have = gates.l_diversity, anonymize.l_diversity
    if want is not None and (have is None or have.sensitive != want.sensitive or have.l < want.l):
        raise ConfigError(
            source,
            "gates.l_diversity",
            f"needs anonymize.l_diversity over {want.sensitive} with l >= {want.l}",
        )


def load_config(path: str) -> RunConfig:
    """Load and validate a run config file and the schema it names (plug-in checks aside).

    Raises:
        ConfigError: with the file and key path of the first problem found.
    """
    data, digest = read_yaml(path, "config")
    return parse_config(data, path, digest)
