"""Training on Lightning: config resolution, a short fit plus resume, a SIGKILLed run resumed from the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from chromalab.errors import ChromalabError
from chromalab.training.run import NetConfig, resolve_config, train_net

# a net and data small enough for seconds of training on a shared 2-core CPU
TINY = {"width": 4, "depth": 2, "batch_size": 16, "val_limit": 32, "test_limit": 16, "num_threads": 1,
        "train_limit": 64}


def read_rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


class FailAt(pl.Callback):
    """Raises at the start of (epoch, batch): a crash in the middle of an epoch."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise RuntimeError("simulated crash")


def test_resolve_config_precedence(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text(textwrap.dedent("""
        common: {epochs: 3, width: 8, lr: 0.001}
        unet: {width: 12, residual: true}
        loss:
          l1: {lr: 0.005}
    """))
    cfg = resolve_config("unet", "l1", str(preset), overrides={"epochs": 5}, trainer_overrides={"devices": "2"})
    assert (cfg.epochs, cfg.width, cfg.residual, cfg.lr, cfg.devices) == (5, 12, True, 0.005, "2")
    assert cfg.depth == NetConfig().depth  # untouched default
    cfg = resolve_config("cnn", "mse", str(preset))
    assert (cfg.width, cfg.lr, cfg.arch) == (8, 0.001, "cnn")
    with pytest.raises(ChromalabError, match="unknown config key 'epoch'"):
        resolve_config("unet", "mse", "quick", overrides={"epoch": 2})
    with pytest.raises(ChromalabError, match="unknown preset 'fastest'"):
        resolve_config("unet", "mse", "fastest")
    with pytest.raises(ChromalabError, match="not a multiple of 2\\*\\*depth"):
        resolve_config("unet", "mse", "quick", overrides={"depth": 7})
    for p in ("quick", "full"):  # the shipped presets resolve for all 8 configurations, pix2pix and vivid
        for arch in ("cnn", "unet"):
            for loss in ("mse", "l1", "hybrid", "ssim-hybrid"):
                assert resolve_config(arch, loss, p).loss == loss
        assert resolve_config("pix2pix", None, p).loss == "gan-l1"
        assert resolve_config("vivid", None, p).loss == "rebalanced-ce"
        cn = resolve_config("colornet", None, p)
        assert (cn.loss, cn.monitor, cn.val_check_interval) == ("ce+l1+class", "val_select", 0.5)
        assert resolve_config("colornet", None, p, overrides={"class_weight": 0}).class_weight == 0


def test_planned_and_bad_calls(tmp_path, tiny_zip):
    with pytest.raises(ChromalabError, match="unknown net 'resnet'"):
        train_net("resnet", loss="mse", out=tmp_path / "r")
    with pytest.raises(ChromalabError, match="pix2pix trains on its own loss"):
        train_net("pix2pix", loss="mse", out=tmp_path / "r")
    with pytest.raises(ChromalabError, match="nothing to resume"):
        train_net("unet", loss="mse", out=tmp_path / "empty", resume=True)
    with pytest.raises(ChromalabError, match="--loss is required"):
        train_net("unet", out=tmp_path / "r2")


def test_fit_crash_resume_and_evaluate(tmp_path, tiny_zip):
    """Two 1-step epochs; the second crashes mid-epoch; --resume finishes it, metrics continue."""
    from chromalab.evaluate import evaluate_split
    from chromalab.registry import load_predictor

    run = tmp_path / "run"
    ovr = {**TINY, "epochs": 2, "limit_train_batches": 1}
    trainer_opts = {"accelerator": "cpu", "devices": "1", "precision": "32-true"}
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_net("unet", loss="hybrid", data=tiny_zip, out=run, overrides=ovr, trainer_overrides=trainer_opts,
                  progress=False, callbacks=[FailAt(1, 0)])
    rows = read_rows(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["0"] and (run / "last.ckpt").is_file()
    assert not (run / "run.json").exists()
    with pytest.raises(ChromalabError, match="already holds a run"):
        train_net("unet", loss="hybrid", data=tiny_zip, out=run, overrides=ovr, progress=False)
    with pytest.raises(ChromalabError, match="cannot change epochs when resuming"):
        train_net("unet", data=tiny_zip, out=run, resume=True, overrides={"epochs": 3}, progress=False)

    info = train_net("unet", data=tiny_zip, out=run, resume=True, progress=False)
    rows2 = read_rows(run / "metrics.csv")
    assert rows2[0] == rows[0]  # the first session's row is kept as it was
    assert [(r["epoch"], r["step"], r["session"]) for r in rows2] == [("0", "1", "1"), ("1", "2", "2")]
    # one row per validation: epochs done and the training images seen so far (one 16-image step per epoch)
    assert [(r["progress"], r["images"]) for r in rows2] == [("1.0", "16"), ("2.0", "32")]
    assert all(np.isfinite(float(r[k])) for r in rows2 for k in ("train_loss", "val_loss", "val_psnr", "val_ssim"))
    for f in ("config.yaml", "metrics.csv", "loss.png", "best.safetensors", "last.ckpt", "test.json", "run.json"):
        assert (run / f).is_file(), f
    ck = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    assert ck["global_step"] == 2 and ck["epoch"] == 1
    meta = json.loads((run / "run.json").read_text())
    assert meta["kind"] == "net" and meta["arch"] == "unet" and meta["loss"] == "hybrid"
    assert meta["sessions"] == 2 and meta["images_per_second"] > 0 and meta == info
    assert meta["train_images"] == 32 and meta["monitor"] == "val_ssim"
    best = max(rows2, key=lambda r: float(r["val_ssim"]))
    assert str(meta["best_epoch"]) == best["epoch"] and str(meta["best_progress"]) == best["progress"]
    # the weights file can be shared: it does not carry this machine's data path (config.yaml does, for --resume)
    from chromalab.predictors.nets import read_meta

    assert read_meta(run / "best.safetensors")["config"]["data"] is None
    assert str(tiny_zip) in (run / "config.yaml").read_text()
    assert str(tiny_zip).encode() not in (run / "best.safetensors").read_bytes()

    # `chromalab evaluate RUN` goes through the registry to best.safetensors
    pred = load_predictor(str(run))
    assert pred.name == "run" and pred.describe()["arch_kwargs"]["width"] == 4
    from chromalab.data.cache import load_prepared

    res = evaluate_split(pred, load_prepared(tiny_zip, progress=False).split("test", limit=16), progress=False)
    test = json.loads((run / "test.json").read_text())
    assert res["psnr"] == pytest.approx(test["psnr"]) and res["ssim"] == pytest.approx(test["ssim"])
    assert test["count"] == 16


CHILD = """
import sys, time
from pathlib import Path
import lightning.pytorch as pl
from chromalab.training.run import train_net

class Hang(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 2 and batch_idx == 2:  # mid-epoch: 2 of 4 batches done
            Path(sys.argv[3]).write_text("hanging")
            time.sleep(600)

train_net("unet", loss="mse", preset="quick", data=sys.argv[1], out=sys.argv[2], progress=False,
          overrides={OVR}, callbacks=[Hang()])
"""


def test_sigkill_mid_epoch_then_resume_from_cli(tmp_path, tiny_zip):
    """A real process SIGKILLed in the middle of epoch 3 of 4; `chromalab train --resume` finishes it."""
    run, marker = tmp_path / "run", tmp_path / "hanging"
    script = tmp_path / "child.py"
    script.write_text(CHILD.replace("{OVR}", repr({**TINY, "epochs": 4})))
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_zip), str(run), str(marker)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"child exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("child did not reach epoch 3 in time")
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    before = read_rows(run / "metrics.csv")
    assert [r["epoch"] for r in before] == ["0", "1"]
    assert not (run / "run.json").exists()

    env = {**os.environ, "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "chromalab.cli", "train", "unet", "--out", str(run), "--resume",
           "--data", str(tiny_zip)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming at epoch 2" in res.stderr
    after = read_rows(run / "metrics.csv")
    assert after[:2] == before  # continued, not restarted
    assert [(r["epoch"], r["session"]) for r in after] == [("0", "1"), ("1", "1"), ("2", "2"), ("3", "2")]
    assert [int(r["step"]) for r in after] == [4, 8, 12, 16]
    assert [(float(r["progress"]), int(r["images"])) for r in after] == [(1, 64), (2, 128), (3, 192), (4, 256)]
    assert float(after[-1]["train_seconds"]) > float(before[-1]["train_seconds"])
    meta = json.loads((run / "run.json").read_text())
    assert meta["sessions"] == 2 and meta["train_images"] == 4 * 64  # killed epoch's images not counted


def test_hflip_flips_l_and_ab_together():
    from chromalab.training.datamodule import hflip_half

    g = torch.Generator().manual_seed(0)
    L = torch.arange(8 * 4 * 4, dtype=torch.float32).view(8, 1, 4, 4)
    ab = torch.stack([L[:, 0], -L[:, 0]], dim=1)
    rgb = L[:, 0, :, :, None].expand(8, 4, 4, 3).to(torch.uint8)  # channels-last image of L
    L2, ab2, rgb2 = hflip_half((L, ab, rgb), generator=g)
    flipped = [bool((L2[i] == L[i].flip(-1)).all()) for i in range(8)]
    kept = [bool((L2[i] == L[i]).all()) for i in range(8)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True)) and 0 < sum(flipped) < 8
    assert torch.equal(ab2, torch.stack([L2[:, 0], -L2[:, 0]], dim=1))  # ab follows its L
    assert torch.equal(rgb2, L2[:, 0, :, :, None].expand(8, 4, 4, 3).to(torch.uint8))  # (B, H, W, 3) too


def test_datamodule_batches(tiny_zip):
    from chromalab.color import compose_rgb_uint8
    from chromalab.training.datamodule import ColorDataModule

    dm = ColorDataModule(data=tiny_zip, batch_size=16, val_limit=20, progress=False)
    dm.setup()
    L, ab = next(iter(dm.train_dataloader()))
    assert L.shape == (16, 1, 64, 64) and ab.shape == (16, 2, 64, 64) and L.dtype == torch.float32
    assert 0 <= float(L.min()) and float(L.max()) <= 100
    vL, vab, vrgb = next(iter(dm.val_dataloader()))
    assert vL.shape[0] == 20 and vrgb.shape == (20, 64, 64, 3) and vrgb.dtype == torch.uint8
    # the ground truth rgb is the image the Lab came from
    rebuilt = compose_rgb_uint8(vL.numpy(), vab.numpy())
    assert np.abs(rebuilt.astype(int) - vrgb.numpy()).max() <= 1
