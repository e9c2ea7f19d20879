"""The report: self-contained HTML (verdict first, inline SVG, nothing fetched) and a stable
validation.json, built from aggregates only, so a secret in the data never reaches it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import textwrap
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest
import yaml

from schemas.model import parse_schema
from transforms import report as r
from transforms import validate as v

SECRET = "ZZ-SECRET-41f9-NAME"
SCHEMA = parse_schema(yaml.safe_load(textwrap.dedent("""\
    columns:
      name:   {type: string, pii: PERSON, action: keep}
      age:    {type: int, action: generalize, bucket: 10}
      zip:    {type: string, action: generalize, keep_prefix: 3}
      born:   {type: date, action: generalize, date_part: year}
      income: {type: float, action: ldp, epsilon: 1.0, bounds: [0, 1000]}
      gender: {type: string, action: ldp, epsilon: 1.0, categories: [f, m, "<x>"]}
      smoker: {type: bool, action: ldp, epsilon: 0.5}
    """)), "s.yaml")


class _SeededSource:
    """Reproducible uniforms, so the sample output (and the verdicts) never change."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def uniforms(self, n: int, k: int) -> np.ndarray:
        return self.rng.random((n, k))


def _tables(n=300, seed=5):
    """Typed input with a secret in `name` and in the zip column, and its protected output."""
    from transforms.actions import generalize
    from transforms.ldp import apply_ldp

    rng = np.random.default_rng(seed)
    names = [f"person {i}" for i in range(n)]
    names[7] = SECRET
    zips = [f"{rng.integers(100, 999)}{rng.integers(10, 99)}" for _ in range(n)]
    zips[3] = SECRET
    inp = pa.table({
        "name": names,
        "age": pa.array(rng.integers(18, 90, n), pa.int64()),
        "zip": zips,
        "born": pa.array([dt.date(1950, 1, 1) + dt.timedelta(days=int(d))
                          for d in rng.integers(0, 20000, n)], pa.date32()),
        "income": rng.uniform(0, 1200, n),
        "gender": pa.array(rng.choice(["f", "m", "<x>"], n)),
        "smoker": pa.array(rng.random(n) < 0.3),
    })
    src = _SeededSource(seed)
    out = {"name": inp["name"]}
    for c in SCHEMA.columns:
        if c.action == "generalize":
            out[c.name] = generalize(inp[c.name].combine_chunks(), c, None)
        elif c.action == "ldp":
            out[c.name], _ = apply_ldp(inp[c.name], type=c.type, epsilon=c.params["epsilon"],
                                       bounds=c.params.get("bounds"),
                                       categories=c.params.get("categories"), source=src)
    return inp, pa.table(out)


def _manifest():
    cols = []
    for c in SCHEMA.columns:
        cols.append({"name": c.name, **c.to_dict(), "key_group": c.key_group,
                     "output_type": c.output_type})
    return {
        "dataset": "demo <customers>", "run_id": "20260101T000000Z-abcd1234",
        "finished_at": "2026-01-01T00:00:05+00:00", "privgate_version": "0.1.0",
        "columns": cols,
        "privacy": {"record_epsilon": 2.5, "record_epsilon_max": 3.0, "charged": 2.5,
                    "lifetime_spent_after": 2.5, "lifetime_epsilon_max": 10.0,
                    "memoized_noise": True, "budget_overrun_allowed": False},
        "quarantine": {"by_reason": {"null:age": 2, "type:age": 1, "columns": 1}, "rows": 4},
        "reconciliation": {"input_rows": 304, "output_rows": 300, "quarantined_rows": 4,
                           "balanced": True},
    }


def _validation(out, k=5, pii_flagged=0):
    checks = [
        v.output_columns_check(out, SCHEMA),
        v.residual_pii_check({"name": {"sampled": 300, "flagged": pii_flagged,
                                       "entities": {"PERSON": pii_flagged}}}, 0.0),
        v.k_anonymity_check(v.k_anonymity(out, ["age", "gender"], k)),  # 2 passes, 50 fails
        v.l_diversity_check(v.l_diversity(out, ["age"], "smoker", 2)),
        v.ldp_domain_check(out, SCHEMA),
        v.reconciliation_check(304, 300, 4),
    ]
    return v.gate_verdict(checks)


def _plots(inp, out, min_count=0):
    plots = {}
    for c in SCHEMA.columns:
        p = r.column_plot(c, inp[c.name], out[c.name], min_count=min_count)
        if p is not None:
            plots[c.name] = p
    return plots


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.attrs = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Two reports (one passing, one failing), rendered once: matplotlib is slow to start."""
    inp, out = _tables()
    plots = _plots(inp, out)
    res = {}
    for name, k, flagged in (("passed", 2, 0), ("failed", 50, 3)):
        d = tmp_path_factory.mktemp(name)
        val = _validation(out, k=k, pii_flagged=flagged)
        r.render_report(str(d), val, _manifest(), plots)
        res[name] = (d, val)
    return res


@pytest.mark.parametrize("which", ["passed", "failed"])
def test_report_files_and_verdict_first(rendered, which):
    d, val = rendered[which]
    assert val["status"] == which
    page = (d / "report" / "index.html").read_text(encoding="utf-8")
    p = _Collector()
    p.feed(page)
    p.close()
    text = " ".join(p.text)
    banner = "GATE PASSED" if which == "passed" else "GATE FAILED"
    assert banner in text
    # the verdict comes before every section heading
    assert page.index(banner) < page.index("<h2>")
    assert "svg" in p.tags and "script" not in p.tags and "img" not in p.tags
    assert "link" not in p.tags and "iframe" not in p.tags
    if which == "failed":
        assert val["failed"] == ["residual_pii", "k_anonymity"]
        for name in val["failed"]:
            assert name in page[:page.index("<h2>")]


@pytest.mark.parametrize("which", ["passed", "failed"])
def test_report_is_self_contained(rendered, which):
    d, _ = rendered[which]
    page = (d / "report" / "index.html").read_text(encoding="utf-8")
    low = page.lower()
    for bad in ("http://", "https://", "<script", "//cdn", "@import", "src="):
        assert bad not in low, bad
    # url(...) only for in-page references (SVG clip paths), never a file or a host
    assert not re.search(r"url\(\s*['\"]?(?!#)", low)
    assert not re.search(r"href=\"(?!#)", low)
    assert low.startswith("<!doctype html>")


def test_validation_json_is_stable_and_sorted(rendered):
    d, val = rendered["failed"]
    raw = (d / "report" / "validation.json").read_text(encoding="utf-8")
    doc = json.loads(raw)
    assert raw == json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    assert doc["format"] == "privgate-validation/1"
    assert doc["status"] == "failed" and doc["failed"] == val["failed"]
    assert doc["run_id"] == "20260101T000000Z-abcd1234"
    assert [c["name"] for c in doc["checks"]] == [c["name"] for c in val["checks"]]


def test_report_escapes_text(rendered):
    d, _ = rendered["passed"]
    page = (d / "report" / "index.html").read_text(encoding="utf-8")
    assert "demo &lt;customers&gt;" in page and "demo <customers>" not in page
    assert "&lt;x&gt;" in page and "<x>" not in page  # a declared category, escaped


@pytest.mark.parametrize("which", ["passed", "failed"])
def test_report_holds_no_secret_from_the_data(rendered, which):
    d, _ = rendered[which]
    for name in ("index.html", "validation.json"):
        text = (d / "report" / name).read_text(encoding="utf-8")
        assert SECRET not in text
        assert SECRET.lower() not in text.lower()
    # the secret really was in the data the aggregates came from
    inp, out = _tables()
    assert SECRET in inp["name"].to_pylist() and SECRET in out["name"].to_pylist()


def test_report_sections_show_aggregates(rendered):
    d, _ = rendered["failed"]
    page = (d / "report" / "index.html").read_text(encoding="utf-8")
    for needle in ("null:age", "type:age", "Records by class size", "2.5", "10.0", "PERSON",
                   "income", "key group", "ε = 1.0"):
        assert needle in page, needle
    assert page.count("<svg") == 1 + 6  # k histogram + 6 before/after plots


# --------------------------------------------------------------------------- histograms


@pytest.mark.parametrize("values, kwargs, bins, counts", [
    # numeric: [0,10), [10,20] closed at the end; below / above / null bins
    (pa.array([-1, 0, 5, 10, 20, 21, None], pa.int64()), {"edges": [0, 10, 20]},
     ["< 0", "0 – 10", "10 – 20", "> 20", "(null)"], [1, 2, 2, 1, 1]),
    # categorical: undeclared values are counted as (other), never named
    (pa.array(["a", "b", SECRET, None, "a"]), {"categories": ["a", "b"]},
     ["a", "b", "(other)", "(null)"], [2, 1, 1, 1]),
    # bool
    (pa.array([True, False, True, None]), {"categories": [False, True]},
     ["false", "true", "(other)", "(null)"], [1, 2, 0, 1]),
    # dates
    (pa.array([dt.date(2000, 5, 1), dt.date(2001, 1, 1), dt.date(1999, 1, 1)], pa.date32()),
     {"edges": [dt.date(2000, 1, 1), dt.date(2001, 1, 1), dt.date(2002, 1, 1)],
      "labels": ["2000", "2001"]},
     ["< 2000", "2000", "2001", "> 2001", "(null)"], [1, 1, 1, 0, 0]),
    # timestamps, no labels: ISO edges
    (pa.array([dt.datetime(2024, 1, 1, 5, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC")),
     {"edges": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)]},
     ["< 2024-01-01 00:00+00:00", "2024-01-01 00:00+00:00 – 2024-01-02 00:00+00:00",
      "> 2024-01-02 00:00+00:00", "(null)"], [0, 1, 0, 1]),
])
def test_histogram_counts(values, kwargs, bins, counts):
    h = r.histogram_counts(values, **kwargs)
    assert h == {"bins": bins, "counts": counts}
    assert SECRET not in json.dumps(h)


def test_histogram_counts_small_cell_suppression():
    h = r.histogram_counts(pa.array([1, 1, 1, 5, 12]), edges=[0, 4, 8, 16], min_count=3)
    assert h["counts"] == [0, 3, None, None, 0, 0]


@pytest.mark.parametrize("values, kwargs", [
    (pa.array(["a", "b"]), {"edges": [0, 1]}),                 # raw strings get no bins
    (pa.array(["a", "b"]), {}),                                # neither
    (pa.array([1, 2]), {"edges": [0, 1], "categories": ["a"]}),  # both
    (pa.array([1, 2]), {"edges": [1, 1]}),                     # not increasing
    (pa.array([1, 2]), {"categories": ["a"]}),                 # categories on numbers
    (pa.array(["a"]), {"categories": ["a"], "labels": ["x", "y"]}),
])
def test_histogram_counts_refuses(values, kwargs):
    with pytest.raises(ValueError):
        r.histogram_counts(values, **kwargs)


def test_column_plot_kinds():
    inp, out = _tables()
    plots = _plots(inp, out)
    assert set(plots) == {"age", "zip", "born", "income", "gender", "smoker"}
    assert plots["gender"]["bins"][:3] == ["f", "m", "<x>"]
    # generalize: both sides at the released resolution, so the counts agree
    assert plots["age"]["before"] == plots["age"]["after"]
    assert sum(plots["income"]["before"]) == sum(plots["income"]["after"]) == 300
    assert r.column_plot(SCHEMA.column("name"), inp["name"], out["name"]) is None
    assert SECRET not in json.dumps(plots)


@pytest.mark.parametrize("ctype, part, values, bins, after", [
    ("date", "year", [dt.date(2020, 1, 15), dt.date(2020, 3, 2), dt.date(2021, 2, 1)],
     ["2020", "2021"], [2, 1]),
    ("date", "month", [dt.date(2020, 1, 15), dt.date(2020, 3, 2), dt.date(2021, 2, 1)],
     ["2020-01", "2020-03", "2021-02"], [1, 1, 1]),
    ("timestamp", "day", [dt.datetime(2024, 1, 1, 3, tzinfo=dt.UTC),
                          dt.datetime(2024, 1, 1, 5, tzinfo=dt.UTC),
                          dt.datetime(2024, 1, 2, 1, tzinfo=dt.UTC)],
     ["2024-01-01", "2024-01-02"], [2, 1]),
    ("timestamp", "hour", [dt.datetime(2024, 1, 1, 3, 30, tzinfo=dt.UTC),
                           dt.datetime(2024, 1, 1, 3, 50, tzinfo=dt.UTC)],
     ["2024-01-01 03:00"], [2]),
])
def test_column_plot_date_parts(ctype, part, values, bins, after):
    from schemas.model import ColumnSpec
    from transforms.actions import ARROW_TYPES, generalize

    spec = ColumnSpec("d", ctype, "generalize", params={"date_part": part})
    arr = pa.array(values, ARROW_TYPES[ctype])
    p = r.column_plot(spec, arr, generalize(arr, spec, None))
    assert (p["bins"], p["after"], p["before"]) == (bins, after, after)


def test_ldp_int_bins_are_the_integers():
    from schemas.model import ColumnSpec

    spec = ColumnSpec("n", "int", "ldp", params={"epsilon": 1.0, "bounds": [0, 3]})
    h = r.histogram_counts(pa.array([-2, 0, 1, 1, 3, 9]), **r.plot_bins(spec, pa.array([0])))
    assert h == {"bins": ["< 0", "0", "1", "2", "3", "> 3", "(null)"],
                 "counts": [1, 1, 2, 0, 1, 1, 0]}


def test_keep_prefix_labels_need_min_count():
    spec = SCHEMA.column("zip")
    out = pa.array(["941"] * 5 + ["100"] * 2 + ["777"])
    bins = r.plot_bins(spec, out, min_count=3)
    assert bins == {"categories": ["941"]}


def test_render_report_rejects_ragged_plot(tmp_path):
    with pytest.raises(ValueError):
        r.render_report(str(tmp_path), {"status": "passed", "failed": [], "checks": []}, {},
                        {"c": {"bins": ["a", "b"], "before": [1], "after": [1, 2]}})
    assert not os.path.exists(tmp_path / "report" / "index.html")


def test_render_report_rejects_non_json_details(tmp_path):
    val = {"status": "passed", "failed": [],
           "checks": [{"name": "x", "passed": True, "details": {"v": object()}}]}
    with pytest.raises(TypeError):
        r.render_report(str(tmp_path), val, {}, {})
