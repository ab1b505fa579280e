"""The predictor contract every model speaks.

    predict_ab(L) -> ab
        L:  (N, 1, H, W) float32, Lab L in 0..100
        ab: (N, 2, H, W) float32, Lab a, b (about -110..110)

Evaluation, the comparison report, the CLI and the web page use only this.
"""

from __future__ import annotations

import numpy as np


class Predictor:
    """Base class. Subclasses set ``name`` and implement :meth:`_predict`."""

    name: str = "predictor"
    #: the square size the model was trained at; evaluation feeds images of this size.
    #: ``None`` means any size works equally (e.g. gray).
    input_size: int | None = 64
    #: largest batch worth feeding at once
    batch_size: int = 256

    def predict_ab(self, L: np.ndarray) -> np.ndarray:
        L = np.asarray(L, dtype=np.float32)
        if L.ndim != 4 or L.shape[1] != 1:
            raise ValueError(f"{self.name}: L must be (N, 1, H, W), got {L.shape}")
        ab = np.asarray(self._predict(L), dtype=np.float32)
        if ab.shape != (L.shape[0], 2, *L.shape[2:]):
            raise RuntimeError(f"{self.name}: predicted ab has shape {ab.shape}, expected {(L.shape[0], 2, *L.shape[2:])}")
        return ab

    def _predict(self, L: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        """A small JSON-able description (shown by `chromalab models`, stored in results)."""
        return {"name": self.name, "input_size": self.input_size}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
