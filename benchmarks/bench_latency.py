"""Latency of one 1024x768 photo (model loaded) and of the whole `chromalab colorize one.jpg` process.

    python benchmarks/bench_latency.py [--model SPEC] [--runs 10]

Model: ``--model`` (a registry name, run folder or weights file), else the bundled
``default`` when it is installed, else a U-Net of the likely default size (width 32,
depth 4, random weights: the speed does not depend on the values) saved as a weights file.

1. In process, model loaded: JPEG file -> colorized PNG file (decode, L, net at 64x48, ab
   upsampled, Lab -> sRGB, PNG encode, atomic write), median of ``--runs`` after a warm-up.
   The baseline, in the same run, is the straightforward version of the same pipeline:
   scikit-image rgb2lab / lab2rgb at full size and Pillow's default PNG compression.
2. The whole process ``chromalab colorize one.jpg -o OUT --overwrite --model SPEC``: the first
   run (which exports the ONNX file into an empty cache) and the median of 5 later runs;
   whether torch was imported (it should not be once the ONNX file is cached).

Prints one JSON line; ``ratio`` = baseline ms / our ms. Targets: <= 250 ms and < 1 s.
"""

from __future__ import annotations

import argparse
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

import numpy as np


def make_photo(path: Path, w: int = 1024, h: int = 768, gray: bool = False) -> None:
    """A real photo (scikit-image's coffee, 600x400) resized to w x h, saved as JPEG q90."""
    from PIL import Image
    from skimage import data

    im = Image.fromarray(data.coffee()).resize((w, h), Image.Resampling.LANCZOS)
    (im.convert("L") if gray else im).save(path, quality=90)


def model_spec(arg: str | None, tmp: Path) -> tuple[str, str]:
    """(spec, description)."""
    if arg:
        return arg, arg
    from chromalab.registry import available_bundled

    if "default" in available_bundled():
        return "default", "bundled default"
    import torch

    torch.manual_seed(0)
    from chromalab.predictors import nets  # the project's net wrapper (weights as safetensors)

    net = nets.build_net("unet", width=32, depth=4)
    path = tmp / "unet32x4.safetensors"
    nets.save_net(path, net, {"name": "bench-unet", "input_size": 64})
    return str(path), "unet width=32 depth=4 (random weights)"


def median_ms(fn, runs: int) -> float:
    fn()
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000


def baseline_pipeline(col, src: Path, dst: Path) -> None:
    """The same steps done the obvious way: skimage colour conversions at full size, PNG level 6."""
    from PIL import Image
    from skimage.color import lab2rgb, rgb2lab

    from chromalab.color import to_uint8
    from chromalab.inference import resize_plane

    rgb = np.asarray(Image.open(src).convert("RGB"))
    L = rgb2lab(rgb)[..., 0].astype(np.float32)
    h, w = col.work_shape(*L.shape)
    ab = col.engine.predict_ab(resize_plane(L, (w, h))[None, None])[0]
    a = resize_plane(ab[0], (L.shape[1], L.shape[0]))
    b = resize_plane(ab[1], (L.shape[1], L.shape[0]))
    out = to_uint8(lab2rgb(np.stack([L, a, b], -1)))
    Image.fromarray(out).save(dst, format="PNG")


def cli_command() -> list[str]:
    exe = Path(sys.executable).parent / "chromalab"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "chromalab.cli"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--process-runs", type=int, default=5)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="chromalab-bench-"))
    os.environ["CHROMALAB_CACHE"] = str(tmp / "cache")  # an empty ONNX cache: the first run exports
    try:
        spec, desc = model_spec(args.model, tmp)
        one = tmp / "one.jpg"
        make_photo(one)
        gray = tmp / "gray.jpg"
        make_photo(gray, gray=True)
        out_dir = tmp / "out"
        out_dir.mkdir()

        # -- the whole process (first: cold cache; then warm) --------------------------------
        cmd = [*cli_command(), "colorize", str(one), "-o", str(out_dir / "cli"), "--overwrite", "--model", spec]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        first_s = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"colorize failed: {r.stderr.strip()[-500:]}")
        proc = []
        for _ in range(args.process_runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            proc.append(time.perf_counter() - t0)
        imp = subprocess.run([sys.executable, "-X", "importtime", "-m", "chromalab.cli", *cmd[len(cli_command()):]],
                             capture_output=True, text=True)
        heavy = sorted({ln.split("|")[-1].strip().split(".")[0] for ln in imp.stderr.splitlines()
                        if ln.startswith("import time:")} & {"torch", "lightning", "sklearn", "skimage", "kornia", "scipy"})

        # -- in process, model loaded ------------------------------------------------------------
        from PIL import Image

        from chromalab.inference import Colorizer, open_image

        t0 = time.perf_counter()
        col = Colorizer(spec)
        load_s = time.perf_counter() - t0
        ours = median_ms(lambda: col.colorize_file(one, out_dir / "a.png"), args.runs)
        ours_gray = median_ms(lambda: col.colorize_file(gray, out_dir / "g.png"), args.runs)
        pil = open_image(one)
        in_memory = median_ms(lambda: col.colorize_image(pil), args.runs)
        base = median_ms(lambda: baseline_pipeline(col, one, out_dir / "b.png"), args.runs)
        assert Image.open(out_dir / "a.png").size == (1024, 768)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(json.dumps({
        "benchmark": "latency",
        "model": desc,
        "backend": col.backend,
        "photo": "1024x768 JPEG (colour; scikit-image coffee resized)",
        "file_to_file_ms": round(ours, 1),
        "file_to_file_gray_jpeg_ms": round(ours_gray, 1),
        "in_memory_ms": round(in_memory, 1),
        "baseline_ms": round(base, 1),
        "ratio": round(base / ours, 2),
        "target_ms": 250,
        "process_first_run_s": round(first_s, 3),
        "process_median_s": round(statistics.median(proc), 3),
        "process_target_s": 1.0,
        "process_imports_heavy": heavy,
        "model_load_s": round(load_s, 3),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
