"""Progress for long local runs: rows read / written (and Mondrian's round and released rows),
shown on stderr only when it is a TTY.

DoFns call `add()`; in-process runners share this module with the launcher, which starts the
display. In remote or multi-process workers nobody starts it and `add()` just counts.
"""

from __future__ import annotations

import sys
import threading
import time

_counts = dict.fromkeys(
    ("read", "written", "quarantined", "anonymized", "anonymize_round", "released"), 0
)
_lock = threading.Lock()


def add(**kw: int) -> None:
    with _lock:
        for k, v in kw.items():
            _counts[k] += v


def reach(**kw: int) -> None:
    """Raise counters that mark a stage reached (`anonymize_round`) to at least the value."""
    with _lock:
        for k, v in kw.items():
            _counts[k] = max(_counts[k], v)


def snapshot() -> dict:
    with _lock:
        return dict(_counts)


class Display:
    """Context manager that redraws one status line on stderr every `interval` seconds."""

    def __init__(self, enabled: bool | None = None, interval: float = 0.5, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self._stop = threading.Event()
        self._thread = None
        self._t0 = time.monotonic()

    def line(self) -> str:
        c = snapshot()
        rate = c["read"] / max(time.monotonic() - self._t0, 1e-9)
        line = (
            f"privgate: read {c['read']:,} rows, protected {c['written']:,}, "
            f"quarantined {c['quarantined']:,} ({rate:,.0f} rows/s)"
        )
        if c["anonymized"]:  # Mondrian's input (rows and planted canaries), after protection
            rnd = f"round {c['anonymize_round']}, " if c["anonymize_round"] else ""
            line += f"; k-anonymity: {rnd}released {c['released']:,} of {c['anonymized']:,}"
        return line

    def _loop(self):
        while not self._stop.wait(self.interval):
            self.stream.write("\r" + self.line() + "\033[K")
            self.stream.flush()

    def __enter__(self):
        with _lock:
            for k in _counts:
                _counts[k] = 0
        self._t0 = time.monotonic()
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()
            self.stream.write("\r" + self.line() + "\033[K\n")
            self.stream.flush()
