"""Safe loading of user images: modes, EXIF orientation, size limits, clear errors.

Every failure is an :class:`~chromalab.errors.ImageError` whose message is one line naming
the file and what is wrong. Files are only ever opened for reading.

* The pixel limit is checked on the header, before anything is decoded, so a
  20000 x 20000 PNG is refused in milliseconds. Pillow's own decompression-bomb limit
  (``PIL.Image.MAX_IMAGE_PIXELS``) is raised to the requested limit when that is higher.
* Only regular files are opened (a FIFO named ``x.jpg`` would block forever).
* Multi-frame files (animated GIF/WebP, multi-page TIFF) give their first frame; the
  frame count is kept in ``image.info["n_frames"]`` so callers can say so.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
DEFAULT_MAX_PIXELS = 50_000_000
"""Refuse images with more pixels than this (about 8660 x 5770) instead of exhausting memory.

Colorizing one image peaks at about 25 bytes per pixel (float L, the output, the PNG being
encoded): a 48-megapixel photo took 1.4 GB. Adjust with ``--max-pixels`` / ``max_pixels=``."""

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def _allow_pixels(max_pixels: int) -> None:
    """Let Pillow open images up to ``max_pixels`` (its own bomb check would refuse them first)."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = int(max_pixels)


def _too_big(label: str, w: int, h: int, max_pixels: int) -> ImageError:
    return ImageError(
        f"{label}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
        "(raise it with --max-pixels)"
    )


def _open_file(path: Path, label: str):
    """Open a regular file for reading, or raise a one-line ImageError."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{label}: no such file") from None
    except PermissionError:
        raise ImageError(f"{label}: permission denied (cannot read it)") from None
    except OSError as e:
        raise ImageError(f"{label}: cannot read it ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{label}: is a directory, not an image")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{label}: not a regular file (a device, socket or pipe), not an image")
    if st.st_size == 0:
        raise ImageError(f"{label}: empty file (0 bytes), not an image")
    if not os.access(path, os.R_OK):
        raise ImageError(f"{label}: permission denied (cannot read it)")
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except PermissionError:
        raise ImageError(f"{label}: permission denied (cannot read it)") from None
    except OSError as e:
        raise ImageError(f"{label}: cannot read it ({e.strerror or e})") from None


def open_image(src: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None):
    """Open an image file or bytes as a decoded PIL image with EXIF orientation applied.

    Returns the PIL image in its own mode (callers convert; see :func:`image_to_L`), with
    ``info["n_frames"]`` set to the file's frame count (only the first frame is decoded).
    Raises :class:`ImageError` with one line naming the file: missing, directory, not a
    regular file, empty, unreadable, unrecognized, broken or truncated, over ``max_pixels``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    label = name or (str(src) if not isinstance(src, bytes) else "<bytes>")
    if isinstance(src, bytes):
        if not src:
            raise ImageError(f"{label}: empty file (0 bytes), not an image")
        fp = io.BytesIO(src)
    else:
        fp = _open_file(Path(src), label)
    _allow_pixels(max_pixels)
    try:
        with fp, Image.open(fp) as im:
            w, h = im.size  # from the header: nothing decoded yet
            if w * h > max_pixels:
                raise _too_big(label, w, h, max_pixels)
            if w < 1 or h < 1:
                raise ImageError(f"{label}: has no pixels ({w}x{h})")
            n_frames = int(getattr(im, "n_frames", 1) or 1)
            im.load()
            try:
                out = ImageOps.exif_transpose(im)
            except Exception:  # noqa: BLE001 - a broken EXIF block: keep the pixels as stored
                out = None
            if out is None or out is im:
                out = im.copy()
            out.info["n_frames"] = n_frames
            return out
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(f"{label}: permission denied (cannot read it)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image file (unrecognized format)") from None
    except Image.DecompressionBombError as e:
        import re

        m = re.search(r"\((\d+) pixels\)", str(e))
        n = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
        raise ImageError(f"{label}: {n} is over the limit of {max_pixels:,} (raise it with --max-pixels)") from None
    except MemoryError:
        raise ImageError(f"{label}: not enough memory to decode it (lower --max-pixels?)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "truncated" in msg.lower():
            raise ImageError(f"{label}: truncated image file ({msg})") from None
        raise ImageError(f"{label}: broken image ({msg})") from None
    except Exception as e:  # noqa: BLE001 - decoders raise assorted errors on hostile files
        raise ImageError(f"{label}: broken image ({type(e).__name__}: {e})") from None


def has_alpha(im) -> bool:
    """Whether a PIL image carries transparency (alpha channel or palette/“transparency” key)."""
    return im.mode in _ALPHA_MODES or ("transparency" in im.info and im.mode in ("P", "L", "RGB"))


def alpha_channel(im) -> np.ndarray | None:
    """The alpha plane ``(H, W)`` uint8 of a PIL image, or ``None`` when it has no transparency."""
    if not has_alpha(im):
        return None
    if im.mode in ("RGBA", "LA", "PA"):
        return np.asarray(im.getchannel("A"), dtype=np.uint8)
    return np.asarray(im.convert("RGBA").getchannel("A"), dtype=np.uint8)


def _int_to_unit(a: np.ndarray, mode: str) -> np.ndarray:
    """Integer gray levels -> float32 0..1: 16-bit modes over 65535; mode I as 16-bit if it needs it."""
    a = a.astype(np.float32)
    if mode.startswith("I;16"):
        return a / np.float32(65535.0)
    top = 65535.0 if a.size and float(a.max()) > 255 else 255.0
    return np.clip(a / np.float32(top), 0.0, 1.0)


def image_to_L(im) -> np.ndarray:  # noqa: N802
    """PIL image of any mode -> Lab L ``(H, W)`` float32 in 0..100 (the colour is dropped).

    Gray modes are converted directly (8-bit by a table, 16-bit at full precision); others go
    through sRGB (palette, CMYK and YCbCr by Pillow's conversion). Alpha is ignored here
    (see :func:`alpha_channel`).
    """
    from .color import gray_to_L, rgb_uint8_to_L_fast

    mode = im.mode
    if mode in ("L", "LA", "La"):
        g = np.asarray(im.getchannel(0) if mode != "L" else im, dtype=np.uint8)
        return gray_to_L(g)
    if mode == "1":
        return gray_to_L(np.asarray(im.convert("L"), dtype=np.uint8))
    if mode.startswith("I"):
        return gray_to_L(_int_to_unit(np.asarray(im), mode))
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        scale = np.float32(255.0) if a.size and float(np.nanmax(a)) > 1.0 else np.float32(1.0)
        return gray_to_L(np.nan_to_num(a / scale))
    return rgb_uint8_to_L_fast(np.asarray(im.convert("RGB"), dtype=np.uint8))


def to_rgb_uint8(im) -> np.ndarray:
    """PIL image -> (H, W, 3) uint8 sRGB (palette, CMYK, 16-bit, alpha handled)."""
    if im.mode.startswith("I"):
        a = np.rint(_int_to_unit(np.asarray(im), im.mode) * 255.0).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def iter_folder_images(folder: Path, exclude=None) -> Iterator[Path]:
    """Image files under ``folder``, recursively, sorted, as paths under ``folder``.

    Hidden files and folders (names starting with ``.``, e.g. macOS ``._photo.jpg``) are
    skipped; symbolic links to folders are not followed (no loops); folders are never
    yielded, even when named like ``x.png``. ``exclude`` (e.g. the output folder when it lies
    inside ``folder``; a path or a list of paths) is skipped.
    """
    folder = Path(folder)
    if exclude is None:
        exclude = []
    elif isinstance(exclude, (str, os.PathLike)):
        exclude = [exclude]
    excl = {os.path.realpath(e) for e in exclude}
    for root, dirs, files in os.walk(folder, followlinks=False):
        if os.path.realpath(root) in excl:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            p = Path(root) / f
            if is_image_name(p):
                yield p


def iter_image_files(paths) -> Iterator[Path]:
    """Files given, and image files found recursively in folders given, in order."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            yield from iter_folder_images(p)
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
                if Path(n).suffix.lower() in IMAGE_SUFFIXES and not n.endswith("/"):
                    yield n, zf.read(n)
        return
    for f in iter_image_files([p]):
        yield str(f.relative_to(p) if p.is_dir() else f.name), f
