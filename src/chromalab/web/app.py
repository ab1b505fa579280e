"""FastAPI app for ``chromalab serve``: one static page and a small API.

Endpoints::

    GET  /                 the page (static HTML/JS/CSS beside this file, no build step)
    POST /api/colorize     multipart field ``file`` (+ optional ``model``) -> image/png, the input's size
    GET  /api/models       the colorizers the page may pick (each once, with a plain-words
                           summary from :data:`WEB_SUMMARIES`), the default one, the upload limits
    GET  /healthz          liveness and the load of the worker pool
    GET  /docs             FastAPI's OpenAPI page describing the above

Limits (every error is JSON ``{"detail": "<one line for people>"}``, and the server stays up):

* an upload over ``max_upload_bytes`` (20 MiB) -> 413, enforced while the body is read:
  a larger ``Content-Length`` is refused before reading, and a body without one is counted
  and cut off, so nothing over the limit is ever buffered;
* an image with more than ``max_pixels`` pixels (:data:`DEFAULT_MAX_PIXELS`) -> 413;
* a file that is not an image -> 415; an image that cannot be decoded (truncated, corrupt, no
  pixels) -> 422;
* an unknown ``model`` or a malformed request -> 400;
* all ``workers`` busy and ``queue`` requests already waiting -> 503 with ``Retry-After``,
  at once, instead of stalling.

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
import io
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ..errors import ChromalabError, ImageError, ModelError
from ..predictors.base import Predictor

WEB_SUMMARIES: dict[str, str] = {
    "default": "Natural, gentle colours. A safe first choice for most photos.",
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
MULTIPART_SLACK = 64 * 1024
"""Bytes allowed on top of the file for multipart boundaries, part headers and the model field."""

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


class ModelsOut(BaseModel):
    default: str = Field(description="The model used when a request names none.")
    models: list[ModelInfo]
    max_upload_bytes: int = Field(description="Larger uploads are refused with 413.")
    max_pixels: int = Field(description="Images with more pixels (width x height) are refused with 413.")


class HealthOut(BaseModel):
    status: str = Field(description='"ok" while the server is up.')
    model: str = Field(description="The default model.")
    workers: int = Field(description="Inference threads.")
    queue: int = Field(description="Requests allowed to wait for a free worker.")
    busy: int = Field(description="Requests running or waiting now; at workers + queue new ones get 503.")


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed request or unknown model."},
    413: {"model": ErrorOut, "description": "Upload over the byte limit, or image over the pixel limit."},
    415: {"model": ErrorOut, "description": "The file is not an image."},
    422: {"model": ErrorOut, "description": "The image is broken (truncated or corrupt)."},
    503: {"model": ErrorOut, "description": "All workers busy and the queue full; retry after `Retry-After` s."},
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
    """Refuse request bodies over ``limit`` bytes on ``paths`` with 413, without buffering them.

    A ``Content-Length`` over the limit is answered before any of the body is read. A body
    without one (chunked) is counted as it arrives; at the first byte over the limit reading
    stops and whatever the app would have answered is replaced by the 413.
    """

    def __init__(self, app, limit: int, file_limit: int, paths: tuple[str, ...] = ("/api/colorize",)):
        self.app = app
        self.limit = limit
        self.file_limit = file_limit
        self.paths = paths

    def _detail(self, n: int | None) -> str:
        size = f"is {_mb(n)}, over" if n is not None else "is over"
        return f"the upload {size} the limit of {_mb(self.file_limit)} (send a smaller or more compressed image)"

    async def _send_413(self, send, n: int | None) -> None:
        start, body = _json_error(413, self._detail(n), {"Connection": "close"})
        await send(start)
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = -1
                if n > self.limit:
                    await self._send_413(send, n)
                    return
        received = 0
        exceeded = False
        started = False

        async def limited_receive():
            nonlocal received, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.limit:
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
            await self._send_413(send, None)


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


# ---- the job (runs in a worker thread) -----------------------------------------------------------
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


def _colorize_job(store: ModelStore, model: str, data: bytes, label: str) -> tuple[bytes, tuple[int, int], bool, list]:
    """Decode, colorize, encode PNG. Returns (png bytes, (width, height), whether the upload was
    already black and white, notes on how it was used)."""
    from ..images import image_notes, is_grayscale

    im = _decode(data, label, store.max_pixels)
    try:
        out = store.get(model).colorize_image(im)
    except ImageError as e:
        raise _Rejected(422, str(e)) from None
    from ..inference import PNG_COMPRESS_LEVEL

    buf = io.BytesIO()
    out.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue(), out.size, is_grayscale(im), image_notes(im)


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


# ---- the app --------------------------------------------------------------------------------------
def create_app(
    model: str | Predictor = "default",
    workers: int = 2,
    queue: int = 16,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FastAPI:
    """The FastAPI app: the page, ``/api/colorize``, ``/api/models``, ``/healthz``.

    Args:
        model: the default model: a registry name, a run folder, a ``.safetensors`` file, or a
            :class:`~chromalab.predictors.base.Predictor` object (tests). Loaded now; a missing
            model raises :class:`~chromalab.errors.ModelError` (one line).
        workers: inference threads.
        queue: requests allowed to wait for a worker; beyond ``workers + queue`` -> 503.
        max_upload_bytes: larger uploads -> 413.
        max_pixels: images with more pixels -> 413.
    """
    pool = WorkerPool(workers, queue)
    try:
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
            "lightness (L) with colour (a, b) predicted by the model. Errors are JSON with a `detail` line. "
            f"Limits: {_mb(max_upload_bytes)} per upload (413), {max_pixels:,} pixels per image (413)."
        ),
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.pool = pool
    app.add_middleware(BodyLimitMiddleware, limit=max_upload_bytes + MULTIPART_SLACK, file_limit=max_upload_bytes)

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
        hint = " (send the image as multipart/form-data field 'file')" if request.url.path == "/api/colorize" else ""
        return JSONResponse({"detail": "; ".join(parts) + hint}, status_code=400)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    @app.get("/healthz", response_model=HealthOut, summary="Liveness and load")
    async def healthz() -> HealthOut:
        """`status` is "ok" while the server is up; `busy` counts requests running or waiting."""
        return HealthOut(status="ok", model=store.default, workers=pool.workers, queue=pool.queue, busy=pool.busy)

    @app.get("/api/models", response_model=ModelsOut, summary="Models the page can use, and the limits")
    async def models() -> ModelsOut:
        """The default model first, then the other colorizers that ship with this install (each
        once), with a plain-words summary of each."""
        return ModelsOut(
            default=store.default,
            models=[ModelInfo(name=n, summary=s, default=(n == store.default)) for n, s in store.summaries.items()],
            max_upload_bytes=max_upload_bytes,
            max_pixels=max_pixels,
        )

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
    ) -> Response:
        """Returns a PNG of the input's size (after EXIF rotation): the input's own lightness with
        predicted colour. Headers: `X-Chromalab-Model` names the model used; `X-Input-Grayscale`
        is `true` when the upload was already black and white; `X-Chromalab-Notes` (when present)
        says how the file was used, e.g. only the first of several frames."""
        label = _label(file.filename)
        name = model or store.default
        if name not in store.summaries:
            raise HTTPException(400, f"unknown model {name!r}; choose one of: {', '.join(store.names)}")
        size = file.size if file.size is not None else None
        if size is not None and size > max_upload_bytes:
            raise HTTPException(413, f"{label}: the upload is {_mb(size)}; the limit is {_mb(max_upload_bytes)}")
        data = await file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"{label}: the upload is over the limit of {_mb(max_upload_bytes)}")
        if not pool.try_acquire():
            secs = pool.retry_after()
            raise HTTPException(
                503,
                f"the server is busy ({pool.workers} images being colorized, {pool.queue} waiting); "
                f"try again in {secs} s",
                headers={"Retry-After": str(secs)},
            )
        t0 = time.perf_counter()
        elapsed = None
        try:
            png, (w, h), was_gray, notes = await pool.run(_colorize_job, store, name, data, label)
            elapsed = time.perf_counter() - t0
        except _Rejected as e:
            raise HTTPException(e.status, e.detail) from None
        except ChromalabError as e:
            log.warning("colorize %s with %s failed: %s", label, name, e)
            raise HTTPException(500, f"model {name!r} could not colorize {label}: {e}") from None
        except Exception as e:  # keep the server up; the log has the traceback
            log.exception("colorize %s with %s failed", label, name)
            raise HTTPException(500, f"internal error while colorizing {label}: {type(e).__name__}: {e}") from None
        finally:
            pool.release(elapsed)
        headers = {
            "Content-Disposition": _content_disposition(label),
            "X-Chromalab-Model": name.encode("ascii", "backslashreplace").decode("ascii"),
            "X-Image-Size": f"{w}x{h}",
            "X-Input-Grayscale": "true" if was_gray else "false",
            "X-Elapsed-Ms": f"{elapsed * 1000:.0f}",
            "Cache-Control": "no-store",
        }
        if notes:
            headers["X-Chromalab-Notes"] = "; ".join(notes)
        return Response(png, media_type="image/png", headers=headers)

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
) -> None:
    """Run the app with uvicorn until Ctrl+C. Loopback only unless ``host`` says otherwise."""
    import uvicorn

    _check_port(host, port)
    app = create_app(model, workers=workers, queue=queue, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels)
    shown = f"[{host}]" if ":" in host else host
    print(f"chromalab: serving model {app.state.store.default!r} on http://{shown}:{port}/ "
          f"(API docs at /docs; Ctrl+C to stop)", flush=True)
    if not _is_loopback(host):
        print(f"chromalab: warning: listening on {host}, not loopback: anyone who can reach this machine "
              "can use the server", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5)
