"""The :class:`Colorizer` (a loaded model that colorizes images of any size) and the Python API
(:func:`get_colorizer`, :func:`colorize`, :func:`load_input`).

For every image: ``prepare`` (full-size L, alpha, L at the working size) -> ``predict_work`` (ab at
the working size, batched) -> ``finish_array`` (ab upsampled, the original L added, sRGB).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes
from ..color import AB_SCALE, L_MAX, lab_planes_to_rgb_uint8_fast, scale_L, unscale_ab
from ..errors import ChromalabError, ImageError, ModelError, SettingError
from ..images import DEFAULT_MAX_PIXELS, alpha_channel, display_name, image_notes, image_to_L, open_image
from ..paths import onnx_cache_dir
from ..predictors.base import Predictor
from .backends import NumpyBackend, OrtBackend, TorchBackend, onnxruntime_available
from .bands import _run_bands
from .onnx_cache import (
    _cached_onnx_candidates,
    _export_tag,
    _open_cached_onnx,
    _sha256_file,
    export_onnx,
    weights_file_for,
)
from .png import save_png
from .provenance import _hints_record, _model_label, model_fingerprint, provenance_text
from .resample import resample_rows, resample_taps, resize_plane

DEFAULT_WORK_SIZE = 64
"""Long side of the L the net sees (its training size); ``work_size=`` / ``--work-size`` change it."""
MAX_WORK_SIZE = 512
"""Largest working size accepted: 8x the training size. Larger ones only cost memory (a 100,000 px
working size asked for 23 GB); the measured gain in colour stops well below this (docs/colorize.md)."""
WORK_PIXELS_PER_PASS = 1 << 20
"""At most this many working-size pixels go through the net in one forward pass (64 images of
128x128, 4 of 512x512), which bounds the net's memory whatever the batch size and work size."""
BACKENDS = ("auto", "onnx", "torch", "numpy")
UPSAMPLE = ("bicubic", "bilinear")
_TOL_NET_VS_PREDICTOR = 1e-3
_LOCK = threading.RLock()


@dataclass
class PreparedImage:
    """One image ready for the model (:meth:`Colorizer.prepare`): its full-size L, its alpha, L at the working size."""

    L: np.ndarray  # (H, W) float32, Lab L of the original at full size
    alpha: np.ndarray | None  # (H, W) uint8, or None
    work: np.ndarray  # (h, w) float32, L at the working size
    n_frames: int = 1
    notes: tuple[str, ...] = ()  # how the file was used (first frame only, EXIF ignored), see image_notes
    hints: np.ndarray | None = None  # (3, h, w) hint channels at the working size (Colorizer.hint_map), or None

    @property
    def pixels(self) -> int:
        return int(self.L.size)


class Colorizer:
    """A loaded model, ready to colorize images of any size. Thread-safe once built.

    Args:
        model: registry name, run folder, ``.safetensors`` file, or a :class:`Predictor`.
        backend: ``auto`` (ONNX for nets when onnxruntime is installed, else torch; ``numpy``
            for other predictors), ``onnx``, ``torch`` or ``numpy`` (``predictor.predict_ab``).
        work_size: long side of the L fed to a fully convolutional net (default: the net's
            ``input_size``, 64). Models that need a fixed size get ``input_size`` squared.
        max_pixels: images with more pixels are refused (:class:`ImageError`).
        upsample: ``bicubic`` or ``bilinear``, for ab from working size to full size.
        onnx_cache: folder for exported ONNX files; ``None`` for the default, ``False`` to
            export in memory only.
        channels_last: torch backend memory format.
        batch_size: most images per forward pass.
    """

    def __init__(self, model="default", *, backend: str = "auto", work_size: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, upsample: str = "bicubic",
                 onnx_cache: str | os.PathLike | bool | None = None, channels_last: bool = False,
                 batch_size: int = 64, threads: int | None = None, vividness: float | None = None):
        if backend not in BACKENDS:
            raise ChromalabError(f"unknown backend {backend!r} (choose {', '.join(BACKENDS)})")
        if upsample not in UPSAMPLE:
            raise ChromalabError(f"unknown upsampling {upsample!r} (choose {', '.join(UPSAMPLE)})")
        if work_size is not None and not 1 <= work_size <= MAX_WORK_SIZE:
            raise ChromalabError(f"work size {work_size} is out of range: give 1 to {MAX_WORK_SIZE} pixels "
                                 f"(the long side the model sees; default {DEFAULT_WORK_SIZE})")
        if max_pixels is None or max_pixels < 1:
            raise ChromalabError(f"max pixels must be positive, got {max_pixels}")
        self.max_pixels = int(max_pixels)
        self.upsample = upsample
        self.batch_size = max(1, int(batch_size))
        self.predictor: Predictor | None = None
        self.input_size: int | None = None
        self.fully_conv = False
        self.stride = 1
        cache: Path | None
        if onnx_cache is False:
            cache = None
        elif onnx_cache is None or onnx_cache is True:
            cache = onnx_cache_dir()
        else:
            cache = Path(onnx_cache)
        want_onnx = backend in ("auto", "onnx") and onnxruntime_available()
        if backend == "onnx" and not want_onnx:
            raise ModelError("backend 'onnx' needs onnxruntime (pip install onnxruntime)")

        found = None
        weights: Path | None = None
        sha: str | None = None
        self.model_sha256: str | None = None
        """SHA-256 of the file that defines the model (weights, or a run's run.json); None for a
        Predictor object or a registry model without a file."""
        if isinstance(model, str):
            self.name = model
            weights = weights_file_for(model)
            if weights is not None:
                sha = self.model_sha256 = _sha256_file(weights)
            else:
                self.model_sha256 = model_fingerprint(model)
            if weights is not None and sha is not None and want_onnx:
                found = _open_cached_onnx(weights, sha, cache, threads)
            if found is None:
                from ..registry import load_predictor

                self.predictor = load_predictor(model, progress=False)
        elif isinstance(model, Predictor):
            self.predictor = model
            self.name = model.name
        else:
            raise ModelError(f"not a model: {model!r} (give a name, a run folder, a weights file or a Predictor)")

        self._backend: OrtBackend | TorchBackend | NumpyBackend
        if found is not None:  # fast start: no torch, no predictor
            self._backend = found
            self.input_size = int(found.meta.get("input_size", DEFAULT_WORK_SIZE))
            self.stride = int(found.meta.get("stride", 16))
            self.fully_conv = True
        else:
            assert self.predictor is not None
            self._backend = self._backend_for(self.predictor, backend, want_onnx, channels_last, threads,
                                              cache_file=None if weights is None or sha is None or cache is None
                                              else _cached_onnx_candidates(weights, sha, cache)[-1],
                                              sha=sha)
        self.work_size = int(work_size or self.input_size or DEFAULT_WORK_SIZE)
        be = self._backend
        self.controls = bool(getattr(be, "controls", False))
        """The model takes a vividness (and, when :attr:`takes_hints`, colour hints): the colour models."""
        if isinstance(be, OrtBackend):
            self.takes_hints = self.controls and be.meta.get("hints", "1") == "1"
            default_v = be.vividness
        else:
            net = getattr(self.predictor, "net", None)
            self.takes_hints = self.controls and bool(getattr(net, "hints", False))
            default_v = float(net.vividness) if self.controls and net is not None else None
        self.vividness: float | None = default_v
        """The vividness used when a call gives none: ``vividness=`` or the model's own default."""
        if vividness is not None:
            self.vividness = self.check_vividness(vividness)

    def _backend_for(self, pred, backend: str, want_onnx: bool, channels_last: bool, threads: int | None,
                     cache_file: Path | None, sha: str | None):
        net = getattr(pred, "net", None)
        self.input_size = getattr(pred, "input_size", None)
        if net is None:
            if backend in ("onnx", "torch"):
                raise ModelError(f"{self.name}: backend {backend!r} needs a network model; this one has no .net")
            return NumpyBackend(pred)
        self.fully_conv = True
        self.stride = int(getattr(pred, "stride", None) or getattr(net, "net_stride", None) or 16)
        if backend == "numpy":
            return NumpyBackend(pred)
        net.eval()
        if not self._net_matches(pred, net):
            if backend != "auto":
                raise ModelError(f"{self.name}: predict_ab differs from its .net; use backend='numpy'")
            return NumpyBackend(pred)  # predict_ab does more than the net: respect it
        if not want_onnx:
            return TorchBackend(net, channels_last=channels_last)
        meta = {"name": self.name, "input_size": self.input_size or DEFAULT_WORK_SIZE,
                "stride": self.stride, "export_tag": _export_tag(), "weights_sha256": sha or ""}
        data = export_onnx(net, None, meta)
        if cache_file is not None:
            try:
                atomic_write_bytes(cache_file, data)
            except OSError:
                pass  # read-only cache: keep the in-memory export
        return OrtBackend(data, threads)

    # -- properties ---------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The backend's name: ``onnx``, ``torch`` or ``numpy``."""
        return self._backend.name

    @property
    def engine(self) -> OrtBackend | TorchBackend | NumpyBackend:
        """The backend object itself: ``engine.predict_ab(L_work)`` runs the model alone (``(N, 1, h, w)``
        L in Lab units -> ab), without resizing or composing (benchmarks and tests compare backends so)."""
        return self._backend

    def __repr__(self) -> str:
        return f"<Colorizer {self.name} backend={self.backend} work_size={self.work_size}>"

    @staticmethod
    def _net_matches(pred, net) -> bool:
        """The fast path runs ``.net`` directly; make sure that is what ``predict_ab`` does."""
        import torch

        s = int(getattr(net, "net_stride", 16) or 16)
        size = max(s, int(getattr(pred, "input_size", None) or 64))
        size = -(-size // s) * s
        L = np.linspace(0, L_MAX, size * size, dtype=np.float32).reshape(1, 1, size, size)
        with torch.inference_mode():
            direct = unscale_ab(net(torch.from_numpy(scale_L(L))).float().numpy())
        via = pred.predict_ab(L)
        return via.shape == direct.shape and float(np.abs(via - direct).max()) <= _TOL_NET_VS_PREDICTOR * AB_SCALE

    # -- steps --------------------------------------------------------------------------------
    def work_shape(self, h: int, w: int) -> tuple[int, int]:
        """(h, w) of the L the model sees for an (h, w) image.

        Fully convolutional nets: long side ``work_size``, aspect kept, both sides rounded to
        multiples of the stride (at least one stride). Fixed-size models: ``input_size`` squared.
        """
        if not self.fully_conv and self.input_size:
            return self.input_size, self.input_size
        s = self.stride
        scale = self.work_size / max(h, w)
        return max(s, round(h * scale / s) * s), max(s, round(w * scale / s) * s)

    def provenance(self, **settings) -> dict:
        """What made an output, as recorded in its PNG (see :data:`PROVENANCE_KEY`): the model's
        name, the SHA-256 of its weights (or run.json) when known, the working size, and ``settings`` (``None`` values
        dropped; any JSON-able setting that changes the result belongs here)."""
        rec: dict = {"model": _model_label(self.name), "work_size": self.work_size}
        if self.model_sha256:
            rec["model_sha256"] = self.model_sha256
        rec.update({k: v for k, v in settings.items() if v is not None})
        return rec

    def prepare(self, im) -> PreparedImage:
        """PIL image -> :class:`PreparedImage` (full-size L, alpha, L at the working size)."""
        w, h = im.size
        if w * h > self.max_pixels:
            raise ImageError(f"{_label_of(im)}: {w}x{h} = {w * h:,} pixels is over the limit of {self.max_pixels:,}")
        if w < 1 or h < 1:
            raise ImageError(f"{_label_of(im)}: has no pixels ({w}x{h})")
        L = image_to_L(im)
        hh, ww = self.work_shape(h, w)
        work = resize_plane(L, (ww, hh), "bicubic")
        return PreparedImage(L=L, alpha=alpha_channel(im), work=work, n_frames=int(im.info.get("n_frames", 1) or 1),
                        notes=tuple(image_notes(im)))

    def check_vividness(self, vividness) -> float:
        """A vividness for this model, or a one-line :class:`SettingError` (out of range, or a model without one)."""
        from ..predictors.nets import check_vividness

        if not self.controls:
            raise SettingError(f"{_model_label(self.name)}: this model has no vividness setting (the colour models "
                               f"default and guided have one)")
        return check_vividness(vividness, _model_label(self.name))

    def hint_map(self, item: PreparedImage, hints) -> np.ndarray | None:
        """User hints ``[(x, y, colour), ...]`` in the image's pixels (see :func:`chromalab.hints.parse_hints`)
        -> the net's hint channels ``(3, h, w)`` at the working size; None for no hints. Raises
        :class:`SettingError` (a ValueError) for a bad hint or a model that takes none."""
        if hints is None or len(hints) == 0:
            return None
        from ..hints import hint_channels, parse_hints

        if not self.takes_hints:
            raise SettingError(f"{_model_label(self.name)}: this model takes no colour hints (the guided model "
                               f"does: --model guided)")
        H, W = item.L.shape
        return hint_channels(parse_hints(hints, W, H), (H, W), item.work.shape)

    def predict_work(self, items: Sequence[PreparedImage], hints: Sequence[np.ndarray | None] | None = None,
                     vividness: float | None = None) -> list[np.ndarray]:
        """ab ``(2, h, w)`` at working size for each item; same-shape items share forward passes
        of at most ``batch_size`` images and :data:`WORK_PIXELS_PER_PASS` pixels.

        ``hints``: per item, its hint channels from :meth:`hint_map` or None; ``vividness``: None for
        :attr:`vividness` (both only for the colour models). Without ``hints``, each item's own
        ``hints`` field is used."""
        v = self.vividness if vividness is None else self.check_vividness(vividness)
        if hints is None:
            hints = [it.hints for it in items]
        if any(h is not None for h in hints) and not self.takes_hints:
            raise SettingError(f"{_model_label(self.name)}: this model takes no colour hints")
        out: list[np.ndarray | None] = [None] * len(items)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, it in enumerate(items):
            groups.setdefault(it.work.shape, []).append(i)
        for shape, idx in groups.items():
            per_pass = max(1, min(self.batch_size, WORK_PIXELS_PER_PASS // max(1, shape[0] * shape[1])))
            for s in range(0, len(idx), per_pass):
                part = idx[s : s + per_pass]
                L = np.stack([items[i].work for i in part])[:, None]  # (n, 1, h, w)
                if self.controls:
                    hs = [hints[i] if hints is not None else items[i].hints for i in part]
                    h = None
                    if any(x is not None for x in hs):
                        h = np.stack([x if x is not None else np.zeros((3, *shape), np.float32)
                                      for x in hs])  # (n, 3, h, w)
                    ab = self._backend.predict_ab(L, h, v)  # (n, 2, h, w)
                else:
                    ab = self._backend.predict_ab(L)  # (n, 2, h, w)
                for j, i in enumerate(part):
                    out[i] = ab[j]
        return out  # type: ignore[return-value]

    def finish_array(self, item: PreparedImage, ab_work: np.ndarray, side_by_side: bool = False) -> np.ndarray:
        """Upsample ab ``(2, h, w)`` to full size, add the original L, convert to sRGB, keep alpha.

        Returns ``(H, W, 3|4)`` uint8 (``(H, 2W, 3|4)`` side by side: gray | colour). Done in
        bands of rows, on a few threads: the full-size ab is never held at once.
        """
        H, W = item.L.shape
        C = 3 if item.alpha is None else 4
        out = np.empty((H, 2 * W if side_by_side else W, C), dtype=np.uint8)
        # hand-written taps (resample.py): equal to Pillow's resize within 2e-5, and banded, so no full-size ab
        ty = resample_taps(ab_work.shape[1], H, self.upsample)  # rows: h -> H
        tx = resample_taps(ab_work.shape[2], W, self.upsample)  # columns: w -> W
        a_cols = resample_rows(np.ascontiguousarray(ab_work[0].T), tx).T  # (h, W): horizontal pass once
        b_cols = resample_rows(np.ascontiguousarray(ab_work[1].T), tx).T
        a_cols, b_cols = np.ascontiguousarray(a_cols), np.ascontiguousarray(b_cols)
        x0 = W if side_by_side else 0

        def band(r0: int, r1: int) -> None:
            Lb = item.L[r0:r1]
            a = resample_rows(a_cols, ty, slice(r0, r1))  # (rows, W)
            b = resample_rows(b_cols, ty, slice(r0, r1))
            # the fast Lab path: ~5x faster than skimage.lab2rgb and equal within 1e-5; imports no skimage or OpenCV
            out[r0:r1, x0:, :3] = lab_planes_to_rgb_uint8_fast(Lb, a, b)
            if side_by_side:
                zero = np.zeros_like(Lb)
                out[r0:r1, :W, :3] = lab_planes_to_rgb_uint8_fast(Lb, zero, zero)
            if item.alpha is not None:
                out[r0:r1, x0:, 3] = item.alpha[r0:r1]
                if side_by_side:
                    out[r0:r1, :W, 3] = item.alpha[r0:r1]

        _run_bands(band, H, W)
        return out

    def finish(self, item: PreparedImage, ab_work: np.ndarray, side_by_side: bool = False):
        """:meth:`finish_array` as a PIL image (RGB, or RGBA when the input had alpha)."""
        from PIL import Image

        return Image.fromarray(self.finish_array(item, ab_work, side_by_side))

    # -- public --------------------------------------------------------------------------------
    def render(self, item: PreparedImage, hints=None, vividness: float | None = None,
               side_by_side: bool = False) -> np.ndarray:
        """A prepared image -> the colorized ``(H, W, 3|4)`` uint8 array with these hints and vividness.
        Preparing once and rendering again is how the web page recolours without a new upload."""
        ab = self.predict_work([item], [self.hint_map(item, hints)], vividness)[0]
        return self.finish_array(item, ab, side_by_side)

    def colorize_image(self, im, side_by_side: bool = False, hints=None, vividness: float | None = None):
        """PIL image (any mode and size) -> colorized PIL image (RGB, or RGBA when it had alpha).

        ``hints``: colour points ``[(x, y, colour), ...]`` in the image's pixels (hint models);
        ``vividness``: 0 (most accurate) .. 1 (most colourful) (colour models; None: the default)."""
        from PIL import Image

        return Image.fromarray(self.render(self.prepare(im), hints, vividness, side_by_side))

    def colorize_batch(self, images: Iterable, side_by_side: bool = False, vividness: float | None = None) -> list:
        """Several PIL images -> colorized PIL images, one forward pass per working shape."""
        items = [self.prepare(im) for im in images]
        abs_ = self.predict_work(items, vividness=vividness)
        return [self.finish(it, ab, side_by_side) for it, ab in zip(items, abs_, strict=True)]

    def colorize_file(self, src, dst=None, side_by_side: bool = False, hints=None, vividness: float | None = None):
        """Colorize an image file; write a PNG to ``dst`` when given (atomically, recording
        :meth:`provenance`). Returns the PIL image."""
        item = self.prepare(open_image(src, max_pixels=self.max_pixels, name=str(src)))
        arr = self.render(item, hints, vividness, side_by_side)
        if dst is not None:
            v = (self.vividness if vividness is None else vividness) if self.controls else None
            save_png(arr, Path(dst), text=provenance_text(self.provenance(vividness=v, hints=_hints_record(hints))))
        from PIL import Image

        return Image.fromarray(arr)


def _label_of(im) -> str:
    return display_name(str(getattr(im, "filename", "") or "image"))


# ---- Python API --------------------------------------------------------------------------------------------
_COLORIZERS: dict = {}
_BY_PREDICTOR: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_colorizer(model="default", **kwargs) -> Colorizer:
    """A cached :class:`Colorizer` for ``model`` (a spec or a Predictor) and options. Thread-safe."""
    if isinstance(model, Colorizer):
        return model
    key = tuple(sorted((k, str(v)) for k, v in kwargs.items()))
    with _LOCK:
        if isinstance(model, str):
            c = _COLORIZERS.get((model, key))
            if c is None:
                c = _COLORIZERS[(model, key)] = Colorizer(model, **kwargs)
            return c
        per = _BY_PREDICTOR.setdefault(model, {})
        c = per.get(key)
        if c is None:
            c = per[key] = Colorizer(model, **kwargs)
        return c


def load_input(image_or_path, max_pixels: int = DEFAULT_MAX_PIXELS):
    """A path, bytes, PIL image or array -> PIL image (EXIF orientation applied for files).

    Arrays: ``(H, W)`` gray (uint8, uint16 or float 0..1), ``(H, W, 3)`` RGB or ``(H, W, 4)``
    RGBA uint8.
    """
    from PIL import Image

    if isinstance(image_or_path, (str, os.PathLike, bytes)):
        return open_image(image_or_path, max_pixels=max_pixels)
    if isinstance(image_or_path, Image.Image):
        return image_or_path
    a = np.asarray(image_or_path)
    if a.ndim == 2 and a.dtype == np.uint16:
        return Image.fromarray(a)  # mode I;16
    if a.ndim == 2 and a.dtype.kind == "f":
        return Image.fromarray(np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8))
    if a.ndim == 3 and a.shape[2] in (3, 4) and a.dtype.kind == "f":
        a = np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8)
    if (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) and a.dtype == np.uint8:
        return Image.fromarray(a)
    raise ImageError(f"cannot colorize an array of shape {a.shape} and dtype {a.dtype}: "
                     "give (H, W) gray or (H, W, 3|4) uint8")


def colorize(image_or_path, model="default", *, side_by_side: bool = False, hints=None,
             vividness: float | None = None, **kwargs):
    """Colorize one image -> PIL image of the input's size (RGBA when the input had alpha).

    ``model``: a name, run folder, weights file, Predictor or Colorizer. ``vividness``: 0 (most
    accurate) .. 1 (most colourful), for the colour models (None: the model's default).
    ``hints``: colour points ``[(x, y, colour), ...]``: x, y in the image's pixels, colour
    ``"#rrggbb"``, a CSS name or ``(r, g, b)`` of 0..255 (only its chroma is used; the photo keeps its
    lightness), for the hint models (``guided``). A bad hint, or hints / a vividness for a model
    without them, raise a ValueError (:class:`~chromalab.errors.SettingError`). Other keyword
    arguments go to :class:`Colorizer` (``work_size``, ``backend``, ``max_pixels``, ...);
    colorizers are cached, so repeated calls do not reload the model.
    """
    col = get_colorizer(model, **kwargs)
    if vividness is not None:
        col.check_vividness(vividness)
    if hints is not None and len(hints) and not col.takes_hints:
        raise SettingError(f"{_model_label(col.name)}: this model takes no colour hints (the guided model does)")
    return col.colorize_image(load_input(image_or_path, col.max_pixels), side_by_side=side_by_side, hints=hints,
                              vividness=vividness)
