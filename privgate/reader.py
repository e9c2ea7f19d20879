"""Reading and verifying protected outputs: the training-time side of privgate.

    import privgate
    body = privgate.verify("out/demo_customers", public_key="privgate.pub")
    table = privgate.read_table("out/demo_customers", columns=["plan", "zip"])

`read_table` verifies the manifest signature, the whole directory tree (on gs:// / s3://: every
object under the prefix) and every file hash, and parses each file from the very bytes it
hashed.
Least privilege: reading only columns under the `data` key needs the `data` and `footer`
master keys, never `pii` (columns are read with `ParquetFile.iter_batches(columns=...)`,
which unwraps only the requested columns' keys).
"""

from __future__ import annotations

import pyarrow as pa

from privgate import manifest as mf
from privgate.errors import KeyringError, VerifyError
from privgate.keyring import Keyring, open_keyring


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
    """The key to verify with: a pinned PEM file, or a keyring's public key authenticated by
    opening the keyring (its passphrase or KMS is needed: the clear copy alone is not proof)."""
    if public_key:
        return load_public_key(public_key)
    if isinstance(keyring, Keyring):
        return keyring.public_key_bytes
    try:
        return open_keyring(keyring).public_key_bytes
    except KeyringError as e:
        raise KeyringError(
            f"{e}; to verify without the keyring's passphrase or KMS, pin the public key "
            "instead (--public-key FILE from `privgate keys export-public`)"
        ) from None


def _signed_body(
    output: str,
    public_key: str | None,
    keyring: str | Keyring | None,
    require_gate: bool,
    dataset: str | None,
) -> dict:
    """The manifest body once its signature, the dataset, the tree and the gate hold (file
    hashes are checked by the caller)."""
    body = mf.verify_signature(output, _public_key(public_key, keyring))
    if dataset is not None and body.get("dataset") != dataset:
        raise VerifyError(
            f"{output}: holds dataset '{body.get('dataset')}', not '{dataset}': refusing it"
        )
    mf.verify_tree(output, body)
    gate = body.get("gate")
    if require_gate and isinstance(gate, dict) and gate.get("status") == "failed":
        raise VerifyError(f"{output}: the run's gate failed; this data must not be used")
    return body


def verify(
    output: str,
    public_key: str | None = None,
    keyring: str | Keyring | None = None,
    require_gate: bool = True,
    dataset: str | None = None,
) -> dict:
    """Verify an output directory; return the manifest body.

    The body names the run: `dataset`, `run_id`, `started_at` and `finished_at` (UTC, ISO
    8601), so a caller can log what it trains on and tell an older, replayed output apart.

    Args:
        output: the output directory, or a gs:// / s3:// prefix (read through pyarrow's
            clients, `privgate.storage`).
        public_key: PEM file from `privgate keys export-public` (pinned), or
        keyring: a keyring path or an opened Keyring; `$PRIVGATE_KEYRING` when neither is
            given. A path is opened (passphrase or KMS needed), which authenticates the
            public key stored in it.
        require_gate: refuse outputs whose gate failed.
        dataset: refuse an output of any other dataset (a signed output copied elsewhere).
    Raises:
        VerifyError: missing manifest, bad signature, another dataset, a file or directory
            not in the manifest, a missing or modified file, a failed gate.
        KeyringError: the keyring cannot be opened or its public key does not authenticate.
    """
    body = _signed_body(output, public_key, keyring, require_gate, dataset)
    mf.verify_files(output, mf.listed_files(body))
    return body


def read_table(
    output: str,
    columns: list[str] | None = None,
    keyring: str | Keyring | None = None,
    limit: int | None = None,
    quarantine: bool = False,
    public_key: str | None = None,
    dataset: str | None = None,
) -> pa.Table:
    """Verify `output` and return its protected rows (or its quarantine) as a pyarrow Table.

    Every file is checked against its sha256; the files read are read into memory once,
    hashed and parsed from those same bytes (nothing changed after the check is read).

    Args:
        output: the output directory (or gs:// / s3:// prefix) of `privgate run`.
        columns: subset of columns to read (None: all).
        keyring: keyring path or opened Keyring (default `$PRIVGATE_KEYRING`).
        limit: stop after this many rows.
        quarantine: read the quarantined raw rows instead (needs the `pii` master key).
        public_key: verify with this PEM key instead of the keyring's.
        dataset: refuse an output of any other dataset.
    Raises:
        VerifyError: the output does not verify; KeyringError: a needed key is unavailable.
    """
    import pyarrow.parquet as pq

    from privgate.parquet_crypto import decryption_properties

    kr = keyring if isinstance(keyring, Keyring) else open_keyring(keyring)
    body = _signed_body(output, public_key, kr, True, dataset)
    section = body["quarantine"] if quarantine else body["output"]
    to_read = {f["path"] for f in section["files"]}
    mf.verify_files(output, [f for f in mf.listed_files(body) if f["path"] not in to_read])
    names = [c["name"] for c in body["columns"] if c["action"] != "drop"]
    if columns:
        unknown = [c for c in columns if c not in (names if not quarantine else columns)]
        if unknown:
            raise VerifyError(f"{output}: no column '{unknown[0]}' in the output")
    props = decryption_properties(kr.kms.bound(body["encryption"].get("kek_context", "")))
    tables, remaining = [], limit
    schema = None
    for i, f in enumerate(section["files"]):
        if remaining == 0 and tables:  # enough rows: the files left are hashed, not parsed
            mf.verify_files(output, section["files"][i:])
            break
        pf = pq.ParquetFile(
            pa.BufferReader(mf.read_verified(output, f)), decryption_properties=props
        )
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
    if not tables:
        return (schema or pa.schema([])).empty_table()
    return pa.concat_tables(tables)
