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
    from chromalab.photos import Photo, fit_long_side

    return [Photo(p.name, fit_long_side(p.rgb, long_side)) for p in photos]


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
    """Evidence for the floods' cause on the model at ``model_path`` (vividness: its default):

    1. the scene branch: the global scene feature replaced by its mean over 2,000 Tiny ImageNet val
       images (the branch silenced), at the default vividness and at 0;
    2. the scale: the same photos seen at work sizes 128 and 192 (objects 2x and 3x larger), and at
       64 after a Gaussian blur of 1.2 px (less detail);
    3. the features' range: how far the photos' global features lie from the val images' mean, in
       units of the val images' own mean distance;
    4. each flooded photo: the scene class the head names, its probability, and the regression
       head's mean a, b over the photo (Lab units).
    """
    import torch
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    from chromalab.color import scale_L, unscale_ab
    from chromalab.data.cache import load_prepared
    from chromalab.data.labels import class_names
    from chromalab.data.source import Source
    from chromalab.nets.colornet import vivid_decode
    from chromalab.photos import photo_heads, photo_metrics_at, score
    from chromalab.predictors.nets import load_net

    net = load_net(model_path, name="before").net
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
    ph = photo_heads(net, photos)
    hook.remove()
    g_photo = torch.cat(feats)
    spread = float((g_val - g_mean).norm(dim=1).mean())
    keys = ("gain", "beat_gray", "floods", "cool_recall", "delta_cf")
    out: dict = {"base": {k: v for k, v in photo_metrics_at(net, ph, photos, net.vividness).items() if k in keys}}
    hook = net.glob.register_forward_hook(lambda m, i, o: g_mean.expand_as(o).clone())
    silenced = photo_heads(net, photos)
    hook.remove()
    for name, v in (("silenced", net.vividness), ("silenced_v0", 0.0)):
        out[name] = {k: x for k, x in photo_metrics_at(net, silenced, photos, v).items() if k in keys}
    for ws in (128, 192):
        r = photo_metrics_at(net, photo_heads(net, photos, work_size=ws), photos, net.vividness)
        out[f"ws{ws}"] = {k: r[k] for k in keys}
    col, items, _ = ph
    outs = []
    with torch.inference_mode():
        for it in items:
            x = gaussian_filter(it.work, 1.2).astype(np.float32)
            reg, lg, _ = net.heads(torch.from_numpy(scale_L(x[None, None])))
            ab = unscale_ab(vivid_decode(reg, lg, net.centres, net.vividness, net.t_blend, net.t_vivid,
                                         net.out_stride))[0]
            outs.append(col.finish_array(it, ab.numpy())[..., :3])
    r = score(photos, outs, ssim=False)
    out["blur"] = {k: r[k] for k in keys}
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
    out.update(g_val_spread=spread, g_photo_distance=float((g_photo - g_mean).norm(dim=1).mean()), floods=per)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, required=True, help="folder or zip of real colour photos")
    ap.add_argument("--data", default=None, help="Tiny ImageNet (for the diagnosis section)")
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--long-side", type=int, default=512)
    ap.add_argument("--page-only", action="store_true", help="rewrite photos.md from the photos.json in --out "
                    "(after a change of wording; no number is measured again)")
    args = ap.parse_args()
    if args.page_only:
        rec = json.loads((args.out / "photos.json").read_text())
        (args.out / "photos.md").write_text(page(rec, args))
        return

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
        r["vividness"] = kw.get("vividness", col.vividness)
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
    run("default_ws64", "default", work_size=64)
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

    def settings(k: str) -> str:
        return f"vividness {rows[k]['vividness']:g}, work size {rows[k]['work_size']}"

    label = {
        "gray": "gray (leave it gray)", "regression": "`regression` (the study's U-Net)",
        "before": f"default before issue 22 ({settings('before')})", "before_v0": "before, vividness 0",
        "before_v1": "before, vividness 1", "before_ws128": "before, work size 128",
        "default": f"**default now** ({settings('default')})", "default_v0": "default now, vividness 0",
        "default_v1": "default now, vividness 1", "default_ws64": "default now, work size 64",
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
              "default_v1", "default_ws64", "guided", f"guided_{HINTS}"):
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
        w1, w2, bl = d["ws128"], d["ws192"], d["blur"]
        ratio = d["g_photo_distance"] / d["g_val_spread"]
        L += ["## Why the old default flooded photos: the evidence", "",
              "Measured on the old default (`colornet_before.safetensors`, its default vividness unless said) "
              "and the dev set by this script.", "",
              "| what was changed | gain dB | beat gray | floods | cool recall |", "|---|---|---|---|---|"]
        for lab, r in (("nothing (work size 64)", b), ("work size 128: objects 2x larger", w1),
                       ("work size 192: objects 3x larger", w2), ("work size 64, L blurred by 1.2 px", bl),
                       ("scene feature replaced by its val mean", s), ("the same, vividness 0", s0)):
            L.append(f"| {lab} | {r['gain']:+.2f} | {r['beat_gray']:.0%} | {r['floods']} | {r['cool_recall']:.3f} |")
        L += ["",
              f"1. **Scale: the model floods where it cannot see what things are.** Seen larger, the same photos "
              f"flood less ({b['floods']} -> {w1['floods']} -> {w2['floods']} from work size 64 to 128 to 192); "
              f"with the detail blurred away, far more ({bl['floods']}). A whole scene squeezed to 64 px leaves "
              "objects a few pixels wide, smaller than anything in the 64-px object crops it was trained on.",
              f"2. **The scene branch spreads one colour over the picture.** With the global scene feature "
              f"silenced (replaced by its mean over 2,000 Tiny ImageNet val images) floods go {b['floods']} -> "
              f"{s['floods']} ({s0['floods']} at vividness 0), but cool recall falls {b['cool_recall']:.3f} -> "
              f"{s['cool_recall']:.3f}: the same branch gives the right blues and greens, so it cannot simply "
              "be removed.",
              f"3. **Features out of range? Not by this measure.** The photos' global features lie "
              f"{d['g_photo_distance']:.1f} from the val mean, against {d['g_val_spread']:.1f} for the val "
              f"images themselves (ratio {ratio:.2f}): "
              + ("well outside what training saw." if ratio > 1.2 else "inside the spread of the training "
                 "domain, so the floods are confident answers to inputs that look familiar to the net."),
              f"4. **Not the colour classes alone.** At vividness 0 (the regression head alone) the old default "
              f"still floods {rows['before_v0']['floods']} photos.",
              "5. **The flooded photos, one by one** (the scene class the head names, its probability, and the "
              "regression head's mean a, b over the photo, Lab units: a > 0 is red, b > 0 yellow):", "",
              "| photo | scene class | p | mean a | mean b |", "|---|---|---|---|---|"]
        for f in d["floods"]:
            L.append(f"| {Path(f['name']).stem} | {f['class']} | {f['p']:.2f} | {f['mean_a']:+.1f} | "
                     f"{f['mean_b']:+.1f} |")
        L.append("")
    b0, d0 = rows["before"], rows["default"]
    L += ["## What changed (issue 22)", "",
          f"On the dev set the default went from {b0['gain']:+.2f} dB over gray, {b0['beat_gray']:.0%} of photos "
          f"above gray and {b0['floods']} floods to {d0['gain']:+.2f} dB, {d0['beat_gray']:.0%} and {d0['floods']} "
          f"floods (cool recall {b0['cool_recall']:.3f} -> {d0['cool_recall']:.3f}); on scikit-image's photos from "
          f"{rows['sk_before']['gain']:+.2f} to {rows['sk_default']['gain']:+.2f} dB. The floods that remain are "
          "milder: a warm, sepia-like tint over near-neutral buildings whose originals are almost gray (the "
          "contact sheets above), where any colour costs several dB. Issue 22's bars (+0.5 dB, 75 % above gray, "
          "at most 2 % floods, cool recall 0.35, vividness 1 above -1 dB) are not all met here: see the numbers "
          "above.", "",
          "The default was trained further on **scene-like inputs** (`training/scenes.py`): 4 Tiny ImageNet images "
          "in one frame with their class targets mixed by area (so the scene head learns to be unsure when a "
          "frame holds several things), zooms, blur, grain, JPEG and tone changes of the input L; and its "
          "checkpoint was chosen with the real dev photos beside Tiny ImageNet val (`--set photos=...`). "
          "The command, images seen and the choice: [provenance/default_model.md](provenance/default_model.md).", ""]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
