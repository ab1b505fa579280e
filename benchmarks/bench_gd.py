"""Linear regression by mini-batch gradient descent vs the closed form (same features, same
alpha): time and training MSE, measured in the same run.

    python benchmarks/bench_gd.py [--data PATH] [--n 20000] [--features binned] [--alpha 1.0]
                                  [--batch 4096] [--epochs 30]

Data: the linear model's problem on the prepared Tiny ImageNet (``--data`` or $CHROMALAB_DATA;
the first ``--n`` train images at 64x64, standardized L features, the K=600 ab-PCA coefficients
of the ``pca-ceiling`` cache as targets), or a synthetic problem of the same shape when no
prepared data is found. GD runs its full epoch budget (no early stopping). The closed form is
``numpy.linalg.lstsq`` for alpha = 0, else the ridge normal equations in float64.

Prints one JSON line; the claim is ``mse_rel_diff`` = GD train MSE / closed-form train MSE - 1
within +-1 %. ``ratio`` = GD seconds / closed-form seconds (GD is expected to be slower here:
the point of GD is the study's setup and memory, not speed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def real_problem(data, n: int, features: str):
    from chromalab.data.cache import find_prepared
    from chromalab.predictors.features import LFeatures
    from chromalab.predictors.pca import ab_flat, ab_pca_cached

    prep = find_prepared(data)
    if prep is None:
        return None
    train = prep.split("train", limit=n)
    abp = ab_pca_cached(prep, 64, 600, progress=False)  # the pca-ceiling's PCA (all train ab)
    L = train.arrays()[0]
    Y = np.concatenate([abp.transform(ab_flat(ab)) for _L, ab, _r in train.batches(4096)])
    X = LFeatures(features, n_components=600).fit_transform(L)
    return X, Y, prep.source["path"]


def synthetic_problem(n: int, d: int = 2048, k: int = 600):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    X = (rng.standard_normal((n, d)) @ A).astype(np.float32)
    Y = (X @ rng.standard_normal((d, k)) * 0.05 + rng.standard_normal((n, k)) * 10).astype(np.float32)
    return X, Y, "synthetic"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--features", default="binned")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=30)
    a = ap.parse_args()

    from chromalab.predictors.linear_gd import LinearGD, closed_form

    try:
        prob = real_problem(a.data, a.n, a.features)
    except Exception:  # no data source configured
        prob = None
    X, Y, source = prob or synthetic_problem(a.n)

    t = time.perf_counter()
    c = time.process_time()
    W, b = closed_form(X, Y, a.alpha)
    cf_wall, cf_cpu = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    c = time.process_time()
    gd = LinearGD(alpha=a.alpha, batch_size=a.batch, max_epochs=a.epochs, patience=0).fit(X, Y)
    gd_wall, gd_cpu = time.perf_counter() - t, time.process_time() - c

    def mse(W, b):
        tot = 0.0
        for s in range(0, len(X), 8192):
            r = X[s : s + 8192].astype(np.float64) @ W + b - Y[s : s + 8192]
            tot += float((r * r).sum())
        return tot / Y.size

    cf_mse = mse(W, b)
    gd_mse = mse(gd.coef_.astype(np.float64), gd.intercept_.astype(np.float64))
    print(json.dumps({
        "benchmark": "linear_gd_vs_closed_form",
        "data": source, "features": a.features if source != "synthetic" else "synthetic",
        "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "n_outputs": int(Y.shape[1]),
        "alpha": a.alpha, "closed_form": "lstsq" if a.alpha == 0 else "ridge normal equations (float64)",
        "gd": f"mini-batch {a.batch}, Nesterov 0.9, lr 1/L, cosine decay, {a.epochs} epochs",
        "gd_seconds": round(gd_wall, 2), "gd_cpu_seconds": round(gd_cpu, 2),
        "closed_form_seconds": round(cf_wall, 2), "closed_form_cpu_seconds": round(cf_cpu, 2),
        "ratio": round(gd_wall / cf_wall, 2),
        "gd_train_mse": gd_mse, "closed_form_train_mse": cf_mse,
        "mse_rel_diff": gd_mse / cf_mse - 1.0,
        "within_1pct": bool(abs(gd_mse / cf_mse - 1.0) <= 0.01),
        "target": "|mse_rel_diff| <= 0.01",
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
