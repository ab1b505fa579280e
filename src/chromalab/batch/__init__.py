"""The ``chromalab colorize`` front end: files and folders of photos and films in, colorized files out.

What lives where (each module imports only those above it)::

    plan.py         inputs -> Jobs with output names (photos and videos; the layout of docs/colorize.md)
    model.py        ModelSpec: the model of a run as settings every engine's workers load it from
    photo.py        one photo job read, colorized and written (PhotoWork, colorize_jobs): shared by the engines
    manifest.py     the Ray engine's manifest.csv: one row per input (done / skipped / failed)
    local.py        the local engine: BatchRun (photos batched on threads, then films)
    ray_engine.py   the Ray Data engine (``--engine ray``): RayRun, the actors; Ray is imported only there
    command.py      colorize_cli: the settings in, an engine (ENGINES) runs them, the exit code out

The inference engine below (:mod:`chromalab.inference`) knows nothing of batches or films.
"""

from __future__ import annotations

from .command import ENGINES, colorize_cli
from .local import PHOTO_BATCH_PIXELS, BatchRun
from .manifest import MANIFEST_COLUMNS, MANIFEST_NAME, Manifest, read_manifest
from .model import ModelSpec
from .photo import Outcome, PhotoWork, colorize_jobs
from .plan import (
    COLOR_SUFFIX,
    COMPARE_SUFFIX,
    VIDEO_OUTPUT_SUFFIXES,
    Job,
    is_video_name,
    iter_folder_media,
    output_file,
    plan_jobs,
)

__all__ = [
    "COLOR_SUFFIX",
    "COMPARE_SUFFIX",
    "ENGINES",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "PHOTO_BATCH_PIXELS",
    "VIDEO_OUTPUT_SUFFIXES",
    "BatchRun",
    "Job",
    "Manifest",
    "ModelSpec",
    "Outcome",
    "PhotoWork",
    "colorize_cli",
    "colorize_jobs",
    "is_video_name",
    "iter_folder_media",
    "output_file",
    "plan_jobs",
    "read_manifest",
]
