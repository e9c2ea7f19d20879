"""Report test inputs: a schema, typed tables with a secret in them, a manifest, a verdict."""

from __future__ import annotations

import datetime as dt
import textwrap

import numpy as np
import pyarrow as pa
import yaml

from schemas.columns import parse_schema
from transforms.gates import checks as gate_checks
from transforms.gates import metrics
from transforms.report.aggregate import column_plot

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


def sample_tables(n=300, seed=5):
    """Typed input with a secret in `name` and in the zip column, and its protected output."""
    from schemas.ldp import LdpSpec
    from transforms.actions import generalize
    from transforms.ldp.column import apply_ldp

    rng = np.random.default_rng(seed)
    names = [f"person {i}" for i in range(n)]
    names[7] = SECRET
    zips = [f"{rng.integers(100, 130)}{rng.integers(10, 99)}" for _ in range(n)]
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
            spec = LdpSpec(
                type=c.type,
                epsilon=c.params["epsilon"],
                bounds=c.params.get("bounds"),
                categories=c.params.get("categories"),
            )
            out[c.name], _ = apply_ldp(inp[c.name], spec, source=src)
    return inp, pa.table(out)


def sample_manifest():
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


def sample_validation(out, k=5, pii_flagged=0):
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
    ]
    return gate_checks.gate_verdict(checks)


def sample_plots(inp, out, min_count=0):
    plots = {}
    for c in SCHEMA.columns:
        p = column_plot(c, inp[c.name], out[c.name], min_count=min_count)
        if p is not None:
            plots[c.name] = p
    return plots
