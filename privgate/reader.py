"""Reading and verifying protected outputs: the training-time side of privgate.

    import privgate
    body = privgate.verify("out/demo_customers", public_key="privgate.pub")
    table = privgate.read_table("out/demo_customers", columns=["plan", "zip"])

`read_table` verifies the manifest signature and every file hash before it decrypts anything.
Least privilege: reading only columns under the `data` key needs the `data` and `footer`
master keys, never `pii` (columns are read with `ParquetFile.iter_batches(columns=...)`,
which unwraps only the requested columns' keys).
"""

from __future__ import annotations

import os

import pyarrow as pa

from privgate import manifest as mf
from privgate.errors import VerifyError
from privgate.keyring import Keyring, open_keyring, read_public_key, resolve_keyring_path


def load_public_key(path: str) -> bytes:
    """Raw Ed25519 public key from a PEM file written by `privgate keys export-public`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_public_key(f.read())
    except (OSError, ValueError):
        raise VerifyError(f"{path}: not a readable PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise VerifyError(f"{path}: not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _public_key(public_key: str | None, keyring: str | Keyring | None) -> bytes:
    if public_key:
        return load_public_key(public_key)
    if isinstance(keyring, Keyring):
        return keyring.public_key_bytes
    return read_public_key(resolve_keyring_path(keyring))


def verify(
    output: str,
    public_key: str | None = None,
    keyring: str | Keyring | None = None,
    require_gate: bool = True,
) -> dict:
    """Verify an output directory; return the manifest body.

    Args:
        output: the output directory.
        public_key: PEM file from `privgate keys export-public`, or
        keyring: a keyring path (only its clear public key is read) or an opened Keyring;
            `$PRIVGATE_KEYRING` when neither is given.
        require_gate: refuse outputs whose gate failed (gates arrive with later issues).
    Raises:
        VerifyError: missing manifest, bad signature, modified/missing/extra file, failed gate.
    """
    body = mf.verify(output, _public_key(public_key, keyring))
    gate = body.get("gate")
    if require_gate and isinstance(gate, dict) and gate.get("status") == "failed":
        raise VerifyError(f"{output}: the run's gate failed; this data must not be used")
    return body


def read_table(
    output: str,
    columns: list[str] | None = None,
    keyring: str | Keyring | None = None,
    limit: int | None = None,
    quarantine: bool = False,
    public_key: str | None = None,
) -> pa.Table:
    """Verify `output` and return its protected rows (or its quarantine) as a pyarrow Table.

    Args:
        output: the output directory of `privgate run`.
        columns: subset of columns to read (None: all).
        keyring: keyring path or opened Keyring (default `$PRIVGATE_KEYRING`).
        limit: stop after this many rows.
        quarantine: read the quarantined raw rows instead (needs the `pii` master key).
        public_key: verify with this PEM key instead of the keyring's.
    Raises:
        VerifyError: the output does not verify; KeyringError: a needed key is unavailable.
    """
    import pyarrow.parquet as pq

    from privgate.parquet_crypto import decryption_properties

    kr = keyring if isinstance(keyring, Keyring) else open_keyring(keyring)
    body = verify(output, public_key=public_key, keyring=kr)
    section = body["quarantine"] if quarantine else body["output"]
    names = [c["name"] for c in body["columns"] if c["action"] != "drop"]
    if columns:
        unknown = [c for c in columns if c not in (names if not quarantine else columns)]
        if unknown:
            raise VerifyError(f"{output}: no column '{unknown[0]}' in the output")
    props = decryption_properties(kr.kms.bound(body["encryption"].get("kek_context", "")))
    tables, remaining = [], limit
    schema = None
    for f in section["files"]:
        pf = pq.ParquetFile(os.path.join(output, f["path"]), decryption_properties=props)
        schema = (
            pf.schema_arrow
            if columns is None
            else pa.schema([pf.schema_arrow.field(c) for c in columns])
        )
        for batch in pf.iter_batches(columns=columns):
            if remaining is not None:
                batch = batch.slice(0, remaining)
                remaining -= batch.num_rows
            tables.append(pa.Table.from_batches([batch], schema=schema))
            if remaining == 0:
                break
        if remaining == 0:
            break
    if not tables:
        return (schema or pa.schema([])).empty_table()
    return pa.concat_tables(tables)
