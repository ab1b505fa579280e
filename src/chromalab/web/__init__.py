"""The web page and JSON API behind ``chromalab serve`` (FastAPI + uvicorn): one static page and a small API.

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
* an image with more than ``max_pixels`` pixels (:data:`~chromalab.web.limits.SERVER_MAX_PIXELS`) -> 413;
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

:func:`create_app` builds the app (tests use it with ``fastapi.testclient.TestClient``);
:func:`serve` runs it with uvicorn. Importing this package imports neither FastAPI nor a model.

What lives where (each module imports only those above it)::

    limits.py    the limits (bytes, pixels, hints, kept images) and the body-size middleware
    errors.py    RejectedError, and the HTTP status of each kind of problem (413 / 415 / 422)
    schemas.py   response models and OpenAPI text; checks of the request fields (hints, vividness)
    store.py     the model store (lazy loading) and the store of images kept for recolouring
    workers.py   the bounded worker pool (503 when full)
    jobs.py      what runs on a worker: decode, prepare, colorize, encode the PNG
    routes.py    the endpoints (an APIRouter) and the state they share (WebState)
    static/      the page (HTML/JS/CSS, no build step)
    app.py       create_app and serve; re-exports the names other code imports from it
"""

from __future__ import annotations

__all__ = ["create_app", "serve"]


def create_app(*args, **kwargs):
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


def serve(*args, **kwargs):
    from .app import serve as _serve

    return _serve(*args, **kwargs)
