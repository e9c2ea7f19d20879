"""The report's hand-drawn SVG charts: well-formed, proportional, escaped, no plotting library."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from transforms.gates import metrics
from transforms.report.charts import (
    _AFTER,
    _BEFORE,
    _FAIL,
    _PASS,
    _before_after_svg,
    _k_histogram_svg,
    _nice_ticks,
)


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
    root = _svg_tree(_before_after_svg("col", plot))
    bars = _bars(root)
    assert len(bars) == 6
    # bin by bin, before then after, left to right
    assert [b.get("fill") for b in bars] == [_BEFORE, _AFTER] * 3
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
        _BEFORE,
        _AFTER,
    ]
    assert {"before (input)", "after (output)"} <= {e.text for e in _texts(root)}


def test_chart_y_ticks_are_round_and_cover_the_tallest_bar():
    plot = {"bins": ["a", "b"], "before": [1_234_567, 3], "after": [2, 1]}
    root = _svg_tree(_before_after_svg("col", plot))
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
    assert _nice_ticks(top) == ticks


def test_chart_marks_suppressed_cells():
    plot = {"bins": ["a", "b"], "before": [None, 8], "after": [7, None]}
    root = _svg_tree(_before_after_svg("col", plot))
    assert len(_bars(root)) == 2  # no bar for a suppressed cell ...
    supp = _texts(root, "supp")  # ... but a mark
    assert [e.text for e in supp] == ["supp.", "supp."]
    assert [e.find("title").text for e in supp] == [
        "a: before (input): suppressed (too few records to show)",
        "b: after (output): suppressed (too few records to show)",
    ]


def test_chart_escapes_data_derived_labels():
    bins = ["<script>alert(1)</script>", "a & b", 'q"uote']
    svg = _before_after_svg("<col>", {"bins": bins, "before": [1, 2, 3], "after": [3, 2, 1]})
    assert "<script" not in svg and "<col>" not in svg and "a & b" not in svg
    assert "&lt;script&gt;" in svg and "a &amp; b" in svg
    root = _svg_tree(svg)
    texts = {e.text for e in _texts(root)}
    assert set(bins) | {"<col>"} <= texts  # the parsed text is the label itself
    assert root.get("aria-label").startswith("<col>:")


def test_k_histogram_bars_below_k_are_red():
    hist = metrics.size_histogram(np.array([1, 1, 2, 3, 4, 7, 7, 12, 30, 60, 150, 1500]))
    root = _svg_tree(_k_histogram_svg(hist, k=5))
    bars = _bars(root)
    assert len(bars) == len(hist) == len(metrics.SIZE_BUCKETS)
    assert [b.get("fill") for b in bars] == [_FAIL] * 4 + [_PASS] * 5
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
    big = _k_histogram_svg([{"size": "1", "classes": 12_345, "records": 12_345}], k=2)
    assert [e.text for e in _texts(_svg_tree(big), "note")] == ["12,345 cl."]
    assert "Records by class size" in big


def test_chart_rotates_many_labels_and_cuts_long_ones():
    long = "2024-01-01 00:00+00:00 – 2024-01-02 00:00+00:00"
    few = _svg_tree(
        _before_after_svg("c", {"bins": ["x", long], "before": [1, 2], "after": [2, 1]})
    )
    many = _svg_tree(
        _before_after_svg(
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
    root = _svg_tree(_before_after_svg("c", plot))
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
        "import sys; from transforms.report.html import build_html; "
        "build_html({'status': 'passed', 'checks': []}, {}, "
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
