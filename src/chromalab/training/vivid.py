"""The vivid model: colorization as classification over quantized ab, with class rebalancing.

Why: a regression net trained on MSE / L1 predicts the (conditional) mean or median of ab,
which for an object that may be red or blue is a grayish compromise: low colourfulness (ΔCF of
the regression nets is large). Classification keeps the whole distribution over colours; the
decoding chooses how far from its mean to go, and the rebalancing stops the many near-gray
pixels of natural images from dominating the loss (Zhang, Isola & Efros, 2016).

* Targets: the true ab of each pixel soft-encoded on its 5 nearest in-gamut bins (Gaussian,
  σ = 5), see :class:`chromalab.abbins.SoftEncoder`.
* Loss: cross-entropy against that soft target, each pixel weighted by the rebalancing weight
  ``w`` of its nearest bin (:func:`chromalab.abbins.rebalance_weights`, λ = 0.5), averaged over
  pixels. ``Σ p̃·w = 1``, so the average weight of a training pixel is 1.
* The prior ``p̃``: the bin frequencies of the (prepared, limited) training split, from up to
  ``prior_images`` images spread evenly over it, every other pixel in each direction, smoothed
  (σ = 5). Written to the run folder as ``prior.json`` and read back on ``--resume``.
* Decoding: annealed mean with temperature T (0.38), in the net itself
  (:class:`chromalab.nets.VividNet`), so validation, test and every predictor use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._io import atomic_path
from ..abbins import (
    DEFAULT_LAMBDA,
    DEFAULT_NEIGHBOURS,
    DEFAULT_SIGMA,
    SoftEncoder,
    bin_histogram,
    rebalance_weights,
    smooth_prior,
)
from ..data.cache import SplitData
from ..errors import ChromalabError
from ..nets import VividNet
from .module import RegressionModule

PRIOR_FILE = "prior.json"


class RebalancedCELoss(nn.Module):
    """Class-rebalanced cross-entropy against soft-encoded ab targets.

    Called as ``loss(logits, ab)``: logits ``(B, Q, h, w)``, ab ``(B, 2, H, W)`` in Lab units
    (averaged over blocks down to ``(h, w)`` when larger: the targets of half-resolution logits);
    returns the mean over pixels of ``w[nearest bin] · (-Σ_k t_k log softmax(logits)_{bin_k})``,
    in float32 with autocast off: ``log_softmax`` over Q (whose fused backward is about 1.5x faster
    on a CPU than that of ``logsumexp``), gathered at the k target bins. The look-up table and the weights are buffers (they follow the module to
    its device) that are not saved in checkpoints.
    """

    lut_idx: torch.Tensor  # the buffers registered in __init__
    lut_w: torch.Tensor
    class_weights: torch.Tensor

    def __init__(self, centres, class_weights, k: int = DEFAULT_NEIGHBOURS, sigma: float = DEFAULT_SIGMA):
        super().__init__()
        enc = SoftEncoder(centres, k=k, sigma=sigma)
        w = torch.as_tensor(np.asarray(class_weights), dtype=torch.float32)
        if w.shape != (enc.n_bins,):
            raise ValueError(f"class weights must be ({enc.n_bins},), got {tuple(w.shape)}")
        self.encoder = enc
        self.register_buffer("lut_idx", enc.lut_idx, persistent=False)
        self.register_buffer("lut_w", enc.lut_w, persistent=False)
        self.register_buffer("class_weights", w, persistent=False)

    def forward(self, logits: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        self.encoder.lut_idx, self.encoder.lut_w = self.lut_idx, self.lut_w  # the buffers, on the module's device
        if ab.shape[-2:] != logits.shape[-2:]:
            f = ab.shape[-1] // logits.shape[-1]
            ab = torch.nn.functional.avg_pool2d(ab.float(), f)  # (B, 2, h, w)
        idx, t = self.encoder.encode(ab)  # (B, k, h, w) nearest first, weights summing to 1
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logp = torch.log_softmax(logits.float().contiguous(), dim=1)  # (B, Q, h, w); its backward is fused
            ce = -(t * logp.gather(1, idx)).sum(dim=1)  # (B, h, w)
            return (self.class_weights[idx[:, 0]] * ce).mean()


class VividModule(RegressionModule[VividNet]):
    """A :class:`~chromalab.nets.VividNet` trained on :class:`RebalancedCELoss`.

    The optimizer and schedule are the regression nets' (AdamW, OneCycle); ``val_loss`` is the
    same weighted cross-entropy on the validation images; PSNR / SSIM are on the decoded ab.
    """

    def __init__(self, net: VividNet, class_weights, k: int = DEFAULT_NEIGHBOURS, sigma: float = DEFAULT_SIGMA,
                 **kwargs):
        loss = RebalancedCELoss(net.centres, class_weights, k=k, sigma=sigma)
        super().__init__(net, loss, **kwargs)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        L, ab = batch
        loss = self.loss_fn(self.net.logits(self.net_input(L)), ab)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {float(loss)} at step {self.global_step}")
        self.track_train_loss(loss, len(L))
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def val_outputs(self, L: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net.logits(self.net_input(L))
        return self.net.decode(logits), self.loss_fn(logits, ab)


# ---- the prior: bin frequencies of the training split -----------------------------------------
def compute_prior(split: SplitData, centres, lam: float = DEFAULT_LAMBDA, sigma: float = DEFAULT_SIGMA,
                  max_images: int = 4096, pixel_stride: int = 2, chunk: int = 256) -> dict:
    """Bin counts over the training split -> ``{counts, p, p_smooth, weights, ...}`` (JSON-able).

    Up to ``max_images`` images spread evenly over the split; every ``pixel_stride``-th pixel in
    each direction.
    """
    n = len(split)
    if n == 0:
        raise ChromalabError(f"split {split.name!r} is empty: no colour statistics for the vivid model")
    m = min(n, int(max_images))
    pos = np.unique(np.linspace(0, n - 1, m).round().astype(np.int64))
    enc = SoftEncoder(centres)

    def batches():
        for s in range(0, len(pos), chunk):
            _, ab, _ = split.get(pos[s : s + chunk])  # (c, 2, S, S)
            yield np.ascontiguousarray(ab[:, :, ::pixel_stride, ::pixel_stride])

    counts = bin_histogram(batches(), enc)
    p = counts / counts.sum()
    ps = smooth_prior(counts, centres, sigma)
    w = rebalance_weights(ps, lam)
    return {
        "centres": np.asarray(centres).tolist(), "counts": counts.tolist(), "p": p.tolist(),
        "p_smooth": ps.tolist(), "weights": w.tolist(), "lambda": float(lam), "sigma": float(sigma),
        "images": int(len(pos)), "pixel_stride": int(pixel_stride), "pixels": int(counts.sum()),
        "split": split.name, "split_images": int(n),
    }


def load_or_compute_prior(folder: Path, split_fn: Callable[[], SplitData], centres, lam: float, sigma: float,
                          max_images: int, log: Callable[[str], None] | None = None) -> dict:
    """``folder/prior.json`` if it matches (centres, λ, σ); else computed from ``split_fn()`` and written."""
    path = Path(folder) / PRIOR_FILE
    c = np.asarray(centres, dtype=np.float32)
    if path.is_file():
        try:
            d = json.loads(path.read_text())
            ok = (np.array_equal(np.asarray(d["centres"], dtype=np.float32), c) and d["lambda"] == float(lam)
                  and d["sigma"] == float(sigma))
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if ok:
            return d
    d = compute_prior(split_fn(), c, lam=lam, sigma=sigma, max_images=max_images)
    with atomic_path(path) as tmp:  # DDP: every rank computes the same; each writes its own temporary file
        tmp.write_text(json.dumps(d))
    if log is not None:
        w = np.asarray(d["weights"])
        log(f"vivid prior: {len(c)} ab bins from {d['pixels']:,} pixels of {d['images']:,} train images; "
            f"weights {w.min():.2f}..{w.max():.2f} -> {path}")
    return d
