"""Regression losses on the network's scaled ab.

Every loss is called as ``loss(pred, target, L)``:

* ``pred``, ``target``: ``(B, 2, H, W)`` scaled ab (``color.scale_ab``: Lab units / AB_SCALE, about -1..1);
* ``L``: ``(B, 1, H, W)`` Lab L in 0..100 (only the SSIM term uses it);

and returns a scalar tensor (mean over the batch).

Losses:

* ``mse``: mean((pred - target)²).
* ``l1``: mean(|pred - target|).
* ``hybrid``: α·MSE + β·L1, defaults α = β = 0.5 (an even average of the two, so the loss
  stays on the scale of its parts and the same learning rate works for all three).
* ``ssim-hybrid``: α·L1 + β·MSE + γ·(1 − SSIM), defaults α = β = 0.5, γ = 1.0. The SSIM is
  the canonical one (``metrics.ssim_per_image``: uniform 7x7 window, K1 = 0.01, K2 = 0.03,
  sample covariance, valid region, mean over channels) computed in torch, differentiably, on
  the sRGB images in 0..1 that the predicted and the true ab make with the input L
  (``color.lab_to_rgb_torch``, kornia, clipped to the gamut). So the loss pushes on the very
  number the tables report, short of the final rounding to uint8. kornia's own ``ssim`` uses a
  Gaussian 11x11 window, a different number from the one we report; this one is tested equal to
  the canonical metric.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..color import lab_to_rgb_torch, unscale_ab
from ..errors import ChromalabError


def ssim_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 7) -> torch.Tensor:
    """Differentiable SSIM per image, equal to ``metrics.ssim_per_image`` on the same (float) images.

    The five local means (x, y, x², y², xy over the uniform ``win_size`` window, valid region)
    come from one separable depthwise convolution, about 2x faster on CPU than ``avg_pool2d``.

    Args:
        x, y: ``(B, C, H, W)`` float images, values in ``0..data_range``; H, W >= ``win_size``.
    Returns:
        ``(B,)`` SSIM, the mean over the valid region of the SSIM map and over channels.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"images {tuple(x.shape[-2:])} are smaller than the {win_size}x{win_size} window")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    npix = win_size * win_size
    cov_norm = npix / (npix - 1)
    c = x.shape[1]
    z = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5C, H, W)
    k = torch.full((5 * c, 1, 1, win_size), 1.0 / win_size, dtype=z.dtype, device=z.device)
    m = F.conv2d(F.conv2d(z, k, groups=5 * c), k.transpose(2, 3), groups=5 * c)  # (B, 5C, H-w+1, W-w+1)
    ux, uy, uxx, uyy, uxy = m.split(c, dim=1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1)


def lab_to_rgb01(L: torch.Tensor, ab_scaled: torch.Tensor) -> torch.Tensor:
    """L ``(B, 1, H, W)`` Lab units + scaled ab ``(B, 2, H, W)`` -> sRGB ``(B, 3, H, W)`` in 0..1 (kornia, clipped)."""
    lab = torch.cat([L.float(), unscale_ab(ab_scaled.float())], dim=1)
    return lab_to_rgb_torch(lab, clip=True)


class _Loss(nn.Module):
    """Computes in float32 with autocast off (bf16 would wreck the SSIM variances), whatever the precision."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, L: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return self.compute(pred.float(), target.float(), None if L is None else L.float())

    def compute(self, p: torch.Tensor, t: torch.Tensor, L: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


class MSELoss(_Loss):
    """mean((pred - target)²) on scaled ab."""

    def compute(self, p, t, L):
        return F.mse_loss(p, t)


class L1Loss(_Loss):
    """mean(|pred - target|) on scaled ab."""

    def compute(self, p, t, L):
        return F.l1_loss(p, t)


class HybridLoss(_Loss):
    """α·MSE + β·L1 on scaled ab (defaults α = β = 0.5)."""

    def __init__(self, alpha: float = 0.5, beta: float = 0.5):
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)

    def compute(self, p, t, L):
        return self.alpha * F.mse_loss(p, t) + self.beta * F.l1_loss(p, t)


class SSIMHybridLoss(_Loss):
    """α·L1 + β·MSE (scaled ab) + γ·(1 − SSIM) (sRGB of L + ab, canonical SSIM). Defaults 0.5, 0.5, 1.0."""

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, gamma: float = 1.0):
        super().__init__()
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)

    def compute(self, p, t, L):
        if L is None:
            raise ValueError("ssim-hybrid needs the input L to rebuild the sRGB image")
        rgb_pred = lab_to_rgb01(L, p)
        with torch.no_grad():
            rgb_true = lab_to_rgb01(L, t)
        ssim = ssim_torch(rgb_pred, rgb_true, data_range=1.0).mean()
        return self.alpha * F.l1_loss(p, t) + self.beta * F.mse_loss(p, t) + self.gamma * (1.0 - ssim)


LOSSES: dict[str, type[nn.Module]] = {
    "mse": MSELoss,
    "l1": L1Loss,
    "hybrid": HybridLoss,
    "ssim-hybrid": SSIMHybridLoss,
}


def build_loss(name: str, **weights) -> nn.Module:
    """A loss by name; ``weights`` (alpha/beta/gamma) override the documented defaults."""
    if name not in LOSSES:
        raise ChromalabError(f"unknown loss {name!r} (choose from {', '.join(LOSSES)})")
    try:
        return LOSSES[name](**weights)
    except TypeError:
        raise ChromalabError(f"loss {name!r} does not take weights {sorted(weights)}") from None
