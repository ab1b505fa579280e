"""Features of L for the classical models and the no-pickle state files (the resizing and thread
helpers they use live in :mod:`chromalab.ops`).

:class:`LFeatures` maps L images ``(N, 1, S, S)`` (Lab units, 0..100) to a feature matrix
``(N, F)`` float32 and is fitted on train L only. ``kind`` names the blocks, joined with ``+``:

* ``pca``: the first ``n_components`` PCA components of the flattened L (the study's input);
* ``pixels``: the raw L pixels;
* ``binned``: a soft histogram of L per cell: every pixel is spread over ``bins`` evenly
  spaced L levels (linear "hat" weights), then averaged over a ``grid`` x ``grid`` cell
  layout, giving ``grid * grid * bins`` features ("how much of this cell is this bright").
  A linear model on them can express a different colour per brightness and position,
  which a linear map of the raw pixels cannot.

Each feature is then standardized with train statistics (``scale='feature'``: zero mean,
unit variance per feature; for ``pca`` that is whitening) or, with ``scale='global'``, every
block is divided by one number (its total standard deviation), which keeps Euclidean
distances between images meaningful for an RBF kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._io import atomic_path, atomic_write_bytes
from ..color import L_MAX
from ..errors import ModelError
from ..ops import resize_batch, single_threaded, torch_threads
from .pca import PCA

FEATURE_BLOCKS = ("pca", "pixels", "binned")

__all__ = ["FEATURE_BLOCKS", "LFeatures", "load_state", "resize_batch", "save_state", "single_threaded",
           "soft_binned", "torch_threads"]  # resize_batch, single_threaded, torch_threads: from chromalab.ops


def soft_binned(L: np.ndarray, grid: int, bins: int) -> np.ndarray:
    """Per-cell soft histograms of L. ``(N, 1, S, S)`` -> ``(N, grid*grid*bins)`` float32.

    Pixel value v gives weight ``max(0, 1 - |v - c_j| / w)`` to level ``c_j`` (``bins`` levels
    from 0 to L_MAX, spacing ``w``); the weights sum to 1 per pixel and are averaged per cell.
    ``S`` must be a multiple of ``grid``.
    """
    L = np.asarray(L, dtype=np.float32)
    n, _, s, _ = L.shape
    if s % grid:
        raise ValueError(f"image size {s} is not a multiple of grid {grid}")
    centers = np.linspace(0.0, L_MAX, bins, dtype=np.float32)
    width = np.float32(L_MAX / (bins - 1))
    cell = s // grid
    out = np.empty((n, grid, grid, bins), dtype=np.float32)
    v = np.clip(L[:, 0], 0.0, L_MAX)
    for j, c in enumerate(centers):
        w = np.maximum(0.0, 1.0 - np.abs(v - c) / width)  # (n, s, s)
        out[..., j] = w.reshape(n, grid, cell, grid, cell).mean(axis=(2, 4))
    return out.reshape(n, -1)


class LFeatures:
    """L images -> standardized features (see the module docstring).

    Hyper-parameters: ``kind`` (``pca``, ``pixels``, ``binned`` or joined with ``+``),
    ``n_components`` (pca), ``grid`` and ``bins`` (binned), ``scale`` (``feature`` | ``global``),
    ``pca_solver``. Learned state: ``size_`` (input size S), ``pca_`` (a fitted :class:`PCA` or
    None), ``mean_`` and ``scale_`` ``(F,)``, ``n_features_``.
    """

    def __init__(self, kind: str = "pca", n_components: int = 600, grid: int = 16, bins: int = 8,
                 scale: str = "feature", pca_solver: str = "auto", random_state: int = 0):
        self.kind = kind
        self.n_components = n_components
        self.grid = grid
        self.bins = bins
        self.scale = scale
        self.pca_solver = pca_solver
        self.random_state = random_state

    @property
    def blocks(self) -> list[str]:
        parts = [p.strip() for p in self.kind.split("+") if p.strip()]
        bad = [p for p in parts if p not in FEATURE_BLOCKS]
        if not parts or bad:
            raise ModelError(f"features: unknown kind {self.kind!r} (use {', '.join(FEATURE_BLOCKS)}, joined by +)")
        return parts

    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise ModelError("LFeatures is not fitted yet: call fit(L) before transform(L)")

    def _raw(self, L: np.ndarray, batch: int = 2048) -> np.ndarray:
        """Unscaled features, ``(N, F)`` float32, computed in batches."""
        n = len(L)
        parts = []
        for s in range(0, n, batch):
            Lb = np.asarray(L[s : s + batch], dtype=np.float32)
            flat = Lb.reshape(len(Lb), -1)
            cols = []
            for b in self.blocks:
                if b == "pca":
                    assert self.pca_ is not None
                    cols.append(self.pca_.transform(flat))
                elif b == "pixels":
                    cols.append(flat)
                else:
                    cols.append(soft_binned(Lb, self.grid, self.bins))
            parts.append(np.concatenate(cols, axis=1) if len(cols) > 1 else cols[0])
        return np.concatenate(parts, axis=0).astype(np.float32, copy=False)

    def fit(self, L: np.ndarray) -> LFeatures:
        """L ``(N, 1, S, S)`` (train) -> self."""
        L = np.asarray(L)
        if L.ndim != 4 or L.shape[1] != 1 or L.shape[2] != L.shape[3]:
            raise ValueError(f"L must be (N, 1, S, S), got {L.shape}")
        if self.scale not in ("feature", "global"):
            raise ModelError(f"features: scale must be 'feature' or 'global', got {self.scale!r}")
        self.size_ = int(L.shape[2])
        self.pca_ = None
        if "pca" in self.blocks:
            self.pca_ = PCA(self.n_components, solver=self.pca_solver, random_state=self.random_state)
            self.pca_.fit(L.reshape(len(L), -1))
        F = self._raw(L)
        mean = F.mean(axis=0, dtype=np.float64)
        if self.scale == "feature":
            sd = F.std(axis=0, dtype=np.float64)
            sd = np.where(sd > 1e-6 * max(float(sd.max()), 1e-12), sd, 1.0)
        else:
            sd = np.empty(F.shape[1])
            o = 0
            for w in self._block_widths():
                blk = F[:, o : o + w].astype(np.float64) - mean[o : o + w]
                sd[o : o + w] = max(float(np.sqrt((blk**2).sum(axis=1).mean())), 1e-12)
                o += w
        self.mean_ = mean.astype(np.float32)
        self.scale_ = sd.astype(np.float32)
        self.n_features_ = int(F.shape[1])
        return self

    def _block_widths(self) -> list[int]:
        out = []
        for b in self.blocks:
            if b == "pca":
                assert self.pca_ is not None
                out.append(self.pca_.n_components_)
            elif b == "pixels":
                out.append(self.size_ * self.size_)
            else:
                out.append(self.grid * self.grid * self.bins)
        return out

    def transform(self, L: np.ndarray) -> np.ndarray:
        """L ``(N, 1, S, S)`` at the fitted size -> features ``(N, F)`` float32."""
        self._check_fitted()
        L = np.asarray(L)
        if L.ndim != 4 or L.shape[1] != 1 or L.shape[2:] != (self.size_, self.size_):
            raise ValueError(f"L must be (N, 1, {self.size_}, {self.size_}), got {L.shape}")
        F = self._raw(L)
        F -= self.mean_
        F /= self.scale_
        return F

    def fit_transform(self, L: np.ndarray) -> np.ndarray:
        return self.fit(L).transform(L)

    # ---- state (no pickle) ----
    def get_state(self, prefix: str = "features.") -> tuple[dict[str, np.ndarray], dict]:
        self._check_fitted()
        arrays = {f"{prefix}mean": self.mean_, f"{prefix}scale": self.scale_}
        meta = {"kind": self.kind, "n_components": self.n_components, "grid": self.grid, "bins": self.bins,
                "scale": self.scale, "pca_solver": self.pca_solver, "random_state": self.random_state,
                "size": self.size_, "n_features": self.n_features_}
        if self.pca_ is not None:
            a, m = self.pca_.get_state(prefix + "pca.")
            arrays.update(a)
            meta["pca"] = m
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict, prefix: str = "features.") -> LFeatures:
        f = cls(meta["kind"], meta["n_components"], meta["grid"], meta["bins"], meta["scale"],
                meta["pca_solver"], meta["random_state"])
        f.size_ = int(meta["size"])
        f.n_features_ = int(meta["n_features"])
        f.mean_ = np.asarray(arrays[f"{prefix}mean"], dtype=np.float32)
        f.scale_ = np.asarray(arrays[f"{prefix}scale"], dtype=np.float32)
        f.pca_ = PCA.from_state(arrays, meta["pca"], prefix + "pca.") if "pca" in meta else None
        return f


# ---- state files: arrays in .npz (loaded with allow_pickle=False) + a JSON description ----
def save_state(folder: str | Path, stem: str, arrays: dict[str, np.ndarray], meta: dict) -> tuple[Path, Path]:
    """Write ``<stem>.npz`` (arrays) and ``<stem>.json`` (meta) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    npz, js = folder / f"{stem}.npz", folder / f"{stem}.json"
    with atomic_path(npz, suffix=".npz") as tmp:  # np.savez adds .npz to a name without it
        np.savez(tmp, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    atomic_write_bytes(js, json.dumps(meta, indent=2).encode())
    return npz, js


def load_state(folder: str | Path, stem: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read what :func:`save_state` wrote; one-line :class:`ModelError` when missing or broken."""
    folder = Path(folder)
    npz, js = folder / f"{stem}.npz", folder / f"{stem}.json"
    for p in (npz, js):
        if not p.exists():
            raise ModelError(f"{p}: missing (the run folder is incomplete; retrain it)")
    try:
        meta = json.loads(js.read_text())
    except ValueError as e:
        raise ModelError(f"{js}: not valid JSON ({e})") from None
    try:
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile / format errors
        raise ModelError(f"{npz}: unreadable arrays ({type(e).__name__}: {e})") from None
    return arrays, meta
