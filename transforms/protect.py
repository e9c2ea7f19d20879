"""Protect: apply each declared column's action to a contract-checked batch.

The pure core is `protect_table`; `ProtectFn` is its Beam wrapper, which opens the keyring
in `setup()` (keys are never pickled with the DoFn).
"""

from __future__ import annotations

import pyarrow as pa

from privgate.errors import value_free_errors
from schemas.columns import Schema
from transforms.actions import ACTIONS, ActionContext, KeyedOps
from transforms.arrow import ARROW_TYPES


def output_schema(schema: Schema) -> pa.Schema:
    """Arrow schema of the protected output, with each column's policy as field metadata."""
    fields = []
    for c in schema.output_columns:
        meta = {"privgate.action": c.action, "privgate.key_group": c.key_group}
        if c.pii:
            meta["privgate.pii"] = c.pii
        if c.action == "ldp":
            meta.update(ldp_field_metadata(c))
        fields.append(pa.field(c.name, ARROW_TYPES[c.output_type], nullable=True, metadata=meta))
    return pa.schema(fields, metadata={"privgate.schema": "1"})


def ldp_field_metadata(c) -> dict[str, str]:
    """Mechanism parameters stored with an ldp column, for `privgate.estimate`."""
    from transforms.ldp.mechanisms import build_mechanism

    spec = c.ldp_params
    return spec.to_metadata(build_mechanism(spec))


def keyed_ops(keyring) -> KeyedOps:
    from privgate.errors import KeyringError

    try:
        ldp_key = keyring.data_key("ldp")
    except KeyringError:
        ldp_key = None  # keyrings made before ldp existed; ldp with a record key refuses
    return KeyedOps(
        keyring.data_key("token"), keyring.data_key("siv"), keyring.data_key("date_shift"), ldp_key
    )


def detector_for(schema: Schema):
    """The PII detector scrub columns need (built once per process), or None."""
    if not any(c.action == "scrub" for c in schema.columns):
        return None
    from transforms.detect.engine import get_detector

    return get_detector(schema.nlp_model, schema.recognizers)


def protect_table(
    table: pa.Table,
    schema: Schema,
    ops: KeyedOps | None,
    out_schema: pa.Schema | None = None,
    detector=None,
    dataset: str | None = None,
) -> pa.Table:
    """Apply the schema's actions to a typed table (columns in schema order).

    Args:
        table: contract-checked input batch.
        schema: the dataset policy.
        ops: keyed primitives (None only if no column needs a key).
        detector: PII detector for scrub columns (`detector_for(schema)`).
        dataset: the run's dataset name (needed by memoized ldp, whose noise it keys).
    Returns:
        The protected table, matching `output_schema(schema)`.
    Raises:
        DataError naming the column and action (never a value) if an action fails.
    """
    rk = table.column(schema.record_key).combine_chunks() if schema.record_key else None
    ctx = ActionContext(ops, rk, schema.record_key, detector, dataset)
    out_schema = out_schema or output_schema(schema)
    arrays = []
    for spec in schema.output_columns:
        with value_free_errors(f"column '{spec.name}' ({spec.action})"):
            col = table.column(spec.name).combine_chunks()
            arrays.append(ACTIONS[spec.action](col, spec, ctx))
    return pa.Table.from_arrays(arrays, schema=out_schema)
