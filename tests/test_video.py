"""Video colorization: containers, audio copy, temporal stability, cuts, bad inputs, atomic output.

Everything runs on a tiny test film (96x64, 36 frames, three shots over scikit-image photos,
two hard cuts, grain on L in every frame, a 440 Hz tone) made by chromalab.video.testclip.
"""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from chromalab.color import lab_planes_to_rgb_uint8_fast, rgb_uint8_to_lab_fast  # noqa: E402
from chromalab.errors import ChromalabError, VideoError  # noqa: E402
from chromalab.video import (  # noqa: E402
    DEFAULT_STRENGTH,
    TemporalStabilizer,
    VideoColorizer,
    colorize_video_file,
    is_video_path,
    make_colorizer,
    probe,
)
from chromalab.video.compose import compose_frame, lab_to_rgb_uint8, upsample_ab  # noqa: E402
from chromalab.video.testclip import read_frames, render_clip, score, write_clip  # noqa: E402

W, H, N = 96, 64, 36


@pytest.fixture(scope="module")
def clip():
    return render_clip(W, H, N)


@pytest.fixture(scope="module")
def films(clip, tmp_path_factory) -> dict[str, Path]:
    """The test film in every input container: name -> path."""
    d = tmp_path_factory.mktemp("films")
    out = {name: write_clip(clip, d / name) for name in ("film.mp4", "film.mov", "film.mkv", "film.webm", "film.avi")}
    out["film_vp8.webm"] = write_clip(clip, d / "film_vp8.webm", codec="libvpx")
    return out


@pytest.fixture(scope="module")
def col():
    return make_colorizer("default")


def _packets(path: Path, kind: str) -> list[tuple[float, str]]:
    """(time in ms, sha1 of the payload) of every packet of the first stream of ``kind``."""
    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[0]
        return [(round(float(p.pts * p.time_base) * 1000), hashlib.sha1(bytes(p)).hexdigest())
                for p in c.demux(s) if p.size]


def _stream_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        return {"n": len(frames), "size": (frames[0].width, frames[0].height),
                "times": [round(float(f.time), 3) for f in frames], "codec": v.codec_context.name,
                "pix_fmt": v.codec_context.pix_fmt, "audio": [a.codec_context.name for a in c.streams.audio]}


def _no_leftovers(folder: Path, keep: set[str] = frozenset()) -> None:
    left = sorted(p.name for p in folder.iterdir() if p.name not in keep)
    assert left == [], f"left behind: {left}"


# ---- the happy path -------------------------------------------------------------------------------------
def test_is_video_path():
    for name in ("a.mp4", "b.MOV", "c.mkv", "d.webm", "e.avi", "f.m4v", "dir/film.Mp4"):
        assert is_video_path(name), name
    for name in ("a.png", "b.jpg", "c.gif", "mp4", "d.mp4.txt", "e"):
        assert not is_video_path(name), name


@pytest.mark.parametrize("name", ["film.mp4", "film.mov", "film.mkv", "film.webm", "film_vp8.webm", "film.avi"])
def test_every_container_in_h264_out_same_frames_fps_size_audio(films, col, tmp_path, name):
    src = films[name]
    info = probe(src)
    assert (info.width, info.height, info.n_frames, info.fps) == (W, H, N, Fraction(25))
    res = colorize_video_file(src, tmp_path / "out.mp4", col)
    assert res.frames == N and res.dst.is_file()
    got, want = _stream_facts(res.dst), _stream_facts(src)
    assert (got["n"], got["size"]) == (want["n"], want["size"]) == (N, (W, H))
    assert got["times"] == want["times"]  # same timestamps, so same frame rate and duration
    assert probe(res.dst).fps == info.fps
    assert (got["codec"], got["pix_fmt"]) == ("h264", "yuv420p")
    if name == "film.avi":  # PCM: MP4 cannot hold it, so AAC with a note; Matroska copies it
        assert got["audio"] == ["aac"] and any("re-encoded as aac" in n for n in res.notes)
        mkv = colorize_video_file(src, tmp_path / "out.mkv", col)
        assert _packets(mkv.dst, "audio") == _packets(src, "audio")
        mkv.dst.unlink()
    else:
        assert got["audio"] == want["audio"] and res.notes == []
        assert _packets(res.dst, "audio") == _packets(src, "audio")  # copied: same packets, same bytes
    rgb = read_frames(res.dst)
    chroma = np.sqrt((rgb_uint8_to_lab_fast(rgb)[..., 1:] ** 2).sum(-1)).mean()
    assert chroma > 3.0  # colorized, not gray
    _no_leftovers(tmp_path, {"out.mp4"})


def test_public_api_and_progress(films, tmp_path):
    import chromalab

    calls = []
    res = chromalab.colorize_video(films["film.mp4"], tmp_path / "x.mkv", temporal=0.5,
                                   progress=lambda done, total: calls.append((done, total)))
    assert res.frames == N and _stream_facts(res.dst)["n"] == N
    assert [d for d, _ in calls] == list(range(1, N + 1)) and all(t == N for _, t in calls)


def test_colour_input_keeps_its_l(clip, tmp_path, col):
    src = write_clip(clip, tmp_path / "colour.mp4", colour=True, audio=False)
    res = colorize_video_file(src, tmp_path / "out.mp4", col)
    inp, out = read_frames(src), read_frames(res.dst)
    dl = np.abs(rgb_uint8_to_lab_fast(out)[..., 0] - rgb_uint8_to_lab_fast(inp)[..., 0]).mean()
    assert dl < 1.5  # the colour is the model's, the lightness stays the film's (up to H.264)


def test_codec_crf_and_odd_size(clip, films, col, tmp_path):
    res = colorize_video_file(films["film.mp4"], tmp_path / "a.webm", col, codec="vp9", crf=40)
    assert _stream_facts(res.dst)["codec"] == "vp9" and _stream_facts(res.dst)["audio"] == ["opus"]
    small = colorize_video_file(films["film.mp4"], tmp_path / "lo.mp4", col, crf=40).dst.stat().st_size
    big = colorize_video_file(films["film.mp4"], tmp_path / "hi.mp4", col, crf=10).dst.stat().st_size
    assert big > 1.5 * small
    odd = render_clip(95, 63, 12)
    res = colorize_video_file(write_clip(odd, tmp_path / "odd.mp4", codec="ffv1"), tmp_path / "odd_out.mp4", col)
    assert _stream_facts(res.dst)["size"] == (96, 64) and res.frames == 12
    assert any("padded to 96x64" in n for n in res.notes)
    bad = [("h264", None, "x.webm", "cannot go in"), ("h264", 60, "x.mp4", "out of range"),
           ("ffv1", 20, "x.mkv", "does not apply"), ("nope", None, "x.mp4", "unknown video codec"),
           (None, None, "x.flv", "unknown output video suffix")]
    for codec, crf, out, msg in bad:
        with pytest.raises(VideoError, match=msg):
            colorize_video_file(films["film.mp4"], tmp_path / out, col, codec=codec, crf=crf)


def test_rotation_and_variable_frame_rate_kept(col, tmp_path):
    src = tmp_path / "phone.mkv"
    times_ms = [0, 40, 100, 120, 200, 210, 300, 340]  # irregular, as a phone records
    with av.open(str(src), "w") as o:
        s = o.add_stream("libx264", rate=25, time_base=Fraction(1, 1000))
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(90)
        for i, t in enumerate(times_ms):
            fr = av.VideoFrame.from_ndarray(np.full((48, 64), 20 + 25 * i, np.uint8), format="gray")
            fr.pts, fr.time_base = t, Fraction(1, 1000)
            for p in s.encode(fr):
                o.mux(p)
        for p in s.encode(None):
            o.mux(p)
    res = colorize_video_file(src, tmp_path / "out.mp4", col)
    assert _stream_facts(src)["times"] == [t / 1000 for t in times_ms]
    assert _stream_facts(res.dst)["times"] == [t / 1000 for t in times_ms]
    with av.open(str(res.dst)) as c:
        assert next(c.decode(video=0)).rotation == 90
    exact = colorize_video_file(write_clip(render_clip(95, 63, 4), tmp_path / "odd.mkv", codec="ffv1"),
                                tmp_path / "odd444.mp4", col, pix_fmt="yuv444p")
    assert _stream_facts(exact.dst)["size"] == (95, 63) and exact.notes == []


# ---- temporal consistency -------------------------------------------------------------------------------
def _work_flicker(vc: VideoColorizer, gray: np.ndarray, pairs: list[int]) -> float:
    items = [vc.prepare(g) for g in gray]
    ab = [vc.stabilizer.step(it.work, p) for it, p in zip(items, vc.colorizer.predict_work(items), strict=True)]
    return float(np.mean([np.sqrt(((ab[t] - ab[t - 1]) ** 2).sum(0)).mean() for t in pairs]))


def _region_flicker(frames: np.ndarray, pairs: list[int], k: int = 8) -> float:
    d = [cv2.blur(rgb_uint8_to_lab_fast(frames[t])[..., 1:] - rgb_uint8_to_lab_fast(frames[t - 1])[..., 1:], (k, k))
         for t in pairs]
    return float(np.mean([np.sqrt((x**2).sum(-1)).mean() for x in d]))


def test_temporal_halves_flicker_keeps_psnr_and_resets_at_cuts(clip, films, col):
    gray = read_frames(films["film.mp4"])[..., 0]  # (N, H, W): the decoded film
    pairs = clip.static_pairs()
    per = VideoColorizer(col, temporal=0.0)
    stab = VideoColorizer(col)
    f0, f1 = np.stack(list(per.colorize_frames(gray))), np.stack(list(stab.colorize_frames(gray)))
    s0, s1 = score(clip, f0), score(clip, f1)
    # the ab the stabiliser outputs flickers less than half as much as the per-frame prediction
    w0 = _work_flicker(VideoColorizer(col, temporal=0.0), gray, pairs)
    w1 = _work_flicker(VideoColorizer(col), gray, pairs)
    assert w1 <= 0.5 * w0, (w0, w1)
    # on the output frames: the colour of 8x8 regions too; per pixel it is lower (grain x uint8
    # rounding puts a floor under per-pixel |Δab| that no colorizer removes, see docs/video.md)
    assert _region_flicker(f1, pairs) <= 0.5 * _region_flicker(f0, pairs)
    assert s1["flicker"] < 0.75 * s0["flicker"]
    assert s1["psnr"] >= s0["psnr"] - 0.1
    # every cut found, nothing else; the first frame of a shot is the per-frame colorization
    assert stab.cuts == clip.cuts
    for c in clip.cuts:
        assert np.array_equal(f1[c], f0[c])
        assert not np.array_equal(f1[c + 1], f0[c + 1])  # and the history starts again after it


def test_temporal_zero_is_the_photo_pipeline(clip, col):
    from PIL import Image

    gray = clip.gray[:6]
    exact = np.stack(list(VideoColorizer(col, temporal=0.0, exact=True).colorize_frames(gray)))
    fast = np.stack(list(VideoColorizer(col, temporal=0.0).colorize_frames(gray)))
    photos = np.stack([np.asarray(col.colorize_image(Image.fromarray(g))) for g in gray])
    assert np.abs(exact.astype(int) - photos).max() <= 1  # batching may move a float by an ulp
    assert np.abs(fast.astype(int) - photos).max() <= 1  # the OpenCV composition, within one level
    rgb = np.stack(list(VideoColorizer(col, temporal=0.0).colorize_frames(np.repeat(gray[..., None], 3, 3))))
    assert np.array_equal(rgb, fast)  # gray given as RGB: the same L, the same result


def test_compose_equals_scikit_formulas():
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, (50, 60)).astype(np.float32)
    ab = rng.uniform(-120, 120, (50, 60, 2)).astype(np.float32)  # in and far out of gamut
    ref = lab_planes_to_rgb_uint8_fast(L, ab[..., 0], ab[..., 1])
    assert np.abs(lab_to_rgb_uint8(L, ab).astype(int) - ref).max() <= 1
    small = rng.normal(0, 20, (2, 6, 8)).astype(np.float32)
    assert upsample_ab(small, (60, 80)).shape == (60, 80, 2)
    assert compose_frame(L, small).shape == (50, 60, 3)


def test_writer_chroma_is_the_mean_of_each_2x2_block():
    from chromalab.video.writer import rgb_to_i420

    rng = np.random.default_rng(2)
    m = np.array([[-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0  # BT.601 limited range
    for h, w in ((64, 96), (62, 10), (2, 2)):  # H/2 even, odd, one block
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        i420 = rgb_to_i420(rgb)
        assert i420.shape == (h * 3 // 2, w) and i420.dtype == np.uint8
        assert np.array_equal(i420[:h], cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)[:h])  # Y: OpenCV's
        mean = rgb.reshape(h // 2, 2, w // 2, 2, 3).mean((1, 3))  # (h/2, w/2, 3)
        planes = i420.reshape(-1)[h * w :].reshape(2, h // 2, w // 2)  # U, V
        expected = np.rint(np.moveaxis(mean @ m.T + 128.0, -1, 0))
        assert np.abs(planes - expected).max() <= 1  # float32 against float64: a rounding tie at most
        assert (planes != expected).mean() < 0.01
    # a 1-px red/blue checker: every block is half red, half blue; OpenCV alone would take the
    # top-left pixel's (red) chroma for every block
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[::2, ::2] = rgb[1::2, 1::2] = (255, 0, 0)
    rgb[::2, 1::2] = rgb[1::2, ::2] = (0, 0, 255)
    u, v = rgb_to_i420(rgb).reshape(-1)[16:].reshape(2, 4)
    assert np.all(np.abs(u.astype(int) - 165) <= 1) and np.all(np.abs(v.astype(int) - 175) <= 1)


def test_stabiliser_alone():
    rng = np.random.default_rng(1)
    L = np.tile(np.linspace(10, 90, 64, dtype=np.float32), (48, 1))  # (48, 64)
    L += rng.normal(0, 3, L.shape).astype(np.float32)
    st = TemporalStabilizer(1.0)
    preds = [np.full((2, 48, 64), 20.0, np.float32) + rng.normal(0, 2, (2, 1, 1)).astype(np.float32) for _ in range(20)]
    outs = [st.step(L, p) for p in preds]
    assert np.array_equal(outs[0], preds[0]) and st.last.weight > 0.8
    assert np.std([o.mean() for o in outs[10:]]) < 0.4 * np.std([p.mean() for p in preds[10:]])
    other = np.ascontiguousarray(L[::-1, ::-1])  # another picture: a cut
    assert np.array_equal(st.step(other, preds[0]), preds[0]) and st.last.cut
    assert np.array_equal(TemporalStabilizer(0.0).step(L, preds[3]), preds[3])
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            TemporalStabilizer(bad)
    with pytest.raises(ChromalabError, match="--temporal"):
        VideoColorizer("gray", temporal=2)


def test_history_memory_is_longer_where_nothing_moves():
    import cv2

    from chromalab.video.temporal import MAX_WEIGHT, STILL_MEMORY

    rng = np.random.default_rng(3)
    big = cv2.GaussianBlur(rng.uniform(0, 100, (96, 160)).astype(np.float32), (0, 0), 3) * 3 - 100  # texture
    big = np.clip(big, 5, 95)
    ab = np.full((2, 48, 64), 10.0, np.float32)

    def weights(step_px: int) -> list[float]:
        st, out = TemporalStabilizer(0.9), []
        for t in range(8):
            L = big[20:68, 20 + step_px * t : 84 + step_px * t] + rng.normal(0, 0.5, (48, 64)).astype(np.float32)
            st.step(np.ascontiguousarray(L), ab)
            out.append(st.last.weight)
        return out[1:]

    still, moving = weights(0), weights(2)
    moving_w = MAX_WEIGHT * 0.9  # 0.855: a memory of 5.9 frames beyond the current one
    still_w = 1 - 1 / (1 + STILL_MEMORY * (1 / (1 - moving_w) - 1))  # 0.976
    assert min(still) > moving_w + 0.05 and max(still) <= still_w  # still: the long memory
    assert max(moving) <= moving_w and min(moving) > 0.3  # a 2-px pan: matched, the short memory


def test_model_settings_pass_through(col):
    with pytest.raises(ChromalabError, match="unknown model setting"):
        make_colorizer("default", sharpness=3)
    with pytest.raises(ChromalabError, match="cannot change a ready Colorizer"):
        make_colorizer(col, work_size=96)
    with pytest.raises(ChromalabError, match="only to vivid"):
        make_colorizer("gray", temperature=0.3)
    assert make_colorizer("gray", work_size=96).work_size == 96  # a Colorizer setting, passed through
    assert make_colorizer("default") is col  # cached: no reload per video


@pytest.mark.slow
def test_vivid_temperature_reaches_the_model(clip):
    from PIL import Image

    from chromalab.inference import Colorizer
    from chromalab.predictors.nets import set_temperature
    from chromalab.registry import load_predictor

    gray = clip.gray[:3]
    cold = np.stack(list(VideoColorizer("vivid", 0.0, exact=True, temperature=0.1).colorize_frames(gray)))
    warm = np.stack(list(VideoColorizer("vivid", 0.0, exact=True, temperature=1.0).colorize_frames(gray)))
    photo = Colorizer(set_temperature(load_predictor("vivid", progress=False), 0.1))
    want = np.stack([np.asarray(photo.colorize_image(Image.fromarray(g))) for g in gray])
    assert np.abs(cold.astype(int) - want).max() <= 1  # the photo pipeline at that temperature
    assert np.abs(cold.astype(int) - warm).mean() > 1  # and the setting matters


# ---- bad inputs and atomic output -----------------------------------------------------------------------
def _bad_inputs(d: Path, films: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """name -> (file, the message it must give)."""
    from PIL import Image

    out = {}
    (d / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    out["random bytes"] = (d / "random.mp4", "not a video file (unrecognized format)")
    (d / "empty.mp4").write_bytes(b"")
    out["empty"] = (d / "empty.mp4", "empty file (0 bytes), not a video")
    Image.new("RGB", (32, 32), (200, 10, 10)).save(d / "image.png")
    os.replace(d / "image.png", d / "image.mp4")
    out["a photo"] = (d / "image.mp4", "a still image (png), not a video")
    with av.open(str(d / "audio.mp4"), "w", format="mp4") as o:
        s = o.add_stream("aac", rate=48000)
        for i in range(10):
            f = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            f.sample_rate, f.pts = 48000, i * 1024
            for p in s.encode(f):
                o.mux(p)
    out["audio only"] = (d / "audio.mp4", "no video stream (audio only: aac)")
    data = films["film.avi"].read_bytes()
    (d / "unknown.avi").write_bytes(data.replace(b"FMP4", b"QQQQ"))  # a FourCC no decoder knows
    out["unsupported codec"] = (d / "unknown.avi", "unsupported video codec")
    for name in ("film.mp4", "film.mkv"):
        data = films[name].read_bytes()
        (d / f"cut_{name}").write_bytes(data[: len(data) // 2])
    out["truncated mp4"] = (d / "cut_film.mp4", "truncated")
    out["truncated mkv"] = (d / "cut_film.mkv", "truncated file: it stops at")
    with av.open(str(d / "faststart.mp4"), "w", options={"movflags": "faststart"}) as o:
        s = o.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for t in range(20):
            fr = av.VideoFrame.from_ndarray(np.full((48, 64), 8 * t, np.uint8), format="gray")
            fr.pts, fr.time_base = t, Fraction(1, 25)
            for p in s.encode(fr):
                o.mux(p)
        for p in s.encode(None):
            o.mux(p)
    data = (d / "faststart.mp4").read_bytes()
    (d / "cut_faststart.mp4").write_bytes(data[: len(data) * 2 // 3])
    out["truncated, index first"] = (d / "cut_faststart.mp4", "truncated file")
    with av.open(str(d / "zero.avi"), "w") as o:
        s = o.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        o.start_encoding()
    out["0 frames"] = (d / "zero.avi", "no video frames (0 frames)")
    out["missing"] = (d / "nope.mp4", "no such file")
    out["a folder"] = (d, "a folder, not a video file")
    return out


def test_bad_inputs_give_one_clear_line_and_leave_nothing(films, col, tmp_path):
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.mp4").write_bytes(b"an older output")
    for name, (path, msg) in _bad_inputs(src_dir, films).items():
        with pytest.raises(VideoError) as e:
            colorize_video_file(path, out_dir / "keep.mp4", col, label=f"IN/{path.name}")
        text = str(e.value)
        assert "\n" not in text and text.startswith(f"IN/{path.name}: "), (name, text)
        assert msg in text, (name, text)
        assert (out_dir / "keep.mp4").read_bytes() == b"an older output", name  # never half-written
        _no_leftovers(out_dir, {"keep.mp4"})


def test_interrupt_removes_the_partial_file(films, col, tmp_path):
    def interrupt(done, total):
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_video_file(films["film.mp4"], tmp_path / "out.mp4", col, progress=interrupt)
    _no_leftovers(tmp_path)
    res = colorize_video_file(films["film.mp4"], tmp_path / "out.mp4", col, DEFAULT_STRENGTH)
    assert res.frames == N  # the machinery is not left in a bad state
