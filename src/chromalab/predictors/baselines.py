"""Reference predictors: the trivial answers every model must beat."""

from __future__ import annotations

import numpy as np

from .base import Predictor


class GrayPredictor(Predictor):
    """a = b = 0: the image left gray."""

    name = "gray"
    input_size = None

    def _predict(self, L):
        return np.zeros((L.shape[0], 2, *L.shape[2:]), dtype=np.float32)


class MeanAbPredictor(Predictor):
    """Every pixel gets the mean train (a, b)."""

    name = "mean-ab"
    input_size = None

    def __init__(self, mean_ab):
        self.mean_ab_ = np.asarray(mean_ab, dtype=np.float32).reshape(2)

    def _predict(self, L):
        out = np.empty((L.shape[0], 2, *L.shape[2:]), dtype=np.float32)
        out[:, 0] = self.mean_ab_[0]
        out[:, 1] = self.mean_ab_[1]
        return out

    def describe(self) -> dict:
        return {**super().describe(), "mean_ab": [float(v) for v in self.mean_ab_]}
