"""``evaluate MODEL --hints N``: a hint model whose every image gets N colour points simulated from its
true ab (:func:`chromalab.hints.simulate_hints`, the training simulation with a fixed count), from
a fixed seed, so the numbers repeat."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import SettingError
from ..hint_simulation import simulate_hints
from .base import Predictor


class SimulatedHints(Predictor):
    """Wraps a predictor with ``predict_controls`` and ``takes_hints`` (a hint model).

    Used through ``predict_ab_oracle(L, ab)`` (evaluation passes the true ab to oracles); plain
    ``predict_ab(L)`` has no truth to take hints from and gives the zero-hint answer.
    """

    def __init__(self, pred: Predictor, n: int, seed: int = 0):
        if not getattr(pred, "takes_hints", False):
            raise SettingError(f"{pred.name}: this model takes no colour hints, so --hints cannot be simulated")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise SettingError(f"--hints must be a whole number of points >= 0, got {n!r}")
        self.pred, self.n, self.seed = pred, int(n), int(seed)
        self.name = pred.name if n == 0 else f"{pred.name} +{n} hints"
        self.input_size = pred.input_size
        self.batch_size = pred.batch_size
        self._gen = torch.Generator().manual_seed(self.seed)

    def _predict(self, L: np.ndarray) -> np.ndarray:
        return self.pred.predict_controls(L)  # type: ignore[attr-defined]

    def predict_ab_oracle(self, L: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """L ``(N, 1, H, W)``, true ab ``(N, 2, H, W)`` (Lab units) -> ab predicted with N simulated hints."""
        if self.n == 0:
            return self.pred.predict_ab(L)
        counts = torch.full((len(L),), self.n, dtype=torch.int64)
        hint, mask = simulate_hints(torch.from_numpy(np.ascontiguousarray(ab, dtype=np.float32)), counts, self._gen)
        hints = torch.cat([hint, mask], dim=1).numpy()  # (N, 3, H, W)
        return self.pred.predict_controls(L, hints)  # type: ignore[attr-defined]

    def describe(self) -> dict:
        return {**self.pred.describe(), "simulated_hints": self.n, "hint_seed": self.seed}
