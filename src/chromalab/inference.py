"""Colorize photos of any size: the model sees a small L, the output keeps the original L.

For every image::

    original (any mode, any size)  --L only-->  L (H, W), Lab 0..100, full size
        L resized to the working size (default: long side 64, multiples of the net's stride)
        -> model -> ab at working size -> bicubic upsampling to (H, W)
        original L + upsampled ab -> sRGB (uint8), alpha of the original kept

so the output has exactly the input's size and its L (up to uint8 rounding), as in Zhang et
al., DeOldify and DDColor. A colour input is reduced to L first, so the result can be
compared with the original.

Backends, picked by :class:`Colorizer` (``backend="auto"``):

* ``onnx``: onnxruntime, for predictors with a torch ``.net``. The net is exported once per
  weights file into the cache (``<cache>/onnx``; ``$CHROMALAB_CACHE/onnx`` when that is set),
  or in memory when the cache is not writable; a ``NAME.onnx`` next to ``NAME.safetensors``
  (e.g. a bundled one) is used when its recorded weights hash matches. A cached export is
  found again from the weights file alone, so ``chromalab colorize`` does not import torch
  at all; the graph onnxruntime optimizes is cached too (per machine).
* ``torch``: the ``.net`` in eager mode (inference mode, batched), when onnxruntime is missing.
* ``numpy``: ``predictor.predict_ab`` for every other model (gray, linear, SVR, ...).

ONNX and torch agree within 1e-4 (scaled units); ``tests/test_inference.py`` checks it.

Thread safety: a :class:`Colorizer` is fully built in ``__init__`` and holds no mutable
state afterwards; :meth:`Colorizer.colorize_image`, :meth:`Colorizer.colorize_batch` and the
step methods may be called from several threads at once (onnxruntime sessions and eval-mode
torch modules in inference mode run concurrently; a ``numpy`` backend is as safe as its
predictor's ``predict_ab``, which for the shipped predictors only reads learned state).
:func:`colorize` caches one Colorizer per model and options behind a lock. Row bands of the
full-size steps run on one small shared thread pool.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import struct
import tempfile
import threading
import weakref
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .color import AB_SCALE, L_MAX, lab_planes_to_rgb_uint8_fast, scale_L, unscale_ab
from .errors import ChromalabError, ImageError, ModelError, SettingError
from .images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    alpha_channel,
    display_name,
    image_notes,
    image_to_L,
    open_image,
)
from .predictors.base import Predictor

DEFAULT_WORK_SIZE = 64
"""Long side of the L the net sees (its training size); ``work_size=`` / ``--work-size`` change it."""
MAX_WORK_SIZE = 512
"""Largest working size accepted: 8x the training size. Larger ones only cost memory (a 100,000 px
working size asked for 23 GB); the measured gain in colour stops well below this (docs/colorize.md)."""
WORK_PIXELS_PER_PASS = 1 << 20
"""At most this many working-size pixels go through the net in one forward pass (64 images of
128x128, 4 of 512x512), which bounds the net's memory whatever the batch size and work size."""
PROVENANCE_KEY = "chromalab"
"""PNG text keyword under which an output records (as JSON) the model and settings that made it."""
PNG_COMPRESS_LEVEL = 1
"""zlib level for output PNGs: level 1 is ~5x faster than Pillow's default 6 for ~10 % larger files."""
ONNX_OPSET = 17
EXPORT_VERSION = 2  # 2: the colour models' graphs take hints and a vividness
"""Bump when the exported graph changes (part of the ONNX cache key)."""
BACKENDS = ("auto", "onnx", "torch", "numpy")
UPSAMPLE = ("bicubic", "bilinear")
_BAND_PIXELS = 1 << 17
"""Pixels per band of the final Lab -> sRGB step (bounds its temporaries for huge images)."""
_TOL_NET_VS_PREDICTOR = 1e-3
_LOCK = threading.RLock()


# ---- small helpers ---------------------------------------------------------------------------------------
def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def onnx_cache_dir() -> Path:
    """Where exported ONNX files are cached: ``$CHROMALAB_CACHE/onnx`` or the user cache dir."""
    env = os.environ.get("CHROMALAB_CACHE")
    if env:
        return Path(env).expanduser() / "onnx"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("chromalab")) / "onnx"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _export_tag() -> str:
    """What, besides the weights, the exported graph depends on."""
    return f"v{EXPORT_VERSION}-op{ONNX_OPSET}-L{L_MAX:g}-ab{AB_SCALE:g}"


def weights_file_for(spec: str) -> Path | None:
    """The net weights file a model spec names (bundled name, run folder, .safetensors), if any."""
    from .registry import REGISTRY

    if spec in REGISTRY:
        if REGISTRY[spec].group != "bundled":
            return None
        p = Path(__file__).parent / "weights" / f"{REGISTRY[spec].weights_stem}.safetensors"
        return p if p.is_file() else None
    p = Path(spec).expanduser()
    if p.is_dir() and (p / "run.json").is_file():
        try:
            kind = json.loads((p / "run.json").read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            return None
        w = p / "best.safetensors"
        return w if kind == "net" and w.is_file() else None
    if p.is_file() and p.suffix == ".safetensors":
        return p
    return None


def _resize_plane(a: np.ndarray, size_wh: tuple[int, int], resample: str = "bicubic") -> np.ndarray:
    """``(H, W)`` float32 -> ``(h, w)`` float32 with PIL (antialiased when shrinking)."""
    from PIL import Image

    if (a.shape[1], a.shape[0]) == tuple(size_wh):
        return a
    f = Image.Resampling.BICUBIC if resample == "bicubic" else Image.Resampling.BILINEAR
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.asarray(im.resize(size_wh, f), dtype=np.float32)


# ---- backends --------------------------------------------------------------------------------------------
def _lab_wrapper(net):
    """torch module: L ``(B, 1, H, W)`` in Lab units -> ab ``(B, 2, H, W)`` in Lab units.

    For a net with controls (:func:`has_controls`: the colour models) the module takes
    ``(L, hints (B, 3, H, W), vividness (1,))`` (:mod:`chromalab.hints`), as its ONNX export does.
    """
    import torch

    class LabNet(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, L):  # noqa: N803
            return unscale_ab(self.inner(scale_L(L)))

    class ControlNet(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.hints = bool(inner.hints)

        def forward(self, L, hints, vividness):  # noqa: N803
            x = torch.cat([scale_L(L), hints], dim=1) if self.hints else scale_L(L)  # (B, 4 or 1, H, W)
            return unscale_ab(self.inner(x, vividness))

    return (ControlNet if has_controls(net) else LabNet)(net).eval()


def has_controls(net) -> bool:
    """Whether a net takes colour hints and a vividness (a :class:`~chromalab.nets.ColorNet`)."""
    return hasattr(net, "vividness") and hasattr(net, "hints") and hasattr(net, "heads")


def _no_hints(L: np.ndarray) -> np.ndarray:  # noqa: N803
    return np.zeros((L.shape[0], 3, *L.shape[2:]), dtype=np.float32)


class _NumpyBackend:
    name = "numpy"

    def __init__(self, predictor):
        self.predictor = predictor
        self.controls = hasattr(predictor, "predict_controls")

    def predict_ab(self, L: np.ndarray, hints: np.ndarray | None = None,  # noqa: N803
                   vividness: float | None = None) -> np.ndarray:
        if self.controls:
            return self.predictor.predict_controls(L, hints, vividness)
        return self.predictor.predict_ab(L)


class _TorchBackend:
    name = "torch"

    def __init__(self, net, channels_last: bool = False):
        self.module = _lab_wrapper(net)
        self.controls = has_controls(net)
        self.vividness = float(net.vividness) if self.controls else None
        self.channels_last = channels_last
        if channels_last:
            import torch

            self.module = self.module.to(memory_format=torch.channels_last)

    def predict_ab(self, L: np.ndarray, hints: np.ndarray | None = None,  # noqa: N803
                   vividness: float | None = None) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(L, dtype=np.float32))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.controls:
                h = torch.from_numpy(np.ascontiguousarray(_no_hints(L) if hints is None else hints, dtype=np.float32))
                v = torch.tensor([self.vividness if vividness is None else vividness], dtype=torch.float32)
                y = self.module(x, h, v)
            else:
                y = self.module(x)
        return np.ascontiguousarray(y.float().numpy(), dtype=np.float32)


class _OrtBackend:
    """An onnxruntime session (CPU). ``save_optimized``: also write the session's optimized graph
    there (machine-specific; loaded later with ``optimized=True``, which skips re-optimizing)."""

    name = "onnx"

    def __init__(self, model: str | bytes, threads: int | None = None, optimized: bool = False,
                 save_optimized: Path | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if optimized
                                       else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        tmp = None
        if save_optimized is not None:
            try:
                save_optimized.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=save_optimized.parent, prefix=f".{save_optimized.name}.", suffix=".tmp")
                os.close(fd)
                so.optimized_model_filepath = tmp
            except OSError:
                tmp = None
        try:
            self.session = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        except Exception:
            if tmp is None:
                raise
            Path(tmp).unlink(missing_ok=True)
            so.optimized_model_filepath = ""
            tmp = None
            self.session = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        if tmp is not None and save_optimized is not None:
            try:
                os.chmod(tmp, _umask_mode())
                os.replace(tmp, save_optimized)
            except OSError:
                Path(tmp).unlink(missing_ok=True)
        self.input = self.session.get_inputs()[0].name
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.controls = len(self.session.get_inputs()) == 3  # L, hints, vividness
        self.vividness = float(self.meta.get("vividness", "nan")) if self.controls else None

    def predict_ab(self, L: np.ndarray, hints: np.ndarray | None = None,  # noqa: N803
                   vividness: float | None = None) -> np.ndarray:
        feed = {self.input: np.ascontiguousarray(L, dtype=np.float32)}
        if self.controls:
            feed["hints"] = np.ascontiguousarray(_no_hints(L) if hints is None else hints, dtype=np.float32)
            feed["vividness"] = np.array([self.vividness if vividness is None else vividness], dtype=np.float32)
        out = self.session.run(None, feed)[0]
        return np.asarray(out, dtype=np.float32)


def _machine_key() -> str:
    """onnxruntime version + CPU model and flags: an optimized graph is only valid for these."""
    import platform

    import onnxruntime as ort

    info = f"{ort.__version__}|{platform.machine()}|{platform.processor()}"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features")):
                    info += "|" + line.strip()
                if line.strip() == "":
                    break  # the first CPU is enough
    except OSError:
        pass
    return hashlib.sha1(info.encode()).hexdigest()[:12]


def export_onnx(net, path: str | os.PathLike | None = None, meta: dict | None = None) -> bytes:
    """Export a colorization net (scaled L -> scaled ab) as ONNX taking L and giving ab in Lab units.

    Batch, height and width are dynamic. ``meta`` is stored as ONNX metadata (strings). Written
    atomically to ``path`` when given; the model bytes are returned either way.
    """
    import io
    import warnings

    import torch

    module = _lab_wrapper(net)
    stride = int(getattr(net, "net_stride", 16) or 16)
    x = torch.rand(2, 1, 4 * stride, 3 * stride) * L_MAX
    args: tuple = (x,)
    names = ["L"]
    axes = {"L": {0: "batch", 2: "height", 3: "width"}, "ab": {0: "batch", 2: "height", 3: "width"}}
    if has_controls(net):  # the colour models: hint channels and the vividness are inputs too
        args = (x, torch.zeros(2, 3, 4 * stride, 3 * stride), torch.tensor([0.5]))
        names = ["L", "hints", "vividness"]
        axes["hints"] = {0: "batch", 2: "height", 3: "width"}
        meta = {**(meta or {}), "vividness": float(net.vividness), "hints": int(bool(net.hints))}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module, args, buf, input_names=names, output_names=["ab"], opset_version=ONNX_OPSET,  # type: ignore[arg-type]
                dynamic_axes=axes, dynamo=False,
            )
        except TypeError:  # a torch without the legacy exporter switch
            torch.onnx.export(module, args, buf, input_names=names, output_names=["ab"], opset_version=ONNX_OPSET,  # type: ignore[arg-type]
                              dynamic_axes=axes)
    data = buf.getvalue()
    if meta:
        import onnx

        m = onnx.load_from_string(data)
        for k, v in meta.items():
            p = m.metadata_props.add()
            p.key, p.value = str(k), str(v)
        data = m.SerializeToString()
    if path is not None:
        _atomic_write_bytes(Path(path), data)
    return data


def _umask_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give a new file (mkstemp uses 0600)."""
    try:  # Linux: read it without changing it (os.umask is process-wide, so racy in threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def _atomic_write_bytes(path: Path, data: bytes, mkdir: bool = True) -> None:
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached_onnx_candidates(weights: Path, sha: str, cache: Path | None) -> list[Path]:
    """Bundled sibling (``default.onnx`` next to ``default.safetensors``) first, then the cache."""
    out = [weights.with_suffix(".onnx")]
    if cache is not None:
        out.append(cache / f"{sha[:32]}-{_export_tag()}.onnx")
    return out


def _open_cached_onnx(weights: Path, sha: str, cache: Path | None):
    """An ORT backend from a cached or bundled export of ``weights`` (checked by hash), or None.

    The graph onnxruntime optimizes on first load is kept in the cache (per machine), so later
    processes skip that step (~50-150 ms for a U-Net)."""
    opt = cache / f"{sha[:32]}-{_export_tag()}-opt-{_machine_key()}.onnx" if cache is not None else None

    def valid(be) -> bool:
        return be.meta.get("weights_sha256") == sha and be.meta.get("export_tag") == _export_tag()

    if opt is not None and opt.is_file():
        try:
            be = _OrtBackend(str(opt), optimized=True)
            if valid(be):
                return be
        except Exception:  # noqa: BLE001, S110 - stale or broken: rebuild it below
            pass
    for p in _cached_onnx_candidates(weights, sha, cache):
        if not p.is_file():
            continue
        try:
            be = _OrtBackend(str(p), save_optimized=opt)
        except Exception:  # noqa: BLE001 - a broken cache file: ignore it, re-export
            continue
        if valid(be):
            return be
        if opt is not None:
            opt.unlink(missing_ok=True)
    return None


# ---- the colorizer ---------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """One image ready for the model."""

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
                found = _open_cached_onnx(weights, sha, cache)
            if found is None:
                from .registry import load_predictor

                self.predictor = load_predictor(model, progress=False)
        elif isinstance(model, Predictor):
            self.predictor = model
            self.name = model.name
        else:
            raise ModelError(f"not a model: {model!r} (give a name, a run folder, a weights file or a Predictor)")

        self._backend: _OrtBackend | _TorchBackend | _NumpyBackend
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
        if isinstance(be, _OrtBackend):
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
            return _NumpyBackend(pred)
        self.fully_conv = True
        self.stride = int(getattr(pred, "stride", None) or getattr(net, "net_stride", None) or 16)
        if backend == "numpy":
            return _NumpyBackend(pred)
        net.eval()
        if not self._net_matches(pred, net):
            if backend != "auto":
                raise ModelError(f"{self.name}: predict_ab differs from its .net; use backend='numpy'")
            return _NumpyBackend(pred)  # predict_ab does more than the net: respect it
        if not want_onnx:
            return _TorchBackend(net, channels_last=channels_last)
        meta = {"name": self.name, "input_size": self.input_size or DEFAULT_WORK_SIZE,
                "stride": self.stride, "export_tag": _export_tag(), "weights_sha256": sha or ""}
        data = export_onnx(net, None, meta)
        if cache_file is not None:
            try:
                _atomic_write_bytes(cache_file, data)
            except OSError:
                pass  # read-only cache: keep the in-memory export
        return _OrtBackend(data, threads)

    # -- properties ---------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend.name

    def __repr__(self) -> str:
        return f"<Colorizer {self.name} backend={self.backend} work_size={self.work_size}>"

    @staticmethod
    def _net_matches(pred, net) -> bool:
        """The fast path runs ``.net`` directly; make sure that is what ``predict_ab`` does."""
        import torch

        s = int(getattr(net, "net_stride", 16) or 16)
        size = max(s, int(getattr(pred, "input_size", None) or 64))
        size = -(-size // s) * s
        L = np.linspace(0, L_MAX, size * size, dtype=np.float32).reshape(1, 1, size, size)  # noqa: N806
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

    def prepare(self, im) -> Prepared:
        """PIL image -> :class:`Prepared` (full-size L, alpha, L at the working size)."""
        w, h = im.size
        if w * h > self.max_pixels:
            raise ImageError(f"{_label_of(im)}: {w}x{h} = {w * h:,} pixels is over the limit of {self.max_pixels:,}")
        if w < 1 or h < 1:
            raise ImageError(f"{_label_of(im)}: has no pixels ({w}x{h})")
        L = image_to_L(im)  # noqa: N806
        hh, ww = self.work_shape(h, w)
        work = _resize_plane(L, (ww, hh), "bicubic")
        return Prepared(L=L, alpha=alpha_channel(im), work=work, n_frames=int(im.info.get("n_frames", 1) or 1),
                        notes=tuple(image_notes(im)))

    def check_vividness(self, vividness) -> float:
        """A vividness for this model, or a one-line :class:`SettingError` (out of range, or a model without one)."""
        from .predictors.nets import check_vividness

        if not self.controls:
            raise SettingError(f"{_model_label(self.name)}: this model has no vividness setting (the colour models "
                               f"default and guided have one)")
        return check_vividness(vividness, _model_label(self.name))

    def hint_map(self, item: Prepared, hints) -> np.ndarray | None:
        """User hints ``[(x, y, colour), ...]`` in the image's pixels (see :func:`chromalab.hints.parse_hints`)
        -> the net's hint channels ``(3, h, w)`` at the working size; None for no hints. Raises
        :class:`SettingError` (a ValueError) for a bad hint or a model that takes none."""
        if hints is None or len(hints) == 0:
            return None
        from .hints import hint_channels, parse_hints

        if not self.takes_hints:
            raise SettingError(f"{_model_label(self.name)}: this model takes no colour hints (the guided model "
                               f"does: --model guided)")
        H, W = item.L.shape  # noqa: N806
        return hint_channels(parse_hints(hints, W, H), (H, W), item.work.shape)

    def predict_work(self, items: Sequence[Prepared], hints: Sequence[np.ndarray | None] | None = None,
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
                L = np.stack([items[i].work for i in part])[:, None]  # noqa: N806  (n, 1, h, w)
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

    def finish_array(self, item: Prepared, ab_work: np.ndarray, side_by_side: bool = False) -> np.ndarray:
        """Upsample ab ``(2, h, w)`` to full size, add the original L, convert to sRGB, keep alpha.

        Returns ``(H, W, 3|4)`` uint8 (``(H, 2W, 3|4)`` side by side: gray | colour). Done in
        bands of rows, on a few threads: the full-size ab is never held at once.
        """
        H, W = item.L.shape  # noqa: N806
        C = 3 if item.alpha is None else 4  # noqa: N806
        out = np.empty((H, 2 * W if side_by_side else W, C), dtype=np.uint8)
        ty = _taps(ab_work.shape[1], H, self.upsample)  # rows: h -> H
        tx = _taps(ab_work.shape[2], W, self.upsample)  # columns: w -> W
        a_cols = _resample_rows(np.ascontiguousarray(ab_work[0].T), tx).T  # (h, W): horizontal pass once
        b_cols = _resample_rows(np.ascontiguousarray(ab_work[1].T), tx).T
        a_cols, b_cols = np.ascontiguousarray(a_cols), np.ascontiguousarray(b_cols)
        x0 = W if side_by_side else 0

        def band(r0: int, r1: int) -> None:
            Lb = item.L[r0:r1]  # noqa: N806
            a = _resample_rows(a_cols, ty, slice(r0, r1))  # (rows, W)
            b = _resample_rows(b_cols, ty, slice(r0, r1))
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

    def finish(self, item: Prepared, ab_work: np.ndarray, side_by_side: bool = False):
        """:meth:`finish_array` as a PIL image (RGB, or RGBA when the input had alpha)."""
        from PIL import Image

        return Image.fromarray(self.finish_array(item, ab_work, side_by_side))

    # -- public --------------------------------------------------------------------------------
    def render(self, item: Prepared, hints=None, vividness: float | None = None,
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


def _hints_record(hints) -> list | None:
    """Hints as recorded in an output's provenance (JSON-able; None when there are none)."""
    if not hints:
        return None
    return [dict(h) if isinstance(h, dict) else {"x": h[0], "y": h[1], "color": h[2] if isinstance(h[2], str)
                                                 else list(h[2])} for h in hints]


def _label_of(im) -> str:
    return display_name(str(getattr(im, "filename", "") or "image"))


def _model_label(spec: str) -> str:
    """How a model is named in an output's record: a registry name as is; a run folder or weights
    file by its name only (no machine path; its weights' hash identifies it)."""
    from .registry import REGISTRY

    if spec in REGISTRY:
        return spec
    return Path(spec).name or spec


# ---- full-size steps: upsampling matrices, banded colour conversion, PNG encoding -------------------
def _kernel(kind: str):
    if kind == "bilinear":
        return 1.0, lambda x: np.maximum(0.0, 1.0 - np.abs(x))

    def bicubic(x, a=-0.5):  # Keys, as Pillow's BICUBIC
        x = np.abs(x)
        return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                        np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))

    return 2.0, bicubic


@functools.lru_cache(maxsize=64)
def _interp_matrix(n_in: int, n_out: int, kind: str = "bicubic") -> np.ndarray:
    """``(n_out, n_in)`` float32 resampling weights, computed as Pillow does (pixel centres,
    normalised taps, kernel widened when shrinking), so ``R @ x`` equals Pillow's resize of x."""
    support, k = _kernel(kind)
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support *= fscale
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        x = np.arange(lo, hi)
        w = k((x - center + 0.5) / fscale)
        total = w.sum()
        m[i, lo:hi] = w / total if total != 0 else w
    out = m.astype(np.float32)
    out.setflags(write=False)  # shared through the cache
    return out


@functools.lru_cache(maxsize=64)
def _taps(n_in: int, n_out: int, kind: str = "bicubic") -> tuple[np.ndarray, np.ndarray]:
    """The same weights as :func:`_interp_matrix`, as (index, weight) taps ``(n_out, K)`` each.

    Upsampling needs K <= 5 taps per output; applying them as gathers avoids BLAS, whose own
    threads make these small products slow (and fight the band threads)."""
    m = _interp_matrix(n_in, n_out, kind)
    nz = m != 0
    lo = np.where(nz.any(1), nz.argmax(1), 0)
    hi = np.where(nz.any(1), n_in - nz[:, ::-1].argmax(1), 1)
    K = int((hi - lo).max())  # noqa: N806
    idx = np.minimum(lo[:, None] + np.arange(K)[None, :], n_in - 1)
    w = np.take_along_axis(m, idx, axis=1) * (lo[:, None] + np.arange(K)[None, :] < hi[:, None])
    idx.setflags(write=False)
    w = w.astype(np.float32)
    w.setflags(write=False)
    return idx.astype(np.intp), w


def _resample_rows(x: np.ndarray, taps: tuple[np.ndarray, np.ndarray], rows: slice | None = None) -> np.ndarray:
    """Resample axis 0 of ``x`` ``(n_in, W)`` with taps -> ``(n_out, W)`` (or just ``rows`` of it)."""
    idx, w = taps
    if rows is not None:
        idx, w = idx[rows], w[rows]
    out = x[idx[:, 0]] * w[:, :1]
    for k in range(1, idx.shape[1]):
        out += x[idx[:, k]] * w[:, k : k + 1]
    return out


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """A small shared thread pool for row bands (numpy and zlib release the GIL)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                                       thread_name_prefix="chromalab-band")
        return _POOL


def _run_bands(fn, H: int, W: int) -> None:  # noqa: N803
    """Call ``fn(r0, r1)`` over row bands of about ``_BAND_PIXELS`` pixels, on the shared pool."""
    rows = max(1, _BAND_PIXELS // max(W, 1))
    bands = [(r, min(r + rows, H)) for r in range(0, H, rows)]
    if len(bands) == 1:
        fn(*bands[0])
        return
    for f in [_pool().submit(fn, r0, r1) for r0, r1 in bands]:
        f.result()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _text_chunks(text: dict[str, str] | None) -> bytes:
    """tEXt chunks (Latin-1 keyword and text) for ``text``."""
    out = b""
    for k, v in (text or {}).items():
        key = k.encode("latin-1")
        if not 1 <= len(key) <= 79 or b"\0" in key:
            raise ValueError(f"PNG text keyword must be 1-79 Latin-1 characters, got {k!r}")
        out += _png_chunk(b"tEXt", key + b"\0" + v.encode("latin-1"))
    return out


def provenance_text(record: dict) -> dict[str, str]:
    """The PNG text entries for an output made as ``record`` says (see :meth:`Colorizer.provenance`)."""
    from . import __version__

    return {PROVENANCE_KEY: json.dumps(record, sort_keys=True, separators=(",", ":")),
            "Software": f"chromalab {__version__}"}


def read_png_text(path: str | os.PathLike, key: str) -> str | None:
    """The tEXt entry ``key`` of a PNG file, read from the chunks before the image data (a few
    hundred bytes), or None: not a PNG, no such entry, unreadable, or not a regular file."""
    try:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            want = key.encode("latin-1")
            for _ in range(64):
                head = f.read(8)
                if len(head) < 8:
                    return None
                n, kind = struct.unpack(">I", head[:4])[0], head[4:]
                if kind in (b"IDAT", b"IEND") or n > 1 << 20:
                    return None
                data = f.read(n)
                f.seek(4, os.SEEK_CUR)  # CRC
                if kind == b"tEXt" and b"\0" in data:
                    k, v = data.split(b"\0", 1)
                    if k == want:
                        return v.decode("latin-1")
    except (OSError, ValueError, struct.error):
        return None
    return None


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The record (model and settings) an output made by chromalab carries, or None."""
    raw = read_png_text(path, PROVENANCE_KEY)
    if raw is None:
        return None
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def encode_png(arr: np.ndarray, level: int = PNG_COMPRESS_LEVEL, text: dict[str, str] | None = None) -> bytes:
    """uint8 ``(H, W, 3|4)`` -> PNG bytes (8-bit RGB/RGBA), faster than Pillow's encoder.

    ``text``: tEXt entries (keyword -> Latin-1 text), written before the image data so that
    :func:`read_png_text` finds them without reading the pixels.

    Every row gets the "Up" filter (one vectorised subtraction instead of Pillow's per-row
    adaptive choice; files come out about as small), and large images are deflated in parts
    on several threads, joined into one valid zlib stream (sync-flushed raw deflate parts).
    """
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected (H, W, 3|4) uint8, got {arr.shape}")
    H, W, C = arr.shape  # noqa: N806
    rows = arr.reshape(H, W * C)
    filt = np.empty((H, W * C + 1), dtype=np.uint8)
    filt[:, 0] = 2  # Up
    filt[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filt[1:, 1:])
    raw = filt.reshape(-1).data
    parts = max(1, min(4, os.cpu_count() or 1, len(raw) >> 21))  # one part per 2 MB, at most 4
    step = -(-H // parts) * (W * C + 1)
    pieces = [raw[i : i + step] for i in range(0, len(raw), step)]

    def deflate(k: int) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        last = k == len(pieces) - 1
        return c.compress(pieces[k]) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    if len(pieces) == 1:
        body = deflate(0)
    else:
        body = b"".join(_pool().map(deflate, range(len(pieces))))
    stream = b"\x78\x01" + body + struct.pack(">I", zlib.adler32(raw) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 2 if C == 3 else 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _text_chunks(text) + _png_chunk(b"IDAT", stream)
            + _png_chunk(b"IEND", b""))


def save_png(im, path: Path, compress_level: int = PNG_COMPRESS_LEVEL, text: dict[str, str] | None = None) -> None:
    """Write a PIL image or uint8 ``(H, W, 3|4)`` array as PNG, atomically (temp file, rename).

    ``text``: tEXt entries to record (e.g. :func:`provenance_text`)."""
    path = Path(path)
    if isinstance(im, np.ndarray):
        data = encode_png(im, compress_level, text)
    else:
        import io

        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for k, v in (text or {}).items():
            info.add_text(k, v)
        buf = io.BytesIO()
        im.save(buf, format="PNG", compress_level=compress_level, pnginfo=info)
        data = buf.getvalue()
    _atomic_write_bytes(path, data, mkdir=False)


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


# ---- CLI ---------------------------------------------------------------------------------------------------
COLOR_SUFFIX = "_color"
COMPARE_SUFFIX = "_compare"


VIDEO_OUTPUT_SUFFIXES = (".mp4", ".webm", ".mkv")
"""A video's output container in a folder run: MP4, or the first of these that holds ``--codec``."""


@dataclass
class Job:
    src: Path  # the input file
    label: str  # how messages name it (one printable line, see images.display_name)
    out: Path | None = None  # the planned colorized PNG (a video: the colorized video)
    compare: Path | None = None  # the planned gray | colorized PNG (--side-by-side; photos only)
    error: str | None = None  # a planning error (message names the file)
    video: bool = False  # a video file (by suffix, see chromalab.video.is_video_path)

    @property
    def outputs(self) -> list[Path]:
        return [p for p in (self.out, self.compare) if p is not None]


def _compare_path(out: Path) -> Path:
    """``x_color.png`` -> ``x_compare.png`` (``x_color_2.png`` -> ``x_compare_2.png``)."""
    name = out.name
    i = name.rfind(COLOR_SUFFIX)
    if i < 0:
        return out.with_name(f"{out.stem}{COMPARE_SUFFIX}.png")
    return out.with_name(name[:i] + COMPARE_SUFFIX + name[i + len(COLOR_SUFFIX) :])


def _video_suffixes() -> tuple[str, ...]:
    from .video.io import VIDEO_SUFFIXES

    return VIDEO_SUFFIXES


def is_video_name(p: str | os.PathLike) -> bool:
    """Whether the CLI treats ``p`` as a video (by suffix: .mp4 .mov .mkv .webm .avi .m4v)."""
    return Path(p).suffix.lower() in _video_suffixes()


def iter_folder_media(folder: Path, exclude=None, on_error=None):
    """Photos and videos under ``folder``, recursively, sorted (the rules of
    :func:`~chromalab.images.iter_folder_images`: hidden names and ``exclude`` skipped, links to
    folders not followed, unlistable folders passed to ``on_error``)."""
    folder = Path(folder)
    if exclude is None:
        exclude = []
    elif isinstance(exclude, (str, os.PathLike)):
        exclude = [exclude]
    excl = {os.path.realpath(e) for e in exclude}
    wanted = set(IMAGE_SUFFIXES) | set(_video_suffixes())
    for root, dirs, files in os.walk(folder, followlinks=False, onerror=on_error):
        if os.path.realpath(root) in excl:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if not f.startswith(".") and Path(f).suffix.lower() in wanted:
                yield Path(root) / f


def output_file(output: str | os.PathLike, paths: Sequence[str | os.PathLike]) -> Path | None:
    """The one output file ``-o`` names, or None when it names a folder.

    ``-o`` names a file when it ends in an image suffix (``.png``, ``.jpg``, ...) or a video
    suffix (``.mp4``, ``.mkv``, ...) and is not an existing folder. Exactly one input file may
    be given then. A photo's output is a PNG, so the suffix must be ``.png``; a video's is a
    video, whose container follows the suffix. Otherwise a one-line :class:`ChromalabError`.
    """
    out = Path(output)
    suffix = out.suffix.lower()
    as_video = suffix in _video_suffixes()
    if (suffix not in IMAGE_SUFFIXES and not as_video) or out.is_dir():
        return None
    shown = display_name(out)
    video_in = len(paths) == 1 and is_video_name(paths[0]) and not Path(paths[0]).is_dir()
    if not as_video and video_in:
        raise ChromalabError(f"-o {shown}: a video's output is a video file; name it {display_name(out.stem)}.mp4 "
                             "or give a folder")
    if not as_video and suffix != ".png":
        raise ChromalabError(f"-o {shown}: outputs are PNG files; name it {display_name(out.stem)}.png "
                             "or give a folder")
    if len(paths) != 1:
        raise ChromalabError(f"-o {shown} names one output file, but {len(paths)} inputs were given; "
                             "give a folder with -o")
    if Path(paths[0]).is_dir():
        raise ChromalabError(f"-o {shown} names one output file, but {display_name(paths[0])} is a folder; "
                             "give a folder with -o")
    if as_video and not video_in:
        raise ChromalabError(f"-o {shown}: a photo's output is a PNG file; name it {display_name(out.stem)}.png "
                             "or give a folder")
    return out


def plan_jobs(paths: Sequence[str | os.PathLike], output: Path, side_by_side: bool = False,
              video_suffix: str = ".mp4") -> list[Job]:
    """Inputs -> jobs with their outputs (the layout documented in docs/colorize.md).

    * a file ``photo.jpg`` -> ``OUT/photo_color.png``; a video ``film.mkv`` ->
      ``OUT/film_color.mp4`` (``video_suffix``);
    * a folder ``photos`` -> ``OUT/photos/<same sub-folders>/<stem>_color.png`` (recursive; photos
      and videos);
    * with ``side_by_side`` also ``..._compare.png`` next to each photo's ``..._color.png``;
    * ``output`` ending in ``.png`` (a video suffix for a video) and not an existing folder, with
      one input file: that file (and ``<name>_compare.png``), see :func:`output_file`;
    * inputs that would share an output and differ in extension get it in the name
      (``photo_jpg_color.png``, ``photo_png_color.png``); any still equal get ``_2``, ``_3`` ...
      in input order (``a_color.png``, ``a_color_2.png``);
    * the output folder is never searched when it lies inside an input folder;
    * the same file reached twice is done once; a folder that cannot be listed is an error job.
    """
    jobs: list[Job] = []
    seen: set[str] = set()
    out_root = Path(output)
    single = output_file(out_root, paths)

    def add(src: Path, label: str, out: Path, video: bool) -> None:
        real = os.path.realpath(src)
        if real in seen:
            return
        seen.add(real)
        jobs.append(Job(src=src, label=label, out=out, video=video))

    def name(f: Path, video: bool) -> str:
        return f"{f.stem}{COLOR_SUFFIX}{video_suffix if video else '.png'}"

    for p in paths:
        p = Path(p)
        label = display_name(p)
        if p.is_dir():
            found = False
            problems: list[OSError] = []
            base = out_root / (Path(os.path.realpath(p)).name or "root")
            # never read our own outputs: skip where this folder's outputs go, and the whole
            # output folder when it lies inside this one
            inside = _is_within(out_root, p) and os.path.realpath(out_root) != os.path.realpath(p)
            for f in iter_folder_media(p, exclude=[base] + ([out_root] if inside else []), on_error=problems.append):
                found = True
                rel = f.relative_to(p)
                video = is_video_name(f)
                add(f, display_name(f), base / rel.parent / name(f, video), video)
            for e in problems:
                where = display_name(e.filename if e.filename is not None else p)
                jobs.append(Job(src=p, label=where, error=f"{where}: cannot list this folder ({e.strerror or e})"))
            if not found and not problems:
                jobs.append(Job(src=p, label=label, error=f"{label}: a folder with no images in it "
                                "(looked for .jpg .jpeg .png .bmp .gif .tif .tiff .webp and videos "
                                f"{' '.join(_video_suffixes())})"))
        elif os.path.lexists(p):
            video = is_video_name(p)
            add(p, label, single if single is not None else out_root / name(p, video), video)
        else:
            jobs.append(Job(src=p, label=label, error=f"{label}: no such file or folder"))

    # outputs shared by several inputs: add the extension, then a counter
    def key(j: Job) -> str:
        return os.path.normcase(str(j.out)).casefold()

    groups: dict[str, list[Job]] = {}
    for j in jobs:
        if j.out is not None:
            groups.setdefault(key(j), []).append(j)
    for g in groups.values():
        exts = [j.src.suffix.lstrip(".").lower() or "noext" for j in g]
        if len(set(exts)) > 1:  # the extension tells them apart (at least partly)
            for j, ext in zip(g, exts, strict=True):
                j.out = (j.out or out_root).with_name(f"{j.src.stem}_{ext}{COLOR_SUFFIX}{(j.out or out_root).suffix}")
    taken: dict[str, int] = {}
    for j in jobs:
        if j.out is None:
            continue
        k = key(j)
        n = taken.get(k, 0) + 1
        taken[k] = n
        if n > 1:
            j.out = j.out.with_name(f"{j.out.stem}_{n}{j.out.suffix}")
        if side_by_side and not j.video:
            j.compare = _compare_path(j.out)
    # never write over an input
    inputs = {os.path.realpath(j.src) for j in jobs}
    for j in jobs:
        hit = next((o for o in j.outputs if os.path.realpath(o) in inputs), None)
        if hit is not None:
            j.error = (f"{j.label}: its output {display_name(hit)} is an input file; refusing to write over it "
                       "(use another -o)")
            j.out = j.compare = None
    return jobs


def _is_within(child: Path, parent: Path) -> bool:
    c, p = os.path.realpath(child), os.path.realpath(parent)
    return c == p or c.startswith(p.rstrip(os.sep) + os.sep)


def _progress(console, total: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=True, disable=total < 2)


def model_fingerprint(spec: str) -> str | None:
    """SHA-256 of the file that defines a model spec: its weights file, else a run folder's
    ``run.json``; None for registry models without a file (``gray``, ...)."""
    w = weights_file_for(spec)
    if w is not None:
        return _sha256_file(w)
    run = Path(spec).expanduser() / "run.json"
    if Path(spec).expanduser().is_dir() and run.is_file():
        return _sha256_file(run)
    return None


def _output_state(path: Path, record: dict, overwrite: bool, reader=read_provenance) -> str:
    """``missing``, ``current`` (made by this record), ``stale`` (anything else: replace it) or
    ``blocked`` (a folder or special file is in the way). ``reader``: the record an output
    carries (PNG text; a video's container tag)."""
    if not os.path.lexists(path):
        return "missing"
    if os.path.isdir(path) or (os.path.exists(path) and not os.path.isfile(path)):
        return "blocked"
    if overwrite:
        return "stale"
    return "current" if reader(path) == record else "stale"


def _check_temporal(temporal) -> float:
    try:
        t = float(temporal)
    except (TypeError, ValueError):
        t = float("nan")
    if not 0.0 <= t <= 1.0:
        raise SettingError(f"--temporal must be a number in 0..1, got {temporal!r}")
    return t


def _video_output_suffix(codec: str | None, crf: int | None) -> str:
    """The container of a video's output in a folder run: ``.mp4`` unless ``--codec`` cannot go
    in MP4 (then the first of :data:`VIDEO_OUTPUT_SUFFIXES` that holds it). Checks ``--codec`` and
    ``--crf`` (one-line VideoError) before any work."""
    if codec is None and crf is None:
        return VIDEO_OUTPUT_SUFFIXES[0]
    from .errors import VideoError
    from .video import check_output

    first: VideoError | None = None
    for suffix in VIDEO_OUTPUT_SUFFIXES:
        try:
            check_output(f"x{suffix}", codec, crf)
            return suffix
        except VideoError as e:
            first = first or e
            if "cannot go in" not in str(e):
                raise  # an unknown codec or a bad --crf: the same for every container
    assert first is not None
    raise first


def colorize_cli(paths, output=None, model="default", overwrite: bool = False, side_by_side: bool = False,
                 max_pixels: int | None = None, batch_size: int = 16, work_size: int | None = None,
                 backend: str = "auto", progress: bool = True, temperature: float | None = None,
                 settings: dict | None = None, vividness: float | None = None, hints=None,
                 temporal: float | None = None, codec: str | None = None, crf: int | None = None) -> int:
    """``chromalab colorize``: files and folders in, PNGs out, one line per problem, a summary line.

    Videos (``.mp4 .mov .mkv .webm .avi .m4v``, files or in folders) go through
    :func:`chromalab.video.colorize_video_file` with the same model, vividness and hints (every
    frame gets the same hints): ``film.mkv`` -> ``OUT/film_color.mp4`` (a ``--codec`` MP4 cannot
    hold: ``.webm`` or ``.mkv``), each with its own progress bar (frames, fps, ETA), after the
    photos. ``temporal`` (0..1, default 0.9), ``codec`` and ``crf``: see
    :func:`~chromalab.video.colorize_video_file`. A video's record (its ``comment`` tag) also holds
    the temporal strength, encoder and CRF. ``side_by_side`` applies to photos only (a note says so).

    The model is loaded first, so an unknown model or a bad setting stops the run before any
    file is touched. ``temperature``: T of a vivid model's annealed mean (an error for other models).
    ``vividness``: the colour models' 0..1 setting; ``hints``: colour points ``[(x, y, colour)]`` in each
    input's pixels (hint models): bad colours or a model without hints stop the run before any
    work; a point outside one image fails that image only.

    Each output records what made it (PNG text ``chromalab``: the model, its weights' hash, the
    working size, ``temperature`` and ``settings``). An existing output counts as done only
    when its record equals this run's; otherwise it is made again. ``settings``: further
    result-changing settings (already applied to ``model`` by the caller) to record and compare.
    Outputs are written to a temporary name and renamed; Ctrl-C leaves no partial file.
    Returns the exit code: 0, or 1 when any input failed (skipped outputs are not failures).
    """
    import warnings

    from rich.console import Console

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    max_pixels = int(max_pixels) if max_pixels else DEFAULT_MAX_PIXELS
    if max_pixels < 1:
        raise ChromalabError(f"--max-pixels must be positive, got {max_pixels}")
    if batch_size < 1:
        raise ChromalabError(f"--batch-size must be at least 1, got {batch_size}")
    if work_size is not None and not 1 <= work_size <= MAX_WORK_SIZE:
        raise ChromalabError(f"--work-size {work_size} is out of range: give 1 to {MAX_WORK_SIZE} "
                             f"(the long side the model sees; default {DEFAULT_WORK_SIZE})")
    from .video.temporal import DEFAULT_STRENGTH

    temporal = _check_temporal(DEFAULT_STRENGTH if temporal is None else temporal)
    video_suffix = _video_output_suffix(codec, crf)
    paths = list(paths)
    out_root = Path(output) if output is not None else Path("colorized")
    single = output_file(out_root, paths)

    # the model before any work: an unknown name or a setting it does not take stops here
    spec = model
    if temperature is not None:  # the model is then passed as a predictor
        from .predictors.nets import set_temperature
        from .registry import load_predictor

        model = set_temperature(load_predictor(model, progress=False), temperature)
    col = Colorizer(model, backend=backend, work_size=work_size, max_pixels=max_pixels, batch_size=batch_size,
                    vividness=vividness)
    hints = list(hints or [])
    if hints:
        from .hints import parse_hints

        if not col.takes_hints:
            raise SettingError(f"{_model_label(spec) if isinstance(spec, str) else col.name}: this model takes no "
                               f"colour hints (the guided model does: --model guided)")
        parse_hints(hints, 1 << 30, 1 << 30)  # colours, count and signs now; each image checks its own bounds
    record = col.provenance(**{"temperature": temperature, "vividness": col.vividness if col.controls else None,
                               "hints": _hints_record(hints), **(settings or {})})
    if isinstance(spec, str) and not isinstance(model, str):
        record["model"] = _model_label(spec)
        record.pop("model_sha256", None)
        fp = model_fingerprint(spec)
        if fp:
            record["model_sha256"] = fp
    text = provenance_text(record)

    jobs = plan_jobs(paths, out_root, side_by_side, video_suffix=video_suffix)
    done = skipped = failed = multi = replaced = 0

    def say(line: str) -> None:
        err.print(line, markup=False)

    todo: list[Job] = []
    videos: list[tuple[Job, dict]] = []  # video jobs to do, with the record their output gets
    stale: set[int] = set()
    if side_by_side and any(j.video for j in jobs):
        say("note: --side-by-side applies to photos only; videos get NAME_color.mp4 alone")
    for j in jobs:
        if j.error or j.out is None:
            failed += 1
            say(f"error: {j.error}")
            continue
        rec, reader = record, read_provenance
        if j.video:
            from .video import check_output, read_video_provenance, video_record

            try:
                _, enc = check_output(j.out, codec, crf)
            except ChromalabError as e:  # -o x.webm with --codec h264: names the output
                failed += 1
                say(f"error: {e}")
                continue
            rec, reader = video_record(record, temporal, enc, crf), read_video_provenance
        states = [_output_state(o, rec, overwrite, reader) for o in j.outputs]
        if "blocked" in states:
            failed += 1
            o = j.outputs[states.index("blocked")]
            say(f"error: {j.label}: its output {display_name(o)} is in the way (a folder or special file)")
        elif all(s == "current" for s in states):
            skipped += 1
        else:
            if "stale" in states:
                stale.add(id(j))
            if j.video:
                videos.append((j, rec))
            else:
                todo.append(j)

    def summary(interrupted: bool = False) -> str:
        line = ("interrupted: " if interrupted else "") + f"done {done}, skipped {skipped}, failed {failed}"
        if skipped:
            line += " (already made with this model and settings; --overwrite makes them again)"
        if replaced:
            line += f"; replaced {replaced} existing output{'s' if replaced > 1 else ''}"
        if multi:
            line += f"; {multi} multi-frame file{'s' if multi > 1 else ''}: first frame only"
        if done:
            line += f"; wrote {display_name(single)}" if single is not None else f"; outputs in {display_name(out_root)}"
        return line

    def finish() -> int:
        print(summary(), flush=True)
        return 1 if failed else 0

    if not todo and not videos:
        return finish()
    problem = _check_output_root(single.parent if single is not None else out_root)
    if problem:
        say(f"error: {problem}")
        failed += len(todo) + len(videos)
        return finish()

    def load(j: Job):
        item = col.prepare(open_image(j.src, max_pixels=max_pixels, name=j.label))
        if hints:
            try:
                item.hints = col.hint_map(item, hints)
            except SettingError as e:
                raise SettingError(f"{j.label}: {e}") from None
        return item

    def write(j: Job, item: Prepared, ab: np.ndarray) -> None:
        assert j.out is not None
        arrs = [(j.out, col.finish_array(item, ab, False))]
        if j.compare is not None:
            arrs.append((j.compare, col.finish_array(item, ab, True)))
        for path, arr in arrs:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_png(arr, path, text=text)
            except OSError as e:
                raise ImageError(f"{j.label}: cannot write {display_name(path)} ({e.strerror or e})") from None

    workers = max(1, min(4, os.cpu_count() or 1))
    budget = 32_000_000  # full-size pixels held per batch (one image over it goes alone)
    pool = ThreadPoolExecutor(max_workers=workers)
    writing: list = []  # (job, item, future) of writes not yet counted
    try:
        with warnings.catch_warnings(), _progress(err, len(todo) if progress else 0) as bar:
            warnings.simplefilter("ignore")  # Pillow's warnings on odd files: each problem is one line already
            task = bar.add_task("colorize", total=len(todo))
            batch: list[tuple[Job, Prepared]] = []

            def flush() -> None:
                nonlocal done, failed, multi, replaced
                if not batch:
                    return
                try:
                    abs_ = col.predict_work([it for _, it in batch])
                except Exception as e:  # noqa: BLE001 - the model failing: every file of the batch fails
                    for j, _ in batch:
                        failed += 1
                        say(f"error: {j.label}: the model failed ({type(e).__name__}: {e})")
                        bar.advance(task)
                    batch.clear()
                    return
                writing.extend((j, it, pool.submit(write, j, it, ab)) for (j, it), ab in zip(batch, abs_, strict=True))
                batch.clear()
                while writing:
                    j, it, fut = writing[0]
                    try:
                        fut.result()
                        done += 1
                        replaced += id(j) in stale
                        multi += it.n_frames > 1
                        for note in it.notes:
                            say(f"note: {j.label}: {note}")
                    except ChromalabError as e:
                        failed += 1
                        say(f"error: {e}")
                    except Exception as e:  # noqa: BLE001
                        failed += 1
                        say(f"error: {j.label}: {type(e).__name__}: {e}")
                    writing.pop(0)
                    bar.advance(task)

            px = 0
            stream = _LoadStream(pool, load, todo, ahead=workers + 1)
            for j, fut in stream:
                try:
                    item = fut.result()
                except ChromalabError as e:
                    failed += 1
                    say(f"error: {e}")
                    bar.advance(task)
                    continue
                except MemoryError:
                    failed += 1
                    say(f"error: {j.label}: not enough memory (lower --max-pixels)")
                    bar.advance(task)
                    continue
                except Exception as e:  # noqa: BLE001
                    failed += 1
                    say(f"error: {j.label}: {type(e).__name__}: {e}")
                    bar.advance(task)
                    continue
                batch.append((j, item))
                px += item.pixels
                if len(batch) >= batch_size or px >= budget:
                    flush()
                    px = 0
            flush()
    except KeyboardInterrupt:
        # let the writes already running finish (each lands whole, by rename), drop the rest
        pool.shutdown(wait=True, cancel_futures=True)
        done += sum(1 for _, _, f in writing if f.done() and not f.cancelled() and f.exception() is None)
        print(summary(interrupted=True), flush=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    # videos, one at a time (each uses every core): its own progress bar, one line per problem
    for j, rec in videos:
        from .video import colorize_video_file

        assert j.out is not None
        try:
            res = colorize_video_file(j.src, j.out, col, temporal=temporal, codec=codec, crf=crf,
                                      progress=True if progress else None, label=j.label, hints=hints,
                                      record=rec)
        except KeyboardInterrupt:  # the pipeline has removed its temporary file
            print(summary(interrupted=True), flush=True)
            raise
        except ChromalabError as e:
            failed += 1
            say(f"error: {e}")
            continue
        except MemoryError:
            failed += 1
            say(f"error: {j.label}: not enough memory")
            continue
        except Exception as e:  # noqa: BLE001
            failed += 1
            say(f"error: {j.label}: {type(e).__name__}: {e}")
            continue
        done += 1
        replaced += id(j) in stale
        for note in res.notes:
            say(f"note: {j.label}: {note}")
    return finish()


class _LoadStream:
    """Submit loads ``ahead`` at a time; yield (job, future) in order."""

    def __init__(self, pool, fn, jobs, ahead: int):
        self.pool, self.fn, self.jobs, self.ahead = pool, fn, list(jobs), max(1, ahead)

    def __iter__(self):
        from collections import deque

        q: deque = deque()
        it = iter(self.jobs)
        for j in it:
            q.append((j, self.pool.submit(self.fn, j)))
            if len(q) >= self.ahead:
                break
        while q:
            j, fut = q.popleft()
            nxt = next(it, None)
            if nxt is not None:
                q.append((nxt, self.pool.submit(self.fn, nxt)))
            yield j, fut


def _not_writable_why(folder: Path, e: OSError | None = None) -> str:
    """Why a folder cannot be written, in words: a read-only file system is not a permission problem."""
    try:
        if os.statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 1):
            return "read-only file system"
    except OSError:
        pass
    if e is not None and e.errno == errno.EROFS:
        return "read-only file system"
    if e is None or isinstance(e, PermissionError):
        return "permission denied"
    return e.strerror or str(e)


def _check_output_root(out_root: Path) -> str | None:
    """Create the output folder and make sure a file can be written in it; a one-line problem or None."""
    shown = display_name(out_root)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{shown}: cannot create the output folder (a file of that name exists)"
    except OSError as e:
        return f"{shown}: cannot create the output folder ({e.strerror or e})"
    if not out_root.is_dir():
        return f"{shown}: the output path is not a folder"
    if not os.access(out_root, os.W_OK | os.X_OK):
        return f"{shown}: the output folder is not writable ({_not_writable_why(out_root)})"
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=out_root, prefix=".chromalab-probe-")
        os.close(fd)
    except OSError as e:
        return f"{shown}: the output folder is not writable ({_not_writable_why(out_root, e)})"
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return None


def export_onnx_cli(model: str = "default", output: Path | None = None) -> Path:
    """``chromalab export onnx``: write the ONNX file (default: the cache inference uses) and check it."""
    import torch

    from .registry import load_predictor

    pred = load_predictor(model, progress=False)
    net = getattr(pred, "net", None)
    if net is None:
        raise ModelError(f"{model}: not a network model; only nets export to ONNX")
    net.eval()
    weights = weights_file_for(model)
    sha = _sha256_file(weights) if weights is not None else ""
    stride = int(getattr(pred, "stride", None) or getattr(net, "net_stride", None) or 16)
    meta = {"name": model, "input_size": getattr(pred, "input_size", None) or DEFAULT_WORK_SIZE,
            "stride": stride, "export_tag": _export_tag(), "weights_sha256": sha}
    if output is None:
        if weights is None:
            output = Path(f"{Path(model).stem}.onnx")
        else:
            output = _cached_onnx_candidates(weights, sha, onnx_cache_dir())[-1]
    output = Path(output)
    try:
        data = export_onnx(net, output, meta)
    except OSError as e:
        raise ChromalabError(f"{output}: cannot write ({e.strerror or e})") from None
    rng = np.random.default_rng(0)
    L = (rng.random((2, 1, 4 * stride, 5 * stride), dtype=np.float32) * L_MAX).astype(np.float32)  # noqa: N806
    with torch.inference_mode():
        ref = _lab_wrapper(net)(torch.from_numpy(L)).numpy()
    diff = float(np.abs(_OrtBackend(data).predict_ab(L) - ref).max()) if onnxruntime_available() else float("nan")
    print(f"wrote {output} ({len(data) / 1e6:.1f} MB); max |onnx - torch| = {diff:.2e} Lab units on a test batch")
    if diff == diff and diff > 1e-4 * AB_SCALE:
        raise ModelError(f"{output}: the ONNX export differs from torch by {diff:.3g}; please report this")
    return output
