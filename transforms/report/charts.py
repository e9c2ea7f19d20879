"""The report's SVG chart kit: hand-written inline bar charts, no plotting library.

matplotlib cost ~0.85 s to import and ~0.12 s per chart at the end of every gated run;
these bar charts need a few dozen elements (~2 ms for four). Every text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_PASS, _FAIL, _WARN = "#1a7f37", "#cf222e", "#9a6700"
_BEFORE, _AFTER = "#8c959f", "#0969da"
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


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


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
