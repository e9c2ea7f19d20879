"""Shared data for the gate tests: a quasi-identifier table, a schema, real ldp output."""

from __future__ import annotations

import textwrap

import numpy as np
import pyarrow as pa

from schemas.columns import parse_schema

# 10 records. Classes over (age, zip): (30,941) x3, (40,100) x2, (null,null) x2, (50,200) x1,
# (30,null) x1, (40,941) x1 -> sizes 3,2,2,1,1,1.
QI_TABLE = pa.table(
    {
        "age": pa.array([30, 30, 30, 40, 40, None, None, 50, 30, 40], pa.int64()),
        "zip": ["941", "941", "941", "100", "100", None, None, "200", None, "941"],
        "dx": ["flu", "cold", "flu", "flu", "flu", "cold", None, "flu", "cold", "flu"],
    }
)


# Names en_core_web_sm (the pinned model) does not tag in these sentences
# (tests/test_detect_pipeline.py checks it): the scrubber keeps them, and so did the old
# residual-PII gate, which re-ran the same detector.
# Lower-cased in terse notes: the capitalised form is now found (gazetteer, ORG mapping).
MISSED_NAMES = ["Shane Mckenzie", "Shane Mcbride", "Dale Mcbride"]
MISSED_NOTES = [
    "fyi {lower} called twice",
    "spoke with {lower} about billing",
    "note: {lower} wants a refund",
]


def gates_schema(extra: str = "") -> object:
    import yaml

    return parse_schema(
        yaml.safe_load(
            textwrap.dedent("""\
        record_key: id
        columns:
          id:     {type: string, action: tokenize}
          name:   {type: string, action: drop}
          age:    {type: int, action: generalize, bucket: 10}
          zip:    {type: string, action: generalize, keep_prefix: 3}
          dx:     {type: string, action: keep, nullable: true}
          income: {type: float, action: ldp, epsilon: 1.0, bounds: [0, 1000]}
          gender: {type: string, action: ldp, epsilon: 1.0, categories: [f, m]}
          smoker: {type: bool, action: ldp, epsilon: 0.5}
          born:   {type: date, action: generalize, date_part: year}
          seen:   {type: timestamp, action: date_shift, max_days: 3}
        """)
            + extra
        ),
        "s.yaml",
    )


def ldp_output(n=200, seed=0):
    from schemas.ldp import LdpSpec
    from transforms.ldp.column import apply_ldp
    from transforms.ldp.sources import SecureRandomSource

    rng = np.random.default_rng(seed)
    src = SecureRandomSource()
    income, _ = apply_ldp(
        pa.array(rng.uniform(0, 1000, n)),
        LdpSpec(type="float", epsilon=1.0, bounds=[0, 1000]),
        source=src,
    )
    gender, _ = apply_ldp(
        pa.array(rng.choice(["f", "m"], n)),
        LdpSpec(type="string", epsilon=1.0, categories=["f", "m"]),
        source=src,
    )
    smoker, _ = apply_ldp(
        pa.array(rng.random(n) < 0.2), LdpSpec(type="bool", epsilon=0.5), source=src
    )
    return pa.table({"income": income, "gender": gender, "smoker": smoker})


# pandas dtypes (as `to_frame` produces them) that Great Expectations accepts per type.
GX_TYPE_LISTS = {
    "string": ["StringDtype"],
    "int": ["int64", "Int64Dtype"],
    "float": ["float64"],
    "bool": ["bool", "BooleanDtype"],
    "date": ["datetime64[ms]"],
    "timestamp": ["datetime64[us]"],
}


def input_expectations(schema, name: str = "privgate_input_contract"):
    """A Great Expectations suite of a schema's input rules, as a user might write it.

    (It was privgate's own input contract; the contract stage's per-row counts replaced it.
    Tests and `benchmarks/bench_gates.py` use it as a realistic user suite.)

    Run it (`run_suite`) on the typed input, i.e. the columns `transforms.contract.coerce`
    returns, before the quarantine split: cells that failed their type are null there.
    Severity "critical" (fails the contract): every declared column is present with its
    declared type. Severity "warning" (reported, the run handles these rows by policy):
    non-nullable columns without nulls (such rows are quarantined), ldp string columns
    inside their declared categories (others are mapped to `other` or quarantined), ldp
    numeric columns inside their bounds (clipped).

    Args:
        schema: the dataset schema.
        name: the suite name.
    Returns:
        An unbound `great_expectations.ExpectationSuite` (meta `{"privgate": "schema"}`).
    """
    from transforms.gates.gx import import_gx

    gx = import_gx()
    import great_expectations.expectations as gxe

    meta = {"privgate": "schema"}
    exps: list = []
    for c in schema.columns:
        exps.append(gxe.ExpectColumnToExist(column=c.name, meta=meta))
        exps.append(
            gxe.ExpectColumnValuesToBeInTypeList(
                column=c.name, type_list=list(GX_TYPE_LISTS[c.type]), meta=meta
            )
        )
        if not c.nullable:
            exps.append(
                gxe.ExpectColumnValuesToNotBeNull(column=c.name, meta=meta, severity="warning")
            )
        if c.action != "ldp":
            continue
        p = c.params
        if p.get("categories"):
            exps.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=c.name, value_set=list(p["categories"]), meta=meta, severity="warning"
                )
            )
        if p.get("bounds"):
            lo, hi = p["bounds"]
            exps.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=c.name, min_value=lo, max_value=hi, meta=meta, severity="warning"
                )
            )
    return gx.ExpectationSuite(name=name, expectations=exps, meta={"privgate": "schema"})
