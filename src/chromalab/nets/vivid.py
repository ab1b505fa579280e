"""The vivid net: a U-Net body that classifies every pixel over quantized ab, decoded by annealed mean.

``forward`` keeps the contract of the other nets (scaled L ``(B, 1, H, W)`` -> scaled ab
``(B, 2, H, W)``), so the predictor, evaluation, ONNX export and the web page use it as they
use any net; ``logits`` gives the ``(B, Q, H/s, W/s)`` class scores training needs.

The class scores are predicted at half resolution by default (``out_stride`` s = 2: the
U-Net's full-resolution logits averaged over 2x2 blocks, computed as the 1x1 head on the
averaged features), and the decoded ab is upsampled back bilinearly. Chroma carries little
fine detail (the output keeps the input's full-resolution L, and inference upsamples ab to
the photo's size anyway), while the softmax over Q = 261 classes is the costliest part of a
training step on a CPU: at full resolution a step cost about 3.8x a plain U-Net's (bf16, one
thread, batch 32), at half resolution 1.75x. Zhang et al. predict at a quarter resolution.

The bin centres are a buffer (``centres``, ``(Q, 2)`` Lab units), saved with the weights, so a
weights file decodes without the data or the gamut computation. ``temperature`` (T of the
annealed mean) is a plain attribute: set it to change the decoding of a trained net; a file
saved afterwards (``predictors.nets.save_net``) records it as its default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..abbins import DEFAULT_BIN_SIZE, DEFAULT_TEMPERATURE, decode_scaled, gamut_bins
from .unet import UNet


class VividNet(nn.Module):
    """U-Net with ``Q`` output channels (one logit per in-gamut ab bin) + annealed-mean decoding.

    Args:
        width, depth, residual: the U-Net body (see :class:`UNet`).
        bin_size: ab bin size in Lab units (10: Q = 261 in-gamut bins).
        temperature: default T of the annealed mean (0.38).
        n_bins: None: compute the in-gamut bins for ``bin_size`` (training); a number: make
            room for that many centres, to be filled by ``load_state_dict`` (loading a file).
        out_stride: the logits' resolution is ``H / out_stride`` (1 or 2; must divide ``2**depth``).

    Shapes (s = out_stride): ``(B, 1, H, W)`` scaled L -> logits ``(B, Q, H/s, W/s)`` -> scaled ab
    ``(B, 2, H, W)``.
    """

    centres: torch.Tensor  # (Q, 2) Lab units: a buffer, registered in __init__

    def __init__(self, width: int = 16, depth: int = 3, residual: bool = False, bin_size: int = DEFAULT_BIN_SIZE,
                 temperature: float = DEFAULT_TEMPERATURE, n_bins: int | None = None, out_stride: int = 2):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if out_stride not in (1, 2):
            raise ValueError(f"out_stride must be 1 or 2, got {out_stride}")
        centres = torch.from_numpy(gamut_bins(bin_size)) if n_bins is None else torch.zeros(int(n_bins), 2)
        q = len(centres)
        self.body = UNet(width=width, depth=depth, residual=residual, out_channels=q)  # (B,1,H,W) -> (B,Q,H,W)
        self.register_buffer("centres", centres)  # (Q, 2) Lab units
        self.temperature = float(temperature)
        self.out_stride = int(out_stride)
        self.net_stride = self.body.net_stride
        self._arch = {"width": width, "depth": depth, "residual": residual, "bin_size": bin_size, "n_bins": q,
                      "out_stride": self.out_stride}

    @property
    def arch_kwargs(self) -> dict:
        """The constructor arguments, with the current ``temperature`` (saved as the file's default T)."""
        return {**self._arch, "temperature": self.temperature}

    @property
    def n_bins(self) -> int:
        return int(self.centres.shape[0])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` scaled L -> ``(B, Q, H/s, W/s)`` class scores."""
        h = self.body.features(x)  # (B, w, H, W)
        if self.out_stride > 1:  # averaging before the (linear) 1x1 head = averaging the logits, 16x cheaper
            h = F.avg_pool2d(h, self.out_stride)  # (B, w, H/s, W/s)
        return self.body.head(h)  # (B, Q, H/s, W/s)

    def decode(self, logits: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """``(B, Q, H/s, W/s)`` logits -> ``(B, 2, H, W)`` scaled ab (annealed mean, float32; upsampled
        bilinearly when s = 2)."""
        ab = decode_scaled(logits, self.centres, self.temperature if temperature is None else temperature)
        if self.out_stride > 1:
            ab = F.interpolate(ab, scale_factor=self.out_stride, mode="bilinear", align_corners=False)
        return ab  # (B, 2, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, 2, H, W)`` scaled ab."""
        return self.decode(self.logits(x))
