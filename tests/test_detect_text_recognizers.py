"""Tests for privgate's free-text recognizers: street addresses, user names, CVVs, name forms.

Every string is written here (made-up people and places); each row states the exact span the
Detector must report (through `get_detector`, as scrub uses it) and why.
"""

from __future__ import annotations

import pytest


def _found(det, text):
    return [(s.entity, text[s.start : s.end]) for s in det.detect([text])[0]]


ADDRESSES = [
    # US: number, direction, street, suffix, unit
    ("Ship it to 123 N Main St Apt 4B tomorrow.", "123 N Main St Apt 4B"),
    # US: suffix spelt out, suite after a comma
    ("Office at 4521 Oak Hill Road, Suite 200 closed.", "4521 Oak Hill Road, Suite 200"),
    # US: numbered street
    ("She moved to 55 5th Avenue last year.", "55 5th Avenue"),
    # US: city, state and ZIP after the street line belong to the address
    ("Ship to 12 Elm St, Springfield, IL 62704 now.", "12 Elm St, Springfield, IL 62704"),
    # US: PO box with dots
    ("Mail the form to P.O. Box 7781 please.", "P.O. Box 7781"),
    # US: PO box without dots
    ("Returns go to PO Box 55.", "PO Box 55"),
    # Senate office building
    ("Write to 317 Hart Senate Office Building about it.", "317 Hart Senate Office Building"),
    # German: compound street name, house number
    ("Die Wohnung in der Hauptstraße 5 ist frei.", "Hauptstraße 5"),
    # German: abbreviated Str. with a letter suffix
    ("Lieferung an Berliner Str. 12a bitte.", "Berliner Str. 12a"),
    # Dutch: -straat
    ("Het pakket ging naar Kerkstraat 31.", "Kerkstraat 31"),
    # French: number first, article in the name
    ("He lives at 12 rue de la Paix now.", "12 rue de la Paix"),
    # French: number, comma, avenue
    ("Siège : 3, avenue Victor Hugo.", "3, avenue Victor Hugo"),
    # Spanish: calle, name, number after a comma
    ("La oficina está en Calle Mayor, 15 desde enero.", "Calle Mayor, 15"),
    # Italian: via, name, number
    ("Abito in Via Roma 10 da due anni.", "Via Roma 10"),
]


@pytest.mark.parametrize("text, span", ADDRESSES)
def test_street_addresses(det, text, span):
    assert ("STREET_ADDRESS", span) in _found(det, text)


USERNAMES = [
    # @handle in a sentence
    ("Follow @jdoe_42 for updates.", "@jdoe_42"),
    # @handle at the start, with a dot
    ("@anna.k posted it first.", "@anna.k"),
    # profile URL with scheme and www
    ("See https://www.instagram.com/anna_k for photos.", "https://www.instagram.com/anna_k"),
    # LinkedIn /in/ path
    (
        "CV: https://www.linkedin.com/in/jane-doe-12 today.",
        "https://www.linkedin.com/in/jane-doe-12",
    ),
    # TikTok /@ path, no scheme
    ("Clip on www.tiktok.com/@danceking99 went viral.", "www.tiktok.com/@danceking99"),
    # YouTube /user/ path
    (
        "Channel https://www.youtube.com/user/SenSmith is old.",
        "https://www.youtube.com/user/SenSmith",
    ),
    # `user:` context, the value only
    ("Ticket raised, user: jdoe42, no reply.", "jdoe42"),
    # `login is` context
    ("His login is mark.t_77 on the portal.", "mark.t_77"),
    # `username:` context with a lower-case plain word
    ("Failed sudo attempt, username: emildavidsson, from home.", "emildavidsson"),
    # a capitalised non-word right after `user`
    ("Failed sudo attempt by user Patentspatterns from home.", "Patentspatterns"),
]


@pytest.mark.parametrize("text, span", USERNAMES)
def test_user_names_and_handles(det, text, span):
    assert ("USERNAME", span) in _found(det, text)


@pytest.mark.parametrize(
    "text",
    [
        "The user interface was slow.",  # a word after `user`, no separator
        "Each user has a quota.",  # no value at all
        "Open your account settings.",  # weak label, plain word
    ],
)
def test_plain_words_after_user_are_no_user_names(det, text):
    assert not [f for f in _found(det, text) if f[0] == "USERNAME"]


def test_an_email_address_is_not_a_handle(det):
    found = _found(det, "Write to jane.doe@example.com today.")
    assert ("EMAIL_ADDRESS", "jane.doe@example.com") in found
    assert not [f for f in found if f[0] == "USERNAME"]


POSTCODES = [
    # a UK postcode after a town, and one alone
    ("Ship it to 14 Abbey Road, London NW8 9AY by Friday.", "NW8 9AY"),
    ("Send the form to EC1A 1BB.", "EC1A 1BB"),
    # a Canadian one
    ("Our Ottawa office is at K1A 0B1 now.", "K1A 0B1"),
]


@pytest.mark.parametrize("text, span", POSTCODES)
def test_postcodes_with_their_own_shape_need_no_label(det, text, span):
    assert ("LOCATION", span) in _found(det, text)


@pytest.mark.parametrize(
    "text",
    [
        "Order A12 345 and the B52 bomber; COVID19 rates; model X5 2DR.",  # X: no UK area
        "Part number AB12 3CD in stock.",  # C: never in a UK postcode's last two letters
        "Shipped 12345 units in 2023.",  # digits alone need the label
    ],
)
def test_code_shapes_that_are_no_postcode(det, text):
    assert not [f for f in _found(det, text) if f[0] == "LOCATION"]


CVVS = [
    # CVV then the digits
    ("Card ending 4242, CVV 123, expired.", "123"),
    # CVC2 with a colon
    ("CVC2: 0457 was typed in the chat.", "0457"),
    # spelt out, with `code` and a colon
    ("The security code: 981 is on the back.", "981"),
    # card verification value in brackets
    ("card verification value (312) given", "312"),
]


@pytest.mark.parametrize("text, span", CVVS)
def test_cvv_with_context(det, text, span):
    assert ("CVV", span) in _found(det, text)


def test_three_digits_without_context_are_no_cvv(det):
    assert not [f for f in _found(det, "Room 123 is on floor 4.") if f[0] == "CVV"]


NAMES = [
    # passenger-list form: Last, Title. First Middle
    ("Braund, Mr. Owen Harris paid the fare.", "Braund, Mr. Owen Harris"),
    # with a maiden name in brackets
    (
        "Cumings, Mrs. John Bradley (Florence Briggs Thayer) boarded.",
        "Cumings, Mrs. John Bradley (Florence Briggs Thayer)",
    ),
    # Last, First with a gazetteer given name
    ("Applicant Smith, Jennifer gave her SSN.", "Smith, Jennifer"),
    # Last, First Middle-initial
    ("Signed: Walker, Thomas J. on the form.", "Walker, Thomas J."),
    # NER calls it an organization: an initial and a known surname
    ("The witness gave her statement to B. Hughes.", "B. Hughes"),
    # NER calls it an organization: a given name first
    ("W-2 for Brigitte Marchand was e-mailed by mistake.", "Brigitte Marchand"),
    # a lone given name from the gazetteer
    ("hi, it's Antonietta again, can you call?", "Antonietta"),
]


@pytest.mark.parametrize("text, span", NAMES)
def test_name_forms(det, text, span):
    assert ("PERSON", span) in _found(det, text)


def test_a_firm_name_is_not_last_first(det):
    """`Simpson, Lambert and Parks` is a law firm, not Lambert Simpson."""
    found = _found(det, "Best regards | Simpson, Lambert and Parks | 202-224-9038")
    assert ("PERSON", "Simpson, Lambert") not in found


def test_gazetteer_is_loaded_once_from_faker():
    from transforms.detect.text_recognizers import _name_lists, name_gazetteer

    names = name_gazetteer()
    assert {"jennifer", "smith", "müller", "dupont"} <= names
    assert "the" not in names and "may" not in names  # common words left out
    assert name_gazetteer() is names
    misses = _name_lists.cache_info().misses
    name_gazetteer(), _name_lists(), _name_lists(core=True)
    assert _name_lists.cache_info().misses == misses <= 2  # each list read once


@pytest.mark.parametrize(
    "text, kept",
    [
        # a nationality after a full name is no given name in `Last, First` form
        ("Signed by Tom Lee, Australian, of BHP Group.", ("NRP", "Australian")),
        # NER splits a law firm; the part it calls an organization stays one
        (
            "She has worked at Buckley, Thompson and Gordon since spring.",
            ("ORGANIZATION", "Buckley, Thompson"),
        ),
        # a Spanish company with its legal form
        (
            "She has worked at Isaura Rius Bertrán S.L.N.E since spring.",
            ("ORGANIZATION", "Isaura Rius Bertrán"),
        ),
    ],
)
def test_nationalities_and_firms_are_not_turned_into_people(det, text, kept):
    assert kept in _found(det, text)
