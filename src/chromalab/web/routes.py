"""The endpoints, as one :class:`~fastapi.APIRouter` (:data:`router`). Each reads what the server holds
from :class:`WebState` (``app.state.web``, set by :func:`~chromalab.web.app.create_app`) and hands the work
to the worker pool (:mod:`.jobs`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response

from .errors import RejectedError, as_http
from .jobs import colorize_job, recolour_job, upload_job
from .limits import MAX_HINTS, mb
from .schemas import (
    ERRORS,
    RECOLOUR_BODY,
    RECOLOUR_ERRORS,
    ErrorOut,
    HealthOut,
    ImageOut,
    ModelInfo,
    ModelsOut,
    RecolourRequest,
    hints_from_json,
    vividness_value,
)
from .store import ImageStore, ModelStore, controls_of
from .workers import WorkerPool

STATIC_DIR = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PNG_200: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "The colorized image, as PNG, the input's size."}}


@dataclass
class WebState:
    """What one app serves with: its models, worker pool, kept images and limits."""

    store: ModelStore
    pool: WorkerPool
    images: ImageStore
    max_upload_bytes: int
    max_pixels: int
    store_ttl: float

    def model_name(self, name: str | None) -> str:
        """A model the page may use (None: the default), or 400."""
        name = name or self.store.default
        if not isinstance(name, str) or name not in self.store.summaries:
            raise HTTPException(400, f"unknown model {name!r}; choose one of: {', '.join(self.store.names)}")
        return name

    def model_info(self, n: str) -> ModelInfo:
        c = self.store.loaded(n)
        return ModelInfo(name=n, summary=self.store.summaries[n], default=(n == self.store.default),
                         loaded=c is not None, **(controls_of(c) if c is not None else {}))

    async def read_upload(self, file: UploadFile, label: str) -> bytes:
        """The uploaded file's bytes, or 413 over the byte limit."""
        limit = self.max_upload_bytes
        size = file.size if file.size is not None else None
        if size is not None and size > limit:
            raise HTTPException(413, f"{label}: the upload is {mb(size)}; the limit is {mb(limit)}")
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"{label}: the upload is over the limit of {mb(limit)}")
        return data

    def gone(self, image_id: str) -> HTTPException:
        shown = image_id if len(image_id) <= 40 else image_id[:37] + "..."
        return HTTPException(404, f"image {shown!r} is not on the server any more (images are dropped after "
                                  f"{self.store_ttl / 60:g} min unused, or sooner to make room): upload it again")


async def web_state(request: Request) -> WebState:
    """The :class:`WebState` of the app serving ``request`` (async: no thread hop for a lookup)."""
    return request.app.state.web


State = Annotated[WebState, Depends(web_state)]
router = APIRouter()


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation errors -> 400 with one line (registered by ``create_app``)."""
    assert isinstance(exc, RequestValidationError)
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


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


@router.get("/healthz", response_model=HealthOut, summary="Liveness and load")
async def healthz(s: State) -> HealthOut:
    """`status` is "ok" while the server is up; `busy` counts requests running or waiting."""
    return HealthOut(status="ok", model=s.store.default, workers=s.pool.workers, queue=s.pool.queue,
                     busy=s.pool.busy, images=len(s.images), image_bytes=s.images.nbytes)


@router.get("/api/models", response_model=ModelsOut, summary="Models the page can use, and the limits")
async def models(s: State) -> ModelsOut:
    """The default model first, then the other colorizers that ship with this install (each
    once), with a plain-words summary of each, and for each one loaded already whether it takes
    colour hints and a vividness (and its default)."""
    return ModelsOut(
        default=s.store.default,
        models=[s.model_info(n) for n in s.store.summaries],
        max_upload_bytes=s.max_upload_bytes,
        max_pixels=s.max_pixels,
        max_hints=MAX_HINTS,
    )


@router.get("/api/models/{name}", response_model=ModelInfo, summary="One model's controls (loads it)",
            responses={404: {"model": ErrorOut, "description": "No such model."}, 503: ERRORS[503]})
async def model_detail(name: str, s: State) -> ModelInfo:
    """Whether the model takes colour hints, whether it has a vividness and its default. Loads the
    model the first time (that can take a few seconds)."""
    if name not in s.store.summaries:
        raise HTTPException(404, f"unknown model {name!r}; choose one of: {', '.join(s.store.names)}")
    if s.store.loaded(name) is None:
        await s.pool.job(s.store.get, name, what=f"loading model {name!r}")
    return s.model_info(name)


@router.post("/api/colorize", summary="Colorize one image", response_class=Response,
             responses={**_PNG_200, **ERRORS})
async def colorize(
    s: State,
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
    name = s.model_name(model)
    try:
        hint_list = hints_from_json(hints)
        v = vividness_value(vividness)
    except RejectedError as e:
        raise as_http(e) from None
    data = await s.read_upload(file, label)
    (png, size, was_gray, notes, ms, settings), elapsed = await s.pool.job(
        colorize_job, s.store, name, data, label, hint_list, v, what=f"colorizing {label} with {name!r}")
    return _png_response(png, label, name, size, elapsed, ms, settings, was_gray, notes)


@router.post("/api/images", response_model=ImageOut, status_code=201,
             summary="Upload an image once, to recolour it many times", responses=ERRORS)
async def upload_image(
    s: State,
    file: UploadFile = File(description="The image: JPEG, PNG, WebP, BMP, GIF or TIFF (alpha is kept)."),
    model: str | None = Form(None, description="The model whose controls to report (the default if left "
                                               "out); any model can recolour the image later."),
) -> ImageOut:
    """Decodes and prepares the image and keeps it in memory (bounded; least recently used out
    first; dropped after a while unused). Recolour it with `POST /api/images/{id}/colorize`."""
    label = _label(file.filename)
    name = s.model_name(model)
    data = await s.read_upload(file, label)
    (kept, controls), _ = await s.pool.job(upload_job, s.store, name, data, label, what=f"reading {label}")
    try:
        key = s.images.put(kept)
    except RejectedError as e:
        raise as_http(e) from None
    return ImageOut(id=key, width=kept.width, height=kept.height, model=name, grayscale=kept.grayscale,
                    notes=kept.notes, expires_after_s=s.store_ttl, **controls)


@router.post("/api/images/{image_id}/colorize", summary="Recolour a kept image with hints and vividness",
             response_class=Response, openapi_extra={"requestBody": RECOLOUR_BODY},
             responses={**_PNG_200, **RECOLOUR_ERRORS})
async def recolour(image_id: str, request: Request, s: State) -> Response:
    """Body (JSON, all optional): `model`, `vividness` (0 most accurate .. 1 most colourful),
    `hints` (`[{"x", "y", "color"}]` in the image's pixels) and `png_level` (0-9). Nothing is
    uploaded again. Headers as for `/api/colorize`, plus `Server-Timing` (render and PNG times)."""
    req = RecolourRequest.parse(await request.body())
    name = s.model_name(req.model)
    kept = s.images.get(image_id)
    if kept is None:
        raise s.gone(image_id)
    (png, ms, settings), elapsed = await s.pool.job(recolour_job, s.store, name, kept, req.hints, req.vividness,
                                                    req.png_level, what=f"colorizing {kept.label} with {name!r}")
    return _png_response(png, kept.label, name, (kept.width, kept.height), elapsed, ms, settings, kept.grayscale,
                         kept.notes)


@router.delete("/api/images/{image_id}", status_code=204, summary="Forget a kept image",
               responses={404: {"model": ErrorOut, "description": "No such image."}})
async def forget(image_id: str, s: State) -> Response:
    """The page calls this when another photo replaces the one being edited."""
    if not s.images.delete(image_id):
        raise s.gone(image_id)
    return Response(status_code=204)


# ---- answers ---------------------------------------------------------------------------------------
def _png_response(png: bytes, label: str, name: str, size: tuple[int, int], elapsed: float, ms: dict[str, float],
                  settings: str, was_gray: bool, notes: list[str]) -> Response:
    headers = _png_headers(label, name, size, elapsed, ms, settings)
    headers["X-Input-Grayscale"] = "true" if was_gray else "false"
    if notes:
        headers["X-Chromalab-Notes"] = "; ".join(notes)
    return Response(png, media_type="image/png", headers=headers)


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
