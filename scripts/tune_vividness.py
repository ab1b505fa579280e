"""Choose a ColorNet's decoding on the validation split and write the weights file to ship.

    python scripts/tune_vividness.py RUN_OR_WEIGHTS --data ../shared/data/tiny-imagenet-200-subset.zip \
        --out src/chromalab/weights/default.safetensors --json docs/vividness_choice.json

The rules (the test split is never looked at):

1. ``t_vivid`` (the temperature at vividness 1): of the grid, the one with the best val PSNR
   among those whose val ΔCF is at most 3 (the colourfulness of the originals); if none, the
   smallest ΔCF.
2. For each ``t_blend`` of its grid, the default vividness is the largest v of 0, 0.05, ..., 1
   whose val PSNR is at least gray + 1.0 dB with ΔCF at most 15; when no v has both, the
   largest v within 0.25 dB of v = 0's PSNR. (Until commit d39ae75 this line said "when even
   v = 0 misses gray + 1.0 dB"; the code has always applied the fallback whenever no v has both.)
3. ``t_blend``: the one whose default has the highest val cool recall.

The chosen values are stored in the file (``arch_kwargs``: vividness, t_blend, t_vivid), with the
whole sweep in its metadata (``vividness_choice``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

T_VIVID_GRID = (0.1, 0.15, 0.2, 0.25, 0.3, 0.38, 0.5)
T_BLEND_GRID = (0.38, 0.5, 0.7, 1.0)
V_GRID = tuple(round(v, 2) for v in np.arange(0, 1.0001, 0.05))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="run folder or .safetensors of a ColorNet")
    ap.add_argument("--data", default=None, help="Tiny ImageNet zip/folder (or $CHROMALAB_DATA)")
    ap.add_argument("--out", required=True, type=Path, help="weights file to write")
    ap.add_argument("--json", type=Path, default=None, help="also write the sweep here")
    args = ap.parse_args()

    from chromalab.data.cache import load_prepared
    from chromalab.evaluate import evaluate_split
    from chromalab.frontier import heads_over, metrics_at
    from chromalab.predictors.baselines import GrayPredictor
    from chromalab.predictors.nets import read_meta, save_net
    from chromalab.registry import load_predictor

    pred = load_predictor(args.model)
    net = pred.net
    val = load_prepared(args.data).split("val")
    gray = evaluate_split(GrayPredictor(), val, progress=False)
    floor = gray["psnr"] + 1.0
    heads = heads_over(net, val)

    tv_rows = [metrics_at(net, heads, 1.0, t_vivid=t) for t in T_VIVID_GRID]
    ok = [r for r in tv_rows if r["delta_cf"] <= 3.0]
    t_vivid = max(ok, key=lambda r: r["psnr"])["t_vivid"] if ok else min(tv_rows, key=lambda r: r["delta_cf"])["t_vivid"]

    per_blend = {}
    for tb in T_BLEND_GRID:
        rows = [metrics_at(net, heads, v, t_blend=tb, t_vivid=t_vivid) for v in V_GRID]
        good = [r for r in rows if r["psnr"] >= floor and r["delta_cf"] <= 15.0]
        rule = "psnr >= gray + 1.0 dB and delta_cf <= 15"
        if not good:
            good = [r for r in rows if r["psnr"] >= rows[0]["psnr"] - 0.25]
            rule = "no v has psnr >= gray + 1.0 dB with delta_cf <= 15: within 0.25 dB of v = 0"
        best = max(good, key=lambda r: r["vividness"])
        per_blend[tb] = {"rows": rows, "default": best, "rule": rule}
        print(f"t_blend {tb}: default v {best['vividness']:.2f} ({rule}): PSNR {best['psnr']:.3f}, "
              f"dCF {best['delta_cf']:.2f}, cool {best['cool_recall']:.3f}, AuC rb {best['auc_rb']:.4f}")
    t_blend = max(per_blend, key=lambda tb: per_blend[tb]["default"]["cool_recall"])
    chosen = per_blend[t_blend]["default"]
    net.t_blend, net.t_vivid, net.vividness = float(t_blend), float(t_vivid), float(chosen["vividness"])

    choice = {
        "split": "val", "count": gray["count"], "gray_psnr": gray["psnr"], "gray_ssim": gray["ssim"],
        "t_vivid_grid": tv_rows, "t_vivid": t_vivid, "t_blend": t_blend, "vividness": net.vividness,
        "sweeps": {str(tb): d for tb, d in per_blend.items()}, "rules": __doc__.split("The rules")[1].strip(),
    }
    meta = read_meta(_weights_of(args.model))
    meta["arch_kwargs"] = net.arch_kwargs
    meta["vividness_choice"] = {k: choice[k] for k in ("t_vivid", "t_blend", "vividness", "gray_psnr", "count")}
    meta["name"] = args.out.stem
    save_net(args.out, net.cpu().float().eval(), meta)
    print(f"chose t_vivid {t_vivid}, t_blend {t_blend}, default vividness {net.vividness} -> {args.out}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(choice, indent=1))


def _weights_of(spec: str) -> Path:
    p = Path(spec)
    return p / "best.safetensors" if p.is_dir() else p


if __name__ == "__main__":
    main()
