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
accepts, e.g. ``work_size`` or ``backend``) pass through ``**colorizer_kwargs``. The colour models'
settings apply to every frame: ``vividness`` (0..1) and colour ``hints`` ``[(x, y, colour), ...]``
in the frame's pixels (the hint models), as :func:`chromalab.colorize` takes them for a photo.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ..errors import ChromalabError, SettingError
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
    from ..inference.colorizer import Colorizer, get_colorizer

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


def check_hints(colorizer, hints) -> list:
    """User hints for every frame, checked as far as they can be without a frame (the model takes
    hints, colours, count, signs) -> a list (empty for none). One-line :class:`SettingError`."""
    if hints is None or len(hints) == 0:
        return []
    from ..hints import parse_hints
    from ..inference.provenance import _model_label

    if not colorizer.takes_hints:
        raise SettingError(f"{_model_label(colorizer.name)}: this model takes no colour hints (the guided model "
                           f"does: --model guided)")
    parse_hints(hints, 1 << 30, 1 << 30)
    return list(hints)


def check_hints_fit(hints, width: int, height: int, label: str) -> None:
    """Every hint inside a ``width`` x ``height`` frame, or a one-line :class:`SettingError` naming the video."""
    if not hints:
        return
    from ..hints import parse_hints

    try:
        parse_hints(hints, width, height)
    except SettingError as e:
        msg = str(e)
        raise SettingError(f"{label}: {msg[: -len(' image')] + ' frame' if msg.endswith(' image') else msg}") from None


class VideoColorizer:
    """Frames in order -> colorized frames, with temporal stabilisation. One per video.

    Args:
        model: model name, run folder, weights file, Predictor or Colorizer.
        temporal: 0..1 strength of the stabilisation; 0 is plain per-frame colorization.
        exact: compose with ``Colorizer.finish_array`` (the photo pipeline's own last step,
            ~6x slower at 640x480) instead of the OpenCV equivalent (within 1 level).
        batch: frames per forward pass.
        hints: colour points ``[(x, y, colour), ...]`` in the frames' pixels (as
            :func:`chromalab.colorize` takes them), applied to every frame; hint models only.
            Colours are checked here; a point outside a frame raises when that frame comes
            (:func:`~chromalab.video.pipeline.colorize_video_file` checks it before any work).
        vividness: 0 (most accurate) .. 1 (most colourful) for the colour models; None: the
            Colorizer's own (:attr:`~chromalab.inference.Colorizer.vividness`).
        colorizer_kwargs: model settings (see :func:`make_colorizer`).

    A bad hint, or hints / a vividness for a model without them, raise
    :class:`~chromalab.errors.SettingError` (a ValueError).

    Not thread-safe (it holds the history of the video); the Colorizer inside may be shared.
    """

    def __init__(self, model="default", temporal: float = DEFAULT_STRENGTH, *, exact: bool = False,
                 batch: int = DEFAULT_BATCH, hints=None, vividness: float | None = None, **colorizer_kwargs):
        try:
            self.stabilizer = TemporalStabilizer(temporal)
        except (TypeError, ValueError):
            raise ChromalabError(f"--temporal must be a number in 0..1, got {temporal!r}") from None
        self.colorizer = make_colorizer(model, **colorizer_kwargs)
        self.vividness = None if vividness is None else self.colorizer.check_vividness(vividness)
        self.hints = check_hints(self.colorizer, hints)
        self._hint_maps: dict[tuple, np.ndarray | None] = {}  # (frame shape, work shape) -> hint channels
        self.exact = bool(exact)
        self.batch = max(1, int(batch))
        self.frames_done = 0
        self.cuts: list[int] = []  # frames where the history was reset (after the first), in order
        self.last = StepInfo()

    def reset(self) -> None:
        """Start afresh (a new video, or a cut you know of)."""
        self.stabilizer.reset()

    def prepare(self, frame):
        """A frame (gray ``(H, W)`` / RGB ``(H, W, 3)`` / RGBA uint8 array, or PIL image) -> ``PreparedImage``."""
        from ..inference.colorizer import load_input

        item = self.colorizer.prepare(load_input(frame, self.colorizer.max_pixels))
        if self.hints:  # the same points on every frame: paint them once per frame size
            key = (item.L.shape, item.work.shape)
            if key not in self._hint_maps:
                self._hint_maps[key] = self.colorizer.hint_map(item, self.hints)
            item.hints = self._hint_maps[key]
        return item

    def colorize_prepared(self, items: Sequence) -> list[np.ndarray]:
        """Prepared frames, in order, -> sRGB ``(H, W, 3)`` uint8 each. Advances the history."""
        if not items:
            return []
        abs_ = self.colorizer.predict_work(list(items), vividness=self.vividness)  # (2, h, w) each; item.hints
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
