"""The report: self-contained HTML (verdict first, inline SVG, nothing fetched) and a stable
validation.json, built from aggregates only, so a secret in the data never reaches it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest
import yaml

from schemas.columns import parse_schema
from transforms import report as r
from transforms.gates import checks as gate_checks
from transforms.gates import metrics

SECRET = "ZZ-SECRET-41f9-NAME"
SCHEMA = parse_schema(
    yaml.safe_load(
        textwrap.dedent("""\
    columns:
      name:   {type: string, pii: PERSON, action: keep}
      age:    {type: int, action: generalize, bucket: 10}
      zip:    {type: string, action: generalize, keep_prefix: 3}
      born:   {type: date, action: generalize, date_part: year}
      income: {type: float, action: ldp, epsilon: 1.0, bounds: [0, 1000]}
      gender: {type: string, action: ldp, epsilon: 1.0, categories: [f, m, "<x>"]}
      smoker: {type: bool, action: ldp, epsilon: 0.5}
    """)
    ),
    "s.yaml",
)


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
    inp = pa.table(
        {
            "name": names,
            "age": pa.array(rng.integers(18, 90, n), pa.int64()),
            "zip": zips,
            "born": pa.array(
                [
                    dt.date(1950, 1, 1) + dt.timedelta(days=int(d))
                    for d in rng.integers(0, 20000, n)
                ],
                pa.date32(),
            ),
            "income": rng.uniform(0, 1200, n),
            "gender": pa.array(rng.choice(["f", "m", "<x>"], n)),
            "smoker": pa.array(rng.random(n) < 0.3),
        }
    )
    src = _SeededSource(seed)
    out = {"name": inp["name"]}
    for c in SCHEMA.columns:
        if c.action == "generalize":
            out[c.name] = generalize(inp[c.name].combine_chunks(), c, None)
        elif c.action == "ldp":
            out[c.name], _ = apply_ldp(
                inp[c.name],
                type=c.type,
                epsilon=c.params["epsilon"],
                bounds=c.params.get("bounds"),
                categories=c.params.get("categories"),
                source=src,
            )
    return inp, pa.table(out)


def _manifest():
    cols = []
    for c in SCHEMA.columns:
        cols.append(
            {"name": c.name, **c.to_dict(), "key_group": c.key_group, "output_type": c.output_type}
        )
    return {
        "dataset": "demo <customers>",
        "run_id": "20260101T000000Z-abcd1234",
        "finished_at": "2026-01-01T00:00:05+00:00",
        "privgate_version": "0.1.0",
        "columns": cols,
        "privacy": {
            "record_epsilon": 2.5,
            "record_epsilon_max": 3.0,
            "charged": 2.5,
            "lifetime_spent_after": 2.5,
            "lifetime_epsilon_max": 10.0,
            "memoized_noise": True,
            "budget_overrun_allowed": False,
        },
        "quarantine": {"by_reason": {"null:age": 2, "type:age": 1, "columns": 1}, "rows": 4},
        "reconciliation": {
            "input_rows": 304,
            "output_rows": 300,
            "quarantined_rows": 4,
            "balanced": True,
        },
    }


def _validation(out, k=5, pii_flagged=0):
    checks = [
        gate_checks.OutputColumnsCheck.build(out, SCHEMA),
        gate_checks.ResidualPiiCheck.build(
            {"name": {"sampled": 300, "flagged": pii_flagged, "entities": {"PERSON": pii_flagged}}},
            0.0,
        ),
        gate_checks.KAnonymityCheck.build(
            metrics.k_anonymity(out, ["age", "gender"], k)
        ),  # 2 passes, 50 fails
        gate_checks.LDiversityCheck.build(metrics.l_diversity(out, ["age"], "smoker", 2)),
        gate_checks.LdpDomainCheck.build(out, SCHEMA),
        gate_checks.ReconciliationCheck.build(304, 300, 4),
    ]
    return gate_checks.gate_verdict(checks)


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
    """Two reports (one passing, one failing), rendered once."""
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
    inp, out = _tables()
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
    ):
        assert needle in page, needle
    assert page.count("<svg") == 1 + 6  # k histogram + 6 before/after plots


# --------------------------------------------------------------------------- charts


def _svg_tree(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == "svg" and root.get("role") == "img" and root.get("aria-label")
    assert root.get("viewBox", "").startswith("0 0 ")
    return root


def _bars(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter("rect") if e.get("class") == "bar"]


def _texts(root: ET.Element, cls: str | None = None) -> list[ET.Element]:
    return [e for e in root.iter("text") if cls is None or e.get("class") == cls]


def _tick_values(root: ET.Element) -> list[int]:
    """The y tick labels (right-aligned numbers left of the plot), bottom to top."""
    ticks = [
        e for e in _texts(root) if e.get("text-anchor") == "end" and e.get("transform") is None
    ]
    return [int(e.text.replace(",", "")) for e in ticks]


def test_chart_has_one_bar_per_count_with_proportional_heights():
    plot = {"bins": ["a", "b", "c"], "before": [10, 0, 40], "after": [20, 30, 5]}
    root = _svg_tree(r._before_after_svg("col", plot))
    bars = _bars(root)
    assert len(bars) == 6
    # bin by bin, before then after, left to right
    assert [b.get("fill") for b in bars] == [r._BEFORE, r._AFTER] * 3
    xs = [float(b.get("x")) for b in bars]
    assert xs == sorted(xs)
    counts = [10, 20, 0, 30, 40, 5]
    heights = [float(b.get("height")) for b in bars]
    assert heights[counts.index(0)] == 0
    scale = {round(h / c, 2) for h, c in zip(heights, counts, strict=True) if c}
    assert len(scale) == 1 and scale.pop() > 0
    # every bar stands on the same baseline
    assert len({round(float(b.get("y")) + float(b.get("height")), 2) for b in bars}) == 1
    assert [b.find("title").text for b in bars][:2] == [
        "a: before (input): 10",
        "a: after (output): 20",
    ]
    # legend for the two series
    assert [e.get("fill") for e in root.iter("rect") if e.get("class") == "key"] == [
        r._BEFORE,
        r._AFTER,
    ]
    assert {"before (input)", "after (output)"} <= {e.text for e in _texts(root)}


def test_chart_y_ticks_are_round_and_cover_the_tallest_bar():
    plot = {"bins": ["a", "b"], "before": [1_234_567, 3], "after": [2, 1]}
    root = _svg_tree(r._before_after_svg("col", plot))
    ticks = _tick_values(root)
    assert ticks[0] == 0 and ticks[-1] >= 1_234_567 and 4 <= len(ticks) <= 7
    step = ticks[1]
    assert ticks == list(range(0, ticks[-1] + 1, step))
    assert str(step).rstrip("0") in ("1", "2", "5")
    assert "1,000,000" in {e.text for e in _texts(root)}  # thousands separators


@pytest.mark.parametrize(
    "top, ticks",
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (700, [0, 200, 400, 600, 800]),
        (1632, [0, 500, 1000, 1500, 2000]),
        (10**15 + 1, [0, 5 * 10**14, 10**15, 15 * 10**14]),
    ],
)
def test_nice_ticks(top, ticks):
    assert r._nice_ticks(top) == ticks


def test_chart_marks_suppressed_cells():
    plot = {"bins": ["a", "b"], "before": [None, 8], "after": [7, None]}
    root = _svg_tree(r._before_after_svg("col", plot))
    assert len(_bars(root)) == 2  # no bar for a suppressed cell ...
    supp = _texts(root, "supp")  # ... but a mark
    assert [e.text for e in supp] == ["supp.", "supp."]
    assert [e.find("title").text for e in supp] == [
        "a: before (input): suppressed (too few records to show)",
        "b: after (output): suppressed (too few records to show)",
    ]


def test_chart_escapes_data_derived_labels():
    bins = ["<script>alert(1)</script>", "a & b", 'q"uote']
    svg = r._before_after_svg("<col>", {"bins": bins, "before": [1, 2, 3], "after": [3, 2, 1]})
    assert "<script" not in svg and "<col>" not in svg and "a & b" not in svg
    assert "&lt;script&gt;" in svg and "a &amp; b" in svg
    root = _svg_tree(svg)
    texts = {e.text for e in _texts(root)}
    assert set(bins) | {"<col>"} <= texts  # the parsed text is the label itself
    assert root.get("aria-label").startswith("<col>:")


def test_k_histogram_bars_below_k_are_red():
    hist = metrics.size_histogram(np.array([1, 1, 2, 3, 4, 7, 7, 12, 30, 60, 150, 1500]))
    root = _svg_tree(r._k_histogram_svg(hist, k=5))
    bars = _bars(root)
    assert len(bars) == len(hist) == len(metrics.SIZE_BUCKETS)
    assert [b.get("fill") for b in bars] == [r._FAIL] * 4 + [r._PASS] * 5
    heights = [float(b.get("height")) for b in bars]
    assert heights.index(max(heights)) == len(hist) - 1  # 1,650 records in "100+"
    notes = [e.text for e in _texts(root, "note")]
    assert notes == [
        "2 cl.",
        "1 cl.",
        "1 cl.",
        "1 cl.",
        "2 cl.",
        "1 cl.",
        "1 cl.",
        "1 cl.",
        "2 cl.",
    ]
    big = r._k_histogram_svg([{"size": "1", "classes": 12_345, "records": 12_345}], k=2)
    assert [e.text for e in _texts(_svg_tree(big), "note")] == ["12,345 cl."]
    assert "Records by class size" in big


def test_chart_rotates_many_labels_and_cuts_long_ones():
    long = "2024-01-01 00:00+00:00 – 2024-01-02 00:00+00:00"
    few = _svg_tree(
        r._before_after_svg("c", {"bins": ["x", long], "before": [1, 2], "after": [2, 1]})
    )
    many = _svg_tree(
        r._before_after_svg(
            "c",
            {"bins": [f"bin {i}" for i in range(7)] + [long], "before": [1] * 8, "after": [1] * 8},
        )
    )
    assert not any("rotate(-35)" in (e.get("transform") or "") for e in _texts(few))
    labels = [e for e in _texts(many) if "rotate(-35)" in (e.get("transform") or "")]
    assert len(labels) == 8 and {e.get("text-anchor") for e in labels} == {"end"}
    cut = labels[-1]
    assert cut.text.endswith("…") and len(cut.text) < len(long)
    assert cut.find("title").text == long  # the full label as a tooltip
    assert labels[0].text == "bin 0" and labels[0].find("title") is None


@pytest.mark.parametrize(
    "plot",
    [
        {"bins": [], "before": [], "after": []},  # zero bins
        {"bins": ["(null)"], "before": [5], "after": [5]},  # a single bin
        {"bins": ["a", "b", "c"], "before": [0, 0, 0], "after": [0, 0, 0]},  # all zero
        {"bins": ["a", "b"], "before": [None, None], "after": [None, 0]},  # all suppressed
        {"bins": ["a", "b"], "before": [10**15, 1], "after": [0, 10**14]},  # huge counts
    ],
)
def test_chart_edge_cases(plot):
    root = _svg_tree(r._before_after_svg("c", plot))
    values = [c for c in plot["before"] + plot["after"]]
    bars = _bars(root)
    assert len(bars) == sum(c is not None for c in values)
    base = max(float(e.get("y2")) for e in root.iter("line"))
    for b in bars:
        y, h = float(b.get("y")), float(b.get("height"))
        assert h >= 0 and y >= 0 and abs(y + h - base) < 0.01
    ticks = _tick_values(root)
    assert ticks[0] == 0 and ticks[-1] >= max([c or 0 for c in values], default=0)
    if not plot["bins"]:
        assert "no records to show" in {e.text for e in _texts(root)}


def test_report_does_not_load_a_plotting_library():
    code = (
        "import sys; from transforms import report as r; "
        "r.build_html({'status': 'passed', 'checks': []}, {}, "
        "{'c': {'bins': ['a'], 'before': [1], 'after': [2]}}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- histograms


@pytest.mark.parametrize(
    "values, kwargs, bins, counts",
    [
        # numeric: [0,10), [10,20] closed at the end; below / above / null bins
        (
            pa.array([-1, 0, 5, 10, 20, 21, None], pa.int64()),
            {"edges": [0, 10, 20]},
            ["< 0", "0 – 10", "10 – 20", "> 20", "(null)"],
            [1, 2, 2, 1, 1],
        ),
        # categorical: undeclared values are counted as (other), never named
        (
            pa.array(["a", "b", SECRET, None, "a"]),
            {"categories": ["a", "b"]},
            ["a", "b", "(other)", "(null)"],
            [2, 1, 1, 1],
        ),
        # bool
        (
            pa.array([True, False, True, None]),
            {"categories": [False, True]},
            ["false", "true", "(other)", "(null)"],
            [1, 2, 0, 1],
        ),
        # dates
        (
            pa.array([dt.date(2000, 5, 1), dt.date(2001, 1, 1), dt.date(1999, 1, 1)], pa.date32()),
            {
                "edges": [dt.date(2000, 1, 1), dt.date(2001, 1, 1), dt.date(2002, 1, 1)],
                "labels": ["2000", "2001"],
            },
            ["< 2000", "2000", "2001", "> 2001", "(null)"],
            [1, 1, 1, 0, 0],
        ),
        # timestamps, no labels: ISO edges
        (
            pa.array(
                [dt.datetime(2024, 1, 1, 5, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC")
            ),
            {
                "edges": [
                    dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                    dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
                ]
            },
            [
                "< 2024-01-01 00:00+00:00",
                "2024-01-01 00:00+00:00 – 2024-01-02 00:00+00:00",
                "> 2024-01-02 00:00+00:00",
                "(null)",
            ],
            [0, 1, 0, 1],
        ),
    ],
)
def test_histogram_counts(values, kwargs, bins, counts):
    h = r.histogram_counts(values, **kwargs)
    assert h == {"bins": bins, "counts": counts}
    assert SECRET not in json.dumps(h)


def test_histogram_counts_small_cell_suppression():
    h = r.histogram_counts(pa.array([1, 1, 1, 5, 12]), edges=[0, 4, 8, 16], min_count=3)
    assert h["counts"] == [0, 3, None, None, 0, 0]


@pytest.mark.parametrize(
    "values, kwargs",
    [
        (pa.array(["a", "b"]), {"edges": [0, 1]}),  # raw strings get no bins
        (pa.array(["a", "b"]), {}),  # neither
        (pa.array([1, 2]), {"edges": [0, 1], "categories": ["a"]}),  # both
        (pa.array([1, 2]), {"edges": [1, 1]}),  # not increasing
        (pa.array([1, 2]), {"categories": ["a"]}),  # categories on numbers
        (pa.array(["a"]), {"categories": ["a"], "labels": ["x", "y"]}),
    ],
)
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


@pytest.mark.parametrize(
    "ctype, part, values, bins, after",
    [
        (
            "date",
            "year",
            [dt.date(2020, 1, 15), dt.date(2020, 3, 2), dt.date(2021, 2, 1)],
            ["2020", "2021"],
            [2, 1],
        ),
        (
            "date",
            "month",
            [dt.date(2020, 1, 15), dt.date(2020, 3, 2), dt.date(2021, 2, 1)],
            ["2020-01", "2020-03", "2021-02"],
            [1, 1, 1],
        ),
        (
            "timestamp",
            "day",
            [
                dt.datetime(2024, 1, 1, 3, tzinfo=dt.UTC),
                dt.datetime(2024, 1, 1, 5, tzinfo=dt.UTC),
                dt.datetime(2024, 1, 2, 1, tzinfo=dt.UTC),
            ],
            ["2024-01-01", "2024-01-02"],
            [2, 1],
        ),
        (
            "timestamp",
            "hour",
            [
                dt.datetime(2024, 1, 1, 3, 30, tzinfo=dt.UTC),
                dt.datetime(2024, 1, 1, 3, 50, tzinfo=dt.UTC),
            ],
            ["2024-01-01 03:00"],
            [2],
        ),
    ],
)
def test_column_plot_date_parts(ctype, part, values, bins, after):
    from schemas.columns import ColumnSpec
    from transforms.actions import ARROW_TYPES, generalize

    spec = ColumnSpec("d", ctype, "generalize", params={"date_part": part})
    arr = pa.array(values, ARROW_TYPES[ctype])
    p = r.column_plot(spec, arr, generalize(arr, spec, None))
    assert (p["bins"], p["after"], p["before"]) == (bins, after, after)


def test_ldp_int_bins_are_the_integers():
    from schemas.columns import ColumnSpec

    spec = ColumnSpec("n", "int", "ldp", params={"epsilon": 1.0, "bounds": [0, 3]})
    h = r.histogram_counts(pa.array([-2, 0, 1, 1, 3, 9]), **r.plot_bins(spec, pa.array([0])))
    assert h == {
        "bins": ["< 0", "0", "1", "2", "3", "> 3", "(null)"],
        "counts": [1, 1, 2, 0, 1, 1, 0],
    }


def test_keep_prefix_labels_need_min_count():
    spec = SCHEMA.column("zip")
    out = pa.array(["941"] * 5 + ["100"] * 2 + ["777"])
    bins = r.plot_bins(spec, out, min_count=3)
    assert bins == {"categories": ["941"]}


def test_render_report_rejects_ragged_plot(tmp_path):
    with pytest.raises(ValueError):
        r.render_report(
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
        r.render_report(str(tmp_path), val, {}, {})
