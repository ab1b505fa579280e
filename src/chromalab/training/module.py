"""LightningModules. The network is passed in, never built here.

* :class:`ColorizationModule`: what every colorizer shares: ``forward`` on scaled L,
  validation with the project's canonical PSNR / SSIM (``chromalab.metrics``, on the uint8
  image made of the input L and the predicted ab, as every table computes them), a running
  train-loss mean, and the logged names ``train_loss``, ``val_loss``, ``val_psnr``, ``val_ssim``.
* :class:`RegressionModule`: CNN / U-Net trained on one loss (automatic optimization,
  AdamW + OneCycle / cosine schedule).

The GAN module (pix2pix, :mod:`chromalab.training.gan`) and the vivid classifier
(:mod:`chromalab.training.vivid`) subclass :class:`ColorizationModule`; the validation
metrics and the run folder stay the same.
"""

from __future__ import annotations

import math
from typing import Generic, TypeVar

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from ..color import compose_rgb_uint8, scale_ab, scale_L, unscale_ab
from ..metrics import psnr_per_image, ssim_per_image

NetT = TypeVar("NetT", bound=nn.Module)
"""The type of a module's ``net`` (``RegressionModule[VividNet]``: ``self.net`` is a VividNet)."""


class ColorizationModule(pl.LightningModule, Generic[NetT]):
    """Base: ``net`` maps scaled L ``(B, 1, H, W)`` to scaled ab ``(B, 2, H, W)``.

    Args:
        net: the generator / regressor (a plain ``nn.Module``).
        val_loss: loss reported as ``val_loss`` (called ``val_loss(pred, target, L)``); None: MSE.
        channels_last: keep the net and its inputs in channels-last memory layout (faster convs
            with oneDNN on CPU, and on tensor cores); the numbers are the same.
    """

    def __init__(self, net: NetT, val_loss: nn.Module | None = None, channels_last: bool = False):
        super().__init__()
        self.net = net
        self.val_loss_fn = val_loss
        self.channels_last = channels_last
        if channels_last:  # before the strategy moves / wraps the net (DDP keeps views of the parameters)
            # torch's stubs omit the memory_format keyword of Module.to, which torch accepts
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._val = np.zeros(4)  # psnr sum, ssim sum, loss sum (weighted by images), count
        self._train = np.zeros(2)  # loss sum (weighted by images), count

    def forward(self, L_scaled: torch.Tensor) -> torch.Tensor:
        return self.net(L_scaled)

    def net_input(self, L: torch.Tensor) -> torch.Tensor:
        """Lab L ``(B, 1, H, W)`` -> the net's input (scaled, in the module's memory layout)."""
        x = scale_L(L)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


    # ---- train-loss bookkeeping (the epoch mean, available before the checkpoint is written)
    def on_train_epoch_start(self) -> None:
        self._train[:] = 0

    def track_train_loss(self, loss: torch.Tensor, n: int) -> None:
        self._train += (float(loss.detach()) * n, n)

    def train_loss_epoch(self) -> float:
        t = self._reduce(self._train)
        return float(t[0] / t[1]) if t[1] > 0 else float("nan")

    # ---- validation with the canonical metrics ---------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val[:] = 0

    def val_outputs(self, L: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Validation batch -> (predicted scaled ab ``(B, 2, H, W)``, scalar ``val_loss``).

        Subclasses whose loss is not on ab (the vivid model's cross-entropy) override this.
        """
        pred = self.net(self.net_input(L))
        target = scale_ab(ab)
        vloss = self.val_loss_fn(pred, target, L) if self.val_loss_fn is not None else nn.functional.mse_loss(
            pred.float(), target.float())
        return pred, vloss

    def extra_epoch_metrics(self) -> dict[str, float]:
        """Per-epoch values beyond the common columns (the GAN's D / G losses); written to metrics.csv."""
        return {}

    def validation_step(self, batch, batch_idx: int) -> None:
        L, ab, rgb = batch
        pred, vloss = self.val_outputs(L, ab)
        ab_pred = unscale_ab(pred.float()).cpu().numpy()
        rgb_true = rgb.cpu().numpy()
        rgb_pred = compose_rgb_uint8(L.float().cpu().numpy(), ab_pred)
        n = len(L)
        self._val += (psnr_per_image(rgb_true, rgb_pred).sum(), ssim_per_image(rgb_true, rgb_pred).sum(),
                      float(vloss) * n, n)

    def on_validation_epoch_end(self) -> None:
        v = self._reduce(self._val)
        if v[3] == 0:
            return
        self.log("val_psnr", float(v[0] / v[3]), prog_bar=True, sync_dist=True)
        self.log("val_ssim", float(v[1] / v[3]), prog_bar=True, sync_dist=True)
        self.log("val_loss", float(v[2] / v[3]), sync_dist=True)

    def _reduce(self, arr: np.ndarray) -> np.ndarray:
        """Sum a small numpy accumulator over DDP ranks (identity on one process)."""
        if self.trainer is None or self.trainer.world_size <= 1:
            return arr.copy()
        t = torch.tensor(arr, dtype=torch.float64, device=self.device)
        return self.trainer.strategy.reduce(t, reduce_op="sum").cpu().numpy()


class RegressionModule(ColorizationModule[NetT]):
    """A net trained on one regression loss.

    Args:
        net: the network.
        loss: called ``loss(pred, target, L)`` on scaled ab (see :mod:`chromalab.training.losses`).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        schedule: ``onecycle`` (warm-up ``warmup`` of the steps, then cosine down),
            ``cosine`` (no warm-up) or ``constant``.
        warmup: fraction of the steps spent warming up (onecycle).
        channels_last: see :class:`ColorizationModule`.
    """

    def __init__(self, net: NetT, loss: nn.Module, lr: float = 2e-3, weight_decay: float = 1e-4,
                 schedule: str = "onecycle", warmup: float = 0.15, channels_last: bool = False):
        super().__init__(net, val_loss=loss, channels_last=channels_last)
        if schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"unknown schedule {schedule!r} (onecycle, cosine, constant)")
        self.loss_fn = loss
        self.lr, self.weight_decay, self.schedule, self.warmup = lr, weight_decay, schedule, warmup

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        L, ab = batch
        pred = self.net(self.net_input(L))
        loss = self.loss_fn(pred, scale_ab(ab), L)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {float(loss)} at step {self.global_step}")
        self.track_train_loss(loss, len(L))
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        decay, no_decay = [], []
        for p in self.net.parameters():
            (decay if p.ndim > 1 else no_decay).append(p)  # no decay on biases / BatchNorm
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        if self.schedule == "constant":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if self.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=self.lr, total_steps=total, pct_start=self.warmup, anneal_strategy="cos",
                div_factor=10.0, final_div_factor=100.0,
            )
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _Cosine(total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _Cosine:
    """Cosine decay from 1 to 0.01 over ``total`` steps (a picklable-free plain callable)."""

    def __init__(self, total: int):
        self.total = total

    def __call__(self, step: int) -> float:
        t = min(step, self.total) / self.total
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
