"""What made an output: the record (model, weights hash, settings) an output PNG carries as text,
and reading it back, so that a batch run skips outputs already made the same way."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from ..version import __version__
from .onnx_cache import _sha256_file, weights_file_for

PROVENANCE_KEY = "chromalab"
"""PNG text keyword under which an output records (as JSON) the model and settings that made it."""


def provenance_text(record: dict) -> dict[str, str]:
    """The PNG text entries for an output made as ``record`` says (see :meth:`Colorizer.provenance`)."""
    return {PROVENANCE_KEY: json.dumps(record, sort_keys=True, separators=(",", ":")),
            "Software": f"chromalab {__version__}"}


def read_png_text(path: str | os.PathLike, key: str) -> str | None:
    """The tEXt entry ``key`` of a PNG file, read from the chunks before the image data (a few
    hundred bytes), or None: not a PNG, no such entry, unreadable, or not a regular file."""
    try:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            want = key.encode("latin-1")
            for _ in range(64):
                head = f.read(8)
                if len(head) < 8:
                    return None
                n, kind = struct.unpack(">I", head[:4])[0], head[4:]
                if kind in (b"IDAT", b"IEND") or n > 1 << 20:
                    return None
                data = f.read(n)
                f.seek(4, os.SEEK_CUR)  # CRC
                if kind == b"tEXt" and b"\0" in data:
                    k, v = data.split(b"\0", 1)
                    if k == want:
                        return v.decode("latin-1")
    except (OSError, ValueError, struct.error):
        return None
    return None


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The record (model and settings) an output made by chromalab carries, or None."""
    raw = read_png_text(path, PROVENANCE_KEY)
    if raw is None:
        return None
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def model_fingerprint(spec: str) -> str | None:
    """SHA-256 of the file that defines a model spec: its weights file, else a run folder's
    ``run.json``; None for registry models without a file (``gray``, ...)."""
    w = weights_file_for(spec)
    if w is not None:
        return _sha256_file(w)
    run = Path(spec).expanduser() / "run.json"
    if Path(spec).expanduser().is_dir() and run.is_file():
        return _sha256_file(run)
    return None


def _hints_record(hints) -> list | None:
    """Hints as recorded in an output's provenance (JSON-able; None when there are none)."""
    if not hints:
        return None
    return [dict(h) if isinstance(h, dict) else {"x": h[0], "y": h[1], "color": h[2] if isinstance(h[2], str)
                                                 else list(h[2])} for h in hints]


def _model_label(spec: str) -> str:
    """How a model is named in an output's record: a registry name as is; a run folder or weights
    file by its name only (no machine path; its weights' hash identifies it)."""
    from ..registry import REGISTRY

    if spec in REGISTRY:
        return spec
    return Path(spec).name or spec
