"""``chromalab train linear|svr``: resolve the config, prepare the run folder, train the model."""

from __future__ import annotations

import warnings
from pathlib import Path

from .config import LinearConfig, SVRConfig, resolve_config, write_config


def train_classical(model: str, preset: str = "seed", data: str | None = None, out: str | Path = "runs/linear",
                    overrides: dict | None = None) -> dict:
    """Train ``linear`` or ``svr`` into the run folder ``out``; returns the run description."""
    from ..data.cache import load_prepared

    cfg = resolve_config(model, preset, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").unlink(missing_ok=True)  # a run folder counts as finished only when rewritten
    write_config(out / "config.yaml", cfg)
    prep = load_prepared(data)
    with warnings.catch_warnings():  # out-of-gamut ab (figures, metrics) is clipped; that is expected
        warnings.filterwarnings("ignore", message="Conversion from CIE-LAB", category=UserWarning)
        if isinstance(cfg, LinearConfig):
            from .linear import train_linear

            return train_linear(cfg, prep, out)
        assert isinstance(cfg, SVRConfig)
        from .svr import train_svr

        return train_svr(cfg, prep, out)
