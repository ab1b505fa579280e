"""The linear model: ab-PCA targets, L features, the ridge strength picked on val with the exact ridge
path, then mini-batch gradient descent at that strength (the closed form recorded next to it)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import ChromalabError
from .config import LinearConfig
from .steps import Log, figure_rows, finish


def ridge_path(X, Y, X_val, Y_val, alphas) -> list[dict]:
    """The exact minimizers of ``LinearGD``'s objective for every alpha, via one eigen-decomposition
    of the centred feature covariance ``G = Xc^T Xc / N``. Returns ``[{alpha, val_mse, train_mse}]``
    (MSE over samples and outputs). alpha = 0 is the least-squares (pseudo-inverse) solution."""
    import torch

    X = torch.from_numpy(np.asarray(X, dtype=np.float32))
    Y = torch.from_numpy(np.asarray(Y, dtype=np.float32))
    n = len(X)
    xm = X.double().mean(0)
    ym = Y.double().mean(0)
    G = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64)
    R = torch.zeros(X.shape[1], Y.shape[1], dtype=torch.float64)
    for s in range(0, n, 8192):  # float64 sums: the path must match the closed form closely
        xb = X[s : s + 8192].double() - xm
        G += xb.T @ xb
        R += xb.T @ (Y[s : s + 8192].double() - ym)
    G /= n
    R /= n
    from ..ops import single_threaded

    with single_threaded():  # eigh is ~15x slower with 2 threads on busy cores
        lam, Q = torch.linalg.eigh(G)
    QtR = Q.T @ R
    Xv = torch.from_numpy(np.asarray(X_val, dtype=np.float64)) - xm
    Yv = torch.from_numpy(np.asarray(Y_val, dtype=np.float64)) - ym
    rows = []
    lam = lam.clamp_min(0)
    for a in alphas:
        d = lam + a
        inv = torch.where(d > 1e-10 * float(lam.max()), 1.0 / d.clamp_min(1e-300), torch.zeros_like(d))
        W = Q @ (QtR * inv[:, None])
        val = float(((Xv @ W - Yv) ** 2).mean())
        # training MSE from the sufficient statistics: mean||Yc - Xc W||^2 / k
        tr = float((torch.sum(W * (G @ W)) - 2 * torch.sum(W * R) + _ycov_trace(Y, ym)) / Y.shape[1])
        rows.append({"alpha": float(a), "val_mse": val, "train_mse": tr})
    return rows


def _ycov_trace(Y, ym) -> float:
    tot = 0.0
    for s in range(0, len(Y), 8192):
        tot += float(((Y[s : s + 8192].double() - ym) ** 2).sum())
    return tot / len(Y)


def train_linear(cfg: LinearConfig, prep, out: Path) -> dict:
    from ..predictors.features import LFeatures
    from ..predictors.linear_gd import LinearColorizer, LinearGD
    from ..predictors.pca import (
        PCACeiling,
        ab_flat,
        ab_pca_cached,
        save_reconstruction_figure,
        save_variance_figure,
    )

    log = Log("linear")
    t_start = time.perf_counter()
    train = prep.split("train", cfg.size, limit=cfg.train_limit)
    val = prep.split("val", cfg.size, limit=cfg.val_limit)
    if len(train) < 2 or len(val) < 1:
        raise ChromalabError(f"linear: need train and val images (have {len(train)} train, {len(val)} val)")
    log(f"ab PCA (K={cfg.ab_components}) of {len(train):,} train images at {cfg.size}x{cfg.size} "
        "(cached next to the prepared data)")
    ab_pca = ab_pca_cached(prep, size=cfg.size, k=cfg.ab_components, limit=cfg.train_limit, solver=cfg.pca_solver)
    log(f"loading L and projecting ab ({ab_pca.n_components_} components)")
    L_tr = train.arrays()[0]
    Y_tr = np.concatenate([ab_pca.transform(ab_flat(ab)) for _L, ab, _r in train.batches(4096)])
    L_va, ab_va, _ = val.arrays()
    Y_va = ab_pca.transform(ab_flat(ab_va))
    log(f"L features: {cfg.features}" + (f" (PCA K={cfg.l_components})" if "pca" in cfg.features else ""))
    feats = LFeatures(cfg.features, n_components=cfg.l_components, grid=cfg.grid, bins=cfg.bins,
                      scale=cfg.feature_scale, pca_solver=cfg.pca_solver, random_state=cfg.seed).fit(L_tr)
    X_tr = feats.transform(L_tr)
    X_va = feats.transform(L_va)
    del L_tr
    log(f"{X_tr.shape[1]} features x {Y_tr.shape[1]} targets; ridge path over alphas {cfg.alphas} on val")
    # MSEs are reported per ab value (Lab units^2) inside the PCA subspace: coefficient MSE * K / D
    unit = ab_pca.n_components_ / ab_pca.n_features_
    path = [{**r, "val_mse": r["val_mse"] * unit, "train_mse": r["train_mse"] * unit}
            for r in ridge_path(X_tr, Y_tr, X_va, Y_va, cfg.alphas)]
    best = min(range(len(path)), key=lambda i: path[i]["val_mse"])
    alpha = path[best]["alpha"]
    for r in path:
        log(f"  alpha {r['alpha']:<8g} val MSE {r['val_mse']:.4f}  train MSE {r['train_mse']:.4f}"
            + ("  <- best" if r["alpha"] == alpha else ""))
    log(f"gradient descent at alpha={alpha:g} (batch {cfg.batch_size}, <= {cfg.max_epochs} epochs, "
        f"patience {cfg.patience} on val)")
    gd = LinearGD(alpha=alpha, lr=cfg.lr, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs,
                  momentum=cfg.momentum, patience=cfg.patience, random_state=cfg.seed, progress=True)
    gd.fit(X_tr, Y_tr, X_va, Y_va)
    cf_train = path[best]["train_mse"]
    cf_val = path[best]["val_mse"]
    gd_train = gd.train_mse_ * unit
    gd_val = gd.mse(X_va, Y_va) * unit
    log(f"GD: {gd.n_epochs_} epochs (best {gd.best_epoch_}) in {gd.fit_seconds_:.1f} s; train MSE {gd_train:.4f} "
        f"vs closed form {cf_train:.4f} ({100 * (gd_train / cf_train - 1):+.2f} %); val {gd_val:.4f} vs {cf_val:.4f}")
    train_seconds = time.perf_counter() - t_start
    pred = LinearColorizer(feats, gd, ab_pca, name=out.name)
    # figures
    n_fig = min(cfg.figure_images, len(val))
    if n_fig:
        Lf, abf = figure_rows(prep, n_fig, cfg.size)
        save_reconstruction_figure(ab_pca, Lf, abf, out / "pca_reconstructions.png")
    curves = {f"ab at {cfg.size}x{cfg.size}": ab_pca}
    if feats.pca_ is not None:
        curves[f"L at {cfg.size}x{cfg.size}"] = feats.pca_
    save_variance_figure(curves, out / "pca_variance.png")
    _loss_figure(gd, cf_train, cf_val, unit, out / "loss.png")
    extra = {
        "counts": {"train": len(train), "val": len(val)},
        "features": {"kind": cfg.features, "n": int(X_tr.shape[1])},
        "ab_components": ab_pca.n_components_,
        "ab_explained_variance": float(ab_pca.explained_variance_ratio_.sum()),
        "alpha": alpha,
        "alpha_search": path,
        "gd": {"epochs": gd.n_epochs_, "best_epoch": gd.best_epoch_, "stopped_early": gd.stopped_early_,
               "lr": gd.lr_, "lipschitz": gd.lipschitz_, "fit_seconds": round(gd.fit_seconds_, 2),
               "train_mse": gd_train, "val_mse": gd_val},
        "closed_form": {"train_mse": cf_train, "val_mse": cf_val, "gd_train_mse_rel_diff": gd_train / cf_train - 1.0},
        "mse_units": "MSE per ab value inside the ab-PCA subspace (Lab units^2): coefficient SSE / (N * D)",
    }
    ceiling = PCACeiling(ab_pca, size=cfg.size, name=f"{out.name} PCA ceiling")
    return finish(out, cfg, prep, pred, ceiling, t_start, train_seconds, extra, log)


def _loss_figure(gd, cf_train: float, cf_val: float, unit: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ep = np.arange(1, len(gd.loss_history_) + 1)
    ax.plot(ep, np.asarray(gd.loss_history_) * unit, "o-", ms=3, label="GD train (mini-batch mean)")
    if gd.val_history_:
        ax.plot(ep[: len(gd.val_history_)], np.asarray(gd.val_history_) * unit, "s-", ms=3, label="GD val")
    ax.axhline(cf_train, color="C0", ls="--", lw=1, label="closed form train")
    ax.axhline(cf_val, color="C1", ls="--", lw=1, label="closed form val")
    ax.axvline(gd.best_epoch_, color="gray", ls=":", lw=1, label=f"kept epoch {gd.best_epoch_}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE per ab value in the PCA subspace")
    ax.set_title(f"linear regression by GD (alpha={gd.alpha:g})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
