"""Atomic publication: a run writes into a hidden staging directory swapped onto its target.

Everything is written to `.<name>.privgate-tmp-<run id>` beside the target; only after the
pipeline finished, every input row was reconciled and the manifest was signed is the staging
directory renamed onto the target. A failed or killed run leaves the target as it was.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import shutil
import uuid

from privgate import manifest as mf
from privgate.errors import ConfigError
from schemas.config import RunConfig


def local_target(cfg: RunConfig) -> str:
    """The output directory (`output.path`), which must be local so far.

    Raises:
        ConfigError (exit 2): a URL (gs://...).
    """
    target = cfg.output.path
    if "://" in target:
        raise ConfigError(
            cfg.source, "output.path", "only local output directories are supported so far"
        )
    return target


class Staging:
    """The run's id, start time and staging directory beside `target` (created, stale ones
    from killed runs removed); leaving its `with` block on an error removes it."""

    def __init__(self, target: str):
        self.started = dt.datetime.now(dt.UTC)
        self.run_id = self.started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        self.target = os.path.abspath(target)
        os.makedirs(os.path.dirname(self.target), exist_ok=True)
        _clean_stale(self.target)
        self.path = os.path.join(
            os.path.dirname(self.target),
            f".{os.path.basename(self.target)}.privgate-tmp-{self.run_id}",
        )
        os.makedirs(self.path)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)

    def drop_work(self) -> None:
        """Remove `_work/` (the pipeline's stats and contract counts), read by now."""
        shutil.rmtree(os.path.join(self.path, "_work"))

    def write_manifest(self, doc: dict) -> None:
        _write_manifest(self.path, doc)

    def publish(self) -> None:
        _publish(self.path, self.target, self.run_id)


def _write_manifest(staging: str, doc: dict) -> None:
    path = os.path.join(staging, mf.MANIFEST)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _publish(staging: str, target: str, run_id: str) -> None:
    """Swap the finished staging directory onto the target path."""
    parent, name = os.path.split(target)
    old = os.path.join(parent, f".{name}.privgate-old-{run_id}")
    if os.path.lexists(target):
        os.rename(target, old)
    os.rename(staging, target)
    fd = os.open(parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if os.path.lexists(old):
        shutil.rmtree(old, ignore_errors=True)


def _clean_stale(target: str) -> None:
    parent, name = os.path.split(target)
    for stale in glob.glob(os.path.join(parent, f".{name}.privgate-*")):
        shutil.rmtree(stale, ignore_errors=True)
