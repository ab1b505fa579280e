"""What made an output video: a JSON record in its container's ``comment`` tag.

``chromalab colorize`` compares the record of an existing output with the run's own to skip
outputs that are up to date (docs/video.md, "Skip or make again").
"""

from __future__ import annotations

import json
import os

from .source import quiet_ffmpeg

PROVENANCE_TAG = "comment"
"""The container tag that records what made an output video (every output container keeps it:
MP4/MOV ``©cmt``, Matroska/WebM ``COMMENT``, AVI ``ICMT``)."""
_PROVENANCE_PREFIX = "chromalab "


def provenance_tag(record: dict) -> dict[str, str]:
    """The container tags recording ``record`` (the model and settings that made a video, as
    :meth:`chromalab.inference.Colorizer.provenance` makes it for a photo's PNG)."""
    return {PROVENANCE_TAG: _PROVENANCE_PREFIX + json.dumps(record, sort_keys=True, separators=(",", ":"))}


def read_video_provenance(path: str | os.PathLike) -> dict | None:
    """The record a video made by chromalab carries (:func:`provenance_tag`), or None: another
    file, no record, not a regular file, or unreadable. Reads the container header only."""
    try:
        if not os.path.isfile(path):
            return None
        import av

        quiet_ffmpeg()
        with av.open(str(path)) as c:
            tags = {str(k).lower(): v for k, v in c.metadata.items()}
    except Exception:  # noqa: BLE001 - anything unreadable is "no record": the output is made again
        return None
    raw = tags.get(PROVENANCE_TAG)
    if not isinstance(raw, str) or not raw.startswith(_PROVENANCE_PREFIX):
        return None
    try:
        rec = json.loads(raw[len(_PROVENANCE_PREFIX):])
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None
