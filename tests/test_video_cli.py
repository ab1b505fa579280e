"""`chromalab colorize` on videos: folders mixing photos and videos, skip vs. make again by the
record in the container, bad videos, hints and vividness on every frame, Ctrl-C, the Python API.

The video is tiny (64x48, 12 frames, made here with PyAV); the model is a tiny ColorNet with
random weights that takes hints and a vividness, so every setting really changes the output.
"""

from __future__ import annotations

import hashlib
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from chromalab.batch import colorize_cli, plan_jobs  # noqa: E402
from chromalab.color import rgb_uint8_to_lab_fast  # noqa: E402
from chromalab.errors import ChromalabError  # noqa: E402
from chromalab.video import DEFAULT_STRENGTH, read_video_provenance  # noqa: E402

W, H, N, FPS = 64, 48, 12, 12
HINT = (16, 12)  # x, y in the frame


def make_video(path: Path, n: int = N) -> Path:
    """A gray H.264 film: a gradient drifting right with a bright square (texture the net can see)."""
    yy, xx = np.mgrid[0:H, 0:W]
    with av.open(str(path), "w") as o:
        s = o.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for t in range(n):
            g = 40 + 2.5 * ((xx + t) % W) + 0.8 * yy
            g[30:42, 40:54] = 220
            fr = av.VideoFrame.from_ndarray(np.clip(g, 0, 255).astype(np.uint8), format="gray")
            fr.pts, fr.time_base = t, Fraction(1, FPS)
            for p in s.encode(fr):
                o.mux(p)
        for p in s.encode(None):
            o.mux(p)
    return path


def read_video(path: Path) -> np.ndarray:
    """(n, H, W, 3) uint8 sRGB frames."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A tiny ColorNet (random weights) that takes hints and a vividness. Its first layer's weights on
    the hint channels are scaled up: at random init a hint moves the colour by only ~0.1-0.3 Lab
    units, below what H.264 keeps; a trained hint model moves it to the hint's colour."""
    import torch

    from chromalab.nets import ColorNet
    from chromalab.predictors.nets import save_net

    torch.manual_seed(2)
    net = ColorNet(width=4, depth=2, n_classes=3).eval()
    with torch.no_grad():
        net.stem.conv1.weight[:, 1:] *= 30  # input channels: L, hint a, hint b, hint mask
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_net(path, net, {"input_size": 64})
    return str(path)


@pytest.fixture
def folder(tmp_path) -> Path:
    """in/photo.png and in/film.mp4."""
    d = tmp_path / "in"
    d.mkdir()
    yy, xx = np.mgrid[0:40, 0:56]
    rgb = np.stack([xx * 4, yy * 5, 255 - xx * 3], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(d / "photo.png")
    make_video(d / "film.mp4")
    return d


def run(paths, out: Path, capsys, **kw) -> tuple[int, str, str]:
    code = colorize_cli([str(p) for p in paths], output=out, progress=False, **kw)
    cap = capsys.readouterr()
    return code, cap.out.strip(), cap.err


# ---- a folder of photos and videos -------------------------------------------------------------------
def test_folder_with_photo_and_video_both_done_then_skipped(folder, tmp_path, tiny, capsys):
    out = tmp_path / "out"
    code, summary, err = run([folder], out, capsys, model=tiny)
    assert code == 0, err
    assert summary.startswith("done 2, skipped 0, failed 0"), summary
    photo, film = out / "in" / "photo_color.png", out / "in" / "film_color.mp4"
    assert Image.open(photo).size == (56, 40)
    frames = read_video(film)
    assert frames.shape == (N, H, W, 3)  # every frame, the input's size
    chroma = np.sqrt((rgb_uint8_to_lab_fast(frames)[..., 1:] ** 2).sum(-1)).mean()
    assert chroma > 1.0  # colorized, not gray
    with av.open(str(film)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264" and v.average_rate == FPS
    rec = read_video_provenance(film)
    assert rec is not None
    assert rec["model"] == "tiny.safetensors" and len(rec["model_sha256"]) == 64 and rec["work_size"] == 64
    assert rec["temporal"] == DEFAULT_STRENGTH and rec["codec"] == "libx264" and rec["crf"] == 18
    assert rec["vividness"] == pytest.approx(0.5)  # the model's own, recorded
    before = {p: digest(p) for p in (photo, film)}

    code, summary, err = run([folder], out, capsys, model=tiny)
    assert code == 0 and summary.startswith("done 0, skipped 2, failed 0"), (summary, err)
    assert {p: digest(p) for p in (photo, film)} == before  # not touched

    code, summary, _ = run([folder], out, capsys, model=tiny, overwrite=True)
    assert code == 0 and summary.startswith("done 2, skipped 0, failed 0") and "replaced 2" in summary
    assert sorted(p.name for p in (out / "in").iterdir()) == ["film_color.mp4", "photo_color.png"]  # no leftovers


def test_vividness_or_temporal_makes_the_video_again(folder, tmp_path, tiny, capsys):
    out = tmp_path / "out"
    film = out / "in" / "film_color.mp4"
    assert run([folder], out, capsys, model=tiny)[0] == 0
    first = read_video(film)

    code, summary, _ = run([folder], out, capsys, model=tiny, temporal=0.0)
    assert code == 0 and summary.startswith("done 1, skipped 1, failed 0"), summary  # the photo is the same
    assert read_video_provenance(film)["temporal"] == 0.0
    assert run([folder], out, capsys, model=tiny, temporal=0.0)[1].startswith("done 0, skipped 2")

    code, summary, _ = run([folder], out, capsys, model=tiny, temporal=0.0, vividness=1.0)
    assert code == 0 and summary.startswith("done 2, skipped 0, failed 0"), summary  # both depend on it
    assert read_video_provenance(film)["vividness"] == 1.0
    vivid = read_video(film)
    assert np.abs(vivid.astype(int) - first).mean() > 0.5  # the setting reached every frame's model call

    code, summary, _ = run([folder], out, capsys, model=tiny, temporal=0.0, vividness=1.0, crf=30)
    assert code == 0 and summary.startswith("done 1, skipped 1"), summary  # the encoder's quality too
    assert read_video_provenance(film)["crf"] == 30


def test_a_video_made_another_way_is_made_again(folder, tmp_path, tiny, capsys):
    out = tmp_path / "out"
    (out / "in").mkdir(parents=True)
    make_video(out / "in" / "film_color.mp4", n=3)  # no record: not ours, or an older chromalab
    code, summary, _ = run([folder / "film.mp4"], out / "in", capsys, model=tiny)
    assert code == 0 and "replaced 1" in summary
    assert read_video(out / "in" / "film_color.mp4").shape[0] == N


def test_bad_video_is_one_line_and_the_rest_is_done(folder, tmp_path, tiny, capsys):
    (folder / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    (folder / "empty.mkv").write_bytes(b"")
    out = tmp_path / "out"
    code, summary, err = run([folder], out, capsys, model=tiny)
    assert code == 1
    assert summary.startswith("done 2, skipped 0, failed 2"), summary
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert [ln for ln in lines if "broken.mp4" in ln] == [f"error: {folder / 'broken.mp4'}: not a video file "
                                                          "(unrecognized format)"]
    assert [ln for ln in lines if "empty.mkv" in ln] == [f"error: {folder / 'empty.mkv'}: empty file (0 bytes), "
                                                         "not a video"]
    assert "Traceback" not in err
    assert sorted(p.name for p in (out / "in").iterdir()) == ["film_color.mp4", "photo_color.png"]


def test_interrupt_leaves_the_old_output_and_no_partial_file(folder, tmp_path, tiny, capsys, monkeypatch):
    from chromalab.video.frames import VideoColorizer

    out = tmp_path / "out"
    film = out / "film_color.mp4"
    assert run([folder / "film.mp4"], out, capsys, model=tiny)[0] == 0
    old = digest(film)

    def interrupted(self, items):
        raise KeyboardInterrupt

    monkeypatch.setattr(VideoColorizer, "colorize_prepared", interrupted)
    with pytest.raises(KeyboardInterrupt):
        colorize_cli([str(folder / "film.mp4")], output=out, model=tiny, temporal=0.3, progress=False)
    assert capsys.readouterr().out.startswith("interrupted: done 0, skipped 0, failed 0")
    assert os.listdir(out) == ["film_color.mp4"] and digest(film) == old  # no .part, old file whole


# ---- hints and vividness on every frame ----------------------------------------------------------------------
def _near_and_far(a: Path, b: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: mean |Δab| of two videos in 7x7 px around the hint, and in the far corner."""
    la, lb = rgb_uint8_to_lab_fast(read_video(a)), rgb_uint8_to_lab_fast(read_video(b))
    x, y = HINT
    d = np.abs(la[..., 1:] - lb[..., 1:]).sum(-1) / 2
    return d[:, y - 3 : y + 4, x - 3 : x + 4].mean(axis=(1, 2)), d[:, 30:, 44:].mean(axis=(1, 2))


def test_hints_apply_to_every_frame_near_the_point(folder, tmp_path, tiny, capsys):
    src = folder / "film.mp4"
    red = [{"x": HINT[0], "y": HINT[1], "color": "#ff0000"}]
    for t in (0.0, DEFAULT_STRENGTH):
        crf = 0 if t == 0 else None  # lossless H.264 first: the encoder's own differences do not blur the picture
        assert run([src], tmp_path / f"plain{t}", capsys, model=tiny, temporal=t, crf=crf)[0] == 0
        code, summary, err = run([src], tmp_path / f"hinted{t}", capsys, model=tiny, temporal=t, crf=crf, hints=red)
        assert code == 0, err
        near, far = _near_and_far(tmp_path / f"plain{t}" / "film_color.mp4", tmp_path / f"hinted{t}" / "film_color.mp4")
        assert near.min() > (1.0 if t == 0 else 0.5), (t, near)  # every frame, not just the first
        if t == 0:  # frame by frame: the change is at the point, not everywhere
            assert (near > 10 * far).all(), (near, far)
    plain = rgb_uint8_to_lab_fast(read_video(tmp_path / "plain0.0" / "film_color.mp4"))
    hinted = rgb_uint8_to_lab_fast(read_video(tmp_path / "hinted0.0" / "film_color.mp4"))
    dL = np.abs(hinted[..., 0] - plain[..., 0]).mean()
    assert dL < 1.5  # the film keeps its own lightness
    rec = read_video_provenance(tmp_path / "hinted0.0" / "film_color.mp4")
    assert rec["hints"] == [{"x": 16, "y": 12, "color": "#ff0000"}]

    # other hints: made again; the same: skipped
    blue = [{"x": HINT[0], "y": HINT[1], "color": "blue"}]
    again = run([src], tmp_path / "hinted0.0", capsys, model=tiny, temporal=0.0, crf=0, hints=blue)
    assert again[1].startswith("done 1, skipped 0") and "replaced 1" in again[1]
    same = run([src], tmp_path / "hinted0.0", capsys, model=tiny, temporal=0.0, crf=0, hints=blue)
    assert same[1].startswith("done 0, skipped 1")


def test_hint_outside_the_frame_is_one_line_and_nothing_is_written(folder, tmp_path, tiny, capsys):
    out = tmp_path / "out"
    code, summary, err = run([folder / "film.mp4"], out, capsys, model=tiny, hints=[{"x": 70, "y": 10, "color": "red"}])
    assert code == 1 and summary.startswith("done 0, skipped 0, failed 1")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"error: {folder / 'film.mp4'}: hint 1: (70, 10) is outside the 64x48 frame"], lines
    assert not out.exists() or list(out.iterdir()) == []


def test_hints_or_vividness_for_a_model_without_them_stop_before_any_work(folder, tmp_path, capsys):
    with pytest.raises(ChromalabError, match="takes no colour hints"):
        colorize_cli([str(folder)], output=tmp_path / "out", model="gray", progress=False,
                     hints=[{"x": 1, "y": 1, "color": "red"}])
    with pytest.raises(ChromalabError, match="no vividness setting"):
        colorize_cli([str(folder)], output=tmp_path / "out", model="gray", progress=False, vividness=0.3)
    assert not (tmp_path / "out").exists()


def test_python_api_hints_vividness_and_record(folder, tmp_path, tiny):
    import chromalab

    src = folder / "film.mp4"
    calls = []
    res = chromalab.colorize_video(src, tmp_path / "a.mp4", model=tiny, temporal=0.5, vividness=0.2,
                                   hints=[(HINT[0], HINT[1], (255, 0, 0))], progress=lambda d, t: calls.append(d))
    assert res.frames == N and calls[-1] == N
    rec = read_video_provenance(res.dst)
    assert rec["temporal"] == 0.5 and rec["vividness"] == 0.2 and rec["hints"] == [{"x": 16, "y": 12, "color": [255, 0, 0]}]
    plain = chromalab.colorize_video(src, tmp_path / "b.mp4", model=tiny, temporal=0.5, vividness=0.2)
    x, y = HINT
    a, b = read_video(res.dst).astype(int), read_video(plain.dst).astype(int)
    assert np.abs(a[:, y - 3 : y + 4, x - 3 : x + 4] - b[:, y - 3 : y + 4, x - 3 : x + 4]).mean() > 1.0
    with pytest.raises(ValueError, match="outside the 64x48 frame"):
        chromalab.colorize_video(src, tmp_path / "c.mp4", model=tiny, hints=[(10, 48, "red")])
    with pytest.raises(ValueError, match="vividness"):
        chromalab.colorize_video(src, tmp_path / "c.mp4", model=tiny, vividness=3)
    with pytest.raises(ValueError, match="takes no colour hints"):
        chromalab.colorize_video(src, tmp_path / "c.mp4", model="gray", hints=[(1, 1, "red")])
    assert not (tmp_path / "c.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4", "in"]


# ---- layout, options, help ------------------------------------------------------------------------------------
def test_layout_of_video_outputs(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    for name in ("film.mp4", "film.mkv", "sub/clip.MOV", "photo.jpg", "photo.avi", ".hidden.mp4", "notes.txt"):
        (d / name).write_bytes(b"x")
    jobs = plan_jobs([d], tmp_path / "out", side_by_side=True)
    got = {str(j.src.relative_to(d)): (str(j.out.relative_to(tmp_path / "out")), j.video, j.compare is not None)
           for j in jobs}
    assert got == {
        "film.mkv": ("in/film_mkv_color.mp4", True, False),  # two films would share film_color.mp4
        "film.mp4": ("in/film_mp4_color.mp4", True, False),
        "photo.avi": ("in/photo_color.mp4", True, False),
        "photo.jpg": ("in/photo_color.png", False, True),  # --side-by-side: photos only
        "sub/clip.MOV": ("in/sub/clip_color.mp4", True, False),
    }
    jobs = plan_jobs([d / "film.mkv"], tmp_path / "out", video_suffix=".webm")
    assert [j.out.name for j in jobs] == ["film_color.webm"]
    (tmp_path / "empty").mkdir()
    (err,) = plan_jobs([tmp_path / "empty"], tmp_path / "out")
    assert "no images in it" in err.error and ".mp4" in err.error


def test_output_file_and_codec_options(folder, tmp_path, tiny, capsys):
    src = folder / "film.mp4"
    code, summary, _ = run([src], tmp_path / "x.mkv", capsys, model=tiny)
    assert code == 0 and summary.endswith(f"wrote {tmp_path / 'x.mkv'}")
    with av.open(str(tmp_path / "x.mkv")) as c:
        assert c.format.name.startswith("matroska") and c.streams.video[0].codec_context.name == "h264"
    with pytest.raises(ChromalabError, match="a video's output is a video file"):
        colorize_cli([str(src)], output=tmp_path / "x.png", model=tiny, progress=False)
    with pytest.raises(ChromalabError, match="a photo's output is a PNG file"):
        colorize_cli([str(folder / "photo.png")], output=tmp_path / "y.mp4", model=tiny, progress=False)
    for kw, msg in [({"temporal": 2}, "--temporal must be a number in 0..1"),
                    ({"codec": "nope"}, "unknown video codec"),
                    ({"crf": 99}, "--crf 99 is out of range")]:
        with pytest.raises(ChromalabError, match=msg):
            colorize_cli([str(folder)], output=tmp_path / "o2", model=tiny, progress=False, **kw)
    assert not (tmp_path / "o2").exists()  # option errors come before any work
    # a codec MP4 cannot hold: the folder's video goes into WebM
    code, summary, err = run([src], tmp_path / "vp8", capsys, model=tiny, codec="vp8")
    assert code == 0, err
    assert os.listdir(tmp_path / "vp8") == ["film_color.webm"]
    assert read_video_provenance(tmp_path / "vp8" / "film_color.webm")["codec"] == "libvpx"
    # an -o that cannot hold the codec: one line for that video
    code, summary, err = run([src], tmp_path / "z.webm", capsys, model=tiny, codec="h264")
    assert code == 1 and "the libx264 codec cannot go in a .webm file" in err
    assert not (tmp_path / "z.webm").exists()


def test_side_by_side_says_photos_only(folder, tmp_path, tiny, capsys):
    code, summary, err = run([folder], tmp_path / "out", capsys, model=tiny, side_by_side=True)
    assert code == 0 and summary.startswith("done 2")
    assert "note: --side-by-side applies to photos only" in err
    assert sorted(p.name for p in (tmp_path / "out" / "in").iterdir()) == [
        "film_color.mp4", "photo_color.png", "photo_compare.png"]


def test_progress_bar_shows_frames_fps_and_eta():
    from rich.console import Console

    from chromalab.video.pipeline import progress_bar

    con = Console(record=True, width=160, force_terminal=False)
    bar, report = progress_bar("in/film [1] {x}.mp4", N, console=con)
    report(6, N)
    con.print(bar.make_tasks_table(bar.tasks))
    text = con.export_text()
    assert "colorizing in/film [1] {x}.mp4" in text  # the name as it is: no markup, no format fields
    assert "6/12 frames" in text and "fps" in text and "ETA" in text


def test_help_tells_the_video_options_and_defaults():
    from typer.testing import CliRunner

    from chromalab.cli import app

    r = CliRunner().invoke(app, ["colorize", "--help"], env={"COLUMNS": "240"})
    assert r.exit_code == 0
    text = " ".join(r.output.replace("│", " ").split())
    assert f"Default {DEFAULT_STRENGTH:g}." in text and "--temporal S" in text
    assert "--codec NAME" in text and "--crf N" in text and "h264 18" in text
    assert "Photos only: videos get NAME_color.mp4 alone" in text
    assert "A video gets the same points on every frame" in text


def test_record_is_json_in_the_comment_tag(folder, tmp_path, tiny, capsys):
    assert run([folder / "film.mp4"], tmp_path, capsys, model=tiny)[0] == 0
    with av.open(str(tmp_path / "film_color.mp4")) as c:
        tag = c.metadata["comment"]
    assert tag.startswith("chromalab {") and json.loads(tag[len("chromalab "):]) == read_video_provenance(
        tmp_path / "film_color.mp4")


def test_frame_api_with_hints_and_vividness_is_the_photo_pipeline(tmp_path, tiny):
    """Your own decoder: VideoColorizer with hints and a vividness gives, at temporal 0, every frame
    exactly as chromalab.colorize gives that frame as a photo with the same settings."""
    import chromalab
    from chromalab.errors import SettingError
    from chromalab.video import VideoColorizer

    gray = read_video(make_video(tmp_path / "f.mp4", n=4))[..., 0]
    hints = [(HINT[0], HINT[1], "#ff0000")]
    got = np.stack(list(VideoColorizer(tiny, 0.0, exact=True, hints=hints, vividness=0.9).colorize_frames(gray)))
    want = np.stack([np.asarray(chromalab.colorize(g, model=tiny, hints=hints, vividness=0.9)) for g in gray])
    assert np.array_equal(got, want)
    plain = np.stack(list(VideoColorizer(tiny, 0.0, exact=True).colorize_frames(gray)))
    assert not np.array_equal(got, plain)
    with pytest.raises(SettingError, match="outside the 64x48 image"):
        list(VideoColorizer(tiny, 0.0, hints=[(64, 0, "red")]).colorize_frames(gray))
    with pytest.raises(SettingError, match="not a colour"):
        VideoColorizer(tiny, 0.0, hints=[(1, 1, "notacolour")])
