"""The epsilon budget of a run: checked against the ledger before, recorded before publishing."""

from __future__ import annotations

import hashlib
import json
import logging

from schemas.config import RunConfig

log = logging.getLogger("privgate.run")


class Budget:
    """The epsilon a run spends (ldp columns), checked against the ledger before the run and
    recorded after it succeeded, before its output is published."""

    def __init__(self, cfg: RunConfig, keyring, allow_overrun: bool):
        from privgate.ledger import EpsilonLedger, ledger_path_for
        from transforms.ldp.column import noise_domain

        schema = cfg.schema
        self.cfg, self.epsilon = cfg, schema.record_epsilon
        self.memoized = schema.record_key is not None
        domains = [noise_domain(c.name, c.ldp_params) for c in schema.ldp_columns]
        self.memo_id = hashlib.sha256(
            json.dumps([keyring.keyring_id, domains]).encode()
        ).hexdigest()[:32]
        self.ledger = EpsilonLedger(cfg.privacy.ledger or ledger_path_for(cfg.keys.keyring))
        self.spent_before = self.ledger.spent(cfg.dataset)
        self.charge = self.ledger.charge_for(
            cfg.dataset, self.epsilon, memoized=self.memoized, memo_id=self.memo_id
        )
        self.overrun = False
        from privgate.ledger import BudgetExceeded

        try:
            self.ledger.check(
                cfg.dataset,
                self.epsilon,
                cfg.privacy.lifetime_epsilon_max,
                memoized=self.memoized,
                memo_id=self.memo_id,
            )
        except BudgetExceeded:
            if not allow_overrun:
                raise
            self.overrun = True
            log.warning("budget overrun allowed by --allow-budget-overrun; recorded")

    def record(self, run_id: str) -> None:
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
