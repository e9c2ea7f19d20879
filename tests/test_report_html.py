"""The report page: self-contained HTML (verdict first, inline SVG, nothing fetched) and a
stable validation.json, built from aggregates only, so a secret in the data never reaches it."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser

import pytest

from tests.report_data import (
    SECRET,
    sample_manifest,
    sample_plots,
    sample_tables,
    sample_validation,
)
from transforms.report.html import render_report


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
    """Two reports (one passing, one failing), rendered once."""
    inp, out = sample_tables()
    plots = sample_plots(inp, out)
    res = {}
    for name, k, flagged in (("passed", 2, 0), ("failed", 50, 3)):
        d = tmp_path_factory.mktemp(name)
        val = sample_validation(out, k=k, pii_flagged=flagged)
        render_report(str(d), val, sample_manifest(), plots)
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
            assert name in page[: page.index("<h2>")]


@pytest.mark.parametrize("which", ["passed", "failed"])
def test_report_is_self_contained(rendered, which):
    d, _ = rendered[which]
    page = (d / "report" / "index.html").read_text(encoding="utf-8")
    low = page.lower()
    for bad in ("http://", "https://", "<script", "//cdn", "@import", "src="):
        assert bad not in low, bad
    # no url(...) or href to a file or a host (in-page references only)
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
    inp, out = sample_tables()
    assert SECRET in inp["name"].to_pylist() and SECRET in out["name"].to_pylist()


def test_report_sections_show_aggregates(rendered):
    d, _ = rendered["failed"]
    page = (d / "report" / "index.html").read_text(encoding="utf-8")
    for needle in (
        "null:age",
        "type:age",
        "Records by class size",
        "2.5",
        "10.0",
        "PERSON",
        "income",
        "key group",
        "ε = 1.0",
        "304 input rows = 300 output + 4 quarantined",  # the manifest's reconciliation
    ):
        assert needle in page, needle
    assert page.count("<svg") == 1 + 6  # k histogram + 6 before/after plots


def test_render_report_rejects_ragged_plot(tmp_path):
    with pytest.raises(ValueError):
        render_report(
            str(tmp_path),
            {"status": "passed", "failed": [], "checks": []},
            {},
            {"c": {"bins": ["a", "b"], "before": [1], "after": [1, 2]}},
        )
    assert not os.path.exists(tmp_path / "report" / "index.html")


def test_render_report_rejects_non_json_details(tmp_path):
    val = {
        "status": "passed",
        "failed": [],
        "checks": [{"name": "x", "passed": True, "details": {"v": object()}}],
    }
    with pytest.raises(TypeError):
        render_report(str(tmp_path), val, {}, {})


def test_report_shows_no_bin_edge_derived_from_an_outlier(tmp_path):
    """One age of 347 and one birth in 1912 (#13.6): before, they made "340 – 360" and
    "1912–1915" bins; now they are counted in top- and bottom-coded bins whose cut points
    come from released classes held by at least 5 records."""
    import datetime as dt

    import pyarrow as pa

    from tests.report_data import SCHEMA
    from transforms.actions import generalize

    inp, out = sample_tables()
    ages = inp["age"].to_pylist()
    ages[0] = 347
    born = inp["born"].to_pylist()
    born[1] = dt.date(1912, 6, 15)
    for name, values, typ in (("age", ages, pa.int64()), ("born", born, pa.date32())):
        col = pa.array(values, typ)
        inp = inp.set_column(inp.schema.get_field_index(name), name, col)
        out = out.set_column(
            out.schema.get_field_index(name), name, generalize(col, SCHEMA.column(name), None)
        )
    plots = sample_plots(inp, out, min_count=5)
    assert any(b.startswith("≥ ") for b in plots["age"]["bins"])
    assert any(b.startswith("< ") for b in plots["born"]["bins"])
    render_report(str(tmp_path), sample_validation(out), sample_manifest(), plots)
    p = _Collector()
    p.feed((tmp_path / "report" / "index.html").read_text(encoding="utf-8"))
    p.close()
    text = " ".join(p.text)  # labels are text nodes (attributes hold SVG coordinates)
    validation = (tmp_path / "report" / "validation.json").read_text(encoding="utf-8")
    for derived in ("347", "340", "350", "360", "1912", "1915", "1910"):
        assert derived not in text, derived
        assert derived not in validation, derived
