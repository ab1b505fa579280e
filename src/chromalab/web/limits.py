"""The server's limits, and the middleware that refuses request bodies over them without buffering."""

from __future__ import annotations

import json

from ..images import DEFAULT_MAX_PIXELS

MAX_UPLOAD_BYTES = 20 * 2**20
"""Uploads larger than this (20 MiB) are refused with 413."""
SERVER_MAX_PIXELS = DEFAULT_MAX_PIXELS // 2
"""The server's own pixel limit, deliberately half the package's :data:`chromalab.images.DEFAULT_MAX_PIXELS`
(the CLI's): 25 megapixels (e.g. 6000x4166); larger images are refused with 413. Lower because a server
holds several images in memory at once (``create_app(max_pixels=)`` changes it)."""
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


def mb(n: int) -> str:
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


class _BodyTooLargeError(Exception):
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
        size = f"is {mb(n)}, over" if n is not None else "is over"
        if is_json:
            return f"the request body {size} the limit of {mb(self.json_limit or 0)} (at most {MAX_HINTS} hints)"
        return f"the upload {size} the limit of {mb(self.file_limit)} (send a smaller or more compressed image)"

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
                    raise _BodyTooLargeError()
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
