"""Report: `report/index.html` and `report/validation.json` in the output directory.

The HTML page is self-contained: inline CSS, bar charts as inline SVG written here
(`_bar_chart`: no plotting library, so rendering takes milliseconds), no script, no CDN, no
link out; it opens from a file on a machine without network. It starts with the verdict,
then the columns and their policy, the privacy figures, the PII findings, k-anonymity, the
before/after distributions, the quarantine and the expectation suites.

The report only ever receives aggregates: the validation dict (check details are counts),
the manifest body, and pre-aggregated histograms. `histogram_counts()` / `column_plot()` are
how the pipeline builds those histograms: bins come from the schema (ldp bounds and
categories) or from the released, generalized values; a string column without declared
categories is refused, so raw values never become labels. Every text goes through
`html.escape`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.columns import ColumnSpec
from transforms.gates import checks as gate_checks
from transforms.gates.checks import fmt_int as _int
from transforms.gates.checks import fmt_pct as _pct

REPORT_DIR = "report"
INDEX = "index.html"
VALIDATION_JSON = "validation.json"
VALIDATION_FORMAT = "privgate-validation/1"
NULL_LABEL = "(null)"
OTHER_LABEL = "(other)"
MAX_BINS = 30
LDP_NUMERIC_NOTE = (
    "Local DP noise: single outputs may lie outside the declared bounds (the "
    "outer bins); their mean stays unbiased (privgate.estimate)."
)
LDP_CATEGORICAL_NOTE = (
    "Randomized response: output shares are pulled toward uniform; "
    "privgate.estimate de-biases the frequencies."
)

_PASS, _FAIL, _WARN = "#1a7f37", "#cf222e", "#9a6700"
_BEFORE, _AFTER = "#8c959f", "#0969da"


# --------------------------------------------------------------------------- aggregation


def _fmt_num(v: float) -> str:
    return f"{v:,.6g}" if abs(v) < 1e15 else f"{v:.3e}"


def _as_numbers(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, str]:
    """Non-null values as float64 plus the kind: numeric, date (days) or timestamp (us)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.drop_null()
    t = arr.type
    if pa.types.is_date(t):
        return pc.cast(pc.cast(arr, pa.date32()), pa.int32()).to_numpy().astype(np.float64), "date"
    if pa.types.is_timestamp(t):
        return pc.cast(pc.cast(arr, pa.timestamp("us", tz=t.tz)), pa.int64()).to_numpy().astype(
            np.float64
        ), "timestamp"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), "numeric"
    raise ValueError("numeric bins need an int, float, date or timestamp column")


def _edge_numbers(edges: Sequence, kind: str) -> np.ndarray:
    if kind == "date":
        vals = [
            (e - dt.date(1970, 1, 1)).days
            if isinstance(e, dt.date) and not isinstance(e, dt.datetime)
            else float("nan")
            for e in edges
        ]
    elif kind == "timestamp":
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        vals = []
        for e in edges:
            if not isinstance(e, dt.datetime):
                vals.append(float("nan"))
                continue
            e = e if e.tzinfo else e.replace(tzinfo=dt.UTC)
            vals.append((e - epoch) // dt.timedelta(microseconds=1))
    else:
        vals = [
            float(e) if isinstance(e, int | float) and not isinstance(e, bool) else float("nan")
            for e in edges
        ]
    out = np.asarray(vals, dtype=np.float64)
    if out.size < 2 or not np.all(np.isfinite(out)) or not np.all(np.diff(out) > 0):
        raise ValueError("edges must be at least 2 increasing values of the column's kind")
    return out


def _edge_label(e: Any, kind: str) -> str:
    if kind == "numeric":
        return _fmt_num(float(e))
    if isinstance(e, dt.datetime):
        return e.isoformat(sep=" ", timespec="minutes")
    return e.isoformat()


def _suppress(counts: list[int], min_count: int) -> list[int | None]:
    return [None if 0 < c < min_count else int(c) for c in counts]


def histogram_counts(
    arr: pa.Array | pa.ChunkedArray,
    *,
    edges: Sequence | None = None,
    categories: Sequence | None = None,
    labels: Sequence[str] | None = None,
    min_count: int = 0,
) -> dict:
    """Counts per public bin of one column: the aggregated input of a distribution plot.

    Exactly one of `edges` (numeric, date and timestamp columns) or `categories` (string and
    bool columns) is given. Bins never come from the data: a string column without declared
    categories is refused, and values outside the categories are counted as "(other)".

    Args:
        arr: the column (raw input or protected output).
        edges: increasing bin edges (numbers; `datetime.date` for date columns;
            `datetime.datetime` for timestamp columns). Bins are [e_i, e_i+1), the last one
            closed; values below / above the edges get bins "< first" / "> last".
        categories: the declared categories (strings), or booleans for a bool column.
        labels: display labels for the edge bins (len(edges) - 1; the outer bins become
            "< first label" / "> last label") or for the categories.
        min_count: counts in 1 .. min_count-1 are reported as None (small-cell suppression).
    Returns:
        {"bins": [labels], "counts": [int | None]}; the last bin is "(null)".
    Raises:
        ValueError: both or neither of edges/categories, bad edges, labels of the wrong
            length, or a column type the bins do not fit.
    """
    if (edges is None) == (categories is None):
        raise ValueError("give exactly one of edges or categories")
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    nulls = arr.null_count
    if edges is not None:
        x, kind = _as_numbers(arr)
        e = _edge_numbers(edges, kind)
        bins = labels or [
            f"{_edge_label(a, kind)} – {_edge_label(b, kind)}"
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
        if len(bins) != len(e) - 1:
            raise ValueError("labels must have one entry per bin")
        idx = np.searchsorted(e, x, side="right") - 1
        idx[x == e[-1]] = len(e) - 2  # the last bin is closed
        inside = np.bincount(idx[(idx >= 0) & (idx < len(e) - 1)], minlength=len(e) - 1)
        below, above = int((x < e[0]).sum()), int((x > e[-1]).sum())
        if labels:
            outer = (f"< {bins[0]}", f"> {bins[-1]}")
        else:
            outer = (f"< {_edge_label(edges[0], kind)}", f"> {_edge_label(edges[-1], kind)}")
        names = [outer[0], *bins, outer[1]]
        counts = [below, *inside.tolist(), above]
    else:
        cats = list(categories)
        if not cats:
            raise ValueError("categories must not be empty")
        if pa.types.is_boolean(arr.type):
            if not all(isinstance(c, bool) for c in cats):
                raise ValueError("a bool column takes categories [False, True]")
            vals = pa.array(cats, pa.bool_())
        elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            if not all(isinstance(c, str) for c in cats):
                raise ValueError("a string column takes string categories")
            arr = pc.cast(arr, pa.string())
            vals = pa.array(cats, pa.string())
        else:
            raise ValueError("categories apply to string and bool columns")
        idx = pc.index_in(arr.drop_null(), value_set=vals)
        known = idx.drop_null().to_numpy(zero_copy_only=False)
        counts = np.bincount(known, minlength=len(cats)).tolist()
        other = int(idx.null_count)
        names = (
            list(labels)
            if labels
            else [str(c).lower() if isinstance(c, bool) else str(c) for c in cats]
        )
        if len(names) != len(cats):
            raise ValueError("labels must have one entry per category")
        names.append(OTHER_LABEL)
        counts.append(other)
    names.append(NULL_LABEL)
    counts.append(int(nulls))
    return {"bins": [str(b) for b in names], "counts": _suppress(counts, int(min_count))}


def before_after(before: Mapping, after: Mapping) -> dict:
    """One plot's input from two `histogram_counts` over the same bins.

    Args:
        before: histogram of the input column.
        after: histogram of the output column.
    Returns:
        {"bins", "before", "after"}, bins empty on both sides left out.
    Raises:
        ValueError: the bins differ.
    """
    if list(before["bins"]) != list(after["bins"]):
        raise ValueError("before and after histograms must use the same bins")
    keep = [
        i
        for i, (b, a) in enumerate(zip(before["counts"], after["counts"], strict=True))
        if b != 0 or a != 0
    ]
    return {
        "bins": [before["bins"][i] for i in keep],
        "before": [before["counts"][i] for i in keep],
        "after": [after["counts"][i] for i in keep],
    }


def _coarse_edges(lo: float, hi: float, step: float) -> list[float]:
    """Multiples of `step` covering [lo, hi], merged so there are at most MAX_BINS bins."""
    n = max(1, math.ceil((hi - lo) / step) + 1)
    step *= max(1, math.ceil(n / MAX_BINS))
    start = math.floor(lo / step) * step
    count = max(1, math.ceil((hi - start) / step + 1e-9))
    if start + count * step <= hi:
        count += 1
    return [start + i * step for i in range(count + 1)]


def _date_edges(out: pa.Array, part: str, kind: str) -> tuple[list, list[str] | None]:
    """Period edges (and labels) covering the released dates, at most MAX_BINS periods."""
    x, _ = _as_numbers(out)
    if kind == "date":
        base = dt.date(1970, 1, 1)
        first = base + dt.timedelta(days=int(x.min()))
        last = base + dt.timedelta(days=int(x.max()))

        def make(y: int, m: int = 1) -> Any:
            return dt.date(y, m, 1)
    else:
        base = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        first = base + dt.timedelta(microseconds=int(x.min()))
        last = base + dt.timedelta(microseconds=int(x.max()))

        def make(y: int, m: int = 1) -> Any:
            return dt.datetime(y, m, 1, tzinfo=dt.UTC)

    if part in ("year", "month"):
        per = 1 if part == "year" else 12
        lo = first.year * per + (0 if part == "year" else first.month - 1)
        hi = last.year * per + (0 if part == "year" else last.month - 1)
        step = max(1, math.ceil((hi - lo + 1) / MAX_BINS))
        idx = list(range(lo, hi + step + 1, step))
        if part == "year":
            edges = [make(i) for i in idx]
            labels = [
                str(a) if step == 1 else f"{a}–{b - 1}"
                for a, b in zip(idx[:-1], idx[1:], strict=True)
            ]
        else:
            edges = [make(i // 12, i % 12 + 1) for i in idx]
            labels = [f"{a // 12}-{a % 12 + 1:02d}" + ("" if step == 1 else "…") for a in idx[:-1]]
        return edges, labels
    unit = dt.timedelta(days=1) if part == "day" else dt.timedelta(hours=1)
    step = max(1, math.ceil((int((last - first) / unit) + 1) / MAX_BINS))
    edges = [first]
    while edges[-1] <= last:
        edges.append(edges[-1] + unit * step)
    fmt = "%Y-%m-%d" if part == "day" else "%Y-%m-%d %H:00"
    labels = [e.strftime(fmt) + ("" if step == 1 else "…") for e in edges[:-1]]
    return edges, labels


def plot_bins(
    spec: ColumnSpec, output: pa.Array | pa.ChunkedArray, min_count: int = 0
) -> dict | None:
    """Public bins for a column's before/after plot, from the schema or released values.

    ldp columns: ten equal bins over the declared bounds (numeric), the declared categories
    (string), false/true (bool). generalize columns: the released classes (multiples of
    `bucket`, periods of `date_part`, the kept prefixes seen in the output with at least
    `min_count` records; other prefixes go to "(other)").

    Args:
        spec: the column's schema entry.
        output: the protected output column (generalize bins come from released values).
        min_count: prefixes seen fewer times are not used as labels.
    Returns:
        keyword arguments for `histogram_counts` ({"edges": ...} or {"categories": ...},
        maybe "labels"), or None when the column gets no plot (other actions, or nothing released).
    """
    p = spec.params
    if spec.action == "ldp":
        if spec.type == "bool":
            return {"categories": [False, True]}
        if spec.type == "string":
            from transforms.ldp import category_domain

            return {"categories": list(category_domain(p["categories"], p.get("other")))}
        lo, hi = p["bounds"]
        if spec.type == "int" and hi - lo <= 20:
            return {
                "edges": [v - 0.5 for v in range(int(lo), int(hi) + 2)],
                "labels": [str(v) for v in range(int(lo), int(hi) + 1)],
            }
        return {"edges": np.linspace(float(lo), float(hi), 11).tolist()}
    if spec.action != "generalize":
        return None
    if isinstance(output, pa.ChunkedArray):
        output = output.combine_chunks()
    if len(output) == output.null_count:
        return None
    if "bucket" in p:
        x, _ = _as_numbers(output)
        return {"edges": _coarse_edges(float(x.min()), float(x.max()), float(p["bucket"]))}
    if "date_part" in p:
        kind = "date" if pa.types.is_date(output.type) else "timestamp"
        edges, labels = _date_edges(output, p["date_part"], kind)
        return {"edges": edges, "labels": labels}
    counts = pc.value_counts(output.drop_null())
    vals = counts.field("values").to_pylist()
    ns = counts.field("counts").to_pylist()
    keep = sorted((n, v) for v, n in zip(vals, ns, strict=True) if n >= max(1, min_count))
    keep = sorted(v for _, v in keep[-MAX_BINS:])
    return {"categories": keep} if keep else None


def column_plot(
    spec: ColumnSpec,
    before: pa.Array | pa.ChunkedArray,
    after: pa.Array | pa.ChunkedArray,
    min_count: int = 0,
) -> dict | None:
    """The before/after plot input of one ldp or generalize column.

    For generalize columns `before` is generalized the same way first, so both sides are
    counted at the released resolution (the report shows no finer detail than the output).

    Args:
        spec: the column's schema entry.
        before: the typed input column (after the contract check, before protection).
        after: the protected output column.
        min_count: small-cell suppression (see `histogram_counts`).
    Returns:
        {"bins", "before", "after"} (plus a "note" for ldp columns) for `render_report`'s
        `plots`, or None (no plot).
    """
    bins = plot_bins(spec, after, min_count)
    if bins is None:
        return None
    if spec.action == "generalize":
        from transforms.actions import generalize

        before = generalize(
            before.combine_chunks() if isinstance(before, pa.ChunkedArray) else before, spec, None
        )
    plot = before_after(
        histogram_counts(before, min_count=min_count, **bins),
        histogram_counts(after, min_count=min_count, **bins),
    )
    if spec.action == "ldp":
        plot["note"] = LDP_NUMERIC_NOTE if spec.type in ("int", "float") else LDP_CATEGORICAL_NOTE
    elif "keep_prefix" in spec.params:
        plot["note"] = (
            f"Only the {MAX_BINS} most frequent prefixes shared by at least "
            f"{max(1, min_count)} records are named; the rest count as {OTHER_LABEL}."
        )
    return plot


# --------------------------------------------------------------------------- charts
# Hand-written inline SVG: matplotlib cost ~0.85 s to import and ~0.12 s per chart at the end
# of every gated run; these bar charts need a few dozen elements (~2 ms for four).

_SVG_W = 960  # viewBox width; the page scales it (`.chart svg`)
_PLOT_H = 190  # height of the plotting area
_TOP = 44  # room for the title row (and the legend) and annotations above the tallest bar
_RIGHT = 16
_TICK_FS, _TITLE_FS, _NOTE_FS = 11, 13, 10
_CHAR_W = 0.6  # average glyph width of the page's sans-serif, in em (digits: 0.55-0.64)
_ROTATE_OVER = 6  # more bins than this: x labels are rotated
_ROTATION = 35  # degrees
_ROTATED_W = 150  # longest rotated x label (viewBox units) before it is cut
_MAX_BAR_W = 90
_INK, _MUTED, _GRID, _AXIS = "#1f2328", "#59636e", "#d0d7de", "#8c959f"


@dataclass(frozen=True)
class _Series:
    """One bar per bin: counts (None = a suppressed small cell), one colour or one per bar,
    and optional short texts drawn above the bars."""

    name: str
    values: Sequence[int | None]
    color: str | Sequence[str]
    notes: Sequence[str | None] = ()

    def color_at(self, i: int) -> str:
        return self.color if isinstance(self.color, str) else self.color[i]


def _text_w(text: str, size: float) -> float:
    """Estimated width of a text line: narrow punctuation and spaces count for about half."""
    narrow = sum(c in " ,.:;'|!()[]ijl" for c in text)
    return (len(text) - narrow / 2) * size * _CHAR_W


def _clip(text: str, width: float, size: float) -> str:
    """`text`, cut and ended with "…" if it is wider than `width`."""
    if _text_w(text, size) <= width:
        return text
    while len(text) > 1 and _text_w(text + "…", size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _f(v: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _nice_ticks(top: int, n: int = 5) -> list[int]:
    """0 up to the first multiple of a 1/2/5 x 10^e step at or above `top`, about n steps."""
    if top <= 0:
        return [0, 1]
    e = 0
    while 10 ** (e + 1) * n < top:
        e += 1
    step = next(m * 10**e for m in (1, 2, 5, 10) if m * 10**e * n >= top)
    return list(range(0, -(-top // step) * step + 1, step))


def _bar_chart(
    bins: Sequence[str],
    series: Sequence[_Series],
    *,
    title: str,
    y_label: str,
    x_label: str = "",
    aria_label: str = "",
) -> str:
    """A bar chart as inline SVG: bins along x, one bar per series in each bin (grouped),
    y axis from 0 with ~5 round ticks and gridlines, a legend when there are several series.

    More than 6 bins rotate the x labels (-35°, end at the bin) unless they all fit side by
    side. Text is escaped; a label too long for its place is cut with "…" (the full text is
    its tooltip). A None count draws no bar but a vertical "supp." mark. Every bar is a
    `rect.bar` whose tooltip gives its count.
    """
    bins = [str(b) for b in bins]
    n, k = len(bins), len(series)
    counts = [[None if v is None else max(0, int(v)) for v in s.values] for s in series]
    ticks = _nice_ticks(max((v for c in counts for v in c if v is not None), default=0))
    tick_labels = [f"{t:,}" for t in ticks]
    # Left margin: y tick labels and the y axis title, and (rotated) the first x labels,
    # which reach left of their bin.
    left = max(_text_w(t, _TICK_FS) for t in tick_labels) + 12 + (_TICK_FS + 8)
    # Many bins: x labels rotated, unless they all fit side by side (class sizes "5-9").
    rotate = (
        n > _ROTATE_OVER
        and max(_text_w(b, _TICK_FS) for b in bins) > 0.75 * (_SVG_W - left - _RIGHT) / n
    )
    cos, sin = math.cos(math.radians(_ROTATION)), math.sin(math.radians(_ROTATION))
    shown = [_clip(b, _ROTATED_W, _TICK_FS) for b in bins] if rotate else list(bins)
    for _ in range(2):
        slot = (_SVG_W - left - _RIGHT) / max(n, 1)
        if rotate:
            left = max(
                [left]
                + [_text_w(s, _TICK_FS) * cos - slot * (i + 0.5) + 6 for i, s in enumerate(shown)]
            )
    slot = (_SVG_W - left - _RIGHT) / max(n, 1)
    if not rotate:
        shown = [_clip(b, slot - 6, _TICK_FS) for b in bins]
    label_fs = _TICK_FS if not rotate else max(7.0, min(_TICK_FS, slot * sin - 3))
    if rotate:
        label_h = max((_text_w(s, label_fs) * sin for s in shown), default=0) + label_fs + 10
    else:
        label_h = _TICK_FS + 12
    base = _TOP + _PLOT_H
    height = base + label_h + (_TICK_FS + 12 if x_label else 6)
    right = _SVG_W - _RIGHT

    def y_of(v: int) -> float:
        return base - _PLOT_H * v / ticks[-1]

    out = [
        f'<svg viewBox="0 0 {_SVG_W} {_f(height)}" role="img" '
        f'aria-label="{_e(aria_label or title)}">'
    ]
    # title, legend (right-aligned in the title row)
    legend, x = [], right
    if k > 1:
        for s in reversed(series):
            w = _text_w(s.name, _TICK_FS)
            x -= w
            legend.append(
                f'<text x="{_f(x)}" y="18" font-size="{_TICK_FS}" fill="{_INK}">{_e(s.name)}</text>'
            )
            x -= 16
            key = s.color if isinstance(s.color, str) else next(iter(s.color), _AXIS)
            legend.append(
                f'<rect class="key" x="{_f(x)}" y="9" width="11" height="11" fill="{_e(key)}"/>'
            )
            x -= 14
    shown_title = _clip(title, x - 16, _TITLE_FS)
    tip = f"<title>{_e(title)}</title>" if shown_title != title else ""
    out.append(
        f'<text x="4" y="18" font-size="{_TITLE_FS}" font-weight="600" '
        f'fill="{_INK}">{_e(shown_title)}{tip}</text>'
    )
    out.extend(reversed(legend))
    # y axis: gridlines, tick labels, title
    for t, label in zip(ticks, tick_labels, strict=True):
        y = _f(y_of(t))
        if t:
            out.append(
                f'<line x1="{_f(left)}" x2="{_f(right)}" y1="{y}" y2="{y}" '
                f'stroke="{_GRID}" stroke-width="1"/>'
            )
        out.append(
            f'<text x="{_f(left - 6)}" y="{y}" dy="0.35em" text-anchor="end" '
            f'font-size="{_TICK_FS}" fill="{_MUTED}">{_e(label)}</text>'
        )
    mid = _f(_TOP + _PLOT_H / 2)
    out.append(
        f'<text transform="translate({_TICK_FS + 2} {mid}) rotate(-90)" '
        f'text-anchor="middle" font-size="{_TICK_FS}" fill="{_MUTED}">'
        f"{_e(y_label)}</text>"
    )
    # bars, marks and x labels
    group = min(slot * 0.8, _MAX_BAR_W * k)
    bar_w = group / max(k, 1)
    for i, b in enumerate(bins):
        cx = left + slot * (i + 0.5)
        for j, s in enumerate(series):
            v = counts[j][i]
            bx = cx - group / 2 + j * bar_w
            mx = _f(bx + bar_w / 2)
            what = f"{b}: {s.name}" if k > 1 else b
            if v is None:
                out.append(
                    f'<text class="supp" transform="translate({mx} {_f(base - 4)}) '
                    f'rotate(-90)" dy="0.35em" font-size="{_NOTE_FS}" '
                    f'fill="{_MUTED}">supp.<title>{_e(what)}: suppressed (too few '
                    f"records to show)</title></text>"
                )
                continue
            top = y_of(v)
            out.append(
                f'<rect class="bar" x="{_f(bx)}" y="{_f(top)}" width="{_f(bar_w)}" '
                f'height="{_f(base - top)}" fill="{_e(s.color_at(i))}">'
                f"<title>{_e(what)}: {v:,}</title></rect>"
            )
            note = s.notes[i] if i < len(s.notes) else None
            if note:
                fs = max(7.0, min(_NOTE_FS, slot * 0.95 / max(_text_w(note, 1), 1)))
                out.append(
                    f'<text class="note" x="{mx}" y="{_f(top - 4)}" '
                    f'text-anchor="middle" font-size="{_f(fs)}" fill="{_INK}">'
                    f"{_e(note)}</text>"
                )
        tip = f"<title>{_e(b)}</title>" if shown[i] != b else ""
        if rotate:
            ly = _f(base + 12)
            out.append(
                f'<text transform="translate({_f(cx + 3)} {ly}) rotate(-{_ROTATION})" '
                f'text-anchor="end" font-size="{_f(label_fs)}" fill="{_INK}">'
                f"{_e(shown[i])}{tip}</text>"
            )
        else:
            out.append(
                f'<text x="{_f(cx)}" y="{_f(base + _TICK_FS + 6)}" '
                f'text-anchor="middle" font-size="{_TICK_FS}" fill="{_INK}">'
                f"{_e(shown[i])}{tip}</text>"
            )
    if not n:
        out.append(
            f'<text x="{_f((left + right) / 2)}" y="{_f(_TOP + _PLOT_H / 2)}" '
            f'text-anchor="middle" font-size="{_TICK_FS}" fill="{_MUTED}">'
            f"no records to show</text>"
        )
    out.append(
        f'<line x1="{_f(left)}" x2="{_f(right)}" y1="{_f(base)}" y2="{_f(base)}" '
        f'stroke="{_AXIS}" stroke-width="1"/>'
    )
    if x_label:
        out.append(
            f'<text x="{_f((left + right) / 2)}" y="{_f(height - 8)}" '
            f'text-anchor="middle" font-size="{_TICK_FS}" fill="{_MUTED}">'
            f"{_e(x_label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _k_histogram_svg(hist: Sequence[Mapping], k: int) -> str:
    colors, notes = [], []
    for h in hist:
        lo = int(str(h["size"]).split("-")[0].rstrip("+"))
        colors.append(_FAIL if lo < k else _PASS)
        notes.append(f"{h['classes']:,} cl." if h["classes"] else None)
    title = f"Records by class size (red: classes smaller than k = {k})"
    return _bar_chart(
        [str(h["size"]) for h in hist],
        [_Series("records", [h["records"] for h in hist], colors, notes)],
        title=title,
        y_label="records",
        x_label="equivalence-class size (records sharing the quasi-identifiers)",
        aria_label=f"{title}; bar chart of records per class-size bucket",
    )


def _before_after_svg(column: str, plot: Mapping) -> str:
    return _bar_chart(
        plot["bins"],
        [
            _Series("before (input)", plot["before"], _BEFORE),
            _Series("after (output)", plot["after"], _AFTER),
        ],
        title=column,
        y_label="records",
        aria_label=f"{column}: records per bin before (input) and after (output) protection",
    )


# --------------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0;color:#1f2328;background:#f6f8fa;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;
 border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
.meta{color:#59636e;font-size:13px}
.verdict{border-radius:10px;padding:22px 26px;margin:18px 0;color:#fff}
.verdict .big{font-size:40px;font-weight:800;letter-spacing:.04em}
.verdict.passed{background:#1a7f37}.verdict.failed{background:#cf222e}
.verdict code{background:rgba(255,255,255,.22);color:#fff}
.verdict ul{margin:8px 0 0 18px;padding:0;font-size:15px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px;margin:6px 0}
th,td{border:1px solid #d0d7de;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:700}.bad{color:#cf222e;font-weight:700}
.warn{color:#9a6700;font-weight:700}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;margin:8px 0}
.chart{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:6px;margin:8px 0}
.chart svg{width:100%;max-width:980px;height:auto;display:block}
.note{color:#59636e;font-size:12px}
details{margin:6px 0}summary{cursor:pointer;font-size:13px}
code{font-size:12px;background:#eef1f4;padding:1px 4px;border-radius:4px}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()
) -> str:
    """An HTML table; cells are escaped unless given as `_Raw`."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in numeric else ""
            text = cell.html if isinstance(cell, _Raw) else _e(cell)
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw:
    """Markup built here from escaped parts (a status badge)."""

    def __init__(self, markup: str):
        self.html = markup


def _badge(passed: bool | None, text: str | None = None) -> _Raw:
    if passed is None:
        return _Raw(f'<span class="warn">{_e(text or "warning")}</span>')
    cls = "ok" if passed else "bad"
    return _Raw(f'<span class="{cls}">{_e(text or ("passed" if passed else "FAILED"))}</span>')


def _find(validation: Mapping, name: str) -> Mapping | None:
    for c in validation.get("checks") or []:
        if c.get("name") == name:
            return c
    return None


def _column_notes(col: Mapping) -> str:
    action = col.get("action")
    if action == "ldp":
        ldp = col.get("ldp") or {}
        mech = ldp.get("mechanism") or col.get("mechanism") or ""
        parts = [f"ε = {col.get('epsilon')}", mech]
        if col.get("bounds"):
            parts.append(f"bounds {col['bounds'][0]}–{col['bounds'][1]}")
        if col.get("categories"):
            parts.append(f"{len(col['categories'])} categories")
        return ", ".join(p for p in parts if p)
    for key in (
        "bucket",
        "keep_prefix",
        "date_part",
        "keep_first",
        "keep_last",
        "max_days",
        "domain",
    ):
        if key in col and col[key] not in (None, 0):
            return f"{key} {col[key]}"
    return ""


def _section_columns(body: Mapping) -> str:
    rows = []
    for c in body.get("columns") or []:
        rows.append(
            [
                c.get("name"),
                c.get("type"),
                c.get("action"),
                c.get("pii") or "–",
                c.get("key_group") or "–",
                c.get("output_type") or "dropped",
                _column_notes(c),
            ]
        )
    if not rows:
        return "<p class='note'>No column list in the manifest.</p>"
    return _table(
        ["column", "type", "action", "PII entity", "key group", "output type", "parameters"], rows
    )


def _section_privacy(body: Mapping) -> str:
    p = body.get("privacy")
    if not p:
        return "<p>No local differential privacy in this run (no ldp columns).</p>"
    rows = [
        [
            "epsilon per record (sum over ldp columns)",
            p.get("record_epsilon"),
            p.get("record_epsilon_max"),
        ],
        [
            "lifetime epsilon spent (after this run)",
            p.get("lifetime_spent_after"),
            p.get("lifetime_epsilon_max"),
        ],
        ["charged by this run", p.get("charged"), "–"],
    ]
    notes = []
    if p.get("memoized_noise"):
        notes.append(
            "Noise is memoized per record: re-running on the same records costs no extra epsilon."
        )
    if p.get("budget_overrun_allowed"):
        notes.append("The lifetime budget was allowed to overrun for this run.")
    return _table(["figure", "value", "limit"], rows, numeric=(1, 2)) + "".join(
        f"<p class='note'>{_e(n)}</p>" for n in notes
    )


def _section_pii(validation: Mapping) -> str:
    c = _find(validation, gate_checks.ResidualPiiCheck.name)
    if c is None:
        return "<p class='note'>Residual PII was not checked in this run.</p>"
    d = c.get("details") or {}
    by_col = d.get("by_column") or {}
    entities = sorted({e for v in by_col.values() for e in (v.get("entities") or {})})
    rows = []
    for col in sorted(by_col):
        v = by_col[col]
        ents = v.get("entities") or {}
        rows.append(
            [
                col,
                _int(v.get("sampled")),
                _int(v.get("flagged")),
                _pct(v.get("rate")),
                *[_int(ents.get(e, 0)) for e in entities],
            ]
        )
    head = f"<p>{_badge(c['passed']).html} {_e(gate_checks.summary(c))}</p>"
    if not rows:
        return head + "<p class='note'>No string column needed sampling.</p>"
    return head + _table(
        ["column", "sampled values", "values with PII", "rate", *entities],
        rows,
        numeric=tuple(range(1, 4 + len(entities))),
    )


def _section_k(validation: Mapping) -> str:
    out = []
    c = _find(validation, gate_checks.KAnonymityCheck.name)
    if c is None:
        out.append("<p class='note'>k-anonymity was not configured (gates.k_anonymity).</p>")
    else:
        d = c.get("details") or {}
        out.append(
            f"<p>{_badge(c['passed']).html} {_e(gate_checks.summary(c))}. "
            f"Quasi-identifiers: {_e(', '.join(d.get('quasi_identifiers') or []))}.</p>"
        )
        if d.get("histogram") and d.get("records"):
            out.append(f"<div class='chart'>{_k_histogram_svg(d['histogram'], int(d['k']))}</div>")
            out.append(
                _table(
                    ["class size", "classes", "records"],
                    [[h["size"], _int(h["classes"]), _int(h["records"])] for h in d["histogram"]],
                    numeric=(1, 2),
                )
            )
    ld = _find(validation, gate_checks.LDiversityCheck.name)
    if ld is not None:
        out.append("<h3>l-diversity</h3>")
        out.append(f"<p>{_badge(ld['passed']).html} {_e(gate_checks.summary(ld))}.</p>")
    return "".join(out)


def _section_ldp(validation: Mapping) -> str:
    c = _find(validation, gate_checks.LdpDomainCheck.name)
    if c is None:
        return ""
    cols = (c.get("details") or {}).get("columns") or {}
    if not cols:
        return "<p class='note'>No ldp columns.</p>"
    rows = [
        [
            col,
            v.get("domain"),
            _int(v.get("checked")),
            _int(v.get("outside")),
            _badge(bool(v.get("metadata_ok")), "yes" if v.get("metadata_ok") else "NO"),
            _badge(bool(v.get("present")) and v.get("outside") == 0 and bool(v.get("metadata_ok"))),
        ]
        for col, v in sorted(cols.items())
    ]
    return _table(
        ["column", "domain", "values checked", "outside", "metadata matches", "result"],
        rows,
        numeric=(2, 3),
    )


def _section_plots(plots: Mapping) -> str:
    if not plots:
        return "<p class='note'>No ldp or generalized columns to plot.</p>"
    out = [
        "<p class='note'>Counts per public bin (declared bounds and categories, or the "
        "released generalized classes); no value from the data is shown.</p>"
    ]
    for col in sorted(plots):
        plot = plots[col]
        suppressed = any(v is None for v in list(plot["before"]) + list(plot["after"]))
        out.append(f"<h3>{_e(col)}</h3><div class='chart'>{_before_after_svg(col, plot)}</div>")
        notes = [plot["note"]] if plot.get("note") else []
        if suppressed:
            notes.append("Bins marked supp. hold too few records to show.")
        out.extend(f"<p class='note'>{_e(n)}</p>" for n in notes)
    return "".join(out)


def _section_quarantine(body: Mapping, validation: Mapping) -> str:
    q = body.get("quarantine") or {}
    by_reason = q.get("by_reason") or {}
    out = []
    rec = _find(validation, gate_checks.ReconciliationCheck.name)
    if rec is not None:
        out.append(f"<p>{_badge(rec['passed']).html} {_e(gate_checks.summary(rec))}.</p>")
    if by_reason:
        out.append(
            _table(
                ["reason", "rows"],
                [[r, _int(n)] for r, n in sorted(by_reason.items())],
                numeric=(1,),
            )
        )
        out.append(
            "<p class='note'>Reason codes: <code>type:col</code> value not of the "
            "declared type, <code>null:col</code> missing in a non-nullable column, "
            "<code>domain:col</code> outside declared categories, <code>columns</code> "
            "ragged row, <code>encoding:col</code>, <code>size:col</code>, "
            "<code>json</code>.</p>"
        )
    else:
        out.append("<p>No row was quarantined.</p>")
    return "".join(out)


def _section_suites(validation: Mapping) -> str:
    out = []
    for c in validation.get("checks") or []:
        d = c.get("details") or {}
        if not gate_checks.is_suite_result(d):
            continue
        out.append(
            f"<h3>{_e(c['name'])} <span class='meta'>(suite {_e(d.get('suite'))})"
            f"</span></h3><p>{_badge(c['passed']).html} {_e(gate_checks.summary(c))}</p>"
        )
        failed, passed = [], []
        for e in d["expectations"]:
            ok = bool(e.get("success"))
            status = (
                _badge(True)
                if ok
                else (_badge(None, "warning") if e.get("severity") != "critical" else _badge(False))
            )
            unexpected = e.get("unexpected_count")
            (passed if ok else failed).append(
                [
                    e.get("type"),
                    e.get("column") or "–",
                    e.get("severity"),
                    status,
                    _int(e.get("element_count")),
                    "–" if unexpected is None else _int(unexpected),
                    "error" if e.get("raised_exception") else "",
                ]
            )
        headers = ["expectation", "column", "severity", "result", "rows", "unexpected", ""]
        if failed:
            out.append(_table(headers, failed, numeric=(4, 5)))
        if passed:
            out.append(
                f"<details><summary>{len(passed)} expectations passed</summary>"
                f"{_table(headers, passed, numeric=(4, 5))}</details>"
            )
    if not out:
        return "<p class='note'>No expectation suite was run.</p>"
    out.append(
        "<p class='note'>Results hold counts only: failing values are never copied "
        "into this report.</p>"
    )
    return "".join(out)


def build_html(validation: Mapping, manifest_body: Mapping, plots: Mapping) -> str:
    """The report page as a string (see `render_report`).

    Args:
        validation: `gate_verdict(...)` output.
        manifest_body: the manifest body (`pipelines.run.build_manifest`).
        plots: {column: {"bins", "before", "after"}} of aggregated counts.
    Returns:
        A complete, self-contained HTML document.
    """
    status = validation.get("status", "failed")
    passed = status == "passed"
    failed = validation.get("failed") or []
    dataset = manifest_body.get("dataset", "")
    title = f"privgate report: {dataset}" if dataset else "privgate report"
    verdict = [
        f"<section class='verdict {'passed' if passed else 'failed'}'>",
        f"<div class='big'>{'GATE PASSED' if passed else 'GATE FAILED'}</div>",
    ]
    if passed:
        verdict.append("<div>Every gate holds: this output may be used for training.</div>")
    else:
        verdict.append(
            "<div>This output must not be used: <code>privgate verify</code> "
            "refuses it. Failed checks:</div><ul>"
        )
        for name in failed:
            c = _find(validation, name) or {"name": name, "passed": False}
            verdict.append(f"<li><b>{_e(name)}</b>: {_e(gate_checks.summary(c))}</li>")
        verdict.append("</ul>")
    verdict.append("</section>")

    checks = [
        [c["name"], _badge(c["passed"]), gate_checks.summary(c)]
        for c in validation.get("checks") or []
    ]
    meta = " · ".join(
        _e(x)
        for x in (
            f"run {manifest_body.get('run_id', '–')}",
            f"finished {manifest_body.get('finished_at', '–')}",
            f"privgate {manifest_body.get('privgate_version', '–')}",
        )
        if x
    )
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1><div class='meta'>{meta}</div>",
        *verdict,
        "<h2>Gate checks</h2>",
        _table(["check", "result", "summary"], checks),
        "<h2>Columns and policy</h2>",
        _section_columns(manifest_body),
        "<h2>Privacy budget (local differential privacy)</h2>",
        _section_privacy(manifest_body),
        "<h2>Residual PII in the output</h2>",
        _section_pii(validation),
        "<h2>k-anonymity</h2>",
        _section_k(validation),
        "<h2>ldp domains</h2>",
        _section_ldp(validation) or "<p class='note'>Not checked.</p>",
        "<h2>Distributions before and after</h2>",
        _section_plots(plots),
        "<h2>Quarantine and reconciliation</h2>",
        _section_quarantine(manifest_body, validation),
        "<h2>Expectation suites</h2>",
        _section_suites(validation),
        "<p class='note'>This report holds aggregates only (counts, shares, configuration); "
        "it contains no value of any record. Machine-readable form: "
        f"<code>{_e(VALIDATION_JSON)}</code>.</p>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, bool | str) or v is None:
        return v
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.bool_):
        return bool(v)
    raise TypeError(f"validation holds a non-JSON value of type {type(v).__name__}")


def validation_document(validation: Mapping, manifest_body: Mapping) -> dict:
    """The `report/validation.json` document.

    Args:
        validation: `gate_verdict(...)` output.
        manifest_body: the manifest body (for dataset and run id).
    Returns:
        {"format", "dataset", "run_id", "status", "failed", "checks"} (JSON-able).
    Raises:
        TypeError: a value that is not plain JSON (a bug in a check's details).
    """
    return _jsonable(
        {
            "format": VALIDATION_FORMAT,
            "dataset": manifest_body.get("dataset"),
            "run_id": manifest_body.get("run_id"),
            "status": validation.get("status"),
            "failed": list(validation.get("failed") or []),
            "checks": list(validation.get("checks") or []),
        }
    )


def render_report(
    out_dir: str, validation: Mapping, manifest_body: Mapping, plots: Mapping
) -> None:
    """Write `report/index.html` and `report/validation.json` into an output directory.

    Args:
        out_dir: the (staging) output directory; `report/` is created in it.
        validation: `transforms.gates.checks.gate_verdict(...)` output.
        manifest_body: the manifest body (`columns`, `privacy`, `quarantine.by_reason`,
            `dataset`, `run_id`, ...).
        plots: {column: {"bins": [labels], "before": [counts], "after": [counts],
            optional "note"}} built with `column_plot` / `histogram_counts` (aggregates only;
            a count of None is a suppressed small cell).
    Raises:
        TypeError: validation details that are not plain JSON.
        ValueError: a plot whose before/after lengths differ from its bins.
        OSError: the directory cannot be written.
    """
    for col, plot in plots.items():
        n = len(plot["bins"])
        if len(plot["before"]) != n or len(plot["after"]) != n:
            raise ValueError(f"plot '{col}': before/after must have one count per bin")
    doc = validation_document(validation, manifest_body)
    page = build_html(validation, manifest_body, plots)
    target = os.path.join(out_dir, REPORT_DIR)
    os.makedirs(target, exist_ok=True)
    for name, text in (
        (VALIDATION_JSON, json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"),
        (INDEX, page),
    ):
        tmp = os.path.join(target, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(target, name))
