"""Column classes for `privgate scan` and the keep-guard: direct, quasi-identifier or other.

Evidence comes from the values (a `ColumnFinding`: entity prevalence, validators included),
the column name split into tokens, and the values' shape; the reason names the evidence,
never a value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from transforms.detect.classify import FREE_TEXT, NOISY_NER, THING_WORDS, ColumnFinding

DIRECT, QUASI, OTHER = "direct", "quasi", "other"
CLASS_LABEL = {DIRECT: "direct identifier", QUASI: "quasi-identifier", OTHER: "other"}

# Entities that identify a person on their own (HIPAA Safe Harbor's 18 plus accounts and handles).
DIRECT_ENTITIES = frozenset(
    {
        "PERSON",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "US_SSN",
        "CREDIT_CARD",
        "CVV",
        "IBAN_CODE",
        "IP_ADDRESS",
        "MAC_ADDRESS",
        "URL",
        "CRYPTO",
        "STREET_ADDRESS",
        "USERNAME",
        "US_BANK_NUMBER",
        "US_DRIVER_LICENSE",
        "US_PASSPORT",
        "US_ITIN",
        "UK_NHS",
        "MEDICAL_LICENSE",
        "PASSWORD",
        "SECRET",
    }
)
# Entities a value checksum or a strict format proves: they win over any column name.
VALIDATED = frozenset(
    {"EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "CRYPTO", "MAC_ADDRESS"}
)
# Direct entities read by NER or loose patterns: they make a column direct only with the
# column's other evidence (many distinct values, no quasi-identifier name).
FUZZY = NOISY_NER | {"USERNAME", "STREET_ADDRESS", "ORGANIZATION"}
QUASI_ENTITIES = frozenset(
    {"DATE_OF_BIRTH", "ZIP_CODE", "LOCATION", "NRP", "AGE", "ORGANIZATION", "DATE_TIME"}
)

# Column-name tokens -> (class, concept, entity or None). Tokens are lower case, trailing
# digits removed (`cvv2` -> `cvv`, `zip5` -> `zip`); two-token compounds are joined first.
_D, _Q = DIRECT, QUASI
NAME_TOKENS: dict[str, tuple[str, str, str | None]] = {
    **dict.fromkeys(
        ("email", "mail", "courriel", "emailaddress", "correo"), (_D, "e-mail", "EMAIL_ADDRESS")
    ),
    **dict.fromkeys(
        (
            "phone",
            "telephone",
            "tel",
            "telefon",
            "telefono",
            "mobile",
            "cell",
            "fax",
            "msisdn",
            "handy",
            "portable",
            "phonenumber",
        ),
        (_D, "phone number", "PHONE_NUMBER"),
    ),
    **dict.fromkeys(
        ("ssn", "sin", "nationalid", "socsec", "socialsecurity", "nino", "taxid", "tin"),
        (_D, "national id", "US_SSN"),
    ),
    **dict.fromkeys(("passport", "reisepass"), (_D, "passport", "US_PASSPORT")),
    **dict.fromkeys(("license", "licence", "driverlicense"), (_D, "licence", "US_DRIVER_LICENSE")),
    **dict.fromkeys(
        ("cvv", "cvc", "csc", "cvn", "securitycode"), (_D, "card security code", "CVV")
    ),
    **dict.fromkeys(
        ("cc", "card", "creditcard", "pan", "ccnumber", "cardnumber"),
        (_D, "card number", "CREDIT_CARD"),
    ),
    **dict.fromkeys(
        ("iban", "rib", "bankverbindung", "routing", "bankaccount", "kontonummer"),
        (_D, "bank account", "IBAN_CODE"),
    ),
    **dict.fromkeys(("ip", "ipaddress", "ipv4", "ipv6"), (_D, "IP address", "IP_ADDRESS")),
    **dict.fromkeys(
        ("mac", "imei", "device", "deviceid", "idfa", "serial"), (_D, "device id", None)
    ),
    **dict.fromkeys(("guid", "uuid", "uid", "userid", "usrid"), (_D, "per-person id", None)),
    **dict.fromkeys(
        (
            "username",
            "login",
            "loginname",
            "user",
            "usr",
            "handle",
            "nickname",
            "nick",
            "screenname",
            "twitter",
            "instagram",
            "ig",
            "tw",
            "youtube",
            "facebook",
            "linkedin",
            "tiktok",
            "snapchat",
            "github",
        ),
        (_D, "user name or handle", "USERNAME"),
    ),
    **dict.fromkeys(("url", "website", "homepage", "web", "profile"), (_D, "web address", "URL")),
    **dict.fromkeys(("password", "passwd", "pwd", "passcode", "pin"), (_D, "password", "PASSWORD")),
    **dict.fromkeys(("secret", "apikey", "token", "privatekey"), (_D, "secret", "SECRET")),
    **dict.fromkeys(
        (
            "address",
            "addr",
            "street",
            "strasse",
            "straße",
            "adresse",
            "anschrift",
            "direccion",
            "indirizzo",
            "streetaddress",
            "homeaddress",
        ),
        (_D, "street address", "STREET_ADDRESS"),
    ),
    **dict.fromkeys(
        (
            "name",
            "fullname",
            "firstname",
            "lastname",
            "givenname",
            "familyname",
            "surname",
            "forename",
            "fname",
            "lname",
            "mname",
            "maiden",
            "mmn",
            "vorname",
            "nachname",
            "prenom",
            "nom",
            "nome",
            "cognome",
            "nombre",
            "apellido",
            "patient",
            "passenger",
        ),
        (_D, "person name", "PERSON"),
    ),
    # ---- quasi-identifiers
    **dict.fromkeys(
        (
            "dob",
            "birth",
            "birthday",
            "birthdate",
            "bday",
            "bdate",
            "born",
            "geburtsdatum",
            "geburtstag",
            "naissance",
            "nacimiento",
        ),
        (_Q, "birth date", "DATE_OF_BIRTH"),
    ),
    **dict.fromkeys(
        ("zip", "zipcode", "postal", "postcode", "plz", "postleitzahl", "cp"),
        (_Q, "zip / postcode", "ZIP_CODE"),
    ),
    **dict.fromkeys(
        ("city", "town", "cty", "ort", "ville", "stadt", "ciudad", "municipality", "locality"),
        (_Q, "city", "LOCATION"),
    ),
    **dict.fromkeys(
        ("state", "province", "region", "county", "bundesland", "departement"),
        (_Q, "state or region", "LOCATION"),
    ),
    **dict.fromkeys(
        ("country", "ctry", "land", "pays", "nation", "countrycode"), (_Q, "country", "LOCATION")
    ),
    **dict.fromkeys(
        (
            "nationality",
            "citizenship",
            "nationalite",
            "staatsangehoerigkeit",
            "staatsangehörigkeit",
            "nacionalidad",
        ),
        (_Q, "nationality", "NRP"),
    ),
    **dict.fromkeys(("age", "alter", "edad"), (_Q, "age", "AGE")),
    **dict.fromkeys(
        ("gender", "sex", "gndr", "geschlecht", "sexe", "salutation", "title", "anrede"),
        (_Q, "gender or title", None),
    ),
    **dict.fromkeys(
        ("race", "ethnicity", "ethnic", "origin", "nameset"), (_Q, "race or origin", "NRP")
    ),
    **dict.fromkeys(("religion", "faith", "party", "politics"), (_Q, "belief or party", "NRP")),
    **dict.fromkeys(
        ("occupation", "occ", "job", "jobtitle", "profession", "beruf", "metier", "employer"),
        (_Q, "occupation", None),
    ),
    **dict.fromkeys(("company", "employer"), (_Q, "employer", "ORGANIZATION")),
    **dict.fromkeys(("marital", "education"), (_Q, "marital status or education", None)),
}
# A token that makes the column about a property of the thing, not the thing itself
# (`phone_type`, `CCType`, `email_verified`, `name_origin`, `signup_channel`).
_MODIFIERS = THING_WORDS | {
    "count",
    "exp",
    "expiration",
    "expiry",
    "flag",
    "format",
    "issuer",
    "kind",
    "length",
    "network",
    "origin",
    "provider",
    "set",
    "status",
    "style",
    "type",
    "valid",
    "verified",
}
# ... but not over these (`user_name` is a login, `ip_address` an IP).
_HEAD_FIRST = ("cvv", "iban", "ip", "email", "mail", "username", "login", "user", "usr", "handle")
_ID_TOKENS = ("id", "uuid", "guid", "key")

_SCI_CARD = re.compile(r"^\s*[1-9]\.\d{2,}[eE]\+?(1[2-8])\s*$")
_CVV_SHAPE = re.compile(r"^\s*\d{3,4}\s*$")
# A record code: a short letter prefix and 5+ digits, no space (`S000148`, `U-204391`).
_RECORD_CODE = re.compile(r"^\s*[A-Za-z]{1,4}[-_]?\d{5,}\s*$")
_STREET_SHAPE = re.compile(
    r"^\s*(?:\d+[A-Za-z]?[\s,]+\S.*|.*\b(?:street|st\.|road|rd\.|avenue|ave\.?|boulevard|blvd|"
    r"lane|drive|dr\.|court|place|way|strasse|straße|str\.|weg|gasse|platz|allee|rue|avenue|"
    r"chemin|via|calle|building|suite|office)\b.*\d.*|.*\d.*\b(?:street|st|road|rd|avenue|ave|"
    r"strasse|straße|weg|gasse|platz|allee|rue|chemin|via|calle)\b.*)\s*$",
    re.IGNORECASE,
)
_HANDLE_SHAPE = re.compile(r"^\s*@[A-Za-z0-9_.]{2,}\s*$")
LOW_CARDINALITY = 12  # distinct values in a sample of 50+ that make a column a category


@dataclass(frozen=True)
class ColumnClass:
    """A column's class, the entity it is named after, and why (no value).

    Attributes:
        klass: DIRECT, QUASI or OTHER.
        entity: the `pii:` entity to declare, or None.
        concept: what the column is, e.g. "card number", "country".
        reason: the evidence, e.g. "EMAIL_ADDRESS in 100% of 1000 sampled values".
        evidence: "values", "shape", "name" or "none".
        shape: a shape flag, e.g. "sci_card" (card numbers in scientific notation).
    """

    klass: str
    entity: str | None
    concept: str
    reason: str
    evidence: str
    shape: str | None = None


def name_tokens(name: str) -> list[str]:
    """A column name split into lower-case tokens: camelCase, acronyms, snake, kebab, spaces.

    `CCNumber` -> [cc, number]; `mothers_maiden_nm` -> [mothers, maiden, nm]; `CVV2` -> [cvv];
    `native-country` -> [native, country].

    Args:
        name: column name.
    Returns:
        Tokens (trailing digits removed, empty tokens dropped).
    """
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name)
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", spaced)
    out = []
    for t in re.split(r"[^0-9A-Za-zÀ-ÿß]+", spaced.lower()):
        t = t.rstrip("0123456789")
        if t:
            out.append(t)
    return out


def name_evidence(name: str) -> tuple[str, str, str | None, str] | None:
    """What the column name says: (class, concept, entity, token) or None.

    Two-token compounds first (`first_name`, `e_mail`), then the name's tokens in order,
    a login / e-mail / IP token over `address` or `name`; a modifier token (`CCType`,
    `phone_type`, `NameOrigin`) turns a direct name into a property of it (other), except
    for race/origin-like quasi names.

    Args:
        name: column name.
    Returns:
        (class, concept, entity or None, the token that decided) or None.
    """
    toks = name_tokens(name)
    if not toks:
        return None
    joined = "".join(toks)
    cands: list[str] = []
    if joined in NAME_TOKENS:
        cands.append(joined)
    for i in range(len(toks) - 1):
        pair = toks[i] + toks[i + 1]
        if pair in NAME_TOKENS:
            cands.append(pair)
    cands += [t for t in toks if t in NAME_TOKENS]
    if not cands:
        if toks[-1] in _ID_TOKENS:  # a token, not a suffix: `FarePaid` is no id
            return (DIRECT, "identifier", None, "id")
        return None
    first = next((c for c in cands if c in _HEAD_FIRST), cands[0])
    if joined in ("emailaddress", "ipaddress"):
        first = joined
    klass, concept, entity = NAME_TOKENS[first]
    mods = _MODIFIERS & set(toks)
    if klass == DIRECT and mods:
        quasi = next((c for c in cands if NAME_TOKENS[c][0] == QUASI), None)
        if quasi is not None:
            klass, concept, entity = NAME_TOKENS[quasi]
            return (klass, concept, entity, quasi)
        if "origin" in mods or "set" in mods:
            return (QUASI, "race or origin", "NRP", first)
        return (OTHER, f"{concept} ({sorted(mods)[0]})", None, first)
    return (klass, concept, entity, first)


def _share(rx: re.Pattern, vals: Sequence[str]) -> float:
    return sum(bool(rx.match(v)) for v in vals) / len(vals) if vals else 0.0


def _lost_digits(value: str) -> bool:
    """A 13-19 digit number stored as a float (`4.53E+15`, `4532015112830366.0`)."""
    return bool(_SCI_CARD.match(value) or re.fullmatch(r"[1-9]\d{12,18}\.0*", value.strip()))


def classify_class(
    name: str, finding: ColumnFinding | None, values: Sequence[str], ctype: str = "string"
) -> ColumnClass:
    """A column's class from its values' finding, its name tokens and its values' shape.

    Validated value entities (e-mail, card, IBAN, IP, SSN) win over the name; then shapes
    (card numbers in scientific notation, 3-4 digit codes under a cvv/cvc name, street
    addresses, @handles); then the name; then the values' NER entities, where a column of
    few distinct values is a category and never a direct identifier; a column with neither
    is a record id when its values are distinct letter+digit codes (`S000148`).

    Args:
        name: column name.
        finding: `classify_column` result (None for typed columns not classified).
        values: sampled non-blank values (str) for shape and cardinality.
        ctype: the proposed privgate type.
    Returns:
        A ColumnClass.
    """
    vals = [v for v in values if v is not None and str(v).strip()]
    n = len(vals)
    distinct = len(set(vals))
    few = n >= 50 and distinct <= LOW_CARDINALITY
    named = name_evidence(name)
    ent = finding.entity if finding else None
    prev = finding.prevalence if finding else 0.0
    seen = (
        f"prevalence {prev:.0%} of {finding.examined} sampled values "
        f"(confidence {finding.confidence:.2f})"
        if finding
        else ""
    )

    hard = any(e in DIRECT_ENTITIES - FUZZY for e in (finding.entities if finding else {}))
    if ent == FREE_TEXT and named is not None and named[0] == QUASI and not hard:
        ent = None  # job titles that read as prose under an occupation name: the name decides
    if ent == FREE_TEXT:
        pii = prev > 0
        found = ", ".join(f"{e} {p:.0%}" for e, p in finding.entities.items()) or "none seen"
        why = (
            f"free text ({finding.free_text_score:.0%} prose); PII in {prev:.0%} of "
            f"{finding.examined} sampled cells: {found}"
        )
        return ColumnClass(DIRECT if pii else OTHER, None, "free text", why, "values")
    if ent in VALIDATED:
        return ColumnClass(DIRECT, ent, ent, f"{ent} {seen} (validated)", "values")
    sci = sum(map(_lost_digits, vals)) / n if n else 0.0
    if vals and sci >= 0.8:
        return ColumnClass(
            DIRECT,
            "CREDIT_CARD",
            "card number",
            f"{sci:.0%} of sampled values are 13-19 digit numbers in scientific notation "
            "(card numbers that lost digits to a spreadsheet export)",
            "shape",
            "sci_card",
        )
    if named and named[2] == "CVV" and vals and _share(_CVV_SHAPE, vals) >= 0.9:
        return ColumnClass(
            DIRECT, "CVV", "card security code", f"name '{named[3]}', 3-4 digit values", "shape"
        )
    if ent in DIRECT_ENTITIES and ent not in NOISY_NER and not few:
        if named is None or named[0] == DIRECT:
            return ColumnClass(DIRECT, ent, ent, f"{ent} {seen}", "values")
    handles = _share(_HANDLE_SHAPE, vals)
    if vals and handles >= 0.8 and not few:
        return ColumnClass(
            DIRECT, "USERNAME", "handle", f"{handles:.0%} of sampled values are @handles", "shape"
        )
    if named is not None:
        klass, concept, nent, tok = named
        if klass == DIRECT and few and nent not in ("PASSWORD", "SECRET", "CVV"):
            return ColumnClass(
                OTHER, None, concept, f"name '{tok}' but {distinct} distinct values", "name"
            )
        if klass == DIRECT:
            entity = ent if ent in DIRECT_ENTITIES - NOISY_NER else nent
            why = f"name '{tok}'" + (f", {ent} {seen}" if ent else "")
            return ColumnClass(DIRECT, entity, concept, why, "name")
        entity = ent if ent in QUASI_ENTITIES else nent
        why = f"name '{tok}'" + (f", {ent} {seen}" if ent else "")
        return ColumnClass(klass, entity if klass == QUASI else None, concept, why, "name")
    if ent is None:
        codes = _share(_RECORD_CODE, vals)
        if n >= 50 and codes >= 0.9 and distinct >= 0.95 * n:
            why = f"{codes:.0%} of sampled values are unique letter+digit codes (a record id)"
            return ColumnClass(DIRECT, None, "identifier", why, "values")
        return ColumnClass(OTHER, None, "", "", "none")
    if few:
        return ColumnClass(
            QUASI if ent in ("LOCATION", "NRP") else OTHER,
            None,
            "category",
            f"{ent} {seen}, {distinct} distinct values (a category)",
            "values",
        )
    if ent == "LOCATION" and _share(_STREET_SHAPE, vals) >= 0.5:
        why = f"LOCATION {seen}, street-address shape"
        return ColumnClass(DIRECT, "STREET_ADDRESS", "street address", why, "values")
    if ent in DIRECT_ENTITIES:
        return ColumnClass(DIRECT, ent, ent, f"{ent} {seen}", "values")
    return ColumnClass(QUASI, ent, ent, f"{ent} {seen}", "values")
