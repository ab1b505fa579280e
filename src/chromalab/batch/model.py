"""The model of a batch run, as settings that travel: every engine's worker loads the same model from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..images import DEFAULT_MAX_PIXELS
from ..inference.colorizer import Colorizer


@dataclass(frozen=True)
class ModelSpec:
    """How a run loads its model (the ``colorize`` options that pick and set it).

    ``model``: a registry name, run folder, weights file or a Predictor object (picklable for the Ray
    engine); ``temperature``: the vivid models' T (None: the model's own); ``threads``: onnxruntime's
    threads (None: one per core; a Ray actor with one CPU gets 1). Threads do not change the result."""

    model: Any
    backend: str = "auto"
    work_size: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_size: int = 16
    vividness: float | None = None
    temperature: float | None = None
    threads: int | None = None

    def open(self) -> Colorizer:
        """The loaded model; an unknown model or a setting it does not take is a one-line error."""
        model = self.model
        if self.temperature is not None:  # the model is then passed as a predictor
            from ..predictors.nets import set_temperature
            from ..registry import load_predictor

            model = set_temperature(load_predictor(model, progress=False), self.temperature)
        return Colorizer(model, backend=self.backend, work_size=self.work_size, max_pixels=self.max_pixels,
                         batch_size=self.batch_size, vividness=self.vividness, threads=self.threads)
