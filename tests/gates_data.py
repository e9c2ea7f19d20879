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
