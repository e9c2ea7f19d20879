"""Seeded value generators for the detection evaluation, drawn from Faker and mimesis.

Values come from two independent generator libraries and several locales, in the formats
real exports use (`Last, Title. First Middle` passenger names, spreadsheet card numbers
such as `4.53E+15`, social handles, office street addresses); none from privgate's tests.
"""

from __future__ import annotations

import random
import uuid

# Locales with Latin-script names and addresses (the detector's model is English).
FAKER_LOCALES = (
    "en_US",
    "en_GB",
    "en_CA",
    "en_IE",
    "de_DE",
    "fr_FR",
    "es_ES",
    "it_IT",
    "nl_NL",
    "pl_PL",
    "pt_BR",
    "sv_SE",
)
MIMESIS_LOCALES = ("en", "en-gb", "en-au", "de", "fr", "es", "it", "nl", "pl", "da", "cs")
# Names and phones read by US-centred tools: half of the draws come from en_US / en.
_US_SHARE = 0.5

TITLES = ("Mr", "Mrs", "Miss", "Ms", "Master", "Dr", "Rev", "Col", "Major", "Mme", "Capt")
RELIGIONS = (
    "Catholic",
    "Protestant",
    "Muslim",
    "Jewish",
    "Hindu",
    "Buddhist",
    "Sikh",
    "Lutheran",
    "Methodist",
    "Baptist",
    "Orthodox Christian",
    "Mormon",
)
PARTIES = (
    "Democrat",
    "Republican",
    "Independent",
    "Libertarian",
    "Green",
    "Labour",
    "Conservative",
    "Social Democrat",
)
OFFICE_BUILDINGS = (
    "Hart Senate Office Building",
    "Dirksen Senate Office Building",
    "Russell Senate Office Building",
    "Rayburn House Office Building",
    "Longworth House Office Building",
    "Cannon House Office Building",
)
SOCIAL_SITES = (
    "https://twitter.com/{}",
    "https://x.com/{}",
    "https://www.instagram.com/{}",
    "https://www.youtube.com/user/{}",
    "https://www.facebook.com/{}",
    "https://www.linkedin.com/in/{}",
    "https://github.com/{}",
    "www.tiktok.com/@{}",
)
TICKET_PREFIXES = ("A/5", "PC", "STON/O2.", "C.A.", "SOTON/OQ", "W./C.", "PP", "S.C./PARIS", "")


class Values:
    """One seeded source of every kind of value the evaluation needs.

    Args:
        seed: any str/int; the same seed gives the same values (each locale's generator
            is seeded from it, so adding a locale does not shift the others).
    """

    def __init__(self, seed):
        from faker import Faker
        from mimesis import Generic, Locale

        self.rng = random.Random(f"{seed}:rng")
        self.fakers = {}
        for loc in FAKER_LOCALES:
            f = Faker(loc)
            f.seed_instance(f"{seed}:faker:{loc}")
            self.fakers[loc] = f
        # Faker's it_IT city list is built from a set: its order (so the city a seed draws)
        # changed with the process's hash seed. Sorted, the material is the same every run.
        for provider in self.fakers["it_IT"].providers:
            if isinstance(getattr(provider, "cities", None), list):
                provider.cities = sorted(provider.cities)
        self.mimesis = {
            loc: Generic(Locale(loc), seed=f"{seed}:mimesis:{loc}") for loc in MIMESIS_LOCALES
        }

    # ----------------------------------------------------------------- sources

    def faker(self, locale: str | None = None):
        if locale:
            return self.fakers[locale]
        if self.rng.random() < _US_SHARE:
            return self.fakers["en_US"]
        return self.fakers[self.rng.choice(FAKER_LOCALES)]

    def mim(self, locale: str | None = None):
        if locale:
            return self.mimesis[locale]
        if self.rng.random() < _US_SHARE:
            return self.mimesis["en"]
        return self.mimesis[self.rng.choice(MIMESIS_LOCALES)]

    def pick(self, *options):
        return self.rng.choice(options)

    # ----------------------------------------------------------------- names

    def _use_faker(self, lib: str | None) -> bool:
        # lib None: either library, drawn per call (the tuning and old held-out halves).
        return self.rng.random() < 0.5 if lib is None else lib == "faker"

    def given(self, locale: str | None = None, lib: str | None = None) -> str:
        if self._use_faker(lib):
            return self.faker(locale and _faker_locale(locale)).first_name()
        return self.mim(locale and _mimesis_locale(locale)).person.first_name()

    def surname(self, locale: str | None = None, lib: str | None = None) -> str:
        if self._use_faker(lib):
            return self.faker(locale and _faker_locale(locale)).last_name()
        return self.mim(locale and _mimesis_locale(locale)).person.last_name()

    def person(self, fmt: str = "any", locale: str | None = None) -> str:
        """A person's name in a named real-world format (see `person_as`)."""
        return self.person_as(fmt, locale)[1]

    def person_as(
        self, fmt: str = "any", locale: str | None = None, lib: str | None = None
    ) -> tuple[str, str]:
        """(format, name): a person's name in a named real-world format.

        Formats: first_last, first_middle_last, last_first (`Smith, John`),
        last_title_first (`Braund, Mr. Owen Harris`, sometimes with a maiden name in
        brackets), titled (`Dr. Smith`, `Mrs Jane Smith`), initial_last (`J. Smith`),
        initials_last (`J.R. Smith`), given, surname, lower (`john smith`), any (a mix
        weighted towards first_last, as running text has it). With `lib` ("faker" or
        "mimesis") every part of the name comes from that library.
        """
        r = self.rng

        def given():
            return self.given(locale, lib)

        def surname():
            return self.surname(locale, lib)

        if fmt == "any":
            fmt = r.choices(
                ("first_last", "first_middle_last", "titled", "initial_last", "last_first"),
                (0.55, 0.15, 0.12, 0.1, 0.08),
            )[0]
        if fmt == "first_last":
            if lib != "mimesis" and r.random() < 0.4:
                return fmt, _one_line(self.faker(locale and _faker_locale(locale)).name())
            return fmt, f"{given()} {surname()}"
        if fmt == "first_middle_last":
            return fmt, f"{given()} {given()} {surname()}"
        if fmt == "last_first":
            return fmt, f"{surname()}, {given()}"
        if fmt == "last_title_first":
            title = r.choice(TITLES)
            givens = " ".join(given() for _ in range(r.choice((1, 1, 2, 3))))
            name = f"{surname()}, {title}. {givens}"
            if title in ("Mrs", "Mme") and r.random() < 0.5:
                name += f" ({given()} {surname()})"
            return fmt, name
        if fmt == "titled":
            title = r.choice(TITLES)
            dot = r.choice((".", ""))
            if r.random() < 0.5:
                return fmt, f"{title}{dot} {surname()}"
            return fmt, f"{title}{dot} {given()} {surname()}"
        if fmt == "initial_last":
            return fmt, f"{given()[0]}. {surname()}"
        if fmt == "initials_last":
            return fmt, f"{given()[0]}.{given()[0]}. {surname()}"
        if fmt == "given":
            return fmt, given()
        if fmt == "surname":
            return fmt, surname()
        if fmt == "lower":
            return fmt, f"{given()} {surname()}".lower()
        raise ValueError(fmt)

    # ----------------------------------------------------------------- places

    def street_address(self, intl: bool = False, locale: str | None = None) -> str:
        """A street address line: US forms (number street suffix, apartment, PO box,
        office building) or, with intl, European forms (`Hauptstr. 5`, `12, rue ...`)."""
        r = self.rng
        if not intl and locale is None:
            k = r.random()
            if k < 0.45:
                return _one_line(self.fakers["en_US"].street_address())
            if k < 0.8:
                return self.mimesis["en"].address.address()
            if k < 0.9:
                return f"{r.randint(100, 999)} {r.choice(OFFICE_BUILDINGS)}"
            return r.choice(("P.O. Box", "PO Box")) + f" {r.randint(10, 99999)}"
        if locale is None:
            locale = r.choice(("en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL"))
        if r.random() < 0.6:
            return _one_line(self.fakers[_faker_locale(locale)].street_address())
        return self.mimesis[_mimesis_locale(locale)].address.address()

    def city(self, locale: str | None = None) -> str:
        if self.rng.random() < 0.5:
            return self.faker(locale and _faker_locale(locale)).city()
        return self.mim(locale and _mimesis_locale(locale)).address.city()

    def state(self) -> str:
        return self.pick(self.fakers["en_US"].state, self.mimesis["en"].address.state)()

    def state_abbr(self) -> str:
        return self.fakers["en_US"].state_abbr()

    def country(self, locale: str | None = None) -> str:
        if locale:
            return self.mimesis[_mimesis_locale(locale)].address.country()
        return self.pick(self.fakers["en_US"].country, self.mimesis["en"].address.country)()

    def zip_code(self, intl: bool = False, locale: str | None = None) -> str:
        if intl or locale:
            loc = locale or self.rng.choice(("en_GB", "de_DE", "fr_FR", "nl_NL", "pl_PL"))
            return self.fakers[_faker_locale(loc)].postcode()
        z = self.fakers["en_US"].zipcode()
        return z + f"-{self.rng.randint(0, 9999):04d}" if self.rng.random() < 0.15 else z

    def office_address(self) -> str:
        """A legislator's office: `317 Hart Senate Office Building Washington DC 20510`."""
        r = self.rng
        return (
            f"{r.randint(100, 999)} {r.choice(OFFICE_BUILDINGS)} Washington DC "
            f"{r.choice(('20510', '20515'))}"
        )

    # ----------------------------------------------------------------- contact, online

    def email(self) -> str:
        if self.rng.random() < 0.5:
            return self.faker().email()
        return self.mim().person.email()

    def phone(self, intl: bool = False, locale: str | None = None) -> str:
        r = self.rng
        if intl or locale:
            loc = locale or r.choice(("en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"))
            if r.random() < 0.5:
                return self.fakers[_faker_locale(loc)].phone_number()
            return self.mimesis[_mimesis_locale(loc)].person.phone_number()
        k = r.random()
        if k < 0.45:
            return self.fakers["en_US"].phone_number()
        if k < 0.75:
            return self.mimesis["en"].person.phone_number()
        if k < 0.9:
            return self.mimesis["en"].person.telephone()
        return f"202-{r.randint(224, 226)}-{r.randint(0, 9999):04d}"

    def username(self) -> str:
        r = self.rng
        if r.random() < 0.5:
            return self.faker().user_name()
        mask = r.choice(("l_d", "l.d", "U_d", "Cl", "ld", "l-l", "C.l"))
        return self.mim().person.username(mask=mask)

    def handle(self) -> str:
        """A social handle as written in text: `@name_99`."""
        return "@" + self.handle_name()

    def handle_name(self) -> str:
        r = self.rng
        first, last = self.given("en"), self.surname("en")
        name = r.choice(
            (
                f"{first}{last}",
                f"{first[0]}{last}",
                f"{first}_{last}",
                f"Sen{last}",
                f"Rep{first}{last}",
                f"{last}{r.randint(1, 99)}",
                f"{first.lower()}{r.randint(60, 99)}",
            )
        )
        return "".join(c for c in name if c.isascii() and (c.isalnum() or c == "_"))[:15]

    def profile_url(self) -> str:
        return self.rng.choice(SOCIAL_SITES).format(self.handle_name())

    def ip(self) -> str:
        r = self.rng
        k = r.random()
        if k < 0.4:
            return self.faker().ipv4_public()
        if k < 0.8:
            return self.mim().internet.ip_v4()
        return self.pick(self.faker().ipv6, self.mim().internet.ip_v6)()

    # ----------------------------------------------------------------- financial, ids

    def card(self, grouped: float = 0.4) -> str:
        r = self.rng
        if r.random() < 0.5:
            num = self.faker().credit_card_number()
        else:
            num = self.mim().payment.credit_card_number().replace(" ", "")
        if r.random() < grouped and len(num) == 16:
            num = r.choice((" ", "-")).join(num[i : i + 4] for i in range(0, 16, 4))
        return num

    def card_sci(self) -> str:
        """A card number as a spreadsheet shows it once typed as a number: `4.53E+15`."""
        digits = self.card(grouped=0.0)
        return f"{int(digits):.{self.rng.choice((2, 2, 5))}E}"

    def cvv(self, digits: int = 3) -> str:
        if digits == 3 and self.rng.random() < 0.5:
            return str(self.mim().payment.cvv()).zfill(3)
        return f"{self.rng.randint(0, 10**digits - 1):0{digits}d}"

    def ssn(self) -> str:
        s = self.fakers["en_US"].ssn()
        k = self.rng.random()
        return s if k < 0.7 else s.replace("-", " ") if k < 0.85 else s.replace("-", "")

    def iban(self, spaced: float = 0.3) -> str:
        f = self.faker(self.rng.choice(("en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")))
        iban = f.iban()
        if self.rng.random() < spaced:
            iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        return iban

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def user_id(self) -> str:
        r = self.rng
        alnum = "abcdefghijkmnpqrstuvwxyz23456789"
        return r.choice(
            (
                "u_" + "".join(r.choice(alnum) for _ in range(8)),
                f"user-{r.randint(100000, 999999)}",
                "".join(r.choice(alnum) for _ in range(12)),
            )
        )

    def member_id(self) -> str:
        """A bioguide-style member id: the surname's initial and six digits."""
        return f"{self.surname('en')[0].upper()}{self.rng.randint(0, 999999):06d}"

    def password(self) -> str:
        if self.rng.random() < 0.5:
            return self.faker().password(length=self.rng.randint(8, 16))
        return self.mim().person.password(length=self.rng.randint(8, 16))

    # ----------------------------------------------------------------- dates, ages

    def birth_date(self, fmt: str | None = None) -> str:
        d = self.fakers["en_US"].date_of_birth(minimum_age=18, maximum_age=90)
        fmt = fmt or self.rng.choice(("%Y-%m-%d", "%m/%d/%Y", "%B %d, %Y", "%d %B %Y", "%d %b %Y"))
        return d.strftime(fmt).replace(" 0", " ")

    def age_phrase(self) -> str:
        n = self.rng.randint(18, 95)
        return self.rng.choice((f"{n} years old", f"{n}-year-old", f"{n} yrs old", f"{n} y/o"))

    def age(self) -> int:
        return self.rng.randint(17, 90)

    # ----------------------------------------------------------------- categories

    def nationality(self, locale: str | None = None) -> str:
        return self.mimesis[_mimesis_locale(locale or "en")].person.nationality()

    def religion(self) -> str:
        return self.rng.choice(RELIGIONS)

    def party(self) -> str:
        return self.rng.choice(PARTIES)

    def occupation(self, locale: str | None = None) -> str:
        if self.rng.random() < 0.5:
            return self.fakers[_faker_locale(locale or "en_US")].job()
        return self.mimesis[_mimesis_locale(locale or "en")].person.occupation()

    def company(self) -> str:
        if self.rng.random() < 0.5:
            return self.faker().company()
        return self.mim().finance.company()

    def gender(self, style: str = "word") -> str:
        g = self.rng.choice(("Male", "Female")) if self.rng.random() < 0.97 else "Non-binary"
        return g[0] if style == "letter" else g.lower() if style == "lower" else g

    # ----------------------------------------------------------------- non-PII look-alikes

    def ticket(self) -> str:
        prefix = self.rng.choice(TICKET_PREFIXES)
        num = str(self.rng.randint(1000, 3999999))
        return f"{prefix} {num}" if prefix else num

    def negative(self, kind: str) -> str:
        """A value that looks like data but identifies no one (must not be reported)."""
        r = self.rng
        if kind == "ticket":
            return self.ticket()
        if kind == "order":
            return f"PO-{r.randint(2019, 2026)}-{r.randint(0, 99999):05d}"
        if kind == "amount":
            return r.choice(("$", "€", "£")) + f"{r.randint(1, 9999):,}.{r.randint(0, 99):02d}"
        if kind == "version":
            return f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 30)}"
        if kind == "case":
            return f"{r.randint(2015, 2026)}-CV-{r.randint(0, 99999):05d}"
        if kind == "room":
            return f"{r.choice('ABCD')}{r.randint(100, 499)}"
        if kind == "qty":
            return str(r.randint(2, 500))
        if kind == "policy":
            return f"POL-{r.randint(10000, 99999)}-{r.choice('ABCDEFGH')}"
        if kind == "sku":
            return f"SKU-{r.randint(10000, 99999)}-{r.choice('XYZW')}"
        raise ValueError(kind)


_FAKER_NAME_WORDS: set | None = None


def in_faker_name_lists(word: str) -> bool:
    """Whether a word is a first or last name in any locale of Faker's person providers
    (the lists privgate's name gazetteer is drawn from), case-insensitively."""
    global _FAKER_NAME_WORDS
    if _FAKER_NAME_WORDS is None:
        import importlib
        import pkgutil

        import faker.providers.person as person

        words = set()
        for mod in pkgutil.iter_modules(person.__path__):
            provider = importlib.import_module(f"{person.__name__}.{mod.name}").Provider
            for attr in dir(provider):
                names = getattr(provider, attr)
                if attr.startswith(("first_names", "last_names")) and not callable(names):
                    if isinstance(names, (dict, list, tuple, set, frozenset)):
                        words.update(str(w).lower() for w in names)
        _FAKER_NAME_WORDS = words
    return word.lower() in _FAKER_NAME_WORDS


def _one_line(s: str) -> str:
    return ", ".join(p.strip() for p in s.splitlines() if p.strip())


def _faker_locale(loc: str) -> str:
    return {
        "en": "en_US",
        "de": "de_DE",
        "fr": "fr_FR",
        "es": "es_ES",
        "it": "it_IT",
        "nl": "nl_NL",
        "pl": "pl_PL",
    }.get(loc, loc)


def _mimesis_locale(loc: str) -> str:
    return {
        "en_US": "en",
        "en_GB": "en-gb",
        "de_DE": "de",
        "fr_FR": "fr",
        "es_ES": "es",
        "it_IT": "it",
        "nl_NL": "nl",
        "pl_PL": "pl",
    }.get(loc, loc)
