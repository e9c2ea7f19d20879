"""Labelled tables for the column-classification evaluation, in a tuning and a held-out half.

Six table shapes modelled on public exports (a fake-identity CSV with CamelCase headers, a
legislators list, a passenger manifest, a census extract, a CRM export with abbreviated
headers, a French / German / Italian customer file). Every column carries a class a privacy engineer
would give it: direct identifier, quasi-identifier or other. Each header is spelt
differently in the two halves, and no header of one half appears in the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from benchmarks.detect_eval_texts import HALVES, make_texts
from benchmarks.detect_eval_values import Values

DIRECT, QUASI, OTHER = "direct", "quasi", "other"
CLASSES = (DIRECT, QUASI, OTHER)


class Concept(NamedTuple):
    """What a column holds: its class, a description (no value), how to make one value."""

    klass: str
    what: str
    make: Callable  # (Values, locale or None) -> str or None
    blank: float = 0.0  # share of empty cells
    free_text: bool = False


def _choice(*options):
    return lambda v, loc: v.rng.choice(options)


def _int(lo, hi):
    return lambda v, loc: str(v.rng.randint(lo, hi))


NAMESETS = ("American", "Dutch", "German", "French", "Italian", "Hispanic", "Polish", "Swedish")
CENSUS_COUNTRIES = ("Mexico", "Philippines", "Germany", "Canada", "India", "Cuba", "England", "?")
CONCEPTS: dict[str, Concept] = {
    # ---- direct identifiers
    "given": Concept(DIRECT, "given name alone", lambda v, loc: v.given(loc)),
    "surname": Concept(DIRECT, "surname alone", lambda v, loc: v.surname(loc)),
    "maiden": Concept(DIRECT, "mother's maiden name", lambda v, loc: v.surname(loc)),
    "official_name": Concept(
        DIRECT,
        "First [Middle|initial] Last",
        lambda v, loc: v.person(v.rng.choice(("first_last", "first_middle_last", "initial_last"))),
    ),
    "passenger_name": Concept(
        DIRECT, "Last, Title. First Middle", lambda v, loc: v.person("last_title_first")
    ),
    "street": Concept(DIRECT, "US street address", lambda v, loc: v.street_address()),
    "street_intl": Concept(
        DIRECT, "European street address", lambda v, loc: v.street_address(locale=loc)
    ),
    "office_address": Concept(DIRECT, "office street address", lambda v, loc: v.office_address()),
    "email": Concept(DIRECT, "e-mail", lambda v, loc: v.email()),
    "phone": Concept(DIRECT, "phone number", lambda v, loc: v.phone(locale=loc)),
    "office_phone": Concept(DIRECT, "office phone", lambda v, loc: v.phone()),
    "username": Concept(DIRECT, "login user name", lambda v, loc: v.username()),
    "handle_plain": Concept(DIRECT, "social handle, no @", lambda v, loc: v.handle_name()),
    "handle_at": Concept(DIRECT, "social handle, @name", lambda v, loc: v.handle(), 0.3),
    "youtube": Concept(
        DIRECT,
        "video channel name or id",
        lambda v, loc: (
            v.handle_name()
            if v.rng.random() < 0.6
            else "UC"
            + "".join(
                v.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh0123456789_-") for _ in range(22)
            )
        ),
        0.4,
    ),
    "facebook": Concept(DIRECT, "profile URL", lambda v, loc: v.profile_url(), 0.3),
    "website": Concept(
        DIRECT,
        "personal web page",
        lambda v, loc: (
            f"https://www.{v.surname('en').lower().replace(' ', '')}."
            f"{v.rng.choice(('senate', 'house'))}.gov"
        ),
    ),
    "password": Concept(DIRECT, "password", lambda v, loc: v.password()),
    "card": Concept(DIRECT, "card number", lambda v, loc: v.card()),
    "card_sci": Concept(DIRECT, "card number as 4.53E+15", lambda v, loc: v.card_sci()),
    "cvv": Concept(DIRECT, "card security code", lambda v, loc: v.cvv()),
    "ssn": Concept(DIRECT, "US SSN", lambda v, loc: v.ssn()),
    "iban": Concept(DIRECT, "IBAN", lambda v, loc: v.iban(spaced=0.0)),
    "ip": Concept(DIRECT, "IP address", lambda v, loc: v.ip()),
    "guid": Concept(DIRECT, "per-person GUID", lambda v, loc: v.guid()),
    "user_id": Concept(DIRECT, "account id", lambda v, loc: v.user_id()),
    "member_id": Concept(DIRECT, "member id S000148", lambda v, loc: v.member_id()),
    "notes": Concept(DIRECT, "free text with PII", None, 0.3, True),
    # ---- quasi-identifiers
    "title": Concept(QUASI, "title", _choice("Mr.", "Mrs.", "Ms.", "Dr.")),
    "gender_word": Concept(QUASI, "gender Male/Female", lambda v, loc: v.gender()),
    "gender_letter": Concept(QUASI, "gender M/F", lambda v, loc: v.gender("letter")),
    "sex_lower": Concept(QUASI, "sex male/female", lambda v, loc: v.gender("lower")),
    "birthday_us": Concept(QUASI, "birth date m/d/Y", lambda v, loc: v.birth_date("%m/%d/%Y")),
    "birthday_iso": Concept(QUASI, "birth date ISO", lambda v, loc: v.birth_date("%Y-%m-%d")),
    "birthday_eu": Concept(QUASI, "birth date d.m.Y", lambda v, loc: v.birth_date("%d.%m.%Y")),
    "age": Concept(QUASI, "age", lambda v, loc: str(v.age())),
    "age_float": Concept(
        QUASI,
        "age, fractional for infants",
        lambda v, loc: str(v.age()) if v.rng.random() < 0.9 else f"{v.rng.randint(1, 99) / 100}",
        0.2,
    ),
    "zip": Concept(QUASI, "zip / postcode", lambda v, loc: v.zip_code(locale=loc)),
    "city": Concept(QUASI, "city", lambda v, loc: v.city(loc)),
    "state": Concept(QUASI, "state name", lambda v, loc: v.state()),
    "state_code": Concept(QUASI, "state code", lambda v, loc: v.state_abbr()),
    "country": Concept(QUASI, "country", lambda v, loc: v.country(loc)),
    "native_country": Concept(
        QUASI,
        "country of birth",
        lambda v, loc: "United-States" if v.rng.random() < 0.9 else v.rng.choice(CENSUS_COUNTRIES),
    ),
    "nameset": Concept(QUASI, "name origin set", _choice(*NAMESETS)),
    "nationality": Concept(QUASI, "nationality", lambda v, loc: v.nationality(loc)),
    "party": Concept(QUASI, "political party", _choice("Democrat", "Republican", "Independent")),
    "occupation": Concept(QUASI, "occupation", lambda v, loc: v.occupation(loc)),
    "company": Concept(QUASI, "employer", lambda v, loc: v.company()),
    "race": Concept(
        QUASI,
        "race",
        _choice("White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"),
    ),
    "marital": Concept(
        QUASI,
        "marital status",
        _choice("Never-married", "Married-civ-spouse", "Divorced", "Separated", "Widowed"),
    ),
    "education": Concept(
        QUASI,
        "education",
        _choice("Bachelors", "HS-grad", "11th", "Masters", "Some-college", "Doctorate"),
    ),
    "census_occupation": Concept(
        QUASI,
        "occupation group",
        _choice("Adm-clerical", "Exec-managerial", "Prof-specialty", "Sales", "Craft-repair", "?"),
    ),
    "sex_word": Concept(QUASI, "sex Male/Female", _choice("Male", "Female")),
    # ---- other
    "cctype": Concept(OTHER, "card network", _choice("Visa", "MasterCard", "American Express")),
    "blood_type": Concept(OTHER, "blood type", _choice("A+", "A-", "B+", "O+", "O-", "AB+")),
    "kilograms": Concept(OTHER, "weight", lambda v, loc: f"{v.rng.uniform(45, 130):.1f}"),
    "vehicle": Concept(
        OTHER,
        "vehicle model",
        lambda v, loc: (
            f"{v.rng.randint(1995, 2024)} "
            + v.rng.choice(("Toyota Camry", "Ford F-150", "Honda Civic", "Volkswagen Golf"))
        ),
    ),
    "color": Concept(OTHER, "colour", _choice("Blue", "Green", "Red", "Purple", "Black")),
    "chamber": Concept(OTHER, "chamber", _choice("sen", "rep")),
    "district": Concept(OTHER, "district number", _int(1, 53), 0.2),
    "survived": Concept(OTHER, "0/1 flag", _int(0, 1)),
    "pclass": Concept(OTHER, "class 1-3", _int(1, 3)),
    "sibsp": Concept(OTHER, "small count", _int(0, 5)),
    "parch": Concept(OTHER, "small count", _int(0, 4)),
    "ticket": Concept(OTHER, "ticket number", lambda v, loc: v.ticket()),
    "fare": Concept(OTHER, "fare", lambda v, loc: f"{v.rng.uniform(5, 260):.4f}".rstrip("0")),
    "cabin": Concept(
        OTHER, "cabin", lambda v, loc: f"{v.rng.choice('ABCDEFG')}{v.rng.randint(1, 130)}", 0.75
    ),
    "embarked": Concept(OTHER, "port code", _choice("S", "C", "Q")),
    "workclass": Concept(
        OTHER, "work class", _choice("Private", "Self-emp-not-inc", "Local-gov", "State-gov", "?")
    ),
    "fnlwgt": Concept(OTHER, "sampling weight", _int(12285, 1484705)),
    "education_num": Concept(OTHER, "years of education", _int(1, 16)),
    "relationship": Concept(
        OTHER, "household role", _choice("Not-in-family", "Husband", "Wife", "Own-child")
    ),
    "capital_gain": Concept(
        OTHER,
        "amount",
        lambda v, loc: "0" if v.rng.random() < 0.9 else str(v.rng.randint(100, 99999)),
    ),
    "hours": Concept(OTHER, "hours per week", _int(1, 99)),
    "income": Concept(OTHER, "income bracket", _choice("<=50K", ">50K")),
    "plan": Concept(OTHER, "plan", _choice("free", "basic", "pro", "enterprise")),
    "channel": Concept(OTHER, "channel", _choice("organic", "paid_search", "referral", "email")),
    "order_total": Concept(OTHER, "amount", lambda v, loc: f"{v.rng.uniform(1, 900):.2f}"),
    "review": Concept(
        OTHER,
        "free text without PII",
        lambda v, loc: v.fakers["en_US"].paragraph(nb_sentences=v.rng.randint(1, 3)),
        0.2,
        True,
    ),
}

# Shape -> ((concept, tuning header, old held-out header, fresh header), ...). The fresh
# headers were written without reading privgate's name-token table: SCREAMING_SNAKE
# abbreviations, spreadsheet titles, dotted JSON paths, codebook names, camelCase, Italian.
SHAPES: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "identity": (
        ("gender_word", "Gender", "SexAtBirth", "SEX_DESC"),
        ("nameset", "NameSet", "NameOrigin", "NAME_CULTURE"),
        ("title", "Title", "Salutation", "HONORIFIC"),
        ("given", "GivenName", "FirstName", "FIRST_NM"),
        ("surname", "Surname", "LastName", "LAST_NM"),
        ("street", "StreetAddress", "HomeAddress", "ADDR_LINE_1"),
        ("city", "City", "Town", "CITY_NM"),
        ("state", "StateFull", "StateName", "STATE_NM"),
        ("zip", "ZipCode", "PostalCode", "POSTAL_CD"),
        ("country", "CountryFull", "CountryName", "CNTRY_NM"),
        ("email", "EmailAddress", "ContactEmail", "EMAIL_ADDR"),
        ("username", "Username", "LoginName", "USER_LOGIN"),
        ("password", "Password", "UserPassword", "PASSWD"),
        ("phone", "TelephoneNumber", "PhoneNumber", "HOME_PHONE_NO"),
        ("maiden", "MothersMaiden", "MaidenName", "MOTHER_MAIDEN_NM"),
        ("birthday_us", "Birthday", "DateOfBirth", "BIRTH_DT"),
        ("age", "Age", "AgeYears", "AGE_YRS"),
        ("cctype", "CCType", "CardType", "CARD_BRAND"),
        ("card_sci", "CCNumber", "CardNumber", "CARD_NO"),
        ("cvv", "CVV2", "CVC", "CVV_NO"),
        ("ssn", "NationalID", "SocialSecurityNumber", "SSN_NBR"),
        ("occupation", "Occupation", "JobTitle", "OCCUPATION_DESC"),
        ("company", "Company", "Employer", "EMPLOYER_NM"),
        ("blood_type", "BloodType", "BloodGroup", "BLOOD_TYP"),
        ("kilograms", "Kilograms", "WeightKg", "BODY_WT_KG"),
        ("vehicle", "Vehicle", "CarModel", "VEHICLE_DESC"),
        ("guid", "GUID", "RecordGuid", "PERSON_UUID"),
        ("color", "Color", "FavoriteColor", "FAV_COLOUR"),
    ),
    "officials": (
        ("surname", "last_name", "family_name", "Last"),
        ("given", "first_name", "given_name", "First"),
        ("official_name", "full_name", "official_full", "Display Name"),
        ("birthday_iso", "birthday", "birth_date", "Born"),
        ("gender_letter", "gender", "sex_code", "M/F"),
        ("chamber", "type", "chamber", "House or Senate"),
        ("state_code", "state", "state_code", "State (abbr.)"),
        ("district", "district", "district_no", "Dist."),
        ("party", "party", "party_affiliation", "Political Party"),
        ("website", "url", "website", "Official Website"),
        ("office_address", "address", "office_address", "DC Office"),
        ("office_phone", "phone", "office_phone", "DC Phone"),
        ("handle_plain", "twitter", "twitter_handle", "Twitter Account"),
        ("youtube", "youtube", "youtube_channel", "YouTube ID"),
        ("facebook", "facebook", "facebook_page", "Facebook URL"),
        ("member_id", "bioguide_id", "member_id", "Bioguide"),
    ),
    "passengers": (
        ("survived", "Survived", "Rescued", "pax.survived"),
        ("pclass", "Pclass", "TravelClass", "pax.class"),
        ("passenger_name", "Name", "PassengerName", "pax.name"),
        ("sex_lower", "Sex", "PassengerSex", "pax.sex"),
        ("age_float", "Age", "AgeAtBoarding", "pax.age"),
        ("sibsp", "SibSp", "SiblingsSpouses", "pax.sibsp_count"),
        ("parch", "Parch", "ParentsChildren", "pax.parch_count"),
        ("ticket", "Ticket", "TicketNo", "pax.ticket"),
        ("fare", "Fare", "FarePaid", "pax.fare_gbp"),
        ("cabin", "Cabin", "CabinNo", "pax.cabin"),
        ("embarked", "Embarked", "PortOfEmbarkation", "pax.port"),
    ),
    "census": (
        ("age", "age", "age-at-survey", "resp_age"),
        ("workclass", "workclass", "work-class", "class_of_worker"),
        ("fnlwgt", "fnlwgt", "final-weight", "sample_wgt"),
        ("education", "education", "education-level", "highest_grade"),
        ("education_num", "education-num", "years-of-education", "educ_years"),
        ("marital", "marital-status", "marital", "marital_stat"),
        ("census_occupation", "occupation", "occupation-group", "major_occ_code"),
        ("relationship", "relationship", "household-role", "rel_to_householder"),
        ("race", "race", "ethnicity", "race_ethn"),
        ("sex_word", "sex", "sex-reported", "resp_sex"),
        ("capital_gain", "capital-gain", "capital-gains", "cap_gain_usd"),
        ("hours", "hours-per-week", "weekly-hours", "hrs_worked_wk"),
        ("native_country", "native-country", "country-of-birth", "birth_country"),
        ("income", "income", "income-bracket", "income_class"),
    ),
    "customers": (
        ("user_id", "uid", "usr_id", "accountId"),
        ("given", "fname", "f_name", "custFirst"),
        ("surname", "lname", "l_name", "custLast"),
        ("birthday_iso", "dob", "bdate", "bornOn"),
        ("ssn", "ssn", "soc_sec_no", "taxId"),
        ("street", "addr", "str_addr", "streetLine1"),
        ("phone", "tel", "cell_no", "mobileNumber"),
        ("maiden", "mmn", "mothers_maiden_nm", "motherMaidenName"),
        ("cvv", "cvv", "cvc2", "cardCvc"),
        ("card", "cc_no", "pan", "cardPan"),
        ("email", "email", "e_mail", "notifyEmail"),
        ("ip", "ip", "last_login_ip", "signupIp"),
        ("iban", "iban", "bank_iban", "payoutIban"),
        ("zip", "zip", "zip5", "postCode"),
        ("city", "city", "cty", "townCity"),
        ("country", "country", "ctry", "residenceCountry"),
        ("nationality", "nationality", "citizenship", "nationalityDesc"),
        ("gender_letter", "gndr", "gender_cd", "genderCode"),
        ("occupation", "job", "occ", "jobRole"),
        ("handle_at", "ig_handle", "tw_handle", "instagram"),
        ("plan", "plan", "tier", "subscriptionTier"),
        ("channel", "signup_channel", "acq_channel", "utmSource"),
        ("order_total", "order_total", "ltv_usd", "lifetimeSpend"),
        ("notes", "notes", "agent_notes", "supportNotes"),
        ("review", "review", "feedback_text", "npsComment"),
    ),
    "europe": (
        ("given", "prenom", "Vorname", "nome"),
        ("surname", "nom", "Nachname", "cognome"),
        ("street_intl", "adresse", "Strasse", "indirizzo"),
        ("zip", "code_postal", "PLZ", "cap"),
        ("city", "ville", "Ort", "citta"),
        ("country", "pays", "Land", "paese"),
        ("phone", "telephone", "Telefon", "cellulare"),
        ("email", "courriel", "E-Mail", "posta_elettronica"),
        ("birthday_eu", "date_naissance", "Geburtsdatum", "data_di_nascita"),
        ("nationality", "nationalite", "Staatsangehoerigkeit", "cittadinanza"),
        ("iban", "rib_iban", "Bankverbindung", "coordinate_bancarie"),
        ("occupation", "profession", "Beruf", "professione"),
    ),
}
# Values' locale per shape and half (None: the generators' mix of locales).
SHAPE_LOCALE = {"europe": {"tuning": "fr_FR", "heldout": "de_DE", "fresh": "it_IT"}}


class LabelledColumn(NamedTuple):
    """A generated column and its label (no values in the label)."""

    table: str
    header: str
    concept: str
    klass: str
    what: str
    free_text: bool
    values: list


def headers(half: str) -> list[tuple[str, str]]:
    """(shape, header) of every column of a half."""
    i = 1 + HALVES.index(half)
    return [(shape, cols[i]) for shape, specs in SHAPES.items() for cols in specs]


def make_tables(rows: int, seed: int, half: str) -> dict[str, list[LabelledColumn]]:
    """The labelled tables of one half: shape -> columns (`rows` values each).

    Args:
        rows: rows per table.
        seed: base seed (each half and shape derives its own).
        half: "tuning", "heldout" or "fresh".
    Returns:
        shape -> list of LabelledColumn, in the shape's column order.
    """
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}")
    i = 1 + HALVES.index(half)
    out = {}
    for shape, specs in SHAPES.items():
        v = Values(f"{seed}:table:{shape}:{half}")
        loc = SHAPE_LOCALE.get(shape, {}).get(half)
        cols = []
        for spec in specs:
            concept = CONCEPTS[spec[0]]
            if concept.make is None:  # free text with PII: this half's own sentences
                texts = make_texts(rows, f"{seed}:{shape}", half)
                vals = [t.text for t in texts]
            else:
                vals = [concept.make(v, loc) for _ in range(rows)]
            if concept.blank:
                vals = [None if v.rng.random() < concept.blank else x for x in vals]
            cols.append(
                LabelledColumn(
                    shape,
                    spec[i],
                    spec[0],
                    concept.klass,
                    concept.what,
                    concept.free_text,
                    vals,
                )
            )
        out[shape] = cols
    return out
