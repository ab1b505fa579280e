"""The web page and JSON API behind ``chromalab serve`` (FastAPI + uvicorn).

:func:`create_app` builds the app (tests use it with ``fastapi.testclient.TestClient``);
:func:`serve` runs it with uvicorn. Both live in :mod:`chromalab.web.app`.
"""

from __future__ import annotations

__all__ = ["create_app", "serve"]


def create_app(*args, **kwargs):
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


def serve(*args, **kwargs):
    from .app import serve as _serve

    return _serve(*args, **kwargs)
