"""One photo job, read, colorized and written: the per-file work every engine shares.

The local engine (:mod:`.local`) loads on threads and batches across its stream; the Ray engine
(:mod:`.ray_engine`) runs :func:`colorize_jobs` in each actor. Both call the same :class:`PhotoWork`
methods and the same :meth:`Colorizer.predict_work`, so their outputs are the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ChromalabError, ImageError, SettingError
from ..images import display_name, open_image
from ..inference.colorizer import Colorizer, PreparedImage
from ..inference.png import save_png
from .plan import Job


@dataclass
class PhotoWork:
    """What turns a photo job into its PNG(s): the loaded model, the run's limits, hints and record.

    ``text``: the PNG text every output gets (:func:`~chromalab.inference.provenance.provenance_text`
    of the run's record). Thread-safe (the Colorizer is; the rest is read only)."""

    col: Colorizer
    max_pixels: int
    text: dict[str, str]
    hints: list = field(default_factory=list)

    def load(self, j: Job) -> PreparedImage:
        """Decode and prepare one photo, with its hint channels."""
        item = self.col.prepare(open_image(j.src, max_pixels=self.max_pixels, name=j.label))
        if self.hints:
            try:
                item.hints = self.col.hint_map(item, self.hints)
            except SettingError as e:
                raise SettingError(f"{j.label}: {e}") from None
        return item

    def write(self, j: Job, item: PreparedImage, ab: np.ndarray) -> None:
        """Finish one photo (``ab``: ``(2, h, w)`` at the working size) and write its PNG(s), each atomically."""
        assert j.out is not None
        arrs = [(j.out, self.col.finish_array(item, ab, False))]
        if j.compare is not None:
            arrs.append((j.compare, self.col.finish_array(item, ab, True)))
        for path, arr in arrs:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_png(arr, path, text=self.text)
            except OSError as e:
                raise ImageError(f"{j.label}: cannot write {display_name(path)} ({e.strerror or e})") from None


def load_error(j: Job, e: BaseException) -> str:
    """The one line for a photo that could not be read or prepared."""
    if isinstance(e, ChromalabError):
        return f"{e}"
    if isinstance(e, MemoryError):
        return f"{j.label}: not enough memory (lower --max-pixels)"
    return f"{j.label}: {type(e).__name__}: {e}"


def model_error(j: Job, e: BaseException) -> str:
    """The one line for each photo of a batch the model failed on."""
    return f"{j.label}: the model failed ({type(e).__name__}: {e})"


def write_error(j: Job, e: BaseException) -> str:
    """The one line for a photo whose output could not be made or written."""
    if isinstance(e, ChromalabError):
        return f"{e}"
    return f"{j.label}: {type(e).__name__}: {e}"


@dataclass
class Outcome:
    """What became of one photo job: ``error`` is its one line (None when written); ``seconds`` the
    wall time spent on it (load + its share of the forward pass + write)."""

    error: str | None
    seconds: float
    n_frames: int = 1
    notes: tuple[str, ...] = ()


def colorize_jobs(work: PhotoWork, jobs: Sequence[Job]) -> list[Outcome]:
    """Load, colorize (one :meth:`~Colorizer.predict_work` call) and write ``jobs``, in that order;
    one :class:`Outcome` per job, in order. Nothing raises for a bad file."""
    outs: list[Outcome | None] = [None] * len(jobs)
    loaded: list[tuple[int, PreparedImage, float]] = []  # (index, item, seconds so far)
    for i, j in enumerate(jobs):
        t0 = time.perf_counter()
        try:
            loaded.append((i, work.load(j), time.perf_counter() - t0))
        except Exception as e:  # noqa: BLE001 - one bad file fails alone
            outs[i] = Outcome(load_error(j, e), time.perf_counter() - t0)
    if loaded:
        t0 = time.perf_counter()
        try:
            abs_ = work.col.predict_work([it for _, it, _ in loaded])
        except Exception as e:  # noqa: BLE001 - the model failing: every file of the batch fails
            share = (time.perf_counter() - t0) / len(loaded)
            for i, _, s in loaded:
                outs[i] = Outcome(model_error(jobs[i], e), s + share)
            loaded = []
            abs_ = []
        share = (time.perf_counter() - t0) / max(1, len(loaded))
        for (i, it, s), ab in zip(loaded, abs_, strict=True):
            t1 = time.perf_counter()
            try:
                work.write(jobs[i], it, ab)
                err = None
            except Exception as e:  # noqa: BLE001
                err = write_error(jobs[i], e)
            outs[i] = Outcome(err, s + share + time.perf_counter() - t1, it.n_frames, it.notes)
    return [o for o in outs if o is not None]


def job_of(src: str, label: str, out: str, compare: str | None) -> Job:
    """A photo :class:`Job` rebuilt from the plain strings a job travels as (to a Ray actor)."""
    return Job(src=Path(src), label=label, out=Path(out), compare=Path(compare) if compare else None)
