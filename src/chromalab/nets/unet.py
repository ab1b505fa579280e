"""U-Net with skip connections; width, depth and residual blocks configurable.

With ``residual=True`` every double-conv block gets an identity (or 1x1-projected)
shortcut: the study's "enhanced" U-Net.
"""

from __future__ import annotations

import torch
from torch import nn

from .cnn import output_activation


class DoubleConv(nn.Module):
    """(3x3 conv, BN, ReLU) x 2, optionally residual. ``(B, c_in, H, W) -> (B, c_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, residual: bool = False):
        super().__init__()
        self.residual = residual
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.proj = None
        if residual and c_in != c_out:
            self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        if self.residual:
            h = h + (x if self.proj is None else self.proj(x))
        return self.relu(h)


class UNet(nn.Module):
    """U-Net: encoder (max-pool + double conv), decoder (2x2 transposed conv, concat skip, double conv).

    Args:
        width: channels at full resolution; they double at every level down.
        depth: number of down (and up) steps; H, W must be multiples of ``2**depth``.
        residual: residual double-conv blocks (the "enhanced" U-Net).
        out_act: ``none`` or ``tanh`` on the predicted (scaled) ab.
        out_channels: channels of the head; 2 (scaled ab, the default) for every regression net;
            the vivid model uses the same body with one logit per ab bin (``Q`` channels).

    Shapes: ``(B, 1, H, W)`` scaled L (0..1) -> ``(B, out_channels, H, W)``: scaled ab (about -1..1)
    when ``out_channels == 2``. Level i has ``w·2^i`` channels at ``(H/2^i, W/2^i)``.
    """

    def __init__(self, width: int = 16, depth: int = 3, residual: bool = False, out_act: str = "none",
                 out_channels: int = 2):
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be positive, got width={width}, depth={depth}")
        if out_channels < 1:
            raise ValueError(f"out_channels must be positive, got {out_channels}")
        self.arch_kwargs = {"width": width, "depth": depth, "residual": residual, "out_act": out_act}
        if out_channels != 2:  # the default stays out, so existing weights files' metadata is unchanged
            self.arch_kwargs["out_channels"] = out_channels
        self.net_stride = 2**depth
        chans = [width * 2**i for i in range(depth + 1)]
        self.stem = DoubleConv(1, width, residual)  # (B, 1, H, W) -> (B, w, H, W)
        self.pool = nn.MaxPool2d(2)
        # down step i: pool (B, w·2^i, H/2^i, W/2^i) -> (B, w·2^i, H/2^(i+1), W/2^(i+1)),
        #              conv -> (B, w·2^(i+1), H/2^(i+1), W/2^(i+1))
        self.down = nn.ModuleList(DoubleConv(chans[i], chans[i + 1], residual) for i in range(depth))
        # up step i (deepest first): transposed conv (B, w·2^(i+1), H/2^(i+1), W/2^(i+1)) -> (B, w·2^i, H/2^i, W/2^i),
        #              concat skip i -> (B, w·2^(i+1), H/2^i, W/2^i), conv -> (B, w·2^i, H/2^i, W/2^i)
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.up = nn.ModuleList(DoubleConv(2 * chans[i], chans[i], residual) for i in reversed(range(depth)))
        self.head = nn.Conv2d(width, out_channels, 1)  # (B, w, H, W) -> (B, out_channels, H, W)
        self.act = output_activation(out_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, out_channels, H, W)`` (``(B, 2, H, W)`` by default)."""
        return self.act(self.head(self.features(x)))  # (B, out_channels, H, W)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, w, H, W)``: the last decoder block's output, before the 1x1 head."""
        h = self.stem(x)  # (B, w, H, W)
        skips = [h]
        for down in self.down:
            h = down(self.pool(h))  # (B, C, H', W') -> (B, C, H'/2, W'/2) -> (B, 2C, H'/2, W'/2)
            skips.append(h)
        skips.pop()  # the bottleneck (B, w·2^depth, H/2^depth, W/2^depth) is h itself
        for upsample, up in zip(self.upsample, self.up, strict=True):
            h = upsample(h)  # (B, C, H', W') -> (B, C/2, 2H', 2W')
            h = torch.cat([h, skips.pop()], dim=1)  # + skip (B, C/2, 2H', 2W') -> (B, C, 2H', 2W')
            h = up(h)  # (B, C, 2H', 2W') -> (B, C/2, 2H', 2W')
        return h  # (B, w, H, W)
