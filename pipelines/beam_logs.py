"""Beam's error records without record values: a logging filter and its run-long install."""

from __future__ import annotations

import contextlib
import logging
import os
import re

from privgate.errors import PrivgateError


class ValueFreeBeamLogs(logging.Filter):
    """Scrub Beam's error records down to what failed and where, without the text.

    Beam logs a failing DoFn's exception at ERROR with its message and traceback (and an SDK
    worker logs the traceback's text) before the CLI's value-free handler sees it; messages
    of libraries such as pyarrow quote values. Such a record keeps its level, logger, the
    exception's type and the pipeline step; a PrivgateError keeps its (value-free) message.
    With PRIVGATE_DEBUG=1 records pass whole, like the CLI's traceback.
    """

    _STEP = re.compile(r"\[while running '([^']*)'\]")

    def filter(self, record: logging.LogRecord) -> bool:
        # Beam's loggers, and log entries of SDK worker processes relayed on the root logger
        beam = record.name.startswith("apache_beam") or (
            record.name == "root" and str(record.msg).startswith("severity:")
        )
        if not beam or os.environ.get("PRIVGATE_DEBUG") == "1":
            return True
        if getattr(record, "privgate_scrubbed", False):  # one record, several handlers
            return True
        if record.levelno < logging.ERROR and not record.exc_info:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, PrivgateError):
            message = str(exc)
        else:
            try:
                step = self._STEP.search(record.getMessage())
            except Exception:  # noqa: BLE001 - a malformed record is scrubbed all the same
                step = None
            message = (
                (type(exc).__name__ if exc is not None else "an error")
                + (f" [while running '{step.group(1)}']" if step else "")
                + " (details withheld: they may quote a value; PRIVGATE_DEBUG=1 shows them)"
            )
        record.msg, record.args, record.privgate_scrubbed = message, None, True
        record.exc_info = record.exc_text = record.stack_info = None
        return True


@contextlib.contextmanager
def value_free_beam_logs():
    """Scrub Beam's error records on every handler that sees them while the block runs.

    The filter goes on the root logger's handlers, Beam's own and Python's last-resort
    handler (used when nothing is configured), unless one already has it (the CLI installs it
    for the whole command). A handler attached to another Beam sub-logger is not covered.
    """
    scrub = ValueFreeBeamLogs()
    handlers = {*logging.getLogger().handlers, *logging.getLogger("apache_beam").handlers}
    if logging.lastResort is not None:
        handlers.add(logging.lastResort)
    added = [h for h in handlers if not any(isinstance(f, ValueFreeBeamLogs) for f in h.filters)]
    for handler in added:
        handler.addFilter(scrub)
    try:
        yield
    finally:
        for handler in added:
            handler.removeFilter(scrub)
