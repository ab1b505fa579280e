"""Quantized ab space for the vivid model (colorization as classification, after Zhang et al. 2016).

* :func:`gamut_bins`: the bin centres ``(Q, 2)``: grid points ``(k·s, l·s)`` (``s`` = bin size,
  10 by default; a, b in ``[-AB_SCALE, AB_SCALE]``) whose cell ``[c - s/2, c + s/2)²`` holds
  the (a, b) of at least one 8-bit sRGB colour (at its own L). Computed from colour maths
  alone: all 256³ colours through ``color.rgb_uint8_to_lab_fast`` (about 1 s, cached per
  process), no data. With ``s = 10``: **Q = 261** bins.
* :class:`SoftEncoder`: ab ``(B, 2, H, W)`` -> the ``k`` nearest bins ``(B, k, H, W)`` and their
  Gaussian weights (σ = 5 ab units by default), which sum to 1 per pixel. A look-up table on
  a 1-unit ab grid makes it a gather, not a ``(pixels x Q)`` distance matrix per batch.
* :func:`bin_histogram`, :func:`smooth_prior`, :func:`rebalance_weights`: the class
  rebalancing. ``p``: bin frequencies of the training pixels; ``p̃``: ``p`` smoothed with a
  Gaussian kernel (σ = 5) between bin centres; ``w ∝ 1 / ((1 - λ)·p̃ + λ/Q)`` (λ = 0.5),
  scaled so that ``Σ_q p̃_q·w_q = 1``: the expected weight of a training pixel is 1, so the
  weighted loss stays on the scale of the plain one, and rare (saturated) colours weigh more.
* :func:`annealed_mean`: decoding. The annealed distribution of Zhang et al. is
  ``f_T(z) = exp(log z / T) / Σ exp(log z / T)`` with ``z = softmax(logits)``; since
  ``log z = logits - logsumexp(logits)``, the constant cancels and ``f_T(z) = softmax(logits / T)``
  exactly, so that is what is computed (stable in float32 even for T = 1e-3). The predicted ab
  is ``E_{f_T}[centre]``: T = 1 gives the plain mean (desaturated, but smooth), T -> 0 the
  mode's centre (vivid, but patchy); T = 0.38 is their compromise.

Shapes follow the project: ab ``(B, 2, H, W)`` in Lab units; logits / probabilities
``(B, Q, H, W)``; centres ``(Q, 2)`` in Lab units.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .color import AB_SCALE, rgb_uint8_to_lab_fast, scale_ab

DEFAULT_BIN_SIZE = 10
DEFAULT_SIGMA = 5.0
DEFAULT_LAMBDA = 0.5
DEFAULT_TEMPERATURE = 0.38
DEFAULT_NEIGHBOURS = 5
_LUT_RANGE = 120  # the look-up table covers integer a, b in [-120, 120]; sRGB ab stays within about ±110


@lru_cache(maxsize=4)
def _gamut_bins_np(bin_size: int) -> np.ndarray:
    half = int(round(AB_SCALE / bin_size))
    n = 2 * half + 1
    occupied = np.zeros((n, n), dtype=bool)
    v = np.arange(256, dtype=np.uint8)
    g, b = np.meshgrid(v, v, indexing="ij")
    for r in range(256):  # one plane of 256x256 colours at a time: ~13 MB of Lab, not 200 MB
        rgb = np.stack([np.full_like(g, r), g, b], axis=-1)  # (256, 256, 3) uint8
        lab = rgb_uint8_to_lab_fast(rgb)  # (256, 256, 3)
        ia = np.clip(np.rint(lab[..., 1] / bin_size).astype(np.int64) + half, 0, n - 1)
        ib = np.clip(np.rint(lab[..., 2] / bin_size).astype(np.int64) + half, 0, n - 1)
        occupied[ia.ravel(), ib.ravel()] = True
    ka, kb = np.nonzero(occupied)  # row-major: sorted by a, then b
    centres = np.stack([(ka - half) * bin_size, (kb - half) * bin_size], axis=1).astype(np.float32)
    centres.setflags(write=False)
    return centres


def gamut_bins(bin_size: int = DEFAULT_BIN_SIZE) -> np.ndarray:
    """In-gamut ab bin centres ``(Q, 2)`` float32 (Lab units), sorted by a then b. Q = 261 for size 10."""
    if not isinstance(bin_size, int) or bin_size < 1:
        raise ValueError(f"bin size must be a positive integer, got {bin_size!r}")
    return _gamut_bins_np(bin_size).copy()


def _as_tensor(x, dtype=torch.float32) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=dtype)


class SoftEncoder:
    """ab -> the ``k`` nearest bin centres and Gaussian weights, by look-up table.

    The table holds, for every integer (a, b) in ``[-120, 120]²``, the indices of the ``k``
    nearest centres (nearest first) and the weights ``exp(-d²/(2σ²))`` normalised to sum 1.
    A pixel's ab is rounded to the nearest integer (and clipped into the table) first: at
    σ = 5 that moves a weight by at most about 10 %, and the nearest bin only at a cell border.

    Args:
        centres: ``(Q, 2)`` bin centres in Lab units.
        k: neighbours per pixel (5, as Zhang et al.).
        sigma: Gaussian width in ab units.
    """

    def __init__(self, centres, k: int = DEFAULT_NEIGHBOURS, sigma: float = DEFAULT_SIGMA):
        c = _as_tensor(centres, torch.float64)
        if c.ndim != 2 or c.shape[1] != 2 or len(c) < 1:
            raise ValueError(f"centres must be (Q, 2), got {tuple(c.shape)}")
        if not 1 <= k <= len(c):
            raise ValueError(f"k must be in 1..{len(c)}, got {k}")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.k, self.sigma, self.n_bins = int(k), float(sigma), len(c)
        r = _LUT_RANGE
        g = torch.arange(-r, r + 1, dtype=torch.float64)
        grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), dim=-1).reshape(-1, 2)  # ((2r+1)², 2)
        d2k, idx = [], []
        for s in range(0, len(grid), 8192):  # in chunks: (8192, Q) distances at a time
            d2 = torch.cdist(grid[s : s + 8192], c).pow(2)
            d, i = torch.topk(d2, self.k, dim=1, largest=False, sorted=True)  # nearest first
            d2k.append(d)
            idx.append(i)
        d2k_t, idx_t = torch.cat(d2k), torch.cat(idx)  # ((2r+1)², k)
        w = torch.exp(-(d2k_t - d2k_t[:, :1]) / (2 * self.sigma**2))  # shifted by the nearest: no underflow
        self.lut_idx = idx_t.to(torch.int64)  # ((2r+1)², k)
        self.lut_w = (w / w.sum(dim=1, keepdim=True)).to(torch.float32)  # ((2r+1)², k)

    def to(self, device) -> SoftEncoder:
        self.lut_idx = self.lut_idx.to(device)
        self.lut_w = self.lut_w.to(device)
        return self

    def _cells(self, ab: torch.Tensor) -> torch.Tensor:
        if ab.ndim != 4 or ab.shape[1] != 2:
            raise ValueError(f"ab must be (B, 2, H, W), got {tuple(ab.shape)}")
        r = _LUT_RANGE
        ia = torch.round(ab[:, 0].float()).clamp(-r, r).long() + r  # (B, H, W)
        ib = torch.round(ab[:, 1].float()).clamp(-r, r).long() + r
        return ia * (2 * r + 1) + ib  # (B, H, W) row of the table

    def encode(self, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ab ``(B, 2, H, W)`` Lab units -> (bin indices ``(B, k, H, W)`` int64, nearest first;
        weights ``(B, k, H, W)`` float32 summing to 1 over k)."""
        cell = self._cells(ab)
        idx = self.lut_idx[cell].permute(0, 3, 1, 2)  # (B, H, W, k) -> (B, k, H, W)
        w = self.lut_w[cell].permute(0, 3, 1, 2)
        return idx, w

    def nearest(self, ab: torch.Tensor) -> torch.Tensor:
        """ab ``(B, 2, H, W)`` -> the nearest bin ``(B, H, W)`` int64."""
        return self.lut_idx[self._cells(ab), 0]

    def dense(self, ab: torch.Tensor) -> torch.Tensor:
        """The soft-encoded target as a distribution over all bins ``(B, Q, H, W)`` (tests, small inputs)."""
        idx, w = self.encode(ab)
        out = torch.zeros(ab.shape[0], self.n_bins, *ab.shape[2:], dtype=torch.float32, device=ab.device)
        return out.scatter_add_(1, idx, w)


def nearest_bin(ab, centres) -> np.ndarray:
    """Exact nearest centre of each ab pair: ``(N, 2)`` -> ``(N,)`` int64 (brute force; for tests and small N)."""
    a = _as_tensor(ab, torch.float64).reshape(-1, 2)
    return torch.cdist(a, _as_tensor(centres, torch.float64)).argmin(dim=1).numpy()


def bin_histogram(ab_batches, encoder: SoftEncoder) -> np.ndarray:
    """Counts of the nearest bin over ab batches (each ``(B, 2, H, W)`` array or tensor) -> ``(Q,)`` float64."""
    counts = torch.zeros(encoder.n_bins, dtype=torch.float64)
    for ab in ab_batches:
        q = encoder.nearest(_as_tensor(ab)).reshape(-1)
        counts += torch.bincount(q, minlength=encoder.n_bins).double()
    return counts.numpy()


def smooth_prior(counts, centres, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """Bin frequencies smoothed with a Gaussian kernel between centres: ``(Q,)`` -> ``(Q,)`` summing to 1."""
    p = np.asarray(counts, dtype=np.float64)
    if p.sum() <= 0:
        raise ValueError("the bin histogram is empty")
    p = p / p.sum()
    c = np.asarray(centres, dtype=np.float64)
    d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)  # (Q, Q)
    k = np.exp(-d2 / (2 * sigma**2))
    ps = k @ p
    return ps / ps.sum()


def rebalance_weights(p_smooth, lam: float = DEFAULT_LAMBDA) -> np.ndarray:
    """Class weights ``w ∝ 1 / ((1 - λ)·p̃ + λ/Q)``, scaled so that ``Σ p̃·w = 1``. ``(Q,)`` -> ``(Q,)`` float64."""
    p = np.asarray(p_smooth, dtype=np.float64)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    w = 1.0 / ((1.0 - lam) * p + lam / len(p))
    return w / float((p * w).sum())


def annealed_mean(logits: torch.Tensor, centres: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """Logits ``(B, Q, H, W)`` -> ab ``(B, 2, H, W)`` (the units of ``centres``, ``(Q, 2)``).

    ``softmax(logits / T)`` (= the annealed ``f_T`` of the softmax, see the module notes), then
    the expectation of the bin centre: a 1x1 convolution with the centres as its weights (ONNX-
    and channels-last-friendly). Computed in float32 with autocast off.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        probs = torch.softmax(logits.float() / float(temperature), dim=1)  # (B, Q, H, W)
        weight = centres.float().t().reshape(2, -1, 1, 1)  # (2, Q, 1, 1)
        return F.conv2d(probs, weight)  # (B, 2, H, W)


def decode_scaled(logits: torch.Tensor, centres: torch.Tensor, temperature: float) -> torch.Tensor:
    """:func:`annealed_mean` in the nets' scaled ab units (``color.scale_ab``)."""
    return scale_ab(annealed_mean(logits, centres, temperature))
