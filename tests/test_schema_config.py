"""Config and schema loading: every error names the file and the key path."""

import glob
import os

import pytest
import yaml

from privgate.errors import ConfigError
from schemas.columns import load_schema, parse_schema
from schemas.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GOOD = {"columns": {"a": {"type": "string", "action": "keep"}}}


@pytest.mark.parametrize(
    "columns, key_path, message",
    [
        # unknown option for the action
        ({"a": {"type": "int", "action": "keep", "bucket": 3}}, "columns.a.bucket", "unknown key"),
        # bucket must be positive
        (
            {"a": {"type": "int", "action": "generalize", "bucket": 0}},
            "columns.a.bucket",
            "must be a positive integer",
        ),
        # bucket on a string column
        (
            {"a": {"type": "string", "action": "generalize", "bucket": 5}},
            "columns.a.bucket",
            "only int and float",
        ),
        # unknown type
        ({"a": {"type": "decimal", "action": "keep"}}, "columns.a.type", "must be one of"),
        # unknown action
        ({"a": {"type": "string", "action": "hash"}}, "columns.a.action", "must be one of"),
        # mask char must be one character
        (
            {"a": {"type": "string", "action": "mask", "char": "**"}},
            "columns.a.char",
            "single character",
        ),
        # date_part only for dates
        (
            {"a": {"type": "int", "action": "generalize", "date_part": "year"}},
            "columns.a.date_part",
            "only date and timestamp",
        ),
        # date_part value
        (
            {"a": {"type": "date", "action": "generalize", "date_part": "week"}},
            "columns.a.date_part",
            "must be one of",
        ),
        # date_shift without record_key
        (
            {"a": {"type": "date", "action": "date_shift", "max_days": 3}},
            "columns.a.action",
            "needs a record_key",
        ),
        # generalize needs exactly one option
        ({"a": {"type": "string", "action": "generalize"}}, "columns.a.action", "exactly one of"),
        # domain must be a simple name
        (
            {"a": {"type": "string", "action": "tokenize", "domain": "Bad Domain"}},
            "columns.a.domain",
            "must match",
        ),
        # format only on dates
        (
            {"a": {"type": "string", "action": "keep", "format": "%Y"}},
            "columns.a.format",
            "only date and timestamp",
        ),
    ],
)
def test_schema_errors_name_file_and_key(columns, key_path, message):
    with pytest.raises(ConfigError) as e:
        parse_schema({"columns": columns}, "schemas/x.yaml")
    assert str(e.value).startswith(f"schemas/x.yaml: {key_path}: ")
    assert message in str(e.value)
    assert e.value.exit_code == 2


def test_schema_top_level_errors():
    with pytest.raises(ConfigError, match="x.yaml: record_key: must name a declared column"):
        parse_schema(dict(GOOD, record_key="zz"), "x.yaml")
    with pytest.raises(ConfigError, match="x.yaml: unknown_columns: must be one of"):
        parse_schema(dict(GOOD, unknown_columns="keep"), "x.yaml")
    with pytest.raises(ConfigError, match="x.yaml: colums: unknown key"):
        parse_schema({"colums": {}}, "x.yaml")
    with pytest.raises(ConfigError, match="every column is dropped"):
        parse_schema({"columns": {"a": {"type": "string", "action": "drop"}}}, "x.yaml")


def test_key_groups_follow_action_and_pii_label():
    s = parse_schema(
        {
            "columns": {
                "plan": {"type": "string", "action": "keep"},
                "zip": {"type": "string", "action": "generalize", "keep_prefix": 3},
                "city": {"type": "string", "action": "keep", "pii": "LOCATION"},
                "email": {"type": "string", "action": "mask"},
                "id": {"type": "string", "action": "tokenize"},
            }
        }
    )
    groups = {c.name: c.key_group for c in s.columns}
    assert groups == {"plan": "data", "zip": "data", "city": "pii", "email": "pii", "id": "pii"}


def test_config_paths_resolve_against_the_file(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(GOOD))
    sub = tmp_path / "configs"
    sub.mkdir()
    (sub / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "dataset": "ds",
                "input": {"path": "../in/*.csv", "format": "csv"},
                "schema": "../s.yaml",
                "output": {"path": "../out/ds"},
                "keys": {"kms": "local", "keyring": "../k.json"},
            }
        )
    )
    cfg = load_config(str(sub / "c.yaml"))
    assert cfg.input.path == str(tmp_path / "in" / "*.csv")
    assert cfg.output.path == str(tmp_path / "out" / "ds")
    assert cfg.keys.keyring == str(tmp_path / "k.json")
    assert len(cfg.sha256) == 64 and len(cfg.schema.sha256) == 64


def test_config_errors(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(GOOD))
    base = {
        "dataset": "ds",
        "input": {"path": "x.csv", "format": "csv"},
        "schema": "s.yaml",
        "output": {"path": "o"},
        "keys": {"kms": "local", "keyring": "k"},
    }
    cases = [
        ({"dataset": "Bad Name"}, "dataset: must match"),
        ({"input": {"path": "x", "format": "xls"}}, "input.format: must be one of"),
        (
            {"input": {"path": "x", "format": "jsonl", "csv": {"delimiter": ";"}}},
            "input.csv: only csv input",
        ),
        (
            {"input": {"path": "x", "format": "csv", "csv": {"encoding": "nope"}}},
            "input.csv.encoding: unknown encoding",
        ),
        ({"keys": {"kms": "vault", "keyring": "k"}}, "keys.kms: must be one of"),
        ({"schema": "missing.yaml"}, "cannot read schema"),
        ({"extra": 1}, "extra: unknown key"),
    ]
    for patch, msg in cases:
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump(dict(base, **patch)))
        with pytest.raises(ConfigError) as e:
            load_config(str(p))
        assert msg in str(e.value), (patch, str(e.value))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))))
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.schema.columns


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "schemas", "*.yaml"))))
def test_every_shipped_schema_loads(path):
    assert load_schema(path).output_columns
