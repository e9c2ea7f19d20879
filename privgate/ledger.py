"""Epsilon ledger: how much local-DP budget each dataset has spent, run by run.

Releasing a dataset again with fresh noise lets a reader average the noise away, so the
epsilons of fresh runs add up (sequential composition). A memoized run (the schema has a
`record_key`: noise comes from a keyed PRF) re-releases the same outputs as an earlier run
with the same memo id, so it is charged only once per dataset and memo id. The memo id must
cover everything the PRF depends on (`pipelines.budget`: keyring, key version, dataset,
record-key column, noise domains, and a fingerprint of every row's record key and values),
or a run drawing fresh noise would pass as a free repeat.

The ledger is a JSON file kept beside the keyring (`ledger_path_for`), written atomically
(temp file + os.replace, mode 0600) under an exclusive lock so concurrent runs cannot lose
each other's entries. It holds epsilons, run ids and times: no keys, no record values.
An unreadable ledger is an error, never a fresh start: forgetting past spending would
silently overspend.

    {"format": "privgate-epsilon-ledger", "version": 1,
     "datasets": {"customers": [{"run_id": ..., "time": ..., "epsilon": 1.0,
                                 "charged": 1.0, "memoized": false, "memo_id": null,
                                 "overrun": false}, ...]}}
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from privgate.errors import PrivgateError

FORMAT = "privgate-epsilon-ledger"
VERSION = 1
LEDGER_FILENAME = "epsilon-ledger.json"
TOLERANCE = 1e-9  # epsilons are sums of config floats: 0.1 + 0.2 must not refuse a 0.3 max


class BudgetExceeded(PrivgateError):
    """A run would push a dataset past its lifetime epsilon (CLI exit code 3)."""

    exit_code = 3


class LedgerError(PrivgateError):
    """The ledger file cannot be read or written."""


@dataclass(frozen=True)
class LedgerEntry:
    """One run's spending.

    Attributes:
        run_id: the run's id.
        time: ISO-8601 UTC time of recording.
        epsilon: the run's per-record epsilon (sum over its ldp columns).
        charged: what the run added to the dataset's total (0 for a repeated memoized run).
        memoized: noise came from the keyed PRF.
        memo_id: what the memoized noise depended on, if any (`pipelines.budget`:
            "<noise id>-<input fingerprint>").
        overrun: the run went past the lifetime maximum under --allow-budget-overrun.
    """

    run_id: str
    time: str
    epsilon: float
    charged: float
    memoized: bool
    memo_id: str | None
    overrun: bool


def ledger_path_for(keyring_path: str) -> str:
    """The ledger's path beside a keyring file.

    Args:
        keyring_path: path of the keyring file.
    Returns:
        `<keyring dir>/epsilon-ledger.json`.
    """
    return os.path.join(os.path.dirname(os.path.abspath(keyring_path)), LEDGER_FILENAME)


def _check_epsilon(epsilon) -> float:
    eps = float(epsilon)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError("epsilon must be a finite number >= 0")
    return eps


def _total(entries: list[LedgerEntry]) -> float:
    return math.fsum(e.charged for e in entries)


class EpsilonLedger:
    """Reads and appends the epsilon ledger at `path`.

    Args:
        path: the ledger file (created on first `record`).
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)

    # -- file handling
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise LedgerError(
                f"{self.path}: cannot lock the epsilon ledger ({e.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _load(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return {"format": FORMAT, "version": VERSION, "datasets": {}}
        except (OSError, ValueError) as e:
            raise LedgerError(
                f"{self.path}: epsilon ledger unreadable ({type(e).__name__}); "
                "refusing to start a new one over it"
            ) from None
        if (
            not isinstance(doc, dict)
            or doc.get("format") != FORMAT
            or not isinstance(doc.get("datasets"), dict)
        ):
            raise LedgerError(f"{self.path}: not a privgate epsilon ledger")
        if doc.get("version") != VERSION:
            raise LedgerError(f"{self.path}: unsupported ledger version")
        return doc

    def _save(self, doc: dict) -> None:
        directory = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".epsilon-ledger-", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)  # mkstemp already uses 0600; be explicit
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename durable where supported
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    # -- queries
    def entries(self, dataset: str) -> list[LedgerEntry]:
        """All recorded runs of `dataset`, oldest first.

        Raises:
            LedgerError: the ledger file is unreadable.
        """
        return [LedgerEntry(**e) for e in self._load()["datasets"].get(dataset, [])]

    def datasets_with_memo_suffix(self, suffix: str) -> list[str]:
        """Datasets with a memoized run whose memo id ends with `suffix` (an input fingerprint).

        Raises:
            LedgerError: the ledger file is unreadable.
        """
        return sorted(
            name
            for name, entries in self._load()["datasets"].items()
            if any(
                e.get("memoized") and str(e.get("memo_id") or "").endswith(suffix) for e in entries
            )
        )

    def spent(self, dataset: str) -> float:
        """Total epsilon charged to `dataset` so far (0 for an unknown dataset).

        Raises:
            LedgerError: the ledger file is unreadable.
        """
        return _total(self.entries(dataset))

    @staticmethod
    def _charge(
        entries: list[LedgerEntry], epsilon: float, memoized: bool, memo_id: str | None
    ) -> float:
        if not memoized:
            return epsilon
        # Same noise domain -> same outputs: only a larger epsilon than already charged for
        # that domain could cost more (it cannot happen with privgate's domains, which
        # include epsilon, but the ledger does not rely on that).
        prior = math.fsum(e.charged for e in entries if e.memoized and e.memo_id == memo_id)
        return max(0.0, epsilon - prior)

    def charge_for(
        self, dataset: str, epsilon: float, *, memoized: bool = False, memo_id: str | None = None
    ) -> float:
        """What a run would add to `dataset`'s total.

        Args:
            dataset: dataset name.
            epsilon: the run's per-record epsilon.
            memoized: the run's noise is memoized (record_key present).
            memo_id: the memoized noise domain; runs sharing it are charged once.
        Returns:
            epsilon for a fresh run; for a memoized run, what exceeds what is already
            charged to the same noise domain (0 on a repeat).
        """
        eps = _check_epsilon(epsilon)
        return self._charge(self.entries(dataset), eps, memoized, memo_id)

    def check(
        self,
        dataset: str,
        epsilon: float,
        lifetime_max: float,
        *,
        memoized: bool = False,
        memo_id: str | None = None,
    ) -> float:
        """Refuse a run that would take `dataset` past `lifetime_max`.

        Args:
            dataset: dataset name.
            epsilon: the run's per-record epsilon.
            lifetime_max: the config's privacy.lifetime_epsilon_max.
            memoized: the run's noise is memoized.
            memo_id: the memoized noise domain.
        Returns:
            the dataset's total after the run.
        Raises:
            BudgetExceeded: the run costs epsilon and the total would exceed lifetime_max
                (exit code 3).
            LedgerError: the ledger file is unreadable.
        """
        limit = _check_epsilon(lifetime_max)
        entries = self.entries(dataset)  # one read: spent and charge see the same ledger
        spent = _total(entries)
        charge = self._charge(entries, _check_epsilon(epsilon), memoized, memo_id)
        self._refuse_past(dataset, spent, charge, limit)
        return spent + charge

    @staticmethod
    def _refuse_past(dataset: str, spent: float, charge: float, limit: float) -> None:
        total = spent + charge
        # A run that releases nothing new (a memoized repeat) is never refused, even on a
        # dataset an earlier allowed overrun already took past the maximum.
        if charge > 0 and total > limit + TOLERANCE:
            raise BudgetExceeded(
                f"dataset '{dataset}': this run would bring its spent epsilon from "
                f"{spent:g} to {total:g}, above privacy.lifetime_epsilon_max {limit:g} "
                "(--allow-budget-overrun overrides, and is recorded)"
            )

    def record(
        self,
        dataset: str,
        run_id: str,
        epsilon: float,
        *,
        memoized: bool = False,
        memo_id: str | None = None,
        overrun: bool = False,
        time: str | None = None,
        lifetime_max: float | None = None,
    ) -> LedgerEntry:
        """Append a run's spending (the charge is computed under the lock).

        With `lifetime_max`, the budget is checked again under the same lock, so two runs
        that both passed `check` cannot both spend the last of it: the later one is refused
        here, before its output is published.

        Args:
            dataset: dataset name.
            run_id: the run's id.
            epsilon: the run's per-record epsilon.
            memoized: the run's noise is memoized.
            memo_id: the memoized noise domain.
            overrun: the run was allowed past the lifetime maximum.
            time: ISO time to record; now (UTC) when None.
            lifetime_max: refuse (and record nothing) when the total would exceed it.
        Returns:
            the recorded entry.
        Raises:
            BudgetExceeded: `lifetime_max` given and this charge would exceed it.
            LedgerError: the ledger cannot be read or written.
        """
        eps = _check_epsilon(epsilon)
        when = time or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        try:
            with self._locked():
                doc = self._load()
                runs = doc["datasets"].setdefault(dataset, [])
                entries = [LedgerEntry(**e) for e in runs]
                charge = self._charge(entries, eps, bool(memoized), memo_id)
                if lifetime_max is not None:
                    self._refuse_past(
                        dataset, _total(entries), charge, _check_epsilon(lifetime_max)
                    )
                entry = LedgerEntry(
                    str(run_id), when, eps, charge, bool(memoized), memo_id, bool(overrun)
                )
                runs.append(asdict(entry))
                self._save(doc)
        except OSError as e:
            raise LedgerError(
                f"{self.path}: cannot write the epsilon ledger ({e.strerror})"
            ) from None
        return entry
