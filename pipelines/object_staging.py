"""Staging on an object store: a run's prefix beside its target, committed manifest-last.

gs:// and s3:// have no rename, so a run stages under `<parent>/.<name>.privgate-tmp/<run id>/`
(its `_work/run.json` first: what `privgate finalize` needs, never a secret) and the commit
copies the staged objects onto the target with `manifest.json` written last
(`ObjectStaging.publish`). A reader refuses the target at every step before the manifest
lands: it has no manifest from the commit's first step on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile

from privgate import manifest as mf
from privgate import storage
from privgate.errors import ConfigError, DataError, PrivgateError

STAGING_TAG = ".privgate-tmp-"
RUN_RECORD = "_work/run.json"
PUBLISHING = "_work/publishing"  # in the staging: its commit has begun to change the target
SINKS = ("data/part", "quarantine/part", "_work/stats")  # the Beam sinks of every job
STAGED_DIRS = ("data", "quarantine", "canaries")  # what the finalize step reads and commits
_SHARD = re.compile(r"^-(\d{5})-of-(\d{5})(\.[a-z]+)?$")
CRASH_ENV = "PRIVGATE_TEST_CRASH_AT"


def crash_point(step: str) -> None:
    """Tests only: end the process at once (no cleanup, like a kill) when
    `$PRIVGATE_TEST_CRASH_AT` names this step."""
    if os.environ.get(CRASH_ENV) == step:
        os._exit(70)


def staging_root(target: str) -> str:
    """Where a target's object-store stagings live: `<parent>/.<name>.privgate-tmp/`, one
    prefix per run under it (so they are found by one recursive listing: stores list
    prefixes unevenly)."""
    parent, name = storage.split(target)
    return storage.join(parent, f".{name}{STAGING_TAG.rstrip('-')}")


def staging_name(target: str, run_id: str) -> str:
    return storage.join(staging_root(target), run_id)


def target_of_staging(staging: str) -> tuple[str, str] | None:
    """(target, run id) a staging path belongs to, or None when it is not one: local
    `<parent>/.<name>.privgate-tmp-<run id>`, object store
    `<parent>/.<name>.privgate-tmp/<run id>`."""
    parent, name = storage.split(staging)
    tag = STAGING_TAG.rstrip("-")
    if storage.is_url(staging):
        grand, root = storage.split(parent)
        if root.startswith(".") and root.endswith(tag) and len(root) > len(tag) + 1:
            return storage.join(grand, root[1 : -len(tag)]), name
        return None
    if not name.startswith(".") or STAGING_TAG not in name:
        return None
    base, run_id = name[1:].split(STAGING_TAG, 1)
    return storage.join(parent, base), run_id


def list_stagings(target: str) -> list[str]:
    """The object-store staging prefixes of `target` (one recursive listing)."""
    root = staging_root(target)
    return sorted({storage.join(root, rel.split("/", 1)[0]) for rel in storage.list_objects(root)})


def launcher_identity() -> dict:
    """Where the launcher runs: enough to prove later that it (and a local job) is gone."""
    return {
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid": os.getpid(),
        "pid_started": _pid_started(os.getpid()),
    }


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def _pid_started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def run_is_dead(record: dict, committed_run_id: str | None) -> bool:
    """True only when the staged run provably does no more work: it was committed, or it ran
    on a local runner on this machine (same boot) and its launcher process is gone. A job on a
    remote runner (Dataflow) is never proven dead here: `privgate finalize` or a user removes
    its staging."""
    if record.get("run_id") == committed_run_id:
        return True
    who = record.get("launcher") or {}
    if record.get("runner") != "local" or who.get("host") != socket.gethostname():
        return False
    if who.get("boot_id") is None or who.get("boot_id") != _boot_id():
        return False
    return _pid_started(who.get("pid", -1)) != who.get("pid_started")


def job_sinks(cfg) -> tuple[str, ...]:
    """The file prefixes of the job's Beam sinks for this config."""
    return SINKS + (("canaries/part",) if getattr(cfg, "canaries", None) is not None else ())


def check_complete(where: str, names, sinks: tuple[str, ...] = SINKS) -> None:
    """Refuse a staged job output that is not whole: Beam temporary files left, or a sink's
    shards `-SSSSS-of-NNNNN` not all present (Beam writes at least one per sink).

    Raises:
        DataError: naming what is missing; nothing is published.
    """
    names = list(names)
    if any("beam-temp" in n for n in names):
        raise DataError(
            f"{where}: the job's output is incomplete (Beam temporary files are present: the "
            "job is still running or it died); not finalized"
        )
    for sink in sinks:
        shards: dict[int, int] = {}
        for n in names:
            if n.startswith(sink + "-") and (m := _SHARD.match(n[len(sink) :])):
                shards[int(m[1])] = int(m[2])
        totals = set(shards.values())
        if not shards or len(totals) != 1 or set(shards) != set(range(totals.pop())):
            raise DataError(
                f"{where}: the job's output is incomplete ({sink}-* shards missing: the job "
                "is still running or it died); not finalized"
            )


def check_object_target(cfg) -> str:
    """The output prefix (`output.path` on gs:// or s3://), checked before any data is read.

    Raises:
        ConfigError (exit 2): another scheme, no path inside the bucket, a prefix that
            overlaps the input or holds the keyring, or one that is not absent, empty, a
            previous privgate output or an unfinished commit of one.
    """
    target = cfg.output.path.rstrip("/")
    try:
        _, path = storage._split(target)
    except PrivgateError as e:
        raise ConfigError(cfg.source, "output.path", str(e)) from None
    if "/" not in path:
        raise ConfigError(
            cfg.source, "output.path", "must be a prefix inside a bucket (gs://BUCKET/PATH)"
        )
    for key, other in (("input.path", cfg.input.path), ("keys.keyring", cfg.keys.keyring)):
        root = re.split(r"[*?\[]", other, maxsplit=1)[0].rstrip("/")
        if storage.is_url(root) and (_under(root, target) or _under(target, root)):
            raise ConfigError(
                cfg.source,
                "output.path",
                f"{target} overlaps {key} ({root}): a run replaces its output prefix as a "
                "whole, so it must not hold the run's inputs or keys",
            )
    check_replaceable_objects(cfg.source, target)
    return target


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def check_replaceable_objects(source: str, target: str) -> None:
    """Refuse a prefix a run must not replace: only an empty prefix, a previous privgate output
    (what `verify` accepts but for the signature) or one a commit of ours left half done (a
    staging of this target holds the `_work/publishing` marker) is.

    Raises:
        ConfigError (exit 2): naming `output.path` and why.
    """
    objects = storage.list_objects(target)
    if not objects or _half_committed(target):
        return
    try:
        body = mf.load(target)["manifest"]
        if not isinstance(body, dict) or body.get("format") != mf.FORMAT:
            reason = f"{mf.MANIFEST} is not a privgate manifest"
        else:
            mf.verify_tree(target, body)
            return
    except PrivgateError as e:
        reason = str(e)
    except (KeyError, TypeError):
        reason = f"{mf.MANIFEST} lists no files"
    raise ConfigError(
        source,
        "output.path",
        f"{target} is not a previous privgate output ({reason}); choose an empty prefix",
    )


def _half_committed(target: str) -> bool:
    root = staging_root(target)
    return any(rel.split("/", 1)[1] == PUBLISHING for rel in storage.list_objects(root))


def committed_run_id(target: str) -> str | None:
    """The run id in the target's manifest, or None without a readable one."""
    try:
        return mf.load(target)["manifest"].get("run_id")
    except (PrivgateError, AttributeError):
        return None


def clean_stale(target: str) -> list[str]:
    """Remove staging prefixes beside `target` whose run is provably dead (`run_is_dead`);
    return them. Left: a prefix without a readable run record (its run may be starting), and
    a dead run's staging whose commit began while the target has no manifest (`privgate
    finalize` of that staging completes the commit)."""
    committed = committed_run_id(target)
    root = staging_root(target)
    objects = storage.list_objects(root)
    removed = []
    for run_id in sorted({rel.split("/", 1)[0] for rel in objects}):
        prefix = storage.join(root, run_id)
        try:
            record = json.loads(storage.read_bytes(storage.join(prefix, RUN_RECORD)))
        except (OSError, ValueError):
            continue
        publishing = f"{run_id}/{PUBLISHING}" in objects
        if not isinstance(record, dict) or (publishing and committed is None):
            continue
        if run_is_dead(record, committed):
            storage.delete_prefix(prefix)
            removed.append(prefix)
    return removed


class ObjectStaging:
    """One run's staging prefix on an object store and its local mirror.

    Args:
        target: the output prefix (`check_object_target`).
        source: the config file, for errors naming `output.path`.
        run_id, started_at: the run's id and start time (ISO 8601, UTC).
        owned: the launcher that started the run: it removes the prefix when the run fails.
            `privgate finalize` adopts a prefix (not owned): a refusal leaves it for a rerun.
    """

    def __init__(self, target: str, source: str, run_id: str, started_at: str, owned: bool):
        self.target, self.source = target.rstrip("/"), source
        self.run_id, self.started_at, self._owned = run_id, started_at, owned
        self.job_path = staging_name(self.target, run_id)  # where the Beam job writes
        self.path: str | None = None  # the local mirror the finalize step reads
        self._doc: dict | None = None

    def __enter__(self) -> ObjectStaging:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        if exc_type is not None and self._owned:
            storage.delete_prefix(self.job_path)

    def write_record(self, record: dict) -> None:
        """The run record, the staging's first object."""
        storage.write_bytes(
            storage.join(self.job_path, RUN_RECORD), json.dumps(record, indent=1).encode()
        )

    def fetch(self, sinks: tuple[str, ...] = SINKS) -> None:
        """Check the job's output is whole (`sinks`: `job_sinks(cfg)`), then copy it into a
        local mirror (one request per object), which reconciliation, gates and the report
        read. Idempotent.

        Raises:
            DataError: the output is incomplete (`check_complete`).
        """
        if self.path is not None:
            return
        objects = storage.list_objects(self.job_path)
        check_complete(self.job_path, objects, sinks)
        self.path = tempfile.mkdtemp(prefix="privgate-finalize-")
        for rel in objects:
            if rel.split("/", 1)[0] in STAGED_DIRS or rel.startswith("_work/stats"):
                local = os.path.join(self.path, *rel.split("/"))
                os.makedirs(os.path.dirname(local), exist_ok=True)
                storage.download(storage.join(self.job_path, rel), local)

    def drop_work(self) -> None:
        shutil.rmtree(os.path.join(self.path, "_work"), ignore_errors=True)

    def write_manifest(self, doc: dict) -> None:
        self._doc = doc  # written last, by publish()

    def publish(self) -> None:
        """Commit: (1) mark the staging as publishing, (2) remove the target's manifest (a
        reader refuses the target from here on), (3) remove the old objects, (4) copy the
        staged data, quarantine and canaries (server side) and upload the report, (5) write
        `manifest.json`: the commit point, (6) remove the staging. A crash leaves the old
        output (before 2) or a prefix `verify` refuses (2-5); `privgate finalize` of the
        staging completes it, and a later run may replace it (the marker proves it ours).

        Raises:
            ConfigError (exit 2): the target became something a run must not replace.
        """
        body = self._doc["manifest"]
        target = self.target
        check_replaceable_objects(self.source, target)
        storage.write_bytes(storage.join(self.job_path, PUBLISHING), self.run_id.encode())
        storage.delete(storage.join(target, mf.MANIFEST))
        crash_point("removed-manifest")
        for rel in storage.list_objects(target):
            storage.delete(storage.join(target, rel))
        crash_point("removed-old")
        for f in mf.listed_files(body):  # the report was written here; the rest by the job
            if f["path"].startswith("report/"):
                local = os.path.join(self.path, *f["path"].split("/"))
                storage.upload(local, storage.join(target, f["path"]))
            else:
                src = storage.join(self.job_path, f["path"])
                storage.copy(src, storage.join(target, f["path"]))
        crash_point("copied")
        storage.write_bytes(
            storage.join(target, mf.MANIFEST),
            json.dumps(self._doc, indent=1, sort_keys=True).encode(),
        )
        crash_point("committed")
        self.tidy()

    def tidy(self) -> None:
        """After the commit: remove the staging."""
        storage.delete_prefix(self.job_path)
