"""Can a different decoding of the default model's heads buy accuracy at the same colourfulness?

    python scripts/decoding_probe.py --data ../shared/data/tiny-imagenet-200-subset.zip --out docs

Issue 12 asks for the default at PSNR >= gray + 1.0 dB with ΔCF <= 15. The shipped decoding
(:func:`chromalab.nets.colornet.vivid_decode`, a blend of the regression head and an annealed mean
of the colour classes) falls short of that on its whole frontier. This probe measures, on the
1,000 validation images (where decoding choices are made; ``--split test`` for the test split),
three families of decodings of the same heads, on the PSNR-against-ΔCF plane:

* **blend**: the shipped decoding, vividness 0 .. 1;
* **blend + flip**: the same, on heads averaged over the image and its mirror image (test-time
  augmentation: twice the network cost);
* **scaled regression**: the regression head's chroma multiplied by g = 1 .. 2 (the cheapest way to
  add colourfulness when the regression output is the mean of the colours the model expects: the
  expected squared error grows by (g - 1)² |ab|² whatever the true colour).

Writes ``decoding.md``, ``decoding.json`` and ``figures/decoding_frontier.png`` under ``--out``;
nothing in the page is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from chromalab.results import colour_table_head, colour_table_row

V_GRID = tuple(round(v, 1) for v in np.arange(0, 1.0001, 0.1))
G_GRID = tuple(round(g, 1) for g in np.arange(1.0, 2.0001, 0.1))
DCF_TARGET = 15.0


class Mirrored:
    """A split's L flipped left-right, for :func:`chromalab.frontier.heads_over` (``batches`` and ``len`` only;
    ab and rgb pass through unflipped: only L goes into the net, and the mirror's heads are flipped back)."""

    def __init__(self, split) -> None:
        self.split, self.name = split, f"{split.name}, mirrored"

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, batch_size: int):
        for L, ab, rgb in self.split.batches(batch_size):  # L (N, 1, S, S), ab (N, 2, S, S), rgb (N, S, S, 3)
            yield L[..., ::-1].copy(), ab, rgb


def psnr_at_dcf(rows: list[dict], target: float) -> float | None:
    """PSNR where a family's frontier crosses ΔCF = ``target`` (linear between neighbours; None if it does not)."""
    pts = sorted((r["delta_cf"], r["psnr"]) for r in rows)
    for (d0, p0), (d1, p1) in zip(pts, pts[1:], strict=False):
        if d0 <= target <= d1:
            return p0 + (p1 - p0) * (target - d0) / (d1 - d0) if d1 > d0 else max(p0, p1)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="Tiny ImageNet zip/folder (or $CHROMALAB_DATA)")
    ap.add_argument("--model", default="default", help="a ColorNet: registry name, run folder or .safetensors")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (a smoke run)")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chromalab.data.cache import load_prepared
    from chromalab.evaluate import evaluate_split
    from chromalab.frontier import heads_over, label_frontier_axes, metrics_at
    from chromalab.predictors.baselines import GrayPredictor
    from chromalab.registry import load_predictor
    from chromalab.version import git_commit

    t0 = time.perf_counter()
    split = load_prepared(args.data).split(args.split, limit=args.limit)
    gray = evaluate_split(GrayPredictor(), split)
    net = load_predictor(args.model).net
    L, ab, rgb, reg, logits = heads_over(net, split)
    _, _, _, reg_m, logits_m = heads_over(net, Mirrored(split))
    reg_f = (reg + reg_m[..., ::-1]) / 2  # (N, 2, S, S): the mirror's heads flipped back, averaged
    logits_f = ((logits.astype(np.float32) + logits_m[..., ::-1].astype(np.float32)) / 2).astype(np.float16)
    del reg_m, logits_m
    plain, flipped = (L, ab, rgb, reg, logits), (L, ab, rgb, reg_f, logits_f)
    families = {
        "blend": [{"setting": v, **metrics_at(net, plain, v)} for v in V_GRID],
        "blend + flip": [{"setting": v, **metrics_at(net, flipped, v)} for v in V_GRID],
        "scaled regression": [{"setting": g, **metrics_at(net, (L, ab, rgb, reg * np.float32(g), logits), 0.0)}
                              for g in G_GRID],
    }
    at_target = {name: psnr_at_dcf(rows, DCF_TARGET) for name, rows in families.items()}

    figs = args.out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (name, rows) in enumerate(families.items()):
        ax.plot([r["delta_cf"] for r in rows], [r["psnr"] for r in rows], "o-", ms=4, color=f"C{i}", label=name)
    ax.plot(gray["delta_cf"], gray["psnr"], "ks", label="gray")
    ax.axhline(gray["psnr"] + 1.0, color="0.5", ls="--", lw=0.8, label="gray + 1 dB")
    ax.axvline(DCF_TARGET, color="0.5", ls=":", lw=0.8, label=f"ΔCF {DCF_TARGET:g}")
    label_frontier_axes(ax, f"decodings of the {args.model} model's heads, {gray['count']:,} {args.split} images",
                        fontsize=9)
    fig.tight_layout()
    fig.savefig(figs / "decoding_frontier.png", dpi=90)
    plt.close(fig)

    commit = git_commit()
    command = "python scripts/decoding_probe.py --data ../shared/data/tiny-imagenet-200-subset.zip --out docs" + (
        f" --model {args.model}" if args.model != "default" else "") + (
        f" --split {args.split}" if args.split != "val" else "") + (f" --limit {args.limit}" if args.limit else "")
    info = {"command": command, "date": time.strftime("%Y-%m-%d"), "commit": commit, "split": args.split,
            "images": gray["count"], "seconds": round(time.perf_counter() - t0, 1)}
    (args.out / "decoding.json").write_text(json.dumps(
        {"info": info, "gray": gray, "families": families, "psnr_at_dcf_15": at_target}, indent=1, default=float))

    def fmt(p: float | None) -> str:
        return "not reached" if p is None else f"{p:.3f} dB (gray {p - gray['psnr']:+.3f})"

    lines = [
        "# Decoding probe: other ways to read the same heads",
        "",
        f"Generated by `{command}` on {info['date']} at commit {commit} ({info['seconds']:.0f} s), "
        f"{gray['count']:,} {args.split} images. Metric definitions: [metrics.md](metrics.md). Nothing here is typed by hand.",
        "",
        "The question: is the default model short of PSNR ≥ gray + 1 dB at ΔCF ≤ 15 (issue 12) because of how "
        "its heads are decoded, or because of the heads themselves? Three families of decodings of the same "
        "heads (what each is: the docstring of `scripts/decoding_probe.py`).",
        "",
        f"PSNR where each family's frontier reaches ΔCF {DCF_TARGET:g} (gray + 1 dB = {gray['psnr'] + 1.0:.3f}):",
        "",
        *[f"- {name}: {fmt(p)}" for name, p in at_target.items()],
        "",
        "![the three frontiers](figures/decoding_frontier.png)",
        "",
    ]
    for name, rows in families.items():
        lines += [f"## {name}", "", *colour_table_head("vividness" if name.startswith("blend") else "g"),
                  colour_table_row("gray", metrics=gray),
                  *[colour_table_row(f"{r['setting']:g}", metrics=r) for r in rows], ""]
    (args.out / "decoding.md").write_text("\n".join(lines))
    print("\n".join(f"{name}: PSNR at dCF {DCF_TARGET:g}: {fmt(p)}" for name, p in at_target.items()))
    print(f"wrote {args.out / 'decoding.md'}")


if __name__ == "__main__":
    main()
