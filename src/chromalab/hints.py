"""Colour hints: the sparse (a, b) points a hint model takes, simulated or given by a user.

A hint map is two tensors at the net's working size:

* ``hint_ab`` ``(B, 2, H, W)``: scaled ab (``color.scale_ab``) where a hint is, 0 elsewhere;
* ``mask`` ``(B, 1, H, W)``: 1 where a hint is, 0 elsewhere.

:func:`simulate_hints` makes them from the true ab, as Zhang et al. 2017 trained their
user-guided net: a geometric number of points (some images get none), locations drawn from a
Gaussian around the image centre, each a small square patch (1x1, 3x3 or 5x5) painted with the
mean true ab of that patch. :func:`rasterize_points` paints user points (already in working-size
pixel coordinates, ab in Lab units).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from .color import scale_ab

MAX_HINTS = 512
"""The most colour points one image may carry (CLI, API, web)."""
PATCH_RADII = (0, 1, 2)
"""Simulated patches are (2r+1) x (2r+1) for r drawn uniformly from these."""
USER_RADIUS = 1
"""A user point paints a 3x3 patch of the working-size hint map."""


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


def rasterize_points(points, h: int, w: int, radius: int = USER_RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """User points ``[(x, y, a, b), ...]`` (working-size pixel coordinates, float; ab in Lab units)
    -> (hint_ab ``(1, 2, h, w)`` scaled, mask ``(1, 1, h, w)``). Later points paint over earlier ones."""
    hint = torch.zeros(1, 2, h, w)
    mask = torch.zeros(1, 1, h, w)
    for x, y, a, b in points:
        cx = min(max(int(round(float(x) - 0.5)), 0), w - 1)  # pixel centres at integer + 0.5
        cy = min(max(int(round(float(y) - 0.5)), 0), h - 1)
        y0, y1 = max(cy - radius, 0), min(cy + radius + 1, h)
        x0, x1 = max(cx - radius, 0), min(cx + radius + 1, w)
        hint[0, 0, y0:y1, x0:x1] = float(scale_ab(torch.tensor(float(a))))
        hint[0, 1, y0:y1, x0:x1] = float(scale_ab(torch.tensor(float(b))))
        mask[0, 0, y0:y1, x0:x1] = 1.0
    return hint, mask
