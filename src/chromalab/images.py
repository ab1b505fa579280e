"""Safe loading of user images: modes, EXIF orientation, size limits, clear errors.

Every failure is an :class:`~chromalab.errors.ImageError` whose message is one line naming
the file and what is wrong. Files are only ever opened for reading.

* The pixel limit is checked on the header, before anything is decoded, so a
  20000 x 20000 PNG is refused in milliseconds. Pillow's own decompression-bomb limit
  (``PIL.Image.MAX_IMAGE_PIXELS``) is raised to the requested limit when that is higher.
* Only regular files are opened (a FIFO named ``x.jpg`` would block forever); broken
  symbolic links, link loops, folders and devices get their own message.
* A file Pillow cannot identify is told apart by its first bytes: an image whose header
  says 0 pixels, a broken PNG/JPEG/..., or not an image at all (PDF, zip, text, ...).
* Multi-frame files (animated GIF/WebP, multi-page TIFF) give their first frame; the
  frame count is kept in ``image.info["n_frames"]`` so callers can say so. An EXIF
  orientation outside 1-8 is ignored (pixels as stored). :func:`image_notes` words both.
* Names in messages go through :func:`display_name`: one printable line whatever the
  file is called (newlines, control characters and undecodable bytes are escaped).
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ._io import unsafe_member
from .color import GRAY_CHROMA_THRESHOLD
from .errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
DEFAULT_MAX_PIXELS = 50_000_000
"""Refuse images with more pixels than this (about 8660 x 5770) instead of exhausting memory.

Colorizing one image peaks at about 25 bytes per pixel (float L, the output, the PNG being
encoded): a 48-megapixel photo took 1.4 GB. Adjust with ``--max-pixels`` / ``max_pixels=``."""

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""Pillow modes without colour. An image opened in one of them is a grayscale original (:func:`is_gray_mode`)."""
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


class NotAnImage(ImageError):
    """The file is not an image, or not in a format this install can read (web: 415)."""


class TooManyPixels(ImageError):
    """The header declares more pixels than the limit (web: 413). ``size`` is (w, h) when known."""

    def __init__(self, message: str, size: tuple[int, int] | None, limit: int):
        super().__init__(message)
        self.size = size
        self.limit = limit


def display_name(path: str | os.PathLike | bytes) -> str:
    """A file name as one printable line: control characters (``\\n``, ``\\t``, ESC) and bytes
    that are not valid UTF-8 (``\\xff``) are escaped; other characters, accents included, are kept."""
    s = os.fsdecode(os.fspath(path))
    out = []
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == " " or ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _allow_pixels(max_pixels: int) -> None:
    """Let Pillow open images up to ``max_pixels`` (its own bomb check would refuse them first)."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = int(max_pixels)


def _too_big(label: str, w: int, h: int, max_pixels: int) -> TooManyPixels:
    return TooManyPixels(
        f"{label}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
        "(raise it with --max-pixels)", (w, h), max_pixels,
    )


def _stat_problem(path: Path, label: str, e: OSError) -> ImageError:
    """A failed stat() as one line: missing, broken link, link loop, no permission, ..."""
    if isinstance(e, FileNotFoundError):
        if os.path.islink(path):
            try:
                target = display_name(os.readlink(path))
            except OSError:
                target = "?"
            return ImageError(f"{label}: broken symbolic link (it points to {target}, which does not exist)")
        return ImageError(f"{label}: no such file")
    if e.errno == errno.ELOOP:
        return ImageError(f"{label}: symbolic link loop (the link leads back to itself)")
    if e.errno == errno.ENOTDIR:
        return ImageError(f"{label}: no such file (a part of the path is a file, not a folder)")
    if e.errno == errno.ENAMETOOLONG:
        return ImageError(f"{label}: the name is too long for this file system")
    if isinstance(e, PermissionError):
        return ImageError(f"{label}: permission denied (cannot read it)")
    return ImageError(f"{label}: cannot read it ({e.strerror or e})")


def _not_regular(label: str, mode: int) -> ImageError:
    if stat.S_ISDIR(mode):
        return ImageError(f"{label}: is a directory, not an image")
    what = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
    return ImageError(f"{label}: not a regular file but {what}; not an image")


def _open_file(path: Path, label: str):
    """Open a regular file for reading, or raise a one-line ImageError. Never blocks on a FIFO."""
    try:
        st = path.stat()
    except OSError as e:
        raise _stat_problem(path, label, e) from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(label, st.st_mode)
    if st.st_size == 0:
        raise ImageError(f"{label}: empty file (0 bytes), not an image")
    if not os.access(path, os.R_OK):
        raise ImageError(f"{label}: permission denied (cannot read it)")
    try:  # non-blocking: if the file was swapped for a FIFO since stat(), open() still returns
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _stat_problem(path, label, e) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_regular(label, st.st_mode)
    return os.fdopen(fd, "rb")


# ---- what a file Pillow cannot identify is --------------------------------------------------------------
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF", "WebP"),
)
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive"), (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-zip archive"), (b"Rar!", "a RAR archive"), (b"\x7fELF", "a program"),
    (b"8BPS", "a Photoshop document"), (b"ftypheic", "a HEIC photo (not supported: convert it to JPEG)"),
)


def _header_size(kind: str, head: bytes) -> tuple[int, int] | None:
    """(w, h) as the header of a PNG / GIF / BMP / JPEG declares it, or None when unreadable."""
    try:
        if kind == "PNG" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return int(w), int(h)
        if kind == "GIF":
            w, h = struct.unpack("<HH", head[6:10])
            return int(w), int(h)
        if kind == "BMP" and struct.unpack("<I", head[14:18])[0] >= 40:
            w, h = struct.unpack("<ii", head[18:26])
            return abs(int(w)), abs(int(h))
        if kind == "JPEG":
            i = 2
            while i + 9 <= len(head):
                if head[i] != 0xFF:
                    return None
                marker = head[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                seg = struct.unpack(">H", head[i + 2 : i + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", head[i + 5 : i + 9])
                    return int(w), int(h)
                i += 2 + seg
    except struct.error:
        return None
    return None


def _image_kind(head: bytes) -> str | None:
    for magic, kind in _IMAGE_MAGIC:
        if head.startswith(magic) and (kind != "WebP" or head[8:12] == b"WEBP"):
            return kind
    return None


def _unidentified(label: str, head: bytes) -> ImageError:
    """Why Pillow could not identify a file, from its first bytes: one line."""
    kind = _image_kind(head)
    if kind is not None:
        size = _header_size(kind, head)
        if size is not None and (size[0] == 0 or size[1] == 0):
            return ImageError(f"{label}: has no pixels ({size[0]}x{size[1]} in its {kind} header)")
        return ImageError(f"{label}: broken {kind} file (its header is damaged or unsupported)")
    for magic, what in _OTHER_MAGIC:
        if magic in head[:12]:
            return NotAnImage(f"{label}: not an image file (it looks like {what})")
    text = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")) and b"<svg" in head.lower():
        return NotAnImage(f"{label}: not an image file (it is an SVG drawing, not supported: export it as PNG)")
    if text.startswith((b"<!doctype html", b"<html")):
        return NotAnImage(f"{label}: not an image file (it looks like a web page, HTML)")
    if head and not head.strip(b"\x00"):
        return NotAnImage(f"{label}: not an image file (it holds only zero bytes)")
    return NotAnImage(f"{label}: not an image file (unrecognized format)")


def open_image(src: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None):
    """Open an image file or bytes as a decoded PIL image with EXIF orientation applied.

    Returns the PIL image in its own mode (callers convert; see :func:`image_to_L`), with
    ``info["n_frames"]`` set to the file's frame count (only the first frame is decoded).
    Raises :class:`ImageError` with one line naming the file: missing, directory, not a
    regular file, empty, unreadable, unrecognized, broken or truncated, over ``max_pixels``.
    """
    from PIL import Image, UnidentifiedImageError

    label = display_name(name) if name is not None else (
        display_name(src) if not isinstance(src, bytes) else "<bytes>")
    if isinstance(src, bytes):
        if not src:
            raise ImageError(f"{label}: empty file (0 bytes), not an image")
        fp = io.BytesIO(src)
    else:
        fp = _open_file(Path(os.fsdecode(src)), label)
    _allow_pixels(max_pixels)
    head = b""
    try:
        with fp:
            head = fp.read(64 * 1024)
            fp.seek(0)
            with Image.open(fp) as im:
                w, h = im.size  # from the header: nothing decoded yet
                if w * h > max_pixels:
                    raise _too_big(label, w, h, max_pixels)
                if w < 1 or h < 1:
                    raise ImageError(f"{label}: has no pixels ({w}x{h})")
                n_frames = int(getattr(im, "n_frames", 1) or 1)
                im.load()
                out, orientation = _upright(im)
                out.info["n_frames"] = n_frames
                if orientation is not None:
                    out.info["orientation_ignored"] = orientation
                return out
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(f"{label}: permission denied (cannot read it)") from None
    except UnidentifiedImageError:
        raise _unidentified(label, head) from None
    except Image.DecompressionBombError as e:
        import re

        kind = _image_kind(head)
        size = _header_size(kind, head) if kind else None
        if size is not None:
            raise _too_big(label, *size, max_pixels) from None
        m = re.search(r"\((\d+) pixels\)", str(e))
        n = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
        raise TooManyPixels(f"{label}: {n} is over the limit of {max_pixels:,} (raise it with --max-pixels)",
                            None, max_pixels) from None
    except MemoryError:
        raise ImageError(f"{label}: not enough memory to decode it (lower --max-pixels?)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "truncated" in msg.lower():
            raise ImageError(f"{label}: truncated image file ({msg})") from None
        raise ImageError(f"{label}: broken image ({msg})") from None
    except Exception as e:  # noqa: BLE001 - decoders raise assorted errors on hostile files
        raise ImageError(f"{label}: broken image ({type(e).__name__}: {e})") from None


def _upright(im):
    """(a copy of ``im`` turned upright by its EXIF orientation, the orientation value ignored or None).

    An orientation outside 1-8, or an EXIF block Pillow cannot apply, leaves the pixels as stored.
    """
    from PIL import ImageOps

    try:
        orientation = im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - an unreadable EXIF block: no orientation
        orientation = None
    bogus = orientation is not None and (not isinstance(orientation, int) or not 1 <= orientation <= 8)
    out = None
    if not bogus:
        try:
            out = ImageOps.exif_transpose(im)
        except Exception:  # noqa: BLE001 - a broken EXIF block: keep the pixels as stored
            out = None
            bogus = orientation not in (None, 1)
    if out is None or out is im:
        out = im.copy()
    return out, (orientation if bogus else None)


def image_notes(im) -> list[str]:
    """What a reader should know about how an opened image was used (no file name): several
    frames (the first was used), an EXIF orientation that was ignored."""
    notes = []
    n = int(im.info.get("n_frames", 1) or 1)
    if n > 1:
        notes.append(f"has {n} frames (animated or multi-page); colorized the first frame only")
    o = im.info.get("orientation_ignored")
    if o is not None:
        notes.append(f"EXIF orientation {o!r} is not one of 1-8; used the pixels as stored")
    return notes


# ---- grayscale originals ------------------------------------------------------------------------------
# The one rule for what is a grayscale original, used by the prepared cache (data/cache.py), the evaluation
# of any image folder (evaluate.py) and the web page's "already black and white" (is_grayscale below):
# an image opened in a gray mode (is_gray_mode), or, for the data sets, one whose mean Lab chroma at the
# evaluation size is below GRAY_CHROMA_THRESHOLD (is_near_gray). Such images are excluded from training
# and evaluation: there is no colour to learn or to measure.
def is_gray_mode(mode: str) -> bool:
    """Whether a Pillow mode carries no colour (:data:`GRAY_MODES`)."""
    return mode in GRAY_MODES


def is_near_gray(chroma):
    """Whether a mean Lab chroma (:func:`chromalab.color.chroma_mean`; a number or an array) is below
    :data:`chromalab.color.GRAY_CHROMA_THRESHOLD`: a colour image with no colour to speak of."""
    return np.asarray(chroma) < GRAY_CHROMA_THRESHOLD


def is_grayscale(im, tolerance: int = 6) -> bool:
    """Whether a PIL image (a user's photo, at any size) has no colour to speak of: a gray mode, or
    RGB-like pixels whose channels differ by at most ``tolerance`` levels (of 255) for 99 % of them
    (JPEG noise on a B&W scan, which a mean chroma would not tell from a faint colour cast)."""
    from PIL import Image

    if is_gray_mode(im.mode):
        return True
    small = im
    k = -(-max(im.size) // 512)
    if k > 1:  # a sample of the pixels is enough (nearest: no colour is blended away)
        small = im.resize((max(1, im.width // k), max(1, im.height // k)), Image.Resampling.NEAREST)
    a = np.asarray(small.convert("RGB"), dtype=np.int16)
    if a.size == 0:
        return True
    spread = a.max(axis=2) - a.min(axis=2)
    return float(np.percentile(spread, 99)) <= tolerance


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


def image_to_L(im) -> np.ndarray:
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


def iter_folder_images(folder: Path, exclude=None,
                       on_error: Callable[[OSError], None] | None = None,
                       suffixes: Iterable[str] | None = None) -> Iterator[Path]:
    """Image files under ``folder``, recursively, sorted, as paths under ``folder``
    (``suffixes``: the lower-case file suffixes to take; default :data:`IMAGE_SUFFIXES`).

    Hidden files and folders (names starting with ``.``, e.g. macOS ``._photo.jpg``) are
    skipped; symbolic links to folders are not followed (no loops); folders are never
    yielded, even when named like ``x.png``. ``exclude`` (e.g. the output folder when it lies
    inside ``folder``; a path or a list of paths) is skipped. A folder that cannot be listed
    is passed to ``on_error`` (its ``filename`` names it) and skipped.
    """
    folder = Path(folder)
    if exclude is None:
        exclude = []
    elif isinstance(exclude, (str, os.PathLike)):
        exclude = [exclude]
    excl = {os.path.realpath(e) for e in exclude}
    wanted = set(IMAGE_SUFFIXES if suffixes is None else suffixes)
    for root, dirs, files in os.walk(folder, followlinks=False, onerror=on_error):
        if os.path.realpath(root) in excl:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if not f.startswith(".") and Path(f).suffix.lower() in wanted:
                yield Path(root) / f


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
        with zipfile.ZipFile(p) as zf:
            for n in sorted(zf.namelist()):
                if unsafe_member(n):
                    raise ImageError(f"{p}: refusing zip with unsafe entry name {n!r}")
                if Path(n).suffix.lower() in IMAGE_SUFFIXES and not n.endswith("/"):
                    yield n, zf.read(n)
        return
    for f in iter_image_files([p]):
        yield str(f.relative_to(p) if p.is_dir() else f.name), f
