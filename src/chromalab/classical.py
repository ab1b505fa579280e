"""Train the classical models (``chromalab train linear|svr``) into run folders.

Configs: one dataclass per model (:class:`LinearConfig`, :class:`SVRConfig`), loaded from
``chromalab/configs/<model>_<preset>.yaml`` (presets ``seed`` and ``quick``; a path to a
YAML file of the same shape works too), then ``--set key=value`` overrides, and saved
resolved as the run's ``config.yaml``.

A run folder::

    run.json                 kind, preset, data, counts, train_seconds, selection, val/test summary
    config.yaml              the resolved config
    model.npz, model.json    learned arrays (no pickle) and their description
    val.json, test.json      metrics (``evaluate_split``) on the val and test splits
    ceiling_test.json        the model's own PCA ceiling on test (``eval_ceiling``)
    pca_reconstructions.png  originals next to reconstructions from K = 50, 150, 300, 600
    pca_variance.png         cumulative explained variance (ab, and L when PCA features)
    loss.png                 (linear) GD training loss and validation MSE per epoch
    selection.png            (svr) validation MSE over the C / epsilon / gamma grid

Linear: ab-PCA targets (K components of all train ab, shared with the ``pca-ceiling``
reference when the settings match), standardized L features, ridge strength ``alpha`` picked
on val from ``alphas`` with the exact ridge path (one eigen-decomposition), then the model is
fitted by mini-batch gradient descent at that alpha with early stopping on val; the closed
form at the same alpha is computed too and its training MSE recorded next to GD's.

SVR: 28x28 (L resized from 64x64 with the same bicubic the predictor uses, ab from the 28x28
cache), ab-PCA (K=300) targets standardized per component, PCA-of-L inputs, one RBF kernel
shared by all outputs; C, epsilon and gamma (multiples of sklearn's ``'scale'``) picked on
val by the MSE of the predicted ab-PCA coefficients (= ab MSE at 28x28 up to a constant).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ChromalabError

CONFIG_DIR = Path(__file__).parent / "configs"
FAMILIES = ("linear", "svr")


@dataclass
class LinearConfig:
    """``chromalab train linear``: the study's 64x64, K=600 linear regression by GD."""

    model: str = "linear"
    preset: str = "seed"
    size: int = 64
    train_limit: int | None = None  # None: every train image
    val_limit: int | None = 1000
    test_limit: int | None = None  # None: the whole test split
    ab_components: int = 600
    features: str = "binned"  # pca | pixels | binned, or joined: pca+binned
    l_components: int = 600
    grid: int = 16  # binned features: cells per side (size must be a multiple)
    bins: int = 8  # binned features: L levels
    feature_scale: str = "feature"  # feature (z-score each) | global (one scale per block)
    pca_solver: str = "auto"
    alphas: list = field(default_factory=lambda: [0.1, 1.0, 3.0, 10.0, 30.0, 100.0])
    batch_size: int | None = 4096  # None: full batch
    max_epochs: int = 20
    momentum: float = 0.9
    lr: float | None = None  # None: 1 / (largest Hessian eigenvalue)
    patience: int = 8
    seed: int = 0
    eval_ceiling: bool = True
    figure_images: int = 6


@dataclass
class SVRConfig:
    """``chromalab train svr``: the study's 28x28 RBF SVR on K=300 ab-PCA targets."""

    model: str = "svr"
    preset: str = "seed"
    model_size: int = 28
    train_limit: int | None = 2000
    val_limit: int | None = 1000
    test_limit: int | None = None
    ab_components: int = 300
    features: str = "binned"
    l_components: int = 300
    grid: int = 7
    bins: int = 8
    feature_scale: str = "global"
    target_scale: str = "output"  # output (z-score per component) | global | none
    C: list = field(default_factory=lambda: [0.1, 0.3, 1.0])
    epsilon: list = field(default_factory=lambda: [0.5, 1.0])
    gamma: list = field(default_factory=lambda: [0.5, 1.0, 2.0])  # multiples of 1 / (D * var(X))
    tol: float = 1e-3
    n_jobs: int = -1
    seed: int = 0
    eval_ceiling: bool = True
    figure_images: int = 6


CONFIGS = {"linear": LinearConfig, "svr": SVRConfig}
_LIST_FIELDS = {"alphas", "C", "epsilon", "gamma"}


def preset_path(model: str, preset: str) -> Path:
    p = Path(preset).expanduser()
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ChromalabError(f"{p}: config file not found")
        return p
    q = CONFIG_DIR / f"{model}_{preset}.yaml"
    if not q.is_file():
        names = sorted(f.stem[len(model) + 1 :] for f in CONFIG_DIR.glob(f"{model}_*.yaml"))
        raise ChromalabError(f"unknown {model} preset {preset!r} (choose from {', '.join(names)}, or a .yaml path)")
    return q


def resolve_config(model: str, preset: str = "seed", overrides: dict | None = None):
    """Dataclass defaults < the preset's YAML < ``--set`` overrides; types checked."""
    import yaml

    if model not in CONFIGS:
        raise ChromalabError(f"unknown classical model {model!r} (choose {', '.join(FAMILIES)})")
    cls = CONFIGS[model]
    path = preset_path(model, preset)
    try:
        y = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ChromalabError(f"{path}: unreadable YAML ({type(e).__name__}: {e})".replace("\n", " ")) from None
    if not isinstance(y, dict):
        raise ChromalabError(f"{path}: expected a mapping of config keys at the top level")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    d = asdict(cls())
    d["preset"] = preset if Path(preset).suffix not in (".yaml", ".yml") else str(path)
    for where, upd in ((str(path), y), ("--set", overrides or {})):
        for k, v in upd.items():
            if k not in fields or k == "model":
                known = ", ".join(f for f in fields if f != "model")
                raise ChromalabError(f"{where}: unknown {model} config key {k!r} (known: {known})")
            d[k] = v
    return _check(cls(**d), model, str(path))


def _check(cfg, model: str, where: str):
    def bad(k, what):
        raise ChromalabError(f"{where}: {k} must be {what}, got {getattr(cfg, k)!r}")

    for k in _LIST_FIELDS & {f.name for f in dataclasses.fields(cfg)}:
        v = getattr(cfg, k)
        if not isinstance(v, list | tuple):
            v = [v]
        try:
            v = [float(x) for x in v]
        except (TypeError, ValueError):
            bad(k, "a number or a list of numbers")
        if not v or any(x < 0 for x in v):
            bad(k, "a non-empty list of numbers >= 0")
        setattr(cfg, k, v)
    for k in ("train_limit", "val_limit", "test_limit"):
        v = getattr(cfg, k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            bad(k, "a positive integer or null")
    for k in ("ab_components", "l_components", "grid", "bins", "figure_images"):
        v = getattr(cfg, k)
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "figure_images" else 1):
            bad(k, "a positive integer")
    if cfg.bins < 2:
        bad("bins", "at least 2")
    from .predictors.features import LFeatures

    LFeatures(cfg.features).blocks  # noqa: B018  (raises a clear error for an unknown kind)
    if cfg.feature_scale not in ("feature", "global"):
        bad("feature_scale", "'feature' or 'global'")
    if model == "linear":
        if cfg.size % cfg.grid and "binned" in cfg.features:
            bad("grid", f"a divisor of size {cfg.size}")
        if cfg.batch_size is not None and (not isinstance(cfg.batch_size, int) or cfg.batch_size < 1):
            bad("batch_size", "a positive integer or null (full batch)")
        if not isinstance(cfg.max_epochs, int) or cfg.max_epochs < 1:
            bad("max_epochs", "a positive integer")
    else:
        if cfg.model_size % cfg.grid and "binned" in cfg.features:
            bad("grid", f"a divisor of model_size {cfg.model_size}")
        if cfg.target_scale not in ("output", "global", "none"):
            bad("target_scale", "'output', 'global' or 'none'")
        if any(x <= 0 for x in cfg.C + cfg.gamma):
            bad("C", "positive (and gamma too)")
    return cfg


def _write_yaml(path: Path, cfg) -> None:
    import yaml

    head = f"# resolved config of this run (chromalab train {cfg.model} --preset {cfg.preset})\n"
    path.write_text(head + yaml.safe_dump(asdict(cfg), sort_keys=False))


# ---- shared steps -----------------------------------------------------------------------------
class _Log:
    def __init__(self, model: str):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.model = model
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        self.console.print(f"[{time.perf_counter() - self.t0:6.1f}s] {self.model}: {msg}", markup=False,
                           highlight=False)


def _evaluate(pred, prep, cfg, out: Path, ceiling=None, log=print) -> dict:
    """val.json, test.json (and ceiling_test.json); returns the summaries for run.json."""
    from .evaluate import evaluate_split

    res = {}
    for split, limit in (("val", cfg.val_limit), ("test", cfg.test_limit)):
        sp = prep.split(split, limit=limit)
        if len(sp) == 0:
            log(f"{split} split is empty; skipped")
            continue
        m = evaluate_split(pred, sp)
        m = {"name": out.name, "model": pred.describe(), "source": prep.source["path"], **m}
        (out / f"{split}.json").write_text(json.dumps(m, indent=2))
        res[split] = m
        if ceiling is not None and split == "test":
            c = evaluate_split(ceiling, sp)
            c = {"name": f"{out.name} PCA ceiling", "model": ceiling.describe(), "source": prep.source["path"], **c}
            (out / "ceiling_test.json").write_text(json.dumps(c, indent=2))
            res["ceiling_test"] = c
    return res


def _summary(m: dict) -> dict:
    keys = ("psnr", "ssim", "mse", "l1", "mse_rgb", "l1_rgb", "r2", "cf", "delta_cf", "count", "excluded", "size")
    return {k: m[k] for k in keys if k in m}


def _print_table(out: Path, res: dict) -> None:
    from rich.console import Console

    from .evaluate import format_table

    rows = []
    for key in ("val", "test", "ceiling_test"):
        if key in res:
            r = dict(res[key])
            r["name"] = {"val": f"{out.name} (val)", "test": f"{out.name} (test)",
                         "ceiling_test": "its PCA ceiling (test)"}[key]
            rows.append(r)
    if rows:
        c = Console()
        if not c.is_terminal:
            c = Console(width=140)  # a log file: do not squeeze the table to 80 columns
        c.print(format_table(rows, title=f"run {out}"))


def _figure_rows(prep, n: int, size: int):
    """A few val images for the PCA figure: L at 64, ab at ``size``."""
    sp64 = prep.split("val", limit=n)
    L, _, _ = sp64.arrays()
    ab = prep.split("val", size, limit=n).arrays()[1]
    return L, ab


def _finish(out: Path, cfg, prep, pred, ceiling, t_start: float, train_seconds: float, extra: dict, log) -> dict:
    pred.save(out)
    res = _evaluate(pred, prep, cfg, out, ceiling if cfg.eval_ceiling else None, log)
    run = {
        "kind": cfg.model,
        "name": out.name,
        "preset": cfg.preset,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": prep.source["path"],
        "train_seconds": round(train_seconds, 2),
        **extra,
        "val": _summary(res["val"]) if "val" in res else None,
        "test": _summary(res["test"]) if "test" in res else None,
        "ceiling_test": _summary(res["ceiling_test"]) if "ceiling_test" in res else None,
        "total_seconds": round(time.perf_counter() - t_start, 2),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2))
    _print_table(out, res)
    log(f"done in {run['total_seconds']:.0f} s (training {train_seconds:.0f} s): {out}")
    return run


def train_classical(model: str, preset: str = "seed", data: str | None = None, out: str | Path = "runs/linear",
                    overrides: dict | None = None) -> dict:
    """Train ``linear`` or ``svr`` into the run folder ``out``; returns the run description."""
    from .data.cache import load_prepared

    cfg = resolve_config(model, preset, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").unlink(missing_ok=True)  # a run folder counts as finished only when rewritten
    _write_yaml(out / "config.yaml", cfg)
    prep = load_prepared(data)
    import warnings

    with warnings.catch_warnings():  # out-of-gamut ab (figures, metrics) is clipped; that is expected
        warnings.filterwarnings("ignore", message="Conversion from CIE-LAB", category=UserWarning)
        if model == "linear":
            return _train_linear(cfg, prep, out)
        return _train_svr(cfg, prep, out)


# ---- linear ------------------------------------------------------------------------------------
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
    from .predictors.features import single_threaded

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


def _train_linear(cfg: LinearConfig, prep, out: Path) -> dict:
    from .predictors.features import LFeatures
    from .predictors.linear_gd import LinearColorizer, LinearGD
    from .predictors.pca import (
        PCACeiling,
        ab_flat,
        ab_pca_cached,
        save_reconstruction_figure,
        save_variance_figure,
    )

    log = _Log("linear")
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
        Lf, abf = _figure_rows(prep, n_fig, cfg.size)
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
    return _finish(out, cfg, prep, pred, ceiling, t_start, train_seconds, extra, log)


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


# ---- SVR ----------------------------------------------------------------------------------------
def _train_svr(cfg: SVRConfig, prep, out: Path) -> dict:
    from .predictors.features import LFeatures, resize_batch
    from .predictors.pca import PCA, PCACeiling, ab_flat, save_reconstruction_figure, save_variance_figure
    from .predictors.svr import MultiOutputSVR, SVRColorizer, TargetScaler

    log = _Log("svr")
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
        Lf, abf = _figure_rows(prep, n_fig, s)
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
    return _finish(out, cfg, prep, pred, ceiling, t_start, train_seconds, extra, log)


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
