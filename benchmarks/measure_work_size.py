"""Which working size should a fully convolutional net see: 64 px (its training size) or larger?

    python benchmarks/measure_work_size.py --model default [--images DIR] [--sizes 64,96,128,192,256]

Each colour photo (any size) is reduced to L, colorized with the net fed L at each working
size (long side; the ab is upsampled and combined with the original L, as always), and
compared with the original: PSNR and SSIM (docs/metrics.md definitions) and colourfulness.
Without ``--images`` the five natural colour photos shipped with scikit-image are used
(astronaut, coffee, chelsea, rocket, motorcycle: 300 to 600 px); give a folder of your own
photos for a firmer answer.

Prints one JSON line: the metrics per size, the best size by PSNR, and ``ratio`` = MSE at
64 / MSE at the best size (> 1: a larger input helps), ``delta_psnr_db`` = best - 64.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np


def sample_photos():
    """(name, RGB uint8) for scikit-image's bundled colour photos that are on disk."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"):
        p = folder / name
        if p.is_file():
            yield name, p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--images", default=None, help="folder or zip of colour photos (default: skimage's)")
    ap.add_argument("--sizes", default="64,96,128,192,256")
    ap.add_argument("--max-images", type=int, default=200)
    args = ap.parse_args()

    from PIL import Image

    from chromalab.images import iter_images_any, open_image, to_rgb_uint8
    from chromalab.inference import Colorizer
    from chromalab.metrics import colorfulness_per_image, psnr_per_image, ssim_per_image

    sizes = [int(s) for s in args.sizes.split(",")]
    items = list(iter_images_any(args.images))[: args.max_images] if args.images else list(sample_photos())
    photos = []
    for name, src in items:
        im = open_image(src, name=name)
        if im.mode in ("L", "LA", "I", "I;16", "F", "1"):
            continue  # a gray original has nothing to compare colours with
        photos.append((name, to_rgb_uint8(im)))
    if not photos:
        raise SystemExit("no colour photos found")
    base = Colorizer(args.model)
    results = {}
    for s in sizes:
        col = Colorizer(base.predictor, work_size=s) if base.predictor is not None else Colorizer(args.model, work_size=s)
        ps, ss, cf, mse = [], [], [], []
        for _, rgb in photos:
            out = np.asarray(col.colorize_image(Image.fromarray(rgb).convert("L")).convert("RGB"))
            ps.append(float(psnr_per_image(rgb[None], out[None])[0]))
            ss.append(float(ssim_per_image(rgb[None], out[None])[0]))
            cf.append(float(colorfulness_per_image(out[None])[0]))
            mse.append(float(np.mean((rgb.astype(np.float64) - out) ** 2)))
        results[s] = {"psnr": round(float(np.mean(ps)), 3), "ssim": round(float(np.mean(ss)), 4),
                      "colorfulness": round(float(np.mean(cf)), 2), "mse": float(np.mean(mse))}
    best = max(sizes, key=lambda s: results[s]["psnr"])
    ref = 64 if 64 in results else sizes[0]
    print(json.dumps({
        "benchmark": "work_size",
        "model": args.model,
        "images": len(photos),
        "source": args.images or "skimage.data photos",
        "per_size": results,
        "best_size": best,
        "ratio": round(results[ref]["mse"] / results[best]["mse"], 3),
        "delta_psnr_db": round(results[best]["psnr"] - results[ref]["psnr"], 3),
        "gt_colorfulness": round(float(np.mean([colorfulness_per_image(r[None])[0] for _, r in photos])), 2),
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
