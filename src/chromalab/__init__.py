"""chromalab: colorize grayscale images by regression in CIELAB.

Public API::

    import chromalab
    img = chromalab.colorize("photo.jpg")          # -> PIL.Image, the input's size
    model = chromalab.load_model("default")        # a predictor: predict_ab(L) -> ab
    chromalab.colorize_video("film.mp4", "film_color.mp4")  # stabilised over time, audio copied
    chromalab.colorize_video("film.mp4", "out.mp4", model="guided", vividness=0.7,
                             hints=[(120, 80, "#3070c0")])  # the same colour points on every frame
"""

from __future__ import annotations

from .version import __version__

__all__ = ["colorize", "colorize_video", "load_model", "__version__"]


def load_model(name_or_path: str = "default", data: str | None = None):
    """A predictor by registry name, run folder or weights file."""
    from .registry import load_predictor

    return load_predictor(name_or_path, data=data)


def colorize(image_or_path, model="default", **kwargs):
    """Colorize one image (path, bytes, PIL image or array) -> PIL.Image of the input's size."""
    from .inference import colorize as _colorize

    return _colorize(image_or_path, model=model, **kwargs)


def colorize_video(src, dst, model="default", *, temporal: float | None = None, progress=None,
                   vividness: float | None = None, hints=None, **kwargs):
    """Colorize a video file into ``dst`` (audio copied, stabilised over time) -> a ``VideoResult``.

    ``temporal``: 0..1 stabilisation strength (None: 0.9; 0 is per-frame); ``progress``: True for a
    bar on stderr, or ``progress(done, total)``; ``vividness``: 0..1 (the colour models);
    ``hints``: colour points ``[(x, y, colour), ...]`` in the frames' pixels, applied to every
    frame (the hint models). Other keywords (``codec``, ``crf``, ``temperature``, ``work_size``,
    ...): see :func:`chromalab.video.colorize_video` and docs/video.md. A bad hint or setting
    raises a ValueError before anything is written.
    """
    from .video import DEFAULT_STRENGTH
    from .video import colorize_video as _colorize_video

    return _colorize_video(src, dst, model=model, temporal=DEFAULT_STRENGTH if temporal is None else temporal,
                           progress=progress, vividness=vividness, hints=hints, **kwargs)
