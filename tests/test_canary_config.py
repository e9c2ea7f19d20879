"""The `canaries:` section of a run config: parsed, validated against the schema."""

from __future__ import annotations

import os

import pytest

from privgate.errors import ConfigError
from schemas.canaries import CanarySpec
from schemas.config import load_config
from tests.conftest import ROOT, cli

SCHEMA = os.path.join(ROOT, "schemas", "demo_customers.yaml")


def _config(tmp_path, canaries: str) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"""dataset: c
input: {{path: in.csv, format: csv}}
schema: {SCHEMA}
output: {{path: out}}
keys: {{keyring: k.json}}
privacy: {{record_epsilon_max: 3.0, lifetime_epsilon_max: 10}}
canaries: {canaries}
"""
    )
    return str(path)


def test_a_mislabeled_section_is_parsed(tmp_path):
    cfg = load_config(_config(tmp_path, "{count: 1000, kind: mislabeled, label: plan}"))
    assert cfg.canaries == CanarySpec(count=1000, kind="mislabeled", label="plan")
    assert cfg.canaries.to_dict() == {
        "count": 1000,
        "kind": "mislabeled",
        "label": "plan",
        "sample": 1000,
    }


def test_a_secret_section_is_parsed(tmp_path):
    cfg = load_config(_config(tmp_path, "{count: 50, kind: secret, field: plan, references: 99}"))
    assert (cfg.canaries.kind, cfg.canaries.field, cfg.canaries.references) == (
        "secret",
        "plan",
        99,
    )


def test_no_section_plants_nothing(tmp_path):
    path = _config(tmp_path, "null")
    assert load_config(path).canaries is None


@pytest.mark.parametrize(
    "section, key_path",
    [
        ("{kind: mislabeled, label: plan}", "canaries.count"),  # count is required
        ("{count: 1, kind: mislabeled, label: plan}", "canaries.count"),  # at least 2
        ("{count: 2000000, kind: mislabeled, label: plan}", "canaries.count"),
        ("{count: 10, kind: watermark, label: plan}", "canaries.kind"),
        ("{count: 10, kind: mislabeled}", "canaries.label"),  # mislabeled needs a label
        ("{count: 10, kind: mislabeled, label: nope}", "canaries.label"),  # undeclared
        ("{count: 10, kind: mislabeled, label: full_name}", "canaries.label"),  # dropped
        ("{count: 10, kind: mislabeled, label: income}", "canaries.label"),  # a float
        ("{count: 10, kind: mislabeled, label: plan, field: notes}", "canaries.field"),
        ("{count: 10, kind: secret, field: age}", "canaries.field"),  # not a string
        ("{count: 10, kind: secret, field: customer_id}", "canaries.field"),  # the record key
        ("{count: 10, kind: secret, label: plan}", "canaries.label"),
        ("{count: 10, kind: mislabeled, label: plan, references: 5}", "canaries.references"),
        ("{count: 10, kind: mislabeled, label: plan, colour: red}", "canaries.colour"),
        ("[1, 2]", "canaries"),
    ],
)
def test_a_bad_section_names_the_file_and_key_path(tmp_path, section, key_path):
    path = _config(tmp_path, section)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: {key_path}: ")


def test_the_cli_exits_2_on_a_bad_section(tmp_path):
    path = _config(tmp_path, "{count: 10, kind: mislabeled, label: nope}")
    r = cli("run", path)
    assert r.returncode == 2
    assert f"{path}: canaries.label" in r.stderr


def test_a_worker_that_matches_no_input_file_plants_nothing(tmp_path, keyring_path):
    # every worker regenerates the candidates from the same input head: a worker that
    # cannot see the inputs must fail, not draw its candidates from an empty profile
    from privgate.errors import DataError
    from transforms.canaries.plant import PlantCanariesFn

    path = _config(tmp_path, "{count: 100, kind: mislabeled, label: plan}")
    text = open(path).read().replace("keyring: k.json", f"keyring: {keyring_path}")
    open(path, "w").write(text)
    fn = PlantCanariesFn(load_config(path), "stats", "census")
    with pytest.raises(DataError, match="no input file matches"):
        fn.setup()
