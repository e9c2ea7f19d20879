"""The certificate of an enforced release: k and l reached, suppression, information loss.

Partial certificates (one per finished partition, plus one for the suppressed rows) are sums
and minima, so they merge in any order to the same whole; `finish` turns the merged one into
the figures the manifest and the report carry. Information loss: a class's NCP on a numeric
QI is its range over the QI's global range, on a categorical one (leaves under its node - 1) /
(leaves - 1); a suppressed record counts 1 on every QI. GCP is the record-weighted NCP (per
QI, and averaged over the QIs); the discernibility metric is the sum of squared class sizes
plus records x suppressed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from schemas.anonymize import AnonymizeSpec
from transforms.gates.metrics import SIZE_BUCKETS, size_histogram

CERTIFICATE_LINE = "anonymize_certificate"
# NCP sums are kept as integers in units of 2**-40 records, so they add up to the same total
# in any order (float sums would differ in the last bit with the worker count)
_SCALE = 2**40


def empty_partial(qis: Sequence[str]) -> dict:
    return {
        "records": 0,
        "partitions": 0,
        "suppressed": 0,
        "classes": 0,
        "min_class": None,
        "min_l": None,
        "ncp_sum": {q: 0 for q in qis},
        "discernibility": 0,
        "histogram": [[0, 0] for _ in SIZE_BUCKETS],
    }


def class_partial(
    qis: Sequence[str],
    sizes: np.ndarray,
    ncp: Mapping[str, np.ndarray],
    distinct: np.ndarray | None,
    suppressed: int,
) -> dict:
    """The partial certificate of a set of classes (`sizes`, per-QI NCP per class, distinct
    sensitive values per class) plus `suppressed` records."""
    sizes = np.asarray(sizes, dtype=np.int64)
    hist = size_histogram(sizes)
    return {
        "records": int(sizes.sum()) + int(suppressed),
        "partitions": 0,  # set to 1 by the caller that finishes a partition
        "suppressed": int(suppressed),
        "classes": int(sizes.size),
        "min_class": int(sizes.min()) if sizes.size else None,
        "min_l": int(distinct.min()) if distinct is not None and sizes.size else None,
        "ncp_sum": {
            q: sum(np.rint(sizes * ncp[q] * _SCALE).astype(np.int64).tolist()) for q in qis
        },
        "discernibility": int((sizes * sizes).sum()),
        "histogram": [[h["classes"], h["records"]] for h in hist],
    }


def _min(a, b):
    return b if a is None else a if b is None else min(a, b)


def merge_partials(partials: Iterable[dict], qis: Sequence[str]) -> dict:
    """Sum and minimum of partial certificates (order does not matter)."""
    out = empty_partial(qis)
    for p in partials:
        for key in ("records", "partitions", "suppressed", "classes", "discernibility"):
            out[key] += p[key]
        out["min_class"] = _min(out["min_class"], p["min_class"])
        out["min_l"] = _min(out["min_l"], p["min_l"])
        for q in qis:
            out["ncp_sum"][q] += p["ncp_sum"][q]
        out["histogram"] = [
            [a + c, b + d] for (a, b), (c, d) in zip(out["histogram"], p["histogram"], strict=True)
        ]
    return out


def finish(partial: dict, spec: AnonymizeSpec) -> dict:
    """The certificate's figures from the merged partial.

    Returns:
        {"k", "k_reached" (smallest released class; None when none), "partitions" (finished
        by the exact local Mondrian), "classes", "records",
        "released", "suppressed", "suppressed_share", "max_suppression", "within_max_suppression",
        "ncp" {qi: GCP on it}, "gcp", "discernibility", "l", "l_reached", "histogram"
        [{"size", "classes", "records"}], "config"}.
    """
    n, s = partial["records"], partial["suppressed"]
    ncp = {
        q: ((partial["ncp_sum"][q] / _SCALE + s) / n if n else 0.0) for q in spec.quasi_identifiers
    }
    hist = size_histogram(np.array([], dtype=np.int64))
    for row, (classes, records) in zip(hist, partial["histogram"], strict=True):
        row["classes"], row["records"] = classes, records
    share = s / n if n else 0.0
    return {
        "k": spec.k,
        "k_reached": partial["min_class"],
        "partitions": partial["partitions"],
        "classes": partial["classes"],
        "records": n,
        "released": n - s,
        "suppressed": s,
        "suppressed_share": share,
        "max_suppression": spec.max_suppression,
        "within_max_suppression": share <= spec.max_suppression + 1e-12,
        "ncp": ncp,
        "gcp": float(np.mean(list(ncp.values()))) if ncp else 0.0,
        "discernibility": partial["discernibility"] + s * n,
        "l": spec.l_diversity.l if spec.l_diversity else None,
        "l_reached": partial["min_l"],
        "histogram": hist,
        "config": spec.to_dict(),
    }
