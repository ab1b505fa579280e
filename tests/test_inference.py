"""inference.py: any-size colorization, backends (ONNX == torch), the Python API, fast colour maths."""

from __future__ import annotations

import io
import json
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab
from torch import nn

import chromalab
from chromalab import color
from chromalab.color import scale_L, unscale_ab
from chromalab.errors import ImageError, ModelError
from chromalab.inference import Colorizer, export_onnx, get_colorizer
from chromalab.predictors.base import Predictor
from chromalab.predictors.baselines import GrayPredictor

from .test_images import encode, photo


# ---- stand-in models --------------------------------------------------------------------------------------
class TinyNet(nn.Module):
    """A small fully convolutional net (stride 4) with BN, pooling and upsampling, like a U-Net."""

    net_stride = 4

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Upsample(scale_factor=4, mode="bilinear"), nn.Conv2d(8, 2, 3, padding=1), nn.Tanh(),
        )

    def forward(self, x):
        return 0.3 * self.body(x)  # |ab| <= 33 Lab units: colourful but mostly in gamut


class TinyNetPredictor(Predictor):
    name = "tiny-net"
    input_size = 64

    def __init__(self, seed: int = 0):
        torch.manual_seed(seed)
        self.net = TinyNet().eval()
        with torch.no_grad():  # non-trivial BN statistics
            bn = self.net.body[1]
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            self.net.body[8].bias.copy_(torch.tensor([0.8, -0.5]))  # a clear colour cast (a ~ +20, b ~ -15)

    def _predict(self, L):
        with torch.inference_mode():
            return unscale_ab(self.net(torch.from_numpy(scale_L(L))).numpy())


class Recorder(Predictor):
    """Records the shapes it is fed; predicts a = +20 on the left half, -20 on the right, b = 10."""

    name = "recorder"

    def __init__(self, input_size=None):
        self.input_size = input_size
        self.shapes = []

    def _predict(self, L):
        self.shapes.append(L.shape)
        ab = np.zeros((L.shape[0], 2, *L.shape[2:]), np.float32)
        w = L.shape[3]
        ab[:, 0, :, : w // 2] = 20
        ab[:, 0, :, w // 2 :] = -20
        ab[:, 1] = 10
        return ab


class RecorderNet(Recorder):
    """A Recorder that claims to be fully convolutional with stride 16 (numpy backend)."""

    stride = 16

    def __init__(self):
        super().__init__(input_size=64)
        self.net = nn.Identity()  # never run: backend="numpy"


def lab_of(im: Image.Image) -> np.ndarray:
    return rgb2lab(np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0)


@pytest.fixture(scope="module")
def tiny():
    return TinyNetPredictor()


# ---- colour maths -----------------------------------------------------------------------------------------
def test_fast_lab_to_rgb_matches_skimage():
    rng = np.random.default_rng(0)
    lab = np.stack([rng.uniform(0, 100, 20000), rng.uniform(-110, 110, 20000), rng.uniform(-110, 110, 20000)], -1)
    lab = lab.reshape(100, 200, 3).astype(np.float32)
    lab[0, :5] = [[0, 0, 0], [100, 0, 0], [50, 0, 0], [5, 3, 120], [60, -100, -110]]  # black, white, Z < 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.clip(lab2rgb(lab.astype(np.float64)), 0, 1)
    fast = color.lab_to_rgb_fast(lab)
    assert fast.dtype == np.float32 and fast.shape == lab.shape
    np.testing.assert_allclose(fast, ref, atol=1e-5)
    u8 = color.lab_planes_to_rgb_uint8_fast(lab[..., 0], lab[..., 1], lab[..., 2])
    diff = np.abs(u8.astype(int) - color.to_uint8(ref).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # only exact .5 rounding ties may differ


def test_fast_L_functions_match_skimage():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(color.rgb_uint8_to_L_fast(rgb), rgb2lab(rgb / 255.0)[..., 0], atol=2e-4)
    g = np.arange(256, dtype=np.uint8)
    ref = rgb2lab(np.repeat(g[:, None, None], 3, 2) / 255.0)[:, 0, 0]
    np.testing.assert_allclose(color.gray_to_L(g), ref, atol=2e-4)
    np.testing.assert_allclose(color.gray_to_L(g / 255.0), ref, atol=2e-4)
    with pytest.raises(ValueError):
        color.rgb_uint8_to_L_fast(rgb.astype(np.float32))
    with pytest.raises(ValueError):
        color.lab_planes_to_rgb_fast(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 2)))


@pytest.mark.parametrize("shape", [(768, 1024, 3), (1, 1, 3), (37, 5, 4), (1500, 1200, 3)])
def test_encode_png_round_trip(shape):
    import io

    from chromalab.inference import encode_png

    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    arr[: shape[0] // 2] //= 7  # some compressible rows too
    im = Image.open(io.BytesIO(encode_png(arr)))
    assert im.mode == ("RGB" if shape[2] == 3 else "RGBA")
    np.testing.assert_array_equal(np.asarray(im), arr)


@pytest.mark.parametrize("kind", ["bicubic", "bilinear"])
def test_ab_upsampling_equals_pillow(kind):
    from chromalab.inference import resample_rows, resample_taps, resize_plane

    rng = np.random.default_rng(0)
    for (h, w), (H, W) in [((48, 64), (768, 1024)), ((64, 64), (1, 1)), ((16, 64), (10, 1000)), ((5, 7), (5, 7))]:
        a = rng.normal(0, 30, (h, w)).astype(np.float32)
        cols = np.ascontiguousarray(resample_rows(np.ascontiguousarray(a.T), resample_taps(w, W, kind)).T)
        got = resample_rows(cols, resample_taps(h, H, kind))
        np.testing.assert_allclose(got, resize_plane(a, (W, H), kind), atol=1e-4)


def test_png_text_records_are_written_before_the_pixels_and_read_back(tmp_path):
    from chromalab.inference import (
        PROVENANCE_KEY,
        encode_png,
        provenance_text,
        read_png_text,
        read_provenance,
        save_png,
    )

    arr = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    rec = {"model": "default", "work_size": 64, "temperature": 0.2}
    data = encode_png(arr, text=provenance_text(rec))
    assert data.index(b"tEXt") < data.index(b"IDAT")
    im = Image.open(io.BytesIO(data))
    assert json.loads(im.info[PROVENANCE_KEY]) == rec and im.info["Software"].startswith("chromalab ")
    np.testing.assert_array_equal(np.asarray(im), arr)
    for i, what in enumerate([arr, Image.fromarray(arr)]):  # both encoders record it
        save_png(what, tmp_path / f"{i}.png", text=provenance_text(rec))
        assert read_provenance(tmp_path / f"{i}.png") == rec
    (tmp_path / "plain.png").write_bytes(encode_png(arr))
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\xff" * 40)
    os.mkfifo(tmp_path / "fifo.png")  # never opened (it would block)
    for name in ("plain.png", "junk.png", "fifo.png", "missing.png"):
        assert read_png_text(tmp_path / name, PROVENANCE_KEY) is None and read_provenance(tmp_path / name) is None
    col = Colorizer(Recorder())
    col.colorize_file(tmp_path / "0.png", tmp_path / "api.png")
    assert read_provenance(tmp_path / "api.png") == {"model": "recorder", "work_size": 64}


# ---- any size ------------------------------------------------------------------------------------------------
def test_model_sees_working_size_and_output_has_input_size():
    rec = Recorder()
    col = Colorizer(rec)
    for (w, h), seen in {(1024, 768): (48, 64), (64, 64): (64, 64), (1, 1): (64, 64), (30, 1000): (64, 2)}.items():
        out = col.colorize_image(Image.fromarray(photo(h, w)))
        assert out.size == (w, h) and out.mode == "RGB"
        assert rec.shapes[-1] == (1, 1, *seen)
    fixed = Recorder(input_size=28)  # a fixed-size model gets its own square size
    Colorizer(fixed).colorize_image(Image.fromarray(photo(48, 64)))
    assert fixed.shapes[-1] == (1, 1, 28, 28)


def test_working_size_multiple_of_stride_and_adjustable():
    rec = RecorderNet()
    col = Colorizer(rec, backend="numpy")
    assert col.stride == 16 and col.fully_conv
    assert col.work_shape(768, 1024) == (48, 64)
    assert col.work_shape(10, 1000) == (16, 64)
    assert col.work_shape(1000, 700) == (64, 48)
    big = Colorizer(rec, backend="numpy", work_size=128)
    assert big.work_shape(768, 1024) == (96, 128)
    big.colorize_image(Image.fromarray(photo(96, 128)))
    assert rec.shapes[-1] == (1, 1, 96, 128)


def test_work_size_is_bounded_and_big_work_sizes_go_through_the_net_in_small_passes():
    from chromalab.inference import MAX_WORK_SIZE, WORK_PIXELS_PER_PASS

    for bad in (0, MAX_WORK_SIZE + 1, 100_000):
        with pytest.raises(chromalab.errors.ChromalabError, match=f"give 1 to {MAX_WORK_SIZE}"):
            Colorizer(GrayPredictor(), work_size=bad)
    rec = RecorderNet()
    col = Colorizer(rec, backend="numpy", work_size=MAX_WORK_SIZE, batch_size=64)
    items = [col.prepare(Image.fromarray(photo(60, 80, seed=i))) for i in range(10)]
    assert items[0].work.shape == (384, 512)
    rec.shapes.clear()
    assert len(col.predict_work(items)) == 10
    assert sum(s[0] for s in rec.shapes) == 10 and len(rec.shapes) > 1
    assert all(s[0] * s[2] * s[3] <= WORK_PIXELS_PER_PASS for s in rec.shapes), rec.shapes
    small = Colorizer(rec, backend="numpy", batch_size=64)  # the usual 64 px: one pass for the batch
    rec.shapes.clear()
    small.predict_work([small.prepare(Image.fromarray(photo(60, 80, seed=i))) for i in range(10)])
    assert [s[0] for s in rec.shapes] == [10]


def test_original_L_is_kept_and_ab_is_placed_right():
    rgb = photo(300, 400)
    out = Colorizer(Recorder()).colorize_image(Image.fromarray(rgb))
    lab_in, lab_out = lab_of(Image.fromarray(rgb)), lab_of(out)
    assert np.abs(lab_in[..., 0] - lab_out[..., 0]).mean() < 0.5
    # left part reddish (a = +20), right part greenish (a = -20), b = +10 throughout (where in gamut)
    assert np.median(lab_out[:, :150, 1]) > 15 and np.median(lab_out[:, 250:, 1]) < -15
    assert abs(np.median(lab_out[..., 2]) - 10) < 3


def test_colour_input_is_reduced_to_L_first():
    rgb = photo(48, 64)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    col = Colorizer(GrayPredictor())
    a = np.asarray(col.colorize_image(Image.fromarray(rgb)))
    assert np.abs(a[..., 0].astype(int) - a[..., 1]).max() <= 1  # gray model: R = G = B (up to rounding)
    lab_in = rgb2lab(rgb / 255.0)[..., 0]
    assert np.abs(lab_of(Image.fromarray(a))[..., 0] - lab_in).mean() < 0.5
    np.testing.assert_allclose(lab_of(Image.fromarray(a))[..., 0], lab_in, atol=0.6)
    # Lab L, not Pillow's luma (ITU-R 601 on gamma-encoded values), drives the output
    assert np.abs(a[..., 0].astype(int) - gray).max() > 2


def test_64px_input_matches_the_evaluation_path(tiny):
    """At the training size nothing is resized: the output is compose_rgb_uint8(L, predict_ab(L))."""
    rgb = photo(64, 64, seed=3)
    L = color.rgb_uint8_to_lab_fast(rgb)[..., 0][None, None]
    ref = color.compose_rgb_uint8(L, tiny.predict_ab(L))[0]
    for backend in ("onnx", "torch", "numpy"):
        out = np.asarray(Colorizer(tiny, backend=backend).colorize_image(Image.fromarray(rgb)))
        assert np.abs(out.astype(int) - ref).max() <= 1, backend


def test_alpha_is_kept():
    rgb = photo(48, 64)
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    col = Colorizer(Recorder())
    for im in (Image.fromarray(np.dstack([rgb, alpha])), Image.fromarray(np.dstack([rgb, alpha])).convert("LA")):
        out = col.colorize_image(im)
        assert out.mode == "RGBA" and out.size == (64, 48)
        np.testing.assert_array_equal(np.asarray(out)[..., 3], alpha)


def test_side_by_side():
    rgb = photo(48, 64)
    out = Colorizer(Recorder()).colorize_image(Image.fromarray(rgb), side_by_side=True)
    assert out.size == (128, 48)
    lab = lab_of(out)
    assert np.abs(lab[:, :64, 1:]).max() < 1.0  # left: gray
    np.testing.assert_allclose(lab[:, :64, 0], lab[:, 64:, 0], atol=1.0)  # same L on both halves
    assert np.abs(lab[:, 64:, 1]).mean() > 10  # right: colour


def test_batch_equals_one_by_one(tiny):
    col = Colorizer(tiny)
    ims = [Image.fromarray(photo(h, w, seed=s)) for s, (h, w) in enumerate([(48, 64), (64, 64), (48, 64), (7, 5)])]
    batch = col.colorize_batch(ims)
    for im, b in zip(ims, batch, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(col.colorize_image(im)))


def test_pixel_limit_for_pil_images():
    col = Colorizer(Recorder(), max_pixels=1000)
    with pytest.raises(ImageError, match="over the limit of 1,000"):
        col.colorize_image(Image.fromarray(photo(48, 64)))


# ---- backends ------------------------------------------------------------------------------------------------
def test_onnx_equals_torch_within_1e4(tiny):
    onnx_col = Colorizer(tiny, backend="onnx")
    torch_col = Colorizer(tiny, backend="torch")
    cl_col = Colorizer(tiny, backend="torch", channels_last=True)
    assert (onnx_col.backend, torch_col.backend) == ("onnx", "torch")
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 64, 64), (5, 1, 48, 64), (2, 1, 4, 132)]:
        L = (rng.random(shape, dtype=np.float32) * 100).astype(np.float32)
        a = onnx_col.engine.predict_ab(L)
        b = torch_col.engine.predict_ab(L)
        c = cl_col.engine.predict_ab(L)
        assert a.shape == (shape[0], 2, *shape[2:])
        assert np.abs(color.scale_ab(a) - color.scale_ab(b)).max() < 1e-4
        assert np.abs(b - c).max() < 1e-4
        np.testing.assert_allclose(tiny.predict_ab(L), b, atol=1e-4)


def test_auto_backend_picks_onnx_for_nets_numpy_otherwise(tiny):
    assert Colorizer(tiny).backend == "onnx"
    assert Colorizer(GrayPredictor()).backend == "numpy"
    with pytest.raises(ModelError, match="needs a network"):
        Colorizer(GrayPredictor(), backend="torch")


def test_predictor_doing_more_than_its_net_is_respected(tiny):
    class Boosted(TinyNetPredictor):
        def _predict(self, L):
            return 2 * super()._predict(L)

    p = Boosted()
    assert Colorizer(p).backend == "numpy"  # the net alone would give other colours
    with pytest.raises(ModelError, match="differs from its .net"):
        Colorizer(p, backend="onnx")


def test_export_onnx_metadata_and_file(tmp_path, tiny):
    import onnxruntime as ort

    p = tmp_path / "m.onnx"
    export_onnx(tiny.net, p, {"input_size": 64, "stride": 4})
    s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    assert s.get_modelmeta().custom_metadata_map["stride"] == "4"
    L = np.full((3, 1, 8, 12), 50.0, np.float32)
    np.testing.assert_allclose(s.run(None, {"L": L})[0], tiny.predict_ab(L), atol=1e-4 * 110)


def test_concurrent_calls_give_the_same_results(tiny):
    col = Colorizer(tiny)
    ims = [Image.fromarray(photo(40 + 8 * i, 64, seed=i)) for i in range(6)]
    expect = [np.asarray(col.colorize_image(im)) for im in ims]
    results: dict[int, np.ndarray] = {}
    errors = []

    def work(k):
        try:
            for _ in range(3):
                results[k] = np.asarray(col.colorize_image(ims[k % len(ims)]))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, r in results.items():
        np.testing.assert_array_equal(r, expect[k % len(ims)])


# ---- Python API ------------------------------------------------------------------------------------------------
def test_public_colorize_accepts_paths_bytes_pil_and_arrays(tmp_path, tiny):
    rgb = photo(48, 64)
    p = tmp_path / "ph oto ü.png"
    p.write_bytes(encode(Image.fromarray(rgb), "PNG"))
    ref = np.asarray(chromalab.colorize(Image.fromarray(rgb), model=tiny))
    for src in (p, str(p), p.read_bytes(), rgb):
        out = chromalab.colorize(src, model=tiny)
        assert isinstance(out, Image.Image) and out.size == (64, 48)
        np.testing.assert_array_equal(np.asarray(out), ref)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    assert chromalab.colorize(gray, model=tiny).size == (64, 48)
    assert chromalab.colorize(gray.astype(np.uint16) * 257, model=tiny).size == (64, 48)
    with pytest.raises(ImageError, match="cannot colorize an array"):
        chromalab.colorize(np.zeros((2, 2, 2, 2)), model=tiny)


def test_colorizers_are_cached_per_model_and_options(tiny):
    assert get_colorizer(tiny) is get_colorizer(tiny)
    assert get_colorizer(tiny, work_size=128) is not get_colorizer(tiny)
    assert get_colorizer("gray") is get_colorizer("gray")
    c = Colorizer(tiny)
    assert get_colorizer(c) is c


def test_unknown_model_and_bad_options():
    with pytest.raises(ModelError, match="unknown model"):
        Colorizer("no-such-model")
    with pytest.raises(chromalab.errors.ChromalabError, match="unknown backend"):
        Colorizer(GrayPredictor(), backend="gpu")


# ---- weights files and the ONNX cache -------------------------------------------------------------------------
@pytest.fixture
def unet_file(tmp_path):
    from chromalab.predictors.nets import build_net, save_net

    torch.manual_seed(0)
    net = build_net("unet", width=4, depth=2)
    return save_net(tmp_path / "small.safetensors", net, {"name": "small", "input_size": 64})


def test_weights_file_exported_once_then_loaded_without_the_predictor(unet_file, monkeypatch, tmp_path):
    import os

    from chromalab import registry

    first = Colorizer(str(unet_file))
    assert first.backend == "onnx" and first.predictor is not None and first.stride == 4
    cached = list(Path(os.environ["CHROMALAB_CACHE"]).glob("onnx/*.onnx"))
    assert len(cached) == 1

    def no_loading(*a, **k):
        raise AssertionError("the predictor should not be loaded when the ONNX file is cached")

    with monkeypatch.context() as m:  # only this patch is undone below, not the test's isolated cache
        m.setattr(registry, "load_predictor", no_loading)
        second = Colorizer(str(unet_file))
        assert second.predictor is None and second.backend == "onnx" and second.stride == 4
        assert second.work_size == 64
        assert len(list(Path(os.environ["CHROMALAB_CACHE"]).glob("onnx/*-opt-*.onnx"))) == 1  # optimized graph kept
        again = Colorizer(str(unet_file))  # from the optimized graph
        assert again.predictor is None
    im = Image.fromarray(photo(90, 120))
    np.testing.assert_array_equal(np.asarray(first.colorize_image(im)), np.asarray(second.colorize_image(im)))
    np.testing.assert_array_equal(np.asarray(again.colorize_image(im)), np.asarray(second.colorize_image(im)))
    # other weights -> another cache entry, not the stale one (in this test's own cache: a monkeypatch.undo()
    # here used to undo the isolated $CHROMALAB_CACHE too, so the user cache of an earlier run answered)
    from chromalab.predictors.nets import build_net, save_net

    torch.manual_seed(1)
    other = build_net("unet", width=4, depth=2)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.25)  # certainly not the fixture's weights, whatever the global RNG did
    save_net(unet_file, other, {"name": "small"})
    third = Colorizer(str(unet_file))
    assert third.model_sha256 != first.model_sha256
    assert third.predictor is not None
    assert not np.array_equal(np.asarray(third.colorize_image(im)), np.asarray(second.colorize_image(im)))


def test_bundled_style_sibling_onnx_is_used_and_checked(unet_file, monkeypatch, tmp_path, capsys):
    from chromalab import registry
    from chromalab.inference import export_onnx_cli

    sibling = unet_file.with_suffix(".onnx")
    assert export_onnx_cli(str(unet_file), sibling) == sibling
    assert "max |onnx - torch|" in capsys.readouterr().out
    monkeypatch.setattr(registry, "load_predictor", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    col = Colorizer(str(unet_file), onnx_cache=False)
    assert col.predictor is None
    sibling.write_bytes(b"garbage")  # a broken or stale sibling is ignored, not trusted
    monkeypatch.undo()
    assert Colorizer(str(unet_file), onnx_cache=False).predictor is not None


def test_unwritable_cache_falls_back_to_memory(unet_file, monkeypatch, tmp_path):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_bytes(b"x")
    monkeypatch.setenv("CHROMALAB_CACHE", str(blocker))
    col = Colorizer(str(unet_file))
    assert col.backend == "onnx"
    assert col.colorize_image(Image.fromarray(photo())).size == (64, 48)


def test_export_cli_refuses_non_nets(capsys):
    from chromalab.inference import export_onnx_cli

    with pytest.raises(ModelError, match="not a network model"):
        export_onnx_cli("gray")


def test_colorize_process_with_cached_onnx_never_imports_torch(unet_file, tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "one.jpg").write_bytes(encode(Image.fromarray(photo(96, 128)), "JPEG"))
    cmd = [sys.executable, "-X", "importtime", "-m", "chromalab.cli", "colorize", "one.jpg", "--model", str(unet_file),
           "-o", "o", "--overwrite"]
    env = dict(os.environ)
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0 and second.stdout.startswith("done 1, skipped 0, failed 0")
    mods = {ln.split("|")[-1].strip() for ln in second.stderr.splitlines() if ln.startswith("import time:")}
    assert "onnxruntime" in mods
    assert not {m.split(".")[0] for m in mods} & {"torch", "lightning", "sklearn", "skimage", "kornia", "scipy"}
