"""Manifest: the signed record of a run (`manifest.json` in the output directory).

The document is `{"manifest": BODY, "signature": {...}}`; the Ed25519 signature covers the
canonical JSON of BODY (sorted keys, no whitespace). The body lists every output and
quarantine file with its sha256, so a verifier checks the whole directory against one
signature. It holds key ids and versions, never key bytes, and no record values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

from privgate.errors import VerifyError

MANIFEST = "manifest.json"
FORMAT = "privgate-manifest/1"


def canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_fingerprint(public_key_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(public_key_bytes).hexdigest()


def sign(body: dict, signing_key) -> dict:
    from cryptography.hazmat.primitives import serialization

    pk = signing_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return {
        "manifest": body,
        "signature": {
            "algorithm": "Ed25519",
            "public_key": key_fingerprint(pk),
            "value": base64.b64encode(signing_key.sign(canonical(body))).decode(),
        },
    }


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def load(output_dir: str) -> dict:
    path = os.path.join(output_dir, MANIFEST)
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        raise VerifyError(f"{output_dir}: no {MANIFEST}: not a complete privgate output") from None
    except (OSError, ValueError):
        raise VerifyError(f"{path}: unreadable manifest") from None
    if not isinstance(doc, dict) or "manifest" not in doc or "signature" not in doc:
        raise VerifyError(f"{path}: not a privgate manifest")
    return doc


def verify(output_dir: str, public_key_bytes: bytes, check_files: bool = True) -> dict:
    """Check the manifest signature and (optionally) every file's hash; return the body.

    Raises:
        VerifyError: bad signature, wrong key, missing/extra/modified file.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    doc = load(output_dir)
    body, sig = doc["manifest"], doc["signature"]
    if body.get("format") != FORMAT:
        raise VerifyError(f"{output_dir}: unsupported manifest format")
    if sig.get("public_key") != key_fingerprint(public_key_bytes):
        raise VerifyError(
            f"{output_dir}: manifest was signed by another key ({sig.get('public_key')})"
        )
    try:
        Ed25519PublicKey.from_public_bytes(public_key_bytes).verify(
            base64.b64decode(sig["value"]), canonical(body)
        )
    except (InvalidSignature, ValueError, KeyError):
        raise VerifyError(f"{output_dir}: manifest signature does not verify") from None
    if check_files:
        verify_files(output_dir, body)
    return body


def listed_files(body: dict) -> list[dict]:
    report = (body.get("report") or {}).get("files", [])
    return list(body["output"]["files"]) + list(body["quarantine"]["files"]) + list(report)


def verify_files(output_dir: str, body: dict) -> None:
    listed = listed_files(body)
    names = {f["path"] for f in listed}
    for sub in ("data", "quarantine", "report"):
        d = os.path.join(output_dir, sub)
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if f"{sub}/{name}" not in names:
                    raise VerifyError(f"{output_dir}: {sub}/{name} is not in the manifest")
    for f in listed:
        path = os.path.join(output_dir, f["path"])
        if not os.path.isfile(path):
            raise VerifyError(f"{output_dir}: {f['path']} is missing")
        if not hmac.compare_digest(file_sha256(path), f["sha256"]):
            raise VerifyError(f"{output_dir}: {f['path']} does not match its sha256")
