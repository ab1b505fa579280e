"""Multi-output RBF SVR sharing one kernel matrix, and the SVR colorizer built on it.

All outputs of the study's SVR see the same inputs, so the RBF kernel ``K (N, N)`` is the
same for every output. :class:`MultiOutputSVR` computes it once (BLAS, float64) and fits
one ``sklearn.svm.SVR(kernel='precomputed')`` per output, in threads (libsvm releases the
GIL while it trains). The fitted duals are gathered into one matrix, so prediction of every
output is one kernel ``(n, m)`` times ``dual_coef_.T (m, K)``. Each output's solution is the
one ``SVR(kernel='rbf')`` finds on the same data (same libsvm solver, same kernel values up to
rounding); ``benchmarks/bench_svr.py`` measures both the speed and the difference.

:class:`SVRColorizer` is the study's setup: L ``(N, 1, 64, 64)`` is resized to 28x28,
turned into features (PCA of L), the SVR predicts the (standardized) ab-PCA coefficients,
ab at 28x28 is reconstructed and upsampled (bicubic) to the input's size; the evaluation
combines it with the original 64x64 L. A run folder stores it as ``model.npz`` + ``model.json``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .._io import progress_bar
from ..errors import ModelError
from ..ops import resize_batch
from .base import Predictor
from .features import LFeatures, load_state, save_state
from .pca import PCA


def rbf_kernel(X: np.ndarray, Y: np.ndarray, gamma: float) -> np.ndarray:
    """``exp(-gamma * ||x - y||^2)`` for all pairs: ``(n, D)`` x ``(m, D)`` -> ``(n, m)`` float64."""
    from sklearn.metrics.pairwise import rbf_kernel as _rbf

    return _rbf(np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64), gamma=float(gamma))


def resolve_gamma(gamma, X: np.ndarray) -> float:
    """sklearn's rules: ``'scale'`` = 1 / (D * var(X)), ``'auto'`` = 1 / D, or a number."""
    X = np.asarray(X, dtype=np.float64)
    if gamma == "scale":
        var = float(X.var())
        return 1.0 / (X.shape[1] * var) if var > 0 else 1.0
    if gamma == "auto":
        return 1.0 / X.shape[1]
    g = float(gamma)
    if g <= 0:
        raise ModelError(f"SVR: gamma must be > 0, 'scale' or 'auto', got {gamma!r}")
    return g


class MultiOutputSVR:
    """RBF epsilon-SVR for K outputs on one precomputed kernel, outputs fitted in parallel.

    Hyper-parameters (as ``sklearn.svm.SVR``): ``C``, ``epsilon``, ``gamma`` (number,
    ``'scale'`` or ``'auto'``), ``tol``, ``cache_size``, ``max_iter``; ``n_jobs`` threads
    (-1: all cores); ``progress`` (a rich bar over outputs).

    Learned state: ``gamma_``, ``support_ (m,)`` (train rows that are a support vector of any
    output), ``support_vectors_ (m, D)``, ``dual_coef_ (K, m)`` float64 (zero where a row is not
    a support vector of that output), ``intercept_ (K,)``, ``n_support_ (K,)``,
    ``kernel_seconds_``, ``fit_seconds_``.
    """

    def __init__(self, C: float = 1.0, epsilon: float = 0.1, gamma="scale", tol: float = 1e-3,
                 cache_size: float = 200, max_iter: int = -1, n_jobs: int = -1, progress: bool = False):
        self.C = C
        self.epsilon = epsilon
        self.gamma = gamma
        self.tol = tol
        self.cache_size = cache_size
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.progress = progress

    def _one(self, K: np.ndarray, y: np.ndarray):
        from sklearn.svm import SVR

        m = SVR(kernel="precomputed", C=self.C, epsilon=self.epsilon, tol=self.tol, cache_size=self.cache_size,
                max_iter=self.max_iter)
        m.fit(K, y)
        return m.support_, m.dual_coef_[0], float(m.intercept_[0])

    def fit(self, X, Y) -> MultiOutputSVR:
        """X ``(N, D)``, Y ``(N, K)`` -> self."""
        from joblib import Parallel, delayed

        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y[:, None]
        if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
            raise ValueError(f"X must be (N, D) and Y (N, K) with the same N, got {X.shape} and {Y.shape}")
        t0 = time.perf_counter()
        self.gamma_ = resolve_gamma(self.gamma, X)
        K = rbf_kernel(X, X, self.gamma_)  # (N, N), shared by every output
        self.kernel_seconds_ = time.perf_counter() - t0
        n, k = Y.shape
        jobs = self.n_jobs if self.n_jobs and self.n_jobs > 0 else (os.cpu_count() or 1)
        results = []
        with progress_bar(f"SVR outputs (C={self.C:g}, eps={self.epsilon:g}, gamma={self.gamma_:.3g})",
                          enabled=self.progress) as bar:
            task = bar.add_task("svr", total=k)
            gen = Parallel(n_jobs=min(jobs, k), prefer="threads", return_as="generator")(
                delayed(self._one)(K, Y[:, j]) for j in range(k))
            for r in gen:
                results.append(r)
                bar.advance(task)
        rows = np.unique(np.concatenate([r[0] for r in results])) if results else np.zeros(0, int)
        pos = np.full(n, -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        dual = np.zeros((k, len(rows)), dtype=np.float64)
        for j, (sup, coef, _b) in enumerate(results):
            dual[j, pos[sup]] = coef
        self.support_ = rows.astype(np.int64)
        self.support_vectors_ = X[rows]
        self.dual_coef_ = dual
        self.intercept_ = np.array([r[2] for r in results], dtype=np.float64)
        self.n_support_ = np.array([len(r[0]) for r in results], dtype=np.int64)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "dual_coef_"):
            raise ModelError("MultiOutputSVR is not fitted yet: call fit(X, Y) before predict(X)")

    def predict(self, X, batch: int = 4096) -> np.ndarray:
        """X ``(n, D)`` -> ``(n, K)`` float64: one kernel against the support vectors for all outputs."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.support_vectors_.shape[1]:
            raise ValueError(f"X must be (n, {self.support_vectors_.shape[1]}), got {X.shape}")
        out = np.empty((len(X), len(self.intercept_)), dtype=np.float64)
        for s in range(0, len(X), batch):
            out[s : s + batch] = rbf_kernel(X[s : s + batch], self.support_vectors_, self.gamma_) @ self.dual_coef_.T
        return out + self.intercept_

    def get_state(self, prefix: str = "svr.") -> tuple[dict[str, np.ndarray], dict]:
        self._check_fitted()
        arrays = {f"{prefix}support": self.support_, f"{prefix}support_vectors": self.support_vectors_,
                  f"{prefix}dual_coef": self.dual_coef_, f"{prefix}intercept": self.intercept_,
                  f"{prefix}n_support": self.n_support_}
        meta = {"C": self.C, "epsilon": self.epsilon, "gamma": self.gamma, "tol": self.tol,
                "cache_size": self.cache_size, "max_iter": self.max_iter, "n_jobs": self.n_jobs,
                "gamma_used": self.gamma_, "kernel_seconds": self.kernel_seconds_, "fit_seconds": self.fit_seconds_}
        return arrays, meta

    @classmethod
    def from_state(cls, arrays, meta, prefix: str = "svr.") -> MultiOutputSVR:
        m = cls(meta["C"], meta["epsilon"], meta["gamma"], meta["tol"], meta["cache_size"], meta["max_iter"],
                meta["n_jobs"])
        m.gamma_ = float(meta["gamma_used"])
        m.support_ = np.asarray(arrays[f"{prefix}support"], dtype=np.int64)
        m.support_vectors_ = np.asarray(arrays[f"{prefix}support_vectors"], dtype=np.float64)
        m.dual_coef_ = np.asarray(arrays[f"{prefix}dual_coef"], dtype=np.float64)
        m.intercept_ = np.asarray(arrays[f"{prefix}intercept"], dtype=np.float64)
        m.n_support_ = np.asarray(arrays[f"{prefix}n_support"], dtype=np.int64)
        m.kernel_seconds_, m.fit_seconds_ = meta["kernel_seconds"], meta["fit_seconds"]
        return m


class TargetScaler:
    """Standardizes targets ``(N, K)``: ``mode='output'`` per output (z-scores), ``'global'`` one
    scale for all (relative sizes kept), ``'none'``. Learned: ``mean_ (K,)``, ``scale_ (K,)``."""

    def __init__(self, mode: str = "global"):
        self.mode = mode

    def fit(self, Y) -> TargetScaler:
        Y = np.asarray(Y, dtype=np.float64)
        if self.mode not in ("output", "global", "none"):
            raise ModelError(f"target scaling must be 'output', 'global' or 'none', got {self.mode!r}")
        self.mean_ = Y.mean(axis=0) if self.mode != "none" else np.zeros(Y.shape[1])
        if self.mode == "output":
            sd = Y.std(axis=0)
            self.scale_ = np.where(sd > 0, sd, 1.0)
        elif self.mode == "global":
            self.scale_ = np.full(Y.shape[1], max(float(np.sqrt(((Y - self.mean_) ** 2).sum(axis=1).mean())), 1e-12))
        else:
            self.scale_ = np.ones(Y.shape[1])
        return self

    def transform(self, Y):
        return (np.asarray(Y, dtype=np.float64) - self.mean_) / self.scale_

    def inverse_transform(self, Z):
        return np.asarray(Z, dtype=np.float64) * self.scale_ + self.mean_


class SVRColorizer(Predictor):
    """L ``(N, 1, H, W)`` -> resized to the model size (28) -> features -> SVR -> ab-PCA
    coefficients -> ab at 28x28 -> bicubic to ``(N, 2, H, W)``."""

    batch_size = 512
    input_size = 64

    def __init__(self, features: LFeatures, svr: MultiOutputSVR, scaler: TargetScaler, ab_pca: PCA,
                 name: str = "svr", meta: dict | None = None, input_size: int = 64):
        self.features = features
        self.svr = svr
        self.scaler = scaler
        self.ab_pca = ab_pca
        self.name = name
        self.model_size = features.size_
        self.input_size = input_size
        self.meta = dict(meta or {})

    def predict_coefficients(self, L_small: np.ndarray) -> np.ndarray:
        """L at the model size ``(N, 1, s, s)`` -> ab-PCA coefficients ``(N, K)``."""
        return self.scaler.inverse_transform(self.svr.predict(self.features.transform(L_small)))

    def _predict(self, L):
        h, w = L.shape[2:]
        s = self.model_size
        z = self.predict_coefficients(resize_batch(L, s))
        ab = self.ab_pca.inverse_transform(z.astype(np.float32)).reshape(len(L), 2, s, s)
        return resize_batch(ab, (h, w))

    def describe(self) -> dict:
        return {**super().describe(), "kind": "svr", "model_size": self.model_size,
                "features": self.features.kind, "ab_components": self.ab_pca.n_components_,
                "C": self.svr.C, "epsilon": self.svr.epsilon, "gamma": self.svr.gamma_,
                "support_vectors": int(len(self.svr.support_))}

    def save(self, folder: str | Path) -> None:
        arrays = {"scaler.mean": self.scaler.mean_, "scaler.scale": self.scaler.scale_}
        meta = {"format": "chromalab-svr/1", "name": self.name, "input_size": self.input_size,
                "scaler": {"mode": self.scaler.mode}, **self.meta}
        for part, (a, m) in (("features", self.features.get_state("features.")),
                             ("ab_pca", self.ab_pca.get_state("ab_pca.")),
                             ("svr", self.svr.get_state("svr."))):
            arrays.update(a)
            meta[part] = m
        save_state(folder, "model", arrays, meta)


def load_run(folder: str | Path) -> SVRColorizer:
    """An SVR run folder (``model.npz`` + ``model.json``) -> the predictor."""
    folder = Path(folder)
    arrays, meta = load_state(folder, "model")
    if meta.get("format") != "chromalab-svr/1":
        raise ModelError(f"{folder / 'model.json'}: not an SVR model (format {meta.get('format')!r})")
    try:
        features = LFeatures.from_state(arrays, meta["features"], "features.")
        ab_pca = PCA.from_state(arrays, meta["ab_pca"], "ab_pca.")
        svr = MultiOutputSVR.from_state(arrays, meta["svr"], "svr.")
        scaler = TargetScaler(meta["scaler"]["mode"])
        scaler.mean_, scaler.scale_ = arrays["scaler.mean"], arrays["scaler.scale"]
    except KeyError as e:
        raise ModelError(f"{folder / 'model.npz'}: missing entry {e}") from None
    extra = {k: v for k, v in meta.items()
             if k not in ("features", "ab_pca", "svr", "scaler", "format", "name", "input_size")}
    return SVRColorizer(features, svr, scaler, ab_pca, name=meta.get("name", "svr"), meta=extra,
                        input_size=int(meta.get("input_size", 64)))
