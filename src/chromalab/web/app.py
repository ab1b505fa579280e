"""The app behind ``chromalab serve``: :func:`create_app` puts the parts together (see the package
docstring, :mod:`chromalab.web`, for what lives where), :func:`serve` runs it with uvicorn.

The names tests and other modules import from here before the split are re-exported.
"""

from __future__ import annotations

import ipaddress
import socket

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from ..errors import ChromalabError
from ..predictors.base import Predictor
from .limits import (
    MAX_HINTS,
    MAX_JSON_BYTES,
    MAX_UPLOAD_BYTES,
    MULTIPART_SLACK,
    SERVER_MAX_PIXELS,
    STORE_BYTES,
    STORE_TTL_S,
    BodyLimitMiddleware,
    mb,
)
from .routes import PAGE_HEADERS, STATIC_DIR, WebState, router, validation_error
from .schemas import ErrorOut, HealthOut, ImageOut, ModelInfo, ModelsOut
from .store import BUNDLED_SUMMARY, OTHER_SUMMARY, WEB_SUMMARIES, ImageStore, KeptImage, ModelStore
from .workers import WorkerPool, log

__all__ = [
    "BUNDLED_SUMMARY",
    "MAX_HINTS",
    "MAX_JSON_BYTES",
    "MAX_UPLOAD_BYTES",
    "MULTIPART_SLACK",
    "OTHER_SUMMARY",
    "PAGE_HEADERS",
    "SERVER_MAX_PIXELS",
    "STATIC_DIR",
    "STORE_BYTES",
    "STORE_TTL_S",
    "WEB_SUMMARIES",
    "BodyLimitMiddleware",
    "ErrorOut",
    "HealthOut",
    "ImageOut",
    "ImageStore",
    "KeptImage",
    "ModelInfo",
    "ModelStore",
    "ModelsOut",
    "WorkerPool",
    "create_app",
    "log",
    "serve",
]


def create_app(
    model: str | Predictor = "default",
    workers: int = 2,
    queue: int = 16,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = SERVER_MAX_PIXELS,
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
            f"Limits: {mb(max_upload_bytes)} per upload (413), {max_pixels:,} pixels per image (413), "
            f"{MAX_HINTS} hints per request (422)."
        ),
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.pool = pool
    app.state.images = images
    app.state.web = WebState(store=store, pool=pool, images=images, max_upload_bytes=max_upload_bytes,
                             max_pixels=max_pixels, store_ttl=store_ttl)
    app.add_middleware(BodyLimitMiddleware, limit=max_upload_bytes + MULTIPART_SLACK, file_limit=max_upload_bytes,
                       json_limit=MAX_JSON_BYTES)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _version() -> str:
    from ..version import __version__

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
    max_pixels: int = SERVER_MAX_PIXELS,
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
