"""Atomic publication: a run writes into staging beside its target, committed only when whole.

Local directories: everything is written to `.<name>.privgate-tmp-<run id>` beside the
target; only after the pipeline finished, every input row was reconciled and the manifest was
signed is the staging directory renamed onto the target. A failed or killed run leaves the
target as it was. The target is replaced only when it is absent, empty or a previous privgate
output (nothing in it but the files its manifest lists), and never when it overlaps the run's
input or keys. Each run holds an flock on its staging directory, so another run's start
removes only the staging of runs that are gone; creating, cleaning and swapping happen under
an flock on the parent directory.

Object stores (gs://, s3://) have no rename: `ObjectStaging` stages under the prefix
`.<name>.privgate-tmp-<run id>/` beside the target and commits by copying, with
`manifest.json` written last (`ObjectStaging.publish` lists the steps); readers refuse a prefix
without a manifest or with any object missing, extra or changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import glob
import json
import os
import shutil
import uuid

from privgate import manifest as mf
from privgate.errors import ConfigError, VerifyError
from schemas.config import RunConfig

_GLOB_CHARS = "*?["


def output_target(cfg: RunConfig) -> str:
    """The checked output: a local directory (`local_target`) or an object-store prefix
    (`object_staging.check_object_target`)."""
    if "://" in cfg.output.path:
        from pipelines.object_staging import check_object_target

        return check_object_target(cfg)
    return local_target(cfg)


def open_staging(target: str, source: str):
    """A new run's staging beside `target`: `Staging` (local) or `ObjectStaging`."""
    if "://" not in target:
        return Staging(target, source)
    from pipelines.object_staging import ObjectStaging, clean_stale

    started = dt.datetime.now(dt.UTC)
    clean_stale(target)
    return ObjectStaging(target, source, new_run_id(started), _iso(started), owned=True)


def new_run_id(started: dt.datetime) -> str:
    return started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def local_target(cfg: RunConfig) -> str:
    """The output directory (`output.path`, absolute), checked before any data is read.

    Raises:
        ConfigError (exit 2): a URL (gs://...); a path that is, holds or lies inside the input
            (`input.path` up to its first wildcard); a path that is or holds the keyring's
            directory; a path that holds the epsilon ledger; a path that is not absent, an
            empty directory or a previous privgate output (`check_replaceable`).
    """
    target = cfg.output.path
    if "://" in target:
        raise ConfigError(
            cfg.source, "output.path", "only local output directories are supported so far"
        )
    target = os.path.abspath(target)
    keys = os.path.dirname(os.path.abspath(cfg.keys.keyring))
    root = _input_root(cfg.input.path)
    if root is not None and _overlap(target, root):
        raise _overlap_error(cfg, target, "input.path", root)
    if _inside(keys, target):
        raise _overlap_error(cfg, target, "keys.keyring", keys)
    if cfg.privacy is not None and cfg.privacy.ledger and _inside(cfg.privacy.ledger, target):
        raise _overlap_error(cfg, target, "privacy.ledger", cfg.privacy.ledger)
    check_replaceable(cfg.source, target)
    return target


def check_replaceable(source: str, target: str) -> None:
    """Refuse a target a run must not replace: only an absent path, an empty directory or a
    previous privgate output (a privgate manifest and nothing it does not list: the tree
    `privgate verify` accepts) is replaced.

    Raises:
        ConfigError (exit 2): naming `output.path` and, when there is one, the first path
            privgate did not write.
    """
    if not os.path.lexists(target):
        return
    if os.path.islink(target):
        problem = "is a symbolic link; give the directory itself"
    elif not os.path.isdir(target):
        problem = "exists and is not a directory"
    elif not os.listdir(target):
        return
    else:
        reason = _not_privgate_output(target)
        if reason is None:
            return
        problem = f"is not a previous privgate output ({reason}); choose an absent or empty one"
    raise ConfigError(source, "output.path", f"{target} {problem}")


def _not_privgate_output(target: str) -> str | None:
    """Why the directory `target` is not a previous privgate output, or None when it is."""
    try:
        body = mf.load(target)["manifest"]
        if not isinstance(body, dict) or body.get("format") != mf.FORMAT:
            return f"{mf.MANIFEST} is not a privgate manifest"
        mf.verify_tree(target, body)  # nothing the manifest does not list
    except VerifyError as e:
        return str(e)
    except (KeyError, TypeError):
        return f"{mf.MANIFEST} lists no files"
    return None


def _input_root(pattern: str) -> str | None:
    """The part of a local input pattern before its first wildcard (the file itself without
    one), or None for a URL."""
    if "://" in pattern:
        return None
    parts = os.path.abspath(pattern).split(os.sep)
    fixed = []
    for p in parts:
        if any(c in p for c in _GLOB_CHARS):
            break
        fixed.append(p)
    return os.sep.join(fixed) or os.sep


def _inside(path: str, directory: str) -> bool:
    """`path` is `directory` or lies inside it (symbolic links resolved)."""
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def _overlap(a: str, b: str) -> bool:
    return _inside(a, b) or _inside(b, a)


def _overlap_error(cfg: RunConfig, target: str, key: str, path: str) -> ConfigError:
    return ConfigError(
        cfg.source,
        "output.path",
        f"{target} overlaps {key} ({path}): a run replaces its output directory as a whole, "
        "so it must not hold the run's inputs, keys or epsilon ledger",
    )


class Staging:
    """The run's id, start time and staging directory beside `target` (created and locked;
    staging left by runs that are gone removed); leaving its `with` block on an error
    removes it.

    Args:
        target: the absolute output directory (`local_target`).
        source: the config file, for errors naming `output.path`.
    """

    def __init__(self, target: str, source: str = "<config>", adopt: dict | None = None):
        self.started = dt.datetime.now(dt.UTC)
        self.run_id = new_run_id(self.started)
        self.started_at = _iso(self.started)
        self.target, self.source = os.path.abspath(target), source
        self._owned = adopt is None
        if adopt is not None:  # `privgate finalize` of a run whose launcher is gone
            self.run_id, self.started_at = adopt["run_id"], adopt["started_at"]
        parent, name = os.path.split(self.target)
        self.path = os.path.join(parent, f".{name}.privgate-tmp-{self.run_id}")
        self.job_path = self.path
        if adopt is not None:
            self._lock = _lock_nowait(self.path)
            if self._lock is None:
                from privgate.errors import DataError

                raise DataError(f"{self.path}: a live run holds this staging; not finalized")
            return
        os.makedirs(parent, exist_ok=True)
        with _locked(parent):
            _clean_stale(self.target)
            os.makedirs(self.path)
            self._lock = _lock_nowait(self.path)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._owned:
            shutil.rmtree(self.path, ignore_errors=True)
        self._release()

    def write_record(self, record: dict) -> None:
        """The run record `_work/run.json` (what `privgate finalize` needs; no secret)."""
        os.makedirs(os.path.join(self.path, "_work"), exist_ok=True)
        with open(os.path.join(self.path, "_work", "run.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)

    def fetch(self, sinks: tuple[str, ...] | None = None) -> None:
        """An adopted staging: refuse it unless the job's output is whole (`check_complete`;
        `sinks`: `object_staging.job_sinks(cfg)`)."""
        if not self._owned:
            from pipelines.object_staging import SINKS, check_complete

            names = [
                os.path.relpath(os.path.join(d, n), self.path).replace(os.sep, "/")
                for d, _, files in os.walk(self.path)
                for n in files
            ]
            check_complete(self.path, names, sinks or SINKS)

    def tidy(self) -> None:
        """Nothing is left after a rename."""

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def drop_work(self) -> None:
        """Remove `_work/` (the pipeline's stats and contract counts), read by now."""
        shutil.rmtree(os.path.join(self.path, "_work"))

    def write_manifest(self, doc: dict) -> None:
        _write_manifest(self.path, doc)

    def publish(self) -> None:
        """Swap the finished staging directory onto the target.

        Raises:
            ConfigError (exit 2): the target became something a run must not replace while
                the run was going (`check_replaceable`); it is left as it is.
        """
        parent, name = os.path.split(self.target)
        old = os.path.join(parent, f".{name}.privgate-old-{self.run_id}")
        from pipelines.object_staging import crash_point

        crash_point("removed-manifest")  # the local swap has no such step: a crash here
        with _locked(parent) as parent_fd:  # leaves the old output, as before the swap
            check_replaceable(self.source, self.target)
            if os.path.lexists(self.target):
                os.rename(self.target, old)
            os.rename(self.path, self.target)
            os.fsync(parent_fd)
            self._release()
            shutil.rmtree(old, ignore_errors=True)


def _write_manifest(staging: str, doc: dict) -> None:
    path = os.path.join(staging, mf.MANIFEST)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _locked(directory: str):
    """Hold an exclusive flock on `directory` (waiting for it); yields its descriptor."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _lock_nowait(directory: str) -> int | None:
    """An open descriptor holding an exclusive flock on `directory`, or None when another
    process holds it."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _clean_stale(target: str) -> None:
    """Remove staging and swapped-out directories beside `target` that no live run holds
    (their run was killed); the caller holds the parent directory's lock."""
    parent, name = os.path.split(target)
    prefix = os.path.join(glob.escape(parent), glob.escape(f".{name}.privgate-"))
    for stale in glob.glob(prefix + "*"):
        if os.path.islink(stale) or not os.path.isdir(stale):
            continue
        fd = _lock_nowait(stale)
        if fd is None:  # a live run's staging directory
            continue
        try:
            shutil.rmtree(stale, ignore_errors=True)
        finally:
            os.close(fd)
