"""The SVR model at 28x28: ab-PCA targets standardized per component, L features, one RBF kernel shared
by every output; C, epsilon and gamma picked on val."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import ChromalabError
from .config import SVRConfig
from .steps import Log, figure_rows, finish


def train_svr(cfg: SVRConfig, prep, out: Path) -> dict:
    from ..ops import resize_batch
    from ..predictors.features import LFeatures
    from ..predictors.pca import PCA, PCACeiling, ab_flat, save_reconstruction_figure, save_variance_figure
    from ..predictors.svr import MultiOutputSVR, SVRColorizer, TargetScaler

    log = Log("svr")
    t_start = time.perf_counter()
    s = cfg.model_size
    train64 = prep.split("train", limit=cfg.train_limit)
    val64 = prep.split("val", limit=cfg.val_limit)
    if len(train64) < 2 or len(val64) < 1:
        raise ChromalabError(f"svr: need train and val images (have {len(train64)} train, {len(val64)} val)")
    log(f"{len(train64):,} train images at {s}x{s}: ab PCA (K={cfg.ab_components}), L features {cfg.features}")
    L_tr = resize_batch(train64.arrays()[0], s)  # same resize as the predictor
    ab_tr = prep.split("train", s, limit=cfg.train_limit).arrays()[1]
    L_va = resize_batch(val64.arrays()[0], s)
    ab_va = prep.split("val", s, limit=cfg.val_limit).arrays()[1]
    ab_pca = PCA(cfg.ab_components, random_state=cfg.seed).fit(ab_flat(ab_tr))
    Y_tr = ab_pca.transform(ab_flat(ab_tr)).astype(np.float64)
    Y_va = ab_pca.transform(ab_flat(ab_va)).astype(np.float64)
    feats = LFeatures(cfg.features, n_components=cfg.l_components, grid=cfg.grid, bins=cfg.bins,
                      scale=cfg.feature_scale, random_state=cfg.seed).fit(L_tr)
    X_tr = feats.transform(L_tr).astype(np.float64)
    X_va = feats.transform(L_va).astype(np.float64)
    scaler = TargetScaler(cfg.target_scale).fit(Y_tr)
    Z_tr = scaler.transform(Y_tr)
    gamma_scale = 1.0 / (X_tr.shape[1] * float(X_tr.var()))
    grid = [(c, e, g) for c in cfg.C for e in cfg.epsilon for g in cfg.gamma]
    unit = ab_pca.n_components_ / ab_pca.n_features_  # coefficient MSE -> per ab value (Lab units^2)
    mean_val = float(((Y_va - Y_tr.mean(axis=0)) ** 2).mean()) * unit
    log(f"{X_tr.shape[1]} inputs -> {Y_tr.shape[1]} outputs; grid of {len(grid)} (C, epsilon, gamma) on val "
        f"(val MSE of the train-mean prediction: {mean_val:.4f})")
    search, best = [], None
    for c, e, g in grid:
        m = MultiOutputSVR(C=c, epsilon=e, gamma=g * gamma_scale, tol=cfg.tol, n_jobs=cfg.n_jobs, progress=True)
        m.fit(X_tr, Z_tr)
        val_mse = float(((scaler.inverse_transform(m.predict(X_va)) - Y_va) ** 2).mean()) * unit
        row = {"C": c, "epsilon": e, "gamma_factor": g, "gamma": m.gamma_, "val_mse": val_mse,
               "fit_seconds": round(m.fit_seconds_, 2), "mean_support": float(m.n_support_.mean())}
        search.append(row)
        log(f"  C={c:<6g} eps={e:<5g} gamma={g:g}x  val MSE {val_mse:.4f}  ({m.fit_seconds_:.1f} s, "
            f"{row['mean_support']:.0f} SV/output)")
        if best is None or val_mse < best[0]:
            best = (val_mse, m, row)
    assert best is not None
    svr = best[1]
    log(f"best: C={best[2]['C']:g} epsilon={best[2]['epsilon']:g} gamma={best[2]['gamma_factor']:g}x scale "
        f"(val MSE {best[0]:.4f})")
    train_seconds = time.perf_counter() - t_start
    pred = SVRColorizer(feats, svr, scaler, ab_pca, name=out.name, input_size=64)
    n_fig = min(cfg.figure_images, len(val64))
    if n_fig:
        Lf, abf = figure_rows(prep, n_fig, s)
        save_reconstruction_figure(ab_pca, Lf, abf, out / "pca_reconstructions.png")
    curves = {f"ab at {s}x{s}": ab_pca}
    if feats.pca_ is not None:
        curves[f"L at {s}x{s}"] = feats.pca_
    save_variance_figure(curves, out / "pca_variance.png")
    _selection_figure(search, mean_val, out / "selection.png")
    extra = {
        "counts": {"train": len(train64), "val": len(val64)},
        "model_size": s,
        "features": {"kind": cfg.features, "n": int(X_tr.shape[1])},
        "ab_components": ab_pca.n_components_,
        "ab_explained_variance": float(ab_pca.explained_variance_ratio_.sum()),
        "selected": best[2],
        "search": search,
        "val_mse_train_mean": mean_val,
        "support_vectors": int(len(svr.support_)),
        "mse_units": "MSE per ab value inside the ab-PCA subspace at 28x28 (Lab units^2)",
    }
    ceiling = PCACeiling(ab_pca, size=s, name=f"{out.name} PCA ceiling")
    return finish(out, cfg, prep, pred, ceiling, t_start, train_seconds, extra, log)


def _selection_figure(search: list[dict], mean_val: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    labels = [f"C={r['C']:g}\neps={r['epsilon']:g}\ng={r['gamma_factor']:g}" for r in search]
    vals = [r["val_mse"] for r in search]
    best = int(np.argmin(vals))
    ax.bar(range(len(vals)), vals, color=["C2" if i == best else "C0" for i in range(len(vals))])
    ax.axhline(mean_val, color="k", ls="--", lw=1, label="predict the train mean")
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(labels, fontsize=5)
    ax.set_ylabel("val MSE per ab value (PCA subspace)")
    lo = min(min(vals), mean_val)
    hi = max(max(vals), mean_val)
    ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
    ax.legend(fontsize=7)
    ax.set_title("SVR hyper-parameters on val", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
