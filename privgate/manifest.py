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

from privgate import storage
from privgate.errors import VerifyError

MANIFEST = "manifest.json"
LAYOUT_DIRS = ("data", "quarantine", "report")  # directories a run may leave empty
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
    path = storage.join(output_dir, MANIFEST)
    try:
        doc = json.loads(storage.read_bytes(path))
    except FileNotFoundError:
        raise VerifyError(f"{output_dir}: no {MANIFEST}: not a complete privgate output") from None
    except (OSError, ValueError):
        raise VerifyError(f"{path}: unreadable manifest") from None
    if not isinstance(doc, dict) or "manifest" not in doc or "signature" not in doc:
        raise VerifyError(f"{path}: not a privgate manifest")
    return doc


def verify_signature(output_dir: str, public_key_bytes: bytes) -> dict:
    """The manifest body, once its format and Ed25519 signature by `public_key_bytes` hold.

    Raises:
        VerifyError: no or unreadable manifest, unsupported format, another key, bad signature.
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
    return body


def listed_files(body: dict) -> list[dict]:
    report = (body.get("report") or {}).get("files", [])
    canaries = (body.get("canaries") or {}).get("files", [])  # every candidate, encrypted
    return (
        list(body["output"]["files"])
        + list(body["quarantine"]["files"])
        + list(report)
        + list(canaries)
    )


def verify_tree(output_dir: str, body: dict) -> None:
    """Refuse anything in `output_dir` the signed manifest does not vouch for.

    Allowed: `manifest.json`, the listed files (regular files, not symbolic links), the
    directories holding them and the layout's own directories (`data`, `quarantine`,
    `report`, which may be empty). Anything else, at any depth, is refused by its path.

    Raises:
        VerifyError: an unlisted file or directory, a symbolic link, or a missing file.
    """
    files = {f["path"] for f in listed_files(body)} | {MANIFEST}
    if storage.is_url(output_dir):  # a store has objects only; prefixes are not things
        _verify_objects(output_dir, files)
        return
    dirs = set(LAYOUT_DIRS)
    for path in files:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    for parent, subdirs, names in os.walk(output_dir, onerror=_unlistable):
        rel = os.path.relpath(parent, output_dir).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        for name in sorted(subdirs):
            path = prefix + name
            if path not in dirs or os.path.islink(os.path.join(parent, name)):
                raise VerifyError(f"{output_dir}: {path} is not in the manifest")
        for name in sorted(names):
            path = prefix + name
            if path not in files:
                raise VerifyError(f"{output_dir}: {path} is not in the manifest")
            if os.path.islink(os.path.join(parent, name)):
                raise VerifyError(f"{output_dir}: {path} is a symbolic link, not a written file")
    for path in sorted(files):
        if not os.path.isfile(os.path.join(output_dir, path)):
            raise VerifyError(f"{output_dir}: {path} is missing")


def _verify_objects(output_dir: str, files: set[str]) -> None:
    """`verify_tree` on an object store: the objects under the prefix are exactly `files`."""
    try:
        present = storage.list_objects(output_dir)
    except OSError:
        raise VerifyError(f"{output_dir}: cannot list this prefix to verify it") from None
    for path in sorted(present):
        if path not in files:
            raise VerifyError(f"{output_dir}: {path} is not in the manifest")
    for path in sorted(files - set(present)):
        raise VerifyError(f"{output_dir}: {path} is missing")


def verify_files(output_dir: str, files: list[dict]) -> None:
    """Check the sha256 of each listed file in `files` (entries of `listed_files`).

    Raises:
        VerifyError: a missing or modified file.
    """
    for f in files:
        try:
            if storage.is_url(output_dir):
                digest = storage.sha256(storage.join(output_dir, f["path"]))
            else:
                digest = file_sha256(os.path.join(output_dir, f["path"]))
        except OSError:
            raise VerifyError(f"{output_dir}: {f['path']} is missing or unreadable") from None
        _check_sha256(output_dir, f, digest)


def read_verified(output_dir: str, entry: dict) -> bytes:
    """The bytes of the listed file `entry`, read once and checked against its sha256, so a
    caller parses exactly what was hashed.

    Raises:
        VerifyError: a missing or modified file.
    """
    path = storage.join(output_dir, entry["path"])
    try:
        data = storage.read_bytes(path)
    except OSError:
        raise VerifyError(f"{output_dir}: {entry['path']} is missing or unreadable") from None
    _check_sha256(output_dir, entry, hashlib.sha256(data).hexdigest())
    return data


def _unlistable(err: OSError) -> None:
    raise VerifyError(f"{err.filename}: cannot list this directory to verify it") from None


def _check_sha256(output_dir: str, entry: dict, digest: str) -> None:
    if not hmac.compare_digest(digest, entry["sha256"]):
        raise VerifyError(f"{output_dir}: {entry['path']} does not match its sha256")
