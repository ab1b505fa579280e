"""Linear regression by (mini-batch) gradient descent, and the linear colorizer built on it.

:class:`LinearGD` minimizes, over ``W (D, K)`` and ``b (K,)``,

    J(W, b) = 1/(2N) * sum_i ||y_i - W^T x_i - b||^2  +  alpha/2 * ||W||^2

with mini-batch gradient descent (Nesterov momentum), a step ``lr = 1 / L`` where ``L`` is
the largest eigenvalue of the Hessian (``[X 1]^T [X 1] / N + alpha``, found by power
iteration), a cosine decay of the step to 0 over ``max_epochs`` (so the mini-batch noise
vanishes and the iterate settles at the minimum) and optional early stopping on a validation
set (the best epoch's weights are kept). :func:`closed_form` gives the same problem's exact
solution (``numpy.linalg.lstsq`` for ``alpha = 0``, the ridge normal equations otherwise).

:class:`LinearColorizer` is the study's model: L ``(N, 1, 64, 64)`` -> features
(standardized PCA of L by default) -> GD regression -> K ab-PCA coefficients -> ab.
A run folder stores it as ``model.npz`` (arrays, no pickle) and ``model.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .._io import progress_bar
from ..errors import ModelError
from ..ops import resize_batch, single_threaded, torch_threads
from .base import Predictor
from .features import LFeatures, load_state, save_state
from .pca import PCA


class LinearGD:
    """Multi-output linear regression fitted by gradient descent (sklearn-style).

    Hyper-parameters (``__init__`` only): ``alpha`` (L2 on W, not on b), ``lr`` (None: 1/L),
    ``batch_size`` (None or 0: full batch), ``max_epochs``, ``momentum`` (Nesterov),
    ``schedule`` (``cosine`` | ``constant``), ``patience`` (epochs without a validation
    improvement before stopping; 0 disables), ``min_delta`` (relative improvement that
    counts), ``random_state``, ``progress`` (a rich bar).

    Learned state: ``coef_ (D, K)``, ``intercept_ (K,)``, ``loss_history_`` (mean training
    MSE of each epoch's mini-batches), ``val_history_`` (validation MSE after each epoch),
    ``train_mse_`` (full training MSE of the returned weights), ``lipschitz_``, ``lr_``,
    ``n_epochs_``, ``best_epoch_``, ``stopped_early_``, ``fit_seconds_``.
    MSE here is the mean over samples and outputs of the squared error.
    """

    def __init__(self, alpha: float = 0.0, lr: float | None = None, batch_size: int | None = 4096,
                 max_epochs: int = 50, momentum: float = 0.9, schedule: str = "cosine", patience: int = 5,
                 min_delta: float = 1e-4, random_state: int = 0, progress: bool = False):
        self.alpha = alpha
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.momentum = momentum
        self.schedule = schedule
        self.patience = patience
        self.min_delta = min_delta
        self.random_state = random_state
        self.progress = progress

    @staticmethod
    def _check_xy(X, Y=None):
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"X must be (N, D), got {X.shape}")
        if Y is None:
            return X, None
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2 or len(Y) != len(X):
            raise ValueError(f"Y must be (N, K) with N = {len(X)}, got {Y.shape}")
        return X, Y

    def _lipschitz(self, X, gen) -> float:
        """Largest eigenvalue of [X 1]^T [X 1] / n (power iteration on up to 16,384 rows) + alpha."""
        import torch

        n = len(X)
        rows = np.sort(gen.choice(n, size=min(n, 16384), replace=False)) if n > 16384 else slice(None)
        xs = torch.from_numpy(np.ascontiguousarray(X[rows])).double()
        m = len(xs)
        v = torch.ones(xs.shape[1] + 1, dtype=torch.float64)
        with torch_threads(1):  # many small mat-vecs: one thread is faster on busy cores
            lam = self._power_iteration(xs, v, m)
        safety = 1.0 if m == n else 1.1  # a subsample may underestimate the top eigenvalue
        return lam * safety + float(self.alpha)

    @staticmethod
    def _power_iteration(xs, v, m: int) -> float:
        import torch

        lam = 0.0
        for _ in range(100):
            u = xs @ v[:-1] + v[-1]
            w = torch.cat([xs.T @ u, u.sum().reshape(1)]) / m
            lam_new = float(torch.linalg.vector_norm(w))
            v = w / max(lam_new, 1e-30)
            if abs(lam_new - lam) <= 1e-6 * lam_new:
                lam = lam_new
                break
            lam = lam_new
        return lam

    def fit(self, X, Y, X_val=None, Y_val=None) -> LinearGD:
        """X ``(N, D)``, Y ``(N, K)`` (optionally a validation pair for early stopping) -> self."""

        X, Y = self._check_xy(X, Y)
        bs = len(X) if not self.batch_size else min(int(self.batch_size), len(X))
        with torch_threads(1 if bs * X.shape[1] * Y.shape[1] < 2**25 else None):
            return self._fit(X, Y, X_val, Y_val)

    def _fit(self, X, Y, X_val, Y_val) -> LinearGD:
        import torch

        if self.schedule not in ("cosine", "constant"):
            raise ModelError(f"LinearGD: schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        use_val = X_val is not None and Y_val is not None and self.patience > 0
        if use_val:
            X_val, Y_val = self._check_xy(X_val, Y_val)
        t0 = time.perf_counter()
        gen = np.random.default_rng(self.random_state)
        n, d = X.shape
        k = Y.shape[1]
        # GD runs on centred inputs (same objective, W unchanged, b shifted): this decouples
        # the intercept from W and keeps the Hessian as well conditioned as the covariance.
        x_mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        X = X - x_mean
        if use_val:
            X_val = X_val - x_mean
        self.lipschitz_ = self._lipschitz(X, gen)
        self.lr_ = float(self.lr) if self.lr else 1.0 / self.lipschitz_
        bs = n if not self.batch_size else min(int(self.batch_size), n)
        steps_per_epoch = -(-n // bs)
        total_steps = steps_per_epoch * max(1, int(self.max_epochs))
        xt, yt = torch.from_numpy(X), torch.from_numpy(Y)
        W = torch.zeros(d, k, dtype=torch.float32)
        b = torch.from_numpy(Y.mean(axis=0))  # start at the mean prediction
        vW, vb = torch.zeros_like(W), torch.zeros_like(b)
        mu, alpha = float(self.momentum), float(self.alpha)
        self.loss_history_, self.val_history_ = [], []
        best = (np.inf, W.clone(), b.clone(), 0)
        bad = 0
        step = 0
        self.stopped_early_ = False
        with progress_bar("GD epochs", info=True, enabled=self.progress) as bar:
            task = bar.add_task("gd", total=int(self.max_epochs), info="")
            for epoch in range(int(self.max_epochs)):
                perm = torch.from_numpy(gen.permutation(n)) if bs < n else None
                sse = 0.0
                for s in range(0, n, bs):
                    if perm is None:
                        xb, yb = xt, yt
                    else:
                        idx = perm[s : s + bs]
                        xb, yb = xt[idx], yt[idx]
                    r = xb @ W + b - yb  # (B, K) residual
                    sse += float((r * r).sum())
                    gW = xb.T @ r / len(xb)
                    if alpha:
                        gW += alpha * W
                    gb = r.mean(dim=0)
                    lr = self.lr_
                    if self.schedule == "cosine":
                        lr *= 0.5 * (1.0 + np.cos(np.pi * step / total_steps))
                    vW.mul_(mu).add_(gW)
                    vb.mul_(mu).add_(gb)
                    W.sub_(lr * (gW + mu * vW))  # Nesterov
                    b.sub_(lr * (gb + mu * vb))
                    step += 1
                self.loss_history_.append(sse / (n * k))
                info = f"train {self.loss_history_[-1]:.4g}"
                if use_val:
                    vm = _mse_t(X_val, Y_val, W, b)
                    self.val_history_.append(vm)
                    info += f" val {vm:.4g}"
                    if vm < best[0] * (1.0 - self.min_delta):
                        best, bad = (vm, W.clone(), b.clone(), epoch + 1), 0
                    else:
                        bad += 1
                bar.update(task, advance=1, info=info)
                if use_val and bad >= self.patience:
                    self.stopped_early_ = True
                    break
        self.n_epochs_ = len(self.loss_history_)
        if use_val and best[3] > 0:
            W, b, self.best_epoch_ = best[1], best[2], best[3]
        else:
            self.best_epoch_ = self.n_epochs_
        self.coef_ = W.numpy().copy()
        self.intercept_ = (b.double().numpy() - x_mean.astype(np.float64) @ self.coef_.astype(np.float64)).astype(
            np.float32)
        self.train_mse_ = self.mse(X + x_mean, Y)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ModelError("LinearGD is not fitted yet: call fit(X, Y) before predict(X)")

    def predict(self, X) -> np.ndarray:
        """X ``(N, D)`` -> ``(N, K)`` float32."""
        self._check_fitted()
        X, _ = self._check_xy(X)
        if X.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"X must have {self.coef_.shape[0]} features, got {X.shape[1]}")
        return X @ self.coef_ + self.intercept_

    def mse(self, X, Y) -> float:
        """Mean squared error over samples and outputs (float64 sums)."""
        import torch

        self._check_fitted()
        X, Y = self._check_xy(X, Y)
        return _mse_t(X, Y, torch.from_numpy(self.coef_), torch.from_numpy(self.intercept_))

    def get_state(self, prefix: str = "linear.") -> tuple[dict[str, np.ndarray], dict]:
        self._check_fitted()
        arrays = {f"{prefix}coef": self.coef_, f"{prefix}intercept": self.intercept_,
                  f"{prefix}loss_history": np.asarray(self.loss_history_, dtype=np.float64),
                  f"{prefix}val_history": np.asarray(self.val_history_, dtype=np.float64)}
        meta = {k: getattr(self, k) for k in ("alpha", "lr", "batch_size", "max_epochs", "momentum", "schedule",
                                               "patience", "min_delta", "random_state")}
        meta.update({"lipschitz": self.lipschitz_, "lr_used": self.lr_, "n_epochs": self.n_epochs_,
                     "best_epoch": self.best_epoch_, "stopped_early": self.stopped_early_,
                     "train_mse": self.train_mse_, "fit_seconds": self.fit_seconds_})
        return arrays, meta

    @classmethod
    def from_state(cls, arrays, meta, prefix: str = "linear.") -> LinearGD:
        m = cls(meta["alpha"], meta["lr"], meta["batch_size"], meta["max_epochs"], meta["momentum"],
                meta["schedule"], meta["patience"], meta["min_delta"], meta["random_state"])
        m.coef_ = np.asarray(arrays[f"{prefix}coef"], dtype=np.float32)
        m.intercept_ = np.asarray(arrays[f"{prefix}intercept"], dtype=np.float32)
        m.loss_history_ = arrays[f"{prefix}loss_history"].tolist()
        m.val_history_ = arrays[f"{prefix}val_history"].tolist()
        m.lipschitz_, m.lr_ = meta["lipschitz"], meta["lr_used"]
        m.n_epochs_, m.best_epoch_, m.stopped_early_ = meta["n_epochs"], meta["best_epoch"], meta["stopped_early"]
        m.train_mse_, m.fit_seconds_ = meta["train_mse"], meta["fit_seconds"]
        return m


def _mse_t(X, Y, W, b, batch: int = 8192) -> float:
    import torch

    n, k = Y.shape
    tot = 0.0
    with torch.no_grad():
        for s in range(0, n, batch):
            r = torch.from_numpy(X[s : s + batch]) @ W + b - torch.from_numpy(Y[s : s + batch])
            tot += float((r.double() ** 2).sum())
    return tot / (n * k)


def closed_form(X, Y, alpha: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The exact minimizer of the same objective: ``(W (D, K), b (K,))``, float64.

    ``alpha = 0``: ``numpy.linalg.lstsq`` on ``[X 1]``. ``alpha > 0``: ridge normal equations
    on the centred data, ``(Xc^T Xc / N + alpha I) W = Xc^T Yc / N`` (b unpenalized).
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    n = len(X)
    if alpha == 0:
        with single_threaded():
            sol = np.linalg.lstsq(np.hstack([X, np.ones((n, 1))]), Y, rcond=None)[0]
        return sol[:-1], sol[-1]
    xm, ym = X.mean(axis=0), Y.mean(axis=0)
    Xc = X - xm
    G = Xc.T @ Xc / n
    G[np.diag_indices_from(G)] += alpha
    R = Xc.T @ (Y - ym) / n
    with single_threaded():
        W = np.linalg.solve(G, R)
    return W, ym - xm @ W


# ---- the colorizer --------------------------------------------------------------------------
class LinearColorizer(Predictor):
    """L ``(N, 1, H, W)`` -> features -> LinearGD -> ab-PCA coefficients -> ab ``(N, 2, H, W)``.

    Inputs at another size than the model's are resized to it (bicubic) and the predicted ab
    resized back.
    """

    batch_size = 512

    def __init__(self, features: LFeatures, model: LinearGD, ab_pca: PCA, name: str = "linear",
                 meta: dict | None = None):
        self.features = features
        self.model = model
        self.ab_pca = ab_pca
        self.name = name
        self.input_size = features.size_
        self.meta = dict(meta or {})

    def _predict(self, L):
        h, w = L.shape[2:]
        s = self.input_size
        Ls = resize_batch(L, s)
        z = self.model.predict(self.features.transform(Ls))
        ab = self.ab_pca.inverse_transform(z).reshape(len(L), 2, s, s)
        return resize_batch(ab, (h, w))

    def describe(self) -> dict:
        return {**super().describe(), "kind": "linear", "features": self.features.kind,
                "n_features": self.features.n_features_, "ab_components": self.ab_pca.n_components_,
                "alpha": self.model.alpha}

    def save(self, folder: str | Path) -> None:
        arrays, meta = {}, {"format": "chromalab-linear/1", "name": self.name, **self.meta}
        for part, (a, m) in (("features", self.features.get_state("features.")),
                             ("ab_pca", self.ab_pca.get_state("ab_pca.")),
                             ("linear", self.model.get_state("linear."))):
            arrays.update(a)
            meta[part] = m
        save_state(folder, "model", arrays, meta)


def load_run(folder: str | Path) -> LinearColorizer:
    """A linear run folder (``model.npz`` + ``model.json``) -> the predictor."""
    folder = Path(folder)
    arrays, meta = load_state(folder, "model")
    if meta.get("format") != "chromalab-linear/1":
        raise ModelError(f"{folder / 'model.json'}: not a linear model (format {meta.get('format')!r})")
    try:
        features = LFeatures.from_state(arrays, meta["features"], "features.")
        ab_pca = PCA.from_state(arrays, meta["ab_pca"], "ab_pca.")
        model = LinearGD.from_state(arrays, meta["linear"], "linear.")
    except KeyError as e:
        raise ModelError(f"{folder / 'model.npz'}: missing entry {e}") from None
    extra = {k: v for k, v in meta.items() if k not in ("features", "ab_pca", "linear", "format", "name")}
    return LinearColorizer(features, model, ab_pca, name=meta.get("name", "linear"), meta=extra)
