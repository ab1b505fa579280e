"""FastAPI app for ``chromalab serve``: one static page and a small API.

Endpoints::

    GET    /                             the page (static HTML/JS/CSS beside this file, no build step)
    POST   /api/colorize                 multipart ``file`` (+ optional ``model``, ``vividness``, ``hints``
                                         as a JSON string) -> image/png, the input's size
    POST   /api/images                   multipart ``file`` (+ optional ``model``) -> JSON ``{"id", "width",
                                         "height", "controls", "takes_hints", "vividness", ...}``: the image is
                                         decoded and prepared once and kept in memory for recolouring
    POST   /api/images/{id}/colorize     JSON ``{"model"?, "vividness"?, "hints"?: [{"x", "y", "color"}]}``
                                         -> image/png: recolour the kept image, no new upload
    DELETE /api/images/{id}              forget a kept image (204)
    GET    /api/models                   the colorizers the page may pick (each once, with a plain-words
                                         summary from :data:`WEB_SUMMARIES` and, once loaded, whether it
                                         takes hints and a vividness), the default one, the upload limits
    GET    /api/models/{name}            one model's controls (loads it if needed)
    GET    /healthz                      liveness, the load of the worker pool and the image store
    GET    /docs                         FastAPI's OpenAPI page describing the above

Limits (every error is JSON ``{"detail": "<one line for people>"}``, and the server stays up):

* an upload over ``max_upload_bytes`` (20 MiB) -> 413, enforced while the body is read:
  a larger ``Content-Length`` is refused before reading, and a body without one is counted
  and cut off, so nothing over the limit is ever buffered (a recolour request's JSON body:
  :data:`MAX_JSON_BYTES`);
* an image with more than ``max_pixels`` pixels (:data:`DEFAULT_MAX_PIXELS`) -> 413;
* a file that is not an image -> 415; an image that cannot be decoded (truncated, corrupt, no
  pixels) -> 422;
* bad colour hints or vividness -> 422: a hint outside the image or at negative coordinates, a
  colour that is not one, malformed JSON, more than :data:`~chromalab.hints.MAX_HINTS` hints, hints
  for a model that takes none, a vividness outside 0..1 or for a model without one;
* an unknown ``model`` or a malformed request -> 400;
* a kept image that expired or was dropped to make room -> 404 (upload it again);
* all ``workers`` busy and ``queue`` requests already waiting -> 503 with ``Retry-After``,
  at once, instead of stalling.

Kept images (:class:`ImageStore`) are bounded in count and bytes, least recently used out first,
and each is dropped after ``store_ttl`` seconds unused.

The served model is loaded once at start (a missing model fails start with a one-line error);
the other models the page offers (the bundled colorizers installed: not ``gray`` and the other
reference answers, which are not colorizers) load lazily on first use and are kept. A 200 answer
says in ``X-Input-Grayscale`` whether the upload was already black and white, and in
``X-Chromalab-Notes`` how it was used (first frame of several, EXIF orientation ignored). Decoding, inference
and PNG encoding run in a bounded thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import math
import secrets
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ..errors import ChromalabError, ImageError, ModelError, SettingError
from ..predictors.base import Predictor

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

log = logging.getLogger("chromalab.web")

STATIC_DIR = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 20 * 2**20
"""Uploads larger than this (20 MiB) are refused with 413."""
DEFAULT_MAX_PIXELS = 25_000_000
"""Images with more pixels than this (25 megapixels, e.g. 6000x4166) are refused with 413.

Lower than the CLI's limit because a server holds several images in memory at once."""
MULTIPART_SLACK = 320 * 1024
"""Bytes allowed on top of the file for multipart boundaries, part headers and the other form fields
(``hints`` as JSON: 512 hints take about 30 KB)."""
MAX_HINTS = 512
"""The most colour hints one request may carry: :data:`chromalab.hints.MAX_HINTS` (not imported here,
because that module imports torch and the server can start without it)."""
MAX_JSON_BYTES = 256 * 1024
"""Recolour requests' JSON bodies over this are refused with 413 (512 hints take about 30 KB)."""
STORE_BYTES = 512 * 2**20
"""The images kept for recolouring take at most this much memory (default; ``create_app(store_bytes=)``)."""
STORE_TTL_S = 1800.0
"""A kept image unused this long (30 minutes) is dropped."""

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# ---- response models (they also document the API on /docs) -------------------------------------
class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, in one line for people.")


class ModelInfo(BaseModel):
    name: str = Field(description="Pass this as the `model` form field of /api/colorize.")
    summary: str = Field(description="What the model does, in plain words.")
    default: bool = Field(description="True for the model the server was started with.")
    loaded: bool = Field(description="Loaded already; the three fields below are null until it is "
                                     "(GET /api/models/{name} loads it).")
    controls: bool | None = Field(None, description="The model has a vividness setting.")
    takes_hints: bool | None = Field(None, description="The model takes colour hints (points).")
    vividness: float | None = Field(None, description="The model's default vividness (0 most accurate .. "
                                                      "1 most colourful); null without one.")


class ModelsOut(BaseModel):
    default: str = Field(description="The model used when a request names none.")
    models: list[ModelInfo]
    max_upload_bytes: int = Field(description="Larger uploads are refused with 413.")
    max_pixels: int = Field(description="Images with more pixels (width x height) are refused with 413.")
    max_hints: int = Field(description="The most colour hints one request may carry (more: 422).")


class ImageOut(BaseModel):
    id: str = Field(description="Recolour with POST /api/images/{id}/colorize.")
    width: int
    height: int
    model: str = Field(description="The model the controls below are for (the `model` field, or the default).")
    controls: bool = Field(description="That model has a vividness setting.")
    takes_hints: bool = Field(description="That model takes colour hints.")
    vividness: float | None = Field(description="Its default vividness; null without one.")
    grayscale: bool = Field(description="The upload was already black and white.")
    notes: list[str] = Field(description="How the file was used, e.g. only the first of several frames.")
    expires_after_s: float = Field(description="The image is dropped after this long unused (or sooner, "
                                               "to make room); then the id answers 404.")


class HealthOut(BaseModel):
    status: str = Field(description='"ok" while the server is up.')
    model: str = Field(description="The default model.")
    workers: int = Field(description="Inference threads.")
    queue: int = Field(description="Requests allowed to wait for a free worker.")
    busy: int = Field(description="Requests running or waiting now; at workers + queue new ones get 503.")
    images: int = Field(description="Uploaded images kept for recolouring.")
    image_bytes: int = Field(description="Memory those images take.")


_HINT_SCHEMA = {
    "type": "object",
    "required": ["x", "y", "color"],
    "properties": {
        "x": {"type": "number", "minimum": 0, "description": "Pixel column in the uploaded image (0 <= x < width)."},
        "y": {"type": "number", "minimum": 0, "description": "Pixel row (0 <= y < height)."},
        "color": {"description": "`#rrggbb`, `#rgb`, a CSS colour name, or [r, g, b] of 0-255; only its "
                                 "chroma is used, the photo keeps its lightness.",
                  "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "number"}}]},
    },
}
_RECOLOUR_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {
            "model": {"type": "string", "description": "A name from /api/models; the default model if left out."},
            "vividness": {"type": "number", "minimum": 0, "maximum": 1,
                          "description": "0 most accurate .. 1 most colourful (models with controls); "
                                         "the model's default if left out."},
            "hints": {"type": "array", "maxItems": MAX_HINTS, "items": _HINT_SCHEMA,
                      "description": "Colour points, the format `chromalab colorize --hints FILE` takes."},
            "png_level": {"type": "integer", "minimum": 0, "maximum": 9,
                          "description": "zlib level of the PNG answer (default 1). 0 stores it uncompressed: "
                                         "about 2.5 times the bytes but some 50 ms sooner for a 1024x768 photo; "
                                         "the page asks for it when it runs on the same machine as the server."},
        },
        "example": {"vividness": 0.6, "hints": [{"x": 120, "y": 80, "color": "#3070c0"}]},
    }}},
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed request or unknown model."},
    413: {"model": ErrorOut, "description": "Upload over the byte limit, or image over the pixel limit."},
    415: {"model": ErrorOut, "description": "The file is not an image."},
    422: {"model": ErrorOut, "description": "The image is broken (truncated or corrupt), or the hints or "
                                            "vividness cannot be used."},
    503: {"model": ErrorOut, "description": "All workers busy and the queue full; retry after `Retry-After` s."},
}
_RECOLOUR_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Unknown model."},
    404: {"model": ErrorOut, "description": "No such image: it expired or was dropped to make room; upload it again."},
    413: {"model": ErrorOut, "description": "The request body is over the limit."},
    422: {"model": ErrorOut, "description": "The hints or vividness cannot be used (one line says which and why)."},
    503: _ERRORS[503],
}


# ---- errors ---------------------------------------------------------------------------------------
class _Rejected(Exception):
    """An upload refused with an HTTP status and a one-line detail (raised in worker threads)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _mb(n: int) -> str:
    """Bytes as MB (MiB) for people: ``20 MB``, ``25.3 MB`` (``900 KB``, ``12 bytes`` when small)."""
    if n < 1024:
        return f"{n} bytes"
    if n < 2**20:
        return f"{n / 1024:.0f} KB"
    return f"{n / 2**20:.1f}".removesuffix(".0") + " MB"


def _json_error(status: int, detail: str, headers: dict[str, str] | None = None) -> tuple[dict, bytes]:
    """The ASGI start message and body of a JSON error, for answering below FastAPI."""
    body = json.dumps({"detail": detail}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http.response.start", "status": status, "headers": hdrs}, body


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes on ``paths`` with 413, without buffering them;
    bodies of the recolour requests (``POST /api/images/{id}/colorize``) over ``json_limit``, too.

    A ``Content-Length`` over the limit is answered before any of the body is read. A body
    without one (chunked) is counted as it arrives; at the first byte over the limit reading
    stops and whatever the app would have answered is replaced by the 413.
    """

    def __init__(self, app, limit: int, file_limit: int,
                 paths: tuple[str, ...] = ("/api/colorize", "/api/images"), json_limit: int | None = None):
        self.app = app
        self.limit = limit
        self.file_limit = file_limit
        self.paths = paths
        self.json_limit = json_limit

    def _limit_for(self, path: str) -> tuple[int | None, bool]:
        """(the limit for ``path`` or None, whether it is a JSON body)."""
        if path in self.paths:
            return self.limit, False
        if self.json_limit is not None and path.startswith("/api/images/") and path.endswith("/colorize"):
            return self.json_limit, True
        return None, False

    def _detail(self, n: int | None, is_json: bool) -> str:
        size = f"is {_mb(n)}, over" if n is not None else "is over"
        if is_json:
            return f"the request body {size} the limit of {_mb(self.json_limit or 0)} (at most {MAX_HINTS} hints)"
        return f"the upload {size} the limit of {_mb(self.file_limit)} (send a smaller or more compressed image)"

    async def _send_413(self, send, n: int | None, is_json: bool) -> None:
        start, body = _json_error(413, self._detail(n, is_json), {"Connection": "close"})
        await send(start)
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        limit, is_json = self._limit_for(scope["path"]) if scope["type"] == "http" else (None, False)
        if limit is None:
            await self.app(scope, receive, send)
            return
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = -1
                if n > limit:
                    await self._send_413(send, n, is_json)
                    return
        received = 0
        exceeded = False
        started = False

        async def limited_receive():
            nonlocal received, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return msg

        async def guarded_send(msg):
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a cut-off body is replaced by the 413 below
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._send_413(send, None, is_json)


# ---- models -----------------------------------------------------------------------------------------
def _model_key(spec: str | Predictor) -> str:
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
        self.default = _model_key(default)
        colorizer = self._build(default)
        self._loaded: dict[str, Any] = {self.default: colorizer}
        self.summaries: dict[str, str] = {self.default: self._summary(default, colorizer)}
        for n, s in _selectable().items():
            self.summaries.setdefault(n, s)
        self._lock = threading.Lock()

    def _build(self, spec: str | Predictor):
        from ..inference import Colorizer

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


def _controls_of(colorizer) -> dict[str, Any]:
    """What a loaded model lets the page set: ``controls``, ``takes_hints``, ``vividness`` (its default)."""
    controls = bool(colorizer.controls)
    return {"controls": controls, "takes_hints": bool(colorizer.takes_hints),
            "vividness": float(colorizer.vividness) if controls and colorizer.vividness is not None else None}


# ---- kept images -------------------------------------------------------------------------------------
@dataclass
class KeptImage:
    """One uploaded image, decoded and prepared once (:class:`chromalab.inference.Prepared`), kept for
    recolouring with other hints, vividness or model."""

    item: Any  # Prepared, at the working size of the model it was uploaded for
    label: str
    width: int
    height: int
    grayscale: bool
    notes: list[str]
    nbytes: int
    last_used: float
    works: dict[tuple[int, int], Any] = field(default_factory=dict)  # Prepared at other models' working sizes

    def for_model(self, colorizer):
        """The prepared image at ``colorizer``'s working size (the L plane is shared, never copied)."""
        shape = tuple(colorizer.work_shape(self.height, self.width))
        if shape == self.item.work.shape:
            return self.item
        it = self.works.get(shape)
        if it is None:
            it = self.works[shape] = replace(self.item, work=_resize_L(self.item.L, shape))
        return it


def _resize_L(L, shape: tuple[int, int]):  # noqa: N802, N803
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
        its own raises :class:`_Rejected` (413)."""
        if kept.nbytes > self.max_bytes:
            raise _Rejected(413, f"{kept.label}: {kept.width}x{kept.height} needs {_mb(kept.nbytes)} to keep for "
                                 f"editing, over this server's limit of {_mb(self.max_bytes)}; send a smaller image "
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


# ---- worker pool ----------------------------------------------------------------------------------
class WorkerPool:
    """``workers`` threads and at most ``queue`` waiting requests; beyond that, refuse at once."""

    def __init__(self, workers: int, queue: int):
        if workers < 1:
            raise ChromalabError(f"--workers must be at least 1, got {workers}")
        if queue < 0:
            raise ChromalabError(f"--queue must be 0 or more, got {queue}")
        self.workers = workers
        self.queue = queue
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chromalab-infer")
        self._lock = threading.Lock()
        self.busy = 0
        self._avg_s = 1.0  # running mean of job time, for Retry-After

    def try_acquire(self) -> bool:
        with self._lock:
            if self.busy >= self.workers + self.queue:
                return False
            self.busy += 1
            return True

    def release(self, seconds: float | None) -> None:
        with self._lock:
            self.busy -= 1
            if seconds is not None:
                self._avg_s = 0.8 * self._avg_s + 0.2 * seconds

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained at the mean job time."""
        with self._lock:
            return max(1, math.ceil(self._avg_s * self.busy / self.workers))

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args))

    async def job(self, fn, *args, what: str = "colorizing"):
        """Run ``fn(*args)`` on a worker: 503 at once when full; :class:`_Rejected` -> its status;
        a :class:`ChromalabError` or any other exception -> 500 with one line (the log keeps the
        traceback). Returns (result, seconds)."""
        if not self.try_acquire():
            secs = self.retry_after()
            raise HTTPException(
                503,
                f"the server is busy ({self.workers} images being colorized, {self.queue} waiting); "
                f"try again in {secs} s",
                headers={"Retry-After": str(secs)},
            )
        t0 = time.perf_counter()
        elapsed = None
        try:
            out = await self.run(fn, *args)
            elapsed = time.perf_counter() - t0
            return out, elapsed
        except _Rejected as e:
            raise HTTPException(e.status, e.detail) from None
        except SettingError as e:
            raise HTTPException(422, str(e)) from None
        except ChromalabError as e:
            log.warning("%s failed: %s", what, e)
            raise HTTPException(500, f"{what} failed: {e}") from None
        except Exception as e:  # keep the server up; the log has the traceback
            log.exception("%s failed", what)
            raise HTTPException(500, f"internal error while {what}: {type(e).__name__}: {e}") from None
        finally:
            self.release(elapsed)


# ---- hints and vividness -----------------------------------------------------------------------------
def _hints_from_json(text: str | None) -> list | None:
    """The ``hints`` form field (a JSON list of ``{"x", "y", "color"}``, or ``{"hints": [...]}`` as in a
    hints file) -> that list; None for none. Malformed JSON or too many hints -> :class:`_Rejected` 422."""
    if text is None or not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise _Rejected(422, f"hints: not valid JSON ({e})".replace("\n", " ")) from None
    return _hints_list(data)


def _hints_list(data) -> list | None:
    if data is None:
        return None
    if isinstance(data, dict) and isinstance(data.get("hints"), list):
        data = data["hints"]
    if not isinstance(data, list):
        raise _Rejected(422, 'hints: expected a JSON list of {"x", "y", "color"} points, got '
                             f"{type(data).__name__ if not isinstance(data, dict) else 'an object'}")
    if len(data) > MAX_HINTS:
        raise _Rejected(422, f"{len(data)} hints is more than the limit of {MAX_HINTS}")
    return data


def _vividness_value(v) -> float | None:
    """A vividness from a request (a JSON number, or the form field's text) -> float, None when absent."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise _Rejected(422, f"vividness must be a number from 0 (most accurate) to 1 (most colourful), got {v!r}")
    try:
        f = float(v)
    except ValueError:
        raise _Rejected(422, f"vividness must be a number from 0 (most accurate) to 1 (most colourful), "
                             f"got {v!r}") from None
    return f


def _check_controls(colorizer, hints: list | None, vividness: float | None) -> float | None:
    """Hints and a vividness this model can take, or :class:`SettingError` (one line, 422)."""
    v = colorizer.check_vividness(vividness) if vividness is not None else None
    if hints and not colorizer.takes_hints:
        raise SettingError(f"model {_display(colorizer)}: this model takes no colour hints (pick one that does, "
                           "such as 'guided')")
    return v


def _display(colorizer) -> str:
    return repr(_model_key(colorizer.name) if isinstance(colorizer.name, str) else str(colorizer.name))


def _render_png(colorizer, item, hints: list | None, vividness: float | None,
                level: int | None = None) -> tuple[bytes, dict[str, float], str]:
    """Recolour a prepared image -> (PNG bytes with the settings recorded, timings in ms, settings line).
    ``level``: zlib level of the PNG (None: :data:`chromalab.inference.PNG_COMPRESS_LEVEL`)."""
    from ..inference import encode_png, provenance_text

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
    """Upload bytes -> decoded PIL image (EXIF orientation applied), or :class:`_Rejected`:
    not an image 415, over the pixel limit 413 (checked on the header), any other problem 422."""
    from ..images import NotAnImage, TooManyPixels, open_image

    if not data:
        raise _Rejected(415, f"{label}: empty file (0 bytes), not an image")
    try:
        return open_image(data, max_pixels=max_pixels, name=label)
    except TooManyPixels as e:
        if e.size is None:
            raise _Rejected(413, f"{label}: far too many pixels; the limit is {max_pixels:,} pixels") from None
        w, h = e.size
        raise _Rejected(
            413,
            f"{label}: {w}x{h} = {w * h:,} pixels is over this server's limit of {max_pixels:,} pixels; "
            "downscale it and try again",
        ) from None
    except NotAnImage as e:
        raise _Rejected(415, f"{e}; send a JPEG, PNG, WebP, BMP, GIF or TIFF") from None
    except ImageError as e:
        raise _Rejected(422, str(e)) from None


def _prepare(colorizer, im):
    try:
        return colorizer.prepare(im)
    except ImageError as e:
        raise _Rejected(422, str(e)) from None


def _colorize_job(store: ModelStore, model: str, data: bytes, label: str, hints: list | None = None,
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


def _upload_job(store: ModelStore, model: str, data: bytes, label: str) -> tuple[KeptImage, dict[str, Any]]:
    """Decode and prepare an upload to keep: (the image, the model's controls)."""
    from ..images import image_notes, is_grayscale

    colorizer = store.get(model)
    im = _decode(data, label, store.max_pixels)
    item = _prepare(colorizer, im)
    w, h = im.size
    kept = KeptImage(item=item, label=label, width=w, height=h, grayscale=is_grayscale(im), notes=image_notes(im),
                     nbytes=_prepared_bytes(item), last_used=0.0)
    return kept, _controls_of(colorizer)


def _recolour_job(store: ModelStore, model: str, kept: KeptImage, hints: list | None,
                  vividness: float | None, level: int | None = None) -> tuple[bytes, dict, str]:
    colorizer = store.get(model)
    vividness = _check_controls(colorizer, hints, vividness)
    return _render_png(colorizer, kept.for_model(colorizer), hints, vividness, level)


def _label(filename: str | None) -> str:
    """A safe, short name for messages: the base name of the upload, printable, at most 80 chars."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()) or "upload"
    return name if len(name) <= 80 else name[:38] + "..." + name[-38:]


def _download_name(label: str) -> str:
    """``<stem>-colorized.png`` in plain ASCII (accents dropped, other characters as ``_``)."""
    import unicodedata

    stem = label.rsplit(".", 1)[0] if "." in label else label
    plain = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in plain)[:60].strip("._") or "image"
    return f"{safe}-colorized.png"


def _content_disposition(label: str) -> str:
    """``inline`` with an ASCII ``filename`` (headers are Latin-1) and the full name as ``filename*``."""
    from urllib.parse import quote

    stem = label.rsplit(".", 1)[0] if "." in label else label
    full = quote(f"{stem}-colorized.png", safe="")
    return f'inline; filename="{_download_name(label)}"; filename*=UTF-8\'\'{full}'


def _png_headers(label: str, name: str, size: tuple[int, int], elapsed: float, ms: dict[str, float],
                 settings: str) -> dict[str, str]:
    w, h = size
    return {
        "Content-Disposition": _content_disposition(label),
        "X-Chromalab-Model": name.encode("ascii", "backslashreplace").decode("ascii"),
        "X-Chromalab-Settings": settings,
        "X-Image-Size": f"{w}x{h}",
        "X-Elapsed-Ms": f"{elapsed * 1000:.0f}",
        "Server-Timing": ", ".join(f"{k};dur={v:.1f}" for k, v in ms.items()),
        "Cache-Control": "no-store",
    }


# ---- the app --------------------------------------------------------------------------------------
def create_app(
    model: str | Predictor = "default",
    workers: int = 2,
    queue: int = 16,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    store_images: int = 32,
    store_bytes: int = STORE_BYTES,
    store_ttl: float = STORE_TTL_S,
) -> FastAPI:
    """The FastAPI app: the page, ``/api/colorize``, ``/api/images``, ``/api/models``, ``/healthz``.

    Args:
        model: the default model: a registry name, a run folder, a ``.safetensors`` file, or a
            :class:`~chromalab.predictors.base.Predictor` object (tests). Loaded now; a missing
            model raises :class:`~chromalab.errors.ModelError` (one line).
        workers: inference threads.
        queue: requests allowed to wait for a worker; beyond ``workers + queue`` -> 503.
        max_upload_bytes: larger uploads -> 413.
        max_pixels: images with more pixels -> 413.
        store_images, store_bytes, store_ttl: the images kept for recolouring (``POST /api/images``):
            at most this many, this many bytes, each dropped after this many seconds unused.
    """
    pool = WorkerPool(workers, queue)
    try:
        images = ImageStore(store_images, store_bytes, store_ttl)
        store = ModelStore(model, max_pixels=max_pixels)
    except BaseException:
        pool.executor.shutdown(wait=False)
        raise

    async def lifespan(app: FastAPI):
        yield
        pool.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="chromalab",
        version=_version(),
        summary="Colorize grayscale photos by regression in CIELAB.",
        description=(
            "Upload a photo to `POST /api/colorize` and get back a PNG of the same size: the photo's own "
            "lightness (L) with colour (a, b) predicted by the model. To recolour one photo many times (colour "
            "hints, vividness), upload it once to `POST /api/images` and post the settings to "
            "`POST /api/images/{id}/colorize`. Errors are JSON with a `detail` line. "
            f"Limits: {_mb(max_upload_bytes)} per upload (413), {max_pixels:,} pixels per image (413), "
            f"{MAX_HINTS} hints per request (422)."
        ),
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.pool = pool
    app.state.images = images
    app.add_middleware(BodyLimitMiddleware, limit=max_upload_bytes + MULTIPART_SLACK, file_limit=max_upload_bytes,
                       json_limit=MAX_JSON_BYTES)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query")]
            where = ".".join(loc) or "request"
            if err.get("type") == "missing":
                parts.append(f"missing form field {where!r}")
            else:
                parts.append(f"{where}: {err.get('msg', 'invalid')}")
        upload = request.url.path in ("/api/colorize", "/api/images")
        hint = " (send the image as multipart/form-data field 'file')" if upload else ""
        return JSONResponse({"detail": "; ".join(parts) + hint}, status_code=400)

    def model_name(name: str | None) -> str:
        name = name or store.default
        if not isinstance(name, str) or name not in store.summaries:
            raise HTTPException(400, f"unknown model {name!r}; choose one of: {', '.join(store.names)}")
        return name

    async def read_upload(file: UploadFile, label: str) -> bytes:
        size = file.size if file.size is not None else None
        if size is not None and size > max_upload_bytes:
            raise HTTPException(413, f"{label}: the upload is {_mb(size)}; the limit is {_mb(max_upload_bytes)}")
        data = await file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"{label}: the upload is over the limit of {_mb(max_upload_bytes)}")
        return data

    def gone(image_id: str) -> HTTPException:
        shown = image_id if len(image_id) <= 40 else image_id[:37] + "..."
        return HTTPException(404, f"image {shown!r} is not on the server any more (images are dropped after "
                                  f"{store_ttl / 60:g} min unused, or sooner to make room): upload it again")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    @app.get("/healthz", response_model=HealthOut, summary="Liveness and load")
    async def healthz() -> HealthOut:
        """`status` is "ok" while the server is up; `busy` counts requests running or waiting."""
        return HealthOut(status="ok", model=store.default, workers=pool.workers, queue=pool.queue, busy=pool.busy,
                         images=len(images), image_bytes=images.nbytes)

    def model_info(n: str) -> ModelInfo:
        c = store.loaded(n)
        return ModelInfo(name=n, summary=store.summaries[n], default=(n == store.default), loaded=c is not None,
                         **(_controls_of(c) if c is not None else {}))

    @app.get("/api/models", response_model=ModelsOut, summary="Models the page can use, and the limits")
    async def models() -> ModelsOut:
        """The default model first, then the other colorizers that ship with this install (each
        once), with a plain-words summary of each, and for each one loaded already whether it takes
        colour hints and a vividness (and its default)."""
        return ModelsOut(
            default=store.default,
            models=[model_info(n) for n in store.summaries],
            max_upload_bytes=max_upload_bytes,
            max_pixels=max_pixels,
            max_hints=MAX_HINTS,
        )

    @app.get("/api/models/{name}", response_model=ModelInfo, summary="One model's controls (loads it)",
             responses={404: {"model": ErrorOut, "description": "No such model."}, 503: _ERRORS[503]})
    async def model_detail(name: str) -> ModelInfo:
        """Whether the model takes colour hints, whether it has a vividness and its default. Loads the
        model the first time (that can take a few seconds)."""
        if name not in store.summaries:
            raise HTTPException(404, f"unknown model {name!r}; choose one of: {', '.join(store.names)}")
        if store.loaded(name) is None:
            await pool.job(store.get, name, what=f"loading model {name!r}")
        return model_info(name)

    @app.post(
        "/api/colorize",
        summary="Colorize one image",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "The colorized image, as PNG, the input's size."},
                   **_ERRORS},
    )
    async def colorize(
        file: UploadFile = File(description="The image: JPEG, PNG, WebP, BMP, GIF or TIFF (alpha is kept)."),
        model: str | None = Form(None, description="A name from /api/models; the default model if left out."),
        vividness: str | None = Form(None, description="0 (most accurate) .. 1 (most colourful), for models with "
                                                       "controls; the model's default if left out."),
        hints: str | None = Form(None, description='Colour points as JSON: [{"x": 120, "y": 80, "color": '
                                                   '"#3070c0"}, ...], in the image\'s pixels (hint models).'),
    ) -> Response:
        """Returns a PNG of the input's size (after EXIF rotation): the input's own lightness with
        predicted colour. Headers: `X-Chromalab-Model` names the model used; `X-Input-Grayscale`
        is `true` when the upload was already black and white; `X-Chromalab-Notes` (when present)
        says how the file was used, e.g. only the first of several frames."""
        label = _label(file.filename)
        name = model_name(model)
        try:
            hint_list = _hints_from_json(hints)
            v = _vividness_value(vividness)
        except _Rejected as e:
            raise HTTPException(e.status, e.detail) from None
        data = await read_upload(file, label)
        (png, size, was_gray, notes, ms, settings), elapsed = await pool.job(
            _colorize_job, store, name, data, label, hint_list, v, what=f"colorizing {label} with {name!r}")
        headers = _png_headers(label, name, size, elapsed, ms, settings)
        headers["X-Input-Grayscale"] = "true" if was_gray else "false"
        if notes:
            headers["X-Chromalab-Notes"] = "; ".join(notes)
        return Response(png, media_type="image/png", headers=headers)

    @app.post("/api/images", response_model=ImageOut, status_code=201,
              summary="Upload an image once, to recolour it many times", responses=_ERRORS)
    async def upload_image(
        file: UploadFile = File(description="The image: JPEG, PNG, WebP, BMP, GIF or TIFF (alpha is kept)."),
        model: str | None = Form(None, description="The model whose controls to report (the default if left "
                                                   "out); any model can recolour the image later."),
    ) -> ImageOut:
        """Decodes and prepares the image and keeps it in memory (bounded; least recently used out
        first; dropped after a while unused). Recolour it with `POST /api/images/{id}/colorize`."""
        label = _label(file.filename)
        name = model_name(model)
        data = await read_upload(file, label)
        (kept, controls), _ = await pool.job(_upload_job, store, name, data, label, what=f"reading {label}")
        try:
            key = images.put(kept)
        except _Rejected as e:
            raise HTTPException(e.status, e.detail) from None
        return ImageOut(id=key, width=kept.width, height=kept.height, model=name, grayscale=kept.grayscale,
                        notes=kept.notes, expires_after_s=store_ttl, **controls)

    @app.post(
        "/api/images/{image_id}/colorize",
        summary="Recolour a kept image with hints and vividness",
        response_class=Response,
        openapi_extra={"requestBody": _RECOLOUR_BODY},
        responses={200: {"content": {"image/png": {}}, "description": "The colorized image, as PNG, the input's size."},
                   **_RECOLOUR_ERRORS},
    )
    async def recolour(image_id: str, request: Request) -> Response:
        """Body (JSON, all optional): `model`, `vividness` (0 most accurate .. 1 most colourful),
        `hints` (`[{"x", "y", "color"}]` in the image's pixels) and `png_level` (0-9). Nothing is
        uploaded again. Headers as for `/api/colorize`, plus `Server-Timing` (render and PNG times)."""
        body = await request.body()
        try:
            payload = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPException(422, f"the request body is not valid JSON ({e})".replace("\n", " ")) from None
        if not isinstance(payload, dict):
            raise HTTPException(422, 'the request body must be a JSON object: {"model", "vividness", "hints"}')
        unknown = sorted(set(payload) - {"model", "vividness", "hints", "png_level"})
        if unknown:
            raise HTTPException(422, f"unknown field {unknown[0]!r} in the request body (expected model, vividness, "
                                     "hints, png_level)")
        level = payload.get("png_level")
        if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9):
            raise HTTPException(422, f"png_level must be a whole number from 0 (fastest) to 9 (smallest), got {level!r}")
        try:
            hint_list = _hints_list(payload.get("hints"))
            v = _vividness_value(payload.get("vividness"))
        except _Rejected as e:
            raise HTTPException(e.status, e.detail) from None
        m = payload.get("model")
        if m is not None and not isinstance(m, str):
            raise HTTPException(422, f"model must be a name (a string), got {m!r}")
        name = model_name(m)
        kept = images.get(image_id)
        if kept is None:
            raise gone(image_id)
        (png, ms, settings), elapsed = await pool.job(_recolour_job, store, name, kept, hint_list, v, level,
                                                      what=f"colorizing {kept.label} with {name!r}")
        headers = _png_headers(kept.label, name, (kept.width, kept.height), elapsed, ms, settings)
        headers["X-Input-Grayscale"] = "true" if kept.grayscale else "false"
        if kept.notes:
            headers["X-Chromalab-Notes"] = "; ".join(kept.notes)
        return Response(png, media_type="image/png", headers=headers)

    @app.delete("/api/images/{image_id}", status_code=204, summary="Forget a kept image",
                responses={404: {"model": ErrorOut, "description": "No such image."}})
    async def forget(image_id: str) -> Response:
        """The page calls this when another photo replaces the one being edited."""
        if not images.delete(image_id):
            raise gone(image_id)
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _version() -> str:
    from .. import __version__

    return __version__


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    """Fail with one line if the address cannot be bound (in use, bad host), before loading anything."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ChromalabError(f"--host {host}: cannot resolve ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
    except OSError as e:
        raise ChromalabError(f"cannot listen on {host}:{port}: {e.strerror} (pick another --port)") from None
    finally:
        s.close()


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | Predictor = "default",
    workers: int = 2,
    queue: int = 16,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    log_level: str = "info",
    store_images: int = 32,
    store_bytes: int = STORE_BYTES,
    store_ttl: float = STORE_TTL_S,
) -> None:
    """Run the app with uvicorn until Ctrl+C. Loopback only unless ``host`` says otherwise."""
    import uvicorn

    _check_port(host, port)
    app = create_app(model, workers=workers, queue=queue, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels,
                     store_images=store_images, store_bytes=store_bytes, store_ttl=store_ttl)
    shown = f"[{host}]" if ":" in host else host
    print(f"chromalab: serving model {app.state.store.default!r} on http://{shown}:{port}/ "
          f"(API docs at /docs; Ctrl+C to stop)", flush=True)
    if not _is_loopback(host):
        print(f"chromalab: warning: listening on {host}, not loopback: anyone who can reach this machine "
              "can use the server", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5)
