"""What privgate builds Presidio's recognizers from: its own, the schema's custom ones, NER labels.

Extra recognizers, a gated stock phone recognizer, custom `RecognizerSpec`s, the spaCy NER
label map, the context settings. Presidio is imported inside the functions that build
recognizers (it takes seconds).
"""

from __future__ import annotations

import re

from schemas.detection import RecognizerSpec

# spaCy labels kept and what Presidio calls them (Presidio's conf/spacy.yaml). ORG is kept as
# Presidio keeps it (recall floor), though en_core_web_sm also fires it on "DOB" or "SSN".
NER_CONFIGURATION = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON",
        "PERSON": "PERSON",
        "NORP": "NRP",
        "FAC": "LOCATION",
        "LOC": "LOCATION",
        "GPE": "LOCATION",
        "LOCATION": "LOCATION",
        "ORG": "ORGANIZATION",
        "ORGANIZATION": "ORGANIZATION",
        "DATE": "DATE_TIME",
        "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    "labels_to_ignore": [
        "CARDINAL",
        "EVENT",
        "LANGUAGE",
        "LAW",
        "MONEY",
        "ORDINAL",
        "PERCENT",
        "PRODUCT",
        "QUANTITY",
        "WORK_OF_ART",
    ],
}

# Presidio's context enhancement (LemmaContextAwareEnhancer defaults).
CONTEXT_BOOST = 0.35
CONTEXT_MIN_SCORE = 0.4
CONTEXT_WORDS_BEFORE = 5
# Checksum-valid but shape-ambiguous entities: a 10-digit phone passes the NHS mod-11 check
# one time in eleven, an order id the DEA check one time in ten. Without a context word
# they are still reported (Presidio reports them) but at the threshold score, so a phone
# span over the same digits wins the overlap (the value is a legacy marker: any number).
CONTEXT_REQUIRED = {"UK_NHS": 0.3, "MEDICAL_LICENSE": 0.3}


def extra_recognizers() -> list:
    """privgate's recognizers added to Presidio's stock English set.

    Returns:
        [NanpPhoneRecognizer, ExtendedCreditCardRecognizer] instances:

    - NANP phone numbers in the formats Presidio's phonenumbers-based recognizer misses
      (extensions `x123`, `001-` prefixes, area codes not assigned yet).
    - Card numbers of 12-19 digits with a known issuer prefix and a valid Luhn check
      (Presidio's regex misses Mastercard 2-series, 19-digit Visa, 12-digit Maestro).
    """
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, PhoneRecognizer

    class NanpPhoneRecognizer(PatternRecognizer):
        """North American numbers: optional +1/001/1 prefix, 3-3-4 digits, extension."""

        PATTERNS = [
            Pattern(
                "NANP",
                r"(?<![\w+])(?:(?:\+|00)?1[-. ]?)?(?:\([2-9][0-9]{2}\)[-. ]?|[2-9][0-9]{2}[-. ]?)"
                r"[2-9][0-9]{2}[-. ]?[0-9]{4}(?:[ ]?(?:x|ext\.?|extension)[ ]?[0-9]{1,6})?(?!\w)",
                PhoneRecognizer.SCORE,
            )
        ]

        def __init__(self):
            super().__init__(
                supported_entity="PHONE_NUMBER",
                patterns=self.PATTERNS,
                context=list(PhoneRecognizer.CONTEXT),
                name="NanpPhoneRecognizer",
            )

    class ExtendedCreditCardRecognizer(CreditCardRecognizer):
        """12-19 digit card numbers; issuer prefix and Luhn checked."""

        PREFIX = re.compile(r"^(?:4|5[0-8]|2[2-7]|2131|1800|3[0-9]|6|0604)")

        def __init__(self):
            super().__init__(
                patterns=[Pattern("Card 12-19 digits", r"\b\d(?:[- ]?\d){11,18}\b", 0.3)],
                name="ExtendedCreditCardRecognizer",
            )

        def validate_result(self, pattern_text: str):
            digits = re.sub(r"[- ]", "", pattern_text)
            if not (12 <= len(digits) <= 19 and digits.isascii() and self.PREFIX.match(digits)):
                return False
            return super().validate_result(pattern_text)

    return [NanpPhoneRecognizer(), ExtendedCreditCardRecognizer()]


def gated_phone_recognizer():
    """Presidio's PhoneRecognizer with the same results at about half the cost.

    Presidio runs python-phonenumbers' matcher once per supported region, and each run
    parses and validates every digit group of the text (dates, amounts, ids). Two changes
    that cannot change the result (tests compare it with the stock recognizer):

    - A candidate can only validate with enough digits, so shorter ones are not parsed:
      with a `+`, a country code and a national number (1 + the shortest valid length
      of any country, 4); starting with `0` (an international or national prefix), the
      fewer of that code's shortest valid length and 2 + 1 + 4 (the shortest
      international dialing prefix, country code and number); otherwise it is a national
      number of the matcher's country calling code and needs that code's shortest valid
      length (7 digits for +1, whose regions include Canada's 310-xxxx numbers).
    - Regions sharing a country calling code (US and CA) parse and validate every
      candidate identically, so only the first of them is run.

    Returns:
        A PhoneRecognizer subclass instance (name GatedPhoneRecognizer).
    """
    import unicodedata

    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
    from phonenumbers.phonenumbermatcher import PhoneNumberMatcher
    from phonenumbers.phonenumberutil import _PLUS_CHARS, country_code_for_region
    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    def shortest(region: str) -> int:
        cc = country_code_for_region(region)
        lengths = [
            min(md.general_desc.possible_length)
            for r in COUNTRY_CODE_TO_REGION_CODE.get(cc, (region,))
            if (md := PhoneMetadata.metadata_for_region_or_calling_code(cc, r))
            and md.general_desc.possible_length
        ]
        return min(lengths, default=1)

    plus = frozenset(_PLUS_CHARS)
    shortest_any = min(
        min(md.general_desc.possible_length)
        for cc, rs in COUNTRY_CODE_TO_REGION_CODE.items()
        for r in rs
        if (md := PhoneMetadata.metadata_for_region_or_calling_code(cc, r))
        and md.general_desc.possible_length
    )
    regions, seen = [], set()
    for r in PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS:
        cc = country_code_for_region(r)
        if cc not in seen:
            seen.add(cc)
            regions.append(r)
    national = {r: shortest(r) for r in regions}
    prefixed = {r: min(national[r], 2 + 1 + shortest_any) for r in regions}
    international = 1 + shortest_any

    class LengthGatedMatcher(PhoneNumberMatcher):
        def _parse_and_verify(self, candidate, offset):
            digits, first, has_plus = 0, None, False
            for c in candidate:
                if c in plus:
                    has_plus = True
                elif c.isdigit():
                    digits += 1
                    if first is None:
                        first = unicodedata.digit(c, None)
            if has_plus:
                need = international
            elif first == 0:
                need = prefixed[self.preferred_region]
            else:
                need = national[self.preferred_region]
            if digits < need:
                return None
            return super()._parse_and_verify(candidate, offset)

    class GatedPhoneRecognizer(PhoneRecognizer):
        def __init__(self):
            super().__init__(name="GatedPhoneRecognizer")

        def analyze(self, text, entities, nlp_artifacts=None):
            results = []
            for region in regions:
                for match in LengthGatedMatcher(text, region, leniency=self.leniency):
                    results.append(self._get_recognizer_result(match, text, region, nlp_artifacts))
            return EntityRecognizer.remove_duplicates(results)

    return GatedPhoneRecognizer()


def _to_presidio(spec: RecognizerSpec):
    from presidio_analyzer import Pattern, PatternRecognizer

    return PatternRecognizer(
        supported_entity=spec.entity,
        name=spec.name,
        patterns=[Pattern(p.name, p.regex, p.score) for p in spec.patterns] or None,
        context=list(spec.context) or None,
        deny_list=list(spec.deny_list) or None,
        deny_list_score=spec.deny_list_score,
    )
