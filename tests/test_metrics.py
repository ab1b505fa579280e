import numpy as np
import pytest
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from chromalab import metrics


@pytest.fixture
def pair():
    rng = np.random.default_rng(7)
    gt = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    noise = rng.integers(-40, 41, gt.shape)
    pred = np.clip(gt.astype(int) + noise, 0, 255).astype(np.uint8)
    pred[2] = gt[2]  # one exact image
    return gt, pred


def test_psnr_matches_skimage(pair):
    gt, pred = pair
    ours = metrics.psnr_per_image(gt, pred)
    for i in (0, 1, 3, 4):
        assert abs(ours[i] - peak_signal_noise_ratio(gt[i], pred[i], data_range=255)) < 1e-6
    assert ours[2] == metrics.PSNR_CAP_DB


def test_ssim_matches_skimage(pair):
    gt, pred = pair
    ours = metrics.ssim_per_image(gt, pred)
    for i in range(len(gt)):
        ref = structural_similarity(gt[i], pred[i], channel_axis=-1, data_range=255)
        assert abs(ours[i] - ref) < 1e-6


def test_ssim_on_real_like_images():
    # smooth images where SSIM is high, as on real photos
    yy, xx = np.mgrid[0:64, 0:64]
    gt = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)[None]
    pred = np.clip(gt.astype(int) + 6, 0, 255).astype(np.uint8)
    ref = structural_similarity(gt[0], pred[0], channel_axis=-1, data_range=255)
    assert abs(metrics.ssim_per_image(gt, pred)[0] - ref) < 1e-6


def test_mse_l1(pair):
    gt, pred = pair
    a, b = gt.astype(float) / 255, pred.astype(float) / 255
    for i in range(len(gt)):
        assert abs(metrics.mse_per_image(a, b)[i] - mean_squared_error(a[i], b[i])) < 1e-12
    np.testing.assert_allclose(metrics.l1_per_image(a, b), np.abs(a - b).reshape(5, -1).mean(1))


def test_r2():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(4, 2, 8, 8))
    p = t + rng.normal(scale=0.5, size=t.shape)
    tt = t.transpose(0, 2, 3, 1).reshape(-1, 2)
    pp = p.transpose(0, 2, 3, 1).reshape(-1, 2)
    expected = 1 - ((tt - pp) ** 2).sum() / ((tt - tt.mean(0)) ** 2).sum()
    assert abs(metrics.r2_score_ab(t, p) - expected) < 1e-12
    acc = metrics.R2Accumulator()
    acc.update(t[:2], p[:2])
    acc.update(t[2:], p[2:])
    assert abs(acc.value() - expected) < 1e-12
    assert metrics.r2_score_ab(t, t) == 1.0
    # predicting each channel's mean gives 0
    mean = np.broadcast_to(t.mean(axis=(0, 2, 3), keepdims=True), t.shape)
    assert abs(metrics.r2_score_ab(t, mean)) < 1e-12


def test_colorfulness_hand_computed():
    img = np.zeros((1, 2, 1, 3), np.uint8)
    img[0, 0, 0] = [200, 100, 50]  # rg=100, yb=100
    img[0, 1, 0] = [100, 100, 100]  # rg=0, yb=0
    rg = np.array([100.0, 0.0])
    yb = np.array([100.0, 0.0])
    expected = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    assert abs(metrics.colorfulness_per_image(img)[0] - expected) < 1e-9
    gray = np.full((1, 8, 8, 3), 77, np.uint8)
    assert metrics.colorfulness_per_image(gray)[0] == 0.0


def test_accumulator_keys_and_delta_cf(pair):
    gt, pred = pair
    ab = np.zeros((5, 2, 64, 64), np.float32)
    acc = metrics.MetricAccumulator()
    acc.update(gt, pred, ab + 1, ab)
    m = acc.compute()
    for k in ("psnr", "ssim", "mse", "l1", "mse_rgb", "l1_rgb", "r2", "cf", "delta_cf"):
        assert k in m
    assert m["mse"] == pytest.approx(1.0)
    assert m["delta_cf"] == pytest.approx(abs(m["cf"] - m["cf_true"]))


def test_shape_mismatch_raises(pair):
    gt, pred = pair
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.psnr_per_image(gt, pred[:, :32])
