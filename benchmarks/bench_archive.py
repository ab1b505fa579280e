"""Photos/s of ``chromalab colorize DIR`` on the local engine and with ``--engine ray``, on this machine.

    python benchmarks/bench_archive.py [--n 300] [--photos DIR] [--model default] [--batch-size 16]
                                       [--workers N] [--runs 1]

The folder: ``--photos DIR`` (any photos, searched recursively), else ``--n`` photos made from
scikit-image's coffee (600x400) in five sizes, 0.3 to 1.9 MP (640x480, 1024x768, 800x800, 480x640,
1600x1200), each cropped and shifted differently, JPEG q90, in four sub-folders.

Each engine runs as a user runs it: the whole command in a fresh process, into an empty output folder
(the ONNX file is cached first, so neither run exports it), ``--runs`` times, the median kept:

* ``*_photos_per_s``: photos / wall time of the whole command (Ray: starting the local Ray included);
* ``*_fixed_s``: the same command on ``k`` photos, one per Ray worker (so that as many actors start):
  process start, model load; Ray's start and stop, its actors' start;
* ``*_steady_photos_per_s``: (n - k) / (wall(n) - wall(k)): the rate once running, fixed costs out.

``ratio`` = ray / local photos/s (the goal on 2 cores: >= 0.8); ``ratio_steady`` the same on the steady
rates. ``identical``: both engines wrote the same PNG bytes. Prints one JSON line.
Run it on an idle machine: another process on the cores changes both rates, not by the same factor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [(640, 480), (1024, 768), (800, 800), (480, 640), (1600, 1200)]
"""(w, h) of the synthetic photos, in turn: 0.3 to 1.9 MP, landscape, square and portrait."""


def make_folder(root: Path, n: int) -> Path:
    """``n`` JPEGs of mixed sizes under ``root/photos`` (four sub-folders)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    base = Image.fromarray(data.coffee())  # (400, 600, 3) uint8
    folder = root / "photos"
    rng = np.random.default_rng(0)
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        x0, y0 = int(rng.integers(0, 120)), int(rng.integers(0, 80))
        im = base.crop((x0, y0, x0 + 480, y0 + 320)).resize((w, h), Image.Resampling.BICUBIC)
        sub = folder / f"part{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        im.save(sub / f"photo{i:05d}.jpg", quality=90)
    return folder


def photos_in(folder: Path) -> list[Path]:
    from chromalab.images import IMAGE_SUFFIXES

    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def run(inputs: list[str], out: Path, args, engine: str, cwd: Path) -> float:
    """Wall seconds of one ``chromalab colorize`` command into the empty folder ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "chromalab.cli", "colorize", *inputs, "-o", str(out), "--model", args.model,
           "--batch-size", str(args.batch_size)]
    if engine == "ray":
        cmd += ["--engine", "ray"] + (["--workers", str(args.workers)] if args.workers else [])
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    took = time.perf_counter() - t0
    if r.returncode not in (0, 1):  # 1: some input failed (a bad file in --photos), the rest is done
        sys.exit(f"bench_archive: {engine} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return took


def digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.png"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="synthetic photos to make (without --photos)")
    ap.add_argument("--photos", type=Path, help="a folder of photos to use instead")
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, help="Ray actors (default: one per CPU)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each command; the median is kept")
    args = ap.parse_args()

    from chromalab.inference.colorizer import Colorizer

    Colorizer(args.model)  # the ONNX file cached once, before any timed run
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp_:
        tmp = Path(tmp_)
        folder = args.photos.resolve() if args.photos else make_folder(tmp, args.n)
        files = photos_in(folder)
        if len(files) < 2:
            sys.exit(f"bench_archive: {folder}: fewer than 2 photos")
        n = len(files)
        res: dict = {"bench": "archive", "photos": n, "source": str(args.photos) if args.photos else
                     f"synthetic {'/'.join(f'{w}x{h}' for w, h in SIZES)}", "model": args.model,
                     "batch_size": args.batch_size, "workers": args.workers or os.cpu_count(),
                     "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "runs": args.runs}
        outs = {}
        k = min(n - 1, res["workers"])
        few = [str(f) for f in files[:k]]
        for engine in ("local", "ray"):
            out = tmp / f"out-{engine}"
            full = statistics.median(run([str(folder)], out, args, engine, tmp) for _ in range(args.runs))
            outs[engine] = digests(out)
            fixed = statistics.median(run(few, tmp / f"few-{engine}", args, engine, tmp) for _ in range(args.runs))
            res[f"{engine}_s"] = round(full, 2)
            res[f"{engine}_photos_per_s"] = round(n / full, 2)
            res[f"{engine}_fixed_s"] = round(fixed, 2)
            res[f"{engine}_steady_photos_per_s"] = round((n - k) / max(full - fixed, 1e-9), 2)
        res["fixed_photos"] = k
        res["ratio"] = round(res["ray_photos_per_s"] / res["local_photos_per_s"], 3)
        res["ratio_steady"] = round(res["ray_steady_photos_per_s"] / res["local_steady_photos_per_s"], 3)
        res["outputs"] = len(outs["local"])
        res["identical"] = outs["local"] == outs["ray"]
        res["goal"] = ">= 0.8 of the local photos/s on 2 cores"
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
