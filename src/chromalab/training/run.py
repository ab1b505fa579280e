"""``chromalab train cnn|unet|pix2pix|vivid``: config -> Lightning fit -> a run folder.

A run folder (``--out``) holds::

    config.yaml        the resolved config (preset + --set overrides + trainer options)
    metrics.csv        one row per epoch: train / val loss, val PSNR / SSIM (canonical), lr, time, session
                       (pix2pix adds d_loss and g_loss columns; its ``step`` counts optimizer steps,
                       two per batch: D and G)
    loss.png           train and val loss per epoch (and val PSNR / SSIM; pix2pix: D and G losses)
    prior.json         vivid only: the ab-bin frequencies of the training split and the class weights
    last.ckpt          the last full checkpoint (resume from it with --resume)
    best-weights.ckpt  weights of the epoch with the best val SSIM (Lightning, weights only)
    best.safetensors   those weights exported with the resolved config (what `evaluate` loads)
    test.json          evaluate_split on the test split with the best weights
    run.json           {"kind": "net", "arch", "loss", "train_seconds", "images_per_second", ...}

Families: ``cnn`` and ``unet`` train on a regression loss (``--loss``); ``pix2pix`` (U-Net generator
+ PatchGAN, :mod:`chromalab.training.gan`) and ``vivid`` (U-Net classifying ab bins,
:mod:`chromalab.training.vivid`) have their own loss and take no ``--loss``. A pix2pix run
exports only its generator (a plain ``unet`` weights file); a vivid run a ``vivid`` file.

Config resolution (later wins): :class:`NetConfig` defaults < the preset's ``common`` section <
its ``<arch>`` section < its ``loss: {<loss>: ...}`` section < ``--set key=value`` < the
``--accelerator/--devices/--strategy/--precision`` options. A preset is ``quick`` / ``full``
(``chromalab/configs/net_<preset>.yaml``) or the path of a YAML file of the same shape.

``--resume`` reloads the run's own ``config.yaml`` (``--set`` still applies, e.g. more epochs)
and continues from ``last.ckpt`` (loaded with ``weights_only=True``); ``metrics.csv`` is
rewritten from the rows stored in that checkpoint and then continued, so epochs that finished
after the checkpoint (if the process was killed) are not duplicated.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ChromalabError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
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
                         "strategy", "precision", "init_from"})
"""Config keys --resume may change; the rest would change the schedule or the data mid-run."""
TRACE_POINTS_PER_EPOCH = 50
"""GAN runs: about this many points per epoch of the D / G losses in loss.png."""
Precision = Literal[64, 32, 16, "64", "32", "16", "bf16", "64-true", "32-true", "16-true", "16-mixed", "bf16-true",
                    "bf16-mixed", "transformer-engine", "transformer-engine-float16"]
"""The values of Lightning's ``Trainer(precision=...)``; passed straight through (Lightning checks them)."""
METRIC_COLUMNS = ("epoch", "progress", "step", "images", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr",
                  "train_seconds", "session")
"""metrics.csv: one row per validation (``progress`` = epochs done, fractional when val runs several
times per epoch; ``images`` = training images seen so far, over all sessions and ranks)."""


@dataclass
class NetConfig:
    """Everything one net run depends on. Saved resolved as the run's ``config.yaml``."""

    arch: str = "unet"
    loss: str = "mse"
    preset: str = "quick"
    # network
    width: int = 16
    depth: int = 3
    residual: bool = False
    out_act: str = "none"
    # loss weights: alpha / beta / gamma (empty: the documented defaults of the loss)
    loss_weights: dict = field(default_factory=dict)
    # data
    data: str | None = None
    size: int = 64
    train_limit: int | None = None
    val_limit: int | None = None
    test_limit: int | None = None
    flip: bool = True
    num_workers: int = 0
    # optimization
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    warmup: float = 0.15
    seed: int = 0
    num_threads: int | None = None
    limit_train_batches: float | int | None = None
    channels_last: bool = False
    # pix2pix (ignored by the other families)
    gan_lambda: float = 100.0  # weight of the L1 term in the generator's loss
    d_width: int = 64  # PatchGAN channels of the first layer (then 2x, 4x)
    beta1: float = 0.5  # Adam beta1 of both networks (beta2 = 0.999)
    # vivid (ignored by the other families)
    bin_size: int = 10  # ab bin size, Lab units
    temperature: float = 0.38  # annealed-mean T used for validation / test and stored as the default
    rebalance: float = 0.5  # lambda of the class rebalancing
    prior_sigma: float = 5.0  # Gaussian smoothing of the bin frequencies, ab units
    soft_sigma: float = 5.0  # Gaussian width of the soft-encoded targets, ab units
    soft_k: int = 5  # bins per soft-encoded target
    prior_images: int = 4096  # train images (spread evenly) counted for the bin frequencies
    # colornet (ignored by the other families)
    n_classes: int = 200  # semantic head classes (Tiny ImageNet)
    hints: bool = True  # take colour hints (L + hint a, b + mask)
    out_stride: int = 2  # colour-class logits at H / out_stride
    ce_weight: float = 1.0  # rebalanced cross-entropy on the ab bins
    reg_weight: float = 10.0  # L1 on scaled ab (the regression head)
    class_weight: float = 0.3  # semantic cross-entropy (0: the ablation without the class head)
    hint_p_none: float = 0.5  # probability that a training image gets no hint
    hint_p_geom: float = 0.125  # else 1 + Geometric(p) points (mean 1/p)
    hint_max: int = 64  # at most this many points
    # monitoring (every family)
    monitor: str = "val_ssim"  # the val metric (maximized) that picks best.safetensors
    val_check_interval: float = 1.0  # validate every this fraction of an epoch
    log_every_n_steps: int = 50  # a train-loss point in loss.png every N steps
    init_from: str | None = None  # warm start: weights file (.safetensors) copied where shapes allow
    # Lightning Trainer, passed straight through
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    precision: Precision = "32-true"

    def arch_kwargs(self) -> dict:
        return {k: getattr(self, k) for k in ARCH_KWARGS[self.arch]}

    def net_arch(self) -> str:
        """Architecture of the net this run trains and exports (pix2pix: its U-Net generator)."""
        return NET_ARCH[self.arch]


_FIELDS = {f.name: f for f in dataclasses.fields(NetConfig)}


def preset_path(preset: str) -> Path:
    p = Path(preset).expanduser()
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ChromalabError(f"{p}: config file not found")
        return p
    q = CONFIG_DIR / f"net_{preset}.yaml"
    if not q.is_file():
        names = sorted(f.stem[4:] for f in CONFIG_DIR.glob("net_*.yaml"))
        raise ChromalabError(f"unknown preset {preset!r} (choose from {', '.join(names)}, or a .yaml path)")
    return q


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        d = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ChromalabError(f"{path}: unreadable YAML ({type(e).__name__}: {e})".replace("\n", " ")) from None
    if not isinstance(d, dict):
        raise ChromalabError(f"{path}: expected a mapping at the top level")
    return d


def _apply(cfg: dict, updates: dict, where: str) -> None:
    for k, v in updates.items():
        if k not in _FIELDS:
            raise ChromalabError(f"{where}: unknown config key {k!r} (known: {', '.join(_FIELDS)})")
        cfg[k] = v


def _check(cfg: NetConfig, where: str) -> NetConfig:
    from .losses import LOSSES

    if cfg.arch not in NET_FAMILIES:
        raise ChromalabError(f"{where}: unknown arch {cfg.arch!r} (choose from {', '.join(NET_FAMILIES)})")
    if cfg.arch in FIXED_LOSS:
        if cfg.loss != FIXED_LOSS[cfg.arch]:
            raise ChromalabError(f"{where}: {cfg.arch} trains on its own loss ({FIXED_LOSS[cfg.arch]}), not {cfg.loss!r}")
    elif cfg.loss not in LOSSES:
        raise ChromalabError(f"{where}: unknown loss {cfg.loss!r} (choose from {', '.join(LOSSES)})")
    for k in ("width", "depth", "epochs", "batch_size", "size", "d_width", "bin_size", "soft_k", "prior_images",
              "hint_max", "log_every_n_steps"):
        v = getattr(cfg, k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ChromalabError(f"{where}: {k} must be a positive integer, got {v!r}")
    for k in ("train_limit", "val_limit", "test_limit"):
        v = getattr(cfg, k)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise ChromalabError(f"{where}: {k} must be a positive integer or null, got {v!r}")
    if cfg.size % 2**cfg.depth:
        raise ChromalabError(f"{where}: size {cfg.size} is not a multiple of 2**depth = {2**cfg.depth}")
    for k in ("temperature", "prior_sigma", "soft_sigma"):
        v = getattr(cfg, k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ChromalabError(f"{where}: {k} must be a positive number, got {v!r}")
    if isinstance(cfg.rebalance, bool) or not isinstance(cfg.rebalance, (int, float)) or not 0 <= cfg.rebalance <= 1:
        raise ChromalabError(f"{where}: rebalance must be a number in [0, 1], got {cfg.rebalance!r}")
    v = cfg.val_check_interval
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
        raise ChromalabError(f"{where}: val_check_interval must be a fraction of an epoch in (0, 1], got {v!r}")
    for k in ("ce_weight", "reg_weight", "class_weight", "hint_p_none", "hint_p_geom"):
        v = getattr(cfg, k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ChromalabError(f"{where}: {k} must be a non-negative number, got {v!r}")
    if not 0 < cfg.hint_p_geom <= 1 or cfg.hint_p_none > 1:
        raise ChromalabError(f"{where}: hint_p_geom must be in (0, 1] and hint_p_none in [0, 1]")
    if not isinstance(cfg.loss_weights, dict):
        raise ChromalabError(f"{where}: loss_weights must be a mapping, e.g. {{gamma: 2.0}}")
    return cfg


def resolve_config(arch: str, loss: str | None, preset: str, overrides: dict | None = None,
                   trainer_overrides: dict | None = None) -> NetConfig:
    """Defaults < preset common < preset[arch] < preset loss[loss] < overrides < trainer options."""
    path = preset_path(preset)
    y = _read_yaml(path)
    unknown = set(y) - {"common", "loss", *NET_FAMILIES}
    if unknown:
        raise ChromalabError(f"{path}: unknown section(s) {sorted(unknown)} (common, loss, {', '.join(NET_FAMILIES)})")
    d = asdict(NetConfig())
    d["arch"] = arch
    d["preset"] = preset
    _apply(d, y.get("common") or {}, f"{path} [common]")
    _apply(d, y.get(arch) or {}, f"{path} [{arch}]")
    if arch in FIXED_LOSS:
        if loss is not None and loss != FIXED_LOSS[arch]:
            raise ChromalabError(f"{arch} trains on its own loss ({FIXED_LOSS[arch]}); leave out --loss")
        d["loss"] = FIXED_LOSS[arch]
    elif loss is not None:
        d["loss"] = loss
    _apply(d, (y.get("loss") or {}).get(d["loss"]) or {}, f"{path} [loss.{d['loss']}]")
    _apply(d, overrides or {}, "--set")
    _apply(d, trainer_overrides or {}, "trainer options")
    return _check(NetConfig(**d), str(path))


def _abs(path) -> str:
    """A data path as written into config.yaml: absolute, so --resume works from any folder."""
    return str(Path(path).expanduser().absolute())


def _devices(v):
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    if isinstance(v, str) and "," in v:
        return [int(x) for x in v.split(",") if x.strip()]
    return v


# ---- the run recorder: metrics.csv, loss.png, timings (state lives in the checkpoint) ------------
def _recorder_class():
    import lightning.pytorch as pl

    class RunRecorder(pl.Callback):
        """Writes ``metrics.csv`` and ``loss.png`` after every epoch; counts training time and images.

        Its rows are part of the checkpoint (``state_dict``), so a resumed run rewrites the
        file from the checkpoint and continues it.
        """

        def __init__(self, folder: Path, log: Callable[[str], None], heartbeat_s: float | None = None,
                     every_n_steps: int = 50):
            self.folder = Path(folder)
            self.say = log
            # without a progress bar (logs, CI), a line every `heartbeat_s` seconds shows the run is alive
            self.heartbeat_s = heartbeat_s
            self._last_beat = 0.0
            self._epoch_images = 0  # images of this session's current epoch (for the heartbeat's img/s)
            self.rows: list[dict] = []
            # within-epoch points of the GAN losses (pix2pix): {"epoch": fractional epoch, "d_loss", "g_loss"}
            self.trace: list[dict] = []
            self.train_seconds = 0.0
            self.train_images = 0
            self.session = 0
            self._t0: float | None = None
            self._t_epoch = 0.0
            self.every_n_steps = int(every_n_steps)
            self._window = [0.0, 0]  # train-loss sum and steps since the last trace point

        def state_dict(self) -> dict:
            return {"rows": self.rows, "train_seconds": self.train_seconds,
                    "train_images": self.train_images, "session": self.session, "trace": self.trace}

        def load_state_dict(self, state: dict) -> None:
            self.rows = list(state.get("rows", []))
            self.trace = list(state.get("trace", []))
            self.train_seconds = float(state.get("train_seconds", 0.0))
            self.train_images = int(state.get("train_images", 0))
            self.session = int(state.get("session", 0))

        def on_train_start(self, trainer, pl_module) -> None:
            self.session += 1
            # the clock runs from here: a run resumed from a mid-epoch checkpoint (validation several
            # times per epoch) gets no on_train_epoch_start for the rest of that epoch
            self._t0 = self._t_epoch = self._last_beat = time.perf_counter()
            self._epoch_images = 0
            if self.rows:
                self.say(f"resuming at epoch {trainer.current_epoch} (session {self.session}); "
                         f"{len(self.rows)} epoch row(s) kept in metrics.csv")
            if trainer.is_global_zero:
                self._write(trainer)

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._t0 = time.perf_counter()
            self._t_epoch = self._last_beat = self._t0
            self._epoch_images = 0
            self.trace = [t for t in self.trace if t["epoch"] <= trainer.current_epoch]  # a killed epoch's points go

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            n = len(batch[0]) * trainer.world_size
            self.train_images += n
            total = trainer.num_training_batches
            take = getattr(pl_module, "take_window", None)  # GAN: mean D / G losses since the last point
            if take is not None and isinstance(total, int) and total > 0:
                every = max(1, total // TRACE_POINTS_PER_EPOCH)
                if (batch_idx + 1) % every == 0 or batch_idx + 1 == total:
                    point = take()
                    if point:
                        self.trace.append({"epoch": trainer.current_epoch + (batch_idx + 1) / total, **point})
            elif outputs is not None:  # a train-loss point every N steps (outputs: the step's loss, or {"loss": ..})
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                self._window[0] += float(loss.detach())
                self._window[1] += 1
                if self._window[1] >= self.every_n_steps and isinstance(total, int) and total > 0:
                    self.trace.append({"epoch": trainer.current_epoch + (batch_idx + 1) / total,
                                       "train_loss": self._window[0] / self._window[1]})
                    self._window = [0.0, 0]
            self._epoch_images += n
            now = time.perf_counter()
            if self.heartbeat_s and trainer.is_global_zero and now - self._last_beat >= self.heartbeat_s:
                self._last_beat = now
                rate = self._epoch_images / max(now - self._t_epoch, 1e-9)
                acc = getattr(pl_module, "_train", None)  # this rank's running sum: no collective call here
                loss = f", loss {acc[0] / acc[1]:.5f}" if acc is not None and acc[1] > 0 else ""
                self.say(f"  epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: batch {batch_idx + 1:,}/{total}, "
                         f"{rate:.0f} img/s{loss}, {self.train_images:,} images seen")

        def _stop_clock(self) -> None:
            if self._t0 is not None:
                self.train_seconds += time.perf_counter() - self._t0
                self._t0 = None

        def on_validation_start(self, trainer, pl_module) -> None:
            if not trainer.sanity_checking:
                self._stop_clock()

        def on_validation_end(self, trainer, pl_module) -> None:
            if trainer.sanity_checking:
                return
            m = trainer.callback_metrics

            def get(k):
                return float(m[k]) if k in m else float("nan")

            total = trainer.num_training_batches
            done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
            frac = min(done / total, 1.0) if isinstance(total, int) and total > 0 else 1.0
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
            row = {
                "epoch": trainer.current_epoch, "progress": round(trainer.current_epoch + frac, 4),
                "step": trainer.global_step, "images": self.train_images,
                "train_loss": pl_module.train_loss_epoch(), "val_loss": get("val_loss"),
                "val_psnr": get("val_psnr"), "val_ssim": get("val_ssim"), "lr": lr,
                "train_seconds": round(self.train_seconds, 3), "session": self.session,
            }
            row.update(pl_module.extra_epoch_metrics())
            self.rows = [r for r in self.rows if r.get("progress", r["epoch"] + 1) < row["progress"]] + [row]
            if trainer.state.fn == "fit":
                self._t0 = time.perf_counter()  # training goes on after a mid-epoch validation
            if trainer.is_global_zero:
                self._write(trainer)
                extra = "".join(f", {k} {v:.4f}" for k, v in row.items()
                                if k.startswith(("d_", "g_", "val_")) and k not in ("val_loss", "val_psnr", "val_ssim"))
                self.say(f"epoch {row['progress']:.2f}/{trainer.max_epochs}: train loss {row['train_loss']:.5f}, "
                         f"val loss {row['val_loss']:.5f}, val PSNR {row['val_psnr']:.2f} dB, "
                         f"val SSIM {row['val_ssim']:.4f}{extra} ({self.train_seconds:.0f} s training, "
                         f"{self.train_images:,} images)")

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self._stop_clock()

        def on_exception(self, trainer, pl_module, exception) -> None:
            if trainer.is_global_zero and (self.folder / "last.ckpt").is_file():
                self.say(f"stopped ({type(exception).__name__}) in epoch {trainer.current_epoch + 1}; "
                         f"continue with: chromalab train ... --out {self.folder} --resume")

        def _write(self, trainer) -> None:
            path = self.folder / "metrics.csv"
            tmp = path.with_name("metrics.csv.tmp")
            columns = metric_columns(self.rows)
            with tmp.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=columns)
                w.writeheader()
                for r in self.rows:
                    w.writerow({k: r.get(k) for k in columns})
            tmp.replace(path)
            if self.rows:
                plot_losses(self.rows, self.folder / "loss.png", trace=self.trace)

    return RunRecorder


def metric_columns(rows: list[dict]) -> list[str]:
    """The columns of metrics.csv: :data:`METRIC_COLUMNS`, then the extra ones the rows carry
    (pix2pix: ``d_loss``, ``g_loss``) in the order they first appear. Regression runs: unchanged."""
    cols = list(METRIC_COLUMNS)
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def plot_losses(rows: list[dict], path: Path, trace: list[dict] | None = None) -> None:
    """train / val loss per epoch (left), val PSNR / SSIM (middle) and, when the rows have them
    (pix2pix), the discriminator and generator adversarial losses (right): lines through the
    within-epoch ``trace`` points (about 50 per epoch), markers at the epoch means -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r.get("progress", r["epoch"] + 1) for r in rows]
    gan = any("d_loss" in r for r in rows)
    colour = any("val_cool_recall" in r for r in rows)
    if gan or colour:
        fig, (a1, a2, a4) = plt.subplots(1, 3, figsize=(13.5, 3.4))
    else:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    steps = [t for t in (trace or []) if "train_loss" in t]
    if steps:
        a1.plot([t["epoch"] for t in steps], [t["train_loss"] for t in steps], "-", lw=1, label="train (running)")
    else:
        a1.plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    a1.plot(ep, [r["val_loss"] for r in rows], "s-", label="val")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.set_title("loss" if steps else "loss (train: mean over the epoch)")
    a1.legend()
    if colour:
        a4.plot(ep, [r.get("val_cool_recall", float("nan")) for r in rows], "o-", color="C0", label="cool recall")
        a4.plot(ep, [r.get("val_auc_rb", float("nan")) for r in rows], "s-", color="C1", label="AuC rebalanced")
        a4.set_xlabel("epoch")
        a4.set_title("validation colour metrics")
        a4.legend(fontsize="small")
    a2.plot(ep, [r["val_psnr"] for r in rows], "o-", color="C2")
    a2.set_xlabel("epoch")
    a2.set_ylabel("val PSNR dB", color="C2")
    a3 = a2.twinx()
    a3.plot(ep, [r["val_ssim"] for r in rows], "s-", color="C3")
    a3.set_ylabel("val SSIM", color="C3")
    a2.set_title("validation (canonical metrics)")
    if gan:
        trace = [t for t in (trace or []) if "d_loss" in t]
        style = "o" if trace else "o-"
        if trace:
            tx = [t["epoch"] for t in trace]
            a4.plot(tx, [t["d_loss"] for t in trace], "-", color="C4", lw=1)
            a4.plot(tx, [t["g_loss"] for t in trace], "-", color="C5", lw=1)
        a4.plot(ep, [r.get("d_loss", float("nan")) for r in rows], style, color="C4", label="D (real/fake BCE)")
        a4.plot(ep, [r.get("g_loss", float("nan")) for r in rows], style.replace("o", "s"), color="C5",
                label="G (adversarial BCE)")
        a4.axhline(0.6931, color="0.6", lw=0.8, ls="--", label="ln 2 (D at chance)")
        a4.set_xlabel("epoch")
        a4.set_ylabel("loss")
        a4.set_title("GAN losses (markers: epoch means)")
        a4.legend(fontsize="small")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


# ---- module builders per family: (cfg, net, datamodule, run folder, log) -> LightningModule -------------
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
    from .vivid import load_or_compute_prior

    prior = load_or_compute_prior(out, lambda: dm.split("train"), net.centres.cpu().numpy(), lam=cfg.rebalance,
                                  sigma=cfg.prior_sigma, max_images=cfg.prior_images, log=log)
    return ColorNetModule(net, np.asarray(prior["weights"]), ce_weight=cfg.ce_weight, reg_weight=cfg.reg_weight,
                          class_weight=cfg.class_weight, hint_p_none=cfg.hint_p_none, hint_p_geom=cfg.hint_p_geom,
                          hint_max=cfg.hint_max, seed=cfg.seed, lr=cfg.lr, weight_decay=cfg.weight_decay,
                          schedule=cfg.schedule, warmup=cfg.warmup, channels_last=cfg.channels_last)


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


def _write_yaml(path: Path, cfg: NetConfig) -> None:
    import yaml

    head = "# resolved config of this run (chromalab train); --resume reads it back\n"
    path.write_text(head + yaml.safe_dump(asdict(cfg), sort_keys=False))


def load_run_config(folder: Path) -> NetConfig:
    p = Path(folder) / "config.yaml"
    if not p.is_file():
        raise ChromalabError(f"{p}: missing; cannot resume a run without its config")
    d = _read_yaml(p)
    d2 = asdict(NetConfig())
    _apply(d2, d, str(p))
    return _check(NetConfig(**d2), str(p))


def _shareable_config(cfg: NetConfig) -> dict:
    """The resolved config as stored inside a weights file, which may be shared or bundled: without
    the local data path (where the data lived on the training machine says nothing about the model;
    the run folder's config.yaml keeps it for --resume)."""
    d = asdict(cfg)
    d["data"] = None
    return d


def _export_best(cfg: NetConfig, net, ckpt_path: str | None, out: Path, train_info: dict):
    """Load the best-val-SSIM weights (weights_only) into ``net`` and write best.safetensors."""
    import torch

    from ..predictors.nets import save_net

    if ckpt_path and Path(ckpt_path).is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
        net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    net = net.cpu().float().eval()
    meta = {"arch": cfg.net_arch(), "arch_kwargs": getattr(net, "arch_kwargs", cfg.arch_kwargs()),
            "input_size": cfg.size, "loss": cfg.loss, "family": cfg.arch, "name": out.name, "config": _shareable_config(cfg),
            "train": train_info}
    save_net(out / "best.safetensors", net, meta)
    return net


def train_net(model: str, loss: str | None = None, preset: str = "quick", data=None, out=None,
              resume: bool = False, trainer_overrides: dict | None = None, overrides: dict | None = None,
              progress: bool | None = None, log: Callable[[str], None] | None = None,
              callbacks: list | None = None) -> dict:
    """Train ``model`` (``cnn`` | ``unet`` | ``pix2pix`` | ``vivid``) into the run folder ``out``; returns the run.json dict.

    ``callbacks``: extra Lightning callbacks (monitoring, tests); ``progress``: show a progress bar
    (default: when stderr is a terminal); ``log``: where the one-line messages go (default: stderr).
    """
    if model not in NET_FAMILIES:
        raise ChromalabError(f"unknown net {model!r} (choose from {', '.join(NET_FAMILIES)})")
    if out is None:
        raise ChromalabError("--out is required: the run folder to write")
    out = Path(out).expanduser()
    if log is None:
        from rich.console import Console

        _console = Console(stderr=True)

        def log(msg: str) -> None:
            from lightning.fabric.utilities.rank_zero import rank_zero_only

            if getattr(rank_zero_only, "rank", 0) == 0:  # DDP: each line once, from rank 0
                _console.print(msg, markup=False, highlight=False, soft_wrap=True)

    if progress is None:
        progress = sys.stderr.isatty()
    last = out / "last.ckpt"
    if resume:
        if not last.is_file():
            raise ChromalabError(f"{last}: nothing to resume from (run without --resume to start the run)")
        cfg = load_run_config(out)
        if cfg.arch != model:
            raise ChromalabError(f"{out}: this run trains {cfg.arch!r}, not {model!r}")
        if loss is not None and loss != cfg.loss:
            what = "its own loss" if model in FIXED_LOSS else "loss"
            raise ChromalabError(f"{out}: this run uses {what} {cfg.loss!r}, not {loss!r}")
        d = asdict(cfg)
        changed = sorted(k for k, v in (overrides or {}).items() if k in d and d[k] != v and k not in RESUME_FREE)
        if changed:
            raise ChromalabError(
                f"{out}: cannot change {', '.join(changed)} when resuming (the optimizer schedule and the data "
                f"are fixed by the run); only {', '.join(sorted(RESUME_FREE))} may change"
            )
        _apply(d, overrides or {}, "--set")
        _apply(d, trainer_overrides or {}, "trainer options")
        if data is not None:
            d["data"] = _abs(data)
        cfg = _check(NetConfig(**d), "--set")
    else:
        if last.exists() or (out / "run.json").exists():
            raise ChromalabError(f"{out}: already holds a run; pass --resume to continue it, or choose another --out")
        if loss is None and model not in FIXED_LOSS:
            raise ChromalabError("--loss is required for nets (mse, l1, hybrid, ssim-hybrid)")
        cfg = resolve_config(model, loss, preset, overrides, trainer_overrides)
        if data is not None:
            cfg.data = _abs(data)
    out.mkdir(parents=True, exist_ok=True)
    _write_yaml(out / "config.yaml", cfg)
    return _fit(cfg, out, resume=resume, progress=progress, log=log, extra_callbacks=callbacks or [])


def _quiet_lightning() -> None:
    """Drop Lightning's banner lines and warnings that say nothing about this run."""
    import logging
    import warnings

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    for msg in (r".*Checkpoint directory .* exists and is not empty.*", r".*LeafSpec.*",
                r".*does not have many workers.*", r".*TreeSpec.*",
                r".*Conversion from CIE-LAB.*negative Z values.*"):  # predicted ab outside the sRGB gamut: clipped
        warnings.filterwarnings("ignore", message=msg)


def _fit(cfg: NetConfig, out: Path, resume: bool, progress: bool, log, extra_callbacks: list) -> dict:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

    from ..evaluate import evaluate_split
    from ..predictors.nets import build_net, wrap_net
    from .datamodule import ColorDataModule

    _quiet_lightning()
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    net = build_net(cfg.net_arch(), **cfg.arch_kwargs())
    if cfg.init_from and not resume:
        init_from_weights(net, cfg.init_from, log)
    dm = ColorDataModule(data=cfg.data, size=cfg.size, train_limit=cfg.train_limit, val_limit=cfg.val_limit,
                         test_limit=cfg.test_limit, batch_size=cfg.batch_size, flip=cfg.flip,
                         num_workers=cfg.num_workers, progress=progress, labels=cfg.arch == "colornet")
    module = MODULE_BUILDERS[cfg.arch](cfg, net, dm, out, log)
    recorder = _recorder_class()(out, log, heartbeat_s=None if progress else 60.0,
                                 every_n_steps=cfg.log_every_n_steps)
    best_cb = ModelCheckpoint(dirpath=out, filename="best-weights", monitor=cfg.monitor, mode="max", save_top_k=1,
                              save_weights_only=True, auto_insert_metric_name=False, enable_version_counter=False)
    # the full checkpoint of every epoch, overwritten: what --resume continues from. (Lightning 2.6 writes
    # `save_last` only in epochs where a top-k checkpoint was saved, i.e. not after an epoch that did not
    # improve val SSIM, so the last checkpoint is its own unmonitored callback.)
    last_cb = ModelCheckpoint(dirpath=out, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    callbacks = [recorder, best_cb, last_cb, *extra_callbacks]
    if progress:
        callbacks.append(RichProgressBar(leave=False))
    strategy = cfg.strategy
    if cfg.arch == "pix2pix" and strategy == "ddp":
        # each of the two steps leaves the other network without gradients, which plain DDP rejects
        strategy = "ddp_find_unused_parameters_true"
    trainer = pl.Trainer(
        default_root_dir=out, max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=_devices(cfg.devices),
        strategy=strategy, precision=cfg.precision, callbacks=callbacks, logger=False,
        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        log_every_n_steps=10, val_check_interval=cfg.val_check_interval,
        limit_train_batches=cfg.limit_train_batches,  # None: Lightning's default (every batch)
    )
    n_params = sum(p.numel() for p in net.parameters())
    disc = getattr(module, "disc", None)
    d_note = f" + a {sum(p.numel() for p in disc.parameters()):,}-parameter discriminator" if disc is not None else ""
    log(f"training {cfg.arch} ({n_params:,} parameters{d_note}, width {cfg.width}, depth {cfg.depth}) with {cfg.loss} "
        f"loss, preset {cfg.preset}: {cfg.epochs} epochs into {out}")
    t_wall = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(out / "last.ckpt") if resume else None, weights_only=True)
    wall = time.perf_counter() - t_wall
    if not trainer.state.finished:
        raise ChromalabError(f"{out}: training did not finish ({trainer.state.status.value}); continue with --resume")
    if not trainer.is_global_zero:
        return {}
    best_path = best_cb.best_model_path
    train_info = {
        "train_seconds": round(recorder.train_seconds, 2),
        "train_images": recorder.train_images,
        "images_per_second": round(recorder.train_images / recorder.train_seconds, 1)
        if recorder.train_seconds > 0 else None,
    }
    best_row = max(recorder.rows, key=lambda r: r.get(cfg.monitor, float("-inf"))) if recorder.rows else {}
    net = _export_best(cfg, module.net, best_path, out, train_info)
    pred = wrap_net(net, input_size=cfg.size, name=out.name,
                    meta={"arch": cfg.net_arch(), "arch_kwargs": getattr(net, "arch_kwargs", cfg.arch_kwargs()),
                          "loss": cfg.loss, "family": cfg.arch})
    test = evaluate_split(pred, dm.split("test"), progress=progress)
    test = {"name": out.name, "model": pred.describe(), "source": str(dm.prepared().source["path"]), **test}
    (out / "test.json").write_text(json.dumps(test, indent=2))
    info = {
        "kind": "net", "arch": cfg.arch, "loss": cfg.loss, "preset": cfg.preset, **train_info,
        "wall_seconds_last_session": round(wall, 2), "epochs": cfg.epochs, "sessions": recorder.session,
        "best_epoch": best_row.get("epoch"), "best_progress": best_row.get("progress"),
        "best_step": best_row.get("step"), "monitor": cfg.monitor, "best_monitor": best_row.get(cfg.monitor),
        "best_val_ssim": best_row.get("val_ssim"),
        "best_val_psnr": best_row.get("val_psnr"), "parameters": n_params,
        **({"discriminator_parameters": sum(p.numel() for p in disc.parameters())} if disc is not None else {}),
        "accelerator": str(type(trainer.accelerator).__name__), "devices": trainer.num_devices,
        "precision": cfg.precision, "torch_threads": torch.get_num_threads(),
        "test_psnr": test["psnr"], "test_ssim": test["ssim"], "test_count": test["count"],
        "test_cf": test["cf"], "test_delta_cf": test["delta_cf"],
        "weights": "best.safetensors", "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / "run.json").write_text(json.dumps(info, indent=2))
    log(f"done: test PSNR {test['psnr']:.2f} dB, SSIM {test['ssim']:.4f} on {test['count']:,} images; "
        f"{info['train_seconds']:.0f} s training at {info['images_per_second']} img/s -> {out}")
    return info
