"""The API's request and response shapes: pydantic response models and the OpenAPI text (they document
the API on /docs), and the checks of the fields a request sends (colour hints, vividness, the recolour body)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, Field

from .errors import RejectedError, as_http
from .limits import MAX_HINTS


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


HINT_SCHEMA = {
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
RECOLOUR_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {
            "model": {"type": "string", "description": "A name from /api/models; the default model if left out."},
            "vividness": {"type": "number", "minimum": 0, "maximum": 1,
                          "description": "0 most accurate .. 1 most colourful (models with controls); "
                                         "the model's default if left out."},
            "hints": {"type": "array", "maxItems": MAX_HINTS, "items": HINT_SCHEMA,
                      "description": "Colour points, the format `chromalab colorize --hints FILE` takes."},
            "png_level": {"type": "integer", "minimum": 0, "maximum": 9,
                          "description": "zlib level of the PNG answer (default 1). 0 stores it uncompressed: "
                                         "about 2.5 times the bytes but some 50 ms sooner for a 1024x768 photo; "
                                         "the page asks for it when it runs on the same machine as the server."},
        },
        "example": {"vividness": 0.6, "hints": [{"x": 120, "y": 80, "color": "#3070c0"}]},
    }}},
}

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed request or unknown model."},
    413: {"model": ErrorOut, "description": "Upload over the byte limit, or image over the pixel limit."},
    415: {"model": ErrorOut, "description": "The file is not an image."},
    422: {"model": ErrorOut, "description": "The image is broken (truncated or corrupt), or the hints or "
                                            "vividness cannot be used."},
    503: {"model": ErrorOut, "description": "All workers busy and the queue full; retry after `Retry-After` s."},
}
RECOLOUR_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Unknown model."},
    404: {"model": ErrorOut, "description": "No such image: it expired or was dropped to make room; upload it again."},
    413: {"model": ErrorOut, "description": "The request body is over the limit."},
    422: {"model": ErrorOut, "description": "The hints or vividness cannot be used (one line says which and why)."},
    503: ERRORS[503],
}


def hints_from_json(text: str | None) -> list | None:
    """The ``hints`` form field (a JSON list of ``{"x", "y", "color"}``, or ``{"hints": [...]}`` as in a
    hints file) -> that list; None for none. Malformed JSON or too many hints -> :class:`RejectedError` 422."""
    if text is None or not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RejectedError(422, f"hints: not valid JSON ({e})".replace("\n", " ")) from None
    return hints_list(data)


def hints_list(data) -> list | None:
    if data is None:
        return None
    if isinstance(data, dict) and isinstance(data.get("hints"), list):
        data = data["hints"]
    if not isinstance(data, list):
        raise RejectedError(422, 'hints: expected a JSON list of {"x", "y", "color"} points, got '
                                 f"{type(data).__name__ if not isinstance(data, dict) else 'an object'}")
    if len(data) > MAX_HINTS:
        raise RejectedError(422, f"{len(data)} hints is more than the limit of {MAX_HINTS}")
    return data


def vividness_value(v) -> float | None:
    """A vividness from a request (a JSON number, or the form field's text) -> float, None when absent."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise RejectedError(422, f"vividness must be a number from 0 (most accurate) to 1 (most colourful), got {v!r}")
    try:
        f = float(v)
    except ValueError:
        raise RejectedError(422, f"vividness must be a number from 0 (most accurate) to 1 (most colourful), "
                                 f"got {v!r}") from None
    return f


@dataclass
class RecolourRequest:
    """The JSON body of ``POST /api/images/{id}/colorize``, checked (every field optional)."""

    model: str | None = None
    vividness: float | None = None
    hints: list | None = None
    png_level: int | None = None

    @classmethod
    def parse(cls, body: bytes) -> RecolourRequest:
        """The body's bytes -> the request, or :class:`HTTPException` 422 with one line."""
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
            hint_list = hints_list(payload.get("hints"))
            v = vividness_value(payload.get("vividness"))
        except RejectedError as e:
            raise as_http(e) from None
        m = payload.get("model")
        if m is not None and not isinstance(m, str):
            raise HTTPException(422, f"model must be a name (a string), got {m!r}")
        return cls(model=m, vividness=v, hints=hint_list, png_level=level)
