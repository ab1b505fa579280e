"""How the web API refuses: an HTTP status and one line for people. The status of each kind of problem
the user can fix is set here, in :data:`STATUS_OF_KIND`; anything else is the server's failure (500)."""

from __future__ import annotations

from fastapi import HTTPException

from ..errors import ImageError, SettingError
from ..images import NotAnImage, TooManyPixels

STATUS_OF_KIND: dict[type[Exception], int] = {
    TooManyPixels: 413,  # the image is over the pixel limit
    NotAnImage: 415,  # the file is not an image (or not one this install reads)
    ImageError: 422,  # an image that cannot be used: truncated, corrupt, no pixels
    SettingError: 422,  # colour hints or a vividness the model cannot take
}


class RejectedError(Exception):
    """An upload refused with an HTTP status and a one-line detail (raised in worker threads)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def status_of(e: Exception) -> int | None:
    """The HTTP status for ``e``: its :class:`RejectedError` status, or by its kind (the nearest class in
    :data:`STATUS_OF_KIND`); None when the server failed (500)."""
    if isinstance(e, RejectedError):
        return e.status
    return next((STATUS_OF_KIND[k] for k in type(e).__mro__ if k in STATUS_OF_KIND), None)


def rejected(e: ImageError | SettingError, detail: str | None = None) -> RejectedError:
    """``e`` refused with the status of its kind and ``detail`` (default: its own message)."""
    status = status_of(e)
    assert status is not None
    return RejectedError(status, str(e) if detail is None else detail)


def as_http(e: RejectedError) -> HTTPException:
    """The answer to a refusal raised outside the worker pool."""
    return HTTPException(e.status, e.detail)
