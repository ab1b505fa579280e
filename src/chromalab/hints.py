"""Colour hints given by a user: parsing, checking and painting them into the net's hint channels.

A hint map is, at the net's working size, ``hint_ab`` ``(2, H, W)``: scaled ab (``color.scale_ab``)
where a hint is, 0 elsewhere, and ``mask`` ``(1, H, W)``: 1 where a hint is (Zhang et al. 2017);
the net takes them as 3 channels after L. Training and ``evaluate --hints N`` simulate hints
from the true colours instead (:mod:`chromalab.hint_simulation`).

User hints (CLI ``--hint X,Y,COLOR`` / ``--hints FILE``, Python ``hints=[(x, y, colour), ...]``, the
web page's JSON ``[{"x": .., "y": .., "color": ..}, ...]``) are checked by :func:`parse_hints`:
``x, y`` are pixel coordinates of the input image (0 <= x < width, 0 <= y < height; fractions
allowed), a colour is ``#rrggbb`` / ``#rgb``, a CSS colour name, or an ``(r, g, b)`` of 0..255.
Only the colour's chroma is used: its (a, b) in CIELAB; the photo keeps its own lightness.
No torch here: the ONNX fast path of ``chromalab colorize`` never imports it.
"""

from __future__ import annotations

import math

import numpy as np

from .color import AB_SCALE, rgb_uint8_to_lab_fast
from .errors import SettingError

MAX_HINTS = 512
"""The most colour points one image may carry (CLI, API, web)."""
USER_RADIUS = 1
"""A user point paints a 3x3 patch of the working-size hint map."""


def rasterize_points(points, h: int, w: int, radius: int = USER_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """User points ``[(x, y, a, b), ...]`` (working-size pixel coordinates, float; ab in Lab units)
    -> (hint_ab ``(1, 2, h, w)`` scaled, mask ``(1, 1, h, w)``) float32. Later points paint over earlier ones."""
    hint = np.zeros((1, 2, h, w), dtype=np.float32)
    mask = np.zeros((1, 1, h, w), dtype=np.float32)
    for x, y, a, b in points:
        cx = min(max(int(round(float(x) - 0.5)), 0), w - 1)  # pixel centres at integer + 0.5
        cy = min(max(int(round(float(y) - 0.5)), 0), h - 1)
        y0, y1 = max(cy - radius, 0), min(cy + radius + 1, h)
        x0, x1 = max(cx - radius, 0), min(cx + radius + 1, w)
        hint[0, 0, y0:y1, x0:x1] = float(a) / AB_SCALE
        hint[0, 1, y0:y1, x0:x1] = float(b) / AB_SCALE
        mask[0, 0, y0:y1, x0:x1] = 1.0
    return hint, mask


def parse_color(color) -> tuple[float, float]:
    """``#rrggbb``, ``#rgb``, a CSS colour name, ``rgb(r, g, b)`` or an ``(r, g, b)`` of 0..255 -> its (a, b)
    in Lab units. Raises :class:`SettingError` naming the colour."""
    from PIL import ImageColor

    rgb: tuple[int, ...]
    if isinstance(color, str):
        try:
            rgb = ImageColor.getrgb(color.strip())[:3]
            if not all(0 <= c <= 255 for c in rgb):  # Pillow passes rgb(300, 0, 0) through unclamped
                raise ValueError(color)
        except ValueError:
            raise SettingError(f"colour {color!r} is not a colour (give #rrggbb or a CSS colour name such as "
                               f"'skyblue')") from None
    elif isinstance(color, (tuple, list)) and len(color) == 3 and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c <= 255 for c in color):
        rgb = tuple(int(round(c)) for c in color)
    else:
        raise SettingError(f"colour {color!r} is not a colour (give '#rrggbb', a CSS colour name or an (r, g, b) "
                           f"tuple of 0-255)")
    lab = rgb_uint8_to_lab_fast(np.array([[rgb]], dtype=np.uint8))[0, 0]  # (3,)
    return float(lab[1]), float(lab[2])


def _coordinate(v, what: str, i: int) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise SettingError(f"hint {i + 1}: {what} must be a number, got {v!r}")
    try:
        f = float(v)
    except OverflowError:  # a Python int beyond the float range
        raise SettingError(f"hint {i + 1}: {what} must be a number, got an integer of {int(v).bit_length()} "
                           f"bits") from None
    if not math.isfinite(f):
        raise SettingError(f"hint {i + 1}: {what} must be a number, got {v!r}")
    return f


def parse_hints(hints, width: int, height: int) -> list[tuple[float, float, float, float]]:
    """User hints -> ``[(x, y, a, b)]`` (image pixels, Lab units), each checked; at most :data:`MAX_HINTS`.

    A hint is ``(x, y, colour)`` or ``{"x": .., "y": .., "color": ..}``. Raises :class:`SettingError`
    (a ValueError) with one line naming the hint."""
    if hints is None:
        return []
    if isinstance(hints, (str, bytes, dict)) or not hasattr(hints, "__len__"):
        raise SettingError("hints must be a list of (x, y, colour) points")
    if len(hints) > MAX_HINTS:
        raise SettingError(f"{len(hints)} hints is more than the limit of {MAX_HINTS}")
    out = []
    for i, h in enumerate(hints):
        if isinstance(h, dict):
            missing = [k for k in ("x", "y", "color") if k not in h]
            if missing:
                raise SettingError(f"hint {i + 1}: missing {', '.join(missing)} (each hint is {{\"x\", \"y\", "
                                   f"\"color\"}})")
            x, y, c = h["x"], h["y"], h["color"]
        elif isinstance(h, (tuple, list)) and len(h) == 3:
            x, y, c = h
        else:
            raise SettingError(f"hint {i + 1}: expected (x, y, colour), got {h!r}")
        x, y = _coordinate(x, "x", i), _coordinate(y, "y", i)
        if x < 0 or y < 0:
            raise SettingError(f"hint {i + 1}: negative coordinates ({x:g}, {y:g})")
        if x >= width or y >= height:
            raise SettingError(f"hint {i + 1}: ({x:g}, {y:g}) is outside the {width}x{height} image")
        try:
            a, b = parse_color(c)
        except SettingError as e:
            raise SettingError(f"hint {i + 1}: {e}") from None
        out.append((x, y, a, b))
    return out


def parse_hint_arg(text: str) -> dict:
    """``X,Y,COLOR`` (the CLI's ``--hint``) -> ``{"x", "y", "color"}``; the colour may hold commas
    (``rgb(1, 2, 3)``). One-line :class:`SettingError` when it is not of that shape."""
    parts = str(text).split(",", 2)
    try:
        if len(parts) != 3:
            raise ValueError
        return {"x": float(parts[0]), "y": float(parts[1]), "color": parts[2].strip()}
    except ValueError:
        raise SettingError(f"--hint {text!r}: expected X,Y,COLOR, e.g. 120,80,#3070c0") from None


def load_hints_file(path) -> list[dict]:
    """A hints JSON file (a list of ``{"x", "y", "color"}``, as the web page exports) -> that list."""
    import json
    from pathlib import Path

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise SettingError(f"{p}: cannot read the hints file ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise SettingError(f"{p}: not valid JSON ({e})".replace("\n", " ")) from None
    if isinstance(data, dict) and isinstance(data.get("hints"), list):
        data = data["hints"]
    if not isinstance(data, list):
        raise SettingError(f"{p}: expected a JSON list of {{\"x\", \"y\", \"color\"}} hints")
    return data


def hint_channels(points, image_hw: tuple[int, int], work_hw: tuple[int, int]) -> np.ndarray:
    """Parsed points ``[(x, y, a, b)]`` in image pixels -> the net's hint channels ``(3, h, w)`` float32 at
    the working size (scaled a, b and the mask)."""
    H, W = image_hw
    h, w = work_hw
    pts = [(x * w / W, y * h / H, a, b) for x, y, a, b in points]
    hint, mask = rasterize_points(pts, h, w)
    return np.concatenate([hint, mask], axis=1)[0]  # (3, h, w)
