"""The policy language's detection options: recognizers, scrub options, keep-guard."""

from __future__ import annotations

import re

import pytest

from privgate.errors import ConfigError
from schemas.detection import parse_guard, parse_recognizers, parse_scrub_options

BAD_RECOGNIZERS = [
    ({"a": 1}, "recognizers: must be a list"),
    ([{"entity": "X"}], "recognizers[0].name: is required"),
    ([{"name": "a", "entity": "lower", "deny_list": ["x"]}], "recognizers[0].entity"),
    (
        [{"name": "a", "entity": "X", "patterns": [{"regex": "("}]}],
        "recognizers[0].patterns[0].regex: does not compile",
    ),
    (
        [{"name": "a", "entity": "X", "patterns": [{"regex": "a*"}]}],
        "must not match the empty string",
    ),
    (
        [{"name": "a", "entity": "X", "patterns": [{"regex": "ab", "score": 1.5}]}],
        "recognizers[0].patterns[0].score",
    ),
    ([{"name": "a", "entity": "X", "colour": "red"}], "recognizers[0].colour: unknown key"),
    ([{"name": "a", "entity": "X"}], "recognizers[0]: needs patterns or a deny_list"),
    (
        [
            {"name": "a", "entity": "X", "deny_list": ["x"]},
            {"name": "a", "entity": "Y", "deny_list": ["y"]},
        ],
        "recognizers[1].name: duplicate",
    ),
    ([{"name": "a", "entity": "X", "deny_list": [""]}], "recognizers[0].deny_list"),
]


@pytest.mark.parametrize("raw, message", BAD_RECOGNIZERS)
def test_parse_recognizers_names_the_key(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_recognizers(raw, "schemas/x.yaml")
    assert str(e.value).startswith("schemas/x.yaml: ") and message in str(e.value)


def test_parse_scrub_options():
    assert parse_scrub_options({"type": "string", "action": "scrub"}) == {
        "entities": None,
        "score_threshold": 0.4,
        "operator": "replace",
        "operators": {},
        "allow_list": (),
    }
    p = parse_scrub_options(
        {
            "entities": ["PERSON", "EMPLOYEE_ID"],
            "operator": "tokenize",
            "operators": {"PERSON": "mask"},
            "allow_list": ["ACME"],
            "score_threshold": 0.5,
        },
        custom_entities=["EMPLOYEE_ID"],
    )
    assert p["entities"] == ("PERSON", "EMPLOYEE_ID") and p["operators"] == {"PERSON": "mask"}


BAD_SCRUB = [
    ({"operator": "hash"}, "columns.notes.operator: must be one of"),
    ({"entities": ["PERSONS"]}, "columns.notes.entities[0]: unknown entity"),
    ({"entities": []}, "columns.notes.entities: must name at least one entity"),
    ({"operators": {"PERSON": "erase"}}, "columns.notes.operators.PERSON"),
    ({"operators": ["PERSON"]}, "columns.notes.operators: must map"),
    ({"score_threshold": 2}, "columns.notes.score_threshold"),
    ({"allow_list": "ACME"}, "columns.notes.allow_list"),
]


@pytest.mark.parametrize("raw, message", BAD_SCRUB)
def test_parse_scrub_options_names_the_key(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_scrub_options(raw, "schemas/x.yaml", "columns.notes")


def test_parse_guard():
    assert parse_guard(None).mode == "fail" and parse_guard(None).max_prevalence == 0.01
    assert parse_guard("warn").mode == "warn"
    g = parse_guard({"mode": "fail", "max_prevalence": 0.05, "sample": 500})
    assert (g.max_prevalence, g.sample) == (0.05, 500)
    for raw, message in [
        ("off", "guard: must be one of"),
        ({"mode": "x"}, "guard.mode"),
        ({"max_prevalence": 1.5}, "guard.max_prevalence"),
        ({"sample": 0}, "guard.sample"),
        ({"level": 1}, "guard.level"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_guard(raw, "configs/x.yaml")
