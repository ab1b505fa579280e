"""Array helpers shared by the models and the classical pipelines: the batch resize and thread limits.

* :func:`resize_batch`: bicubic resize of ``(N, C, H, W)`` batches (antialiased when shrinking);
* :func:`single_threaded`: one BLAS/LAPACK and one torch thread for a factorization;
* :func:`torch_threads`: ``n`` torch threads for a block of small tensor operations.

torch and threadpoolctl are imported when a helper is first called, not with this module.
"""

from __future__ import annotations

import contextlib

import numpy as np


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` torch intra-op threads (None: unchanged).

    Small tensor ops are much slower with several threads when the cores are busy (threads
    spin waiting for each other), so loops of small steps use one thread.
    """
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def single_threaded():
    """One BLAS/LAPACK thread (numpy, scipy) and one torch thread for the block.

    LAPACK factorizations (QR, eigen-decompositions) synchronize their threads often; on a
    machine whose cores are busy with other work they then run 10-25x slower with 2 threads
    than with 1 (measured: QR of 8192x700 took 27.7 s vs 1.2 s). Large GEMMs are unaffected,
    so only the factorizations run under this.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), torch_threads(1):
        yield


def resize_batch(x: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a batch ``(N, C, H, W)`` float32 -> ``(N, C, h, w)``.

    Antialiased when shrinking (as PIL's bicubic), plain bicubic when enlarging
    (torch ``interpolate``, ``align_corners=False``).
    """
    import torch
    import torch.nn.functional as F

    hw = (size, size) if isinstance(size, int) else tuple(size)
    x = np.asarray(x, dtype=np.float32)
    if x.shape[2:] == hw:
        return x
    t = torch.from_numpy(np.ascontiguousarray(x))
    shrink = hw[0] < x.shape[2] or hw[1] < x.shape[3]
    with torch.no_grad():
        out = F.interpolate(t, size=hw, mode="bicubic", align_corners=False, antialias=shrink)
    return out.numpy()
