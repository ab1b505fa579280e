"""Baseline encoder-decoder CNN (no skip connections): the study's "baseline CNN".

Everything the decoder knows about the image has to pass through the bottleneck at
``H / 2**depth``, so fine detail (edges, where one colour ends and the next starts) is
lost; the U-Net exists to fix exactly that.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias; BatchNorm follows) + BatchNorm + ReLU. ``(B, c_in, H, W) -> (B, c_out, H/stride, W/stride)``."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def output_activation(name: str) -> nn.Module:
    """``none`` (linear ab, the default) or ``tanh`` (ab squashed into -1..1, i.e. ±AB_SCALE)."""
    if name == "none":
        return nn.Identity()
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown output activation {name!r} (choose none or tanh)")


class CNN(nn.Module):
    """Encoder-decoder without skips.

    Args:
        width: channels at full resolution; they double at every down step.
        depth: number of stride-2 down steps (and of up steps); H, W must be multiples of ``2**depth``.
        out_act: ``none`` or ``tanh`` on the predicted (scaled) ab.

    Shapes: ``(B, 1, H, W)`` scaled L (0..1) -> ``(B, 2, H, W)`` scaled ab (about -1..1).
    """

    def __init__(self, width: int = 16, depth: int = 3, out_act: str = "none"):
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be positive, got width={width}, depth={depth}")
        self.arch_kwargs = {"width": width, "depth": depth, "out_act": out_act}
        self.net_stride = 2**depth
        chans = [width * 2**i for i in range(depth + 1)]  # w, 2w, 4w, ... at H, H/2, H/4, ...
        self.stem = conv_bn_relu(1, width)  # (B, 1, H, W) -> (B, w, H, W)
        self.down = nn.ModuleList(
            # step i: (B, w·2^i, H/2^i, W/2^i) -> (B, w·2^(i+1), H/2^(i+1), W/2^(i+1))
            nn.Sequential(conv_bn_relu(chans[i], chans[i + 1], stride=2), conv_bn_relu(chans[i + 1], chans[i + 1]))
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            # step i (deepest first): (B, w·2^(i+1), H/2^(i+1), W/2^(i+1)) -> (B, w·2^i, H/2^i, W/2^i)
            nn.Sequential(
                nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2, bias=False),
                nn.BatchNorm2d(chans[i]),
                nn.ReLU(inplace=True),
                conv_bn_relu(chans[i], chans[i]),
            )
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(width, 2, 1)  # (B, w, H, W) -> (B, 2, H, W)
        self.act = output_activation(out_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, 2, H, W)``."""
        h = self.stem(x)  # (B, w, H, W)
        for down in self.down:
            h = down(h)  # (B, 2C, H'/2, W'/2) from (B, C, H', W')
        # bottleneck: (B, w·2^depth, H/2^depth, W/2^depth)
        for up in self.up:
            h = up(h)  # (B, C/2, 2H', 2W') from (B, C, H', W')
        return self.act(self.head(h))  # (B, 2, H, W)
