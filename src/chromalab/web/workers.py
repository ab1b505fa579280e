"""The bounded pool of worker threads that decode, colorize and encode, so the event loop never does."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import HTTPException

from ..errors import ChromalabError
from .errors import status_of

log = logging.getLogger("chromalab.web")


class WorkerPool:
    """``workers`` threads and at most ``queue`` waiting requests; beyond that, refuse at once."""

    def __init__(self, workers: int, queue: int):
        if workers < 1:
            raise ChromalabError(f"--workers must be at least 1, got {workers}")
        if queue < 0:
            raise ChromalabError(f"--queue must be 0 or more, got {queue}")
        self.workers = workers
        self.queue = queue
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chromalab-infer")
        self._lock = threading.Lock()
        self.busy = 0
        self._avg_s = 1.0  # running mean of job time, for Retry-After

    def try_acquire(self) -> bool:
        with self._lock:
            if self.busy >= self.workers + self.queue:
                return False
            self.busy += 1
            return True

    def release(self, seconds: float | None) -> None:
        with self._lock:
            self.busy -= 1
            if seconds is not None:
                self._avg_s = 0.8 * self._avg_s + 0.2 * seconds

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained at the mean job time."""
        with self._lock:
            return max(1, math.ceil(self._avg_s * self.busy / self.workers))

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args))

    async def job(self, fn, *args, what: str = "colorizing"):
        """Run ``fn(*args)`` on a worker: 503 at once when full; :class:`RejectedError`, an
        :class:`ImageError` or a :class:`SettingError` -> its status (:func:`status_of`); any other
        :class:`ChromalabError` or exception -> 500 with one line (the log keeps the
        traceback). Returns (result, seconds)."""
        if not self.try_acquire():
            secs = self.retry_after()
            raise HTTPException(
                503,
                f"the server is busy ({self.workers} images being colorized, {self.queue} waiting); "
                f"try again in {secs} s",
                headers={"Retry-After": str(secs)},
            )
        t0 = time.perf_counter()
        elapsed = None
        try:
            out = await self.run(fn, *args)
            elapsed = time.perf_counter() - t0
            return out, elapsed
        except Exception as e:  # keep the server up; the log has the traceback
            status = status_of(e)
            if status is not None:  # the user's to fix: its status (errors.STATUS_OF_KIND), its line
                raise HTTPException(status, str(e)) from None
            if isinstance(e, ChromalabError):
                log.warning("%s failed: %s", what, e)
                raise HTTPException(500, f"{what} failed: {e}") from None
            log.exception("%s failed", what)
            raise HTTPException(500, f"internal error while {what}: {type(e).__name__}: {e}") from None
        finally:
            self.release(elapsed)
