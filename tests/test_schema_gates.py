"""The policy language's `gates:` section and its checks against the schema."""

from __future__ import annotations

import json

import pytest

from privgate.errors import ConfigError
from schemas.gates import KAnonymitySpec, LDiversitySpec, parse_gates, validate_against_schema
from tests.gates_data import gates_schema


def test_parse_gates_full(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "out.json").write_text("{}")
    (tmp_path / "exp" / "in.json").write_text("{}")
    src = str(tmp_path / "conf" / "run.yaml")
    g = parse_gates(
        {
            "residual_pii_max": 0,
            "k_anonymity": {"quasi_identifiers": ["age", "zip"], "k": 5},
            "l_diversity": {"sensitive": "dx", "l": 2},
            "expectations": "../exp/out.json",
            "input_expectations": str(tmp_path / "exp" / "in.json"),
        },
        src,
    )
    assert g.residual_pii_max == 0.0
    assert g.k_anonymity == KAnonymitySpec(("age", "zip"), 5)
    assert g.l_diversity == LDiversitySpec("dx", 2)
    assert g.expectations == str(tmp_path / "exp" / "out.json")
    assert g.input_expectations == str(tmp_path / "exp" / "in.json")
    assert json.loads(json.dumps(g.to_dict()))["k_anonymity"]["k"] == 5
    with pytest.raises(AttributeError):
        g.residual_pii_max = 1.0  # frozen


@pytest.mark.parametrize(
    "data, key_path",
    [
        ({"bogus": 1}, "gates.bogus"),
        ({"residual_pii_max": 1.5}, "gates.residual_pii_max"),
        ({"residual_pii_max": -0.1}, "gates.residual_pii_max"),
        ({"residual_pii_max": True}, "gates.residual_pii_max"),
        ({"residual_pii_max": "0"}, "gates.residual_pii_max"),
        ({"k_anonymity": {"quasi_identifiers": ["a"], "k": 1}}, "gates.k_anonymity.k"),
        ({"k_anonymity": {"quasi_identifiers": ["a"], "k": 2.5}}, "gates.k_anonymity.k"),
        ({"k_anonymity": {"quasi_identifiers": ["a"]}}, "gates.k_anonymity.k"),
        ({"k_anonymity": {"quasi_identifiers": [], "k": 5}}, "gates.k_anonymity.quasi_identifiers"),
        (
            {"k_anonymity": {"quasi_identifiers": "a", "k": 5}},
            "gates.k_anonymity.quasi_identifiers",
        ),
        (
            {"k_anonymity": {"quasi_identifiers": ["a", "a"], "k": 5}},
            "gates.k_anonymity.quasi_identifiers",
        ),
        ({"k_anonymity": {"quasi_identifiers": ["a"], "k": 5, "x": 1}}, "gates.k_anonymity.x"),
        ({"k_anonymity": [1]}, "gates.k_anonymity"),
        (
            {
                "k_anonymity": {"quasi_identifiers": ["a"], "k": 5},
                "l_diversity": {"sensitive": "b", "l": 1},
            },
            "gates.l_diversity.l",
        ),
        (
            {"k_anonymity": {"quasi_identifiers": ["a"], "k": 5}, "l_diversity": {"l": 2}},
            "gates.l_diversity.sensitive",
        ),
        (
            {
                "k_anonymity": {"quasi_identifiers": ["a"], "k": 5},
                "l_diversity": {"sensitive": "a", "l": 2},
            },
            "gates.l_diversity.sensitive",
        ),
        ({"l_diversity": {"sensitive": "b", "l": 2}}, "gates.l_diversity"),
        ({"expectations": "missing.json"}, "gates.expectations"),
        ({"input_expectations": ""}, "gates.input_expectations"),
    ],
)
def test_parse_gates_errors_name_the_key(data, key_path, tmp_path):
    src = str(tmp_path / "run.yaml")
    with pytest.raises(ConfigError) as e:
        parse_gates(data, src)
    assert e.value.key_path == key_path
    assert str(e.value).startswith(f"{src}: {key_path}: ")


def test_parse_gates_not_a_mapping():
    with pytest.raises(ConfigError) as e:
        parse_gates([1], "c.yaml")
    assert e.value.key_path == "gates"


@pytest.mark.parametrize(
    "gates, key_path, word",
    [
        (
            {"k_anonymity": {"quasi_identifiers": ["age", "name"], "k": 5}},
            "gates.k_anonymity.quasi_identifiers",
            "dropped",
        ),
        (
            {"k_anonymity": {"quasi_identifiers": ["age", "nope"], "k": 5}},
            "gates.k_anonymity.quasi_identifiers",
            "not a column",
        ),
        (
            {
                "k_anonymity": {"quasi_identifiers": ["age"], "k": 5},
                "l_diversity": {"sensitive": "name", "l": 2},
            },
            "gates.l_diversity.sensitive",
            "dropped",
        ),
    ],
)
def test_validate_against_schema(gates, key_path, word):
    g = parse_gates(gates, "c.yaml")
    with pytest.raises(ConfigError) as e:
        validate_against_schema(g, gates_schema(), "c.yaml")
    assert e.value.key_path == key_path and word in str(e.value)


def test_validate_against_schema_accepts_output_columns():
    g = parse_gates(
        {
            "k_anonymity": {"quasi_identifiers": ["age", "zip", "gender"], "k": 5},
            "l_diversity": {"sensitive": "dx", "l": 2},
        },
        "c.yaml",
    )
    validate_against_schema(g, gates_schema(), "c.yaml")
