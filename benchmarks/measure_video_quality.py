"""Flicker, PSNR and cuts of video colorization on the test films; the numbers and figure of docs/video.md.

    python benchmarks/measure_video_quality.py                       # 320x240, 120 frames, default model
    python benchmarks/measure_video_quality.py --models default vivid --figure docs/figures/video_strip.png

Two films (:mod:`chromalab.video.testclip`), each three shots over scikit-image photos (a
still part then a pan; a zoom then still; a pan-zoom then still) with two hard cuts, encoded
as gray H.264 with a tone:

* ``grain``: film grain on L in every frame (std 2 L units): the acceptance film of issue 16;
* ``old``: the same with a 3 % exposure flicker per frame, as old film has.

Each is colorized through the file pipeline (``colorize_video_file``: decode, colorize, encode
H.264 CRF 18) and through the frame API (``VideoColorizer``: the frames before encoding), for
several temporal strengths.

Flicker is mean |Δab| (Euclidean, Lab units) between consecutive frames of the still parts:

* ``flicker``: per pixel, on the output frames (sRGB uint8); ``file_flicker``: on the decoded file;
* ``flicker_8px``: the same on the mean ab of 8x8-pixel regions (the colour of a wall or a face);
* ``flicker_work``: on the ab at the model's working size, after the stabiliser (what it changes);
* ``floor``: ``flicker`` of the ground truth, whose colour does not change at all: what grain,
  uint8 rounding and, for files, 4:2:0 YUV and H.264 add to the measurement on their own;
* ``floor_same_colour`` (per model): ``flicker`` of the model's frames with the colour of each
  still part frozen (its per-frame ab averaged over the part): the floor for that model's
  colours; ``flicker_above_floor_ratio`` compares what is left above it.

PSNR is against the ground-truth colour frames (dB, mean over frames). ``cut_identical``: the
first frame of each shot equals the per-frame colorization (nothing of the previous shot).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

STRENGTHS = (0.0, 0.5, 0.8, 0.9, 1.0)
FILMS = {"grain": {"grain": 2.0}, "old": {"grain": 2.0, "exposure": 0.03}}


def region_dab(a: np.ndarray, b: np.ndarray, k: int = 8) -> np.ndarray:
    """|Δab| of the k x k-pixel mean ab between two sRGB frames ``(H, W, 3)`` -> ``(H, W)``."""
    import cv2

    from chromalab.color import rgb_uint8_to_lab_fast

    d = cv2.blur(rgb_uint8_to_lab_fast(b)[..., 1:] - rgb_uint8_to_lab_fast(a)[..., 1:], (k, k))  # (H, W, 2)
    return np.sqrt((d**2).sum(-1))


def region_flicker(frames: np.ndarray, pairs: list[int], k: int = 8) -> float:
    return float(np.mean([region_dab(frames[t - 1], frames[t], k).mean() for t in pairs]))


def same_colour_floor(clip, col, gray: np.ndarray) -> float:
    """Per-pixel flicker of the model's frames with each still part's colour frozen."""
    from PIL import Image

    from chromalab.video.compose import compose_frame
    from chromalab.video.testclip import flicker

    frames, pairs = [], []
    for a, b in clip.static:
        items = [col.prepare(Image.fromarray(g)) for g in gray[a:b]]
        mean_ab = np.mean(col.predict_work(items), axis=0)  # (2, h, w): the part's colour, frozen
        pairs += list(range(len(frames) + 1, len(frames) + b - a))
        frames += [compose_frame(it.L, mean_ab) for it in items]
    return flicker(np.stack(frames), pairs)


def measure(clip, src: Path, tmp: Path, model: str) -> tuple[dict, dict]:
    """Rows per strength (and the model's floor), and the frame-API outputs per strength."""
    from chromalab.video import VideoColorizer, colorize_video_file, make_colorizer
    from chromalab.video.testclip import read_frames, score

    col = make_colorizer(model)
    pairs = clip.static_pairs()
    gray = read_frames(src)[..., 0]  # (N, H, W): the decoded input
    rows: dict = {}
    outs: dict = {}
    for s in STRENGTHS:
        vc = VideoColorizer(col, temporal=s)
        items = [vc.prepare(g) for g in gray]
        stable = [vc.stabilizer.step(it.work, ab) for it, ab in zip(items, col.predict_work(items), strict=True)]
        work_fl = float(np.mean([np.sqrt(((stable[t] - stable[t - 1]) ** 2).sum(0)).mean() for t in pairs]))
        vc = VideoColorizer(col, temporal=s)
        frames = np.stack(list(vc.colorize_frames(gray)))
        enc = read_frames(colorize_video_file(src, tmp / f"{model}_{s}.mp4", col, s).dst)
        outs[s] = frames
        fr, en = score(clip, frames), score(clip, enc)
        rows[str(s)] = {
            "flicker": round(fr["flicker"], 4), "flicker_8px": round(region_flicker(frames, pairs), 4),
            "flicker_work": round(work_fl, 4), "psnr": round(fr["psnr"], 3),
            "file_flicker": round(en["flicker"], 4), "file_flicker_8px": round(region_flicker(enc, pairs), 4),
            "file_psnr": round(en["psnr"], 3), "cuts": vc.cuts,
            "cut_identical": bool(all(np.array_equal(frames[c], outs[0.0][c]) for c in clip.cuts)),
        }
    floor = same_colour_floor(clip, col, gray)
    base = rows["0.0"]
    for r in rows.values():
        for k in ("flicker", "flicker_8px", "flicker_work", "file_flicker"):
            r[f"{k}_ratio"] = round(r[k] / base[k], 3)
        r["flicker_above_floor_ratio"] = round((r["flicker"] - floor) / (base["flicker"] - floor), 3)
        r["psnr_gain_db"] = round(r["psnr"] - base["psnr"], 3)
        r["file_psnr_gain_db"] = round(r["file_psnr"] - base["file_psnr"], 3)
    return {"floor_same_colour": round(floor, 4), **rows}, outs


def figure(clip, gray: np.ndarray, outs: dict, strength: float, title: str, path: Path) -> None:
    """Rows: two consecutive still frames, the first frame after a cut, a moving frame.
    Columns: input | per-frame | temporal, then the 8x8-region |Δab| to the previous frame for both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = clip.static[0]
    still = (a + b) // 2
    picks = [(still - 1, "still"), (still, "still"), (clip.cuts[0], "first after a cut"),
             (clip.cuts[0] - 3, "moving (pan)")]
    pf, tp = outs[0.0], outs[strength]
    cols = ["input (gray)", "per-frame (temporal 0)", f"temporal {strength}",
            "|Δab| to previous frame,\nper-frame (8x8 px mean)", f"|Δab| to previous frame,\ntemporal {strength}"]
    fig, axes = plt.subplots(len(picks), 5, figsize=(14, 2.3 * len(picks) + 0.6), constrained_layout=True)
    im = None
    for r, (t, label) in enumerate(picks):
        for c, frame in enumerate([np.repeat(gray[t][..., None], 3, 2), pf[t], tp[t]]):
            axes[r, c].imshow(frame)
        for c, frames in ((3, pf), (4, tp)):
            d = region_dab(frames[t - 1], frames[t])
            im = axes[r, c].imshow(d, cmap="magma", vmin=0, vmax=2)
            axes[r, c].text(4, 16, f"mean {d.mean():.2f}", color="white", fontsize=8,
                            bbox={"facecolor": "black", "alpha": 0.7, "pad": 1.5, "linewidth": 0})
        for c in range(5):
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(cols[c], fontsize=9)
        axes[r, 0].set_ylabel(f"frame {t}\n{label}", fontsize=9)
    fig.colorbar(im, ax=axes[:, 4], shrink=0.6, label="|Δab| (Lab units)")
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--models", nargs="+", default=["default"])
    ap.add_argument("--films", nargs="+", default=list(FILMS), choices=list(FILMS))
    ap.add_argument("--figure", type=Path, default=None, help="write the strip of frames here")
    ap.add_argument("--figure-film", default="old", choices=list(FILMS))
    ap.add_argument("--figure-model", default=None, help="default: the last of --models")
    ap.add_argument("--figure-strength", type=float, default=0.9)
    args = ap.parse_args()

    from chromalab.video.testclip import flicker, read_frames, render_clip, write_clip

    out: dict = {"size": f"{args.width}x{args.height}x{args.frames}", "films": {}}
    fig_model = args.figure_model or args.models[-1]
    with tempfile.TemporaryDirectory() as tmp:
        for film in args.films:
            clip = render_clip(args.width, args.height, args.frames, **FILMS[film])
            src = write_clip(clip, Path(tmp) / f"{film}.mp4")
            truth = read_frames(write_clip(clip, Path(tmp) / f"{film}_truth.mp4", colour=True, quality=18))
            pairs = clip.static_pairs()
            res: dict = {"settings": FILMS[film], "cuts": clip.cuts, "static": clip.static,
                         "floor": {"frames": round(flicker(clip.truth, pairs), 4),
                                   "frames_8px": round(region_flicker(clip.truth, pairs), 4),
                                   "file": round(flicker(truth, pairs), 4),
                                   "file_8px": round(region_flicker(truth, pairs), 4)}}
            for model in args.models:
                res[model], outs = measure(clip, src, Path(tmp), model)
                if args.figure is not None and film == args.figure_film and model == fig_model:
                    title = (f"{film} film ({', '.join(f'{k} {v}' for k, v in FILMS[film].items())}), "
                             f"{model} model, {args.width}x{args.height}")
                    figure(clip, read_frames(src)[..., 0], outs, args.figure_strength, title, args.figure)
            out["films"][film] = res
    print(json.dumps(out))


if __name__ == "__main__":
    main()
