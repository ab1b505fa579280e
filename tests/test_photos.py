"""Real-photo evaluation (chromalab.photos, `chromalab evaluate --photos`): sizes, exclusions, the
numbers against hand-computed references, floods, and the training-time sweep matching the public path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from chromalab.cli import app
from chromalab.inference.colorizer import Colorizer
from chromalab.metrics import psnr_per_image
from chromalab.photos import FLOOD_DB, Photo, evaluate_photos, load_photos, summarize
from chromalab.predictors.base import Predictor

runner = CliRunner()


def _scene(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like scene: blue sky over green ground, with a gradient (so L varies)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float64)
    yy = np.linspace(0, 1, h)[:, None]
    img[: h // 2] = [70, 130, 220]
    img[h // 2 :] = [60, 150, 60]
    img *= (0.6 + 0.4 * yy)[..., None]
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def photo_dir(tmp_path):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(_scene(600, 900, 0)).save(d / "wide.jpg", quality=95)
    Image.fromarray(_scene(300, 200, 1)).save(d / "sub" / "small.png")
    Image.fromarray(_scene(200, 200, 2)).convert("L").save(d / "gray.png")
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    return d


class RedPredictor(Predictor):
    """Paints every pixel the same strong red: a flood."""

    name = "red"

    def _predict(self, L):
        out = np.empty((L.shape[0], 2, L.shape[2], L.shape[3]), np.float32)
        out[:, 0], out[:, 1] = 60.0, 40.0
        return out


def test_load_photos_scales_excludes_and_lists(photo_dir):
    photos, excluded, failed = load_photos(photo_dir, long_side=512, progress=False)
    sizes = {p.name: p.rgb.shape for p in photos}
    assert sizes == {"wide.jpg": (341, 512, 3), "sub/small.png": (300, 200, 3)}  # 900x600 -> 512x341; small kept
    assert excluded == 1  # the grayscale original
    assert len(failed) == 1 and "broken.jpg" in failed[0] and "\n" not in failed[0]


def test_gray_scores_zero_gain_and_no_colour(photo_dir):
    photos, _, _ = load_photos(photo_dir, progress=False)
    r = evaluate_photos(Colorizer("gray"), photos, progress=False)
    assert abs(r["gain"]) < 0.05 and r["beat_gray"] == 0.0 and r["floods"] == 0
    assert r["cool_recall"] == 0.0
    ref = np.mean([psnr_per_image(p.rgb[None], p.gray[None])[0] for p in photos])
    assert r["psnr_gray"] == pytest.approx(ref, abs=1e-9)


def test_a_red_flood_is_counted(photo_dir):
    photos, _, _ = load_photos(photo_dir, progress=False)
    r = evaluate_photos(Colorizer(RedPredictor(), backend="numpy"), photos, progress=False, keep_outputs=True)
    assert r["floods"] == 2 and r["flood_share"] == 1.0 and r["worst_gain"] < -FLOOD_DB
    assert r["cool_recall"] == 0.0  # sky and grass painted red: no cool pixel right
    out = r["outputs"][0]
    assert out.shape == photos[0].rgb.shape and out[..., 0].mean() > out[..., 2].mean() + 30  # it is red
    # per-photo PSNR against a direct computation
    row = r["per_photo"][0]
    assert row["psnr"] == pytest.approx(psnr_per_image(photos[0].rgb[None], out[None])[0], abs=1e-9)


def test_summarize_against_hand_numbers():
    rows = [{"name": n, "psnr": 20.0 + g, "psnr_gray": 20.0, "gain": g, "ssim": 0.9, "ssim_gray": 0.9}
            for n, g in (("a", 1.0), ("b", -4.0), ("c", 0.005), ("d", 2.0))]
    s = summarize(rows)
    assert s["gain"] == pytest.approx(-0.24875)
    assert s["beat_gray"] == 0.5  # a and d; c's 0.005 dB is rounding, not a win
    assert s["floods"] == 1 and s["flood_names"] == ["b"] and s["worst_gain"] == -4.0
    assert s["median_gain"] == pytest.approx(0.5025)


def test_cli_photos_json(photo_dir, tmp_path):
    out = tmp_path / "p.json"
    res = runner.invoke(app, ["evaluate", "gray", "--photos", str(photo_dir), "--long-side", "256", "--json",
                              str(out), "--per-photo"])
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    assert m["count"] == 2 and m["excluded"] == 1 and m["unreadable"] == 1 and m["long_side"] == 256
    assert {"gain", "beat_gray", "floods", "cool_recall", "delta_cf", "psnr_gray", "per_photo"} <= set(m)
    assert "skipped:" in res.output and "broken.jpg" in res.output
    assert "sub/small.png" in res.output  # --per-photo lists each photo


def test_cli_photos_vividness_on_a_model_without_one(photo_dir):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "chromalab.cli", "evaluate", "gray", "--photos", str(photo_dir),
                          "--vividness", "0.5"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert (res.stdout + res.stderr).strip().splitlines()[-1] == ("error: gray: this model has no vividness setting (the colour "
                                                   "models default and guided have one)")


def test_photo_sweep_equals_the_public_path(photo_dir):
    import torch

    from chromalab.nets import ColorNet
    from chromalab.photos import photo_heads, photo_metrics_at
    from chromalab.predictors.nets import ColorNetPredictor

    torch.manual_seed(0)
    net = ColorNet(width=4, depth=2, n_classes=3, out_stride=2, vividness=0.5, t_blend=0.5, t_vivid=0.3)
    with torch.no_grad():  # a net that colours: random heads at a visible scale
        net.head.weight.mul_(20)
        net.cls_head.weight.mul_(20)
    photos, _, _ = load_photos(photo_dir, progress=False)
    col = Colorizer(ColorNetPredictor(net, name="t"), backend="torch", work_size=64)
    for v in (0.0, 0.6):
        ref = evaluate_photos(col, photos, vividness=v, progress=False)
        got = photo_metrics_at(net, photo_heads(net, photos), photos, v)
        assert got["gain"] == pytest.approx(ref["gain"], abs=1e-4)
        assert got["cool_recall"] == pytest.approx(ref["cool_recall"], abs=1e-4)
        assert got["floods"] == ref["floods"]


def test_photo_gray_is_cached_and_uses_its_own_L():
    from chromalab.color import rgb_uint8_to_lab_fast

    p = Photo("x", _scene(40, 60, 3))
    g = p.gray
    assert g is p.gray and np.abs(g.astype(int) - g[..., :1]).max() <= 1  # R = G = B up to rounding
    L_in, L_gray = rgb_uint8_to_lab_fast(p.rgb)[..., 0], rgb_uint8_to_lab_fast(g)[..., 0]
    assert np.abs(L_in - L_gray).max() < 0.5  # 8-bit rounding only
