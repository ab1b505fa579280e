"""ColorNet: the default colorizer. A U-Net that knows what it looks at, predicts a distribution
over colours as well as one colour, and takes optional user colour points.

Inputs (the net's channels): scaled L, and for hint models a sparse hint map: scaled a, b
where the user (or the training simulation) gave a colour, 0 elsewhere, and a mask that is 1
there (Zhang et al. 2017). With no hint every hint channel is 0: an automatic colorizer.

Three heads on one body:

* **regression** ``(B, 2, H, W)``: scaled ab, trained with L1: the accurate, cautious answer
  (high PSNR, but ambiguous colours average towards brown);
* **colour classes** ``(B, Q, H/s, W/s)``: logits over the Q = 261 in-gamut ab bins, trained
  with class-rebalanced cross-entropy (Zhang et al. 2016; :mod:`chromalab.abbins`): keeps the
  colours that regression averages away;
* **semantic** ``(B, K)``: logits over the K = 200 Tiny ImageNet classes from the pooled
  bottleneck; the pooled global feature is fused back into every bottleneck position
  (Iizuka et al. 2016, "Let there be Color!"), so the decoder knows the scene.

Decoding with a **vividness** ``v`` in [0, 1] (:func:`vivid_decode`): ``v = 0`` is the regression
output; ``v = 1`` the annealed mean of the colour classes at the low temperature ``t_vivid``; in
between, a blend ``(1 - v)·reg + v·annealed(T(v))`` with T going geometrically from ``t_blend``
to ``t_vivid``. The default ``vividness`` and both temperatures are attributes stored with the
weights (chosen on val).

``forward(x)`` keeps the contract of every net here: scaled ``(B, 1, H, W)`` -> scaled ab
``(B, 2, H, W)``; a hint model also accepts ``(B, 4, H, W)`` = L, hint a, hint b, mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..abbins import DEFAULT_BIN_SIZE, gamut_bins
from ..color import AB_SCALE
from .unet import DoubleConv

HINT_CHANNELS = 3
"""Hint a, hint b (scaled ab, 0 where no hint) and the mask (1 where a hint is)."""


def vivid_decode(ab_reg: torch.Tensor, logits: torch.Tensor, centres: torch.Tensor, vividness,
                 t_blend: float, t_vivid: float, out_stride: int) -> torch.Tensor:
    """Heads -> scaled ab ``(B, 2, H, W)`` at vividness ``v`` (see the module notes).

    ``ab_reg`` ``(B, 2, H, W)`` scaled; ``logits`` ``(B, Q, H/s, W/s)``; ``centres`` ``(Q, 2)`` Lab units;
    ``vividness`` a float or a 0-d / ``(1,)`` tensor (an input of the exported ONNX graph). Computed in
    float32; ``v = 0`` gives ``ab_reg`` exactly (``1·reg + 0·classes``).
    """
    if not isinstance(vividness, torch.Tensor):
        v_f = float(vividness)
        if not 0.0 <= v_f <= 1.0:
            raise ValueError(f"vividness must be in [0, 1], got {vividness}")
        if v_f == 0.0:
            return ab_reg.float()
        vividness = torch.tensor(v_f)
    v = vividness.float().reshape(-1)[:1].reshape(1, 1, 1, 1)  # (1, 1, 1, 1)
    log_t = (1.0 - v) * math.log(t_blend) + v * math.log(t_vivid)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        probs = torch.softmax(logits.float() / torch.exp(log_t), dim=1)  # (B, Q, H/s, W/s)
        ab_cls = F.conv2d(probs, centres.float().t().reshape(2, -1, 1, 1)) / AB_SCALE  # (B, 2, H/s, W/s) scaled
        if out_stride > 1:
            ab_cls = F.interpolate(ab_cls, scale_factor=float(out_stride), mode="bilinear", align_corners=False)
        return (1.0 - v) * ab_reg.float() + v * ab_cls  # (B, 2, H, W)


class ColorNet(nn.Module):
    """U-Net body + regression, colour-class and semantic heads; optional hint input.

    Args:
        width, depth: the U-Net body (channels ``width·2^i`` at level i; H, W multiples of ``2**depth``).
        n_classes: semantic classes (200 for Tiny ImageNet; 0: no semantic head, the global
            feature is still fused).
        hints: take the 3 hint channels (L + hints = 4 input channels).
        bin_size: ab bin size of the colour classes (10: Q = 261).
        n_bins: None: compute the in-gamut bins (training); a number: room for the centres a
            weights file fills.
        out_stride: resolution of the class logits, ``H / out_stride`` (1, 2 or 4; Zhang et al. use 4:
            chroma carries little fine detail, and the softmax over Q is the costliest part of a step).
        vividness, t_blend, t_vivid: the decoding defaults (see :func:`vivid_decode`).

    Shapes: ``(B, 1 or 4, H, W)`` -> ab_reg ``(B, 2, H, W)``, logits ``(B, Q, H/s, W/s)``,
    class logits ``(B, K)``.
    """

    centres: torch.Tensor  # (Q, 2) Lab units: a buffer, registered in __init__

    def __init__(self, width: int = 16, depth: int = 4, n_classes: int = 200, hints: bool = True,
                 bin_size: int = DEFAULT_BIN_SIZE, n_bins: int | None = None, out_stride: int = 2,
                 vividness: float = 0.5, t_blend: float = 0.5, t_vivid: float = 0.2):
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be positive, got width={width}, depth={depth}")
        if out_stride not in (1, 2, 4) or out_stride > 2**depth:
            raise ValueError(f"out_stride must be 1, 2 or 4 (and at most 2**depth), got {out_stride}")
        centres = torch.from_numpy(gamut_bins(bin_size)) if n_bins is None else torch.zeros(int(n_bins), 2)
        self.register_buffer("centres", centres)  # (Q, 2) Lab units
        self.hints = bool(hints)
        self.in_channels = 1 + (HINT_CHANNELS if hints else 0)
        self.n_classes = int(n_classes)
        self.out_stride = int(out_stride)
        self.net_stride = 2**depth
        self.vividness, self.t_blend, self.t_vivid = float(vividness), float(t_blend), float(t_vivid)
        self._arch = {"width": width, "depth": depth, "n_classes": self.n_classes, "hints": self.hints,
                      "bin_size": bin_size, "n_bins": len(centres), "out_stride": self.out_stride}
        chans = [width * 2**i for i in range(depth + 1)]
        cb = chans[-1]
        self.stem = DoubleConv(self.in_channels, width)  # (B, C_in, H, W) -> (B, w, H, W)
        self.pool = nn.MaxPool2d(2)
        self.down = nn.ModuleList(DoubleConv(chans[i], chans[i + 1]) for i in range(depth))
        # global branch: (B, cb, h, w) -> mean over h, w -> (B, cb) -> (B, cb)
        self.glob = nn.Sequential(nn.Linear(cb, cb), nn.ReLU(inplace=True))
        self.classify = nn.Linear(cb, self.n_classes) if self.n_classes > 0 else None  # (B, cb) -> (B, K)
        # fusion (Iizuka et al.): concat (B, cb, h, w) local + (B, cb, h, w) broadcast global -> 1x1 conv + ReLU
        # -> (B, cb, h, w). No BatchNorm, so that [identity | 0] weights make it pass the local features through.
        self.fuse = nn.Sequential(nn.Conv2d(2 * cb, cb, 1), nn.ReLU(inplace=True))
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.up = nn.ModuleList(DoubleConv(2 * chans[i], chans[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(width, 2, 1)  # regression (B, w, H, W) -> (B, 2, H, W); named as the U-Net's head
        self.cls_head = nn.Conv2d(width, len(centres), 1)  # (B, w, H/s, W/s) -> (B, Q, H/s, W/s)

    @property
    def arch_kwargs(self) -> dict:
        """Constructor arguments with the current decoding defaults (saved with the weights)."""
        return {**self._arch, "vividness": self.vividness, "t_blend": self.t_blend, "t_vivid": self.t_vivid}

    @property
    def n_bins(self) -> int:
        return int(self.centres.shape[0])

    def with_hint_channels(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, C_in, H, W)``: zero hint channels appended when the net takes hints."""
        if x.shape[1] == self.in_channels:
            return x
        if x.shape[1] == 1 and self.hints:
            zeros = x.new_zeros(x.shape[0], HINT_CHANNELS, x.shape[2], x.shape[3])
            return torch.cat([x, zeros], dim=1)  # (B, 4, H, W)
        raise ValueError(f"expected (B, 1) or (B, {self.in_channels}) input channels, got {tuple(x.shape)}")

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(B, C_in or 1, H, W)`` -> (ab_reg ``(B, 2, H, W)``, logits ``(B, Q, H/s, W/s)``,
        class logits ``(B, K)`` or None)."""
        h = self.stem(self.with_hint_channels(x))  # (B, w, H, W)
        skips = [h]
        for down in self.down:
            h = down(self.pool(h))  # (B, C, H', W') -> (B, 2C, H'/2, W'/2)
            skips.append(h)
        skips.pop()  # the bottleneck (B, cb, H/2^d, W/2^d) is h itself
        g = self.glob(h.float().mean(dim=(2, 3)).to(h.dtype))  # (B, cb)
        cls = self.classify(g) if self.classify is not None else None  # (B, K)
        gmap = g[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])  # (B, cb, h, w)
        h = self.fuse(torch.cat([h, gmap.to(h.dtype)], dim=1))  # (B, 2cb, h, w) -> (B, cb, h, w)
        for upsample, up in zip(self.upsample, self.up, strict=True):
            h = upsample(h)  # (B, C, H', W') -> (B, C/2, 2H', 2W')
            h = up(torch.cat([h, skips.pop()], dim=1))  # (B, C, 2H', 2W') -> (B, C/2, 2H', 2W')
        ab_reg = self.head(h)  # (B, 2, H, W)
        hs = F.avg_pool2d(h, self.out_stride) if self.out_stride > 1 else h  # (B, w, H/s, W/s)
        return ab_reg, self.cls_head(hs), cls

    def decode(self, ab_reg: torch.Tensor, logits: torch.Tensor, vividness=None) -> torch.Tensor:
        """Heads -> scaled ab ``(B, 2, H, W)`` at ``vividness`` (a float or tensor; None: the stored default)."""
        v = self.vividness if vividness is None else vividness
        return vivid_decode(ab_reg, logits, self.centres, v, self.t_blend, self.t_vivid, self.out_stride)

    def forward(self, x: torch.Tensor, vividness=None) -> torch.Tensor:
        """``(B, 1 or C_in, H, W)`` scaled -> ``(B, 2, H, W)`` scaled ab at ``vividness`` (None: the stored one)."""
        ab_reg, logits, _ = self.heads(x)
        return self.decode(ab_reg, logits, vividness)
