"""The real-photo report: docs/photos.md, docs/photos.json and its contact sheets, all measured here.

    python scripts/photos_report.py --photos ../shared/data/real-photos-dev.zip \\
        --data ../shared/data/tiny-imagenet-200-subset.zip --out docs

Every photo is scaled to 512 px on its long side, turned gray with its own L, colorized through the
public path and compared with the original (:mod:`chromalab.photos`; the same as
``chromalab evaluate MODEL --photos ...``). Rows: gray, the old regression model, the default before
issue 22 (``docs/provenance/photos/colornet_before.safetensors``) and the bundled default, each at
the settings users reach (default vividness, 0, 1; ``guided`` without and with hints; other work
sizes). ``--data`` adds the diagnosis of the floods (the scene branch's part in them); without it
that section is left out. Nothing in the page is typed by hand: every number comes from this run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BEFORE = ROOT / "docs/provenance/photos/colornet_before.safetensors"
N_WORST = 6
HINTS = 5
COLUMNS = ("gray PSNR", "PSNR", "gain dB", "beat gray", "floods", "worst dB", "SSIM", "cool recall", "ΔCF")


def _row(label: str, r: dict) -> str:
    return (f"| {label} | {r['psnr_gray']:.2f} | {r['psnr']:.2f} | {r['gain']:+.2f} | {r['beat_gray']:.0%} | "
            f"{r['floods']} ({r['flood_share']:.0%}) | {r['worst_gain']:+.1f} | {r['ssim']:.4f} | "
            f"{r['cool_recall']:.3f} | {r['delta_cf']:.2f} |")


def _head(first: str) -> list[str]:
    return [f"| {first} | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]


def skimage_photos():
    """scikit-image's colour photos (nature, people, objects): a second small set beside the dev set."""
    from skimage import data

    from chromalab.photos import Photo

    return [Photo(n, np.ascontiguousarray(a[..., :3])) for n, a in (
        ("astronaut", data.astronaut()), ("chelsea", data.chelsea()), ("coffee", data.coffee()),
        ("rocket", data.rocket()), ("motorcycle", data.stereo_motorcycle()[0]))]


def sized(photos, long_side: int):
    from PIL import Image

    from chromalab.photos import Photo

    out = []
    for p in photos:
        h, w = p.rgb.shape[:2]
        s = min(1.0, long_side / max(h, w))
        im = Image.fromarray(p.rgb).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
        out.append(Photo(p.name, np.asarray(im)))
    return out


def contact_sheet(path: Path, photos, names: list[str], columns: list[tuple[str, list[np.ndarray]]],
                  gains: list[dict[str, float]]) -> None:
    """One row per named photo: gray | each column's output | original, titled with the gains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = {p.name: i for i, p in enumerate(photos)}
    ncol = len(columns) + 2
    fig, axes = plt.subplots(len(names), ncol, figsize=(3.1 * ncol, 2.5 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        i = index[name]
        panels = [(photos[i].gray, f"gray: {Path(name).stem}")]
        panels += [(outs[i], f"{label}: {gains[c][name]:+.1f} dB") for c, (label, outs) in enumerate(columns)]
        panels.append((photos[i].rgb, "original"))
        for c, (img, title) in enumerate(panels):
            axes[r, c].imshow(img)
            axes[r, c].set_title(title, fontsize=9)
            axes[r, c].set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=65)
    plt.close(fig)


def diagnose(model_path: Path, photos, data, flood_names: list[str]) -> dict:
    """Evidence for the floods' cause on the model at ``model_path``: (1) the same model with its global
    scene feature replaced by that feature's mean over 2,000 Tiny ImageNet val images (the scene branch
    silenced), (2) how far the photos' global features lie from the val images' (in units of the val
    images' own spread), (3) for each flooded photo: the scene class the head names, its probability,
    and the regression head's mean a, b over the photo."""
    import torch
    from PIL import Image

    from chromalab.color import scale_L, unscale_ab
    from chromalab.data.cache import load_prepared
    from chromalab.data.labels import class_names
    from chromalab.data.source import Source
    from chromalab.inference.colorizer import Colorizer
    from chromalab.photos import evaluate_photos
    from chromalab.predictors.nets import load_net

    pred = load_net(model_path, name="before")
    net = pred.net
    prep = load_prepared(data, progress=False)
    val = prep.split("val", limit=2000)
    L = torch.from_numpy(np.array(val.lab[val.rows], dtype=np.float32)[:, :1])
    feats: list[torch.Tensor] = []
    hook = net.glob.register_forward_hook(lambda m, i, o: feats.append(o.detach().float()))
    with torch.inference_mode():
        for s in range(0, len(L), 250):
            net.heads(scale_L(L[s : s + 250]))
    g_val = torch.cat(feats)
    g_mean = g_val.mean(0)
    feats.clear()
    col = Colorizer(pred, backend="torch")
    base = evaluate_photos(col, photos, progress=False)
    hook.remove()
    g_photo = torch.cat(feats)
    spread = float((g_val - g_mean).norm(dim=1).mean())
    hook = net.glob.register_forward_hook(lambda m, i, o: g_mean.expand_as(o).clone())
    silenced = evaluate_photos(col, photos, progress=False)
    silenced_v0 = evaluate_photos(col, photos, vividness=0.0, progress=False)
    hook.remove()
    names = class_names(Source(prep.source["path"]))
    per = []
    index = {p.name: i for i, p in enumerate(photos)}
    for name in flood_names:
        p = photos[index[name]]
        item = col.prepare(Image.fromarray(p.gray))
        x = scale_L(torch.from_numpy(item.work[None, None].copy()))
        with torch.inference_mode():
            ab_reg, _, cls = net.heads(x)
        prob = torch.softmax(cls.float(), dim=1)[0]
        k = int(prob.argmax())
        ab = unscale_ab(ab_reg.float())[0]  # (2, h, w) Lab units
        per.append({"name": name, "class": names[k] if k < len(names) else str(k), "p": float(prob[k]),
                    "mean_a": float(ab[0].mean()), "mean_b": float(ab[1].mean())})
    keys = ("gain", "beat_gray", "floods", "cool_recall", "delta_cf")
    return {"base": {k: base[k] for k in keys}, "silenced": {k: silenced[k] for k in keys},
            "silenced_v0": {k: silenced_v0[k] for k in keys},
            "g_val_spread": spread, "g_photo_distance": float((g_photo - g_mean).norm(dim=1).mean()),
            "floods": per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, required=True, help="folder or zip of real colour photos")
    ap.add_argument("--data", default=None, help="Tiny ImageNet (for the diagnosis section)")
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--long-side", type=int, default=512)
    args = ap.parse_args()

    from chromalab.inference.colorizer import Colorizer
    from chromalab.photos import evaluate_photos, load_photos
    from chromalab.version import git_commit

    t0 = time.perf_counter()
    photos, excluded, failed = load_photos(args.photos, args.long_side)
    sk = sized(skimage_photos(), args.long_side)
    rows: dict[str, dict] = {}

    def run(key: str, model, photos_=photos, keep=False, **kw) -> dict:
        ws = kw.pop("work_size", None)
        col = Colorizer(str(model), work_size=ws)
        r = evaluate_photos(col, photos_, keep_outputs=keep, **kw)
        r["work_size"] = col.work_size
        rows[key] = r
        print(f"{key}: gain {r['gain']:+.3f} dB, beat {r['beat_gray']:.1%}, floods {r['floods']}, "
              f"cool {r['cool_recall']:.3f}, dCF {r['delta_cf']:.2f}", flush=True)
        return r

    run("gray", "gray")
    run("regression", "regression")
    before = run("before", BEFORE, keep=True)
    run("before_v0", BEFORE, vividness=0.0)
    run("before_v1", BEFORE, vividness=1.0)
    run("before_ws128", BEFORE, work_size=128)
    after = run("default", "default", keep=True)
    run("default_v0", "default", vividness=0.0)
    run("default_v1", "default", vividness=1.0)
    run("default_ws128", "default", work_size=128)
    run("guided", "guided")
    run(f"guided_{HINTS}", "guided", hints=HINTS)
    run("sk_before", BEFORE, sk)
    run("sk_default", "default", sk)
    run("sk_default_v1", "default", sk, vividness=1.0)

    figs = args.out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    g_before = {r["name"]: r["gain"] for r in before["per_photo"]}
    g_after = {r["name"]: r["gain"] for r in after["per_photo"]}
    worst_before = sorted(g_before, key=g_before.get)[:N_WORST]  # type: ignore[arg-type]
    worst_after = sorted(g_after, key=g_after.get)[:N_WORST]  # type: ignore[arg-type]
    cols = [("before", before["outputs"]), ("now", after["outputs"])]
    contact_sheet(figs / "photos_worst_before.png", photos, worst_before, cols, [g_before, g_after])
    contact_sheet(figs / "photos_worst_now.png", photos, worst_after, cols, [g_before, g_after])

    diag = None
    if args.data:
        floods = [r["name"] for r in before["per_photo"] if r["gain"] < -3.0]
        diag = diagnose(BEFORE, photos, args.data, floods)

    for r in rows.values():
        r.pop("outputs", None)
    seconds = time.perf_counter() - t0
    record = {"photos": str(args.photos), "count": len(photos), "excluded": excluded, "unreadable": len(failed),
              "long_side": args.long_side, "commit": git_commit(), "machine": platform.processor() or platform.machine(),
              "seconds": round(seconds, 1), "rows": rows, "diagnosis": diag,
              "worst_before": worst_before, "worst_now": worst_after}
    (args.out / "photos.json").write_text(json.dumps(record, indent=1))
    (args.out / "photos.md").write_text(page(record, args))
    print(f"wrote {args.out / 'photos.md'} in {seconds:.0f} s")


def page(rec: dict, args) -> str:
    rows = rec["rows"]
    label = {
        "gray": "gray (leave it gray)", "regression": "`regression` (the study's U-Net)",
        "before": "default before issue 22, its default vividness", "before_v0": "before, vividness 0",
        "before_v1": "before, vividness 1", "before_ws128": "before, work size 128",
        "default": "**default now**", "default_v0": "default now, vividness 0",
        "default_v1": "default now, vividness 1", "default_ws128": "default now, work size 128",
        "guided": "`guided`, no hints", f"guided_{HINTS}": f"`guided`, {HINTS} simulated hints",
    }
    L = ["# Real photos: what users see", "",
         "Generated by `python scripts/photos_report.py --photos ../shared/data/real-photos-dev.zip "
         "--data ../shared/data/tiny-imagenet-200-subset.zip --out docs` "
         f"(commit {rec['commit'] or '?'}, {rec['seconds']:.0f} s on {rec['machine']}); the same numbers come from "
         "`chromalab evaluate MODEL --photos PHOTOS` one row at a time. Do not edit by hand.", "",
         f"**The procedure** (docs/metrics.md, \"Real photos\"): each of the {rec['count']} photos of the dev set "
         f"(`real-photos-dev.zip`: buildings and streets of Urban100 and the 12 Set14 images) is scaled to "
         f"{rec['long_side']} px on its long side, turned gray with its own L, colorized through the public "
         "path (`chromalab.colorize`'s Colorizer: the model's working size, its default settings unless the "
         "row says otherwise) and compared with the original. A **flood** is a photo more than 3 dB below "
         "its gray version. Cool recall and ΔCF pool every pixel of every photo.", "",
         "## The dev set", ""]
    L += _head("model, setting")
    for k in ("gray", "regression", "before", "before_v0", "before_v1", "before_ws128", "default", "default_v0",
              "default_v1", "default_ws128", "guided", f"guided_{HINTS}"):
        if k in rows:
            L.append(_row(label[k], rows[k]))
    L += ["", "`guided` with no hints is the default model itself; with hints, each photo gets "
          f"{HINTS} points at random pixels with the photo's true colour there (fixed seed).", "",
          "## scikit-image's photos", "",
          "astronaut, chelsea (cat), coffee, rocket, motorcycle: people, an animal, objects, a night sky.", ""]
    L += _head("model")
    for k, lab in (("sk_before", "default before issue 22"), ("sk_default", "**default now**"),
                   ("sk_default_v1", "default now, vividness 1")):
        L.append(_row(lab, rows[k]))
    L += ["", "## The six worst photos", "",
          "Before (the six photos the old default did worst on): gray | before | now | original.", "",
          "![worst before](figures/photos_worst_before.png)", "",
          "Now (the six the current default does worst on), the same columns:", "",
          "![worst now](figures/photos_worst_now.png)", ""]
    d = rec.get("diagnosis")
    if d:
        b, s, s0 = d["base"], d["silenced"], d["silenced_v0"]
        L += ["## Why the old default flooded photos: the evidence", "",
              "Measured on the old default (`colornet_before.safetensors`) and the dev set by this script.", "",
              f"1. **The scene branch pushes one colour over everything.** Replace the global scene feature by its "
              f"mean over 2,000 Tiny ImageNet val images (the branch silenced, everything else the same): floods "
              f"{b['floods']} -> {s['floods']} at the default vividness and {s0['floods']} at vividness 0; mean gain "
              f"{b['gain']:+.2f} -> {s['gain']:+.2f} dB. But cool recall falls {b['cool_recall']:.3f} -> "
              f"{s['cool_recall']:.3f}: the same branch is where the right blues and greens come from, so it "
              "cannot just be removed.",
              f"2. **Real photos drive that feature outside what training saw.** The photos' global features lie "
              f"{d['g_photo_distance']:.1f} from the val mean, against {d['g_val_spread']:.1f} for the val images "
              "themselves (mean Euclidean distance): a whole street squeezed to 64 px is not one centred object.",
              "3. **The flooded photos, one by one** (the scene class the head names, its probability, and the "
              "regression head's mean a, b over the photo, Lab units; a > 15 is a strong red):", "",
              "| photo | scene class | p | mean a | mean b |", "|---|---|---|---|---|"]
        for f in d["floods"]:
            L.append(f"| {Path(f['name']).stem} | {f['class']} | {f['p']:.2f} | {f['mean_a']:+.1f} | "
                     f"{f['mean_b']:+.1f} |")
        L += ["", "4. **Not the colour classes alone, and not only the scale.** At vividness 0 (the regression head "
              f"alone, no colour classes) the old default still floods {rows['before_v0']['floods']} photos; "
              f"at work size 128 (objects twice as large) {rows['before_ws128']['floods']}.", ""]
    L += ["## What changed (issue 22)", "",
          "The default was trained further on **scene-like inputs** (`training/scenes.py`): 4 Tiny ImageNet images "
          "in one frame with their class targets mixed by area (so the scene head learns to be unsure when a "
          "frame holds several things), zooms, blur, grain, JPEG and tone changes of the input L; and its "
          "checkpoint was chosen with the real dev photos beside Tiny ImageNet val (`--set photos=...`). "
          "The command, images seen and the choice: [provenance/default_model.md](provenance/default_model.md).", ""]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
