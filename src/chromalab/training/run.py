"""``chromalab train cnn|unet|pix2pix|vivid|colornet``: config -> Lightning fit -> a run folder.

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
+ PatchGAN, :mod:`chromalab.training.gan`), ``vivid`` (U-Net classifying ab bins,
:mod:`chromalab.training.vivid`) and ``colornet`` (:mod:`chromalab.training.colornet`) have their own
loss and take no ``--loss``. A pix2pix run exports only its generator (a plain ``unet`` weights file).

The config and its resolution: :mod:`chromalab.training.config` (a run's ``config.yaml`` given back as
``--preset`` re-runs it). The callbacks writing metrics.csv and loss.png:
:mod:`chromalab.training.callbacks`; the module each family trains: :mod:`chromalab.training.builders`.

``--resume`` reloads the run's own ``config.yaml`` (``--set`` still applies, e.g. more epochs)
and continues from ``last.ckpt`` (loaded with ``weights_only=True``); ``metrics.csv`` is
rewritten from the rows stored in that checkpoint and then continued, so epochs that finished
after the checkpoint (if the process was killed) are not duplicated.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import ChromalabError
from .builders import MODULE_BUILDERS, init_from_weights
from .config import (
    ARCH_KWARGS,
    FIXED_LOSS,
    NET_ARCH,
    NET_FAMILIES,
    RESUME_FREE,
    NetConfig,
    is_run_config,
    load_run_config,
    preset_path,
    resolve_config,
    update_config,
    write_run_config,
)

__all__ = ["ARCH_KWARGS", "FIXED_LOSS", "MODULE_BUILDERS", "NET_ARCH", "NET_FAMILIES", "RESUME_FREE", "NetConfig",
           "init_from_weights", "load_run_config", "preset_path", "resolve_config", "train_net"]


def _abs(path) -> str:
    """A data path as written into config.yaml: absolute, so --resume works from any folder."""
    return str(Path(path).expanduser().absolute())


def _devices(v):
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    if isinstance(v, str) and "," in v:
        return [int(x) for x in v.split(",") if x.strip()]
    return v


def _stderr_log() -> Callable[[str], None]:
    from rich.console import Console

    console = Console(stderr=True)

    def log(msg: str) -> None:
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        if getattr(rank_zero_only, "rank", 0) == 0:  # DDP: each line once, from rank 0
            console.print(msg, markup=False, highlight=False, soft_wrap=True)

    return log


def _resume_config(model: str, loss: str | None, out: Path, overrides: dict, trainer_overrides: dict) -> NetConfig:
    """The run's own config.yaml with the overrides --resume allows (RESUME_FREE)."""
    cfg = load_run_config(out)
    if cfg.arch != model:
        raise ChromalabError(f"{out}: this run trains {cfg.arch!r}, not {model!r}")
    if loss is not None and loss != cfg.loss:
        what = "its own loss" if model in FIXED_LOSS else "loss"
        raise ChromalabError(f"{out}: this run uses {what} {cfg.loss!r}, not {loss!r}")
    d = cfg.model_dump()
    changed = sorted(k for k, v in overrides.items() if k in d and d[k] != v and k not in RESUME_FREE)
    if changed:
        raise ChromalabError(
            f"{out}: cannot change {', '.join(changed)} when resuming (the optimizer schedule and the data "
            f"are fixed by the run); only {', '.join(sorted(RESUME_FREE))} may change"
        )
    cfg = update_config(cfg, overrides, "--set")
    return update_config(cfg, trainer_overrides, "trainer options")


def train_net(model: str, loss: str | None = None, preset: str = "quick", data=None, out=None,
              resume: bool = False, trainer_overrides: dict | None = None, overrides: dict | None = None,
              progress: bool | None = None, log: Callable[[str], None] | None = None,
              callbacks: list | None = None) -> dict:
    """Train ``model`` (one of :data:`NET_FAMILIES`) into the run folder ``out``; returns the run.json dict.

    ``preset``: ``quick`` | ``full``, a YAML file of the same shape, or a run's saved config.yaml
    (which re-runs that run). ``callbacks``: extra Lightning callbacks (monitoring, tests);
    ``progress``: show a progress bar (default: when stderr is a terminal); ``log``: where the
    one-line messages go (default: stderr).
    """
    if model not in NET_FAMILIES:
        raise ChromalabError(f"unknown net {model!r} (choose from {', '.join(NET_FAMILIES)})")
    if out is None:
        raise ChromalabError("--out is required: the run folder to write")
    out = Path(out).expanduser()
    log = log or _stderr_log()
    if progress is None:
        progress = sys.stderr.isatty()
    last = out / "last.ckpt"
    if resume:
        if not last.is_file():
            raise ChromalabError(f"{last}: nothing to resume from (run without --resume to start the run)")
        cfg = _resume_config(model, loss, out, overrides or {}, trainer_overrides or {})
    else:
        if last.exists() or (out / "run.json").exists():
            raise ChromalabError(f"{out}: already holds a run; pass --resume to continue it, or choose another --out")
        if loss is None and model not in FIXED_LOSS and not is_run_config(preset):
            raise ChromalabError("--loss is required for nets (mse, l1, hybrid, ssim-hybrid)")
        cfg = resolve_config(model, loss, preset, overrides, trainer_overrides)
    if data is not None:
        cfg.data = _abs(data)
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(out / "config.yaml", cfg)
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


def _trainer(cfg: NetConfig, out: Path, progress: bool, recorder, extra: list):
    """The Lightning Trainer of a run, and its best-weights checkpoint callback."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

    best_cb = ModelCheckpoint(dirpath=out, filename="best-weights", monitor=cfg.monitor, mode="max", save_top_k=1,
                              save_weights_only=True, auto_insert_metric_name=False, enable_version_counter=False)
    # the full checkpoint of every epoch, overwritten: what --resume continues from. (Lightning 2.6 writes
    # `save_last` only in epochs where a top-k checkpoint was saved, i.e. not after an epoch that did not
    # improve val SSIM, so the last checkpoint is its own unmonitored callback.)
    last_cb = ModelCheckpoint(dirpath=out, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    callbacks = [recorder, best_cb, last_cb, *extra]
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
    return trainer, best_cb


def _fit(cfg: NetConfig, out: Path, resume: bool, progress: bool, log, extra_callbacks: list) -> dict:
    import lightning.pytorch as pl
    import torch

    from ..predictors.nets import build_net
    from .callbacks import Heartbeat, RunRecorder
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
    recorder = RunRecorder(out, log, every_n_steps=cfg.log_every_n_steps)
    heartbeat = [] if progress else [Heartbeat(recorder, log, every_s=60.0)]
    trainer, best_cb = _trainer(cfg, out, progress, recorder, [*extra_callbacks, *heartbeat])
    n_params = sum(p.numel() for p in net.parameters())
    disc = getattr(module, "disc", None)
    d_params = sum(p.numel() for p in disc.parameters()) if disc is not None else None
    d_note = f" + a {d_params:,}-parameter discriminator" if d_params is not None else ""
    log(f"training {cfg.arch} ({n_params:,} parameters{d_note}, width {cfg.width}, depth {cfg.depth}) with {cfg.loss} "
        f"loss, preset {cfg.preset}: {cfg.epochs} epochs into {out}")
    t_wall = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(out / "last.ckpt") if resume else None, weights_only=True)
    wall = time.perf_counter() - t_wall
    if not trainer.state.finished:
        raise ChromalabError(f"{out}: training did not finish ({trainer.state.status.value}); continue with --resume")
    if not trainer.is_global_zero:
        return {}
    train_info = {
        "train_seconds": round(recorder.train_seconds, 2),
        "train_images": recorder.train_images,
        "images_per_second": round(recorder.train_images / recorder.train_seconds, 1)
        if recorder.train_seconds > 0 else None,
    }
    net = _export_best(cfg, module.net, best_cb.best_model_path, out, train_info)
    test = _test(cfg, net, dm, out, progress)
    best_row = max(recorder.rows, key=lambda r: r.get(cfg.monitor, float("-inf"))) if recorder.rows else {}
    info = {
        "kind": "net", "arch": cfg.arch, "loss": cfg.loss, "preset": cfg.preset, **train_info,
        "wall_seconds_last_session": round(wall, 2), "epochs": cfg.epochs, "sessions": recorder.session,
        "best_epoch": best_row.get("epoch"), "best_progress": best_row.get("progress"),
        "best_step": best_row.get("step"), "monitor": cfg.monitor, "best_monitor": best_row.get(cfg.monitor),
        "best_val_ssim": best_row.get("val_ssim"),
        "best_val_psnr": best_row.get("val_psnr"), "parameters": n_params,
        **({"discriminator_parameters": d_params} if d_params is not None else {}),
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


def _export_best(cfg: NetConfig, net, ckpt_path: str | None, out: Path, train_info: dict):
    """Load the best-val-SSIM weights (weights_only) into ``net`` and write best.safetensors."""
    import torch

    from ..predictors.nets import save_net

    if ckpt_path and Path(ckpt_path).is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
        net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    net = net.cpu().float().eval()
    meta = {"arch": cfg.net_arch(), "arch_kwargs": getattr(net, "arch_kwargs", cfg.arch_kwargs()),
            "input_size": cfg.size, "loss": cfg.loss, "family": cfg.arch, "name": out.name,
            "config": cfg.shareable(), "train": train_info}
    save_net(out / "best.safetensors", net, meta)
    return net


def _test(cfg: NetConfig, net, dm, out: Path, progress: bool) -> dict:
    """test.json: the exported net on the test split."""
    from ..evaluate import evaluate_split
    from ..predictors.nets import wrap_net

    pred = wrap_net(net, input_size=cfg.size, name=out.name,
                    meta={"arch": cfg.net_arch(), "arch_kwargs": getattr(net, "arch_kwargs", cfg.arch_kwargs()),
                          "loss": cfg.loss, "family": cfg.arch})
    test = evaluate_split(pred, dm.split("test"), progress=progress)
    test = {"name": out.name, "model": pred.describe(), "source": str(dm.prepared().source["path"]), **test}
    (out / "test.json").write_text(json.dumps(test, indent=2))
    return test
