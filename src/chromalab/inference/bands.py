"""The shared thread pool for full-size work done in row bands (colour conversion, PNG deflate)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_BAND_PIXELS = 1 << 17
"""Pixels per band of the final Lab -> sRGB step (bounds its temporaries for huge images)."""
_LOCK = threading.Lock()

_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """A small shared thread pool for row bands (numpy and zlib release the GIL)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                                       thread_name_prefix="chromalab-band")
        return _POOL


def _run_bands(fn, H: int, W: int) -> None:
    """Call ``fn(r0, r1)`` over row bands of about ``_BAND_PIXELS`` pixels, on the shared pool."""
    rows = max(1, _BAND_PIXELS // max(W, 1))
    bands = [(r, min(r + rows, H)) for r in range(0, H, rows)]
    if len(bands) == 1:
        fn(*bands[0])
        return
    for f in [_pool().submit(fn, r0, r1) for r0, r1 in bands]:
        f.result()
