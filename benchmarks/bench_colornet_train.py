"""Claim: a training step of the default model (ColorNet, the `full` preset's `colornet` section: three
losses and simulated hints) costs R times a step of the plain U-Net of the same width and depth.

Both steps are measured alternately in the same run, on the same (B, 1, 64, 64) batches of
real train images (bf16-mixed autocast and channels-last, as the preset trains; AdamW): the
ColorNet step is ``ColorNetModule.training_step`` itself (hint simulation, rebalanced
cross-entropy over 261 bins at 1/4 resolution, L1 regression, 200-way class head); the U-Net
step is L1 on its output. Best of the rounds is kept (the least disturbed sample on a shared
CPU). Prints one JSON line: images/s of each and ``ratio`` = ColorNet img/s / U-Net img/s.

    python benchmarks/bench_colornet_train.py --data ../shared/data/tiny-imagenet-200-subset.zip [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
import torch

from chromalab.color import scale_ab, scale_L
from chromalab.data.cache import load_prepared
from chromalab.nets import ColorNet, UNet
from chromalab.training.colornet import ColorNetModule
from chromalab.training.run import resolve_config


def timed(fn, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # self.log outside a Trainer
    cfg = resolve_config("colornet", None, "full")
    b = cfg.batch_size
    split = load_prepared(args.data, progress=False).split("train", limit=b)
    L_np, ab_np, _ = split.arrays()
    L, ab = torch.from_numpy(L_np), torch.from_numpy(ab_np)
    label = torch.randint(0, cfg.n_classes, (b,))

    torch.manual_seed(0)
    net = ColorNet(width=cfg.width, depth=cfg.depth, n_classes=cfg.n_classes, hints=cfg.hints,
                   out_stride=cfg.out_stride)
    module = ColorNetModule(net, np.ones(net.n_bins), ce_weight=cfg.ce_weight, reg_weight=cfg.reg_weight,
                            class_weight=cfg.class_weight, hint_p_none=cfg.hint_p_none, hint_p_geom=cfg.hint_p_geom,
                            hint_max=cfg.hint_max, channels_last=True)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    unet = UNet(width=cfg.width, depth=cfg.depth).to(memory_format=torch.channels_last)
    uopt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    x = scale_L(L).contiguous(memory_format=torch.channels_last)

    def colornet_step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module.training_step((L, ab, label), 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def unet_step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = unet(x)
        loss = torch.nn.functional.l1_loss(out.float(), scale_ab(ab))
        uopt.zero_grad(set_to_none=True)
        loss.backward()
        uopt.step()

    colornet_step()
    unet_step()
    best = {"colornet": float("inf"), "unet": float("inf")}
    for _ in range(args.rounds):
        best["colornet"] = min(best["colornet"], timed(colornet_step, args.steps))
        best["unet"] = min(best["unet"], timed(unet_step, args.steps))
    ips = {k: b / v for k, v in best.items()}
    print(json.dumps({
        "benchmark": "colornet_train_throughput", "batch": b, "threads": torch.get_num_threads(),
        "colornet_images_per_second": round(ips["colornet"], 1), "unet_images_per_second": round(ips["unet"], 1),
        "ratio": round(ips["colornet"] / ips["unet"], 3),
        "colornet_parameters": sum(p.numel() for p in net.parameters()),
        "unet_parameters": sum(p.numel() for p in unet.parameters()),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
