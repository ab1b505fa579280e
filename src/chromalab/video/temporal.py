"""Temporal stabilisation of per-frame colour: flow-warped history blended by a confidence.

Colorizing frame by frame flickers: the model sees each frame alone, so grain, compression
noise and small changes elsewhere in the picture move its prediction of a wall or a face from
one frame to the next. :class:`TemporalStabilizer` works at the model's working size (about
64x48), where everything below is cheap (measured in docs/video.md):

1. Dense optical flow between the current and the previous working-size L (OpenCV DIS), in
   both directions.
2. The previous *output* ab is warped to the current frame (backward warping with the
   current -> previous flow).
3. A per-pixel confidence in 0..1 that drops where the flow is unreliable:
   forward-backward inconsistency (occlusions, wrong matches), the residual between the
   current L and the warped previous L (after removing each frame's mean, so exposure flicker
   of old film does not count), and pixels whose match lies outside the previous frame.
4. ``ab = prediction + w * (warped_history - prediction)``: an exponential moving average along
   the motion, which forgets where the flow cannot be trusted. ``w = confidence * (1 - 1/n)``,
   where ``n`` is the history's memory in frames: ``1 / (1 - MAX_WEIGHT * strength)`` where the
   content moves, and up to :data:`STILL_MEMORY` times as long (less one frame) where the flow
   says it does not (a motion-adaptive filter, as video denoisers use): a wall that does not move
   has no reason to change colour, while moving content keeps a short memory, so its colour
   follows the model when the view changes.
5. A scene cut (almost no pixel matched, or a large change of the L histogram) resets the
   history, so the first frame of a shot is exactly the per-frame colorization and never
   takes colour from the shot before.

``strength = 0`` gives plain per-frame colorization (the prediction is returned unchanged).

Units: L in 0..100, ab in Lab units, flow in working-size pixels. Shapes: L ``(h, w)``,
ab ``(2, h, w)``, flow ``(h, w, 2)`` (x, y).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..color import L_MAX

DEFAULT_STRENGTH = 0.9
"""Default ``temporal``: where the content moves and the flow is fully reliable, the warped history
gets weight ``MAX_WEIGHT * strength`` = 0.855 (a memory of about 7 frames, 0.3 s at 25 fps); where
nothing moves, a memory :data:`STILL_MEMORY` times longer (w 0.976). The memory of moving content
is what costs PSNR: the model changes its colour of a surface as the view changes, and a long memory
lags behind it (docs/video.md, table 2)."""
MAX_WEIGHT = 0.95
"""The history's weight where the content moves, at strength 1 (a memory of 19 frames beyond the
current one); where it does not move the memory is up to :data:`STILL_MEMORY` times longer. The
weight stays below 1 (at most 0.993), so a new prediction always counts."""
STILL_MEMORY = 7.0
"""Where nothing moves, the history's memory beyond the current frame is this many times longer
than where the content moves: at strength 0.9, 41 frames (w 0.976) instead of 5.9 (w 0.855). On the
test films this takes the decoded file's flicker from 50-51 % of per-frame colorization's to 46-47 %
(a perfect stabiliser measures 45-46 %) without a larger PSNR change (docs/video.md, table 1)."""
SIGMA_MOTION = 0.15
"""Flow (working-size px per frame) at which "still" has fallen to 1/e: ``exp(-(|flow| / this)^2)``.
On the test films the flow measures 0.03 px on still content (grain) and 0.4 px in pans and zooms."""
SIGMA_FB = 0.5
"""Forward-backward flow error (working-size px) at which the confidence falls to 1/e."""
SIGMA_L = 6.0
"""Residual between current and warped previous L (L units, means removed) where it falls to 1/e."""
HIST_BINS = 32
CUT_HIST = 0.6
"""A total-variation distance between consecutive L histograms above this is a cut (0..1), found
before any flow is computed. Only obvious cuts: a 5 % exposure flicker already moves it to 0.35,
and cuts between two of the test photos measured 0.32-0.49, so most cuts are found by the next test."""
CUT_CONFIDENCE = 0.2
"""A mean confidence below this is a cut: nothing of the previous frame matches this one. Measured
at 320x240: cuts between any two of six test photos 0.00-0.03; within shots (pans, zooms, grain,
5 % exposure flicker) at least 0.42."""
MIN_FLOW_SIDE = 16
"""Working sizes with a side below this skip the flow (zero motion assumed)."""


@dataclass
class StepInfo:
    """What :meth:`TemporalStabilizer.step` decided for the last frame."""

    cut: bool = False  # the history was reset (first frame, scene cut, size change)
    confidence: float = 0.0  # mean confidence of the warped history, 0..1
    weight: float = 0.0  # mean weight given to the history, 0..1
    hist_distance: float = 0.0  # total-variation distance of the L histograms, 0..1


class TemporalStabilizer:
    """Stabilises a sequence of working-size ab predictions. One per video; not thread-safe.

    Args:
        strength: 0..1; 0 returns every prediction unchanged (per-frame colorization).
        cut_hist, cut_confidence: scene-cut thresholds (see :data:`CUT_HIST`,
            :data:`CUT_CONFIDENCE`).
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, *, cut_hist: float = CUT_HIST,
                 cut_confidence: float = CUT_CONFIDENCE):
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:  # also rejects NaN
            raise ValueError(f"temporal strength must be in 0..1, got {strength}")
        self.strength = strength
        self.cut_hist = float(cut_hist)
        self.cut_confidence = float(cut_confidence)
        self._dis: Any = None  # cv2.DISOpticalFlow, made on first use
        self._grid: np.ndarray | None = None
        self.last = StepInfo()
        self.reset()

    def reset(self) -> None:
        """Forget the history (the next frame starts a new shot)."""
        self._L8: np.ndarray | None = None  # (h, w) uint8, previous working-size L scaled to 0..255
        self._L: np.ndarray | None = None  # (h, w) float32, previous working-size L
        self._ab: np.ndarray | None = None  # (2, h, w) float32, previous output ab
        self._hist: np.ndarray | None = None  # (HIST_BINS,) float32, previous L histogram (sums to 1)

    def step(self, L: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """The current frame's working-size L ``(h, w)`` and predicted ab ``(2, h, w)`` -> output ab ``(2, h, w)``."""
        L = np.asarray(L, dtype=np.float32)
        ab = np.asarray(ab, dtype=np.float32)
        if L.ndim != 2 or ab.shape != (2, *L.shape):
            raise ValueError(f"expected L (h, w) and ab (2, h, w), got {L.shape} and {ab.shape}")
        if self.strength == 0.0:
            self.last = StepInfo(cut=True)
            return ab
        L8 = np.clip(L * np.float32(255.0 / L_MAX) + np.float32(0.5), 0, 255).astype(np.uint8)
        hist = np.bincount(L8.ravel() >> 3, minlength=HIST_BINS).astype(np.float32) / np.float32(L8.size)
        prev_ok = self._L8 is not None and self._L8.shape == L8.shape
        if not prev_ok:
            self._remember(L8, L, ab, hist)
            self.last = StepInfo(cut=True)
            return ab
        assert self._hist is not None and self._ab is not None and self._L is not None
        hist_d = 0.5 * float(np.abs(hist - self._hist).sum())
        if hist_d > self.cut_hist:
            self._remember(L8, L, ab, hist)
            self.last = StepInfo(cut=True, hist_distance=hist_d)
            return ab
        warped_ab, conf, motion = self._warp_history(L8, L)
        mean_conf = float(conf.mean())
        if mean_conf < self.cut_confidence:
            self._remember(L8, L, ab, hist)
            self.last = StepInfo(cut=True, confidence=mean_conf, hist_distance=hist_d)
            return ab
        w = conf * self._history_weight(motion)  # (h, w)
        out = ab + w[None] * (warped_ab - ab)  # (2, h, w)
        self._remember(L8, L, out, hist)
        self.last = StepInfo(cut=False, confidence=mean_conf, weight=float(w.mean()), hist_distance=hist_d)
        return out

    # -- internals ---------------------------------------------------------------------------------
    def _history_weight(self, motion: np.ndarray) -> np.ndarray:
        """The history's weight at full confidence ``(h, w)``, from the flow's length ``motion`` ``(h, w)``."""
        import cv2

        moving = 1.0 / (1.0 - MAX_WEIGHT * self.strength) - 1.0  # memory beyond the current frame, frames
        still = cv2.blur(np.exp(-((motion / np.float32(SIGMA_MOTION)) ** 2)), (3, 3))  # (h, w), 0..1
        memory = np.float32(moving) * (1.0 + np.float32(STILL_MEMORY - 1.0) * still)  # (h, w)
        return (memory / (memory + 1.0)).astype(np.float32, copy=False)  # 1 - 1/n, n = 1 + memory

    def _remember(self, L8, L, ab, hist) -> None:
        self._L8, self._L, self._ab, self._hist = L8, L, ab, hist

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """DIS flow ``(h, w, 2)`` such that ``a(x) ~ b(x + flow(x))``."""
        import cv2

        if self._dis is None:
            # at 64x48 the ultrafast preset on a 32x24 finest level costs ~0.2 ms a flow, 5x less than
            # the fast preset at full level, with the same flicker and PSNR on the test film (docs/video.md)
            dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)  # type: ignore[attr-defined]
            dis.setFinestScale(1)
            dis.setPatchSize(8)
            dis.setPatchStride(3)
            self._dis = dis
        return self._dis.calc(a, b, None)

    def _warp_history(self, L8: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Previous output ab warped to the current frame ``(2, h, w)``, its confidence ``(h, w)`` in 0..1
        and the flow's length ``(h, w)`` (working-size px)."""
        import cv2

        assert self._L8 is not None and self._L is not None and self._ab is not None
        h, w = L8.shape
        if self._grid is None or self._grid.shape[:2] != (h, w):
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = np.stack([gx, gy], axis=-1)  # (h, w, 2)
        if min(h, w) < MIN_FLOW_SIDE:
            back = np.zeros((h, w, 2), np.float32)
            fwd = back
        else:
            back = self._flow(L8, self._L8)  # current -> previous
            fwd = self._flow(self._L8, L8)  # previous -> current
        where = self._grid + back  # (h, w, 2): where each current pixel was in the previous frame

        def warp(img: np.ndarray) -> np.ndarray:
            return cv2.remap(img, where, None, cv2.INTER_LINEAR,  # type: ignore[call-overload]
                             borderMode=cv2.BORDER_REPLICATE)

        ab_hwc = np.ascontiguousarray(self._ab.transpose(1, 2, 0))  # (h, w, 2)
        warped_ab = warp(ab_hwc).transpose(2, 0, 1)  # (2, h, w)
        warped_L = warp(self._L)  # (h, w)
        fb = back + warp(fwd)  # (h, w, 2): ~0 where the two flows agree
        fb_err2 = fb[..., 0] ** 2 + fb[..., 1] ** 2
        resid = (L - L.mean()) - (warped_L - warped_L.mean())
        conf = np.exp(-(fb_err2 / np.float32(SIGMA_FB**2)) - (resid * resid) / np.float32(SIGMA_L**2))
        inside = ((where[..., 0] >= -0.5) & (where[..., 0] <= w - 0.5)
                  & (where[..., 1] >= -0.5) & (where[..., 1] <= h - 0.5))
        conf = cv2.blur(conf * inside, (3, 3))  # no isolated speckles of trust
        motion = np.sqrt(back[..., 0] ** 2 + back[..., 1] ** 2)  # (h, w)
        return warped_ab, conf.astype(np.float32, copy=False), motion
