"""Tests for transforms.detect.scrub: operators, nulls and types, allow lists, pseudonyms."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from transforms.actions import KeyedOps
from transforms.detect.engine import Span
from transforms.detect.scrub import apply_spans, scrub_array


def _ops(seed: bytes = b"a") -> KeyedOps:
    return KeyedOps(seed * 32, seed * 64, seed * 32)


# --------------------------------------------------------------------------- scrub

SCRUB_TEXT = "Call 212-555-0147 or mail jane.doe@example.org, see page 4."
SCRUB = [
    ("replace", "Call <PHONE_NUMBER> or mail <EMAIL_ADDRESS>, see page 4."),
    ("redact", "Call  or mail , see page 4."),
    ("mask", "Call ************ or mail ********************, see page 4."),
]


@pytest.mark.parametrize("operator, expected", SCRUB)
def test_scrub_replaces_pii_and_leaves_the_rest(det, operator, expected):
    out = scrub_array(pa.array([SCRUB_TEXT]), analyzer=det, operator=operator)
    assert out.to_pylist() == [expected]


def test_scrub_keeps_nulls_types_and_clean_cells(det):
    cells = [SCRUB_TEXT, None, "", "   ", "nothing personal here", SCRUB_TEXT]
    chunked = pa.chunked_array([pa.array(cells[:3]), pa.array(cells[3:])])
    out = scrub_array(chunked, analyzer=det)
    assert out.to_pylist() == [SCRUB[0][1], None, "", "   ", "nothing personal here", SCRUB[0][1]]
    large = scrub_array(pa.array(cells, pa.large_string()), analyzer=det)
    assert large.type == pa.large_string() and large.null_count == 1


def test_scrub_entity_choice_operators_and_allow_list(det):
    text = "Mail jane.doe@example.org or help@example.com from 192.0.2.44."
    out = scrub_array(
        pa.array([text]),
        analyzer=det,
        entities=["EMAIL_ADDRESS", "IP_ADDRESS"],
        operator="replace",
        operators={"IP_ADDRESS": "mask"},
        allow_list=["help@example.com"],
    )
    assert out.to_pylist() == ["Mail <EMAIL_ADDRESS> or help@example.com from **********."]
    only_ip = scrub_array(pa.array([text]), analyzer=det, entities=["IP_ADDRESS"])
    assert only_ip.to_pylist() == [text.replace("192.0.2.44", "<IP_ADDRESS>")]


def test_scrub_tokenize_is_consistent_per_keyring(det):
    cells = [
        "Call 212-555-0147 now.",
        "Mail jane.doe@example.org.",
        None,
        "Again 212-555-0147, not 646-555-0111.",
    ]
    a1 = scrub_array(pa.array(cells), analyzer=det, operator="tokenize", ops=_ops(b"a"))
    a2 = scrub_array(pa.array(cells[::-1]), analyzer=det, operator="tokenize", ops=_ops(b"a"))
    b = scrub_array(pa.array(cells), analyzer=det, operator="tokenize", ops=_ops(b"b"))
    first, mail, none, last = a1.to_pylist()
    tok = re.compile(r"<PHONE_NUMBER_([0-9a-f]{6})>")
    same = tok.search(first).group(1)
    assert tok.findall(last) == [same, tok.findall(last)[1]] and tok.findall(last)[1] != same
    assert re.fullmatch(r"Mail <EMAIL_ADDRESS_[0-9a-f]{6}>\.", mail) and none is None
    assert a2.to_pylist()[::-1] == a1.to_pylist()  # rows and order do not matter
    assert tok.search(b.to_pylist()[0]).group(1) != same  # another keyring, another name
    assert "212-555-0147" not in " ".join(filter(None, a1.to_pylist()))


def test_scrub_tokenize_needs_keys_and_known_operators(det):
    with pytest.raises(ValueError, match="keyed ops"):
        scrub_array(pa.array(["x"]), analyzer=det, operator="tokenize")
    with pytest.raises(ValueError, match="unknown scrub operator"):
        scrub_array(pa.array(["x"]), analyzer=det, operators={"PERSON": "hash"})


NESTED_TEXT = "Employer Morgan Stanley, passport holder Berg, French."
NESTED = [
    # two readings of the same words: the higher-scored one names the replacement
    (
        [Span(9, 23, "ORGANIZATION", 0.85), Span(9, 23, "PERSON", 0.86)],
        "Employer <PERSON>, passport holder Berg, French.",
    ),
    # a finding inside a covering span of another entity is hidden by it, once
    (
        [Span(41, 53, "PERSON", 0.86), Span(47, 53, "NRP", 0.85)],
        "Employer Morgan Stanley, passport holder <PERSON>.",
    ),
]


@pytest.mark.parametrize("spans, expected", NESTED)
@pytest.mark.parametrize("order", [1, -1])
def test_apply_spans_replaces_a_covering_span_once(spans, expected, order):
    assert apply_spans(NESTED_TEXT, spans[::order]) == expected
    masked = apply_spans(NESTED_TEXT, spans[::order], operator="mask")
    assert len(masked) == len(NESTED_TEXT)
