"""chromalab: colorize grayscale images by regression in CIELAB.

Public API::

    import chromalab
    img = chromalab.colorize("photo.jpg")          # -> PIL.Image, the input's size
    model = chromalab.load_model("default")        # a predictor: predict_ab(L) -> ab
    chromalab.colorize_video("film.mp4", "film_color.mp4")  # stabilised over time, audio copied
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["colorize", "colorize_video", "load_model", "__version__"]


def load_model(name_or_path: str = "default", data: str | None = None):
    """A predictor by registry name, run folder or weights file."""
    from .registry import load_predictor

    return load_predictor(name_or_path, data=data)


def colorize(image_or_path, model="default", **kwargs):
    """Colorize one image (path, bytes, PIL image or array) -> PIL.Image of the input's size."""
    from .inference import colorize as _colorize

    return _colorize(image_or_path, model=model, **kwargs)


def colorize_video(src, dst, model="default", **kwargs):
    """Colorize a video file into ``dst`` (audio copied, stabilised over time); see docs/video.md."""
    from .video import colorize_video as _colorize_video

    return _colorize_video(src, dst, model=model, **kwargs)
