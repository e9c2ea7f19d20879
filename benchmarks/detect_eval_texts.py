"""Labelled free-text sentences for the scrub evaluation, in a tuning and a held-out half.

The templates are this benchmark's own (clinical, HR, police, social-media, genealogy,
banking and chat notes), none of them from `tests/labelled_data.py`; each template belongs
to exactly one part, and each part draws its values from Faker and mimesis under its own
seed. Three parts: `tuning` (rules may be tuned on it), `heldout` (the first held-out half,
seen while tuning: "held-out (old)") and `fresh` (templates written after the old
held-out's figures were known, without reading privgate's rules; its names come whole from
one library, so PERSON recall is reported for Faker and mimesis names apart). Gold spans
are exact character offsets of the inserted values.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from benchmarks.detect_eval_values import TITLES, Values, in_faker_name_lists

HALVES = ("tuning", "heldout", "fresh")

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
# The fresh held-out part: written at once, committed before it was first run, without
# reading privgate's recognizers (only their README summary was known). New settings:
# discharge notes, references, KYC, court, forum moderation, obituaries, campaigns, vets,
# pharmacy labels, councils, payroll...
FRESH_TEMPLATES: tuple[str, ...] = (
    "Discharge summary: {PERSON} ({AGE}) left the ward with her daughter; GP surgery phone "
    "{PHONE_NUMBER}.",
    "Landlord reference for {PERSON:first_last}, who rented {STREET_ADDRESS} in "
    "{LOCATION:city} for three years.",
    "{ORGANIZATION} confirmed that {PERSON} resigned from the board on Friday.",
    "Donation of {~amount} received from {PERSON:titled}; thank-you letter posted to "
    "{STREET_ADDRESS}, {LOCATION}.",
    "KYC check for {PERSON:first_middle_last}: DOB {DATE_OF_BIRTH}, SSN {US_SSN}, reference "
    "{~order}.",
    "The court heard that {PERSON:last_first}, a {NRP:nationality} citizen living in "
    "{LOCATION:city}, had overstayed his visa.",
    "Refund of {~amount} issued to card {CREDIT_CARD}; the customer read out the security "
    "number {CVV} over the phone.",
    "Forum moderator {USERNAME:plain} banned {USERNAME:handle} for doxxing {PERSON}.",
    "Wire transfer to {IBAN_CODE} flagged; the beneficiary, {PERSON}, works at {ORGANIZATION}.",
    "Login from an unknown device at {IP_ADDRESS}; if this was not you, {PERSON:given}, "
    "reset your password.",
    "Obituary: {PERSON:first_middle_last}, {AGE:num}, of {LOCATION:city}, a lifelong "
    "{NRP:religion} and volunteer at {ORGANIZATION}.",
    "Campaign volunteer sign-up: {PERSON}, registered {NRP:party}, phone {PHONE_NUMBER}, "
    "email {EMAIL_ADDRESS}.",
    "Vet clinic: the owner of the dog Biscuit, {PERSON:titled}, lives at "
    "{STREET_ADDRESS:intl}, {ZIP_CODE:intl} {LOCATION:city}.",
    "Boarding pass reissued for {PERSON:last_title_first} after seat {~room} was "
    "double-booked, fare {~amount}.",
    "Conference badge: {PERSON:initial_last}, {ORGANIZATION}, {LOCATION}.",
    "Reminder: the interview with {PERSON:given} is moved to Tuesday; reach her at "
    "{EMAIL_ADDRESS} or {PHONE_NUMBER:intl}.",
    "Tenant {PERSON:surname} disputes the deposit deduction for the flat at "
    "{STREET_ADDRESS}, {ZIP_CODE}.",
    "Firewall blocked {IP_ADDRESS} after repeated attempts against the account of "
    "{USERNAME:plain}.",
    "Our records show {PERSON:last_first} (born {DATE_OF_BIRTH}) as the named driver on "
    "policy {~policy}.",
    "The {NRP:nationality} delegation was led by {PERSON}, who later met {ORGANIZATION} "
    "executives in {LOCATION:city}.",
    "Parish newsletter: congratulations to {PERSON} and {PERSON} on their wedding at St "
    "Mary's; the couple is {NRP:religion}.",
    "Pharmacy label: {PERSON:initials_last}, {AGE}, take one tablet twice daily; prescriber "
    "{PERSON:titled}.",
    "Unsubscribe request from {EMAIL_ADDRESS}, who says {ORGANIZATION} kept mailing "
    "{STREET_ADDRESS:intl} after the move.",
    "Streamer {USERNAME:handle} posted the home address of {PERSON}; the clip is still up "
    "at {USERNAME:url}.",
    "Payroll correction: {PERSON:first_last}, SSN {US_SSN}, was paid twice in March into "
    "{IBAN_CODE}.",
    "Zip code {ZIP_CODE} has the highest claim rate this quarter, see ticket {~ticket}.",
    "Councillor {PERSON}, elected as a {NRP:party} candidate in {LOCATION}, declared gifts "
    "from {ORGANIZATION}.",
    "Invoice {~order} covers {~qty} seats of {~sku}, build {~version}, total {~amount}.",
    "Subscription renewed on card {CREDIT_CARD}, CVV2 {CVV}, for {USERNAME:url}.",
    "Case {~case}: {PERSON:given} said the stalker knew her date of birth, {DATE_OF_BIRTH}, "
    "and her zip, {ZIP_CODE}.",
)
TEMPLATES = {half: tuple(p[i] for p in TEMPLATE_PAIRS) for i, half in enumerate(HALVES[:2])}
TEMPLATES["fresh"] = FRESH_TEMPLATES
# PERSON sources in the fresh part: a whole name from Faker, from mimesis, or from mimesis
# with no word in any of Faker's name lists (so not in privgate's name gazetteer).
PERSON_SOURCES = ("faker", "mimesis", "mimesis-unlisted")
_SLOT = re.compile(r"\{(~?)(\w+)(?::(\w+))?\}")
_TITLE_WORDS = frozenset(t.lower() for t in TITLES)


class Gold(NamedTuple):
    """A labelled span: text[start:end] == value, in a named form (`last_first`, `intl`),
    from a named source (`PERSON_SOURCES`, fresh part only; else "")."""

    start: int
    end: int
    entity: str
    value: str
    form: str = ""
    source: str = ""


class LabelledText(NamedTuple):
    """A generated sentence, its gold spans and its look-alike (negative) spans."""

    text: str
    gold: list
    negatives: list
    template: int


def _person_source(lib: str, name: str) -> str:
    if lib == "faker":
        return "faker"
    words = [w for w in re.findall(r"[^\W\d_]{2,}", name) if w.lower() not in _TITLE_WORDS]
    return "mimesis" if any(in_faker_name_lists(w) for w in words) else "mimesis-unlisted"


def _value(v: Values, entity: str, fmt: str | None, half: str) -> tuple[str, str, str]:
    """(form, value, source) for a gold slot; the form names the value's format
    (`last_first`), the source where a fresh part's name came from."""
    if entity == "PERSON":
        if half != "fresh":
            return (*v.person_as(fmt or "any"), "")
        lib = v.rng.choice(("faker", "mimesis"))
        form, name = v.person_as(fmt or "any", lib=lib)
        return form, name, _person_source(lib, name)
    if entity == "LOCATION" and fmt != "city":
        if v.rng.random() < 0.7:
            return "state", v.state(), ""
        return "city_state", f"{v.city()}, {v.state_abbr()}", ""
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
    return fmt or "default", make(), ""


def fill(template: str, v: Values, half: str = "") -> tuple[str, list[Gold], list[Gold]]:
    """One sentence from a template: (text, gold spans, negative spans)."""
    text, gold, neg, pos = "", [], [], 0
    for m in _SLOT.finditer(template):
        text += template[pos : m.start()]
        negative, name, fmt = m.group(1), m.group(2), m.group(3)
        form, value, source = (
            (name, v.negative(name), "") if negative else _value(v, name, fmt, half)
        )
        span = Gold(len(text), len(text) + len(value), name, value, form, source)
        (neg if negative else gold).append(span)
        text += value
        pos = m.end()
    return text + template[pos:], gold, neg


def make_texts(n: int, seed: int | str, half: str) -> list[LabelledText]:
    """`n` labelled sentences of one half (its own templates, its own value seed).

    Args:
        n: sentences.
        seed: base seed; each part derives its own (same seed, same sentences).
        half: "tuning", "heldout" or "fresh".
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
        text, gold, neg = fill(templates[t], v, half)
        out.append(LabelledText(text, gold, neg, t))
    return out


def entities_in(half: str) -> set[str]:
    """Gold entities the templates of a half can produce."""
    return {m.group(2) for t in TEMPLATES[half] for m in _SLOT.finditer(t) if not m.group(1)}
