"""LdpSpec: an ldp column's parameters, and the Parquet field metadata it writes and reads."""

from __future__ import annotations

import pyarrow as pa
import pytest

from privgate.errors import ConfigError
from schemas.columns import parse_schema
from schemas.ldp import LdpSpec, category_domain
from transforms.ldp.mechanisms import build_mechanism

# Field metadata as written by the code before LdpSpec (privgate.estimate.ldp_metadata), one
# per kind of column: outputs of older runs must still be read, and new runs must write the
# same bytes in the same order.
OLD_METADATA = [
    (
        LdpSpec(type="float", epsilon=1.0, bounds=[0, 250000]),
        {
            "privgate.ldp.version": "1",
            "privgate.ldp.type": "float",
            "privgate.ldp.mechanism": "piecewise",
            "privgate.ldp.epsilon": "1.0",
            "privgate.ldp.estimator": "mean",
            "privgate.ldp.noise_std": "285689.884644491",
            "privgate.ldp.bounds": "[0.0, 250000.0]",
            "privgate.ldp.grid": '{"origin": -385373.5206341995, "step": 0.9734602368053427, '
            '"count": 1048576, "points": []}',
        },
    ),
    (
        LdpSpec(type="int", epsilon=1.0, bounds=[17, 90]),
        {
            "privgate.ldp.version": "1",
            "privgate.ldp.type": "int",
            "privgate.ldp.mechanism": "geometric",
            "privgate.ldp.epsilon": "1.0",
            "privgate.ldp.estimator": "mean",
            "privgate.ldp.noise_std": "103.23678285813192",
            "privgate.ldp.bounds": "[17, 90]",
            "privgate.ldp.grid": '{"origin": -859.0, "step": 1.0, "count": 1825, "points": []}',
        },
    ),
    (
        LdpSpec(type="int", mechanism="piecewise", epsilon=2.0, bounds=[17, 90]),
        {
            "privgate.ldp.version": "1",
            "privgate.ldp.type": "int",
            "privgate.ldp.mechanism": "piecewise",
            "privgate.ldp.epsilon": "2.0",
            "privgate.ldp.estimator": "mean",
            "privgate.ldp.noise_std": "40.443456757689596",
            "privgate.ldp.bounds": "[17, 90]",
            "privgate.ldp.grid": '{"origin": -26.0, "step": 1.0, "count": 159, "points": []}',
        },
    ),
    (
        LdpSpec(type="float", mechanism="hybrid", epsilon=0.5, bounds=[-1.5, 3]),
        {
            "privgate.ldp.version": "1",
            "privgate.ldp.type": "float",
            "privgate.ldp.mechanism": "hybrid",
            "privgate.ldp.epsilon": "0.5",
            "privgate.ldp.estimator": "mean",
            "privgate.ldp.noise_std": "9.186723371415592",
            "privgate.ldp.bounds": "[-1.5, 3.0]",
            "privgate.ldp.grid": '{"origin": -17.34365248884509, "step": 3.451090333718317e-05, '
            '"count": 1048576, "points": [-8.436723371415592, 9.936723371415592]}',
        },
    ),
    (
        LdpSpec(type="string", epsilon=1.0, categories=["female", "male"], other="other"),
        {
            "privgate.ldp.version": "1",
            "privgate.ldp.type": "string",
            "privgate.ldp.mechanism": "grr",
            "privgate.ldp.epsilon": "1.0",
            "privgate.ldp.estimator": "frequency",
            "privgate.ldp.noise_std": "1.3569624860015785",
            "privgate.ldp.categories": '["female", "male", "other"]',
            "privgate.ldp.other": "other",
        },
    ),
    (
        LdpSpec(type="string", mechanism="grr", epsilon=2.0, categories=["a", "b", "c"]),
        {
            "privgate.ldp.version": "1",
            "privgate.ldp.type": "string",
            "privgate.ldp.mechanism": "grr",
            "privgate.ldp.epsilon": "2.0",
            "privgate.ldp.estimator": "frequency",
            "privgate.ldp.noise_std": "0.6016899787125884",
            "privgate.ldp.categories": '["a", "b", "c"]',
        },
    ),
    (
        LdpSpec(type="bool", epsilon=0.5),
        {
            "privgate.ldp.version": "1",
            "privgate.ldp.type": "bool",
            "privgate.ldp.mechanism": "rr",
            "privgate.ldp.epsilon": "0.5",
            "privgate.ldp.estimator": "frequency",
            "privgate.ldp.noise_std": "1.9793175816509998",
        },
    ),
]
IDS = ["float", "int", "int-piecewise", "hybrid", "string-other", "string", "bool"]


@pytest.mark.parametrize("spec, old", OLD_METADATA, ids=IDS)
def test_metadata_is_written_as_before(spec, old):
    assert list(spec.to_metadata(build_mechanism(spec)).items()) == list(old.items())


@pytest.mark.parametrize("spec, old", OLD_METADATA, ids=IDS)
def test_metadata_of_older_runs_round_trips_through_parquet(spec, old):
    field = pa.schema([pa.field("c", pa.float64(), metadata=old)]).field("c")  # bytes keys
    read = LdpSpec.from_metadata(field.metadata)
    resolved = build_mechanism(spec).name
    assert (read.type, read.mechanism, read.epsilon, read.other) == (
        spec.type,
        resolved,
        spec.epsilon,
        spec.other,
    )
    assert read.bounds == (None if spec.bounds is None else tuple(spec.bounds))
    assert read.to_metadata(build_mechanism(read)) == old  # categories include `other`


def test_from_metadata_refuses_what_is_not_ldp_metadata():
    with pytest.raises(ValueError, match="does not describe an ldp column"):
        LdpSpec.from_metadata({"privgate.action": "keep"})
    old = dict(OLD_METADATA[0][1], **{"privgate.ldp.version": "2"})
    with pytest.raises(ValueError, match="unsupported ldp metadata version"):
        LdpSpec.from_metadata(old)


def test_spec_is_frozen_and_names_the_parameters_it_sets():
    spec = LdpSpec(type="string", epsilon=1.0, categories=["a", "b"], other="o")
    assert spec.categories == ("a", "b") and spec.parameters() == ("categories", "other")
    assert LdpSpec(type="bool", epsilon=1.0).parameters() == ()
    with pytest.raises(AttributeError):
        spec.epsilon = 2.0  # type: ignore[misc]


def test_column_spec_gives_its_ldp_spec():
    schema = parse_schema(
        {
            "columns": {
                "income": {
                    "type": "float",
                    "action": "ldp",
                    "epsilon": 1.0,
                    "bounds": [0, 1000],
                    "mechanism": "laplace",
                },
                "gender": {
                    "type": "string",
                    "action": "ldp",
                    "epsilon": 0.5,
                    "categories": ["f", "m"],
                },
            }
        },
        "s.yaml",
    )
    assert schema.column("income").ldp_params == LdpSpec(
        type="float", mechanism="laplace", epsilon=1.0, bounds=(0, 1000)
    )
    assert schema.column("gender").ldp_params == LdpSpec(
        type="string",
        epsilon=0.5,
        categories=("f", "m"),
        other="other",  # the default bucket
    )


# --------------------------------------------------------------------------- issue 13


def _ldp_schema(**gender):
    return {
        "record_key": "id",
        "columns": {
            "id": {"type": "string", "action": "tokenize"},
            "gender": {"type": "string", "action": "ldp", "epsilon": 1.0, **gender},
        },
    }


def test_an_ldp_column_cannot_be_the_record_key():
    """Issue 13.2: the record key is a PRF input of every ldp column; a noisy column as its
    own key would key each record's noise on the value it hides."""
    data = _ldp_schema(categories=["f", "m"])
    data["record_key"] = "gender"
    with pytest.raises(ConfigError, match="s.yaml: record_key: .*ldp column"):
        parse_schema(data, "s.yaml")


def test_out_of_list_categories_map_to_other_unless_quarantine_is_asked():
    """Issue 13.5: quarantining a value outside `categories` depends on the private value.
    By default such values map to the `other` bucket (declared or defaulted to "other"),
    inside the mechanism's domain; `out_of_domain: quarantine` keeps the old behaviour."""
    default = parse_schema(_ldp_schema(categories=["f", "m"]), "s.yaml").column("gender")
    assert default.ldp_params.other == "other"
    assert category_domain(default.ldp_params.categories, default.ldp_params.other) == (
        "f",
        "m",
        "other",
    )
    listed = parse_schema(_ldp_schema(categories=["f", "m", "other"]), "s.yaml").column("gender")
    assert category_domain(listed.ldp_params.categories, listed.ldp_params.other) == (
        "f",
        "m",
        "other",
    )
    named = parse_schema(_ldp_schema(categories=["f", "m"], other="x"), "s.yaml").column("gender")
    assert named.ldp_params.other == "x"
    strict = parse_schema(
        _ldp_schema(categories=["f", "m"], out_of_domain="quarantine"), "s.yaml"
    ).column("gender")
    assert strict.ldp_params.other is None and strict.params["out_of_domain"] == "quarantine"
    assert strict.ldp_params == LdpSpec(type="string", epsilon=1.0, categories=("f", "m"))


@pytest.mark.parametrize(
    "gender, message",
    [
        ({"out_of_domain": "drop"}, "columns.gender.out_of_domain: must be one of"),
        (
            {"other": "x", "out_of_domain": "quarantine"},
            "columns.gender.out_of_domain: .*other",
        ),
    ],
)
def test_out_of_domain_option_is_checked(gender, message):
    with pytest.raises(ConfigError, match=message):
        parse_schema(_ldp_schema(categories=["f", "m"], **gender), "s.yaml")
