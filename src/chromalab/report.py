"""The comparison report: results.md / .csv / .json, a self-contained index.html, figures.

Nothing here is typed by hand: every number comes from the rows that `compare` measured.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .results import HEADINGS, ROW_KEYS, format_value

N_EXAMPLES = 8


def _label(r: dict) -> str:
    """A row's name as the tables show it: colour models with the vividness they were evaluated at."""
    v = r.get("vividness")
    return r["name"] if v is None else f"{r['name']} (vividness {v:g})"


# ---- figures ----------------------------------------------------------------------------------------
def make_figures(results: dict, out: Path, test, predictors: dict, data=None) -> dict[str, str]:
    """Write the figures into ``out``; returns {key: file name}."""
    out = Path(out)
    figs: dict[str, str] = {}
    if test is not None and predictors:
        _examples(out / "examples.png", test, predictors, data)
        figs["examples"] = "examples.png"
    if _loss_curves(out / "loss_curves.png", results["rows"]):
        figs["loss_curves"] = "loss_curves.png"
    for r in results["rows"]:
        if r.get("run") and r["family"] == "classical":
            for cand in sorted(Path(r["run"]).glob("pca*.png")):
                shutil.copyfile(cand, out / "pca_reconstruction.png")
                figs["pca"] = "pca_reconstruction.png"
                break
        if "pca" in figs:
            break
    for r in results["rows"]:  # the GAN's own curves (D and G losses within each epoch)
        if r.get("model") == "pix2pix" and r.get("run") and (Path(r["run"]) / "loss.png").exists():
            shutil.copyfile(Path(r["run"]) / "loss.png", out / "pix2pix_losses.png")
            figs["pix2pix"] = "pix2pix_losses.png"
    _bars(out / "bars.png", results["rows"])
    figs["bars"] = "bars.png"
    return figs


def _examples(path: Path, test, predictors: dict, data) -> None:
    """Rows: 8 fixed test images. Columns: gray input | every model | ground truth.

    ``predictors``: name -> a loaded predictor, or a spec to load (registry name / run folder)."""
    from PIL import Image, ImageDraw

    from .color import compose_rgb_uint8
    from .predictors.base import Predictor
    from .registry import load_predictor

    n = len(test)
    idx = np.linspace(0, n - 1, min(N_EXAMPLES, n)).round().astype(int)
    L, ab_true, rgb = test.get(idx)
    gray = compose_rgb_uint8(L, np.zeros((len(L), 2, *L.shape[2:]), np.float32))
    cols = [("input (L)", gray)]
    for name, spec in predictors.items():
        if name == "gray":
            continue
        pred = spec if isinstance(spec, Predictor) else load_predictor(spec, data=data, progress=False)
        oracle = getattr(pred, "predict_ab_oracle", None)  # the PCA ceiling reconstructs the true ab
        ab = oracle(L, ab_true) if oracle is not None else pred.predict_ab(L)
        cols.append((name, compose_rgb_uint8(L, ab)))
    cols.append(("ground truth", rgb))
    s = L.shape[-1]
    head = 28
    canvas = Image.new("RGB", (len(cols) * (s + 4), head + len(idx) * (s + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, (name, imgs) in enumerate(cols):
        x = j * (s + 4)
        words = name.split("-", 1)
        draw.text((x + 1, 2), words[0], fill="black")
        if len(words) > 1:
            draw.text((x + 1, 14), words[1], fill="black")
        for i in range(len(idx)):
            canvas.paste(Image.fromarray(imgs[i]), (x, head + i * (s + 4)))
    canvas.save(path, optimize=True)


def _loss_curves(path: Path, rows: list[dict]) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = []
    for r in rows:
        if r.get("family") != "net" or not r.get("run"):
            continue
        f = Path(r["run"]) / "metrics.csv"
        if not f.exists():
            continue
        with open(f) as fh:
            recs = list(csv.DictReader(fh))
        curves.append((r["name"], recs))
    if not curves:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, recs in curves:
        for ax, key in zip(axes, ("train_loss", "val_loss"), strict=True):
            pts = [(_epochs_done(x, i), float(x[key])) for i, x in enumerate(recs) if x.get(key) not in (None, "")]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=name)
    for ax, t in zip(axes, ("train loss (running epoch mean)", "val loss"), strict=True):
        ax.set_title(t)
        ax.set_xlabel("epochs done")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def _epochs_done(rec: dict, i: int) -> float:
    """A metrics.csv row's x: ``progress`` (epochs done, fractional when val runs several times per
    epoch); older runs without it: their 0-based ``epoch`` + 1."""
    if rec.get("progress") not in (None, ""):
        return float(rec["progress"])
    return float(rec.get("epoch", i)) + 1.0


BAR_PANELS = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("auc_rb", "AuC, class-rebalanced"),
              ("cool_recall", "cool (green / blue) recall"))


def _bars(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in rows]
    gray = next((r for r in rows if r["name"] == "gray"), None)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (key, label) in zip(axes.ravel(), BAR_PANELS, strict=True):
        vals = [float("nan") if r.get(key) is None else float(r[key]) for r in rows]
        colors = ["#999999" if r["family"] == "reference" else "#3b75af" for r in rows]
        ax.bar(range(len(rows)), vals, color=colors)
        if gray and gray.get(key) is not None and not math.isnan(gray[key]):
            ax.axhline(gray[key], color="crimson", lw=1.2, ls="--", label=f"gray = {format_value(key, gray[key])}")
            ax.legend(fontsize=8)
        finite = [v for v in vals if not math.isnan(v)]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = (hi - lo) * 0.15 + 1e-3
            if key == "cool_recall":  # a fraction: from 0, and not a magnified sliver when all are near 0
                ax.set_ylim(0.0, max(hi + pad, 0.05))
            else:
                ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(range(len(rows)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---- tables -------------------------------------------------------------------------------------------
def write_tables(results: dict, out: Path, figures: dict[str, str]) -> None:
    out = Path(out)
    rows, meta = results["rows"], results["meta"]
    (out / "results.json").write_text(json.dumps(results, indent=2))
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", *ROW_KEYS, "vividness", "quoted"])
        for r in rows:
            w.writerow([r["name"], *[r.get(k) for k in ROW_KEYS], r.get("vividness"), False])
        for r in meta.get("study_rows", []):
            w.writerow([r["name"], *[r.get(k) for k in ROW_KEYS], None, True])
    (out / "results.md").write_text(markdown(results, figures))
    (out / "index.html").write_text(html_page(results, out, figures))


def publish(results: dict, out: Path, docs: Path, figures: dict[str, str]) -> list[Path]:
    """Copy the report into a documentation folder: ``RESULTS.md``, ``results.json`` and the
    figures under ``figures/`` (links rewritten). Nothing is retyped: the same generated text, except
    that paths of this machine are written as file names (:func:`portable`)."""
    results = portable(results)
    docs = Path(docs)
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    figs = {}
    for k, f in figures.items():
        src = Path(out) / f
        if src.exists():
            shutil.copyfile(src, docs / "figures" / Path(f).name)
            figs[k] = f"figures/{Path(f).name}"
    (docs / "RESULTS.md").write_text(markdown(results, figs))
    (docs / "results.json").write_text(json.dumps(results, indent=2))
    return [docs / "RESULTS.md", docs / "results.json", *(docs / v for v in figs.values())]


def portable(results: dict) -> dict:
    """``results`` for a tracked folder: the data path and the absolute paths in the command written as
    their file names (a path of the machine that ran the comparison means nothing elsewhere)."""
    meta = results["meta"]
    command = " ".join(Path(w).name if Path(w).is_absolute() else w for w in str(meta["command"]).split(" "))
    src = {**meta["data_source"], "path": Path(meta["data_source"]["path"]).name}
    return {**results, "meta": {**meta, "command": command, "data_source": src}}


def _meta_lines(meta: dict, rows: Sequence[dict] = ()) -> list[str]:
    src = meta["data_source"]
    ss = meta["split_sizes"]
    reused = meta.get("reused_runs") or []
    extra = []
    if any(r.get("vividness") is not None for r in rows) or meta.get("vividness") is not None:
        v = meta.get("vividness")
        extra.append("- colour models (those with a vividness) evaluated at "
                     + (f"vividness {v:g} (`--vividness {v:g}`)" if v is not None else "their own default vividness")
                     + "; the value is given next to each one's name")
    if reused:
        extra.append(f"- runs already finished in the output folder and reused (their training time is not in the "
                     f"wall time above; it is in the train s column, {format_value('train_seconds', meta.get('train_seconds_total'))}"
                     f" s in all): {', '.join(reused)}")
    return [
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; commit: {meta.get('commit') or 'unknown'}; wall time: "
        f"{format_value('train_seconds', meta.get('wall_seconds'))} s",
        f"- data: `{Path(src['path']).name}` ({src['kind']}, {src.get('size', 0) / 1e6:.0f} MB)",
        f"- splits: train {ss['train']:,}, val {ss['val']:,}, test evaluated {ss['test_evaluated']:,} "
        f"(of {ss['test_total']:,}); near-gray/grayscale originals excluded: {meta['excluded']:,}",
        f"- machine: {meta['machine']['platform']}, {meta['machine']['cpus']} CPUs, Python {meta['machine']['python']}",
        *extra,
    ]


def markdown(results: dict, figures: dict[str, str]) -> str:
    rows, meta = results["rows"], results["meta"]
    keys = list(ROW_KEYS)
    lines = ["# chromalab comparison", "", *_meta_lines(meta, rows), "",
             "Metrics: [docs/metrics.md](metrics.md). PSNR/SSIM on the uint8 sRGB output; MSE/L1 on ab in Lab "
             "units and on sRGB in 0..1; R² over all ab values; CF / ΔCF colourfulness. AuC: the area under "
             "the curve of the fraction of pixels whose ab error is within t, t = 0..150 Lab units (Zhang et "
             "al. 2016); AuC rebal: the same with every 10×10 true-ab bin weighted equally, so rare saturated "
             "colours count as much as the common near-gray ones; cool recall: of the true green / cyan / blue "
             "pixels (chroma ≥ 20, hue 130°–300°), the fraction predicted with chroma ≥ 10 and a hue within "
             "45°. Grey rows are the "
             "trivial answers every model must beat. train s: training time (for the reference rows, the time "
             "to build them from the training data); images seen: training images processed (all epochs, "
             "sessions and processes; nets); predict img/s: the models' prediction "
             "throughput while the test split was evaluated (each model's own batch size), on this machine.", "",
             "| model | " + " | ".join(HEADINGS[k] for k in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for r in rows:
        lines.append(f"| {_label(r)} | " + " | ".join(format_value(k, r.get(k)) for k in keys) + " |")
    lines += ["", "Quoted from the study (not measured here; other cells unknown):", "",
              "| row | PSNR | R² |", "|---|---:|---:|"]
    for r in meta.get("study_rows", []):
        lines.append(f"| {r['name']} | {format_value('psnr', r.get('psnr'))} | {format_value('r2', r.get('r2'))} |")
    titles = {"examples": "Test images: input | models | ground truth",
              "bars": "PSNR, SSIM, rebalanced AuC and cool recall per model",
              "loss_curves": "Training curves of the nets", "pca": "PCA reconstructions",
              "pix2pix": "pix2pix: L1 loss, validation metrics, discriminator and generator losses"}
    for k, f in figures.items():
        lines += ["", f"## {titles.get(k, k)}", "", f"![{k}]({f})"]
    return "\n".join(lines) + "\n"


def html_page(results: dict, out: Path, figures: dict[str, str]) -> str:
    rows, meta = results["rows"], results["meta"]
    keys = list(ROW_KEYS)
    head = "".join(f"<th>{html.escape(HEADINGS[k])}</th>" for k in keys)
    body = []
    for r in rows:
        cls = ' class="ref"' if r.get("family") == "reference" else ""
        body.append(f"<tr{cls}><td>{html.escape(_label(r))}</td>" +
                    "".join(f"<td>{format_value(k, r.get(k))}</td>" for k in keys) + "</tr>")
    for r in meta.get("study_rows", []):
        body.append(f"<tr class='quoted'><td>{html.escape(r['name'])}</td>" +
                    "".join(f"<td>{format_value(k, r.get(k)) if k in r else ''}</td>" for k in keys) + "</tr>")
    imgs = []
    for k, f in figures.items():
        p = Path(out) / f
        if p.exists():
            b64 = base64.b64encode(p.read_bytes()).decode()
            imgs.append(f'<figure><img alt="{k}" src="data:image/png;base64,{b64}"><figcaption>{k}</figcaption></figure>')
    metas = "".join(f"<li>{html.escape(x[2:])}</li>" for x in _meta_lines(meta, rows))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chromalab comparison</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}table{{border-collapse:collapse;font-size:.85rem}}
td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}}td:first-child,th:first-child{{text-align:left}}
tr.ref{{background:#f0f0f0}}tr.quoted{{color:#777;font-style:italic}}img{{max-width:100%;image-rendering:pixelated}}
figure{{margin:1.5rem 0}}</style></head><body>
<h1>chromalab comparison</h1><ul>{metas}</ul>
<table><thead><tr><th>model</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<p>Grey rows: trivial reference answers. Italic rows: quoted from the study, not measured here.</p>
{''.join(imgs)}
</body></html>
"""
