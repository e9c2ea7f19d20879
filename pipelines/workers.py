"""Side workers: spawned processes that pay a run's fixed-cost checks while the pipeline runs."""

from __future__ import annotations

import os
import sys


class SideWorker:
    """One spawned process for fixed-cost checks (spaCy/Presidio and Great Expectations load
    in ~2-3 s each): it runs while the pipeline runs and keeps what it loaded for later jobs
    (a run uses one for detection, one for GX). Started on the first job; jobs get input
    samples, never keys."""

    def __init__(self):
        self._pool = None

    def submit(self, fn, *args):
        """Queue `fn(*args)` in the worker; returns a Future (`result()` waits; a worker
        that died raises BrokenProcessPool instead of hanging)."""
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent
            )
        return self._pool.submit(fn, *args)

    def close(self):
        """Cancel queued jobs, let a running one finish, and join the worker process (which
        skips its interpreter's teardown: see `_die_with_parent`)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class SideWorkers:
    """A run's two side workers, closed on every path when the `with` block ends: `detect`
    (spaCy/Presidio: keep-guard, then residual PII) and `gx` (Great Expectations: the user's
    input suite, in parallel). Neither process starts before its first job."""

    def __init__(self):
        self.detect = SideWorker()
        self.gx = SideWorker()

    def __enter__(self) -> SideWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.detect.close()
        self.gx.close()


def _die_with_parent() -> None:
    """Side worker initializer: if the run is killed (even SIGKILL), the worker goes too
    (Linux PR_SET_PDEATHSIG; elsewhere the worker exits when its job queue closes). And when
    it is shut down, it exits without tearing down its interpreter (spaCy, GX: up to
    ~2 s): multiprocessing has run its finalizers by then, and the jobs' results are sent."""
    import atexit
    import ctypes
    import signal

    atexit.register(_exit_now)  # registered first, so it runs after every library's handler
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
