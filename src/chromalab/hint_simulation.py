"""Colour hints simulated from the true colours, as Zhang et al. 2017 trained their user-guided net.

A geometric number of points per image (some images get none), locations drawn from a Gaussian
around the image centre, each a small square patch (1x1, 3x3 or 5x5) painted with the mean true
ab of that patch. Used by training (:mod:`chromalab.training.colornet`) and by ``evaluate --hints N``
(:mod:`chromalab.predictors.hinted`). The output is the net's hint input (:mod:`chromalab.hints`):
``hint_ab`` ``(B, 2, H, W)`` scaled ab under the mask, ``mask`` ``(B, 1, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .color import scale_ab

PATCH_RADII = (0, 1, 2)
"""Simulated patches are (2r+1) x (2r+1) for r drawn uniformly from these."""


def _patch_means(ab: torch.Tensor) -> dict[int, torch.Tensor]:
    """ab ``(B, 2, H, W)`` -> {r: mean of ab over the (2r+1)² patch around each pixel, ``(B, 2, H, W)``}."""
    out = {}
    for r in PATCH_RADII:
        out[r] = ab if r == 0 else F.avg_pool2d(ab, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return out


def sample_counts(batch: int, p_none: float, p_geom: float, max_points: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Points per image ``(B,)`` int64: 0 with probability ``p_none``, else ``1 + Geometric(p_geom)``
    (mean ``1/p_geom``), capped at ``max_points``."""
    u = torch.rand(batch, generator=generator)
    g = torch.rand(batch, generator=generator).clamp_min(1e-12)
    geom = torch.floor(torch.log(g) / torch.log1p(torch.tensor(-p_geom))).long()  # failures before a success
    n = (1 + geom).clamp(max=max_points)
    return torch.where(u < p_none, torch.zeros_like(n), n)


def simulate_hints(ab: torch.Tensor, counts: torch.Tensor,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """True ab ``(B, 2, H, W)`` (Lab units) and points per image ``(B,)`` -> (hint_ab, mask).

    Locations ~ N(centre, (size/4)²) per axis, rounded and clipped into the image; the patch
    radius r is uniform over :data:`PATCH_RADII`; the patch gets the mean true ab over it.
    Random numbers come from ``generator`` on the CPU (reproducible), whatever ab's device.
    """
    b, _, h, w = ab.shape
    device = ab.device
    hint = torch.zeros(b, 2, h, w, device=device)
    mask = torch.zeros(b, 1, h, w, device=device)
    p = int(counts.max()) if len(counts) else 0
    if p == 0:
        return hint, mask
    ys = (h / 2 + torch.randn(b, p, generator=generator) * h / 4).round().clamp(0, h - 1).long()  # (B, P)
    xs = (w / 2 + torch.randn(b, p, generator=generator) * w / 4).round().clamp(0, w - 1).long()
    rs = torch.randint(0, len(PATCH_RADII), (b, p), generator=generator)
    active = torch.arange(p)[None, :] < counts[:, None].cpu()  # (B, P)
    means = _patch_means(ab.float())
    bi = torch.arange(b)[:, None].expand(b, p)  # (B, P)
    val = torch.zeros(b, p, 2, device=device)
    for k, r in enumerate(PATCH_RADII):
        sel = rs == k
        v = means[r][bi[sel].to(device), :, ys[sel].to(device), xs[sel].to(device)]  # (n_sel, 2)
        val[sel.to(device)] = v
    rmax = max(PATCH_RADII)
    for dy in range(-rmax, rmax + 1):
        for dx in range(-rmax, rmax + 1):
            radius = torch.tensor(PATCH_RADII)[rs]  # (B, P)
            yy, xx = ys + dy, xs + dx
            ok = active & (radius >= max(abs(dy), abs(dx))) & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            if not ok.any():
                continue
            bb, yy, xx, okd = bi[ok].to(device), yy[ok].to(device), xx[ok].to(device), ok.to(device)
            hint[bb, :, yy, xx] = val[okd]
            mask[bb, 0, yy, xx] = 1.0
    return scale_ab(hint) * mask, mask
