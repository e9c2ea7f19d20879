"""The `anonymize:` section and ARX hierarchy files: good ones parse, bad ones name the line."""

from __future__ import annotations

import pytest

from privgate.errors import ConfigError
from schemas.anonymize import parse_anonymize, parse_hierarchy
from tests.conftest import cli, write_config
from tests.gates_data import gates_schema


def _hier(tmp_path, text: str, name="h.csv") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_good_hierarchy_file(tmp_path):
    h = parse_hierarchy(_hier(tmp_path, "a;AB;*\nb;AB;*\n\nc;C;*\n"))
    assert h.leaves == ("a", "b", "c") and h.rows[2] == ("c", "C", "*")


@pytest.mark.parametrize(
    "text, where, why",
    [
        ("a;x;*\nb;*\n", "line 2", "has 2 fields, the first line has 3"),
        ("a;x;*\nb;;*\n", "line 2", "has an empty field"),
        ("a;x;*\na;y;*\n", "line 2", "repeats a value"),
        ("a;x;*\nb;x;ALL\n", "line 2", "another top node"),
        ("a;x;T;*\nb;x;U;*\n", "line 2", "level-1 node another parent"),
        ("a\n", "line 1", "needs a value and at least one level"),
        ("\n\n", "", "holds no hierarchy lines"),
    ],
)
def test_bad_hierarchy_file_names_the_line(tmp_path, text, where, why):
    path = _hier(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        parse_hierarchy(path)
    assert str(e.value).startswith(f"{path}: {where}") and why in str(e.value)


def test_parse_anonymize_full(tmp_path):
    _hier(tmp_path, "1;*\n0;*\n", "zip.csv")
    spec = parse_anonymize(
        {
            "k": 5,
            "quasi_identifiers": ["age", "zip"],
            "hierarchies": {"zip": "zip.csv"},
            "l_diversity": {"sensitive": "dx", "l": 2},
            "max_suppression": 0.02,
            "numeric_output": "midpoint",
        },
        str(tmp_path / "run.yaml"),
        gates_schema(),
    )
    assert spec.k == 5 and spec.quasi_identifiers == ("age", "zip")
    assert spec.hierarchy("zip").leaves == ("1", "0") and spec.hierarchy("age") is None
    assert spec.l_diversity.l == 2 and spec.max_suppression == 0.02
    assert spec.to_dict()["hierarchies"] == {"zip": str(tmp_path / "zip.csv")}


@pytest.mark.parametrize(
    "data, key_path",
    [
        ({"quasi_identifiers": ["age"]}, "anonymize.k"),
        ({"k": 1, "quasi_identifiers": ["age"]}, "anonymize.k"),
        ({"k": 5}, "anonymize.quasi_identifiers"),
        ({"k": 5, "quasi_identifiers": []}, "anonymize.quasi_identifiers"),
        ({"k": 5, "quasi_identifiers": ["age", "age"]}, "anonymize.quasi_identifiers"),
        ({"k": 5, "quasi_identifiers": ["name"]}, "anonymize.quasi_identifiers"),
        ({"k": 5, "quasi_identifiers": ["nope"]}, "anonymize.quasi_identifiers"),
        ({"k": 5, "quasi_identifiers": ["zip"]}, "anonymize.hierarchies.zip"),
        ({"k": 5, "quasi_identifiers": ["seen"]}, "anonymize.hierarchies.seen"),
        (
            {"k": 5, "quasi_identifiers": ["age"], "hierarchies": {"zip": "z"}},
            "anonymize.hierarchies.zip",
        ),
        (
            {"k": 5, "quasi_identifiers": ["age"], "hierarchies": {"age": "h.csv"}},
            "anonymize.hierarchies.age",
        ),
        (
            {"k": 5, "quasi_identifiers": ["zip"], "hierarchies": {"zip": "missing.csv"}},
            "anonymize.hierarchies.zip",
        ),
        ({"k": 5, "quasi_identifiers": ["age"], "max_suppression": 2}, "anonymize.max_suppression"),
        (
            {"k": 5, "quasi_identifiers": ["age"], "numeric_output": "mean"},
            "anonymize.numeric_output",
        ),
        ({"k": 5, "quasi_identifiers": ["age"], "bogus": 1}, "anonymize.bogus"),
        (
            {"k": 5, "quasi_identifiers": ["age"], "l_diversity": {"sensitive": "age", "l": 2}},
            "anonymize.l_diversity.sensitive",
        ),
        (
            {"k": 5, "quasi_identifiers": ["age"], "l_diversity": {"sensitive": "dx", "l": 1}},
            "anonymize.l_diversity.l",
        ),
        (
            {"k": 5, "quasi_identifiers": ["age"], "l_diversity": {"sensitive": "name", "l": 2}},
            "anonymize.l_diversity.sensitive",
        ),
    ],
)
def test_parse_anonymize_errors_name_the_key_path(tmp_path, data, key_path):
    _hier(tmp_path, "1;*\n")
    with pytest.raises(ConfigError) as e:
        parse_anonymize(data, str(tmp_path / "run.yaml"), gates_schema())
    assert e.value.key_path == key_path and e.value.source == str(tmp_path / "run.yaml")


def test_bad_hierarchy_file_exits_2_naming_file_and_line(tmp_path, keyring_path, demo_csv):
    hier = _hier(tmp_path, "female;*\nmale;*\nother;x;*\n", "gender.csv")
    cfg = write_config(tmp_path, input_path=demo_csv, keyring=keyring_path)
    with open(cfg, "a") as f:
        f.write(
            "anonymize:\n  k: 5\n  quasi_identifiers: [age, gender]\n"
            f"  hierarchies: {{gender: {hier}}}\n"
        )
    r = cli("run", cfg, "--no-progress")
    assert r.returncode == 2, r.stderr
    assert f"{hier}: line 3: has 3 fields" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name, leaves, top",
    [
        ("adult/education.csv", 16, "*"),
        ("adult/marital-status.csv", 7, "*"),
        ("adult/race.csv", 5, "*"),
        ("adult/sex.csv", 2, "*"),
        ("adult/native-country.csv", 41, "*"),
        ("demo/zip3.csv", 1000, "*"),
    ],
)
def test_shipped_hierarchies_parse(name, leaves, top):
    from tests.conftest import ROOT

    h = parse_hierarchy(f"{ROOT}/configs/hierarchies/{name}")
    assert len(h.leaves) == leaves and {r[-1] for r in h.rows} == {top}


@pytest.mark.parametrize(
    "change, key_path, says",
    [
        (
            lambda c: c["gates"]["k_anonymity"]["quasi_identifiers"].append("gender"),
            "gates.k_anonymity.quasi_identifiers",
            "gender not in anonymize.quasi_identifiers",
        ),
        (lambda c: c["gates"]["k_anonymity"].update(k=6), "gates.k_anonymity.k", "above"),
        (lambda c: c["gates"]["l_diversity"].update(l=3), "gates.l_diversity", "l >= 3"),
        (lambda c: c["anonymize"].pop("l_diversity"), "gates.l_diversity", "smoker"),
        (lambda c: c["gates"]["l_diversity"].update(sensitive="plan"), "gates.l_diversity", "plan"),
    ],
)
def test_a_gate_the_enforced_release_cannot_pass_is_a_config_error(change, key_path, says):
    import os

    import yaml

    from schemas.config import parse_config
    from tests.conftest import ROOT

    source = os.path.join(ROOT, "configs", "demo.yaml")
    with open(source, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    parse_config(data, source)  # the shipped demo gates what it enforces
    data["gates"]["k_anonymity"]["quasi_identifiers"] = ["zip", "age"]  # a subset passes too
    data["gates"]["k_anonymity"]["k"] = 3
    parse_config(data, source)
    change(data)
    with pytest.raises(ConfigError) as e:
        parse_config(data, source)
    assert e.value.key_path == key_path and says in str(e.value)
