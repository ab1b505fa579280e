"""Metrics, exactly as docs/metrics.md defines them. Pure functions on numpy arrays.

Conventions: images are ``(N, H, W, 3)`` uint8 sRGB (the output image is input L + predicted
ab -> sRGB, clipped, rounded); ab is ``(N, 2, H, W)`` in Lab units. Per-image metrics
are computed image by image and then averaged over the set.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

PSNR_CAP_DB = 100.0
"""PSNR of an image reproduced exactly is infinite; it is reported as this cap."""


def _check_images(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"shape mismatch: ground truth {gt.shape} vs prediction {pred.shape}")
    if gt.ndim == 3:
        gt, pred = gt[None], pred[None]
    if gt.ndim != 4 or gt.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) sRGB images, got {gt.shape}")
    return gt, pred


def psnr_per_image(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """PSNR in dB per image on uint8 sRGB, data range 255. ``(N, H, W, 3)`` x2 -> ``(N,)``."""
    gt, pred = _check_images(gt, pred)
    d = gt.astype(np.float64) - pred.astype(np.float64)
    mse = (d * d).reshape(len(d), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        p = 10.0 * np.log10(255.0**2 / mse)
    return np.minimum(p, PSNR_CAP_DB)


def ssim_per_image(gt: np.ndarray, pred: np.ndarray, win_size: int = 7) -> np.ndarray:
    """SSIM per image, identical to ``skimage.metrics.structural_similarity(gt, pred,
    channel_axis=-1, data_range=255)`` (uniform 7x7 window, K1=0.01, K2=0.03, sample
    covariance, reflect borders, mean over the cropped map and the channels), batched.

    ``(N, H, W, 3)`` x2 -> ``(N,)``. Images smaller than the window fall back to a window
    of the largest odd size that fits (scikit-image would raise).
    """
    gt, pred = _check_images(gt, pred)
    n, h, w, _ = gt.shape
    win = min(win_size, h - (1 - h % 2), w - (1 - w % 2))
    if win < 1:
        win = 1
    x = gt.astype(np.float64)
    y = pred.astype(np.float64)
    size = (1, win, win, 1)
    npix = win * win
    cov_norm = npix / (npix - 1) if npix > 1 else 1.0
    ux = uniform_filter(x, size=size)
    uy = uniform_filter(y, size=size)
    uxx = uniform_filter(x * x, size=size)
    uyy = uniform_filter(y * y, size=size)
    uxy = uniform_filter(x * y, size=size)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    s = s[:, pad : h - pad, pad : w - pad, :]
    return s.reshape(n, -1, 3).mean(axis=1).mean(axis=1)


def mse_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared difference per image (any ``(N, ...)`` arrays, float64)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return (d * d).reshape(len(d), -1).mean(axis=1)


def l1_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference per image."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.abs(d).reshape(len(d), -1).mean(axis=1)


def colorfulness_per_image(rgb: np.ndarray) -> np.ndarray:
    """Hasler & Süsstrunk colourfulness per image on 0..255 sRGB, with *signed* opponent
    channels rg = R - G, yb = (R + G) / 2 - B:
    CF = sqrt(std(rg)² + std(yb)²) + 0.3 · sqrt(mean(rg)² + mean(yb)²). ``(N,H,W,3)`` -> ``(N,)``.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim == 3:
        rgb = rgb[None]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = (r - g).reshape(len(rgb), -1)
    yb = (0.5 * (r + g) - b).reshape(len(rgb), -1)
    std = np.sqrt(rg.std(axis=1) ** 2 + yb.std(axis=1) ** 2)
    mean = np.sqrt(rg.mean(axis=1) ** 2 + yb.mean(axis=1) ** 2)
    return std + 0.3 * mean


def r2_score_ab(ab_true: np.ndarray, ab_pred: np.ndarray) -> float:
    """R² over all ab values of a set: 1 - SS_res / SS_tot, SS_tot about each channel's mean."""
    acc = R2Accumulator()
    acc.update(ab_true, ab_pred)
    return acc.value()


class R2Accumulator:
    """Streaming R² over batches (sums in float64; per-channel means for SS_tot)."""

    def __init__(self) -> None:
        self.n = 0
        self.s = np.zeros(2)
        self.ss = np.zeros(2)
        self.res = 0.0

    def update(self, ab_true: np.ndarray, ab_pred: np.ndarray) -> None:
        t = np.asarray(ab_true, dtype=np.float64)
        p = np.asarray(ab_pred, dtype=np.float64)
        if t.shape != p.shape or t.ndim != 4 or t.shape[1] != 2:
            raise ValueError(f"ab must be (N, 2, H, W) and match: {t.shape} vs {p.shape}")
        self.n += t.shape[0] * t.shape[2] * t.shape[3]
        self.s += t.sum(axis=(0, 2, 3))
        self.ss += (t * t).sum(axis=(0, 2, 3))
        self.res += float(((t - p) ** 2).sum())

    def value(self) -> float:
        if self.n == 0:
            return float("nan")
        sstot = float((self.ss - self.s**2 / self.n).sum())
        return 1.0 - self.res / sstot if sstot > 0 else float("nan")


AUC_MAX_ERROR = 150
"""AuC of the per-pixel ab error: thresholds 0, 1, ..., 150 Lab units (Zhang et al. 2016)."""
AUC_BIN = 10
"""Rebalanced AuC: pixels weighted so that every occupied true-ab bin (10 x 10 Lab units) counts equally."""
_AUC_GRID = 2 * int(round(110 / AUC_BIN)) + 1  # bins per axis over a, b in [-110, 110]
COOL_MIN_CHROMA = 20.0
COOL_HUE_DEG = (130.0, 300.0)
HIT_MIN_CHROMA = 10.0
HIT_HUE_TOL_DEG = 45.0
"""Cool recall: of the true pixels with chroma >= 20 and Lab hue in [130, 300] degrees (green, cyan,
blue: foliage, sky, water), the fraction predicted with chroma >= 10 and a hue within 45 degrees."""


class ColorAccumulator:
    """Streaming colour metrics on ab ``(N, 2, H, W)`` (Lab units): raw and class-rebalanced AuC of
    the per-pixel ab error, and the cool (green / blue) recall.

    Keeps, per true-ab bin, a histogram of ``ceil(error)`` over 0..150 (errors above 150 never
    count), so the curve is exact at every integer threshold and the sets can be streamed.
    """

    def __init__(self) -> None:
        self.hist = np.zeros((_AUC_GRID * _AUC_GRID, AUC_MAX_ERROR + 1), dtype=np.int64)
        self.bin_count = np.zeros(_AUC_GRID * _AUC_GRID, dtype=np.int64)
        self.cool = 0
        self.cool_hits = 0

    def update(self, ab_true: np.ndarray, ab_pred: np.ndarray) -> None:
        t = np.asarray(ab_true, dtype=np.float64)
        p = np.asarray(ab_pred, dtype=np.float64)
        if t.shape != p.shape or t.ndim != 4 or t.shape[1] != 2:
            raise ValueError(f"ab must be (N, 2, H, W) and match: {t.shape} vs {p.shape}")
        ta, tb = t[:, 0].ravel(), t[:, 1].ravel()  # (N·H·W,)
        pa, pb = p[:, 0].ravel(), p[:, 1].ravel()
        err = np.hypot(ta - pa, tb - pb)
        half = _AUC_GRID // 2
        ia = np.clip(np.rint(ta / AUC_BIN).astype(np.int64) + half, 0, _AUC_GRID - 1)
        ib = np.clip(np.rint(tb / AUC_BIN).astype(np.int64) + half, 0, _AUC_GRID - 1)
        q = ia * _AUC_GRID + ib
        self.bin_count += np.bincount(q, minlength=len(self.bin_count))
        e = np.ceil(err).astype(np.int64)
        ok = e <= AUC_MAX_ERROR
        flat = q[ok] * (AUC_MAX_ERROR + 1) + e[ok]
        self.hist += np.bincount(flat, minlength=self.hist.size).reshape(self.hist.shape)
        tc = np.hypot(ta, tb)
        th = np.degrees(np.arctan2(tb, ta)) % 360.0
        cool = (tc >= COOL_MIN_CHROMA) & (th >= COOL_HUE_DEG[0]) & (th <= COOL_HUE_DEG[1])
        pc = np.hypot(pa[cool], pb[cool])
        ph = np.degrees(np.arctan2(pb[cool], pa[cool])) % 360.0
        dh = np.abs((ph - th[cool] + 180.0) % 360.0 - 180.0)
        self.cool += int(cool.sum())
        self.cool_hits += int(((pc >= HIT_MIN_CHROMA) & (dh <= HIT_HUE_TOL_DEG)).sum())

    def curves(self) -> tuple[np.ndarray, np.ndarray]:
        """(raw, rebalanced) fraction of pixels with error <= t for t = 0..150: ``(151,)`` each."""
        occupied = self.bin_count > 0
        cum = np.cumsum(self.hist, axis=1).astype(np.float64)  # (bins, 151)
        raw = cum.sum(axis=0) / max(int(self.bin_count.sum()), 1)
        per_bin = cum[occupied] / self.bin_count[occupied, None]
        rb = per_bin.mean(axis=0) if len(per_bin) else np.full(AUC_MAX_ERROR + 1, np.nan)
        return raw, rb

    def compute(self) -> dict[str, float]:
        raw, rb = self.curves()
        return {"auc": float(raw.mean()), "auc_rb": float(rb.mean()),
                "cool_recall": self.cool_hits / self.cool if self.cool else float("nan")}


class MetricAccumulator:
    """Collects every metric over batches of one evaluation.

    ``update(rgb_true, rgb_pred, ab_true, ab_pred)`` with ``(n,H,W,3)`` uint8 and ``(n,2,H,W)`` ab.
    """

    def __init__(self) -> None:
        self.per_image: dict[str, list[np.ndarray]] = {
            k: [] for k in ("psnr", "ssim", "mse", "l1", "mse_rgb", "l1_rgb", "cf", "cf_true")
        }
        self.r2 = R2Accumulator()
        self.color = ColorAccumulator()

    def update(self, rgb_true, rgb_pred, ab_true, ab_pred) -> None:
        pi = self.per_image
        pi["psnr"].append(psnr_per_image(rgb_true, rgb_pred))
        pi["ssim"].append(ssim_per_image(rgb_true, rgb_pred))
        pi["mse"].append(mse_per_image(ab_true, ab_pred))
        pi["l1"].append(l1_per_image(ab_true, ab_pred))
        t01 = np.asarray(rgb_true, dtype=np.float64) / 255.0
        p01 = np.asarray(rgb_pred, dtype=np.float64) / 255.0
        pi["mse_rgb"].append(mse_per_image(t01, p01))
        pi["l1_rgb"].append(l1_per_image(t01, p01))
        pi["cf"].append(colorfulness_per_image(rgb_pred))
        pi["cf_true"].append(colorfulness_per_image(rgb_true))
        self.r2.update(ab_true, ab_pred)
        self.color.update(ab_true, ab_pred)

    @property
    def count(self) -> int:
        return int(sum(len(a) for a in self.per_image["psnr"]))

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no images were evaluated")
        m = {k: float(np.concatenate(v).mean()) for k, v in self.per_image.items()}
        m["r2"] = self.r2.value()
        m["delta_cf"] = abs(m["cf"] - m["cf_true"])
        m.update(self.color.compute())
        return m
