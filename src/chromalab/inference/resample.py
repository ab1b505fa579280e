"""Resampling planes: the working-size L (Pillow) and the ab upsampling taps to full size.

The taps are hand-written because measurements justify it: they equal Pillow's resize (tested to 1e-4
in tests/test_inference.py) and, applied as gathers on row bands, avoid a full-size Pillow image per plane
and BLAS threads fighting the band threads.
"""

from __future__ import annotations

import functools

import numpy as np


def resize_plane(a: np.ndarray, size_wh: tuple[int, int], resample: str = "bicubic") -> np.ndarray:
    """``(H, W)`` float32 -> ``(h, w)`` float32 with PIL (antialiased when shrinking)."""
    from PIL import Image

    if (a.shape[1], a.shape[0]) == tuple(size_wh):
        return a
    f = Image.Resampling.BICUBIC if resample == "bicubic" else Image.Resampling.BILINEAR
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.asarray(im.resize(size_wh, f), dtype=np.float32)


def _kernel(kind: str):
    if kind == "bilinear":
        return 1.0, lambda x: np.maximum(0.0, 1.0 - np.abs(x))

    def bicubic(x, a=-0.5):  # Keys, as Pillow's BICUBIC
        x = np.abs(x)
        return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                        np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))

    return 2.0, bicubic


@functools.lru_cache(maxsize=64)
def _interp_matrix(n_in: int, n_out: int, kind: str = "bicubic") -> np.ndarray:
    """``(n_out, n_in)`` float32 resampling weights, computed as Pillow does (pixel centres,
    normalised taps, kernel widened when shrinking), so ``R @ x`` equals Pillow's resize of x."""
    support, k = _kernel(kind)
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support *= fscale
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        x = np.arange(lo, hi)
        w = k((x - center + 0.5) / fscale)
        total = w.sum()
        m[i, lo:hi] = w / total if total != 0 else w
    out = m.astype(np.float32)
    out.setflags(write=False)  # shared through the cache
    return out


@functools.lru_cache(maxsize=64)
def resample_taps(n_in: int, n_out: int, kind: str = "bicubic") -> tuple[np.ndarray, np.ndarray]:
    """The same weights as :func:`_interp_matrix`, as (index, weight) taps ``(n_out, K)`` each.

    Upsampling needs K <= 5 taps per output; applying them as gathers avoids BLAS, whose own
    threads make these small products slow (and fight the band threads)."""
    m = _interp_matrix(n_in, n_out, kind)
    nz = m != 0
    lo = np.where(nz.any(1), nz.argmax(1), 0)
    hi = np.where(nz.any(1), n_in - nz[:, ::-1].argmax(1), 1)
    K = int((hi - lo).max())
    idx = np.minimum(lo[:, None] + np.arange(K)[None, :], n_in - 1)
    w = np.take_along_axis(m, idx, axis=1) * (lo[:, None] + np.arange(K)[None, :] < hi[:, None])
    idx.setflags(write=False)
    w = w.astype(np.float32)
    w.setflags(write=False)
    return idx.astype(np.intp), w


def resample_rows(x: np.ndarray, taps: tuple[np.ndarray, np.ndarray], rows: slice | None = None) -> np.ndarray:
    """Resample axis 0 of ``x`` ``(n_in, W)`` with taps -> ``(n_out, W)`` (or just ``rows`` of it)."""
    idx, w = taps
    if rows is not None:
        idx, w = idx[rows], w[rows]
    out = x[idx[:, 0]] * w[:, :1]
    for k in range(1, idx.shape[1]):
        out += x[idx[:, k]] * w[:, k : k + 1]
    return out
