"""Own-row leak counts: a row's raw protected values found in its own output text, whatever
the detector saw; counts only."""

from __future__ import annotations

import datetime as dt
import textwrap

import pyarrow as pa
import pytest
import yaml

from schemas.columns import parse_schema
from transforms.gates.leaks import leak_plan, merge_own_row_leaks, own_row_leaks


def _schema(text: str):
    return parse_schema(yaml.safe_load(textwrap.dedent(text)), "s.yaml")


SCHEMA = _schema(
    """\
    columns:
      id:    {type: string, action: tokenize}
      name:  {type: string, action: tokenize}
      email: {type: string, action: mask, keep_last: 4}
      dob:   {type: date, format: "%m/%d/%Y", action: generalize, date_part: year}
      zip:   {type: string, action: generalize, keep_prefix: 3}
      sex:   {type: string, action: ldp, epsilon: 1.0, categories: [f, m]}
      plan:  {type: string, action: keep}
      notes: {type: string, nullable: true, action: scrub}
    """
)


def test_plan_sources_hide_values_and_targets_are_output_text():
    plan = leak_plan(SCHEMA)
    assert [s.name for s in plan.sources] == ["id", "name", "email", "dob", "zip"]
    assert [s.name for s in plan.sources if s.person_name] == ["name"]
    assert plan.targets == ("email", "zip", "plan", "notes")
    only_keep = _schema("columns: {a: {type: string, action: keep}}")
    assert leak_plan(only_keep) is None
    only_self = _schema("columns: {z: {type: string, action: generalize, keep_prefix: 2}}")
    assert leak_plan(only_self) is None


@pytest.mark.parametrize(
    "name, note, leaks",
    [
        ("Shane Mckenzie", "Customer Shane Mckenzie called.", True),  # verbatim
        ("Shane Mckenzie", "spoke with shane mckenzie", True),  # case-insensitive
        ("Shane Mckenzie", "Mckenzie asked for a refund", True),  # one word of the name
        ("Ann Lee", "announcement sent; sleek design", False),  # inside other words only
        ("Dr. Al Wu", "Dr. Al asked about Wu-Tang", False),  # words under 3 letters
        ("Mrs. Jane Roe", "Mrs. Smith called", False),  # a title says nothing
        ("Jane Roe", "<PERSON_7f3a9c> called", False),  # scrubbed
        ("Jane Roe", None, False),  # no text: not checked
    ],
)
def test_person_name_found_in_own_row_notes(name, note, leaks):
    raw = pa.table({"name": [name], "notes": [note]})
    schema = _schema(
        """\
        columns:
          name: {type: string, action: tokenize}
          notes: {type: string, nullable: true, action: scrub}
        """
    )
    out = pa.table({"name": ["tk_x"], "notes": [note]})
    got = own_row_leaks(raw, out, leak_plan(schema))["notes"]
    assert got == {
        "checked": int(note is not None),
        "leaking": int(leaks),
        "by_source": {"name": int(leaks)},
    }


def test_only_the_rows_own_values_count_and_every_source_is_searched():
    raw = pa.table(
        {
            "id": ["C100001", "C100002", "C100003", "C100004"],
            "name": ["Jane Roe", "John Poe", "Mary Major", None],
            "email": ["jane@x.org", "john@y.org", "mary@z.org", "x@q.org"],
            "dob": pa.array([dt.date(1985, 3, 2)] * 4, pa.date32()),
            "zip": ["94110", "10001", "60601", "73301"],
            "sex": ["f", "m", "f", "m"],
            "plan": ["basic", "pro", "basic", "pro"],
            "notes": [
                "Jane wrote from jane@x.org",  # own name word and own email
                "born 03/02/1985, moved to 10001",  # own dob (as the input wrote it), own zip
                "John Poe and C100001 are other rows'",  # other rows' values only
                "",  # empty: not checked
            ],
        }
    )
    out = raw.set_column(0, "id", pa.array(["tk"] * 4))
    got = own_row_leaks(raw, out, leak_plan(SCHEMA))
    assert got["notes"] == {
        "checked": 3,
        "leaking": 2,
        "by_source": {"id": 0, "name": 1, "email": 1, "dob": 1, "zip": 1},
    }
    assert got["plan"]["leaking"] == 0 and got["plan"]["checked"] == 4
    assert "email" not in got["email"]["by_source"]  # a column is not searched in itself
    merged = merge_own_row_leaks([got, got])
    assert merged["notes"]["leaking"] == 4 and merged["notes"]["by_source"]["dob"] == 2


def test_counts_never_hold_a_value():
    raw = pa.table({"name": ["Shane Mckenzie"], "notes": ["shane mckenzie"]})
    schema = _schema(
        """\
        columns:
          name: {type: string, action: drop}
          notes: {type: string, action: scrub}
        """
    )
    got = own_row_leaks(raw, raw.select(["notes"]), leak_plan(schema))
    assert "shane" not in repr(got).lower()


def test_batches_of_different_length_are_refused():
    schema = _schema(
        """\
        columns:
          name: {type: string, action: drop}
          notes: {type: string, action: scrub}
        """
    )
    with pytest.raises(ValueError, match="differ in length"):
        own_row_leaks(
            pa.table({"name": ["a", "b"], "notes": ["x", "y"]}),
            pa.table({"notes": ["x"]}),
            leak_plan(schema),
        )


def _reference(raw: pa.Table, out: pa.Table, schema) -> dict:
    """Row by row in plain Python: the definition the vectorized counts must equal."""
    import re

    plan = leak_plan(schema)
    words = re.compile(r"[^\W\d_]+")
    noise = {"mrs", "miss", "sir", "dame", "phd", "dds", "dvm", "jr", "iii"}

    def found(text, needle):
        return any(
            (i == 0 or not text[i - 1].isalnum() or not needle[0].isalnum())
            and (
                i + len(needle) == len(text)
                or not text[i + len(needle)].isalnum()
                or not needle[-1].isalnum()
            )
            for i in range(len(text) - len(needle) + 1)
            if text.startswith(needle, i)
        )

    result = {}
    for target in plan.targets:
        checked = leaking = 0
        by_source = {s.name: 0 for s in plan.sources if s.name != target}
        for i in range(raw.num_rows):
            text = (out.column(target)[i].as_py() or "").lower()
            looked = hit_any = False
            for s in plan.sources:
                value = raw.column(s.name)[i].as_py()
                if s.name == target or value is None or len(value) < 3:
                    continue
                looked = looked or bool(text)
                value = value.lower()
                hit = bool(text) and (
                    found(text, value)
                    or s.person_name
                    and any(
                        found(text, w)
                        for w in words.findall(value)
                        if len(w) >= 3 and w not in noise
                    )
                )
                by_source[s.name] += hit
                hit_any = hit_any or hit
            checked += looked
            leaking += hit_any
        result[target] = {"checked": checked, "leaking": leaking, "by_source": by_source}
    return result


@pytest.mark.parametrize("substrings_max", [0, 200_000])  # row by row, and the vectorized test
def test_vectorized_counts_equal_the_row_by_row_definition(monkeypatch, substrings_max):
    import random

    from transforms.gates import leaks

    monkeypatch.setattr(leaks, "SUBSTRINGS_MAX", substrings_max)
    rng = random.Random(13)
    first = ["Ann", "Shane", "Heather", "Brooke", "Al", "Jo-Ann", "O'Neil"]
    last = ["Lee", "Mckenzie", "Brown", "Mcclain", "Wu", "Smith-Jones"]
    names, ids, notes, plans = [], [], [], []
    for i in range(400):
        name = f"{rng.choice(['', 'Mrs. ', 'Dr. '])}{rng.choice(first)} {rng.choice(last)}"
        names.append(None if i % 17 == 0 else name)
        ids.append(f"C{rng.randrange(100, 130)}")
        other = rng.choice(first + last + ids[-3:] + ["announcement", "brownie", "c1000"])
        mine = rng.choice([name, name.lower(), name.split()[-1], ids[-1], "nothing"])
        notes.append(rng.choice([f"{mine}, {other}", f"x{mine}", f"{other}!", "", None]))
        plans.append(rng.choice(["basic", "pro", ids[-1].lower(), "brown", "shane lee"]))
    schema = _schema(
        """\
        columns:
          id: {type: string, action: tokenize}
          name: {type: string, nullable: true, action: encrypt}
          plan: {type: string, action: keep}
          notes: {type: string, nullable: true, action: scrub}
        """
    )
    raw = pa.table({"id": ids, "name": names, "plan": plans, "notes": notes})
    got = own_row_leaks(raw, raw, leak_plan(schema))
    assert got == _reference(raw, raw, schema)
    assert got["notes"]["leaking"] > 40 and got["plan"]["leaking"] > 40  # both kinds occur
    assert got["notes"]["by_source"]["name"] < got["notes"]["checked"]
