"""The Lightning callbacks of a net run: :class:`RunRecorder` (metrics.csv, loss.png, training time and
images, kept in the checkpoint) and :class:`Heartbeat` (a line now and then when there is no progress bar)."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl

from .._io import atomic_path
from .plots import plot_losses

METRIC_COLUMNS = ("epoch", "progress", "step", "images", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr",
                  "train_seconds", "session")
"""metrics.csv: one row per validation (``progress`` = epochs done, fractional when val runs several
times per epoch; ``images`` = training images seen so far, over all sessions and ranks)."""
TRACE_POINTS_PER_EPOCH = 50
"""GAN runs: about this many points per epoch of the D / G losses in loss.png."""
RECORDER_STATE_KEY = "_recorder_class.<locals>.RunRecorder"
"""Where the recorder's state lives in a checkpoint: the name it had when the class was built inside a
function, kept so that runs checkpointed then still resume with their metrics.csv rows."""


def metric_columns(rows: list[dict]) -> list[str]:
    """The columns of metrics.csv: :data:`METRIC_COLUMNS`, then the extra ones the rows carry
    (pix2pix: ``d_loss``, ``g_loss``) in the order they first appear. Regression runs: unchanged."""
    cols = list(METRIC_COLUMNS)
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


class RunRecorder(pl.Callback):
    """Writes ``metrics.csv`` and ``loss.png`` after every validation; counts training time and images.

    Its rows are part of the checkpoint (``state_dict``), so a resumed run rewrites the
    file from the checkpoint and continues it.
    """

    def __init__(self, folder: Path, log: Callable[[str], None], every_n_steps: int = 50):
        self.folder = Path(folder)
        self.say = log
        self.rows: list[dict] = []
        # within-epoch points: the GAN losses (pix2pix: {"epoch": fractional epoch, "d_loss", "g_loss"}),
        # else the running train loss ({"epoch", "train_loss"}) every `every_n_steps` steps
        self.trace: list[dict] = []
        self.train_seconds = 0.0
        self.train_images = 0
        self.session = 0
        self._t0: float | None = None
        self.every_n_steps = int(every_n_steps)
        self._window = [0.0, 0]  # train-loss sum and steps since the last trace point

    @property
    def state_key(self) -> str:
        return RECORDER_STATE_KEY

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
        self._t0 = time.perf_counter()
        if self.rows:
            self.say(f"resuming at epoch {trainer.current_epoch} (session {self.session}); "
                     f"{len(self.rows)} epoch row(s) kept in metrics.csv")
        if trainer.is_global_zero:
            self._write()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        self.trace = [t for t in self.trace if t["epoch"] <= trainer.current_epoch]  # a killed epoch's points go

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.train_images += len(batch[0]) * trainer.world_size
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
        row = self._row(trainer, pl_module)
        self.rows = [r for r in self.rows if r.get("progress", r["epoch"] + 1) < row["progress"]] + [row]
        if trainer.state.fn == "fit":
            self._t0 = time.perf_counter()  # training goes on after a mid-epoch validation
        if trainer.is_global_zero:
            self._write()
            extra = "".join(f", {k} {v:.4f}" for k, v in row.items()
                            if k.startswith(("d_", "g_", "val_")) and k not in ("val_loss", "val_psnr", "val_ssim"))
            self.say(f"epoch {row['progress']:.2f}/{trainer.max_epochs}: train loss {row['train_loss']:.5f}, "
                     f"val loss {row['val_loss']:.5f}, val PSNR {row['val_psnr']:.2f} dB, "
                     f"val SSIM {row['val_ssim']:.4f}{extra} ({self.train_seconds:.0f} s training, "
                     f"{self.train_images:,} images)")

    def _row(self, trainer, pl_module) -> dict:
        """The metrics.csv row of the validation that just ended."""
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
        return row

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop_clock()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if trainer.is_global_zero and (self.folder / "last.ckpt").is_file():
            self.say(f"stopped ({type(exception).__name__}) in epoch {trainer.current_epoch + 1}; "
                     f"continue with: chromalab train ... --out {self.folder} --resume")

    def _write(self) -> None:
        path = self.folder / "metrics.csv"
        columns = metric_columns(self.rows)
        with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            for r in self.rows:
                w.writerow({k: r.get(k) for k in columns})
        if self.rows:
            plot_losses(self.rows, self.folder / "loss.png", trace=self.trace)


class Heartbeat(pl.Callback):
    """Without a progress bar (logs, CI): a line every ``every_s`` seconds of training shows the run is
    alive, with this epoch's images per second, the running loss and the images seen (``recorder``)."""

    def __init__(self, recorder: RunRecorder, log: Callable[[str], None], every_s: float = 60.0):
        self.recorder = recorder
        self.say = log
        self.every_s = float(every_s)
        self._last = 0.0
        self._t_epoch = 0.0
        self._epoch_images = 0  # images of this session's current epoch (for the img/s)

    def _restart(self) -> None:
        self._t_epoch = self._last = time.perf_counter()
        self._epoch_images = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._restart()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._restart()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._epoch_images += len(batch[0]) * trainer.world_size
        now = time.perf_counter()
        if not trainer.is_global_zero or now - self._last < self.every_s:
            return
        self._last = now
        rate = self._epoch_images / max(now - self._t_epoch, 1e-9)
        acc = getattr(pl_module, "_train", None)  # this rank's running sum: no collective call here
        loss = f", loss {acc[0] / acc[1]:.5f}" if acc is not None and acc[1] > 0 else ""
        self.say(f"  epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: batch {batch_idx + 1:,}/"
                 f"{trainer.num_training_batches}, {rate:.0f} img/s{loss}, "
                 f"{self.recorder.train_images:,} images seen")
