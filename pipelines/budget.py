"""The epsilon budget of a run: checked against the ledger before, recorded before publishing."""

from __future__ import annotations

import hashlib
import json
import logging

from privgate.errors import ConfigError, DataError
from schemas.config import RunConfig

log = logging.getLogger("privgate.run")


def noise_id(cfg: RunConfig, keyring) -> str:
    """Fingerprint of every PRF input a memoized run shares by config: keyring, key version,
    dataset, record-key column and each ldp column's noise domain (32 hex digits)."""
    from transforms.actions import LDP_KEY_VERSION
    from transforms.ldp.column import noise_domain

    schema = cfg.schema
    domains = [
        noise_domain(c.name, c.ldp_params, record_key=schema.record_key, dataset=cfg.dataset)
        for c in schema.ldp_columns
    ]
    doc = [keyring.keyring_id, LDP_KEY_VERSION, cfg.dataset, schema.record_key, domains]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:32]


class Budget:
    """The epsilon a run spends (ldp columns), checked against the ledger before the run and
    again when its data is known (`settle`), recorded after it succeeded, before its output
    is published.

    A memoized run (the schema has a record key) is charged nothing only when it repeats an
    earlier release exactly: its memo id is `<noise_id>-<input fingerprint>`, the fingerprint
    covering every row's record key and PRF inputs (`transforms.ldp.census`). Before the data
    is read only the best case can be checked: a repeat of a release with the same noise id.
    """

    def __init__(self, cfg: RunConfig, keyring, allow_overrun: bool):
        from privgate.ledger import EpsilonLedger, ledger_path_for

        schema = cfg.schema
        self.cfg, self.epsilon = cfg, schema.record_epsilon
        self.allow_overrun = allow_overrun
        self.memoized = schema.record_key is not None
        self.noise_id = noise_id(cfg, keyring) if self.memoized else None
        self.memo_id: str | None = None  # known once the data is (`settle`)
        self.ledger = EpsilonLedger(cfg.privacy.ledger or ledger_path_for(cfg.keys.keyring))
        self.spent_before = self.ledger.spent(cfg.dataset)
        self.overrun = False
        self._check(self._best_case_memo_id() if self.memoized else None)

    def _best_case_memo_id(self) -> str:
        """The recorded memo id with this noise id that would cost least, or the noise id
        alone (which matches no recorded run: a first release)."""
        prefix = f"{self.noise_id}-"
        seen = {
            e.memo_id
            for e in self.ledger.entries(self.cfg.dataset)
            if e.memoized and e.memo_id and e.memo_id.startswith(prefix)
        }
        return min(
            sorted(seen),
            key=lambda m: self.ledger.charge_for(
                self.cfg.dataset, self.epsilon, memoized=True, memo_id=m
            ),
            default=self.noise_id,
        )

    def _check(self, memo_id: str | None) -> None:
        from privgate.ledger import BudgetExceeded

        self.charge = self.ledger.charge_for(
            self.cfg.dataset, self.epsilon, memoized=self.memoized, memo_id=memo_id
        )
        try:
            self.ledger.check(
                self.cfg.dataset,
                self.epsilon,
                self.cfg.privacy.lifetime_epsilon_max,
                memoized=self.memoized,
                memo_id=memo_id,
            )
        except BudgetExceeded:
            if not self.allow_overrun:
                raise
            if not self.overrun:
                log.warning("budget overrun allowed by --allow-budget-overrun; recorded")
            self.overrun = True

    def settle(self, census: dict | None) -> None:
        """Fix a memoized run's memo id from its record-key census and check the budget again.

        Args:
            census: `transforms.ldp.census.census_summary` over the whole input (None when
                the pipeline wrote none).
        Raises:
            DataError: record keys repeat (equal values would get equal noisy outputs), or
                the census is missing; nothing is published or spent.
            BudgetExceeded: this input is new to the ledger and its epsilon would pass
                privacy.lifetime_epsilon_max (exit 3).
        """
        if not self.memoized:
            return
        record_key = self.cfg.schema.record_key
        if census is None:
            raise DataError("memoized ldp: the run's record-key census is missing; not published")
        if census["repeated"]:
            raise DataError(
                f"record_key '{record_key}': {census['repeated']} row(s) repeat another row's "
                "record key; memoized ldp would give equal values equal noisy outputs. Make "
                "the record key unique per row (or drop record_key for fresh noise); output "
                "not published"
            )
        others = [
            d
            for d in self.ledger.datasets_with_memo_suffix(f"-{census['fingerprint']}")
            if d != self.cfg.dataset
        ]
        if others:  # the dataset is in the noise domain: a new name would be fresh noise
            raise ConfigError(
                self.cfg.source,
                "dataset",
                f"these records were released under dataset '{others[0]}' (epsilon ledger "
                f"{self.ledger.path}); under a new name they would get fresh noise and a "
                f"budget of their own. Use dataset: {others[0]}; output not published",
            )
        self.memo_id = f"{self.noise_id}-{census['fingerprint']}"
        self._check(self.memo_id)

    def record(self, run_id: str) -> None:
        if self.memoized and self.memo_id is None:  # never record a charge settle() did not fix
            raise DataError("memoized ldp: the budget was not settled; not published")
        # checked again under the ledger's lock: a concurrent run may have spent it meanwhile
        self.ledger.record(
            self.cfg.dataset,
            run_id,
            self.epsilon,
            memoized=self.memoized,
            memo_id=self.memo_id,
            overrun=self.overrun,
            lifetime_max=None if self.overrun else self.cfg.privacy.lifetime_epsilon_max,
        )

    def summary(self) -> dict:
        p = self.cfg.privacy
        return {
            "record_epsilon": self.epsilon,
            "record_epsilon_max": p.record_epsilon_max,
            "lifetime_epsilon_max": p.lifetime_epsilon_max,
            "memoized_noise": self.memoized,
            "lifetime_spent_before": self.spent_before,
            "charged": self.charge,
            "lifetime_spent_after": self.spent_before + self.charge,
            "budget_overrun_allowed": self.overrun,
        }


def open_budget(cfg: RunConfig, keyring, allow_overrun: bool) -> Budget | None:
    """The run's budget, or None when it has no ldp column (it spends no epsilon)."""
    return Budget(cfg, keyring, allow_overrun) if cfg.schema.ldp_columns else None
