"""The aggregates a report is built from: histograms, plot bins, the validation document.

The report only ever receives aggregates: the validation dict (check details are counts),
the manifest body, and pre-aggregated histograms. `histogram_counts()` / `column_plot()` are
how the pipeline builds those histograms: bins come from the schema (ldp bounds and
categories) or from released generalized classes held by at least `MIN_CLASS_RECORDS`
records, with top and bottom coding ("< a", "≥ b") beyond them, so one outlier never makes or
labels a bin; a string column without declared categories is refused, so raw values never
become labels.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.columns import ColumnSpec

VALIDATION_FORMAT = "privgate-validation/1"
NULL_LABEL = "(null)"
OTHER_LABEL = "(other)"
MAX_BINS = 30
# A released generalized class bounds a plot's range or names a bin only when at least this
# many records hold it (or `min_count`, when higher): the report is readable without keys.
MIN_CLASS_RECORDS = 5
LDP_NUMERIC_NOTE = (
    "Local DP noise: single outputs may lie outside the declared bounds (the "
    "outer bins); their mean stays unbiased (privgate.estimate)."
)
LDP_CATEGORICAL_NOTE = (
    "Randomized response: output shares are pulled toward uniform; "
    "privgate.estimate de-biases the frequencies."
)


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
    coded: tuple[str, str] | None = None,
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
        coded: labels of a bottom- and a top-coded bin: with them every bin is half-open
            [e_i, e_i+1), values below the first edge count in `coded[0]` and values at or
            above the last edge in `coded[1]`.
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
        if coded is None:
            idx[x == e[-1]] = len(e) - 2  # the last bin is closed
        inside = np.bincount(idx[(idx >= 0) & (idx < len(e) - 1)], minlength=len(e) - 1)
        below = int((x < e[0]).sum())
        above = int((x >= e[-1]).sum() if coded is not None else (x > e[-1]).sum())
        if coded is not None:
            outer = tuple(coded)
        elif labels:
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


_PERIOD_FORMAT = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d", "hour": "%Y-%m-%d %H:00"}


def _date_edges(lo: float, hi: float, part: str, kind: str) -> tuple[list, list[str]]:
    """Period edges (and labels) from the period holding `lo` to the one holding `hi` (days
    or microseconds since the epoch), at most MAX_BINS periods."""
    if kind == "date":
        base = dt.date(1970, 1, 1)
        first = base + dt.timedelta(days=int(lo))
        last = base + dt.timedelta(days=int(hi))

        def make(y: int, m: int = 1) -> Any:
            return dt.date(y, m, 1)
    else:
        base = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        first = base + dt.timedelta(microseconds=int(lo))
        last = base + dt.timedelta(microseconds=int(hi))

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
    labels = [e.strftime(_PERIOD_FORMAT[part]) + ("" if step == 1 else "…") for e in edges[:-1]]
    return edges, labels


def _frequent_classes(output: pa.Array, threshold: int) -> pa.Array:
    """The released classes (distinct non-null values) held by at least `threshold` records."""
    counts = pc.value_counts(output.drop_null())
    return counts.field("values").filter(pc.greater_equal(counts.field("counts"), threshold))


def plot_bins(
    spec: ColumnSpec, output: pa.Array | pa.ChunkedArray, min_count: int = 0
) -> dict | None:
    """Public bins for a column's before/after plot, from the schema or released classes.

    ldp columns: ten equal bins over the declared bounds (numeric), the declared categories
    (string), false/true (bool). generalize columns: multiples of `bucket` or periods of
    `date_part` from the lowest to the highest released class held by at least
    `MIN_CLASS_RECORDS` records (or `min_count`), with a bottom- ("< a") and a top-coded
    ("≥ b") bin beyond them; for `keep_prefix`, the kept prefixes held by that many records
    (other prefixes go to "(other)"). So no edge or label comes from a rare value: one
    outlier lands in a coded bin or "(other)".

    Args:
        spec: the column's schema entry.
        output: the protected output column (generalize bins come from released classes).
        min_count: small-cell suppression of the plot; raises the class threshold above
            `MIN_CLASS_RECORDS`.
    Returns:
        keyword arguments for `histogram_counts` ({"edges": ...} or {"categories": ...},
        maybe "labels" and "coded"), or None when the column gets no plot (other actions, or
        no released class held by enough records).
    """
    p = spec.params
    if spec.action == "ldp":
        if spec.type == "bool":
            return {"categories": [False, True]}
        if spec.type == "string":
            from schemas.ldp import category_domain

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
    threshold = max(MIN_CLASS_RECORDS, int(min_count))
    frequent = _frequent_classes(output, threshold)
    if len(frequent) == 0:
        return None
    if "keep_prefix" in p:
        counts = pc.value_counts(output.drop_null())
        ranked = sorted(
            (n, v)
            for v, n in zip(
                counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
            )
            if n >= threshold
        )
        return {"categories": sorted(v for _, v in ranked[-MAX_BINS:])}
    x, kind = _as_numbers(frequent)
    lo, hi = float(x.min()), float(x.max())
    if "bucket" in p:
        edges = _coarse_edges(lo, hi, float(p["bucket"]))
        return {"edges": edges, "coded": (f"< {_fmt_num(edges[0])}", f"≥ {_fmt_num(edges[-1])}")}
    fmt = _PERIOD_FORMAT[p["date_part"]]
    edges, labels = _date_edges(lo, hi, p["date_part"], kind)
    coded = (f"< {edges[0].strftime(fmt)}", f"≥ {edges[-1].strftime(fmt)}")
    return {"edges": edges, "labels": labels, "coded": coded}


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
            f"{max(MIN_CLASS_RECORDS, min_count)} records are named; the rest count as "
            f"{OTHER_LABEL}."
        )
    else:
        plot["note"] = (
            f"The range runs from the lowest to the highest released class held by at least "
            f"{max(MIN_CLASS_RECORDS, min_count)} records; values beyond it are counted in "
            "the < and ≥ bins."
        )
    return plot


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
