"""SVR fast path (one RBF kernel shared by all outputs, outputs in threads) vs
``sklearn.multioutput.MultiOutputRegressor(SVR(kernel='rbf'))``, same data, same C / epsilon /
gamma / tol, measured in the same run.

    python benchmarks/bench_svr.py [--data PATH] [--n 2000] [--outputs 300] [--features pca]
                                   [--C 0.3] [--epsilon 0.5] [--gamma 1.0] [--jobs -1]

Data: the study's SVR problem on the prepared Tiny ImageNet (``--data`` or $CHROMALAB_DATA; the
first ``--n`` train images at 28x28, PCA of L (300, global scale) as inputs, K ab-PCA
coefficients standardized per output as targets), or, if no prepared data is found, a synthetic
problem of the same shape. ``--gamma`` is a multiple of sklearn's ``'scale'``; both sides get
the same number. Predictions are compared on 500 val images: the claim is max |fast - sklearn|
<= 1e-3 x the target std (per output), and ``ratio`` = sklearn seconds / fast seconds >= 5.

Prints one JSON line: wall and process-CPU seconds of both fits, their ratios, the fast path with
one thread (kernel sharing alone), and the largest prediction difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def real_problem(data, n: int, k: int, features: str, n_val: int = 500):
    from chromalab.data.cache import find_prepared
    from chromalab.predictors.features import LFeatures, resize_batch
    from chromalab.predictors.pca import PCA, ab_flat
    from chromalab.predictors.svr import TargetScaler

    prep = find_prepared(data)
    if prep is None:
        return None
    L = resize_batch(prep.split("train", limit=n).arrays()[0], 28)
    ab = prep.split("train", 28, limit=n).arrays()[1]
    Lv = resize_batch(prep.split("val", limit=n_val).arrays()[0], 28)
    pca = PCA(k).fit(ab_flat(ab))
    Y = pca.transform(ab_flat(ab))
    f = LFeatures(features, n_components=300, grid=7, bins=8, scale="global").fit(L)
    Z = TargetScaler("output").fit(Y).transform(Y)
    return f.transform(L).astype(np.float64), Z, f.transform(Lv).astype(np.float64), prep.source["path"]


def synthetic_problem(n: int, k: int, d: int = 300, n_val: int = 500):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n + n_val, d)) * (0.97 ** np.arange(d))
    W = rng.standard_normal((d, k)) / np.sqrt(d)
    Y = np.tanh(X @ W) + 0.5 * rng.standard_normal((n + n_val, k))
    Y = (Y - Y[:n].mean(0)) / Y[:n].std(0)
    return X[:n], Y[:n], X[n:], "synthetic"


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--outputs", type=int, default=300)
    ap.add_argument("--features", default="pca", help="L features of the real problem (the study: pca)")
    ap.add_argument("--C", type=float, default=0.3)
    ap.add_argument("--epsilon", type=float, default=0.5)
    ap.add_argument("--gamma", type=float, default=1.0, help="multiple of sklearn's 'scale'")
    ap.add_argument("--jobs", type=int, default=-1)
    a = ap.parse_args()

    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.svm import SVR

    from chromalab.predictors.svr import MultiOutputSVR

    prob = None
    try:
        prob = real_problem(a.data, a.n, a.outputs, a.features)
    except Exception:  # no data source configured: fall back to a synthetic problem
        prob = None
    X, Y, Xv, source = prob or synthetic_problem(a.n, a.outputs)
    gamma = a.gamma / (X.shape[1] * X.var())
    kw = dict(C=a.C, epsilon=a.epsilon, tol=1e-3)

    fast, fast_wall, fast_cpu = timed(lambda: MultiOutputSVR(gamma=gamma, n_jobs=a.jobs, **kw).fit(X, Y))
    one, one_wall, one_cpu = timed(lambda: MultiOutputSVR(gamma=gamma, n_jobs=1, **kw).fit(X, Y))
    ref, ref_wall, ref_cpu = timed(lambda: MultiOutputRegressor(SVR(kernel="rbf", gamma=gamma, **kw)).fit(X, Y))

    p_fast, pred_fast_wall, _ = timed(lambda: fast.predict(Xv))
    p_ref, pred_ref_wall, _ = timed(lambda: ref.predict(Xv))
    diff = np.abs(p_fast - p_ref)
    std = Y.std(axis=0)
    rel = float((diff.max(axis=0) / std).max())
    print(json.dumps({
        "benchmark": "svr_fit_shared_kernel_vs_multioutput_svr",
        "data": source,
        "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "n_outputs": int(Y.shape[1]),
        "C": a.C, "epsilon": a.epsilon, "gamma": gamma, "gamma_factor": a.gamma, "tol": 1e-3,
        "baseline": "MultiOutputRegressor(SVR(kernel='rbf'))",
        "baseline_seconds": round(ref_wall, 2), "baseline_cpu_seconds": round(ref_cpu, 2),
        "fast_seconds": round(fast_wall, 2), "fast_cpu_seconds": round(fast_cpu, 2),
        "fast_threads": a.jobs if a.jobs > 0 else os.cpu_count(),
        "fast_1thread_seconds": round(one_wall, 2),
        "ratio": round(ref_wall / fast_wall, 2),
        "cpu_time_ratio": round(ref_cpu / fast_cpu, 2),
        "ratio_1thread": round(ref_wall / one_wall, 2),
        "predict_seconds_baseline": round(pred_ref_wall, 3), "predict_seconds_fast": round(pred_fast_wall, 3),
        "max_abs_pred_diff": float(diff.max()),
        "max_pred_diff_over_target_std": rel,
        "equal_within_1e-3_std": bool(rel <= 1e-3),
        "support_vectors_equal": bool(np.array_equal(fast.n_support_, [len(e.support_) for e in ref.estimators_])),
        "target": "ratio >= 5 and max_pred_diff_over_target_std <= 1e-3",
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
