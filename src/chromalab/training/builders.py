"""What differs between the net families: the LightningModule each trains (``MODULE_BUILDERS``:
``(cfg, net, datamodule, run folder, log) -> module``), and the warm start from a weights file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ChromalabError
from .config import NetConfig


def _regression_module(cfg: NetConfig, net, dm, out: Path, log):
    from .losses import build_loss
    from .module import RegressionModule

    loss = build_loss(cfg.loss, **cfg.loss_weights)
    return RegressionModule(net, loss, lr=cfg.lr, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
                            warmup=cfg.warmup, channels_last=cfg.channels_last)


def _pix2pix_module(cfg: NetConfig, net, dm, out: Path, log):
    from ..nets import PatchGAN
    from .gan import Pix2PixModule

    if cfg.schedule not in ("constant", "linear"):
        raise ChromalabError(f"pix2pix: schedule must be constant or linear (pix2pix's), got {cfg.schedule!r}")
    return Pix2PixModule(net, PatchGAN(width=cfg.d_width), gan_lambda=cfg.gan_lambda, lr=cfg.lr, beta1=cfg.beta1,
                         schedule=cfg.schedule, channels_last=cfg.channels_last)


def _vivid_module(cfg: NetConfig, net, dm, out: Path, log):
    import numpy as np

    from .vivid import VividModule, load_or_compute_prior

    prior = load_or_compute_prior(out, lambda: dm.split("train"), net.centres.cpu().numpy(), lam=cfg.rebalance,
                                  sigma=cfg.prior_sigma, max_images=cfg.prior_images, log=log)
    return VividModule(net, np.asarray(prior["weights"]), k=cfg.soft_k, sigma=cfg.soft_sigma, lr=cfg.lr,
                       weight_decay=cfg.weight_decay, schedule=cfg.schedule, warmup=cfg.warmup,
                       channels_last=cfg.channels_last)


def _colornet_module(cfg: NetConfig, net, dm, out: Path, log):
    import numpy as np

    from .colornet import ColorNetModule
    from .scenes import SceneAug
    from .vivid import load_or_compute_prior

    prior = load_or_compute_prior(out, lambda: dm.split("train"), net.centres.cpu().numpy(), lam=cfg.rebalance,
                                  sigma=cfg.prior_sigma, max_images=cfg.prior_images, log=log)
    return ColorNetModule(net, np.asarray(prior["weights"]), ce_weight=cfg.ce_weight, reg_weight=cfg.reg_weight,
                          class_weight=cfg.class_weight, hint_p_none=cfg.hint_p_none, hint_p_geom=cfg.hint_p_geom,
                          hint_max=cfg.hint_max, seed=cfg.seed, lr=cfg.lr, weight_decay=cfg.weight_decay,
                          schedule=cfg.schedule, warmup=cfg.warmup, channels_last=cfg.channels_last,
                          scene=SceneAug(cfg.scene_p_mosaic, cfg.scene_p_zoom, cfg.scene_p_blur, cfg.scene_p_noise,
                                         cfg.scene_p_jpeg, cfg.scene_p_tone),
                          photos=_photos(cfg, log))


def _photos(cfg: NetConfig, log) -> list:
    """The real photos of ``cfg.photos`` at ``cfg.photos_long_side`` (none: an empty list)."""
    if not cfg.photos:
        return []
    from ..photos import load_photos

    photos, excluded, failed = load_photos(cfg.photos, cfg.photos_long_side, progress=False)
    log(f"photos for validation: {len(photos)} from {cfg.photos} at {cfg.photos_long_side} px "
        f"({excluded} grayscale, {len(failed)} unreadable)")
    return photos


MODULE_BUILDERS: dict[str, Callable] = {"cnn": _regression_module, "unet": _regression_module,
                                        "pix2pix": _pix2pix_module, "vivid": _vivid_module,
                                        "colornet": _colornet_module}


def init_from_weights(net, path, log=None) -> dict:
    """Warm start: copy the tensors of a weights file into ``net`` where names and shapes allow.

    A first convolution that takes more input channels than the file's (a hint net started from
    an L-only net) gets the file's kernels on its first channels and zeros on the rest, so it
    starts out computing what the file's net computed. Returns {"copied", "widened", "skipped"} counts.
    """
    import torch
    from safetensors.torch import load_file

    src = load_file(str(Path(path).expanduser()))
    own = net.state_dict()
    new, widened, skipped = {}, 0, []
    for k, v in own.items():
        w = src.get(k)
        if w is None:
            skipped.append(k)
        elif w.shape == v.shape:
            new[k] = w.to(v.dtype)
        elif w.ndim == 4 and v.ndim == 4 and w.shape[0] == v.shape[0] and w.shape[1] < v.shape[1] \
                and w.shape[2:] == v.shape[2:]:
            t = torch.zeros_like(v)
            t[:, : w.shape[1]] = w
            new[k] = t
            widened += 1
        else:
            skipped.append(k)
    net.load_state_dict(new, strict=False)
    info = {"copied": len(new) - widened, "widened": widened, "skipped": len(skipped)}
    if log is not None:
        log(f"warm start from {path}: {info['copied']} tensors copied, {widened} widened, "
            f"{len(skipped)} kept fresh" + (f" ({', '.join(skipped[:4])}{', ...' if len(skipped) > 4 else ''})"
                                            if skipped else ""))
    return info
