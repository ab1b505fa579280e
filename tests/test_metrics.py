import math

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
    from chromalab.results import METRIC_KEYS

    assert set(m) == {*METRIC_KEYS, "cf_true"}  # every metric a table shows, and only those
    # ab off by (1, 1) everywhere: every pixel's error is √2, within the thresholds 2..150
    assert m["auc"] == pytest.approx(149 / 151) and m["auc_rb"] == pytest.approx(149 / 151)
    assert m["mse"] == pytest.approx(1.0)
    assert m["delta_cf"] == pytest.approx(abs(m["cf"] - m["cf_true"]))


def test_shape_mismatch_raises(pair):
    gt, pred = pair
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.psnr_per_image(gt, pred[:, :32])


def _ab(points) -> np.ndarray:
    """[(a, b), ...] -> ab ``(1, 2, 1, n)``."""
    return np.array(points, dtype=np.float64).T.reshape(1, 2, 1, len(points))


def _polar(chroma: float, hue_deg: float) -> tuple[float, float]:
    return chroma * math.cos(math.radians(hue_deg)), chroma * math.sin(math.radians(hue_deg))


def test_auc_thresholds_by_hand():
    t = _ab([(0.0, 0.0)] * 4)
    acc = metrics.ColorAccumulator()
    acc.update(t, t)
    assert acc.compute()["auc"] == 1.0 and acc.compute()["auc_rb"] == 1.0  # exact: within every threshold
    acc = metrics.ColorAccumulator()
    acc.update(t, t + _ab([(30.0, 40.0)] * 4))  # error exactly 50: counted from t = 50 on (e <= t)
    assert acc.compute()["auc"] == pytest.approx(101 / 151)
    acc = metrics.ColorAccumulator()
    acc.update(t, t + _ab([(50.5, 0.0)] * 4))  # 50.5: from t = 51 on
    assert acc.compute()["auc"] == pytest.approx(100 / 151)
    acc = metrics.ColorAccumulator()
    acc.update(t, t + _ab([(150.0, 0.0), (150.01, 0.0), (200.0, 0.0), (0.0, 0.0)]))
    raw, _ = acc.curves()
    assert raw[149] == 0.25 and raw[150] == 0.5  # errors above 150 never count


def test_rebalanced_auc_weighs_each_true_ab_bin_equally():
    # 3 near-gray pixels (bin (0, 0)) predicted exactly, 1 saturated pixel (bin (6, -4)) missed by 200
    t = _ab([(0.0, 0.0), (4.0, -4.9), (-4.9, 4.0), (60.0, -40.0)])
    p = _ab([(0.0, 0.0), (4.0, -4.9), (-4.9, 4.0), (-140.0, -40.0)])
    acc = metrics.ColorAccumulator()
    acc.update(t, p)
    m = acc.compute()
    assert m["auc"] == pytest.approx(0.75)  # 3 of 4 pixels within every threshold
    assert m["auc_rb"] == pytest.approx(0.5)  # 2 bins: one always right, one never
    # bins are 10 Lab units centred on multiples of 10: 5.1 falls in the next bin
    acc = metrics.ColorAccumulator()
    acc.update(_ab([(0.0, 0.0), (5.1, 0.0)]), _ab([(0.0, 0.0), (205.1, 0.0)]))
    assert acc.compute()["auc_rb"] == pytest.approx(0.5)
    # streamed batches give the same curves as one batch
    rng = np.random.default_rng(1)
    t = rng.normal(0, 30, (4, 2, 6, 6))
    p = t + rng.normal(0, 20, t.shape)
    one, two = metrics.ColorAccumulator(), metrics.ColorAccumulator()
    one.update(t, p)
    two.update(t[:1], p[:1])
    two.update(t[1:], p[1:])
    assert one.compute() == two.compute()


def test_cool_recall_edges():
    # true: chroma 20 at hue 130 and 300 (both cool, the ends count), chroma 19.9 (not cool), hue 301 (not cool)
    t = _ab([_polar(20, 130), _polar(20, 300), _polar(19.9, 200), _polar(30, 301)])
    # predicted: chroma exactly 10 and 45 degrees off (a hit); 40 degrees off across 0/360 from 300 -> 340 (a hit)
    p = _ab([_polar(10, 175), _polar(30, 340), _polar(30, 200), _polar(30, 301)])
    acc = metrics.ColorAccumulator()
    acc.update(t, p)
    assert (acc.cool, acc.cool_hits) == (2, 2) and acc.compute()["cool_recall"] == 1.0
    p = _ab([_polar(9.99, 130), _polar(30, 346), _polar(30, 200), _polar(30, 301)])  # too weak; 46 degrees off
    acc = metrics.ColorAccumulator()
    acc.update(t, p)
    assert (acc.cool, acc.cool_hits) == (2, 0) and acc.compute()["cool_recall"] == 0.0
    # a set without a cool pixel: undefined, not 0
    acc = metrics.ColorAccumulator()
    acc.update(_ab([_polar(40, 40)]), _ab([_polar(40, 40)]))
    assert math.isnan(acc.compute()["cool_recall"])


def test_format_value():
    from chromalab.results import MISSING, ROW_KEYS, format_value

    assert format_value("psnr", 23.5812) == "23.58" and format_value("ssim", 0.93604) == "0.9360"
    assert format_value("cool_recall", 0.326) == "0.3260" and format_value("train_images", 488320) == "488,320"
    assert format_value("r2", None) == format_value("psnr", float("nan")) == MISSING
    assert len(set(ROW_KEYS)) == len(ROW_KEYS)
