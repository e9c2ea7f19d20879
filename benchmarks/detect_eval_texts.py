"""Labelled free-text sentences for the scrub evaluation, in a tuning and a held-out half.

The templates are this benchmark's own (clinical, HR, police, social-media, genealogy,
banking and chat notes), none of them from `tests/labelled_data.py`; each template belongs
to exactly one half, and each half draws its values from Faker and mimesis under its own
seed. Gold spans are exact character offsets of the inserted values.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from benchmarks.detect_eval_values import Values

HALVES = ("tuning", "heldout")

# Gold entity -> the predicted entity types that count as finding it. Presidio has no
# street-address, zip, age, user-name or CVV recognizer: its LOCATION, DATE_TIME and URL
# findings count for those. A recognizer privgate adds under a new entity name must be
# listed here, or its findings count as wrong-type (precision) and not found (recall).
ACCEPTS: dict[str, frozenset] = {
    "PERSON": frozenset({"PERSON"}),
    "EMAIL_ADDRESS": frozenset({"EMAIL_ADDRESS"}),
    "PHONE_NUMBER": frozenset({"PHONE_NUMBER"}),
    "CREDIT_CARD": frozenset({"CREDIT_CARD"}),
    "CVV": frozenset({"CVV", "CREDIT_CARD_CVV", "CARD_SECURITY_CODE"}),
    "US_SSN": frozenset({"US_SSN"}),
    "IBAN_CODE": frozenset({"IBAN_CODE"}),
    "IP_ADDRESS": frozenset({"IP_ADDRESS"}),
    "STREET_ADDRESS": frozenset({"STREET_ADDRESS", "ADDRESS", "LOCATION"}),
    "LOCATION": frozenset({"LOCATION", "STREET_ADDRESS", "ADDRESS"}),
    "ZIP_CODE": frozenset({"ZIP_CODE", "LOCATION", "STREET_ADDRESS", "ADDRESS"}),
    "ORGANIZATION": frozenset({"ORGANIZATION"}),
    "AGE": frozenset({"AGE", "DATE_TIME"}),
    "NRP": frozenset({"NRP"}),
    "DATE_OF_BIRTH": frozenset({"DATE_OF_BIRTH", "DATE_TIME"}),
    "USERNAME": frozenset({"USERNAME", "USER_NAME", "SOCIAL_HANDLE", "HANDLE", "URL"}),
}
GOLD_ENTITIES = tuple(ACCEPTS)

# (tuning, held-out) template pairs: the two members of a pair cover the same entities in
# different words and settings. {ENTITY} or {ENTITY:format} is a gold slot; {~kind} a
# look-alike that identifies no one (ticket and order numbers, amounts, versions...).
TEMPLATE_PAIRS: tuple[tuple[str, str], ...] = (
    (
        "Patient {PERSON} ({AGE}) was admitted on referral from Dr. {PERSON:surname}; "
        "contact number {PHONE_NUMBER}.",
        "Triage note: {PERSON:first_last}, {AGE}, brought in by a neighbour, next of kin "
        "reachable on {PHONE_NUMBER}.",
    ),
    (
        "{PERSON} joined {ORGANIZATION} as a payroll clerk; salary goes to IBAN {IBAN_CODE}.",
        "Offer letter for {PERSON} at {ORGANIZATION}: first salary payment to account {IBAN_CODE}.",
    ),
    (
        "Please update my mailing address to {STREET_ADDRESS}, {LOCATION:city} {ZIP_CODE}.",
        "New tenant moved into {STREET_ADDRESS} in {LOCATION:city}, zip {ZIP_CODE}.",
    ),
    (
        "Account {USERNAME:handle} was suspended after posts targeting {PERSON}.",
        "Reported profile: {USERNAME:url}, which impersonates {PERSON}.",
    ),
    (
        "Card {CREDIT_CARD} with security code {CVV} was used from IP {IP_ADDRESS}.",
        "Chargeback filed: card number {CREDIT_CARD} (CVV {CVV}) was charged twice, the "
        "login came from {IP_ADDRESS}.",
    ),
    (
        "Applicant {PERSON:last_first} gave SSN {US_SSN} and date of birth {DATE_OF_BIRTH}.",
        "Verification failed for {PERSON:titled}: social security no. {US_SSN}, born "
        "{DATE_OF_BIRTH}.",
    ),
    (
        "Manifest entry: {PERSON:last_title_first}, ticket {~ticket}, embarked at {LOCATION:city}.",
        "Passenger {PERSON:last_title_first} held ticket {~ticket} and paid {~amount}.",
    ),
    (
        "{PERSON}, a {NRP:party} member from {LOCATION:state}, spoke at the town hall.",
        "The {NRP:party} senator {PERSON} told reporters in {LOCATION:city} that the vote "
        "would pass.",
    ),
    (
        "The witness, a {NRP:nationality} national aged {AGE:num}, gave her statement to {PERSON}.",
        "Visa file: {PERSON}, {NRP:nationality} citizen, {AGE}, works for {ORGANIZATION}.",
    ),
    (
        "Best regards, {PERSON} | {ORGANIZATION} | {EMAIL_ADDRESS} | {PHONE_NUMBER}",
        "-- {PERSON}, {ORGANIZATION}, mail: {EMAIL_ADDRESS}, tel. {PHONE_NUMBER}",
    ),
    (
        "hi, it's {PERSON:given} again, can you send the receipt to {EMAIL_ADDRESS}?",
        "{PERSON:given} here - my login is {USERNAME:plain} and the reset link never came",
    ),
    (
        "The flat at {STREET_ADDRESS:intl} in {LOCATION:city} was let to {PERSON}.",
        "Delivery for {PERSON} to {STREET_ADDRESS:intl}, {ZIP_CODE:intl} {LOCATION:city}.",
    ),
    (
        "{PERSON} asked for a {NRP:religion} chaplain before surgery.",
        "Dietary note: the guest is {NRP:religion}; the booking was made by {PERSON}.",
    ),
    (
        "Order {~order} for {~qty} units was refunded ({~amount}); no customer details kept.",
        "Build {~version} fixed the crash reported in case {~case}; see room {~room}.",
    ),
    (
        "{PERSON:first_last}'s guardian, {PERSON}, can be reached at {PHONE_NUMBER} or "
        "{EMAIL_ADDRESS}.",
        "Pupil {PERSON:initial_last} (age {AGE:num}) lives at {STREET_ADDRESS}, "
        "{LOCATION:city}; parent e-mail {EMAIL_ADDRESS}.",
    ),
    (
        "Suspect described as {AGE}; the vehicle is registered to {PERSON} of {STREET_ADDRESS}.",
        "Incident {~case}: the caller, {PERSON}, said the intruder ran towards {STREET_ADDRESS}.",
    ),
    (
        "Direct debit mandate signed by {PERSON}, IBAN {IBAN_CODE}, branch {LOCATION:city}.",
        "Standing order from {IBAN_CODE} to {PERSON} was cancelled by the customer.",
    ),
    (
        "{PERSON:last_title_first} was born on {DATE_OF_BIRTH} in {LOCATION:city}.",
        "Baptism record: {PERSON}, born {DATE_OF_BIRTH}, parish of {LOCATION:city}.",
    ),
    (
        "Failed sudo attempt by user {USERNAME:plain} from {IP_ADDRESS}.",
        "SSH key for {USERNAME:plain} rotated; last seen at {IP_ADDRESS} running {~version}.",
    ),
    (
        "Follow {PERSON} on Twitter at {USERNAME:handle} for updates.",
        "Our new ambassador {PERSON} ({USERNAME:handle}) joins the campaign.",
    ),
    (
        "Claim filed by {PERSON}, {AGE}, policy {~policy}; employer {ORGANIZATION}.",
        "Policyholder {PERSON:last_first} ({AGE}) reported water damage; policy no. {~policy}.",
    ),
    (
        "Missed call from {PHONE_NUMBER:intl}, caller left no message about {~sku}.",
        "Urgent: call {PERSON:given} back on {PHONE_NUMBER:intl} regarding the lease.",
    ),
    (
        "Attendees: {PERSON}, {PERSON} and {PERSON:titled}.",
        "Signed by {PERSON:initials_last} and witnessed by {PERSON}.",
    ),
    (
        "Customer in zip {ZIP_CODE} reported a missing parcel, order {~order}.",
        "Parcel for postcode {ZIP_CODE:intl} was returned to sender, order {~order}.",
    ),
    (
        "Card on file {CREDIT_CARD} expires soon; reminder sent to {USERNAME:url}.",
        "Please never write the CVC {CVV} or card {CREDIT_CARD} in a ticket again.",
    ),
    (
        "W-2 for {PERSON}, SSN {US_SSN}, was e-mailed to {EMAIL_ADDRESS} by mistake.",
        "The tax form sent to {EMAIL_ADDRESS} listed the SSN {US_SSN} of {PERSON:last_first}.",
    ),
    (
        "Stock check: {~qty} boxes of {~sku} left in room {~room}, total {~amount}.",
        "Release {~version} ships order {~order} with {~qty} licences for {~amount}.",
    ),
)
TEMPLATES = {half: tuple(p[i] for p in TEMPLATE_PAIRS) for i, half in enumerate(HALVES)}
_SLOT = re.compile(r"\{(~?)(\w+)(?::(\w+))?\}")


class Gold(NamedTuple):
    """A labelled span: text[start:end] == value, in a named form (`last_first`, `intl`)."""

    start: int
    end: int
    entity: str
    value: str
    form: str = ""


class LabelledText(NamedTuple):
    """A generated sentence, its gold spans and its look-alike (negative) spans."""

    text: str
    gold: list
    negatives: list
    template: int


def _value(v: Values, entity: str, fmt: str | None) -> tuple[str, str]:
    """(form, value) for a gold slot; the form names the value's format (`last_first`)."""
    if entity == "PERSON":
        return v.person_as(fmt or "any")
    if entity == "LOCATION" and fmt != "city":
        if v.rng.random() < 0.7:
            return "state", v.state()
        return "city_state", f"{v.city()}, {v.state_abbr()}"
    make = {
        "EMAIL_ADDRESS": v.email,
        "PHONE_NUMBER": lambda: v.phone(intl=fmt == "intl"),
        "CREDIT_CARD": v.card,
        "CVV": v.cvv,
        "US_SSN": v.ssn,
        "IBAN_CODE": v.iban,
        "IP_ADDRESS": v.ip,
        "STREET_ADDRESS": lambda: v.street_address(intl=fmt == "intl"),
        "LOCATION": v.city,
        "ZIP_CODE": lambda: v.zip_code(intl=fmt == "intl"),
        "ORGANIZATION": lambda: v.company().rstrip("."),
        "AGE": lambda: str(v.age()) if fmt == "num" else v.age_phrase(),
        "NRP": {"party": v.party, "religion": v.religion}.get(fmt, v.nationality),
        "DATE_OF_BIRTH": v.birth_date,
        "USERNAME": {"handle": v.handle, "url": v.profile_url}.get(fmt, v.username),
    }[entity]
    return fmt or "default", make()


def fill(template: str, v: Values) -> tuple[str, list[Gold], list[Gold]]:
    """One sentence from a template: (text, gold spans, negative spans)."""
    text, gold, neg, pos = "", [], [], 0
    for m in _SLOT.finditer(template):
        text += template[pos : m.start()]
        negative, name, fmt = m.group(1), m.group(2), m.group(3)
        form, value = (name, v.negative(name)) if negative else _value(v, name, fmt)
        span = Gold(len(text), len(text) + len(value), name, value, form)
        (neg if negative else gold).append(span)
        text += value
        pos = m.end()
    return text + template[pos:], gold, neg


def make_texts(n: int, seed: int | str, half: str) -> list[LabelledText]:
    """`n` labelled sentences of one half (its own templates, its own value seed).

    Args:
        n: sentences.
        seed: base seed; each half derives its own (same seed, same sentences).
        half: "tuning" or "heldout".
    Returns:
        LabelledText list; templates are used round-robin, so every entity of the half
        appears once `n` >= the number of templates.
    """
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}")
    v = Values(f"{seed}:texts:{half}")
    templates = TEMPLATES[half]
    order = list(range(len(templates)))
    out = []
    for i in range(n):
        if i % len(order) == 0:
            v.rng.shuffle(order)
        t = order[i % len(order)]
        text, gold, neg = fill(templates[t], v)
        out.append(LabelledText(text, gold, neg, t))
    return out


def entities_in(half: str) -> set[str]:
    """Gold entities the templates of a half can produce."""
    return {m.group(2) for t in TEMPLATES[half] for m in _SLOT.finditer(t) if not m.group(1)}
