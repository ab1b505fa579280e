"""Flicker, PSNR and cuts of video colorization on the test films; the numbers and figure of docs/video.md.

    python benchmarks/measure_video_quality.py --models default --figure docs/figures/video_strip.png
    python benchmarks/measure_video_quality.py --models default --seed 1 --films grain --no-sweep
    python benchmarks/measure_video_quality.py --models default --films grain --encoders   # x264 options

Two films (:mod:`chromalab.video.testclip`, 320x240, 120 frames, 25 fps), each three shots
over scikit-image photos (a still part then a pan; a zoom then still; a pan-zoom then still)
with two hard cuts, encoded as gray H.264 with a tone:

* ``grain``: film grain on L in every frame (std 2 L units): the acceptance film of issue 16;
* ``old``: the same with a 3 % exposure flicker per frame, as old film has.

Each is colorized through the file pipeline (``colorize_video_file``: decode, colorize, encode
H.264 CRF 18, decoded again here with PyAV's ``to_ndarray("rgb24")``) and through the frame
API (``VideoColorizer``: the frames before encoding), for several temporal strengths.

Flicker is mean |Δab| (Euclidean, Lab units) between consecutive frames of the still parts:

* ``flicker``: per pixel, on the output frames (sRGB uint8); ``file_flicker``: on the decoded file;
* ``flicker_8px``: the same on the mean ab of 8x8-pixel regions (the colour of a wall or a face);
* ``flicker_work``: on the ab at the model's working size, after the stabiliser (what it changes);
  ``still_confidence``, ``still_weight``: the stabiliser's mean confidence and history weight there;
* ``floor``: the flicker of the ground truth, whose colour does not change at all: what grain
  and the output's quantisation add to the measurement on their own, step by step: ``frames``
  (sRGB uint8), ``ycbcr444_8bit`` (then 8-bit BT.601 limited-range YCbCr, exact maths, no
  subsampling, no codec), ``i420`` (the pipeline's own RGB -> 4:2:0 conversion, decoded as
  the file is, no codec), ``file`` (the pipeline's writer: H.264 CRF 18); ``i420_opencv`` and
  ``file_opencv_i420``: the same with OpenCV's I420 (each block's top-left chroma), as the
  writer did before 2026-12-02;
* ``same_colour`` (per model): the model's frames with the colour of each still part frozen (its
  per-frame ab averaged over the part), on the frames and through the pipeline's writer: what
  a perfect stabiliser would measure. ``best_file_ratio`` is that file flicker over per-frame
  colorization's: no stabiliser can measure below it on the file.

PSNR is against the ground-truth colour frames (dB, mean over frames; its change also over the
still parts' frames and over the others). ``cut_identical``: the
first frame of each shot equals the per-frame colorization (nothing of the previous shot).
``--encoders`` adds a table of x264 settings (:data:`ENCODERS`): for each, the file flicker of
the ground truth, of per-frame colorization, of the default strength and of the frozen colour,
the ratios, the PSNR change, the size and the encoder's CPU time. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

STRENGTHS = (0.0, 0.5, 0.8, 0.9, 1.0)
FILMS = {"grain": {"grain": 2.0}, "old": {"grain": 2.0, "exposure": 0.03}}
FPS = 25
X264 = {"preset": "medium"}
ENCODERS: dict[str, tuple[dict[str, str], str]] = {
    "crf 18 (default)": ({"crf": "18"}, "yuv420p"),
    "crf 14": ({"crf": "14"}, "yuv420p"),
    "crf 12": ({"crf": "12"}, "yuv420p"),
    "crf 23": ({"crf": "23"}, "yuv420p"),
    "crf 18 chroma-qp-offset -2": ({"crf": "18", "x264-params": "chroma-qp-offset=-2"}, "yuv420p"),
    "crf 18 chroma-qp-offset -4": ({"crf": "18", "x264-params": "chroma-qp-offset=-4"}, "yuv420p"),
    "crf 18 chroma-qp-offset -6": ({"crf": "18", "x264-params": "chroma-qp-offset=-6"}, "yuv420p"),
    "crf 18 chroma-qp-offset +3": ({"crf": "18", "x264-params": "chroma-qp-offset=3"}, "yuv420p"),
    "crf 18 tune grain": ({"crf": "18", "tune": "grain"}, "yuv420p"),
    "crf 18 tune film": ({"crf": "18", "tune": "film"}, "yuv420p"),
    "crf 18 psy-rd 0": ({"crf": "18", "x264-params": "psy-rd=0,0"}, "yuv420p"),
    "crf 18 aq-mode 0": ({"crf": "18", "x264-params": "aq-mode=0"}, "yuv420p"),
    "crf 18 preset slow": ({"crf": "18", "preset": "slow"}, "yuv420p"),
    "crf 18 yuv444p": ({"crf": "18"}, "yuv444p"),
    "crf 18 yuv420p10le": ({"crf": "18"}, "yuv420p10le"),
    "lossless (qp 0)": ({"qp": "0"}, "yuv420p"),
    "lossless (qp 0) yuv444p": ({"qp": "0"}, "yuv444p"),
}
"""x264 settings compared by ``--encoders`` (preset medium unless given), through the pipeline's
own RGB -> YUV conversion for 8-bit 4:2:0 (:func:`chromalab.video.writer.rgb_to_i420`), FFmpeg's
(swscale) for the other pixel formats."""


def region_dab(a: np.ndarray, b: np.ndarray, k: int = 8) -> np.ndarray:
    """|Δab| of the k x k-pixel mean ab between two sRGB frames ``(H, W, 3)`` -> ``(H, W)``."""
    import cv2

    from chromalab.color import rgb_uint8_to_lab_fast

    d = cv2.blur(rgb_uint8_to_lab_fast(b)[..., 1:] - rgb_uint8_to_lab_fast(a)[..., 1:], (k, k))  # (H, W, 2)
    return np.sqrt((d**2).sum(-1))


def region_flicker(frames: np.ndarray, pairs: list[int], k: int = 8) -> float:
    return float(np.mean([region_dab(frames[t - 1], frames[t], k).mean() for t in pairs]))


def opencv_i420(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's own RGB -> I420 (chroma of each 2x2 block's top-left pixel): the writer's before 2026-12-02."""
    import cv2

    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), dtype=np.uint8)


def encode(frames: np.ndarray, path: Path, options: dict[str, str] | None = None, pix_fmt: str = "yuv420p",
           i420=None) -> Path:
    """sRGB frames ``(N, H, W, 3)`` -> an H.264 MP4 at ``FPS``. With no ``options``: the pipeline's
    own writer (:class:`~chromalab.video.writer.VideoWriter`, defaults); else libx264 with
    ``options`` and the writer's colour conversion and tags (``i420``: another RGB -> I420)."""
    import av

    from chromalab.video.source import VideoInfo
    from chromalab.video.writer import VideoWriter, rgb_to_i420

    i420 = i420 or rgb_to_i420
    n, h, w, _ = frames.shape
    tb = Fraction(1, FPS)
    if options is None:
        info = VideoInfo(path=path, container="mp4", codec="h264", width=w, height=h, fps=Fraction(FPS),
                         time_base=tb, n_frames=n, duration=n / FPS)
        wr = VideoWriter(path, "mp4", info, pix_fmt=pix_fmt)
        for t in range(n):
            wr.write_frame(frames[t], t, tb)
        wr.close()
        return path
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS, time_base=tb, options={**X264, **options})
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        cc = vs.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 6, 1, 1, 1  # as the writer tags it
        for t in range(n):
            if pix_fmt == "yuv420p":
                fr = av.VideoFrame.from_ndarray(i420(frames[t]), format="yuv420p")
            else:
                fr = av.VideoFrame.from_ndarray(frames[t], format="rgb24").reformat(
                    format=pix_fmt, dst_colorspace="ITU601", dst_color_range="MPEG")
            fr.pts, fr.time_base = t, tb
            for p in vs.encode(fr):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


def ycbcr_8bit(frames: np.ndarray) -> np.ndarray:
    """sRGB uint8 -> 8-bit BT.601 limited-range YCbCr 4:4:4 (rounded) -> sRGB uint8, exact maths."""
    m = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
    off = np.array([16.0, 128.0, 128.0])
    m_inv = np.linalg.inv(m)
    out = np.empty_like(frames)
    for t, f in enumerate(frames):  # frame by frame: float64 copies of a whole film are large
        yuv = np.clip(np.rint(f.astype(np.float64) @ m.T + off), 0, 255)
        out[t] = np.clip(np.rint((yuv - off) @ m_inv.T), 0, 255)
    return out


def i420_roundtrip(frames: np.ndarray, i420=None) -> np.ndarray:
    """The pipeline's RGB -> 4:2:0 conversion (or ``i420``), decoded back as a file is (PyAV/swscale), no codec."""
    import av

    from chromalab.video.writer import rgb_to_i420

    i420 = i420 or rgb_to_i420
    return np.stack([av.VideoFrame.from_ndarray(i420(f), format="yuv420p").to_ndarray(format="rgb24")
                     for f in frames])


def frozen_colour(clip, col, gray: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``frames`` with each still part replaced by the model's colour frozen over the part (its
    per-frame ab averaged) on each frame's own L: what a perfect stabiliser would output there."""
    from PIL import Image

    from chromalab.video.compose import compose_frame

    out = frames.copy()
    for a, b in clip.static:
        items = [col.prepare(Image.fromarray(g)) for g in gray[a:b]]
        mean_ab = np.mean(col.predict_work(items), axis=0)  # (2, h, w): the part's colour, frozen
        out[a:b] = [compose_frame(it.L, mean_ab) for it in items]
    return out


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def encoder_table(clip, frames: dict[str, np.ndarray], tmp: Path) -> dict:
    """File flicker of the truth, per-frame, temporal and frozen colour under each of :data:`ENCODERS`."""
    import os

    from chromalab.metrics import psnr_per_image
    from chromalab.video.testclip import flicker, read_frames

    pairs = clip.static_pairs()
    table = {}
    for name, (opts, pix_fmt) in ENCODERS.items():
        row: dict = {}
        for key, fr in frames.items():
            path = tmp / f"enc_{key}.mp4"
            c = _cpu_s()
            encode(fr, path, opts, pix_fmt)
            cpu = _cpu_s() - c
            dec = read_frames(path)
            row[key] = round(flicker(dec, pairs), 4)
            if key == "per_frame":
                row["kB"] = os.path.getsize(path) // 1024
                row["encode_cpu_ms_per_frame"] = round(1000 * cpu / len(fr), 1)
            if key in ("per_frame", "temporal"):
                row[f"{key}_psnr"] = round(float(psnr_per_image(clip.truth, dec).mean()), 3)
                row[f"{key}_8px"] = round(region_flicker(dec, pairs), 4)
        row["ratio"] = round(row["temporal"] / row["per_frame"], 3)
        row["ratio_8px"] = round(row["temporal_8px"] / row["per_frame_8px"], 3)
        row["best_ratio"] = round(row["same_colour"] / row["per_frame"], 3)
        row["psnr_gain_db"] = round(row["temporal_psnr"] - row["per_frame_psnr"], 3)
        table[name] = row
    return table


def measure(clip, src: Path, tmp: Path, model: str, strengths=STRENGTHS, encoders: bool = False) -> tuple[dict, dict]:
    """Rows per strength (and the model's floors), and the frame-API outputs per strength."""
    from chromalab.video import DEFAULT_STRENGTH, VideoColorizer, colorize_video_file, make_colorizer
    from chromalab.video.testclip import flicker, read_frames, score

    col = make_colorizer(model)
    pairs = clip.static_pairs()
    gray = read_frames(src)[..., 0]  # (N, H, W): the decoded input
    rows: dict = {}
    outs: dict = {}
    from chromalab.metrics import psnr_per_image

    strengths = sorted({0.0, DEFAULT_STRENGTH, *strengths})
    per_frame_psnr: dict = {}
    still = np.zeros(clip.n_frames, bool)
    for a, b in clip.static:
        still[a:b] = True
    for s in strengths:
        vc = VideoColorizer(col, temporal=s)
        items = [vc.prepare(g) for g in gray]
        stable, steps = [], []
        for it, ab in zip(items, col.predict_work(items), strict=True):
            stable.append(vc.stabilizer.step(it.work, ab))
            steps.append(vc.stabilizer.last)  # confidence and weight given to the history
        work_fl = float(np.mean([np.sqrt(((stable[t] - stable[t - 1]) ** 2).sum(0)).mean() for t in pairs]))
        vc = VideoColorizer(col, temporal=s)
        frames = np.stack(list(vc.colorize_frames(gray)))
        enc = read_frames(colorize_video_file(src, tmp / f"{model}_{s}.mp4", col, s).dst)
        outs[s] = frames
        fr, en = score(clip, frames), score(clip, enc)
        per_frame_psnr[s] = psnr_per_image(clip.truth, frames)  # (N,) dB
        rows[str(s)] = {
            "flicker": round(fr["flicker"], 4), "flicker_8px": round(region_flicker(frames, pairs), 4),
            "flicker_work": round(work_fl, 4), "psnr": round(fr["psnr"], 3),
            "file_flicker": round(en["flicker"], 4), "file_flicker_8px": round(region_flicker(enc, pairs), 4),
            "file_psnr": round(en["psnr"], 3), "cuts": vc.cuts,
            "cut_identical": bool(all(np.array_equal(frames[c], outs[0.0][c]) for c in clip.cuts)),
            "still_confidence": round(float(np.mean([steps[t].confidence for t in pairs])), 3),
            "still_weight": round(float(np.mean([steps[t].weight for t in pairs])), 3),
        }
    frozen = frozen_colour(clip, col, gray, outs[DEFAULT_STRENGTH])
    floor = flicker(frozen, pairs)
    base = rows["0.0"]
    file_frozen = flicker(read_frames(encode(frozen, tmp / f"{model}_frozen.mp4")), pairs)
    same = {"frames": round(floor, 4), "file": round(file_frozen, 4),
            "best_file_ratio": round(file_frozen / base["file_flicker"], 3)}
    for k, r in rows.items():
        for key in ("flicker", "flicker_8px", "flicker_work", "file_flicker", "file_flicker_8px"):
            r[f"{key}_ratio"] = round(r[key] / base[key], 3)
        r["flicker_above_floor_ratio"] = round((r["flicker"] - floor) / (base["flicker"] - floor), 3)
        r["psnr_gain_db"] = round(r["psnr"] - base["psnr"], 3)
        gain = per_frame_psnr[float(k)] - per_frame_psnr[0.0]
        r["psnr_gain_still_db"] = round(float(gain[still].mean()), 3)  # frames of the still parts
        r["psnr_gain_moving_db"] = round(float(gain[~still].mean()), 3)  # the rest: moving, and cut frames
        r["file_psnr_gain_db"] = round(r["file_psnr"] - base["file_psnr"], 3)
    out = {"same_colour": same, **rows}
    if encoders:
        out["encoders"] = encoder_table(clip, {"truth": clip.truth, "per_frame": outs[0.0],
                                               "temporal": outs[DEFAULT_STRENGTH], "same_colour": frozen}, tmp)
    return out, outs


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
    ap.add_argument("--seed", type=int, default=0, help="the films' grain and exposure flicker")
    ap.add_argument("--strengths", type=float, nargs="+", default=list(STRENGTHS),
                    help="temporal strengths (0 and the default are always measured)")
    ap.add_argument("--no-sweep", action="store_true", help="only 0 and the default strength")
    ap.add_argument("--encoders", action="store_true", help="also the table of x264 settings (ENCODERS)")
    args = ap.parse_args()
    strengths = [] if args.no_sweep else args.strengths

    from chromalab.video.testclip import flicker, read_frames, render_clip, write_clip

    out: dict = {"size": f"{args.width}x{args.height}x{args.frames}", "seed": args.seed, "films": {}}
    fig_model = args.figure_model or args.models[-1]
    with tempfile.TemporaryDirectory() as tmp:
        for film in args.films:
            clip = render_clip(args.width, args.height, args.frames, seed=args.seed, **FILMS[film])
            src = write_clip(clip, Path(tmp) / f"{film}.mp4")
            truth = read_frames(encode(clip.truth, Path(tmp) / f"{film}_truth.mp4"))  # the pipeline's writer
            pairs = clip.static_pairs()
            res: dict = {"settings": FILMS[film], "cuts": clip.cuts, "static": clip.static,
                         "floor": {"frames": round(flicker(clip.truth, pairs), 4),
                                   "ycbcr444_8bit": round(flicker(ycbcr_8bit(clip.truth), pairs), 4),
                                   "i420": round(flicker(i420_roundtrip(clip.truth), pairs), 4),
                                   "i420_opencv": round(flicker(i420_roundtrip(clip.truth, opencv_i420), pairs), 4),
                                   "file": round(flicker(truth, pairs), 4),
                                   "file_opencv_i420": round(flicker(read_frames(encode(
                                       clip.truth, Path(tmp) / "cv.mp4", {"crf": "18"}, i420=opencv_i420)), pairs), 4),
                                   "frames_8px": round(region_flicker(clip.truth, pairs), 4),
                                   "file_8px": round(region_flicker(truth, pairs), 4)}}
            for model in args.models:
                res[model], outs = measure(clip, src, Path(tmp), model, strengths, args.encoders)
                if args.figure is not None and film == args.figure_film and model == fig_model:
                    title = (f"{film} film ({', '.join(f'{k} {v}' for k, v in FILMS[film].items())}), "
                             f"{model} model, {args.width}x{args.height}")
                    figure(clip, read_frames(src)[..., 0], outs, args.figure_strength, title, args.figure)
                    res["figure"] = str(args.figure)
            out["films"][film] = res
    print(json.dumps(out))
    summary(out)


def summary(out: dict) -> None:
    """The headline numbers, readable, on stderr (stdout has the JSON)."""
    from chromalab.video import DEFAULT_STRENGTH

    d = str(DEFAULT_STRENGTH)
    for film, res in out["films"].items():
        fl = res["floor"]
        print(f"{film} film, seed {out['seed']}: ground-truth floor per pixel: frames {fl['frames']}, 8-bit YCbCr "
              f"{fl['ycbcr444_8bit']}, 4:2:0 {fl['i420']} (OpenCV's {fl['i420_opencv']}), H.264 file {fl['file']} "
              f"(OpenCV's 4:2:0 {fl['file_opencv_i420']}); 8x8 px frames {fl['frames_8px']}, file {fl['file_8px']}",
              file=sys.stderr)
        for model, r in res.items():
            if not isinstance(r, dict) or "same_colour" not in r:
                continue
            a, b, sc = r["0.0"], r[d], r["same_colour"]
            print(f"  {model}, temporal {d} vs 0: per pixel frames {b['flicker']}/{a['flicker']} = "
                  f"{b['flicker_ratio']:.0%}, file {b['file_flicker']}/{a['file_flicker']} = {b['file_flicker_ratio']:.0%} "
                  f"(frozen colour: {sc['file']}, {sc['best_file_ratio']:.0%}); 8x8 px frames {b['flicker_8px_ratio']:.0%}, "
                  f"file {b['file_flicker_8px_ratio']:.0%}; working-size ab {b['flicker_work_ratio']:.0%}; above the frozen "
                  f"colour's frames flicker {b['flicker_above_floor_ratio']:.0%}; still: confidence "
                  f"{b['still_confidence']}, weight {b['still_weight']}; PSNR "
                  f"{b['psnr_gain_db']:+.3f} dB (still frames {b['psnr_gain_still_db']:+.3f}, moving "
                  f"{b['psnr_gain_moving_db']:+.3f}; file {b['file_psnr_gain_db']:+.3f}); cuts {b['cuts']} (truth "
                  f"{res['cuts']}), first frames identical: {b['cut_identical']}", file=sys.stderr)
            for k, x in r.items():
                if k[0].isdigit() and k not in ("0.0", d):
                    print(f"    temporal {k}: per pixel frames {x['flicker_ratio']:.0%}, file {x['file_flicker_ratio']:.0%}, "
                          f"PSNR {x['psnr_gain_db']:+.3f} dB", file=sys.stderr)
            for name, e in r.get("encoders", {}).items():
                print(f"    {name:28s} truth {e['truth']:.3f} per-frame {e['per_frame']:.3f} temporal {e['temporal']:.3f} "
                      f"ratio {e['ratio']:.0%} (8x8 {e['ratio_8px']:.0%}, frozen {e['best_ratio']:.0%}) "
                      f"PSNR {e['psnr_gain_db']:+.3f} {e['kB']} kB {e['encode_cpu_ms_per_frame']} ms/frame", file=sys.stderr)


if __name__ == "__main__":
    main()
