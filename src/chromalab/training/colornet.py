"""Training the default colorizer (:class:`chromalab.nets.ColorNet`): three losses and simulated hints.

* **Colour classes**: the vivid model's class-rebalanced cross-entropy on soft-encoded ab
  (:class:`chromalab.training.vivid.RebalancedCELoss`), weight ``ce_weight``.
* **Regression**: L1 on scaled ab, weight ``reg_weight``; it gives the accurate end of the
  vividness range.
* **Semantics**: cross-entropy of the 200-way class head against the Tiny ImageNet label,
  weight ``class_weight`` (0: the ablation without the class head; the architecture, and so
  the cost, stays the same).
* **Hints** (hint models): every training image gets ``simulate_hints`` points: none with
  probability ``hint_p_none``, else ``1 + Geometric(hint_p_geom)``, at most ``hint_max``.

* **Scene-like inputs** (``scene``: :class:`~chromalab.training.scenes.SceneAug`): mosaics of
  several images, zooms, blur, grain, JPEG and tone changes (:mod:`chromalab.training.scenes`),
  so that what the net learns carries over to whole photos at the working size.

Validation runs without hints at the net's stored vividness and logs, beside the canonical
PSNR / SSIM, the regression head's PSNR (``val_psnr_reg``, vividness 0), the colour metrics
(``val_auc_rb``, ``val_cool_recall``) and ``val_select``: the score that picks the exported
checkpoint (see :func:`selection_score`). With ``photos`` (real colour photos, :mod:`chromalab.photos`)
each validation also colorizes them through the public path and logs ``photo_gain`` (mean dB over
gray), ``photo_beat_gray``, ``photo_floods`` and ``photo_cool_recall``; ``val_select`` then adds
the photo terms (:func:`photo_selection_score`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..color import compose_rgb_uint8, scale_ab, unscale_ab
from ..hint_simulation import sample_counts, simulate_hints
from ..metrics import ColorAccumulator, psnr_per_image, ssim_per_image
from .module import RegressionModule
from .scenes import SceneAug, scene_batch
from .vivid import RebalancedCELoss

GRAY_VAL_PSNR = 22.85
"""Leaving the 1,000 val images gray scores 22.849 dB (`chromalab evaluate gray --split val`)."""


def selection_score(psnr_reg: float, auc_rb: float, cool_recall: float) -> float:
    """Which checkpoint to export: class-rebalanced AuC plus cool recall (colour seen, ~0..1.6),
    minus a penalty for each dB the regression head falls below gray + 1 dB on val (accuracy kept)."""
    floor = GRAY_VAL_PSNR + 1.0
    return auc_rb + cool_recall - max(0.0, floor - psnr_reg)


def photo_selection_score(val_score: float, gain_db: float, cool_recall: float, flood_share: float) -> float:
    """:func:`selection_score` plus the real photos: their mean gain over gray (dB), their cool recall,
    minus twice the share of photos flooded (more than 3 dB below gray). Written before the first run
    that used it (docs/provenance/default_model.md, step 5)."""
    return val_score + gain_db + cool_recall - 2.0 * flood_share


class ColorNetModule(RegressionModule):
    """A :class:`~chromalab.nets.ColorNet` on the weighted sum of its three losses.

    Train batches are ``(L, ab, label)``; val batches ``(L, ab, rgb)``.
    """

    def __init__(self, net: nn.Module, class_weights, ce_weight: float = 1.0, reg_weight: float = 10.0,
                 class_weight: float = 0.3, hint_p_none: float = 0.5, hint_p_geom: float = 0.125,
                 hint_max: int = 64, seed: int = 0, scene: SceneAug | None = None, photos: list | None = None,
                 **kwargs):
        ce = RebalancedCELoss(net.centres, class_weights)
        super().__init__(net, ce, **kwargs)
        self.ce_weight, self.reg_weight, self.class_weight = float(ce_weight), float(reg_weight), float(class_weight)
        self.hint_p_none, self.hint_p_geom, self.hint_max = float(hint_p_none), float(hint_p_geom), int(hint_max)
        self._gen = torch.Generator().manual_seed(int(seed) + 1)
        self._colors = ColorAccumulator()
        self._val_reg = np.zeros(2)  # PSNR sum of the regression head, count
        self.scene = scene or SceneAug()
        self._scene_gen = torch.Generator().manual_seed(int(seed) + 2)
        self.photos = list(photos or [])

    def net_input_hints(self, L: torch.Tensor, ab: torch.Tensor | None) -> torch.Tensor:
        """Lab L (and the true ab, for simulated hints; None: no hints) -> the net's input."""
        x = self.net_input(L)
        if not self.net.hints:
            return x
        if ab is None:
            return self.net.with_hint_channels(x)
        counts = sample_counts(len(L), self.hint_p_none, self.hint_p_geom, self.hint_max, self._gen)
        hint, mask = simulate_hints(ab, counts, self._gen)
        x = torch.cat([x, hint.to(x.dtype), mask.to(x.dtype)], dim=1)  # (B, 4, H, W)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        L, ab, label = batch
        target = None
        if self.scene.active:
            L, ab, target = scene_batch(L, ab, label, self.net.n_classes, self.scene, self._scene_gen)
        ab_reg, logits, cls = self.net.heads(self.net_input_hints(L, ab))
        ce = self.loss_fn(logits, ab)
        reg = nn.functional.l1_loss(ab_reg.float(), scale_ab(ab).float())
        loss = self.ce_weight * ce + self.reg_weight * reg
        if cls is not None and self.class_weight > 0:
            if target is not None:  # (B, K) probabilities: mosaics mix their tiles' labels
                sem = nn.functional.cross_entropy(cls.float(), target.float())
            else:
                sem = nn.functional.cross_entropy(cls.float(), label, ignore_index=-1)
            loss = loss + self.class_weight * sem
            self.log("train_class_ce", sem, on_step=True, on_epoch=False)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {float(loss)} at step {self.global_step}")
        self.track_train_loss(loss, len(L))
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._colors = ColorAccumulator()
        self._val_reg[:] = 0

    def val_outputs(self, L: torch.Tensor, ab: torch.Tensor):
        ab_reg, logits, _ = self.net.heads(self.net_input_hints(L, None))
        return self.net.decode(ab_reg, logits), self.loss_fn(logits, ab), ab_reg

    def validation_step(self, batch, batch_idx: int) -> None:
        L, ab, rgb = batch
        pred, vloss, ab_reg = self.val_outputs(L, ab)
        L_np, ab_true = L.float().cpu().numpy(), ab.float().cpu().numpy()
        ab_pred = unscale_ab(pred.float()).cpu().numpy()
        rgb_true = rgb.cpu().numpy()
        rgb_pred = compose_rgb_uint8(L_np, ab_pred)
        rgb_reg = compose_rgb_uint8(L_np, unscale_ab(ab_reg.float()).cpu().numpy())
        n = len(L)
        self._val += (psnr_per_image(rgb_true, rgb_pred).sum(), ssim_per_image(rgb_true, rgb_pred).sum(),
                      float(vloss) * n, n)
        self._val_reg += (psnr_per_image(rgb_true, rgb_reg).sum(), n)
        self._colors.update(ab_true, ab_pred)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        reg = self._reduce(self._val_reg)
        if reg[1] == 0:
            return
        c = self._colors  # the colour histograms are summed over ranks before the AuC
        c.hist = self._reduce(c.hist.astype(np.float64)).astype(np.int64)
        c.bin_count = self._reduce(c.bin_count.astype(np.float64)).astype(np.int64)
        cool = self._reduce(np.array([c.cool, c.cool_hits], dtype=np.float64))
        c.cool, c.cool_hits = int(cool[0]), int(cool[1])
        m = c.compute()
        psnr_reg = float(reg[0] / reg[1])
        self.log("val_psnr_reg", psnr_reg, sync_dist=True)
        self.log("val_auc_rb", m["auc_rb"], sync_dist=True)
        self.log("val_cool_recall", m["cool_recall"], sync_dist=True)
        score = selection_score(psnr_reg, m["auc_rb"], m["cool_recall"])
        if self.photos and not (self.trainer is not None and self.trainer.sanity_checking):
            p = self.photo_metrics()
            for k in ("gain", "beat_gray", "floods", "cool_recall"):
                self.log(f"photo_{k}", float(p[k]), sync_dist=True)
            score = photo_selection_score(score, p["gain"], p["cool_recall"], p["flood_share"])
        self.log("val_select", score, prog_bar=True, sync_dist=True)

    def photo_metrics(self) -> dict:
        """The real photos colorized by the net as it is now, through the public path (the working
        size of the bundled default, 64; the net's stored vividness; torch backend)."""
        from ..inference.colorizer import Colorizer
        from ..photos import evaluate_photos
        from ..predictors.nets import ColorNetPredictor

        was_training = self.net.training
        try:
            col = Colorizer(ColorNetPredictor(self.net, name="training"), backend="torch", work_size=64)
            return evaluate_photos(col, self.photos, progress=False)
        finally:
            self.net.train(was_training)

    def extra_epoch_metrics(self) -> dict[str, float]:
        m = self.trainer.callback_metrics if self.trainer is not None else {}
        keys = ("val_psnr_reg", "val_auc_rb", "val_cool_recall", "val_select", "photo_gain", "photo_beat_gray",
                "photo_floods", "photo_cool_recall")
        return {k: float(m[k]) for k in keys if k in m}
