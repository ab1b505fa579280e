"""The colour report: docs/colour.md, docs/colour.json and its figures, all measured by this script.

    python scripts/colour_report.py --data ../shared/data/tiny-imagenet-200-subset.zip --out docs

On the test split: the bundled models beside the trivial answers (gray), the default model's
frontier across vividness (PSNR against ΔCF, cool recall, AuC), and the guided model with N
simulated ground-truth hints; on real photos (scikit-image's): gray | default | most vivid |
original. Nothing in the page is typed by hand: every number comes from this run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from chromalab.results import colour_table_head, colour_table_row

V_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
HINT_COUNTS = (0, 1, 2, 5, 10, 20)
HEAD = colour_table_head("model")


def _row(name: str, m: dict) -> str:
    return colour_table_row(name, metrics=m)


def real_photos():
    from skimage import data

    return [("astronaut", data.astronaut()), ("coffee", data.coffee()), ("chelsea", data.chelsea()),
            ("rocket", data.rocket()), ("motorcycle", data.stereo_motorcycle()[0]),
            ("hubble", data.hubble_deep_field()[:600, :600])]


def photo_figure(path: Path) -> list[dict]:
    """gray | default | most vivid | original for each photo -> PNG; returns per-photo colourfulness."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    import chromalab
    from chromalab.metrics import colorfulness_per_image

    photos = real_photos()
    fig, axes = plt.subplots(len(photos), 4, figsize=(12, 2.9 * len(photos)))
    stats = []
    for r, (name, rgb) in enumerate(photos):
        im = Image.fromarray(rgb)
        gray = np.asarray(im.convert("L").convert("RGB"))
        dflt = np.asarray(chromalab.colorize(im, model="default"))
        viv = np.asarray(chromalab.colorize(im, model="default", vividness=1.0))
        for c, (img, title) in enumerate(((gray, "gray input"), (dflt, "default"), (viv, "vividness 1"),
                                          (rgb, "original"))):
            axes[r, c].imshow(img)
            axes[r, c].set_axis_off()
            if r == 0:
                axes[r, c].set_title(title)
        cf = colorfulness_per_image(np.stack([dflt[..., :3], viv[..., :3], rgb[..., :3]]))
        stats.append({"photo": name, "size": list(rgb.shape[:2]), "cf_default": float(cf[0]),
                      "cf_vivid": float(cf[1]), "cf_original": float(cf[2])})
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--limit", type=int, default=None, help="only the first N test images (a smoke run)")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chromalab.data.cache import load_prepared
    from chromalab.evaluate import evaluate_split
    from chromalab.frontier import heads_over, label_frontier_axes, sweep
    from chromalab.predictors.hinted import SimulatedHints
    from chromalab.predictors.nets import read_meta
    from chromalab.registry import REGISTRY, load_predictor
    from chromalab.version import git_commit

    t0 = time.perf_counter()
    prep = load_prepared(args.data)
    test = prep.split("test", limit=args.limit)
    figs = args.out / "figures"
    figs.mkdir(parents=True, exist_ok=True)

    refs = {}
    for name in ("gray", "regression", "vivid", "default"):
        if name in REGISTRY:
            refs[name] = evaluate_split(load_predictor(name, data=args.data), test)
            print(_row(name, refs[name]), flush=True)
    default = load_predictor("default")
    net = default.net
    meta = read_meta(Path(__file__).resolve().parents[1] / "src/chromalab/weights/default.safetensors")
    frontier = sweep(net, heads_over(net, test), V_GRID)
    hinted = []
    for n in HINT_COUNTS:
        m = evaluate_split(SimulatedHints(load_predictor("guided"), n, seed=0), test)
        hinted.append({"hints": n, **m})
        print(f"guided +{n} hints: {m['psnr']:.3f} dB", flush=True)
    photos = photo_figure(figs / "colour_photos.png")

    gray = refs["gray"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot([r["delta_cf"] for r in frontier], [r["psnr"] for r in frontier], "o-", label="default, vividness 0..1")
    for r in frontier:
        if r["vividness"] in (0.0, 0.5, 1.0):
            a1.annotate(f"v={r['vividness']:g}", (r["delta_cf"], r["psnr"]), textcoords="offset points", xytext=(4, 4))
    for name, mk in (("gray", "ks"), ("regression", "^"), ("vivid", "D")):
        if name in refs:
            a1.plot(refs[name]["delta_cf"], refs[name]["psnr"], mk, label=name)
    a1.axhline(gray["psnr"], color="0.6", ls="--", lw=0.8)
    label_frontier_axes(a1, f"accuracy against colour, test split ({gray['count']:,} images)")
    a2.plot([r["vividness"] for r in frontier], [r["cool_recall"] for r in frontier], "o-", label="cool recall")
    a2.plot([r["vividness"] for r in frontier], [r["auc_rb"] for r in frontier], "s-", label="AuC rebalanced")
    a2.axhline(gray["auc_rb"], color="C1", ls=":", lw=0.8, label="gray's AuC rebalanced")
    a2.set_xlabel("vividness")
    a2.set_title("colour metrics of the default model")
    a2.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(figs / "colour_frontier.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot([h["hints"] for h in hinted], [h["psnr"] for h in hinted], "o-", label="guided")
    ax.axhline(gray["psnr"], color="0.6", ls="--", lw=0.8, label="gray")
    ax.axhline(gray["psnr"] + 3.0, color="C3", ls=":", lw=0.8, label="gray + 3 dB")
    ax.set_xlabel("simulated ground-truth hints per image")
    ax.set_ylabel("PSNR dB")
    ax.set_title("guided: PSNR against the number of hints")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(figs / "hints_curve.png", dpi=90)
    plt.close(fig)

    commit = git_commit()
    info = {"command": "python scripts/colour_report.py --data ../shared/data/tiny-imagenet-200-subset.zip --out docs"
            + (f" --limit {args.limit}" if args.limit else ""),
            "date": time.strftime("%Y-%m-%d"), "commit": commit, "test_images": gray["count"],
            "excluded": test.excluded, "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "seconds": round(time.perf_counter() - t0, 1),
            "default_model": {k: meta.get(k) for k in ("arch_kwargs", "train", "vividness_choice")}}
    out = {"info": info, "references": refs, "frontier": frontier, "hints": hinted, "photos": photos}
    (args.out / "colour.json").write_text(json.dumps(out, indent=1, default=float))

    dv = refs["default"]
    v0 = frontier[0]
    v1 = frontier[-1]
    h10 = next(h for h in hinted if h["hints"] == 10)
    h0 = hinted[0]
    vc = meta.get("vividness_choice") or {}
    tr = (meta.get("train") or {})
    cfg = meta.get("config") or {}
    cfg_init = (json.loads(cfg) if isinstance(cfg, str) else cfg).get("init_from")

    def ok(b: bool) -> str:
        return "**met**" if b else "**not met**"

    checks = [
        f"default (vividness {vc.get('vividness')}): PSNR {dv['psnr']:.3f} ≥ gray + 1.0 = {gray['psnr'] + 1:.3f}: "
        f"{ok(dv['psnr'] >= gray['psnr'] + 1)}; SSIM {dv['ssim']:.4f} > {gray['ssim']:.4f}: {ok(dv['ssim'] > gray['ssim'])}; "
        f"ΔCF {dv['delta_cf']:.2f} ≤ 15: {ok(dv['delta_cf'] <= 15)}; cool recall {dv['cool_recall']:.3f} ≥ 0.35: "
        f"{ok(dv['cool_recall'] >= 0.35)}; AuC rebalanced {dv['auc_rb']:.4f} ≥ gray + 0.05 = {gray['auc_rb'] + 0.05:.4f}: "
        f"{ok(dv['auc_rb'] >= gray['auc_rb'] + 0.05)}",
        f"vividness 0: PSNR {v0['psnr']:.3f} ≥ gray + 1.2 = {gray['psnr'] + 1.2:.3f}: {ok(v0['psnr'] >= gray['psnr'] + 1.2)}",
        f"vividness 1: ΔCF {v1['delta_cf']:.2f} ≤ 3: {ok(v1['delta_cf'] <= 3)}, PSNR {v1['psnr']:.3f} ≥ gray − 0.5 = "
        f"{gray['psnr'] - 0.5:.3f}: {ok(v1['psnr'] >= gray['psnr'] - 0.5)}",
        f"guided, 10 hints: PSNR {h10['psnr']:.3f} ≥ gray + 3.0 = {gray['psnr'] + 3:.3f}: {ok(h10['psnr'] >= gray['psnr'] + 3)}",
        f"guided, 0 hints: {h0['psnr']:.3f} vs default {dv['psnr']:.3f} (within 0.1 dB: {ok(abs(h0['psnr'] - dv['psnr']) <= 0.1)})",
    ]
    lines = [
        "# Colour: the default model, its vividness and colour hints",
        "",
        f"Generated by `{info['command']}` on {info['date']} at commit {commit} ({info['seconds']:.0f} s). "
        f"Test split: {gray['count']:,} images ({test.excluded} grayscale originals excluded). "
        "Metric definitions: [metrics.md](metrics.md). Nothing here is typed by hand.",
        "",
        f"The default model: ColorNet ({json.dumps(meta.get('arch_kwargs'))}); trained on "
        f"{tr.get('train_images', 0):,} images in {tr.get('train_seconds', 0) / 60:.0f} min "
        f"({tr.get('images_per_second')} img/s"
        + (f", warm-started from `{cfg_init}`, itself trained earlier" if cfg_init else "")
        + "); decoding chosen on the 1,000 val images by "
        "`scripts/tune_vividness.py` (rules in its docstring). How it was made: [provenance/default_model.md]"
        "(provenance/default_model.md).",
        "",
        "## Acceptance checks (computed)",
        "",
        *[f"- {c}" for c in checks],
        "",
        "## The bundled models on the test split",
        "",
        *HEAD,
        *[_row(n, m) for n, m in refs.items()],
        "",
        "`regression` is the previous default (U-Net, SSIM-hybrid loss); `vivid` the ab-bin classifier "
        "(T = 0.2). `default` is at its default vividness.",
        "",
        "## The frontier: vividness 0 (most accurate) to 1 (most colourful)",
        "",
        *HEAD,
        *[_row(f"default, vividness {r['vividness']:g}", r) for r in frontier],
        "",
        "![PSNR against ΔCF across vividness, and the colour metrics](figures/colour_frontier.png)",
        "",
        "## Colour hints: `evaluate guided --hints N`",
        "",
        "Every test image gets N points simulated from its true colours (the training sampler with a fixed "
        "count, seed 0: Gaussian locations around the centre, 1x1 to 5x5 patches with the mean true ab).",
        "",
        "| hints | PSNR dB | SSIM | ΔCF | cool recall |",
        "|---|---|---|---|---|",
        *[f"| {h['hints']} | {h['psnr']:.3f} | {h['ssim']:.4f} | {h['delta_cf']:.2f} | {h['cool_recall']:.3f} |"
          for h in hinted],
        "",
        "![PSNR against the number of hints](figures/hints_curve.png)",
        "",
        "## Real photos",
        "",
        "scikit-image's photos, gray input | default | vividness 1 | original "
        "(colourfulness of each: " + "; ".join(
            f"{p['photo']} {p['cf_default']:.1f} / {p['cf_vivid']:.1f} / {p['cf_original']:.1f}" for p in photos) + ").",
        "",
        "![real photos](figures/colour_photos.png)",
        "",
    ]
    (args.out / "colour.md").write_text("\n".join(lines))
    results_rows(args.out / "RESULTS.md", info, refs, frontier)
    print(f"wrote {args.out / 'colour.md'}")


MARK_BEGIN = "<!-- colour_report: begin (generated by scripts/colour_report.py; do not edit by hand) -->"
MARK_END = "<!-- colour_report: end -->"


def results_rows(path: Path, info: dict, refs: dict, frontier: list[dict]) -> None:
    """Add (or replace) the bundled colour models' rows in docs/RESULTS.md, between the markers, below
    the comparison's own table (whose rows stay as the comparison wrote them)."""
    from chromalab.results import replace_marked_block

    if not path.is_file():
        return
    text = path.read_text()
    block = "\n".join([
        MARK_BEGIN,
        "## The bundled colour models (test split)",
        "",
        f"Measured by `{info['command']}` on {info['date']} at commit {info['commit']} "
        f"({info['test_images']:,} test images), details in [colour.md](colour.md). The rows above are the "
        "comparison's, as it wrote them; these are the models `chromalab colorize` ships.",
        "",
        *HEAD,
        *[_row(n, m) for n, m in refs.items()],
        *[_row(f"default, vividness {r['vividness']:g}", r) for r in frontier if r["vividness"] in (0.0, 1.0)],
        MARK_END,
    ])
    path.write_text(replace_marked_block(text, MARK_BEGIN, MARK_END, block))


if __name__ == "__main__":
    main()
