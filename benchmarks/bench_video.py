"""Video colorization speed next to plain decode + re-encode, in the same run; one JSON line.

    python benchmarks/bench_video.py                 # 640x480, 300 frames, default model
    python benchmarks/bench_video.py --frames 100 --model vivid

The clip is the test film of :mod:`chromalab.video.testclip` (pans and zooms over four
photos, three cuts, grain, a 440 Hz AAC tone), encoded as gray H.264. Both runs write H.264
with the same settings (CRF 18, preset medium, yuv420p, FFmpeg's threads) and copy the
audio; the re-encode passes the decoded YUV frames straight to the encoder. Model loading is
done before timing (reported as ``load_s``). ``colorize_fps`` uses the default temporal
strength, ``per_frame_fps`` temporal=0. ``cpu_ms_per_frame`` counts every thread of the process (less
sensitive to other load than fps); ``temporal_cpu_ms_per_frame`` is the CPU the temporal step
adds (colorize minus per-frame). ``load_avg_1min`` says how busy the machine was.
Targets (issue 16): ratio >= 0.5 and colorize_fps >= 20 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def reencode(src: Path, dst: Path, crf: int) -> int:
    """Decode every frame and encode it again (libx264, the colorizer's settings); audio copied."""
    import av

    from chromalab.video.formats import encoder_options

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        v = inp.streams.video[0]
        v.thread_type = "AUTO"
        vs = out.add_stream("libx264", rate=v.average_rate, time_base=v.time_base,
                            options=encoder_options("libx264", crf))
        vs.width, vs.height, vs.pix_fmt = v.codec_context.width, v.codec_context.height, "yuv420p"
        audio = {a.index: out.add_stream_from_template(a) for a in inp.streams.audio}
        n = 0
        for pkt in inp.demux(v, *inp.streams.audio):
            if pkt.stream_index == v.index:
                for fr in pkt.decode():
                    for p in vs.encode(fr):
                        out.mux(p)
                    n += 1
            elif pkt.dts is not None:
                pkt.stream = audio[pkt.stream_index]
                out.mux(pkt)
        for p in vs.encode(None):
            out.mux(p)
    return n


def _cpu_s() -> float:
    """CPU seconds of this process, every thread (FFmpeg's, onnxruntime's) included."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds)."""
    w, c = time.perf_counter(), _cpu_s()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w, _cpu_s() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--model", default="default")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--temporal", type=float, default=None, help="default: the library's default strength")
    args = ap.parse_args()

    from chromalab.video import DEFAULT_STRENGTH, colorize_video_file, make_colorizer
    from chromalab.video.testclip import PHOTOS, render_clip, write_clip

    temporal = DEFAULT_STRENGTH if args.temporal is None else args.temporal
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "clip.mp4"
        clip = render_clip(args.width, args.height, args.frames, photos=PHOTOS)
        write_clip(clip, src, quality=18)
        del clip
        t = time.perf_counter()
        col = make_colorizer(args.model)
        load_s = time.perf_counter() - t
        colorize_video_file(src, Path(tmp) / "warm.mp4", col, temporal)  # warm caches, lazy imports

        n_ref, ref_s, ref_cpu = timed(reencode, src, Path(tmp) / "reencoded.mp4", args.crf)
        res, _, cpu = timed(colorize_video_file, src, Path(tmp) / "colorized.mp4", col, temporal, crf=args.crf)
        res0, _, cpu0 = timed(colorize_video_file, src, Path(tmp) / "per_frame.mp4", col, 0.0, crf=args.crf)
    reencode_fps = n_ref / ref_s
    line = {
        "bench": "video", "clip": f"{args.width}x{args.height}x{args.frames}", "model": args.model,
        "codec": f"libx264 crf {args.crf} preset medium yuv420p", "temporal": temporal,
        "reencode_fps": round(reencode_fps, 1), "colorize_fps": round(res.fps, 1),
        "per_frame_fps": round(res0.fps, 1), "ratio": round(res.fps / reencode_fps, 3),
        "targets_met": bool(res.fps / reencode_fps >= 0.5 and res.fps >= 20),
        "temporal_cpu_ms_per_frame": round(1000 * (cpu / res.frames - cpu0 / res0.frames), 2),
        "cpu_ms_per_frame": {"reencode": round(1000 * ref_cpu / n_ref, 1), "colorize": round(1000 * cpu / res.frames, 1),
                             "per_frame": round(1000 * cpu0 / res0.frames, 1)},
        "load_s": round(load_s, 2), "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
        "frames": res.frames,
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
