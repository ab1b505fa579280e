"""PCA (sklearn-style fit / transform / inverse_transform), the PCA ceiling, PCA figures.

Solvers (``solver=``):

* ``full``: SVD of the centred data (``numpy.linalg.svd``, float64). Exact; for small data.
* ``covariance``: the covariance matrix ``(D, D)`` accumulated over row batches (float32
  products summed in float64; the data never has to be in memory at once), then its exact
  eigen-decomposition (LAPACK ``evr``, top K only).
* ``randomized``: the same covariance, then randomized subspace iteration (Halko et al.)
  with ``oversample`` extra vectors, ``n_iter`` power steps and a fixed seed. For large D
  (8,192 for ab at 64x64) it takes seconds where the exact eigen-solver takes minutes.
* ``auto``: ``full`` when the data is small, else ``covariance`` up to D = 2,048, else
  ``randomized``.

Components are sign-normalized (largest-magnitude entry positive), so fits are reproducible.

The **PCA ceiling** is the true ab projected on the first K components and reconstructed:
the best any model that predicts K PCA coefficients can do. It needs the true ab, so it is
an *oracle* predictor: evaluation calls :meth:`PCACeiling.predict_ab_oracle` (L, ab_true)
instead of ``predict_ab(L)``, which raises.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .._io import atomic_path, progress_bar
from ..errors import ModelError
from ..ops import resize_batch, single_threaded
from .base import Predictor

PCA_SOLVERS = ("auto", "full", "covariance", "randomized")
CEILING_K = 600
"""Components of the registry's ``pca-ceiling`` (the study's K at 64x64)."""
_FORMAT = "chromalab-pca/1"


class PCA:
    """Principal component analysis of rows ``X (N, D)``.

    Hyper-parameters: ``n_components`` (K), ``solver`` (see the module docstring),
    ``n_iter`` and ``oversample`` (randomized), ``random_state``, ``batch_rows``.

    Learned state: ``mean_ (D,)``, ``components_ (K, D)`` (orthonormal rows, float32),
    ``explained_variance_ (K,)`` (eigenvalues of the covariance, ddof=1),
    ``explained_variance_ratio_ (K,)``, ``total_variance_``, ``n_samples_``,
    ``n_features_``, ``n_components_`` (K capped at min(N, D)), ``solver_`` (the one used).
    """

    def __init__(self, n_components: int = 600, solver: str = "auto", n_iter: int = 6, oversample: int = 100,
                 random_state: int = 0, batch_rows: int = 4096):
        self.n_components = n_components
        self.solver = solver
        self.n_iter = n_iter
        self.oversample = oversample
        self.random_state = random_state
        self.batch_rows = batch_rows

    # ---- fitting ----
    def _check_params(self) -> None:
        if self.solver not in PCA_SOLVERS:
            raise ModelError(f"PCA: unknown solver {self.solver!r} (choose from {', '.join(PCA_SOLVERS)})")
        if int(self.n_components) < 1:
            raise ModelError(f"PCA: n_components must be >= 1, got {self.n_components}")

    def fit(self, X: np.ndarray) -> PCA:
        """X ``(N, D)`` (an array or a memmap) -> self."""
        self._check_params()
        X = np.asarray(X) if not isinstance(X, np.memmap) else X
        if X.ndim != 2:
            raise ValueError(f"PCA: X must be (N, D), got shape {X.shape}")
        n, d = X.shape
        solver = self.solver
        if solver == "auto":
            solver = "full" if n * d <= 4_000_000 or min(n, d) <= 64 else ("covariance" if d <= 2048 else "randomized")
        if solver == "full":
            return self._fit_full(np.asarray(X, dtype=np.float64))
        rows = self.batch_rows
        return self._fit_batches((X[s : s + rows] for s in range(0, n, rows)), solver)

    def fit_batches(self, batches: Iterable[np.ndarray], progress=None) -> PCA:
        """Fit from an iterable of row batches ``(b, D)`` (covariance / randomized solvers).

        ``progress``: an optional callable ``progress(rows_done_in_this_batch)``.
        """
        self._check_params()
        solver = self.solver if self.solver in ("covariance", "randomized") else "randomized"
        return self._fit_batches(batches, solver, progress)

    def _fit_full(self, X: np.ndarray) -> PCA:
        n, d = X.shape
        if n < 2:
            raise ModelError(f"PCA: need at least 2 samples, got {n}")
        mean = X.mean(axis=0)
        with single_threaded():
            _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
        ev_all = s**2 / (n - 1)
        k = min(int(self.n_components), n, d)
        self._set(mean, vt[:k], ev_all[:k], float(ev_all.sum()), n, d, "full")
        return self

    def _fit_batches(self, batches: Iterable[np.ndarray], solver: str, progress=None) -> PCA:
        shift = None
        s = g = None
        n = 0
        for b in batches:
            b = np.asarray(b, dtype=np.float32)
            if b.ndim != 2:
                raise ValueError(f"PCA: batches must be (b, D), got shape {b.shape}")
            if len(b) == 0:
                continue
            if shift is None:
                shift = b.mean(axis=0, dtype=np.float64).astype(np.float32)
                d = b.shape[1]
                s = np.zeros(d, dtype=np.float64)
                g = np.zeros((d, d), dtype=np.float64)
            bc = b - shift
            s += bc.sum(axis=0, dtype=np.float64)
            g += bc.T @ bc  # float32 GEMM (syrk), summed in float64
            n += len(b)
            if progress is not None:
                progress(len(b))
        if shift is None or n < 2:
            raise ModelError(f"PCA: need at least 2 samples, got {n}")
        assert s is not None and g is not None
        d = g.shape[0]
        m = s / n
        cov = (g - n * np.outer(m, m)) / (n - 1)
        cov = (cov + cov.T) * 0.5
        total = float(np.trace(cov))
        k = min(int(self.n_components), n, d)
        if solver == "covariance" or k + self.oversample >= d:
            w, v = _top_eigh(cov, k)
            used = "covariance"
        else:
            w, v = _randomized_top_eigh(cov, k, self.oversample, self.n_iter, self.random_state)
            used = "randomized"
        self._set(shift.astype(np.float64) + m, v.T, np.maximum(w, 0.0), total, n, d, used)
        return self

    def _set(self, mean, comps, ev, total, n, d, solver) -> None:
        comps = np.asarray(comps, dtype=np.float64)
        # deterministic signs: the largest-magnitude entry of each component is positive
        idx = np.argmax(np.abs(comps), axis=1)
        signs = np.sign(comps[np.arange(len(comps)), idx])
        signs[signs == 0] = 1.0
        comps = comps * signs[:, None]
        self.mean_ = np.asarray(mean, dtype=np.float32)
        self.components_ = np.ascontiguousarray(comps, dtype=np.float32)
        self.explained_variance_ = np.asarray(ev, dtype=np.float64)
        self.total_variance_ = float(total)
        self.explained_variance_ratio_ = self.explained_variance_ / total if total > 0 else np.zeros_like(ev)
        self.n_samples_, self.n_features_ = int(n), int(d)
        self.n_components_ = int(len(comps))
        self.solver_ = solver

    # ---- using it ----
    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise ModelError("PCA is not fitted yet: call fit(X) before transform / inverse_transform")

    def transform(self, X: np.ndarray, k: int | None = None) -> np.ndarray:
        """X ``(N, D)`` -> coefficients ``(N, K)`` float32 (the first ``k`` only if given)."""
        self._check_fitted()
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise ValueError(f"PCA: X must be (N, {self.n_features_}), got {X.shape}")
        comps = self.components_[: k or self.n_components_]
        out = np.empty((len(X), len(comps)), dtype=np.float32)
        for s in range(0, len(X), self.batch_rows):
            out[s : s + self.batch_rows] = (np.asarray(X[s : s + self.batch_rows], np.float32) - self.mean_) @ comps.T
        return out

    def inverse_transform(self, Z: np.ndarray, k: int | None = None) -> np.ndarray:
        """Coefficients ``(N, K')`` -> rows ``(N, D)`` float32, from the first ``k`` (default K')."""
        self._check_fitted()
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] > self.n_components_:
            raise ValueError(f"PCA: Z must be (N, <= {self.n_components_}), got {Z.shape}")
        kk = min(k or Z.shape[1], Z.shape[1])
        return Z[:, :kk] @ self.components_[:kk] + self.mean_

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    # ---- state (no pickle) ----
    def get_state(self, prefix: str = "pca.") -> tuple[dict[str, np.ndarray], dict]:
        self._check_fitted()
        arrays: dict[str, np.ndarray] = {f"{prefix}mean": self.mean_, f"{prefix}components": self.components_,
                                         f"{prefix}explained_variance": self.explained_variance_}
        meta = {"format": _FORMAT, "n_components": int(self.n_components), "solver": self.solver,
                "n_iter": self.n_iter, "oversample": self.oversample, "random_state": self.random_state,
                "batch_rows": self.batch_rows, "total_variance": self.total_variance_,
                "n_samples": self.n_samples_, "n_features": self.n_features_, "solver_used": self.solver_}
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict, prefix: str = "pca.") -> PCA:
        p = cls(meta["n_components"], meta["solver"], meta["n_iter"], meta["oversample"],
                meta["random_state"], meta["batch_rows"])
        p._set(arrays[f"{prefix}mean"], arrays[f"{prefix}components"], arrays[f"{prefix}explained_variance"],
               meta["total_variance"], meta["n_samples"], meta["n_features"], meta["solver_used"])
        # keep the stored (already sign-normalized) float32 components bit for bit
        p.components_ = np.ascontiguousarray(arrays[f"{prefix}components"], dtype=np.float32)
        return p

    def save(self, path: str | os.PathLike) -> Path:
        """One ``.npz`` (arrays + the JSON description as a string array; no pickle). Atomic."""
        arrays, meta = self.get_state("")
        path = Path(path)
        with atomic_path(path, suffix=".npz") as tmp:  # np.savez adds .npz to a name without it
            np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> PCA:
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("meta")))
        except Exception as e:
            raise ModelError(f"{path}: unreadable PCA file ({type(e).__name__}: {e})") from None
        if meta.get("format") != _FORMAT:
            raise ModelError(f"{path}: not a {_FORMAT} file")
        return cls.from_state(arrays, meta, "")


def _top_eigh(cov: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``k`` eigenpairs of a symmetric matrix, descending: (w (k,), v (D, k))."""
    import scipy.linalg

    d = cov.shape[0]
    with single_threaded():
        w, v = scipy.linalg.eigh(cov, subset_by_index=[d - k, d - 1], driver="evr")
    return w[::-1], v[:, ::-1]


def _randomized_top_eigh(cov: np.ndarray, k: int, oversample: int, n_iter: int, seed: int):
    """Top ``k`` eigenpairs of a PSD matrix by randomized subspace iteration (Halko et al. 2011)."""
    rng = np.random.default_rng(seed)
    d = cov.shape[0]

    def orth(a):
        with single_threaded():  # QR is the factorization that suffers from busy cores
            return np.linalg.qr(a)[0]

    q = orth(cov @ rng.standard_normal((d, min(d, k + oversample))))
    for _ in range(n_iter):
        q = orth(cov @ q)
    b = q.T @ cov @ q
    with single_threaded():
        w, u = np.linalg.eigh((b + b.T) * 0.5)
    order = np.argsort(w)[::-1][:k]
    return w[order], q @ u[:, order]


# ---- the PCA ceiling ------------------------------------------------------------------
def ab_flat(ab: np.ndarray) -> np.ndarray:
    """``(N, 2, S, S)`` -> ``(N, 2*S*S)`` (a plane, then b plane)."""
    return np.asarray(ab).reshape(len(ab), -1)


class PCACeiling(Predictor):
    """The true ab, resized to ``size`` if needed, projected on K components, reconstructed and
    resized back. An oracle: only :meth:`predict_ab_oracle` works."""

    batch_size = 512

    def __init__(self, pca: PCA, size: int, name: str = "pca-ceiling"):
        self.pca = pca
        self.size = int(size)
        self.input_size = int(size)
        self.name = name

    def predict_ab_oracle(self, L: np.ndarray, ab_true: np.ndarray) -> np.ndarray:
        """L ``(N, 1, H, W)`` and the true ab ``(N, 2, H, W)`` -> the reconstructed ab ``(N, 2, H, W)``."""
        ab_true = np.asarray(ab_true, dtype=np.float32)
        if ab_true.ndim != 4 or ab_true.shape[1] != 2:
            raise ValueError(f"{self.name}: ab must be (N, 2, H, W), got {ab_true.shape}")
        h, w = ab_true.shape[2:]
        small = resize_batch(ab_true, self.size)
        rec = self.pca.inverse_transform(self.pca.transform(ab_flat(small))).reshape(small.shape)
        return resize_batch(rec, (h, w))

    def _predict(self, L):
        raise ModelError(f"{self.name} is an evaluation-only reference: it needs the true colours "
                         "(use it with `chromalab evaluate`, not to colorize)")

    def describe(self) -> dict:
        return {**super().describe(), "oracle": True, "n_components": self.pca.n_components_,
                "pca_size": self.size, "pca_train_samples": self.pca.n_samples_,
                "explained_variance": float(self.pca.explained_variance_ratio_.sum())}


def ab_pca_cached(prep, size: int = 64, k: int = CEILING_K, limit: int | None = None,
                  solver: str = "auto", progress: bool = True) -> PCA:
    """The PCA of train ab at ``size`` (first ``limit`` images, default all), cached as
    ``pca_ab_<size>_k<K>_<n>_<solver>.npz`` in the prepared cache folder (refit only if missing).
    """
    n_train = len(prep.split("train", size, limit=limit))
    path = Path(prep.dir) / f"pca_ab_{size}_k{k}_{n_train}_{solver}.npz"
    if path.exists():
        try:
            return PCA.load(path)
        except ModelError:
            pass  # a broken cache file is refitted below
    pca = fit_ab_pca(prep.split("train", size, limit=limit), k, solver=solver, progress=progress)
    try:
        pca.save(path)
    except OSError:
        pass  # read-only cache: fine, just not cached
    return pca


def fit_ab_pca(split, k: int, solver: str = "auto", progress: bool = True, batch: int = 4096) -> PCA:
    """PCA of a split's flattened ab ``(N, 2*S*S)``, streamed over batches, with a progress bar."""
    d = 2 * split.size * split.size
    n = len(split)
    pca = PCA(k, solver=solver)
    if solver == "auto" and (n * d <= 4_000_000 or min(n, d) <= 64):
        return pca.fit(ab_flat(split.arrays()[1]))
    if solver == "full":
        return pca.fit(ab_flat(split.arrays()[1]))
    if solver == "auto":
        pca.solver = "covariance" if d <= 2048 else "randomized"
    with progress_bar(f"PCA of ab ({n:,} x {d:,})", enabled=progress) as bar:
        task = bar.add_task("pca", total=n)
        pca.fit_batches((ab_flat(ab) for _L, ab, _rgb in split.batches(batch)),
                        progress=lambda m: bar.advance(task, m))
    pca.solver = solver
    return pca


def build_pca_ceiling(ctx) -> PCACeiling:
    """Registry builder: K=600 PCA of all train ab at 64x64 (cached next to the prepared data)."""
    prep = ctx.prepared()
    pca = ab_pca_cached(prep, size=64, k=CEILING_K, progress=ctx.progress)
    return PCACeiling(pca, size=64, name="pca-ceiling")


# ---- figures ----------------------------------------------------------------------------
def save_reconstruction_figure(pca: PCA, L: np.ndarray, ab: np.ndarray, path: str | os.PathLike,
                               ks=(50, 150, 300, 600), title: str | None = None) -> Path:
    """Originals (L + true ab) next to their reconstructions from the first K ab components.

    L ``(n, 1, S, S)``, ab ``(n, 2, S', S')`` at the PCA's size S' (resized for display).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..color import compose_rgb_uint8

    L = np.asarray(L, dtype=np.float32)
    ab = np.asarray(ab, dtype=np.float32)
    kmax = pca.n_components_
    ks = sorted({k for k in ks if k < kmax} | {kmax})
    z = pca.transform(ab_flat(ab))
    cols = [("original", ab)]
    for k in ks:
        cols.append((f"K = {k}", pca.inverse_transform(z, k=k).reshape(ab.shape)))
    n = len(L)
    fig, axes = plt.subplots(n, len(cols), figsize=(1.6 * len(cols), 1.6 * n + 0.4), squeeze=False)
    for j, (name, a) in enumerate(cols):
        rgb = compose_rgb_uint8(L, resize_batch(a, L.shape[2:]))
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(rgb[i], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
    fig.suptitle(title or f"ab from K PCA components\n(true L; PCA at {ab.shape[-1]}x{ab.shape[-1]})", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_variance_figure(pcas: dict[str, PCA], path: str | os.PathLike, marks=(50, 150, 300, 600)) -> Path:
    """Cumulative explained variance against K, one curve per named PCA."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, p in pcas.items():
        cum = np.cumsum(p.explained_variance_ratio_)
        ks = np.arange(1, len(cum) + 1)
        ax.plot(ks, cum, label=f"{name} ({cum[-1]:.1%} at K={len(cum)})")
        for m in marks:
            if m <= len(cum):
                ax.plot([m], [cum[m - 1]], "k.", ms=4)
    ax.set_xlabel("components K")
    ax.set_ylabel("cumulative explained variance")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
