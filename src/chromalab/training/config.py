"""The config of a net run (:class:`NetConfig`): presets, ``--set``, validation, the saved ``config.yaml``.

Resolution (later wins): :class:`NetConfig` defaults < the preset's ``common`` section < its
``<arch>`` section < its ``loss: {<loss>: ...}`` section < ``--set key=value`` < the
``--accelerator/--devices/--strategy/--precision`` options. A preset is ``quick`` / ``full``
(``chromalab/configs/net_<preset>.yaml``), the path of a YAML file of the same shape, or a run's
saved ``config.yaml`` (a flat, resolved config: it re-runs that run as it was; ``--set`` and the
trainer options still apply on top).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..config import (
    ConfigModel,
    Limit,
    NonNeg,
    PosInt,
    PosNum,
    build,
    find_preset,
    is_yaml_path,
    merge,
    read_yaml,
    write_yaml,
)
from ..errors import ChromalabError

NET_FAMILIES = ("cnn", "unet", "pix2pix", "vivid", "colornet")
FIXED_LOSS = {"pix2pix": "gan-l1", "vivid": "rebalanced-ce", "colornet": "ce+l1+class"}
"""Families with their own loss (no --loss): the name written in config.yaml and run.json."""
NET_ARCH = {"cnn": "cnn", "unet": "unet", "pix2pix": "unet", "vivid": "vivid", "colornet": "colornet"}
"""Family -> the architecture of the exported net (predictors.nets.ARCHS)."""
ARCH_KWARGS: dict[str, tuple[str, ...]] = {
    "cnn": ("width", "depth", "out_act"),
    "unet": ("width", "depth", "residual", "out_act"),
    "pix2pix": ("width", "depth", "residual", "out_act"),  # the generator
    "vivid": ("width", "depth", "residual", "bin_size", "temperature"),
    "colornet": ("width", "depth", "n_classes", "hints", "bin_size", "out_stride"),
}
RESUME_FREE = frozenset({"num_threads", "num_workers", "test_limit", "data", "channels_last", "accelerator", "devices",
                         "strategy", "precision", "init_from", "photos"})
"""Config keys --resume may change; the rest would change the schedule or the data mid-run."""
Precision = Literal[64, 32, 16, "64", "32", "16", "bf16", "64-true", "32-true", "16-true", "16-mixed", "bf16-true",
                    "bf16-mixed", "transformer-engine", "transformer-engine-float16"]
"""The values of Lightning's ``Trainer(precision=...)``."""
RUN_CONFIG_HEAD = "resolved config of this run (chromalab train); --resume reads it back"


class NetConfig(ConfigModel):
    """Everything one net run depends on. Saved resolved as the run's ``config.yaml``."""

    arch: Literal["cnn", "unet", "pix2pix", "vivid", "colornet"] = "unet"
    loss: str = "mse"
    preset: str = "quick"
    # network
    width: PosInt = 16
    depth: PosInt = 3
    residual: bool = False
    out_act: str = "none"
    # loss weights: alpha / beta / gamma (empty: the documented defaults of the loss)
    loss_weights: dict[str, Any] = Field(default_factory=dict)
    # data
    data: str | None = None
    size: PosInt = 64
    train_limit: Limit = None
    val_limit: Limit = None
    test_limit: Limit = None
    flip: bool = True
    num_workers: int = 0
    # optimization
    epochs: PosInt = 10
    batch_size: PosInt = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    warmup: float = 0.15
    seed: int = 0
    num_threads: int | None = None
    limit_train_batches: int | float | None = None  # Lightning: an int counts batches, a float is a fraction
    channels_last: bool = False
    # pix2pix (ignored by the other families)
    gan_lambda: float = 100.0  # weight of the L1 term in the generator's loss
    d_width: PosInt = 64  # PatchGAN channels of the first layer (then 2x, 4x)
    beta1: float = 0.5  # Adam beta1 of both networks (beta2 = 0.999)
    # vivid (ignored by the other families)
    bin_size: PosInt = 10  # ab bin size, Lab units
    temperature: PosNum = 0.38  # annealed-mean T used for validation / test and stored as the default
    rebalance: Annotated[float, Field(ge=0, le=1)] = 0.5  # lambda of the class rebalancing
    prior_sigma: PosNum = 5.0  # Gaussian smoothing of the bin frequencies, ab units
    soft_sigma: PosNum = 5.0  # Gaussian width of the soft-encoded targets, ab units
    soft_k: PosInt = 5  # bins per soft-encoded target
    prior_images: PosInt = 4096  # train images (spread evenly) counted for the bin frequencies
    # colornet (ignored by the other families)
    n_classes: int = 200  # semantic head classes (Tiny ImageNet)
    hints: bool = True  # take colour hints (L + hint a, b + mask)
    out_stride: int = 2  # colour-class logits at H / out_stride
    ce_weight: NonNeg = 1.0  # rebalanced cross-entropy on the ab bins
    reg_weight: NonNeg = 10.0  # L1 on scaled ab (the regression head)
    class_weight: NonNeg = 0.3  # semantic cross-entropy (0: the ablation without the class head)
    hint_p_none: Annotated[float, Field(ge=0, le=1)] = 0.5  # probability that a training image gets no hint
    hint_p_geom: Annotated[float, Field(gt=0, le=1)] = 0.125  # else 1 + Geometric(p) points (mean 1/p)
    hint_max: PosInt = 64  # at most this many points
    # scene-like inputs (colornet; training/scenes.py): per-image probabilities, 0 = off
    scene_p_mosaic: Annotated[float, Field(ge=0, le=1)] = 0.0  # 4 images in one frame, labels mixed by area
    scene_p_zoom: Annotated[float, Field(ge=0, le=1)] = 0.0  # a crop of 50-100 % of the side, resized back
    scene_p_blur: Annotated[float, Field(ge=0, le=1)] = 0.0  # input L blurred (sigma 0.4-1.5 px)
    scene_p_noise: Annotated[float, Field(ge=0, le=1)] = 0.0  # grain on the input L (sigma 1-5)
    scene_p_jpeg: Annotated[float, Field(ge=0, le=1)] = 0.0  # input L through a JPEG (quality 25-90)
    scene_p_tone: Annotated[float, Field(ge=0, le=1)] = 0.0  # L -> 100 (L/100)^gamma, gamma 0.7-1.4
    photos: str | None = None  # real colour photos (folder or zip) colorized at each validation; val_select uses them
    photos_long_side: PosInt = 256  # their long side (px) for that check
    # monitoring (every family)
    monitor: str = "val_ssim"  # the val metric (maximized) that picks best.safetensors
    val_check_interval: Annotated[float, Field(gt=0, le=1)] = 1.0  # validate every this fraction of an epoch
    log_every_n_steps: PosInt = 50  # a train-loss point in loss.png every N steps
    init_from: str | None = None  # warm start: weights file (.safetensors) copied where shapes allow
    # Lightning Trainer, passed straight through
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    precision: Precision = "32-true"

    @model_validator(mode="after")
    def _consistent(self) -> NetConfig:
        from .losses import LOSSES

        if self.arch in FIXED_LOSS:
            if self.loss != FIXED_LOSS[self.arch]:
                raise ValueError(f"{self.arch} trains on its own loss ({FIXED_LOSS[self.arch]}), not {self.loss!r}")
        elif self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r} (choose from {', '.join(LOSSES)})")
        if self.size % 2**self.depth:
            raise ValueError(f"size {self.size} is not a multiple of 2**depth = {2**self.depth}")
        return self

    def arch_kwargs(self) -> dict:
        return {k: getattr(self, k) for k in ARCH_KWARGS[self.arch]}

    def net_arch(self) -> str:
        """Architecture of the net this run trains and exports (pix2pix: its U-Net generator)."""
        return NET_ARCH[self.arch]

    def shareable(self) -> dict:
        """The config as stored inside a weights file, which may be shared or bundled: without the
        local data path (where the data lived on the training machine says nothing about the model;
        the run folder's config.yaml keeps it for --resume), and with only the file name of the
        ``init_from`` weights (their folder is just as local)."""
        init = Path(self.init_from).name if self.init_from else None
        photos = Path(self.photos).name if self.photos else None
        return {**self.model_dump(), "data": None, "init_from": init, "photos": photos}


def preset_path(preset: str) -> Path:
    return find_preset(preset, "net")


def is_run_config(preset: str) -> bool:
    """Whether ``preset`` is a resolved config (a run's ``config.yaml``) rather than a sectioned preset."""
    return is_yaml_path(preset) and "arch" in read_yaml(find_preset(preset, "net"))


def resolve_config(arch: str, loss: str | None, preset: str, overrides: dict | None = None,
                   trainer_overrides: dict | None = None) -> NetConfig:
    """Defaults < preset common < preset[arch] < preset loss[loss] < overrides < trainer options;
    or, for a run's saved config: defaults < that config < overrides < trainer options."""
    if arch not in NET_FAMILIES:
        raise ChromalabError(f"unknown net {arch!r} (choose from {', '.join(NET_FAMILIES)})")
    path = preset_path(preset)
    y = read_yaml(path)
    keys = NetConfig.keys()
    d: dict[str, Any] = NetConfig().model_dump()
    origin: dict[str, str] = {}
    if "arch" in y:  # a run's saved config.yaml: flat and resolved
        merge(d, y, str(path), origin, keys)
        if d["arch"] != arch:
            raise ChromalabError(f"{path}: this config trains {d['arch']!r}, not {arch!r}")
        if loss is not None and loss != d["loss"]:
            raise ChromalabError(f"{path}: this config trains on loss {d['loss']!r}, not {loss!r}; leave out --loss")
    else:
        unknown = set(y) - {"common", "loss", *NET_FAMILIES}
        if unknown:
            raise ChromalabError(f"{path}: unknown section(s) {sorted(unknown)} (common, loss, "
                                 f"{', '.join(NET_FAMILIES)})")
        d["arch"] = arch
        d["preset"] = preset
        merge(d, y.get("common") or {}, f"{path} [common]", origin, keys)
        merge(d, y.get(arch) or {}, f"{path} [{arch}]", origin, keys)
        if arch in FIXED_LOSS:
            if loss is not None and loss != FIXED_LOSS[arch]:
                raise ChromalabError(f"{arch} trains on its own loss ({FIXED_LOSS[arch]}); leave out --loss")
            d["loss"] = FIXED_LOSS[arch]
        elif loss is not None:
            d["loss"] = loss
        losses = y.get("loss") or {}
        if not isinstance(losses, dict):
            raise ChromalabError(f"{path} [loss]: expected a mapping of loss names to config keys")
        merge(d, losses.get(d["loss"]) or {}, f"{path} [loss.{d['loss']}]", origin, keys)
    merge(d, overrides or {}, "--set", origin, keys)
    merge(d, trainer_overrides or {}, "trainer options", origin, keys)
    return build(NetConfig, d, str(path), origin)


def update_config(cfg: NetConfig, updates: dict, where: str) -> NetConfig:
    """``cfg`` with ``updates`` applied (unknown keys and bad values are errors naming ``where``)."""
    d = cfg.model_dump()
    origin: dict[str, str] = {}
    merge(d, updates, where, origin, NetConfig.keys())
    return build(NetConfig, d, where, origin)


def write_run_config(path: Path, cfg: NetConfig) -> None:
    write_yaml(path, cfg, RUN_CONFIG_HEAD)


def load_run_config(folder: Path) -> NetConfig:
    p = Path(folder) / "config.yaml"
    if not p.is_file():
        raise ChromalabError(f"{p}: missing; cannot resume a run without its config")
    d = NetConfig().model_dump()
    origin: dict[str, str] = {}
    merge(d, read_yaml(p), str(p), origin, NetConfig.keys())
    return build(NetConfig, d, str(p), origin)
