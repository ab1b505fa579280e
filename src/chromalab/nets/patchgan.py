"""PatchGAN discriminator (pix2pix), sized for 64x64 images.

It judges (L, ab) pairs: the input L with the true or the generated ab, concatenated in the
nets' scaled units, and answers one logit per overlapping patch (real: high, fake: low).

Layout for a 64x64 input with ``width`` w (pix2pix's "C64-C128-C256" at w = 64), every conv
4x4, LeakyReLU(0.2) after all but the last, no normalization on the first layer:

====================  =========================  ===============================
layer                 output                     receptive field (pixels)
====================  =========================  ===============================
input                 ``(B, 3, 64, 64)``
C(w),  stride 2       ``(B, w, 32, 32)``         4
C(2w), stride 2, IN   ``(B, 2w, 16, 16)``        10
C(4w), stride 1, IN   ``(B, 4w, 15, 15)``        22
conv -> 1, stride 1   ``(B, 1, 14, 14)`` logits  34
====================  =========================  ===============================

(The receptive field is the convolutions'; instance norm adds only per-image statistics.)
So 14x14 logits, each judging a 34x34 patch (about half the image; pix2pix's 70x70 patches
on 256x256 images are about a quarter): enough context to tell a plausible colour of a
region, still local enough to push on texture-scale colour rather than global layout,
which the L1 term already handles.

Normalization: **InstanceNorm** (no affine parameters, no running statistics). BatchNorm, as in
the original, would normalize the all-real and the all-fake batches separately, letting the
discriminator read the batch statistics; spectral norm adds power-iteration buffers that every
forward pass (including the generator's step) updates. Instance norm has neither problem, is
one of pix2pix's own options, and makes the network stateless apart from its weights.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, stride: int, norm: bool) -> nn.Sequential:
    """4x4 conv (+ InstanceNorm) + LeakyReLU(0.2). ``(B, c_in, H, W) -> (B, c_out, H', W')``,
    ``H' = H/2`` for stride 2 and ``H - 1`` for stride 1 (padding 1)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.InstanceNorm2d(c_out, affine=False, track_running_stats=False))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class PatchGAN(nn.Module):
    """Discriminator: scaled L ``(B, 1, H, W)`` + scaled ab ``(B, 2, H, W)`` -> logits ``(B, 1, H/4 - 2, W/4 - 2)``.

    Args:
        width: channels of the first layer (64 in pix2pix); then 2w and 4w.

    Weights start as pix2pix's: N(0, 0.02) for the convolutions, zero biases.
    """

    def __init__(self, width: int = 64):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.arch_kwargs = {"width": width}
        w = width
        self.layers = nn.Sequential(
            _block(3, w, stride=2, norm=False),  # (B, 3, 64, 64) -> (B, w, 32, 32)
            _block(w, 2 * w, stride=2, norm=True),  # -> (B, 2w, 16, 16)
            _block(2 * w, 4 * w, stride=1, norm=True),  # -> (B, 4w, 15, 15)
            nn.Conv2d(4 * w, 1, 4, stride=1, padding=1),  # -> (B, 1, 14, 14) logits
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, L_scaled: torch.Tensor, ab_scaled: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)``, ``(B, 2, H, W)`` -> ``(B, 1, H', W')`` patch logits (14x14 for 64x64)."""
        x = torch.cat([L_scaled, ab_scaled.to(L_scaled.dtype)], dim=1)  # (B, 3, H, W)
        return self.layers(x)
