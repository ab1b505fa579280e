"""pix2pix: a conditional GAN whose generator is the U-Net and whose discriminator is a PatchGAN.

Objective (Isola et al. 2017), on the nets' scaled units (L / 100, ab / 110):

* discriminator: ``d_loss = ½·[BCE(D(L, ab_real), 1) + BCE(D(L, ab_fake), 0)]`` (halved, as pix2pix
  does, so D learns at half the pace of G);
* generator: ``BCE(D(L, ab_fake), 1) + λ·|ab_fake - ab_real|₁``, λ = 100 by default.

The two updates are separate methods, :meth:`Pix2PixModule.d_step` and
:meth:`Pix2PixModule.g_step`, called one after the other in ``training_step`` with Lightning's
manual optimization, each with its own Adam (lr 2e-4, betas (0.5, 0.999), as pix2pix):

1. **D step**: D sees the real pair and the generated pair with the generated ab *detached*, so
   no gradient reaches G; only D's optimizer steps.
2. **G step**: D's parameters are frozen (``requires_grad`` off) while the generated pair goes
   through it, so the adversarial gradient flows through D into the generated ab and on to G
   without accumulating in D's ``.grad``; only G's optimizer steps.

Nothing is kept on ``self`` between the two: the generated ab is a local of ``training_step``
passed to both. G runs once per batch (not again for the G step): the D step does not touch G's
weights, so a second forward pass would compute the same ab (and update G's BatchNorm
statistics twice); D does run again in the G step, with its freshly updated weights.

Logged per epoch (``metrics.csv``; ``loss.png`` also plots about 50 points per epoch of the two
GAN losses): ``train_loss`` = the L1 term (comparable to
``val_loss``, the L1 on the validation images), ``d_loss`` = the discriminator loss above (ln 2 ≈
0.69 when D cannot tell real from fake) and ``g_loss`` = the generator's adversarial BCE. Their
sum with the L1 term is the generator's objective.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..color import scale_ab
from .losses import L1Loss
from .module import ColorizationModule


@contextmanager
def frozen(module: nn.Module):
    """Turn off ``requires_grad`` of ``module``'s parameters for the block (restored after)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(f)


def bce_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean BCE of patch logits against a constant label (1: real, 0: fake), in float32."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.float()
        return F.binary_cross_entropy_with_logits(x, torch.full_like(x, float(target)))


class _LinearTail:
    """pix2pix's schedule: factor 1 for the first half of ``total`` steps, then linearly down to 0."""

    def __init__(self, total: int):
        self.total = max(1, int(total))

    def __call__(self, step: int) -> float:
        half = self.total / 2
        return 1.0 if step < half else max(0.0, (self.total - step) / max(1.0, self.total - half))


class Pix2PixModule(ColorizationModule[nn.Module]):
    """Generator ``net`` (scaled L -> scaled ab) trained against the discriminator ``disc``.

    Args:
        net: the generator (a U-Net; what is exported and evaluated).
        disc: the discriminator, ``disc(L_scaled, ab_scaled) -> patch logits`` (:class:`~chromalab.nets.PatchGAN`).
        gan_lambda: λ, the weight of the L1 term (100).
        lr: Adam learning rate of both networks (2e-4).
        beta1: Adam β1 (0.5; β2 = 0.999).
        schedule: ``constant`` or ``linear`` (constant for the first half of the steps, then down to 0).
        channels_last: see :class:`ColorizationModule`; the discriminator follows it too.
    """

    def __init__(self, net: nn.Module, disc: nn.Module, gan_lambda: float = 100.0, lr: float = 2e-4,
                 beta1: float = 0.5, schedule: str = "constant", channels_last: bool = False):
        super().__init__(net, val_loss=L1Loss(), channels_last=channels_last)
        if schedule not in ("constant", "linear"):
            raise ValueError(f"unknown pix2pix schedule {schedule!r} (constant, linear)")
        self.disc = disc
        if channels_last:
            disc.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # see ColorizationModule
        self.automatic_optimization = False
        self.gan_lambda, self.lr, self.beta1, self.schedule = float(gan_lambda), float(lr), float(beta1), schedule
        self._gan = np.zeros(3)  # d_loss sum, g_loss (adversarial) sum, both weighted by images; count
        self._window = np.zeros(3)  # the same since the last take_window() (the loss.png trace)

    # ---- the two updates ---------------------------------------------------------------------
    def _backward(self, loss: torch.Tensor) -> None:
        if self._trainer is None:  # called directly (tests, notebooks): plain autograd
            loss.backward()
        else:
            self.manual_backward(loss)

    def d_step(self, x: torch.Tensor, ab_real: torch.Tensor, ab_fake: torch.Tensor, opt) -> torch.Tensor:
        """One discriminator update. ``x``: scaled L ``(B, 1, H, W)``; ``ab_real``, ``ab_fake``: scaled
        ab ``(B, 2, H, W)`` (``ab_fake`` is detached here). Changes only D's parameters; returns d_loss."""
        real = self.disc(x, ab_real)  # (B, 1, h, w) patch logits
        fake = self.disc(x, ab_fake.detach())
        loss = 0.5 * (bce_logits(real, 1.0) + bce_logits(fake, 0.0))
        opt.zero_grad(set_to_none=True)
        self._backward(loss)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    def g_step(self, x: torch.Tensor, ab_real: torch.Tensor, ab_fake: torch.Tensor, opt) -> tuple[torch.Tensor, torch.Tensor]:
        """One generator update through the frozen D. ``ab_fake`` must carry G's graph. Changes only
        G's parameters and leaves D's ``.grad`` untouched; returns (adversarial BCE, L1)."""
        with frozen(self.disc):
            adv = bce_logits(self.disc(x, ab_fake), 1.0)
            with torch.autocast(device_type=ab_fake.device.type, enabled=False):
                l1 = F.l1_loss(ab_fake.float(), ab_real.float())
            loss = adv + self.gan_lambda * l1
            opt.zero_grad(set_to_none=True)
            self._backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return adv.detach(), l1.detach()

    def training_step(self, batch, batch_idx: int) -> None:
        L, ab = batch
        opts = self.optimizers()
        if not isinstance(opts, list):  # configure_optimizers gives two: G's and D's
            raise TypeError(f"pix2pix expects two optimizers, got {opts!r}")
        opt_g, opt_d = opts
        x = self.net_input(L)  # (B, 1, H, W) scaled L
        ab_real = scale_ab(ab)  # (B, 2, H, W)
        ab_fake = self.net(x)  # (B, 2, H, W), with G's graph: detached by the D step, used by the G step
        d_loss = self.d_step(x, ab_real, ab_fake, opt_d)
        g_adv, l1 = self.g_step(x, ab_real, ab_fake, opt_g)
        if self.schedule != "constant":
            for s in self._schedulers():
                s.step()
        for name, v in (("d_loss", d_loss), ("g_loss", g_adv), ("l1", l1)):
            if not torch.isfinite(v):
                raise FloatingPointError(f"pix2pix {name} became {float(v)} at batch {batch_idx} of epoch "
                                         f"{self.current_epoch}")
        n = len(L)
        self.track_train_loss(l1, n)
        self._gan += (float(d_loss) * n, float(g_adv) * n, n)
        self._window += (float(d_loss) * n, float(g_adv) * n, n)
        self.log_dict({"d_loss": d_loss, "g_loss": g_adv, "train_loss": l1}, prog_bar=True, on_step=True,
                      on_epoch=False)

    def _schedulers(self) -> list[torch.optim.lr_scheduler.LRScheduler]:
        """The two LambdaLR of :meth:`configure_optimizers` (G's, D's) when the schedule is not constant."""
        scheds = self.lr_schedulers()
        if not isinstance(scheds, list):
            raise TypeError(f"pix2pix expects two lr schedulers, got {scheds!r}")
        return [s for s in scheds if isinstance(s, torch.optim.lr_scheduler.LRScheduler)]

    # ---- bookkeeping ---------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._gan[:] = 0
        self._window[:] = 0

    def take_window(self) -> dict[str, float] | None:
        """Mean D / G losses over the batches since the last call (this process's), then reset; None if none."""
        w, self._window = self._window, np.zeros(3)
        if w[2] <= 0:
            return None
        return {"d_loss": float(w[0] / w[2]), "g_loss": float(w[1] / w[2])}

    def extra_epoch_metrics(self) -> dict[str, float]:
        t = self._reduce(self._gan)
        if t[2] <= 0:
            return {"d_loss": float("nan"), "g_loss": float("nan")}
        return {"d_loss": float(t[0] / t[2]), "g_loss": float(t[1] / t[2])}

    def configure_optimizers(self):
        betas = (self.beta1, 0.999)
        opt_g = torch.optim.Adam(self.net.parameters(), lr=self.lr, betas=betas)
        opt_d = torch.optim.Adam(self.disc.parameters(), lr=self.lr, betas=betas)
        if self.schedule == "constant":
            return [opt_g, opt_d]
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, _LinearTail(total)) for o in (opt_g, opt_d)]
        return [opt_g, opt_d], scheds
