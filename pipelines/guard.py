"""The keep-guard: a direct identifier in a `keep` string column fails the run before it
publishes; a kept quasi-identifier is a warning, named in the manifest and the report."""

from __future__ import annotations

import logging

from schemas.config import RunConfig

log = logging.getLogger("privgate.run")


class KeepGuard:
    """Classify every `keep` string column on a sample of the input (the keep-guard).

    The sample is the first contract-valid rows of the inputs (up to 5x `guard.sample`),
    from which the classifier takes an evenly spaced `guard.sample` values per column. The
    classification runs in the side worker while the pipeline runs; `result()` joins it
    before anything is published, so a failing guard leaves no output and spends no budget.
    """

    def __init__(self, cfg: RunConfig, head, side):
        self.cfg = cfg
        schema = cfg.schema
        self.columns = self.kept_strings(cfg)
        self._future = None
        self._sampled = 0
        if not self.columns or head is None:
            return
        sample = head.select([c[0] for c in self.columns]).slice(0, cfg.guard.sample * 5)
        self._sampled = sample.num_rows
        self._future = side.submit(
            _classify_keep_columns,
            sample,
            self.columns,
            cfg.guard.max_prevalence,
            cfg.guard.sample,
            schema.nlp_model,
            schema.recognizers,
        )

    @staticmethod
    def kept_strings(cfg: RunConfig) -> list[tuple]:
        """(name, action, type, pii) of every `keep` string column: what the guard reviews."""
        return [
            (c.name, c.action, c.type, c.pii)
            for c in cfg.schema.columns
            if c.action == "keep" and c.type == "string"
        ]

    @staticmethod
    def rows_wanted(cfg: RunConfig) -> int:
        return cfg.guard.sample * 5

    def result(self, raise_on_fail: bool = True, log_warnings: bool = True) -> dict | None:
        """The manifest's `keep_guard` section, or None when no column is kept as a string.

        Args:
            raise_on_fail: False when a `gates:` section folds the guard into the verdict
                (the output is then published as refused, with a report saying why).
            log_warnings: False for a check that runs again later (before a Dataflow
                submit), so warnings are logged once.
        Raises:
            GateError (exit 3): PII above `guard.max_prevalence` in mode `fail`.
        """
        from privgate.errors import GateError
        from transforms.detect.guard import guard_message, guard_warning_message

        if not self.columns:
            return None
        guard = self.cfg.guard
        findings, warnings = self._future.result() if self._future is not None else ([], [])
        section = {
            "mode": guard.mode,
            "max_prevalence": guard.max_prevalence,
            "columns": [c[0] for c in self.columns],
            "sampled_rows": self._sampled,
            "findings": [
                {"column": c, "entity": e, "prevalence": round(p, 4)} for c, e, p in findings
            ],
            "warnings": list(warnings),
        }
        section["passed"] = not findings or guard.mode == "warn"
        if findings:
            message = guard_message(findings, guard.max_prevalence)
            if guard.mode == "fail" and raise_on_fail:
                raise GateError(message)
            if log_warnings:
                log.warning("keep-guard (%s): %s", guard.mode, message)
        if warnings and log_warnings:
            log.warning("%s", guard_warning_message(warnings))
        return section


def _classify_keep_columns(sample, columns, max_prevalence, n, model, recognizers):
    """Runs in the guard's worker process."""
    from transforms.detect.engine import get_detector
    from transforms.detect.guard import guard_review

    return guard_review(
        sample, columns, max_prevalence, detector=get_detector(model, recognizers), sample=n
    )
