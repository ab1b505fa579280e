"""docs/figures/hints_before_after.png: a real photo colorized without and with a few colour points.

    python scripts/hints_figure.py --out docs/figures/hints_before_after.png

The points (image pixels of scikit-image's ``coffee()``, 600 x 400) and their colours are the
ones in docs/hints.md; they are also written to docs/hints_example.json (the format of
``chromalab colorize --hints FILE`` and of the web page's export).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

POINTS = [
    {"x": 300, "y": 330, "color": "#b01818"},  # the saucer: red
    {"x": 180, "y": 250, "color": "#b01818"},  # the cup's rim: red
    {"x": 300, "y": 170, "color": "#c8a070"},  # the coffee: light brown
    {"x": 60, "y": 60, "color": "#3a6fb0"},  # the table top left: blue
    {"x": 560, "y": 360, "color": "#3a6fb0"},  # the table bottom right: blue
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("docs/figures/hints_before_after.png"))
    ap.add_argument("--json", type=Path, default=Path("docs/hints_example.json"))
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    from skimage import data

    import chromalab

    rgb = data.coffee()
    im = Image.fromarray(rgb)
    gray = np.asarray(im.convert("L").convert("RGB"))
    before = np.asarray(chromalab.colorize(im, model="guided"))
    hints = [(p["x"], p["y"], p["color"]) for p in POINTS]
    after = np.asarray(chromalab.colorize(im, model="guided", hints=hints))
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.3))
    for ax, img, title in zip(axes, (gray, before, after, rgb),
                              ("gray input", "no hints", f"{len(POINTS)} colour points", "original"), strict=True):
        ax.imshow(img)
        ax.set_title(title)
        ax.set_axis_off()
    for p in POINTS:
        axes[2].plot(p["x"], p["y"], "o", ms=9, mfc=p["color"], mec="white", mew=2)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=70)
    args.json.write_text(json.dumps(POINTS, indent=1) + "\n")
    print(f"wrote {args.out} and {args.json}")


if __name__ == "__main__":
    main()
