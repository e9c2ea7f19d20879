"""Own-row leak counts: each row's raw protected values searched for in its own output text.

The residual-PII gate must see what the scrubber's detector missed, so this evidence does not
use the detector: in the protect stage, where a batch's raw input and its output are side by
side, every raw value of a protected column (one whose action hides the value) is searched for,
case-insensitively and as whole words, in the same row's output text columns. Person-name
columns (`pii: PERSON` or a column named like `name`, `full_name`, `last_name`) also count a
row when any of the name's words of 3 or more letters appears as a word in the output.

The result is counts per output column (rows checked, rows leaking, leaking rows by source
column): never a value. `merge_own_row_leaks` sums the counts of many batches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.columns import Schema

LEAKS_LINE = "own_row_leaks"  # key of a batch's counts line in the pipeline's _work/stats*.jsonl
MIN_CHARS = 3  # shorter raw values and name words are not searched for (they match by chance)
# Source actions left out: `keep` hides nothing; `scrub` sources are free text (their output is
# what is searched); `ldp` string values come from a short public category list, so a category
# word in a text is a coincidence far more often than a leak.
NOT_SOURCES = frozenset({"keep", "scrub", "ldp"})
SOURCE_TYPES = ("string", "date")
_NAME_COLUMN = re.compile(
    r"^(?:(?:patient|customer|client|contact|person|user|member|employee)_)?"
    r"(?:(?:full|first|last|given|family|middle|maiden|sur|fore)_?)?name$"
)
_WORD = re.compile(r"[^\W\d_]+")  # runs of letters: the words a name is made of
# Titles and suffixes of person names: words of 3+ letters that say nothing about who it is.
_NAME_NOISE = frozenset({"mrs", "miss", "sir", "dame", "phd", "dds", "dvm", "jr", "iii"})
SUBSTRINGS_MAX = 200_000  # a text column's distinct substrings enumerated for a vectorized test


@dataclass(frozen=True)
class LeakSource:
    """A protected input column whose raw values are searched for."""

    name: str
    person_name: bool  # its words of MIN_CHARS+ letters count too
    date_format: str | None = None  # dates: written as the input wrote them (None: ISO)
    is_date: bool = False


@dataclass(frozen=True)
class LeakPlan:
    """What the own-row check compares: protected sources against output text targets."""

    sources: tuple[LeakSource, ...]
    targets: tuple[str, ...]


def is_person_name(column) -> bool:
    """A column whose values are person names: labelled `pii: PERSON`, or named like one."""
    return column.pii == "PERSON" or bool(_NAME_COLUMN.search(column.name.lower()))


def leak_plan(schema: Schema) -> LeakPlan | None:
    """The own-row check's sources and targets for a schema (None: nothing to compare).

    Sources: string and date input columns whose action hides the value (drop, redact, mask,
    tokenize, encrypt, generalize, date_shift, and any action added later, except keep, scrub
    and ldp). Targets: the output's string columns that may still hold PII (the
    declaration's `detectable`: keep, mask, generalize, scrub), each compared with every
    source but itself.
    """
    sources = tuple(
        LeakSource(
            c.name,
            c.type == "string" and is_person_name(c),
            c.format if c.type == "date" else None,
            c.type == "date",
        )
        for c in schema.columns
        if c.action not in NOT_SOURCES and c.type in SOURCE_TYPES
    )
    targets = tuple(
        c.name
        for c in schema.output_columns
        if c.output_type == "string" and c.declaration.detectable
    )
    if not any(s.name != t for s in sources for t in targets):
        return None
    return LeakPlan(sources, targets)


def _lowered(arr) -> tuple[pa.Array, np.ndarray]:
    """Lowercased values and their lengths in characters (0 for null)."""
    low = pc.utf8_lower(pc.cast(arr, pa.string()))
    if isinstance(low, pa.ChunkedArray):
        low = low.combine_chunks()
    return low, pc.utf8_length(low).fill_null(0).to_numpy(zero_copy_only=False)


def _source_strings(raw: pa.Table, src: LeakSource) -> pa.Array:
    col = raw.column(src.name)
    if src.is_date:
        fmt = src.date_format or "%Y-%m-%d"
        col = pc.cast(col, pa.string()) if fmt == "%Y-%m-%d" else pc.strftime(col, format=fmt)
    return col


def _name_words(value: str) -> list[str]:
    return [w for w in _WORD.findall(value) if len(w) >= MIN_CHARS and w not in _NAME_NOISE]


def _contains_word(text: str, needle: str) -> bool:
    """`needle` in `text` with no letter or digit glued to either end of the match."""
    start = text.find(needle)
    start_alnum, end_alnum = needle[0].isalnum(), needle[-1].isalnum()
    while start >= 0:
        end = start + len(needle)
        before_ok = not start_alnum or start == 0 or not text[start - 1].isalnum()
        after_ok = not end_alnum or end == len(text) or not text[end].isalnum()
        if before_ok and after_ok:
            return True
        start = text.find(needle, start + 1)
    return False


def _leaks(text: str, value: str, person_name: bool) -> bool:
    if _contains_word(text, value):
        return True
    return person_name and any(_contains_word(text, w) for w in _name_words(value))


def _substrings(texts: pa.Array) -> pa.Array | None:
    """Every substring of MIN_CHARS+ characters of the batch's distinct texts, when that set
    is small (short or repetitive columns: kept categories, prefixes, masked values)."""
    uniq = pc.unique(texts.drop_null())
    lengths = pc.utf8_length(uniq).to_numpy(zero_copy_only=False).astype(np.int64)
    if int((lengths * (lengths + 1) // 2).sum()) > SUBSTRINGS_MAX:
        return None
    subs = {
        t[i:j]
        for t in uniq.to_pylist()
        for i in range(len(t))
        for j in range(i + MIN_CHARS, len(t) + 1)
    }
    return pa.array(sorted(subs), pa.string())


def _in(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    return pc.is_in(values, value_set=value_set).fill_null(False).to_numpy(zero_copy_only=False)


def _named(low: pa.Array, subs: pa.Array) -> np.ndarray:
    """Rows whose name may have a word among `subs`: a whitespace piece of the name that is
    in `subs`, or that holds a non-letter (`.`, `-`, `'`: left to `_leaks`)."""
    lists = pc.utf8_split_whitespace(low)
    pieces = pc.list_flatten(lists)
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    maybe = _in(pieces, subs) | ~pc.utf8_is_alpha(pieces).to_numpy(zero_copy_only=False)
    return np.bincount(rows[maybe], minlength=len(low)) > 0


def _candidates(text_len, subs, low, length, valid, person_name) -> np.ndarray:
    """Rows that may leak (a superset; `_leaks` decides): the value fits in the text and, for
    a short or repetitive text column, is one of its substrings (vectorized)."""
    fits = valid & (text_len >= (MIN_CHARS if person_name else length))
    if subs is None or not fits.any():
        return fits
    whole = _in(low, subs)
    return fits & ((whole | _named(low, subs)) if person_name else whole)


def own_row_leaks(raw: pa.Table, out: pa.Table, plan: LeakPlan | None) -> dict:
    """Per output text column: rows whose output holds one of the row's raw protected values.

    Args:
        raw: the contract-checked input batch (every declared column, typed).
        out: the protected batch, row for row (`protect_table(raw, ...)`).
        plan: `leak_plan(schema)`.
    Returns:
        {target: {"checked": rows with text and a raw value to look for, "leaking": rows
        where one was found, "by_source": {source column: leaking rows}}} (counts only).
    Raises:
        ValueError: the two batches differ in length.
    """
    if plan is None:
        return {}
    if raw.num_rows != out.num_rows:
        raise ValueError("own-row leaks: the input and output batches differ in length")
    n = raw.num_rows
    sources = {s.name: _lowered(_source_strings(raw, s)) for s in plan.sources}
    result = {}
    for target in plan.targets:
        texts, text_len = _lowered(out.column(target))
        subs = _substrings(texts)
        looked = np.zeros(n, dtype=bool)
        leaking = np.zeros(n, dtype=bool)
        by_source = {}
        for s in plan.sources:
            if s.name == target:
                continue  # a column's own output is what its action decided
            low, length = sources[s.name]
            valid = length >= MIN_CHARS
            looked |= valid & (text_len > 0)
            rows = np.flatnonzero(_candidates(text_len, subs, low, length, valid, s.person_name))
            hit = np.zeros(n, dtype=bool)
            if rows.size:
                idx = pa.array(rows)
                pairs = zip(texts.take(idx).to_pylist(), low.take(idx).to_pylist(), strict=True)
                hit[rows] = [_leaks(t, v, s.person_name) for t, v in pairs]
            by_source[s.name] = int(hit.sum())
            leaking |= hit
        result[target] = {
            "checked": int(looked.sum()),
            "leaking": int(leaking.sum()),
            "by_source": by_source,
        }
    return result


def merge_own_row_leaks(partials: Iterable[Mapping]) -> dict:
    """Sum `own_row_leaks` counts of several batches (same layout)."""
    out: dict[str, dict] = {}
    for part in partials:
        for target, e in part.items():
            cur = out.setdefault(target, {"checked": 0, "leaking": 0, "by_source": {}})
            cur["checked"] += int(e["checked"])
            cur["leaking"] += int(e["leaking"])
            for src, n in e["by_source"].items():
                cur["by_source"][src] = cur["by_source"].get(src, 0) + int(n)
    return out
