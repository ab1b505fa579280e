"""Predictor x dataset -> metrics dict (and a printed table)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ._io import progress_bar
from .color import chroma_mean, compose_rgb_uint8, rgb_uint8_to_lab_fast
from .data.cache import NATIVE_SIZE, SplitData
from .errors import ChromalabError, DataError
from .metrics import MetricAccumulator
from .predictors.base import Predictor
from .results import METRIC_KEYS, SHORT_HEADINGS, format_value


def evaluate_batches(pred: Predictor, batches, total: int, progress: bool = True, label: str = "evaluating"):
    """Run ``pred`` over (L, ab, rgb) batches; returns (metrics dict, seconds spent predicting)."""
    acc = MetricAccumulator()
    t_pred = 0.0
    # an oracle reference (the PCA ceiling) needs the true ab: predict_ab_oracle(L, ab)
    oracle = getattr(pred, "predict_ab_oracle", None)
    with progress_bar(f"{label} {pred.name}", enabled=progress) as bar:
        task = bar.add_task("eval", total=total)
        for L, ab, rgb in batches:
            t0 = time.perf_counter()
            ab_pred = oracle(L, ab) if oracle is not None else pred.predict_ab(L)
            t_pred += time.perf_counter() - t0
            acc.update(rgb, compose_rgb_uint8(L, ab_pred), ab, ab_pred)
            bar.advance(task, len(L))
    return acc.compute(), t_pred


def evaluate_split(pred: Predictor, split: SplitData, batch_size: int | None = None, progress: bool = True) -> dict:
    """Metrics of ``pred`` over a prepared split (images at the split's size)."""
    if len(split) == 0:
        raise DataError(f"split {split.name!r} is empty")
    bs = batch_size or pred.batch_size
    t0 = time.perf_counter()
    m, t_pred = evaluate_batches(pred, split.batches(bs), len(split), progress)
    return {
        **m,
        "count": len(split),
        "excluded": split.excluded,
        "split": split.name,
        "size": split.size,
        "seconds": round(time.perf_counter() - t0, 3),
        "images_per_second": round(len(split) / t_pred, 1) if t_pred > 0 else None,
    }


def iter_colour_originals(path: str | os.PathLike, label: str, counts: dict, progress: bool = True):
    """(name, ``(H, W, 3)`` uint8 sRGB) for each readable image of a folder or zip that is not in a gray
    mode, at its own size, under a progress bar. ``counts["excluded"]`` (int) counts the gray-mode files,
    ``counts["failed"]`` (list) gets a one-line reason per unreadable file. Raises DataError when the
    folder holds no image at all."""
    from .images import is_gray_mode, iter_images_any, open_image, to_rgb_uint8

    items = list(iter_images_any(path))
    if not items:
        raise DataError(f"{path}: no images found (looked for .jpg .jpeg .png .bmp .gif .tif .tiff .webp)")
    with progress_bar(label, enabled=progress) as bar:
        task = bar.add_task("load", total=len(items))
        for name, src in items:
            bar.advance(task)
            try:
                im = open_image(src, name=name)
            except ChromalabError as e:
                counts["failed"].append(str(e))
                continue
            if is_gray_mode(im.mode):
                counts["excluded"] += 1
                continue
            yield name, to_rgb_uint8(im)


def load_image_set(path: str | os.PathLike, size: int = NATIVE_SIZE, progress: bool = True):
    """Any folder or zip of colour images -> arrays at ``size`` x ``size``.

    Each image is decoded (EXIF orientation applied), converted to sRGB and resized to
    ``size`` x ``size`` with PIL's bicubic filter (antialiased when shrinking; the aspect
    ratio is not kept, as Tiny ImageNet images are square already). Grayscale originals
    (a gray mode, or mean Lab chroma below the threshold: :func:`chromalab.images.is_gray_mode`,
    :func:`~chromalab.images.is_near_gray`) are excluded and counted; unreadable
    files are skipped and listed.

    Returns (L, ab, rgb, names, excluded, failed) with L ``(n,1,S,S)``, ab ``(n,2,S,S)``,
    rgb ``(n,S,S,3)`` uint8, ``failed`` a list of one-line reasons.
    """
    from PIL import Image

    from .images import is_near_gray

    rgbs, names = [], []
    counts: dict = {"excluded": 0, "failed": []}
    for name, rgb in iter_colour_originals(path, "loading images", counts, progress):
        if rgb.shape[:2] != (size, size):
            rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
        rgbs.append(rgb)
        names.append(name)
    excluded, failed = counts["excluded"], counts["failed"]
    if not rgbs:
        raise DataError(f"{path}: no usable colour images ({excluded} grayscale, {len(failed)} unreadable)")
    rgb = np.stack(rgbs)
    lab = rgb_uint8_to_lab_fast(rgb).transpose(0, 3, 1, 2)
    keep = ~is_near_gray(chroma_mean(lab[:, 1:]))
    excluded += int((~keep).sum())
    lab, rgb = np.ascontiguousarray(lab[keep]), rgb[keep]
    names = [n for n, k in zip(names, keep, strict=True) if k]
    if len(rgb) == 0:
        raise DataError(f"{path}: every image is (near) grayscale; nothing to evaluate")
    return lab[:, :1], lab[:, 1:], rgb, names, excluded, failed


def evaluate_images(pred: Predictor, path: str | os.PathLike, size: int = NATIVE_SIZE,
                    batch_size: int | None = None, progress: bool = True) -> dict:
    L, ab, rgb, names, excluded, failed = load_image_set(path, size, progress)
    bs = batch_size or pred.batch_size
    batches = ((L[s : s + bs], ab[s : s + bs], rgb[s : s + bs]) for s in range(0, len(L), bs))
    t0 = time.perf_counter()
    m, t_pred = evaluate_batches(pred, batches, len(L), progress)
    return {
        **m,
        "count": len(L),
        "excluded": excluded,
        "unreadable": len(failed),
        "unreadable_files": failed[:50],
        "split": f"images:{Path(path).name}",
        "size": size,
        "seconds": round(time.perf_counter() - t0, 3),
        "images_per_second": round(len(L) / t_pred, 1) if t_pred > 0 else None,
    }


def format_table(rows: list[dict], title: str | None = None):
    """A rich Table of metric rows (each a dict with ``name`` and the metric keys)."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("model")
    for k in METRIC_KEYS:
        t.add_column(SHORT_HEADINGS[k], justify="right")
    t.add_column("images", justify="right")
    for r in rows:
        t.add_row(r.get("name", "?"), *(format_value(k, r.get(k)) for k in METRIC_KEYS), str(r.get("count", "")))
    return t
