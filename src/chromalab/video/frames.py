"""Colorize a sequence of frames: the photo pipeline per frame, stabilised over time.

For people with their own decoder (or frames already in memory)::

    from chromalab.video import VideoColorizer

    vc = VideoColorizer("default", temporal=0.9)
    for rgb in vc.colorize_frames(frames):   # (H, W) gray or (H, W, 3) RGB uint8, in order
        ...                                  # (H, W, 3) uint8 sRGB, same size

Each frame goes through the image pipeline of :mod:`chromalab.inference`:
``Colorizer.prepare`` (full-size L, L at the working size) and ``Colorizer.predict_work``
(ab at the working size, several frames per forward pass); the
:class:`~chromalab.video.temporal.TemporalStabilizer` then stabilises ab at the working size,
and :func:`~chromalab.video.compose.compose_frame` (or ``Colorizer.finish_array`` with
``exact=True``) upsamples it and combines it with the frame's own L.

Every model that colorizes photos colorizes video: ``model`` is anything
:func:`~chromalab.inference.get_colorizer` takes (name, run folder, weights file, Predictor,
Colorizer), and model settings (``temperature`` of vivid models; any keyword the Colorizer
accepts, e.g. ``work_size`` or ``backend``) pass through ``**colorizer_kwargs``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ..errors import ChromalabError
from .compose import compose_frame
from .temporal import DEFAULT_STRENGTH, StepInfo, TemporalStabilizer

DEFAULT_BATCH = 16
"""Most frames per forward pass (the history is applied after it, frame by frame): onnxruntime's
per-call cost, its worker threads spinning included, falls from ~10 ms of CPU a frame one by one
to ~5 ms in passes of 16 (64x48, default model)."""
BATCH_BYTES = 64 << 20
"""Fewer frames per pass when their full-size L (4 bytes a pixel) would exceed this: 16 at
1080p, 2 at 4K."""


def batch_for(height: int, width: int, most: int = DEFAULT_BATCH) -> int:
    """Frames per forward pass for frames of this size (see :data:`BATCH_BYTES`)."""
    return max(1, min(most, BATCH_BYTES // max(1, 4 * height * width)))


def make_colorizer(model="default", **settings):
    """A (cached) :class:`~chromalab.inference.Colorizer` for ``model`` with ``settings``.

    Settings the Colorizer takes go to it; ``temperature`` (vivid models) is set on the
    predictor the way ``chromalab colorize --temperature`` does it. A Colorizer given as
    ``model`` is used as it is (settings then raise: they would be ignored).
    """
    from ..inference import Colorizer, get_colorizer

    if isinstance(model, Colorizer):
        if settings:
            raise ChromalabError(f"model settings {sorted(settings)} cannot change a ready Colorizer; "
                                 "give the model by name (or build the Colorizer with them)")
        return model
    accepted = set(inspect.signature(Colorizer.__init__).parameters) - {"self", "model"}
    temperature = settings.pop("temperature", None) if "temperature" not in accepted else None
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise ChromalabError(f"unknown model setting(s) {', '.join(unknown)} "
                             f"(the colorizer takes: temperature, {', '.join(sorted(accepted))})")
    if temperature is not None:
        from ..predictors.nets import set_temperature
        from ..registry import load_predictor

        pred = load_predictor(model, progress=False) if isinstance(model, str) else model
        model = set_temperature(pred, temperature)
    return get_colorizer(model, **settings)


class VideoColorizer:
    """Frames in order -> colorized frames, with temporal stabilisation. One per video.

    Args:
        model: model name, run folder, weights file, Predictor or Colorizer.
        temporal: 0..1 strength of the stabilisation; 0 is plain per-frame colorization.
        exact: compose with ``Colorizer.finish_array`` (the photo pipeline's own last step,
            ~6x slower at 640x480) instead of the OpenCV equivalent (within 1 level).
        batch: frames per forward pass.
        colorizer_kwargs: model settings (see :func:`make_colorizer`).

    Not thread-safe (it holds the history of the video); the Colorizer inside may be shared.
    """

    def __init__(self, model="default", temporal: float = DEFAULT_STRENGTH, *, exact: bool = False,
                 batch: int = DEFAULT_BATCH, **colorizer_kwargs):
        try:
            self.stabilizer = TemporalStabilizer(temporal)
        except (TypeError, ValueError):
            raise ChromalabError(f"--temporal must be a number in 0..1, got {temporal!r}") from None
        self.colorizer = make_colorizer(model, **colorizer_kwargs)
        self.exact = bool(exact)
        self.batch = max(1, int(batch))
        self.frames_done = 0
        self.cuts: list[int] = []  # frames where the history was reset (after the first), in order
        self.last = StepInfo()

    def reset(self) -> None:
        """Start afresh (a new video, or a cut you know of)."""
        self.stabilizer.reset()

    def prepare(self, frame):
        """A frame (gray ``(H, W)`` / RGB ``(H, W, 3)`` / RGBA uint8 array, or PIL image) -> ``Prepared``."""
        from ..inference import load_input

        return self.colorizer.prepare(load_input(frame, self.colorizer.max_pixels))

    def colorize_prepared(self, items: Sequence) -> list[np.ndarray]:
        """Prepared frames, in order, -> sRGB ``(H, W, 3)`` uint8 each. Advances the history."""
        if not items:
            return []
        abs_ = self.colorizer.predict_work(list(items))  # (2, h, w) each, one pass per batch
        out = []
        for item, ab in zip(items, abs_, strict=True):
            ab = self.stabilizer.step(item.work, ab)
            self.last = self.stabilizer.last
            if self.last.cut and self.frames_done > 0 and self.stabilizer.strength > 0:
                self.cuts.append(self.frames_done)
            self.frames_done += 1
            if self.exact:
                out.append(self.colorizer.finish_array(item, ab)[..., :3])
            else:
                out.append(compose_frame(item.L, ab))
        return out

    def colorize_frames(self, frames: Iterable) -> Iterator[np.ndarray]:
        """Colorize ``frames`` lazily, ``batch`` at a time; yields sRGB ``(H, W, 3)`` uint8 in order."""
        pending = []
        for f in frames:
            pending.append(self.prepare(f))
            if len(pending) >= self.batch:
                yield from self.colorize_prepared(pending)
                pending = []
        yield from self.colorize_prepared(pending)
