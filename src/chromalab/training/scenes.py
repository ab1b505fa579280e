"""Scene-like training batches: what a 64-px Tiny ImageNet crop is not, and a real photo is.

A Tiny ImageNet image is one object, centred, filling the frame, saved as a small JPEG. A user's
photo scaled to the working size is a whole scene: several things, each small, from sharp to
blurred, with grain, JPEG blocks or an old print's tone curve. :func:`scene_batch` turns a
training batch into such inputs, on the fly and per image (all in Lab units):

* **mosaic** (probability ``p_mosaic``): the frame is cut at a random point into four rectangles
  (each side at least :data:`MIN_TILE` px), and each is filled with a *different* image of the
  batch, resized to it (area filter), L and ab alike. The class target becomes the mixture of
  the four labels weighted by area, so the scene head learns to be unsure when a frame holds
  several things instead of pushing one class's colour over all of it.
* **zoom** (``p_zoom``): a random crop of 50-100 % of the side, resized back (objects larger
  than the frame, softer detail).
* degradations of the **input L only** (the targets stay the true ab, the output keeps the
  input's L): **blur** (``p_blur``: Gaussian, sigma 0.4-1.5 px), **grain** (``p_noise``:
  Gaussian noise, sigma 1-5 L units), **JPEG** (``p_jpeg``: 8-bit gray L re-encoded at quality
  25-90) and **tone** (``p_tone``: L -> 100·(L/100)^gamma, gamma 0.7-1.4: faded or contrasty prints).

With every probability 0 the batch passes through unchanged (the earlier training).

Shapes: L ``(B, 1, S, S)``, ab ``(B, 2, S, S)`` Lab units; labels ``(B,)`` int64 (-1: none); the
returned class target is ``(B, K)`` probabilities.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..color import L_MAX

MIN_TILE = 12
"""Smallest side of a mosaic rectangle, px (of a 64-px frame)."""


@dataclass(frozen=True)
class SceneAug:
    """Probabilities of each transform (per image). All 0: no change."""

    p_mosaic: float = 0.0
    p_zoom: float = 0.0
    p_blur: float = 0.0
    p_noise: float = 0.0
    p_jpeg: float = 0.0
    p_tone: float = 0.0

    @property
    def active(self) -> bool:
        return any(p > 0 for p in (self.p_mosaic, self.p_zoom, self.p_blur, self.p_noise, self.p_jpeg, self.p_tone))


def _resize(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(C, H, W)`` -> ``(C, h, w)``: area filter when shrinking, bilinear when growing."""
    mode = "area" if h <= t.shape[1] and w <= t.shape[2] else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(t[None], size=(h, w), mode=mode, **kw)[0]


def _mosaic(lab: torch.Tensor, target: torch.Tensor, i: int, g: torch.Generator):
    """Image ``i``'s frame cut into 4 rectangles, each filled with another image of the batch.
    ``lab`` ``(B, 3, S, S)``; returns (``(3, S, S)``, ``(K,)`` target mixed by area)."""
    n, _, size, _ = lab.shape
    cy = int(torch.randint(MIN_TILE, size - MIN_TILE + 1, (1,), generator=g))
    cx = int(torch.randint(MIN_TILE, size - MIN_TILE + 1, (1,), generator=g))
    others = torch.randperm(n, generator=g)
    picks = [i] + [int(j) for j in others if int(j) != i][:3]
    if len(picks) < 4:  # a batch of fewer than 4 images: repeat
        picks = (picks * 4)[:4]
    out = torch.empty_like(lab[0])
    tgt = torch.zeros_like(target[0])
    boxes = ((0, cy, 0, cx), (0, cy, cx, size), (cy, size, 0, cx), (cy, size, cx, size))
    for j, (y0, y1, x0, x1) in zip(picks, boxes, strict=True):
        out[:, y0:y1, x0:x1] = _resize(lab[j], y1 - y0, x1 - x0)
        tgt += target[j] * ((y1 - y0) * (x1 - x0) / (size * size))
    return out, tgt


def _zoom(lab: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random crop of 50-100 % of the side of ``(3, S, S)``, resized back to ``S``."""
    size = lab.shape[1]
    side = int(torch.randint(size // 2, size + 1, (1,), generator=g))
    y = int(torch.randint(0, size - side + 1, (1,), generator=g))
    x = int(torch.randint(0, size - side + 1, (1,), generator=g))
    return _resize(lab[:, y : y + side, x : x + side], size, size)


def _blur(L: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``(1, S, S)`` (separable, reflect-padded)."""
    r = max(1, int(np.ceil(2.5 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).to(L.dtype)
    y = F.pad(L[None], (r, r, r, r), mode="reflect")  # (1, 1, S+2r, S+2r)
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    return y[0]


def _jpeg(L: torch.Tensor, quality: int) -> torch.Tensor:
    """``(1, S, S)`` L through an 8-bit grayscale JPEG at ``quality`` and back."""
    from PIL import Image

    a = np.rint(np.clip(L[0].float().numpy() / L_MAX * 255.0, 0, 255)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=int(quality))
    b = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"), dtype=np.float32)
    return torch.from_numpy(b * (L_MAX / 255.0))[None].to(L.dtype)


def scene_batch(L: torch.Tensor, ab: torch.Tensor, labels: torch.Tensor | None, n_classes: int,
                aug: SceneAug, g: torch.Generator):
    """A training batch made scene-like (see the module notes).

    Returns (L_in ``(B, 1, S, S)``: the degraded L the net sees, ab ``(B, 2, S, S)``: the target,
    class target ``(B, K)`` probabilities or None when there are no labels / classes).
    """
    lab = torch.cat([L, ab], dim=1).float().cpu()  # (B, 3, S, S)
    n = lab.shape[0]
    target = None
    if labels is not None and n_classes > 0:
        lab_cpu = labels.cpu()
        target = torch.zeros(n, n_classes)
        ok = lab_cpu >= 0
        target[ok.nonzero()[:, 0], lab_cpu[ok]] = 1.0  # (B, K) one-hot; no label: all zero (ignored)
    u = torch.rand(n, 6, generator=g)
    out = lab.clone()
    tgt = None if target is None else target.clone()
    for i in range(n):
        if u[i, 0] < aug.p_mosaic:
            out[i], t = _mosaic(lab, target if target is not None else torch.zeros(n, 1), i, g)
            if tgt is not None:
                tgt[i] = t
        elif u[i, 1] < aug.p_zoom:
            out[i] = _zoom(lab[i], g)
    l_in = out[:, :1].clone()
    for i in range(n):
        r = torch.rand(8, generator=g)
        if u[i, 2] < aug.p_tone:
            gamma = float(np.exp(np.log(0.7) + float(r[0]) * (np.log(1.4) - np.log(0.7))))
            l_in[i] = L_MAX * (l_in[i].clamp(0, L_MAX) / L_MAX) ** gamma
        if u[i, 3] < aug.p_blur:
            l_in[i] = _blur(l_in[i], 0.4 + 1.1 * float(r[1]))
        if u[i, 4] < aug.p_noise:
            l_in[i] = l_in[i] + (1.0 + 4.0 * float(r[2])) * torch.randn(l_in[i].shape, generator=g)
        if u[i, 5] < aug.p_jpeg:
            l_in[i] = _jpeg(l_in[i], 25 + int(65 * float(r[3])))
    l_in = l_in.clamp(0, L_MAX)
    dev, dt = L.device, L.dtype
    return l_in.to(dev, dt), out[:, 1:].to(dev, ab.dtype), None if tgt is None else tgt.to(dev)
