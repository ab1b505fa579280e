"""The work each request does on a worker thread: decode an upload, prepare it, colorize, encode a PNG."""

from __future__ import annotations

import time
from typing import Any

from ..errors import ImageError, SettingError
from .errors import rejected
from .store import KeptImage, ModelStore, _prepared_bytes, controls_of, model_key


def _check_controls(colorizer, hints: list | None, vividness: float | None) -> float | None:
    """Hints and a vividness this model can take, or :class:`SettingError` (one line, 422)."""
    v = colorizer.check_vividness(vividness) if vividness is not None else None
    if hints and not colorizer.takes_hints:
        raise SettingError(f"model {_display(colorizer)}: this model takes no colour hints (pick one that does, "
                           "such as 'guided')")
    return v


def _display(colorizer) -> str:
    return repr(model_key(colorizer.name) if isinstance(colorizer.name, str) else str(colorizer.name))


def _render_png(colorizer, item, hints: list | None, vividness: float | None,
                level: int | None = None) -> tuple[bytes, dict[str, float], str]:
    """Recolour a prepared image -> (PNG bytes with the settings recorded, timings in ms, settings line).
    ``level``: zlib level of the PNG (None: :data:`chromalab.inference.PNG_COMPRESS_LEVEL`)."""
    from ..inference.png import encode_png
    from ..inference.provenance import provenance_text

    t0 = time.perf_counter()
    arr = colorizer.render(item, hints or None, vividness)
    t1 = time.perf_counter()
    v = (colorizer.vividness if vividness is None else vividness) if colorizer.controls else None
    record = colorizer.provenance(vividness=v, hints=[{"x": h["x"], "y": h["y"], "color": h["color"]}
                                                      if isinstance(h, dict) else list(h) for h in hints or []] or None)
    png = encode_png(arr, text=provenance_text(record)) if level is None else \
        encode_png(arr, level, text=provenance_text(record))
    t2 = time.perf_counter()
    settings = (f"vividness={v:g}; " if v is not None else "") + f"hints={len(hints or [])}"
    return png, {"render": (t1 - t0) * 1000, "png": (t2 - t1) * 1000}, settings


# ---- the jobs (run in a worker thread) -----------------------------------------------------------
def _decode(data: bytes, label: str, max_pixels: int):
    """Upload bytes -> decoded PIL image (EXIF orientation applied), or :class:`RejectedError` with the
    status of the problem's kind (:data:`~chromalab.web.errors.STATUS_OF_KIND`): not an image 415, over
    the pixel limit 413 (checked on the header), any other problem 422."""
    from ..images import NotAnImage, TooManyPixels, open_image

    if not data:
        raise rejected(NotAnImage(f"{label}: empty file (0 bytes), not an image"))
    try:
        return open_image(data, max_pixels=max_pixels, name=label)
    except ImageError as e:
        if isinstance(e, TooManyPixels) and e.size is None:
            detail = f"{label}: far too many pixels; the limit is {max_pixels:,} pixels"
        elif isinstance(e, TooManyPixels) and e.size is not None:
            w, h = e.size
            detail = (f"{label}: {w}x{h} = {w * h:,} pixels is over this server's limit of {max_pixels:,} pixels; "
                      "downscale it and try again")
        elif isinstance(e, NotAnImage):
            detail = f"{e}; send a JPEG, PNG, WebP, BMP, GIF or TIFF"
        else:
            detail = str(e)
        raise rejected(e, detail) from None


def _prepare(colorizer, im):
    try:
        return colorizer.prepare(im)
    except ImageError as e:
        raise rejected(e) from None


def colorize_job(store: ModelStore, model: str, data: bytes, label: str, hints: list | None = None,
                 vividness: float | None = None) -> tuple[bytes, tuple[int, int], bool, list, dict, str]:
    """Check the settings, decode, colorize, encode PNG. Returns (png bytes, (width, height), whether
    the upload was already black and white, notes on how it was used, timings, settings line)."""
    from ..images import image_notes, is_grayscale

    colorizer = store.get(model)
    vividness = _check_controls(colorizer, hints, vividness)  # before decoding: cheap refusals first
    im = _decode(data, label, store.max_pixels)
    item = _prepare(colorizer, im)
    png, ms, settings = _render_png(colorizer, item, hints, vividness)
    return png, im.size, is_grayscale(im), image_notes(im), ms, settings


def upload_job(store: ModelStore, model: str, data: bytes, label: str) -> tuple[KeptImage, dict[str, Any]]:
    """Decode and prepare an upload to keep: (the image, the model's controls)."""
    from ..images import image_notes, is_grayscale

    colorizer = store.get(model)
    im = _decode(data, label, store.max_pixels)
    item = _prepare(colorizer, im)
    w, h = im.size
    kept = KeptImage(item=item, label=label, width=w, height=h, grayscale=is_grayscale(im), notes=image_notes(im),
                     nbytes=_prepared_bytes(item), last_used=0.0)
    return kept, controls_of(colorizer)


def recolour_job(store: ModelStore, model: str, kept: KeptImage, hints: list | None,
                 vividness: float | None, level: int | None = None) -> tuple[bytes, dict, str]:
    colorizer = store.get(model)
    vividness = _check_controls(colorizer, hints, vividness)
    return _render_png(colorizer, kept.for_model(colorizer), hints, vividness, level)
