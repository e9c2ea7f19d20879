"""AWS KMS backend (`keys.kms: aws-kms`): privgate's master keys are symmetric KMS keys.

Each logical master key (`pii`, `data`, `footer`) names a KMS key, best through an alias. Key
bytes are wrapped with KMS `Encrypt` and unwrapped with `Decrypt`; the master keys never leave
KMS. Install with `pip install 'privgate[aws]'` (boto3).

Settings (non-secret; `keys.aws-kms` in a run config, stored in the keyring file by
`privgate keys init --config RUNCONFIG`):

    keys:
      kms: aws-kms
      keyring: ../.privgate/keyring.json
      aws-kms:
        region: eu-west-1
        keys: {pii: alias/privgate-pii, data: alias/privgate-data,
               footer: alias/privgate-footer}
        # optional:
        # endpoint_url: https://vpce-....kms.eu-west-1.vpce.amazonaws.com  (https; http only
        #                                                  on loopback, for a test peer)
        # connect_timeout: 5      # seconds
        # read_timeout: 10        # seconds
        # max_attempts: 3         # botocore "standard" retries, first attempt included

A key is `alias/NAME` (recommended: needed for `keys init` to create it and for `keys
rotate`), a key id, or a key/alias ARN (a key in another account: its ARN). Credentials come
from boto3's standard chain only (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
AWS_SESSION_TOKEN, web identity, ECS task or EC2 instance role), never from settings.

IAM permissions on the three keys (tested against moto's IAM enforcement):
- `privgate run` and `keys init` on existing keys: `kms:Encrypt`, `kms:Decrypt`,
  `kms:DescribeKey` (the manifest records each master key's current key id);
- readers (`privgate read`, `reidentify`, `read_table`): `kms:Decrypt` only; `verify` with a
  public key needs no KMS access; `keys list`: `kms:DescribeKey`;
- `privgate keys init` creating a missing alias: also `kms:CreateKey` and `kms:CreateAlias`
  (it creates a symmetric ENCRYPT_DECRYPT key behind the alias);
- `privgate keys rotate`: the run permissions plus `kms:GetKeyPolicy` (the new key gets the
  old key's key policy), `kms:CreateKey` and `kms:UpdateAlias` (on the alias, the old and the
  new key).
Each wrap carries an encryption context, so a policy can narrow a role to one dataset's
Parquet keys: `"Condition": {"StringEquals": {"kms:EncryptionContext:privgate-dataset":
"demo_customers"}}` (the data-protection and signing keys, all under `pii`, carry
`privgate-context` = `<keyring id>:<name>` and no `privgate-dataset`: allow those in a
statement of their own).

Wrapping. `wrap(m, key, aad)` = `Encrypt(KeyId=<key of m>, Plaintext=key,
EncryptionContext={"privgate-master": m, "privgate-context": aad})`, plus
`"privgate-dataset": <name>` when aad is a Parquet key-encryption key's context
`privgate-dataset:<name>` (`privgate.kms.kek_context`). KMS binds the context to the
ciphertext (it is AAD): a key wrapped for one dataset or purpose fails to unwrap under
another, and the context shows up in CloudTrail. The wrapped string is
`aws-kms:<m>:<key id>:<base64 CiphertextBlob>`; `unwrap` calls `Decrypt` with that key id
(an ARN built from the configured ARN for keys in another account) and the same context, so
KMS refuses a blob made under any other key.

Versions and rotation. KMS's own rotation (automatic or `RotateKeyOnDemand`) keeps the key id
and is invisible to callers: no version could go into the wrapped string or the manifest
(and moto's `RotateKeyOnDemand` only records the request, so it could not be tested either;
moto supports `CreateKey`, `UpdateAlias` and `DescribeKey` fully). privgate therefore uses
the manual, alias-based rotation AWS documents: `rotate(m)` creates a new symmetric key
(same key policy and multi-Region flag; replicas in other Regions are yours to make) and
points the alias at it with `UpdateAlias`.
A master key's version is the id of the KMS key behind its alias (`versions()` =
`DescribeKey` of each alias); the old key stays enabled, so everything wrapped under it still
unwraps: do not disable or delete an old key while outputs wrapped under it must stay
readable (manifests and `privgate keys list` show which key ids are in use). Aliases are
eventually consistent in AWS, so after `rotate` this object pins the new key id for its own
wraps; other processes follow the alias within minutes. A rotation that fails halfway leaves
a consistent keyring: every wrapped key records the key id that really wrapped it (the
`KeyId` in the Encrypt response). You may still enable KMS automatic rotation on the keys;
it is transparent to privgate.

Round trips: one Encrypt or Decrypt per wrap/unwrap; pyarrow's double wrapping caches KEKs
per process (`privgate.parquet_crypto`), so a run costs a fixed handful of calls whatever the
number of files or columns (measured on the local runner with a three-column schema: 13
calls, 3 Encrypt + 7 Decrypt + 3 DescribeKey, for one input file and for three; ~3-4 ms
each against moto_server on a loaded 2-core VM). The boto3 client is created once per object
and process (lock-guarded; boto3 clients are thread-safe, creating them is not) and created
anew after a fork.
Errors are `KeyringError`s naming the master key, the KMS key and the cause; they never echo
request or response bodies, key bytes or credentials. botocore logs request and response
bodies (key bytes) at DEBUG, so this module drops DEBUG records of those botocore loggers.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading
import urllib.parse
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from privgate.errors import KeyringError
from privgate.kms import MASTER_KEYS, Kms

log = logging.getLogger(__name__)

KIND = "aws-kms"
SETTINGS = ("region", "keys", "endpoint_url", "connect_timeout", "read_timeout", "max_attempts")
DEFAULTS = {"connect_timeout": 5.0, "read_timeout": 10.0, "max_attempts": 3}
CONTEXT_MASTER, CONTEXT_AAD, CONTEXT_DATASET = (
    "privgate-master",
    "privgate-context",
    "privgate-dataset",
)
DATASET_PREFIX = "privgate-dataset:"

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ALIAS = re.compile(r"^alias/[A-Za-z0-9/_-]{1,250}$")
_KEY_ID = re.compile(r"^[A-Za-z0-9-]{1,128}$")  # uuid or mrk-<hex>: never ':' nor '/'
_ARN = re.compile(r"^(arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):)(key|alias)/([A-Za-z0-9/_-]+)$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# botocore DEBUG records that carry request/response bodies (Encrypt plaintext, Decrypt result)
_BODY_LOGGERS = ("botocore.endpoint", "botocore.parsers", "botocore.awsrequest", "botocore.auth")


class _DropDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


def _quiet_body_loggers() -> None:
    for name in _BODY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropDebug) for f in logger.filters):
            logger.addFilter(_DropDebug())


_quiet_body_loggers()


@dataclass(frozen=True)
class _KeyRef:
    """One configured KMS key: what the settings say, and how to address it."""

    spec: str  # as configured: alias/NAME, key id, or ARN
    alias: str | None  # alias/NAME when the setting names an alias in the caller's account
    arn_prefix: str | None  # "arn:aws:kms:<region>:<account>:" for a setting given as ARN

    def decrypt_key_id(self, version: str) -> str:
        return f"{self.arn_prefix}key/{version}" if self.arn_prefix else version


class _AwsError(KeyringError):
    """A KMS call failed; `code` is the AWS error code (for callers that expect some)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def _setting_error(name: str, problem: str) -> KeyringError:
    return KeyringError(f"keys.{KIND}.{name}: {problem}")


def parse_settings(settings: dict) -> dict:
    """Validate `keys.aws-kms` settings offline (KeyringError naming the setting)."""
    if not isinstance(settings, dict):
        raise KeyringError(f"keys.{KIND}: must be a mapping of settings")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise _setting_error(
            unknown[0],
            f"unknown setting (have: {', '.join(SETTINGS)}; "
            "credentials come from the AWS credential chain)",
        )
    region = settings.get("region")
    if not isinstance(region, str) or not _REGION.match(region):
        raise _setting_error("region", "required, an AWS region such as eu-west-1")
    keys = settings.get("keys")
    if not isinstance(keys, dict):
        raise _setting_error(
            "keys", "required, a mapping {pii: alias/..., data: alias/..., footer: alias/...}"
        )
    extra = sorted(set(keys) - set(MASTER_KEYS))
    if extra:
        raise _setting_error(
            f"keys.{extra[0]}", f"unknown master key (have: {', '.join(MASTER_KEYS)})"
        )
    refs = {}
    for m in MASTER_KEYS:
        spec = keys.get(m)
        if spec is None:
            raise _setting_error(f"keys.{m}", "missing: every master key needs a KMS key")
        refs[m] = _key_ref(m, spec, region)
    out = {"region": region, "keys": refs, "endpoint_url": None, **DEFAULTS}
    if settings.get("endpoint_url") is not None:
        out["endpoint_url"] = _endpoint(settings["endpoint_url"])
    for name in ("connect_timeout", "read_timeout"):
        v = settings.get(name, DEFAULTS[name])
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 300:
            raise _setting_error(name, "must be a number of seconds in (0, 300]")
        out[name] = float(v)
    v = settings.get("max_attempts", DEFAULTS["max_attempts"])
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10:
        raise _setting_error("max_attempts", "must be an integer from 1 to 10")
    out["max_attempts"] = v
    return out


def _key_ref(master: str, spec, region: str) -> _KeyRef:
    if isinstance(spec, str) and _ALIAS.match(spec):
        return _KeyRef(spec, spec, None)
    if isinstance(spec, str) and _KEY_ID.match(spec):
        return _KeyRef(spec, None, None)
    m = _ARN.match(spec) if isinstance(spec, str) else None
    if m is None:
        raise _setting_error(
            f"keys.{master}", "must be alias/NAME, a KMS key id or a KMS key/alias ARN"
        )
    if m.group(2) != region:
        raise _setting_error(
            f"keys.{master}", f"the ARN's region {m.group(2)} is not the configured region {region}"
        )
    return _KeyRef(spec, None, m.group(1))


def _endpoint(url) -> str:
    parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise _setting_error("endpoint_url", "must be an https:// URL")
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise _setting_error("endpoint_url", "must not carry credentials, a query or a fragment")
    if parsed.scheme == "http" and parsed.hostname not in _LOOPBACK:
        raise _setting_error(
            "endpoint_url",
            "http:// only on loopback (a test peer); key bytes travel in requests: use https://",
        )
    return url


def _context(master_key_id: str, aad: bytes) -> dict[str, str]:
    ctx = {CONTEXT_MASTER: master_key_id}
    if aad:
        try:
            text = aad.decode("utf-8")
        except UnicodeDecodeError:
            ctx[CONTEXT_AAD + "-b64"] = base64.b64encode(aad).decode("ascii")
            return ctx
        ctx[CONTEXT_AAD] = text
        if text.startswith(DATASET_PREFIX) and len(text) > len(DATASET_PREFIX):
            ctx[CONTEXT_DATASET] = text[len(DATASET_PREFIX) :]
    return ctx


def _key_id_of(key_id_or_arn: str) -> str:
    key_id = key_id_or_arn.rsplit("/", 1)[-1]
    if not _KEY_ID.match(key_id):
        raise KeyringError("AWS KMS answered with an unexpected key id format")
    return key_id


# AWS error code -> what to tell the user (server messages are echoed only for the codes in
# _ECHO: they name ARNs and actions; others may quote request values)
_CREDENTIAL_CODES = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "ExpiredToken",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidAccessKeyId",
    "AuthFailure",
}
_ECHO = {
    "NotFoundException",
    "AccessDeniedException",
    "AccessDenied",
    "DisabledException",
    "KMSInvalidStateException",
    "AlreadyExistsException",
}
_XML_CODE = re.compile(r"<Code>([A-Za-z0-9.]+)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,400})</Message>")


def _client_error_parts(e: ClientError) -> tuple[str, str, int]:
    err = e.response.get("Error", {})
    code, message = str(err.get("Code", "")), str(err.get("Message", "") or "")
    status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if (code.isdigit() or not code) and "<Code>" in message:  # an XML error to a JSON API
        inner = _XML_CODE.search(message)
        inner_msg = _XML_MESSAGE.search(message)
        code = inner.group(1) if inner else code
        message = inner_msg.group(1) if inner_msg else ""
    return code or f"HTTP {status}", message.strip()[:400], status


class AwsKms(Kms):
    """Master keys in AWS KMS (see the module docstring for settings and permissions).

    Args:
        settings: {"region", "keys": {pii, data, footer}, optional "endpoint_url",
            "connect_timeout", "read_timeout", "max_attempts"}; validated here, without any
            network call (the client is made on first use).
    Raises:
        KeyringError: a missing, unknown or invalid setting, named by its path.
    """

    name = KIND

    def __init__(self, settings: dict):
        s = parse_settings(settings)
        self._region, self._refs = s["region"], s["keys"]
        self._endpoint_url = s["endpoint_url"]
        self._timeouts = (s["connect_timeout"], s["read_timeout"], s["max_attempts"])
        self._lock = threading.Lock()
        self._client_obj = None
        self._client_pid = None
        self._pinned: dict[str, str] = {}  # master -> key id made current by rotate() here

    def __repr__(self) -> str:  # settings only: no client, no credentials
        keys = {m: r.spec for m, r in self._refs.items()}
        return f"AwsKms(region={self._region!r}, keys={keys!r})"

    @property
    def endpoint(self) -> str:
        return self._endpoint_url or f"https://kms.{self._region}.amazonaws.com"

    @property
    def client(self):
        """The boto3 KMS client of this object and process (created once, under a lock)."""
        pid = os.getpid()
        client = self._client_obj
        if client is not None and self._client_pid == pid:
            return client
        with self._lock:
            if self._client_obj is None or self._client_pid != pid:  # new, or forked
                connect, read, attempts = self._timeouts
                config = Config(
                    region_name=self._region,
                    connect_timeout=connect,
                    read_timeout=read,
                    max_pool_connections=16,
                    retries={"mode": "standard", "total_max_attempts": attempts},
                    user_agent_extra="privgate",
                )
                self._client_obj = boto3.session.Session().client(
                    "kms", region_name=self._region, endpoint_url=self._endpoint_url, config=config
                )
                self._client_pid = pid
            return self._client_obj

    # ------------------------------------------------------------------ the Kms interface

    def wrap(self, master_key_id: str, key: bytes, aad: bytes = b"") -> str:
        resp = self._call(
            "wrap a key under",
            master_key_id,
            "encrypt",
            KeyId=self._current_key_id(master_key_id),
            Plaintext=key,
            EncryptionContext=_context(master_key_id, aad),
        )
        version = _key_id_of(resp["KeyId"])
        blob = base64.b64encode(resp["CiphertextBlob"]).decode("ascii")
        return f"{KIND}:{master_key_id}:{version}:{blob}"

    def unwrap(self, master_key_id: str, wrapped: str, aad: bytes = b"") -> bytes:
        ref = self._ref(master_key_id)
        try:
            kind, mk, version, blob = wrapped.split(":", 3)
            raw = base64.b64decode(blob.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError, binascii.Error):
            raise KeyringError(f"malformed wrapped key for master key '{master_key_id}'") from None
        if kind != KIND or mk != master_key_id:
            raise KeyringError(
                f"wrapped key belongs to '{kind}:{mk}', not {KIND} master key '{master_key_id}'"
            )
        if not _KEY_ID.match(version) or not raw:
            raise KeyringError(f"malformed wrapped key for master key '{master_key_id}'")
        resp = self._call(
            "unwrap a key under",
            master_key_id,
            "decrypt",
            KeyId=ref.decrypt_key_id(version),
            CiphertextBlob=raw,
            EncryptionContext=_context(master_key_id, aad),
        )
        return resp["Plaintext"]

    def versions(self) -> dict[str, str]:
        """{master key id: id of the KMS key behind its alias} (one DescribeKey each)."""
        return {
            m: self._pinned.get(m) or _key_id_of(self._describe(m)["KeyId"])
            for m in sorted(self._refs)
        }

    def rotate(self, master_key_id: str) -> str:
        """Create a new KMS key (same key policy) and point the master's alias at it.

        Returns:
            the new key id (the master key's new version).
        Raises:
            KeyringError: the master key is not configured as alias/NAME, or AWS refused.
        """
        ref = self._ref(master_key_id)
        if ref.alias is None:
            raise KeyringError(
                f"cannot rotate {KIND} master key '{master_key_id}': its key is given as "
                f"{ref.spec}; privgate rotates by moving an alias, so set keys.{KIND}.keys."
                f"{master_key_id} to alias/NAME (or rotate in KMS yourself)"
            )
        # the pinned id after an earlier rotate() here: the alias may not show it yet
        old = self._describe(master_key_id, self._current_key_id(master_key_id))
        policy = self._call(
            "read the key policy of",
            master_key_id,
            "get_key_policy",
            KeyId=old["KeyId"],
            PolicyName="default",
        )["Policy"]
        new_id = self._create_key(
            master_key_id,
            policy=policy,
            multi_region=bool(old.get("MultiRegion")),
            note=f"rotated from {old['KeyId']}",
        )
        self._call(
            "move the alias of",
            master_key_id,
            "update_alias",
            AliasName=ref.alias,
            TargetKeyId=new_id,
        )
        self._pinned[master_key_id] = new_id
        return new_id

    def ensure_master_keys(self, masters: tuple[str, ...]) -> None:
        """Check each master's KMS key (symmetric, enabled); create a key behind a missing
        alias; then prove kms:Encrypt and kms:Decrypt with a probe wrap."""
        for m in masters:
            ref = self._ref(m)
            try:
                meta = self._describe(m)
            except _AwsError as e:
                if e.code != "NotFoundException" or ref.alias is None:
                    raise
                meta = self._create_behind_alias(m, ref)
            usage = meta.get("KeyUsage")
            spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")
            state = meta.get("KeyState", "Enabled")
            if usage != "ENCRYPT_DECRYPT" or spec != "SYMMETRIC_DEFAULT":
                raise KeyringError(
                    f"{KIND} master key '{m}' ({ref.spec}) must be a symmetric "
                    f"ENCRYPT_DECRYPT key (it is {spec} {usage})"
                )
            if state != "Enabled":
                raise KeyringError(
                    f"{KIND} master key '{m}' ({ref.spec}, key "
                    f"{meta['KeyId']}) is {state}, not Enabled"
                )
        super().ensure_master_keys(masters)

    # ------------------------------------------------------------------ helpers

    def _ref(self, master_key_id: str) -> _KeyRef:
        ref = self._refs.get(master_key_id)
        if ref is None:
            raise KeyringError(
                f"unknown master key '{master_key_id}' (have: {', '.join(self._refs)})"
            )
        return ref

    def _current_key_id(self, m: str) -> str:
        """The key id an earlier rotate() here pinned, else the configured key."""
        return self._pinned.get(m) or self._ref(m).spec

    def _describe(self, m: str, key_id: str | None = None) -> dict:
        key_id = key_id or self._ref(m).spec
        return self._call("describe", m, "describe_key", KeyId=key_id)["KeyMetadata"]

    def _create_key(
        self,
        m: str,
        *,
        policy: str | None = None,
        multi_region: bool = False,
        note: str = "",
    ) -> str:
        params = {
            "Description": f"privgate master key '{m}'" + (f" ({note})" if note else ""),
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "MultiRegion": multi_region,
        }
        if policy is not None:
            params["Policy"] = policy
        meta = self._call("create a key for", m, "create_key", **params)["KeyMetadata"]
        return _key_id_of(meta["KeyId"])

    def _create_behind_alias(self, m: str, ref: _KeyRef) -> dict:
        key_id = self._create_key(m)
        try:
            self._call(
                "create the alias of",
                m,
                "create_alias",
                AliasName=ref.alias,
                TargetKeyId=key_id,
            )
        except _AwsError as e:
            if e.code != "AlreadyExistsException":
                raise
            # another `keys init` won the race: use its key; ours is left unused
            log.warning(
                "%s alias %s was created concurrently; KMS key %s made by this call "
                "is unused (schedule its deletion)",
                KIND,
                ref.alias,
                key_id,
            )
        return self._describe(m)

    def _call(self, action: str, m: str, method: str, **params) -> dict:
        try:
            return getattr(self.client, method)(**params)
        except ClientError as e:
            code, message, status = _client_error_parts(e)
            reason = self._client_reason(method, code, message, status)
        except BotoCoreError as e:
            code, reason = type(e).__name__, self._botocore_reason(e)
        raise _AwsError(
            f"{KIND} ({self._region}): cannot {action} master key '{m}' "
            f"({self._refs[m].spec}): {reason}",
            code,
        ) from None

    def _client_reason(self, method: str, code: str, message: str, status: int) -> str:
        api = "".join(p.capitalize() for p in method.split("_"))
        said = f": {message}" if message and code in _ECHO else ""
        if code == "NotFoundException":
            return (
                f"{code}{said} (create it, or let `privgate keys init` create a missing alias/NAME)"
            )
        if code == "InvalidCiphertextException":
            return (
                f"{code}: the wrapped key does not decrypt under this encryption context: "
                "it was wrapped for another dataset or purpose, or it was altered"
            )
        if code == "IncorrectKeyException":
            return f"{code}: the wrapped key was made under another KMS key"
        if code in _CREDENTIAL_CODES:
            return (
                f"{code}: AWS did not accept the credentials (they come from boto3's "
                "credential chain: AWS_PROFILE, AWS_ACCESS_KEY_ID/..., instance or task "
                "role)"
            )
        if code in ("AccessDeniedException", "AccessDenied") or status == 403:
            hint = f"the caller needs kms:{api} on this key (IAM policy, key policy or grant)"
            if method == "decrypt":
                hint += ", and the wrapped key must come from this KMS key"
            return f"{code}{said}; {hint}"
        if code in ("DisabledException", "KMSInvalidStateException"):
            return f"{code}{said} (the KMS key is disabled or pending deletion)"
        if (
            code
            in (
                "ThrottlingException",
                "LimitExceededException",
                "KMSInternalException",
                "KeyUnavailableException",
                "DependencyTimeoutException",
            )
            or status >= 500
        ):
            return f"{code}: AWS KMS is unavailable or throttling; retry later"
        if code == "InvalidKeyUsageException":
            return f"{code}: the KMS key is not a symmetric ENCRYPT_DECRYPT key"
        return f"{code} from kms:{api}"

    def _botocore_reason(self, e: BotoCoreError) -> str:
        connect, read, attempts = self._timeouts
        if isinstance(e, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return (
                f"no usable AWS credentials ({type(e).__name__}); set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance or task "
                "role"
            )
        if isinstance(
            e,
            EndpointConnectionError
            | ConnectTimeoutError
            | ReadTimeoutError
            | ConnectionClosedError,
        ):
            return (
                f"cannot reach AWS KMS at {self.endpoint} ({type(e).__name__}; "
                f"{attempts} attempt(s), timeouts {connect:g}s connect / {read:g}s read)"
            )
        return f"{type(e).__name__} talking to AWS KMS at {self.endpoint}"
