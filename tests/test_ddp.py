"""2-process DDP on the CPU (gloo) through the CLI: a run SIGKILLed after its first validation, then
``--resume`` with the same DDP options. This is how users with more machines scale the same command."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# a net and data small enough for seconds of training: 64 train images over 2 ranks at batch 16 are
# 2 steps per epoch; validation every half epoch (after each step) on 32 val images (16 per rank)
TINY = {"width": 4, "depth": 2, "train_limit": 64, "batch_size": 16, "val_limit": 32, "test_limit": 16,
        "num_threads": 1, "val_check_interval": 0.5, "epochs": 2}
DDP = ["--strategy", "ddp", "--devices", "2", "--accelerator", "cpu"]

# The first session: the real CLI (`chromalab train ...`), with one test callback added that stops
# both ranks at the start of the second step, i.e. after the validation at half an epoch has written
# last.ckpt. Lightning's launcher starts rank 1 by running this same script with the same arguments.
CHILD = """
import os, sys, time
from pathlib import Path
import lightning.pytorch as pl
import chromalab.training.run as run

class Hang(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 1:
            if trainer.is_global_zero:
                Path(os.environ["HANG_MARKER"]).write_text(str(os.getpid()))
            time.sleep(600)

train_net = run.train_net
run.train_net = lambda *a, **kw: train_net(*a, **{**kw, "callbacks": [Hang()]})

from chromalab.cli import main
main()
"""


def read_rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _env(tmp_path: Path) -> dict:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", "HANG_MARKER": str(tmp_path / "hanging")}
    for k in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
        env.pop(k, None)  # a fresh launch: Lightning picks a free port itself
    return env


def test_ddp_two_cpu_processes_killed_then_resumed(tmp_path, tiny_zip):
    run, marker = tmp_path / "run", tmp_path / "hanging"
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    args = ["train", "colornet", "--preset", "quick", "--out", str(run), "--data", str(tiny_zip), *DDP, *sets]
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = _env(tmp_path)
    err1 = tmp_path / "stderr1.txt"
    with err1.open("w") as fh:
        # its own process group: both ranks are killed together, as a lost machine would be
        proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.DEVNULL, stderr=fh,
                                env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while not marker.exists():
                if proc.poll() is not None:
                    pytest.fail(f"first session exited early ({proc.returncode}): {err1.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"first session did not reach its second step in time: {err1.read_text()[-3000:]}")
                time.sleep(0.2)
            assert (run / "last.ckpt").is_file()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
    stderr1 = err1.read_text()
    assert proc.returncode == -signal.SIGKILL
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in stderr1  # two processes really ran
    before = read_rows(run / "metrics.csv")
    assert [(r["progress"], r["step"], r["images"], r["session"]) for r in before] == [("0.5", "1", "32", "1")]
    assert not (run / "run.json").exists()
    ck = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    assert ck["global_step"] == 1

    # resume through the CLI with the same DDP options
    res = subprocess.run([sys.executable, "-m", "chromalab.cli", *args[:2], "--out", str(run), "--resume",
                          "--data", str(tiny_zip), *DDP], capture_output=True, text=True, timeout=300,
                         env=env, start_new_session=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in res.stderr
    for stderr in (stderr1, res.stderr):  # the run's own lines come once, from rank 0
        assert stderr.count("training colornet (") == 1, stderr[-3000:]
    assert res.stderr.count("resuming at epoch 0 (session 2)") == 1
    for stderr in (stderr1, res.stderr):  # validation metrics are reduced over the ranks (logged sync_dist)
        assert "sync_dist" not in stderr, stderr[-3000:]
    after = read_rows(run / "metrics.csv")
    assert after[0] == before[0]  # continued, not restarted
    assert [(r["progress"], r["step"], r["images"], r["session"]) for r in after] == [
        ("0.5", "1", "32", "1"), ("1.0", "2", "64", "2"), ("1.5", "3", "96", "2"), ("2.0", "4", "128", "2")]
    # the resumed half epoch is timed too (a mid-epoch restart gets no on_train_epoch_start)
    assert float(after[1]["train_seconds"]) > float(after[0]["train_seconds"])
    for r in after:
        for k in ("train_loss", "val_loss", "val_psnr", "val_ssim", "val_auc_rb", "val_select"):
            assert float(r[k]) == float(r[k]), (k, r)  # not NaN
    meta = json.loads((run / "run.json").read_text())
    # both ranks' images: 4 optimizer steps x 16 images x 2 processes
    assert meta["train_images"] == 4 * 16 * 2 and meta["devices"] == 2 and meta["sessions"] == 2
    assert meta["arch"] == "colornet" and meta["monitor"] == "val_select"
    assert (run / "best.safetensors").is_file() and json.loads((run / "test.json").read_text())["count"] == 16
