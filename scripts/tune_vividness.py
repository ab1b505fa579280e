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

With ``--photos`` (real colour photos: issue 22; written before the first run that used them), the
photos (at 512 px, :mod:`chromalab.photos`) come first and the rules are instead:

1. ``t_vivid``: of those with val ΔCF at most 3, the one with the highest mean photo gain over gray
   at vividness 1; if none has ΔCF at most 3, the highest photo gain at vividness 1 of all.
2. For each ``t_blend``, the default vividness is the largest v of 0, 0.1, ..., 1 with val PSNR at
   least gray + 0.9 dB and, on the photos, a mean gain of at least +0.5 dB, at least 75 % of photos
   above gray and at most 2 % flooded (more than 3 dB below gray); when no v has all of them, the v
   with the highest photo gain.
3. ``t_blend``: the one whose default has the highest photo cool recall.
4. The working size (the long side the net sees, stored as the file's ``input_size``): of 64, 96
   and 128, the one with the highest photo gain at the chosen decoding, among those with no more
   floods than 64 and a photo cool recall no more than 0.02 below 64's; ties go to the smaller.

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
    ap.add_argument("--photos", type=Path, default=None, help="real colour photos (folder or zip): the rules "
                    "that put them first")
    ap.add_argument("--photos-long-side", type=int, default=512)
    args = ap.parse_args()
    if args.photos is not None:
        return tune_with_photos(args)

    from chromalab.data.cache import load_prepared
    from chromalab.evaluate import evaluate_split
    from chromalab.frontier import heads_over, metrics_at
    from chromalab.predictors.baselines import GrayPredictor
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
    _save(args, net, choice)


WORK_SIZES = (64, 96, 128)
PHOTO_V_GRID = tuple(round(v, 1) for v in np.arange(0, 1.0001, 0.1))


def tune_with_photos(args) -> None:
    """The rules with ``--photos`` (see the module notes)."""
    from chromalab.data.cache import load_prepared
    from chromalab.evaluate import evaluate_split
    from chromalab.frontier import heads_over, metrics_at
    from chromalab.photos import load_photos, photo_heads, photo_metrics_at
    from chromalab.predictors.baselines import GrayPredictor
    from chromalab.registry import load_predictor

    pred = load_predictor(args.model)
    net = pred.net
    val = load_prepared(args.data).split("val")
    gray = evaluate_split(GrayPredictor(), val, progress=False)
    floor = gray["psnr"] + 0.9
    heads = heads_over(net, val)
    photos, _, _ = load_photos(args.photos, args.photos_long_side, progress=False)
    ph = photo_heads(net, photos)

    def both(v: float, tb: float, tv: float) -> dict:
        r = metrics_at(net, heads, v, t_blend=tb, t_vivid=tv)
        p = photo_metrics_at(net, ph, photos, v, t_blend=tb, t_vivid=tv)
        return {**r, "photos": {k: p[k] for k in ("gain", "beat_gray", "floods", "flood_share", "cool_recall",
                                                  "delta_cf", "worst_gain")}}

    tv_rows = [both(1.0, net.t_blend, t) for t in T_VIVID_GRID]
    for r in tv_rows:
        print(f"t_vivid {r['t_vivid']}: val dCF {r['delta_cf']:.2f} PSNR {r['psnr']:.3f}; photos at v 1: "
              f"gain {r['photos']['gain']:+.3f}, floods {r['photos']['floods']}", flush=True)
    ok = [r for r in tv_rows if r["delta_cf"] <= 3.0] or tv_rows
    t_vivid = max(ok, key=lambda r: r["photos"]["gain"])["t_vivid"]

    per_blend = {}
    for tb in T_BLEND_GRID:
        rows = [both(v, tb, t_vivid) for v in PHOTO_V_GRID]
        for r in rows:
            p = r["photos"]
            print(f"t_blend {tb} v {r['vividness']:.1f}: val {r['psnr']:.3f} dB cool {r['cool_recall']:.3f}; photos "
                  f"gain {p['gain']:+.3f} beat {p['beat_gray']:.0%} floods {p['floods']} cool {p['cool_recall']:.3f}",
                  flush=True)
        good = [r for r in rows if r["psnr"] >= floor and r["photos"]["gain"] >= 0.5
                and r["photos"]["beat_gray"] >= 0.75 and r["photos"]["flood_share"] <= 0.02]
        if good:
            best = max(good, key=lambda r: r["vividness"])
            rule = "largest v with val psnr >= gray + 0.9 dB, photo gain >= 0.5 dB, beat >= 75 %, floods <= 2 %"
        else:
            best = max(rows, key=lambda r: r["photos"]["gain"])
            rule = "no v meets every photo and val bar: the highest photo gain"
        per_blend[tb] = {"rows": rows, "default": best, "rule": rule}
        print(f"t_blend {tb}: default v {best['vividness']:.1f} ({rule})", flush=True)
    t_blend = max(per_blend, key=lambda tb: per_blend[tb]["default"]["photos"]["cool_recall"])
    chosen = per_blend[t_blend]["default"]
    net.t_blend, net.t_vivid, net.vividness = float(t_blend), float(t_vivid), float(chosen["vividness"])

    ws_rows = []
    for ws in WORK_SIZES:
        p = photo_metrics_at(net, ph if ws == 64 else photo_heads(net, photos, work_size=ws), photos, net.vividness)
        ws_rows.append({"work_size": ws, **{k: p[k] for k in ("gain", "beat_gray", "floods", "cool_recall",
                                                              "delta_cf")}})
        print(f"work size {ws}: photo gain {p['gain']:+.3f}, floods {p['floods']}, cool {p['cool_recall']:.3f}",
              flush=True)
    base = ws_rows[0]
    ok_ws = [r for r in ws_rows if r["floods"] <= base["floods"] and r["cool_recall"] >= base["cool_recall"] - 0.02]
    work_size = max(ok_ws, key=lambda r: (round(r["gain"], 3), -r["work_size"]))["work_size"]
    choice = {
        "split": "val", "count": gray["count"], "gray_psnr": gray["psnr"], "gray_ssim": gray["ssim"],
        "photos": str(args.photos.name), "photos_count": len(photos), "photos_long_side": args.photos_long_side,
        "t_vivid_grid": tv_rows, "t_vivid": t_vivid, "t_blend": t_blend, "vividness": net.vividness,
        "sweeps": {str(tb): d for tb, d in per_blend.items()}, "work_sizes": ws_rows, "work_size": work_size,
        "rules": __doc__.split("With ``--photos``")[1].strip(),
    }
    _save(args, net, choice, input_size=work_size)


def _save(args, net, choice: dict, input_size: int | None = None) -> None:
    from chromalab.predictors.nets import read_meta, save_net

    meta = read_meta(_weights_of(args.model))
    meta["arch_kwargs"] = net.arch_kwargs
    if input_size is not None:
        meta["input_size"] = int(input_size)
    keys = ("t_vivid", "t_blend", "vividness", "gray_psnr", "count", "photos", "photos_count", "work_size")
    meta["vividness_choice"] = {k: choice[k] for k in keys if k in choice}
    meta["name"] = args.out.stem
    save_net(args.out, net.cpu().float().eval(), meta)
    print(f"chose t_vivid {net.t_vivid}, t_blend {net.t_blend}, default vividness {net.vividness} -> {args.out}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(choice, indent=1))


def _weights_of(spec: str) -> Path:
    p = Path(spec)
    return p / "best.safetensors" if p.is_dir() else p


if __name__ == "__main__":
    main()
