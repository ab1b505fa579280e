"""Fast path (onnxruntime) vs eager torch: throughput at batch 256 of 64x64, same net, same run.

    python benchmarks/bench_fastpath.py [--model SPEC] [--batch 256] [--repeats 3]

Without ``--model`` the net is a U-Net of the likely default size (width 32, depth 4) with
random weights (the speed does not depend on the values). Both paths run the net through
``chromalab.inference`` backends exactly as colorization does (L in Lab units -> ab), after
one warm-up batch each; the median batch time of ``--repeats`` is reported. The outputs are
compared too (max |onnx - torch| in scaled ab units; the claim is <= 1e-4).

Prints one JSON line; ``ratio`` = eager seconds / fast-path seconds (target >= 2), wall clock;
``cpu_time_ratio`` is the same from process CPU time, steadier on a busy machine (with
``--threads 1`` it compares the work per core).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time


def build_net(width: int, depth: int):
    try:  # the project's builder, when present
        from chromalab.predictors.nets import build_net as _build

        return _build("unet", width=width, depth=depth)
    except ImportError:
        from chromalab.nets.unet import UNet

        return UNet(width=width, depth=depth)


def timed(fn, x, repeats: int) -> tuple[float, float, object]:
    """(median wall seconds, median CPU seconds of this process, output) after one warm-up."""
    out = fn(x)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(x)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None, help="registry name, run folder or weights file (default: random U-Net)")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="threads for both (default: each library's own)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from chromalab import inference
    from chromalab.color import AB_SCALE, L_MAX

    if args.model:
        from chromalab.registry import load_predictor

        net = load_predictor(args.model, progress=False).net
        label = args.model
    else:
        torch.manual_seed(0)
        net = build_net(args.width, args.depth)
        label = f"unet width={args.width} depth={args.depth} (random weights)"
    net.eval()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_params = sum(p.numel() for p in net.parameters())
    fast = inference.OrtBackend(inference.export_onnx(net), threads=args.threads)
    eager = inference.TorchBackend(net)
    eager_cl = inference.TorchBackend(net, channels_last=True)

    rng = np.random.default_rng(0)
    L = (rng.random((args.batch, 1, args.size, args.size), dtype=np.float32) * L_MAX).astype(np.float32)
    t_eager, c_eager, ab_eager = timed(eager.predict_ab, L, args.repeats)
    t_cl, _, _ = timed(eager_cl.predict_ab, L, args.repeats)
    t_fast, c_fast, ab_fast = timed(fast.predict_ab, L, args.repeats)
    diff = float(np.abs(ab_fast - ab_eager).max()) / AB_SCALE
    print(json.dumps({
        "benchmark": "fastpath",
        "model": label,
        "params": n_params,
        "batch": args.batch,
        "size": args.size,
        "eager_torch_s": round(t_eager, 3),
        "eager_torch_channels_last_s": round(t_cl, 3),
        "onnxruntime_s": round(t_fast, 3),
        "eager_img_per_s": round(args.batch / t_eager, 1),
        "onnx_img_per_s": round(args.batch / t_fast, 1),
        "ratio": round(t_eager / t_fast, 2),
        "target_ratio": 2.0,
        "cpu_time_ratio": round(c_eager / c_fast, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "max_abs_diff_scaled": diff,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
