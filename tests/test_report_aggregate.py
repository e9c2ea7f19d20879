"""Report aggregation: histograms over public bins only, plot bins, small-cell suppression."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest

from tests.report_data import SCHEMA, SECRET, sample_plots, sample_tables
from transforms.report.aggregate import column_plot, histogram_counts, plot_bins


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
    h = histogram_counts(values, **kwargs)
    assert h == {"bins": bins, "counts": counts}
    assert SECRET not in json.dumps(h)


def test_histogram_counts_small_cell_suppression():
    h = histogram_counts(pa.array([1, 1, 1, 5, 12]), edges=[0, 4, 8, 16], min_count=3)
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
        histogram_counts(values, **kwargs)


def test_column_plot_kinds():
    inp, out = sample_tables()
    plots = sample_plots(inp, out)
    assert set(plots) == {"age", "zip", "born", "income", "gender", "smoker"}
    assert plots["gender"]["bins"][:3] == ["f", "m", "<x>"]
    # generalize: both sides at the released resolution, so the counts agree
    assert plots["age"]["before"] == plots["age"]["after"]
    assert sum(plots["income"]["before"]) == sum(plots["income"]["after"]) == 300
    assert column_plot(SCHEMA.column("name"), inp["name"], out["name"]) is None
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
    from transforms.actions import generalize
    from transforms.arrow import ARROW_TYPES

    spec = ColumnSpec("d", ctype, "generalize", params={"date_part": part})
    arr = pa.array(values * 5, ARROW_TYPES[ctype])  # each class held by >= 5 records
    p = column_plot(spec, arr, generalize(arr, spec, None))
    after = [5 * n for n in after]
    assert (p["bins"], p["after"], p["before"]) == (bins, after, after)


def test_ldp_int_bins_are_the_integers():
    from schemas.columns import ColumnSpec

    spec = ColumnSpec("n", "int", "ldp", params={"epsilon": 1.0, "bounds": [0, 3]})
    h = histogram_counts(pa.array([-2, 0, 1, 1, 3, 9]), **plot_bins(spec, pa.array([0])))
    assert h == {
        "bins": ["< 0", "0", "1", "2", "3", "> 3", "(null)"],
        "counts": [1, 1, 2, 0, 1, 1, 0],
    }


def test_keep_prefix_labels_need_min_count():
    spec = SCHEMA.column("zip")
    out = pa.array(["941"] * 5 + ["100"] * 2 + ["777"])
    bins = plot_bins(spec, out, min_count=3)
    assert bins == {"categories": ["941"]}


# --------------------------------------------------------------------------- outliers (#13.6)


def _ages(n=300, seed=3) -> list[int]:
    return [int(a) for a in np.random.default_rng(seed).integers(18, 90, n)]


def _births(n=2000, seed=4) -> list[dt.date]:
    days = np.random.default_rng(seed).integers(0, 20000, n)
    return [dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in days]


def _plot(spec, values, arrow_type, min_count):
    from transforms.actions import generalize

    arr = pa.array(values, arrow_type)
    out = generalize(arr, spec, None)
    return plot_bins(spec, out, min_count), column_plot(spec, arr, out, min_count)


@pytest.mark.parametrize("min_count", [0, 5])
@pytest.mark.parametrize(
    "column, values, arrow_type, outlier, derived",
    [
        # one age of 107 (bucket 10) made a "100 – 110" bin
        ("age", _ages(), pa.int64(), 107, ("100", "107", "110")),
        # one age of -40 made a "-40 – -30" bin
        ("age", _ages(), pa.int64(), -40, ("-",)),
        # one birth in 1912 (date_part year) made "1912–1914"-style bins
        ("born", _births(), pa.date32(), dt.date(1912, 6, 15), ("191",)),
        ("born", _births(), pa.date32(), dt.date(2071, 6, 15), ("207",)),
    ],
)
def test_one_outlier_neither_makes_nor_labels_a_bin(
    column, values, arrow_type, outlier, derived, min_count
):
    spec = SCHEMA.column(column)
    bins, _ = _plot(spec, values, arrow_type, min_count)
    bins_out, plot = _plot(spec, values + [outlier], arrow_type, min_count)
    assert bins_out == bins  # the edges do not move for one record
    labels = " | ".join(plot["bins"])
    assert not any(d in labels for d in derived), labels
    # the outlier is counted in a top- or bottom-coded bin, never in a bin of its own
    coded = [b for b in plot["bins"] if b.startswith(("< ", "≥ "))]
    assert coded and sum(plot["after"][plot["bins"].index(b)] or 1 for b in coded) >= 1


def test_keep_prefix_of_one_record_is_never_a_label_even_without_suppression():
    spec = SCHEMA.column("zip")
    out = pa.array(["941"] * 5 + ["100"] * 2 + ["777"])
    assert plot_bins(spec, out, min_count=0) == {"categories": ["941"]}
