"""Safe loading of user images: modes, EXIF orientation, size limits, clear errors."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
DEFAULT_MAX_PIXELS = 50_000_000
"""Refuse images with more pixels than this (about 7000 x 7000) instead of exhausting memory."""


def open_image(src: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None):
    """Open an image file or bytes as a decoded PIL image with EXIF orientation applied.

    Returns the PIL image in its own mode (callers convert). Raises :class:`ImageError` with one
    line naming the file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    label = name or (str(src) if not isinstance(src, bytes) else "<bytes>")
    fp = io.BytesIO(src) if isinstance(src, bytes) else src
    if not isinstance(src, bytes):
        p = Path(src)
        if p.is_dir():
            raise ImageError(f"{label}: is a directory, not an image")
        if not p.exists():
            raise ImageError(f"{label}: no such file")
        if p.stat().st_size == 0:
            raise ImageError(f"{label}: empty file (0 bytes)")
    try:
        with Image.open(fp) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(
                    f"{label}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} (raise it with --max-pixels)"
                )
            im.load()
            out = ImageOps.exif_transpose(im)
            if out is im:
                out = im.copy()
            return out
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(f"{label}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image file (unrecognized format)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{label}: too many pixels ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{label}: broken image ({e})") from None


def to_rgb_uint8(im) -> np.ndarray:
    """PIL image -> (H, W, 3) uint8 sRGB (palette, CMYK, 16-bit, alpha handled)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        a = np.clip(a / (65535.0 if a.max() > 255 else 255.0) * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def iter_image_files(paths) -> Iterator[Path]:
    """Files given, and image files found recursively in folders given, sorted."""
    for p in paths:
        p = Path(p)
        if p.is_dir() and p.suffix.lower() not in IMAGE_SUFFIXES:
            for f in sorted(p.rglob("*")):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    yield f
        else:
            yield p


def iter_images_any(path: str | os.PathLike) -> Iterator[tuple[str, bytes | Path]]:
    """(name, bytes-or-path) for each image file in a folder or a zip (recursively), sorted by name."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ImageError(f"{p}: no such file or folder")
    if p.is_file() and zipfile.is_zipfile(p):
        from .data.source import unsafe_member

        with zipfile.ZipFile(p) as zf:
            for n in sorted(zf.namelist()):
                if unsafe_member(n):
                    raise ImageError(f"{p}: refusing zip with unsafe entry name {n!r}")
                if Path(n).suffix.lower() in IMAGE_SUFFIXES:
                    yield n, zf.read(n)
        return
    for f in iter_image_files([p]):
        yield str(f.relative_to(p) if p.is_dir() else f.name), f
