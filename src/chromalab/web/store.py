"""What the server holds: the models (:class:`ModelStore`) and the uploaded images kept for recolouring
(:class:`ImageStore`)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ChromalabError, ModelError
from ..predictors.base import Predictor
from .errors import RejectedError
from .limits import mb

WEB_SUMMARIES: dict[str, str] = {
    "default": "Natural colours. A safe first choice for most photos.",
    "guided": "The default colorizer, for use with your colour points: click the photo to say what colour "
              "something is.",
    "regression": "The previous default: gentle, muted colours.",
    "vivid": "Bolder, more saturated colours. Livelier, but it sometimes colours things that should stay "
             "neutral.",
    "pix2pix": "Livelier colours learned by competing against a realism judge; it can leave odd patches.",
    "gray": "Leaves the photo black and white (for comparison only).",
}
"""What each model does, in plain words for the page (the registry's summaries are for the command
line and name its options). A bundled model not listed here gets :data:`BUNDLED_SUMMARY`, a served
run folder or weights file :data:`OTHER_SUMMARY`."""
BUNDLED_SUMMARY = "Another colorizer that comes with chromalab."
OTHER_SUMMARY = "The model this server was started with."


def model_key(spec: str | Predictor) -> str:
    from ..registry import REGISTRY

    if isinstance(spec, Predictor):
        return spec.name
    if spec in REGISTRY:
        return spec
    p = Path(spec)
    return p.stem if p.suffix == ".safetensors" else p.name


def _selectable() -> dict[str, str]:
    """Registry models the page may offer: the bundled colorizers whose weights are installed
    (``gray``, ``mean-ab`` and ``pca-ceiling`` are reference answers, not colorizers)."""
    from ..registry import available_bundled

    return {n: WEB_SUMMARIES.get(n, BUNDLED_SUMMARY) for n in available_bundled()}


def _check_available(spec: str) -> None:
    """A bundled model whose weights are not installed fails here with one line, not deep in a loader."""
    from ..registry import REGISTRY, available_bundled

    entry = REGISTRY.get(spec)
    if entry is not None and entry.group == "bundled" and spec not in available_bundled():
        others = ", ".join(n for n in _selectable() if n != spec) or "gray"
        raise ModelError(
            f"model {spec!r}: its bundled weights are not in this install; "
            f"serve another model with --model ({others}, a run folder or a .safetensors file)"
        )


class ModelStore:
    """The served default colorizer (loaded at once) and the others the page offers (loaded on first use).

    Each model becomes one :class:`chromalab.inference.Colorizer`, which is thread-safe, so the
    worker threads share it.
    """

    def __init__(self, default: str | Predictor, max_pixels: int):
        self.max_pixels = max_pixels
        self.default = model_key(default)
        colorizer = self._build(default)
        self._loaded: dict[str, Any] = {self.default: colorizer}
        self.summaries: dict[str, str] = {self.default: self._summary(default, colorizer)}
        for n, s in _selectable().items():
            self.summaries.setdefault(n, s)
        self._lock = threading.Lock()

    def _build(self, spec: str | Predictor):
        from ..inference.colorizer import Colorizer

        if isinstance(spec, str):
            _check_available(spec)
        return Colorizer(spec, max_pixels=self.max_pixels)

    @staticmethod
    def _summary(spec: str | Predictor, colorizer) -> str:
        if isinstance(spec, str) and spec in WEB_SUMMARIES:
            return WEB_SUMMARIES[spec]
        return OTHER_SUMMARY

    @property
    def names(self) -> list[str]:
        return list(self.summaries)

    def loaded(self, name: str):
        """The colorizer for ``name`` if it is loaded, else None (never loads)."""
        return self._loaded.get(name)

    def get(self, name: str):
        """The colorizer for ``name`` (a name from :attr:`names`), loading it once. Thread-safe."""
        c = self._loaded.get(name)
        if c is not None:
            return c
        with self._lock:
            c = self._loaded.get(name)
            if c is None:
                c = self._loaded[name] = self._build(name)
        return c


def controls_of(colorizer) -> dict[str, Any]:
    """What a loaded model lets the page set: ``controls``, ``takes_hints``, ``vividness`` (its default)."""
    controls = bool(colorizer.controls)
    return {"controls": controls, "takes_hints": bool(colorizer.takes_hints),
            "vividness": float(colorizer.vividness) if controls and colorizer.vividness is not None else None}


# ---- kept images -------------------------------------------------------------------------------------
@dataclass
class KeptImage:
    """One uploaded image, decoded and prepared once (:class:`chromalab.inference.colorizer.PreparedImage`), kept for
    recolouring with other hints, vividness or model."""

    item: Any  # PreparedImage, at the working size of the model it was uploaded for
    label: str
    width: int
    height: int
    grayscale: bool
    notes: list[str]
    nbytes: int
    last_used: float
    works: dict[tuple[int, int], Any] = field(default_factory=dict)  # PreparedImage at other models' working sizes

    def for_model(self, colorizer):
        """The prepared image at ``colorizer``'s working size (the L plane is shared, never copied)."""
        shape = tuple(colorizer.work_shape(self.height, self.width))
        if shape == self.item.work.shape:
            return self.item
        it = self.works.get(shape)
        if it is None:
            it = self.works[shape] = replace(self.item, work=_resize_L(self.item.L, shape))
        return it


def _resize_L(L, shape: tuple[int, int]):
    """Full-size L ``(H, W)`` float32 -> ``shape`` (h, w) by PIL's bicubic filter, as ``Colorizer.prepare`` does."""
    import numpy as np
    from PIL import Image

    h, w = shape
    im = Image.fromarray(np.ascontiguousarray(L, dtype=np.float32))
    return np.asarray(im.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)


def _prepared_bytes(item) -> int:
    return int(item.L.nbytes + item.work.nbytes + (item.alpha.nbytes if item.alpha is not None else 0))


class ImageStore:
    """Uploaded images kept in memory for recolouring, least recently used out first.

    Bounded three ways: at most ``max_images`` images and ``max_bytes`` bytes (each image counts
    its full-size L plane, alpha and working-size L), and an image unused for ``ttl`` seconds is
    dropped. An image larger than ``max_bytes`` on its own is refused (413). Thread-safe.
    """

    def __init__(self, max_images: int = 32, max_bytes: int = 512 * 2**20, ttl: float = 1800.0,
                 clock=time.monotonic):
        if max_images < 1:
            raise ChromalabError(f"the image store must hold at least 1 image, got {max_images}")
        if max_bytes < 1 or ttl <= 0:
            raise ChromalabError("the image store's byte limit and time-to-live must be positive")
        self.max_images, self.max_bytes, self.ttl = int(max_images), int(max_bytes), float(ttl)
        self._clock = clock
        self._items: OrderedDict[str, KeptImage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evicted = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _drop(self, key: str) -> None:
        kept = self._items.pop(key)
        self._bytes -= kept.nbytes
        self.evicted += 1

    def _expire(self, now: float) -> None:
        while self._items:
            key, kept = next(iter(self._items.items()))
            if now - kept.last_used < self.ttl:
                break
            self._drop(key)

    def put(self, kept: KeptImage) -> str:
        """Keep ``kept``; returns its new id. Older images make room (LRU); one over the byte limit on
        its own raises :class:`RejectedError` (413)."""
        if kept.nbytes > self.max_bytes:
            raise RejectedError(413, f"{kept.label}: {kept.width}x{kept.height} needs {mb(kept.nbytes)} to keep for "
                                     f"editing, over this server's limit of {mb(self.max_bytes)}; send a smaller image "
                                     "or use POST /api/colorize")
        key = secrets.token_urlsafe(12)
        with self._lock:
            now = self._clock()
            kept.last_used = now
            self._expire(now)
            while self._items and (len(self._items) >= self.max_images or self._bytes + kept.nbytes > self.max_bytes):
                self._drop(next(iter(self._items)))
            self._items[key] = kept
            self._bytes += kept.nbytes
        return key

    def get(self, key: str) -> KeptImage | None:
        """The image kept under ``key`` (marked as just used), or None when it is gone."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            kept = self._items.get(key)
            if kept is not None:
                kept.last_used = now
                self._items.move_to_end(key)
            return kept

    def delete(self, key: str) -> bool:
        with self._lock:
            if key not in self._items:
                return False
            kept = self._items.pop(key)
            self._bytes -= kept.nbytes
            return True
