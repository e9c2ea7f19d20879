"""Recognizers for free text that Presidio lacks: street addresses, user names, CVVs, name forms.

Each is a list of regex rules (entity, pattern, group, score, check); a rule's span is its
group, so a context word can be part of the match (`CVV 123`) and stay unreported. Single
given names and surnames come from a gazetteer of Faker's person-provider name lists (MIT),
loaded lazily once per process; nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

_NAME_ATTRS = (
    "first_names",
    "first_names_female",
    "first_names_male",
    "last_names",
    "last_names_female",
    "last_names_male",
)
# Capitalised words that are names in some list but mostly ordinary words in a sentence.
_NOT_NAMES = frozenset(
    """
    a i the and or of to in on at by for from with as is was be are our your their his her
    my we you he she it they this that these those there here when where who what which new
    card account code date birth born age male female mr mrs ms miss dr rev prof sir madam
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday street road avenue lane drive
    court place way north south east west city state county country park church hall hill
    christian major master king queen bishop earl baron duke prince justice judge
    """.split()
)


_LATIN_NAME = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿĀ-ž'’]+")


# Locales whose given names may turn an NER organization into a PERSON (reads_as_person):
# the wider all-locale list relabelled company names (measured on the tuning half).
_CORE_LOCALES = frozenset("en_US en_GB de_DE fr_FR es_ES it_IT nl_NL pl_PL pt_BR sv_SE".split())


@functools.cache
def _name_lists(core: bool = False) -> tuple[frozenset[str], frozenset[str]]:
    """(given names, surnames), lower-cased, from Faker's person providers (every locale,
    Latin-script names only), loaded once.

    Faker is MIT-licensed; its provider modules are plain Python data, read offline. Words
    of Faker's English lorem list (common words) and a short stop list are left out. Empty
    if Faker is not installed.
    """
    given: set[str] = set()
    last: set[str] = set()
    try:
        import pkgutil

        import faker.providers.person as person

        for loc in [m.name for m in pkgutil.iter_modules(person.__path__)]:
            if core and loc not in _CORE_LOCALES:
                continue
            mod = importlib.import_module(f"faker.providers.person.{loc}")
            for attr in _NAME_ATTRS:
                into = given if attr.startswith("first") else last
                values = getattr(mod.Provider, attr, ())
                if not isinstance(values, (tuple, list, dict)):
                    continue  # a computed list (property) in a few locales
                for n in values:
                    for part in re.split(r"[\s-]+", str(n)):
                        if len(part) > 1 and _LATIN_NAME.fullmatch(part):
                            into.add(part.lower())
        common = importlib.import_module("faker.providers.lorem.en_US").Provider.word_list
    except ImportError:
        return frozenset(), frozenset()
    drop = {w.lower() for w in common} | _NOT_NAMES
    return frozenset(given - drop), frozenset(last - drop)


@functools.cache
def common_words() -> frozenset[str]:
    """Faker's English lorem list (about 1,000 common words), lower-cased; empty without Faker."""
    try:
        mod = importlib.import_module("faker.providers.lorem.en_US")
    except ImportError:
        return frozenset()
    return frozenset(w.lower() for w in mod.Provider.word_list)


@functools.cache
def name_gazetteer() -> frozenset[str]:
    """Given names and surnames (lower-cased) from Faker's person providers."""
    given, last = _name_lists()
    return given | last


_FIRM_WORDS = frozenset(
    "and und et e y inc llc ltd ltda co corp plc gmbh ag sa s.a spa srl bv nv group sons "
    "figli hijos fils partners associates company bank".split()
)
_FIRM_MARK = re.compile(r"&|\b[SBN]\.\s?[ALV]\b")


@functools.cache
def _given_names() -> frozenset[str]:
    return _name_lists()[0]


@functools.cache
def _core_names() -> frozenset[str]:
    given, last = _name_lists(core=True)
    return given | last


_NAME_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_TITLE_WORDS = frozenset("mr mrs ms miss mx master dr rev prof sir mme mlle capt col".split())


def reads_as_person(piece: str) -> bool:
    """True if a span NER called an organization or place reads as a person's name.

    Every word is capitalised (initials and titles allowed), there are at most four, and
    the first name word is a given name of the gazetteer or every one is a known name (a
    lone word must be a given name, or any known name after a title or an initial). No
    company-form word (`Inc`, `S.A`, `and`).
    """
    given, _ = _name_lists(core=True)
    names = _core_names()
    words = _NAME_WORD.findall(piece.removesuffix("'s").removesuffix("’s"))
    if any(w.lower() in _FIRM_WORDS for w in words) or _FIRM_MARK.search(piece):
        return False
    kept = [w for w in words if w.lower() not in _TITLE_WORDS and len(w) > 1]
    titled = len(kept) < len(words)  # a title or an initial: `Rev Gates`, `B. Hughes`
    words = kept
    if not words or len(words) > 4 or not all(w[0].isupper() for w in words):
        return False
    if len(words) == 1:
        return words[0].lower() in (names if titled else given)
    return words[0].lower() in given or all(w.lower() in names for w in words)


@dataclass(frozen=True)
class Rule:
    """A regex rule: `group` of each match of `pattern` is an `entity` at `score`."""

    entity: str
    pattern: re.Pattern
    score: float
    group: int | str = 0
    check: Callable[[re.Match], float | None] | None = None  # re-score or reject (None)


_UP = r"[A-ZÀ-ÖØ-Þ]"
_LOW = r"[a-zß-öø-ÿ]"
_WORD = rf"{_UP}{_LOW}+(?:['’-]{_UP}?{_LOW}+)*"
_TITLES = r"Mr|Mrs|Ms|Miss|Mx|Master|Dr|Rev|Prof|Sir|Lady|Mme|Mlle|Capt|Col|Major|Don|Dona"
_SHORT_TITLES = r"Mr|Mrs|Ms|Mx|Dr|Prof|Rev|Mme|Mlle"

_US_SUFFIX = (
    r"Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
    r"Way|Terrace|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Plaza|Plz|"
    r"Crescent|Cres|Close|Alley|Row|Path|Pike|Loop|Run|Walk|Mews|Gardens|Grove|Hill|"
    r"Point|Pointe|Ridge|Crossing|Xing|Expressway|Expy|Freeway|Fwy|Turnpike|Tpke|Causeway|"
    r"Center|Ctr|Harbor|Heights|Hts|Junction|Jct|Landing|Manor|Meadows?|Mill|Park|Pass|"
    r"Port|Shores?|Springs?|Station|Sta|Summit|Valley|Vly|View|Villages?|Vista|Ville|"
    r"Building|Bldg|Estates?|Falls|Forest|Fort|Ft|Glen|Green|Haven|Island|Isle|Key|Knoll|"
    r"Lake|Lakes|Oval|Route|Rte|Stravenue|Tunnel|Underpass|Union|Wells|Creek|Ford|Ferry|"
    # the rest of USPS Publication 28's suffixes that are plain words
    r"Field|Curve|Bridge|Brg|Mall|Cliff|Plain|Bypass|Camp|Cape|Club|Common|Corner|Course|"
    r"Cove|Dale|Dam|Divide|Extension|Ext|Flat|Forge|Garden|Gateway|Hollow|Inlet|Light|"
    r"Lock|Lodge|Motorway|Mount|Mountain|Neck|Orchard|Overpass|Prairie|Radial|Ramp|Ranch|"
    r"Rapid|Rest|Shoal|Skyway|Spur|Stream|Throughway|Trace|Track|Trafficway|Viaduct|Wall|"
    r"Mission|Burg|Bluff|Bottom|Branch|Brook|Canyon|Cswy|Fork|Grn|Hbr|Holw|Lk|Mnr|Pt|Rdg|"
    r"Sq|Trce|Vw|Wy"
)
_UNIT = r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Room|Rm|Floor|Fl|Bldg|#)\.?\s*#?\s*[\w-]{1,6})"
# `, Springfield, IL 62704` / `, East Janiceberg 66231`: city, state, ZIP after a US line.
_US_TAIL = (
    rf"(?:,\s*(?:{_WORD}\s+){{0,3}}(?:{_WORD},?\s+)?(?:[A-Z]{{2}}\s+)?\d{{5}}(?:-\d{{4}})?\b)?"
)
_DIR = r"(?:[NSEW]|N[EW]|S[EW]|North|South|East|West)\.?"
_DE_SUFFIX = (
    r"stra(?:ß|ss)e|str\.|weg|platz|gasse|allee|ring|damm|ufer|steig|pfad|chaussee|markt|"
    r"brücke|straat|laan|plein|gracht|kade|singel|dijk|steeg|hof|gatan|vägen|gränd|torget"
)
_ROMANCE = (
    r"rue|avenue|av\.|boulevard|bd|place|chemin|allée|impasse|quai|route|cours|passage|"
    r"calle|c/|avenida|avda\.?|plaza|paseo|camino|carrer|ronda|travesía|via|viale|piazza|"
    r"corso|vicolo|largo|strada|rua|praça|travessa|alameda|estrada|rodovia"
)
_ROMANCE_NAME = (
    rf"(?:(?:de|del|de la|des|du|di|da|do|dos|das|della|dello|degli|le|la|les|l'|d')\s*)*"
    rf"{_UP}[\w'’-]*(?:\s+(?:(?:de|del|de la|des|du|di|da|do|dos|das|della|le|la|l'|d')\s*)*"
    rf"{_UP}[\w'’-]*){{0,4}}"
)

ADDRESS_RULES = (
    # 123 N Main St Apt 4B / 4521 Oak Hill Road, Suite 200 / 55 5th Avenue
    Rule(
        "STREET_ADDRESS",
        re.compile(
            rf"\b\d{{1,6}}[A-Za-z]?(?:-\d{{1,4}})?\s+(?:{_DIR}\s+)?"
            rf"(?:(?:{_WORD}|\d{{1,3}}(?:st|nd|rd|th))\s+){{1,4}}(?:{_US_SUFFIX})s?\b\.?"
            rf"(?:\s+{_DIR}(?![\w]))?{_UNIT}?{_US_TAIL}"
        ),
        0.9,
    ),
    # P.O. Box 1234 / PO Box 55
    Rule(
        "STREET_ADDRESS",
        re.compile(rf"\b(?i:P\.?\s?O\.?|Post\s+Office)\s*(?i:Box)\s+\d{{1,6}}\b{_US_TAIL}"),
        0.9,
    ),
    # Hauptstraße 5 / Berliner Str. 12a / Kerkstraat 3 / Storgatan 7 / ul. Polna 5
    Rule(
        "STREET_ADDRESS",
        re.compile(
            rf"\b(?:{_UP}{_LOW}*(?:{_DE_SUFFIX})|(?:{_WORD}\s+)?(?:Straße|Strasse|Str\.|"
            rf"Weg|Platz|Gasse|Allee)|(?:ul\.|ulica|al\.|aleja|Am|An der|Im|Auf der|Zum|Zur)\s+"
            rf"{_WORD}(?:\s+{_WORD})?)"
            rf"\s+\d{{1,4}}[a-zA-Z]?(?:\s*[/-]\s*\d{{1,4}}[a-zA-Z]?)?\b"
        ),
        0.9,
    ),
    # 12 rue de la Paix / 3, avenue Victor Hugo / Calle Mayor 5 / Via Roma, 10
    Rule(
        "STREET_ADDRESS",
        re.compile(
            rf"(?:\b\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+)?\b(?i:{_ROMANCE})\s+{_ROMANCE_NAME}"
            rf"(?:,?\s+(?:n\.?\s?º?\s?)?\d{{1,4}}[a-zA-Z]?\b)?"
        ),
        0.9,
        check=lambda m: 0.9 if re.search(r"\d", m.group(0)) else None,
    ),
)

# zip 02139 / postcode SW1A 1AA / PLZ 10115: a postal code after its label (a place).
ZIP_RULES = (
    Rule(
        "LOCATION",
        re.compile(
            r"(?i)\b(?:zip(?:\s*code)?|post(?:al)?\s*code|postcode|PLZ|code\s+postal|CAP)"
            r"\b\W{0,3}(?P<z>\d{5}(?:-\d{4})?|\d{2}-\d{3}|\d{4}\s?[A-Z]{2}|\d{4}"
            r"|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})\b"
        ),
        0.9,
        "z",
    ),
)

POSTCODE_RULES = (
    # Postcodes whose own shape names them, without a label: UK (NW8 9AY, EC1A 1BB) and Canada
    # (K1A 0B1). Digit-only postcodes need the label (ZIP_RULES): alone they read as numbers.
    Rule(
        "LOCATION",
        re.compile(r"(?<![\w-])[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?\s?\d[ABD-HJLNP-UW-Z]{2}(?![\w-])"),
        0.6,
    ),
    Rule(
        "LOCATION",
        re.compile(
            r"(?<![\w-])[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]\s?\d[ABCEGHJ-NPRSTV-Z]\d(?![\w-])"
        ),
        0.6,
    ),
)

USERNAME_RULES = (
    # @handle (not an e-mail: no word character or dot before the @)
    Rule(
        "USERNAME",
        re.compile(r"(?<![\w.@])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?(?![\w@])"),
        0.9,
    ),
    # profile URLs of common sites
    Rule(
        "USERNAME",
        re.compile(
            r"(?i)\b(?:https?://)?(?:www\.|m\.|mobile\.)?(?:twitter|x|instagram|facebook|fb|"
            r"youtube|linkedin|github|gitlab|tiktok|reddit|pinterest|medium|twitch|threads|"
            r"snapchat|soundcloud|vimeo|flickr|tumblr|t\.me|telegram)\.(?:com|me|net|tv)/"
            r"(?:in/|user/|c/|channel/|u/|user/|@)?@?[\w.-]*\w"
        ),
        0.9,
    ),
    # user: jdoe42 / username jdoe42 / login is jdoe42 / handle @x
    Rule(
        "USERNAME",
        re.compile(
            r"(?i)\b(?:(?P<strong>user(?:\s*name|\s*id)?|login|handle|screen\s*name|"
            r"nick(?:name)?)|account(?:\s+name)?|profile)\s*(?P<sep>:|=|is|was|-)?\s*"
            r"(?-i:(?P<u>[A-Za-z0-9][\w.-]{1,30}[A-Za-z0-9]))\b"
        ),
        0.86,
        "u",
        check=lambda m: (
            None
            if m.group("u").lower() in _NOT_USERNAMES
            or m.group("u").lower() in common_words()
            or not _plausible_username(m)
            else 0.86
        ),
    ),
)


def _plausible_username(m: re.Match) -> bool:
    """A digit, `_` or `.` makes any value a login; otherwise a strong label word (user,
    login, handle) with a separator (`user: jdoe`), or a capitalised non-word after it
    (`user Patentspatterns`)."""
    u = m.group("u")
    if re.search(r"[\d_.]", u):
        return True
    if not m.group("strong"):
        return False
    return bool(m.group("sep")) or u[0].isupper()


_NOT_USERNAMES = frozenset(
    "the and was is has had with from for this that who name names account accounts id "
    "suspended created deleted login logged reported profile page number".split()
)

CVV_RULES = (
    Rule(
        "CVV",
        re.compile(
            r"(?i)\b(?:CVV2?|CVC2?|CID|CSC|CVN|security\s+code|card\s+verification"
            r"(?:\s+(?:value|code|number))?|verification\s+code)\b[\s:#=()a-z]{0,12}?"
            r"(?<!\d)(?P<c>\d{3,4})(?!\d)"
        ),
        0.9,
        "c",
    ),
)

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"

DATE_RULES = (
    # A date with its month spelled, which Presidio's date patterns (digits and dashes) miss
    # and spaCy reads only sometimes: 09 Sep 1949, 9th September 1949, Sep. 9, 1949, May 1949.
    Rule(
        "DATE_TIME",
        re.compile(
            rf"(?<![\w-])(?:{_DAY}\s+{_MONTH}\.?,?\s+|{_MONTH}\.?\s+{_DAY},?\s+|{_MONTH}\.?\s+)"
            r"(?:1[89]|20)\d\d(?![\w-])"
        ),
        0.85,
    ),
)

NAME_RULES = (
    # Braund, Mr. Owen Harris / Smith, Mrs. Jane (Mary Jones)
    Rule(
        "PERSON",
        re.compile(
            rf"\b{_WORD}(?:\s+{_WORD})?,\s+(?:{_TITLES})\.?\s+{_WORD}(?:\s+(?:{_WORD}|{_UP}\.))"
            rf"{{0,3}}(?:\s+\([^()\n]{{1,60}}\))?"
        ),
        0.9,
    ),
    # Smith, John / Smith, John A. (a given name of the gazetteer after the comma; not
    # `Tom Lee, Australian`)
    Rule(
        "PERSON",
        re.compile(
            rf"\b(?P<l>{_WORD}),\s+(?P<f>{_WORD})(?:\s+(?:{_WORD}|{_UP}\.)){{0,2}}"
            rf"(?!\w)(?!,?\s+(?:and|&|e|y|et|und)\s)"
        ),
        0.86,
        check=lambda m: (
            0.86
            if m.group("f").lower() not in _FIRM_WORDS and m.group("f").lower() in _given_names()
            else None
        ),
    ),
    # Dr. Smith / Mrs Jane Smith
    Rule(
        "PERSON",
        re.compile(rf"\b(?:{_SHORT_TITLES})\.?\s+(?P<n>{_WORD}(?:\s+(?:{_WORD}|{_UP}\.)){{0,2}})"),
        0.6,
        "n",
    ),
)
# Runs of capitalised words in the gazetteer (with initials): `Owen`, `Jane Smith`.
_GAZ_RUN = re.compile(rf"{_WORD}|{_UP}\.")
_GAZ_TOKEN = re.compile(rf"(?<![\w@.#/])(?:{_WORD})(?![\w@])")


def gazetteer_spans(text: str, score: float) -> list[tuple[int, int, float]]:
    """(start, end, score) of capitalised given names / surnames from the gazetteer.

    Adjacent gazetteer words join into one span; a lone one scores `score`, two or more a
    little higher.
    """
    names = name_gazetteer()
    out: list[list] = []
    for m in _GAZ_TOKEN.finditer(text):
        if m.group(0).lower() not in names:
            continue
        if out and re.fullmatch(r"\s+", text[out[-1][1] : m.start()]):
            out[-1][1] = m.end()
            out[-1][2] = min(1.0, score + 0.1)
        else:
            out.append([m.start(), m.end(), score])
    return [tuple(s) for s in out]


def rule_recognizer(name: str, entity: str, rules, prefilter: str | None, gazetteer=None):
    """A Presidio EntityRecognizer running `rules` (and optionally the name gazetteer).

    Args:
        name: recognizer name.
        entity: its entity.
        rules: Rule tuple.
        prefilter: RE2 pattern every cell with a finding matches (None: every cell).
        gazetteer: score of lone gazetteer names, or None for no gazetteer.
    """
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class RuleRecognizer(EntityRecognizer):
        def load(self):
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            out = []
            for rule in rules:
                for m in rule.pattern.finditer(text):
                    score = rule.score if rule.check is None else rule.check(m)
                    if score is None:
                        continue
                    s, e = m.span(rule.group)
                    out.append(RecognizerResult(rule.entity, s, e, score))
            if gazetteer is not None:
                for s, e, sc in gazetteer_spans(text, gazetteer):
                    out.append(RecognizerResult(entity, s, e, sc))
            return out

    rec = RuleRecognizer(supported_entities=[entity], name=name, supported_language="en")
    rec.prefilter = prefilter
    return rec


def text_recognizers() -> list:
    """privgate's free-text recognizers: STREET_ADDRESS, USERNAME, CVV, spelled dates, PERSON
    name forms."""
    return [
        rule_recognizer("StreetAddressRecognizer", "STREET_ADDRESS", ADDRESS_RULES, r"\p{Nd}"),
        rule_recognizer(
            "UsernameRecognizer",
            "USERNAME",
            USERNAME_RULES,
            r"(?i)(?:@|user|login|handle|screen|nick|account|profile|\.(?:com|me|net|tv)/)",
        ),
        rule_recognizer("ZipCodeRecognizer", "LOCATION", ZIP_RULES, r"(?i)(?:zip|post|plz|cap)"),
        rule_recognizer("PostcodeFormRecognizer", "LOCATION", POSTCODE_RULES, r"[A-Z]\d"),
        rule_recognizer(
            "CvvRecognizer",
            "CVV",
            CVV_RULES,
            r"(?i)(?:cv[vcn]|cid|csc|security|verification)",
        ),
        rule_recognizer(
            "SpelledDateRecognizer",
            "DATE_TIME",
            DATE_RULES,
            r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)",
        ),
        rule_recognizer("NameFormRecognizer", "PERSON", NAME_RULES, None, gazetteer=0.4),
    ]
