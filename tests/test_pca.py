"""PCA against numpy.linalg.svd, the PCA ceiling, caching and figures."""

from __future__ import annotations

import numpy as np
import pytest

from chromalab.errors import ModelError
from chromalab.predictors.pca import PCA, PCACeiling, ab_pca_cached, save_reconstruction_figure


def _data(n=400, d=60, seed=0):
    """Rows with a decaying spectrum (like images) and a non-zero mean."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    scales = 10.0 * 0.85 ** np.arange(d)
    return (rng.standard_normal((n, d)) * scales) @ basis.T + rng.uniform(-5, 5, d)


def _svd_reference(X, k):
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    return mean, vt[:k], s[:k] ** 2 / (len(X) - 1), (s**2).sum() / (len(X) - 1)


@pytest.mark.parametrize("solver", ["full", "covariance", "randomized"])
def test_pca_matches_numpy_svd(solver):
    X = _data()
    k = 12
    mean, comps, ev, total = _svd_reference(X, k)
    p = PCA(k, solver=solver, n_iter=8, oversample=20, batch_rows=64).fit(X)
    assert p.solver_ == solver
    np.testing.assert_allclose(p.mean_, mean, atol=1e-4)
    np.testing.assert_allclose(p.explained_variance_, ev, rtol=1e-4)
    np.testing.assert_allclose(p.explained_variance_ratio_, ev / total, rtol=1e-4)
    # components equal up to sign
    dots = np.abs(np.sum(p.components_ * comps, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-4)
    # transform / inverse_transform against the SVD projection
    Z = p.transform(X)
    signs = np.sign(np.sum(p.components_ * comps, axis=1))
    np.testing.assert_allclose(Z, ((X - mean) @ comps.T) * signs, atol=2e-3)
    rec = p.inverse_transform(Z)
    ref = (X - mean) @ comps.T @ comps + mean
    np.testing.assert_allclose(rec, ref, atol=2e-3)


def test_pca_full_rank_round_trip_and_prefix():
    X = _data(n=50, d=20)
    p = PCA(100, solver="full").fit(X)
    assert p.n_components_ == 20  # capped at min(N, D)
    np.testing.assert_allclose(p.inverse_transform(p.transform(X)), X, atol=1e-4)
    np.testing.assert_allclose(p.explained_variance_ratio_.sum(), 1.0, atol=1e-9)
    # inverse from the first k equals a k-component PCA
    p5 = PCA(5, solver="full").fit(X)
    Z = p.transform(X)
    np.testing.assert_allclose(p.inverse_transform(Z, k=5), p5.inverse_transform(p5.transform(X)), atol=1e-4)


def test_pca_before_fit_and_bad_params_raise():
    with pytest.raises(ModelError, match="not fitted"):
        PCA(3).transform(np.zeros((2, 4)))
    with pytest.raises(ModelError, match="not fitted"):
        PCA(3).inverse_transform(np.zeros((2, 3)))
    with pytest.raises(ModelError, match="unknown solver"):
        PCA(3, solver="magic").fit(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        PCA(2).fit(np.random.default_rng(0).standard_normal((10, 4))).transform(np.zeros((3, 5)))


def test_pca_save_load_is_exact(tmp_path):
    X = _data(n=100, d=30)
    p = PCA(7, solver="covariance").fit(X)
    path = p.save(tmp_path / "p.npz")
    q = PCA.load(path)
    np.testing.assert_array_equal(q.components_, p.components_)
    np.testing.assert_array_equal(q.transform(X), p.transform(X))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="bad.npz"):
        PCA.load(tmp_path / "bad.npz")


def test_ceiling_is_projection_and_cached(tiny_zip, tmp_path):
    from chromalab.data.cache import load_prepared

    prep = load_prepared(tiny_zip, progress=False)
    pca = ab_pca_cached(prep, size=64, k=600, progress=False)
    n_train = len(prep.split("train"))
    assert pca.n_components_ == n_train  # 64 images < 600 components
    assert list(prep.dir.glob("pca_ab_64_k600_*.npz"))
    again = ab_pca_cached(prep, size=64, k=600, progress=False)
    np.testing.assert_array_equal(again.components_, pca.components_)

    ceil = PCACeiling(pca, size=64)
    L, ab, _ = prep.split("val", limit=8).arrays()
    rec = ceil.predict_ab_oracle(L, ab)
    flat = ab.reshape(8, -1)
    expect = (flat - pca.mean_) @ pca.components_.T @ pca.components_ + pca.mean_
    np.testing.assert_allclose(rec.reshape(8, -1), expect, atol=1e-3)
    # a train image is reproduced (its ab is in the span), an unseen one is not
    Lt, abt, _ = prep.split("train", limit=2).arrays()
    np.testing.assert_allclose(ceil.predict_ab_oracle(Lt, abt), abt, atol=1e-2)
    with pytest.raises(ModelError, match="evaluation-only"):
        ceil.predict_ab(L)
    out = save_reconstruction_figure(pca, L[:3], ab[:3], tmp_path / "rec.png", ks=(5, 20, 600))
    assert out.stat().st_size > 1000


def test_pca_ceiling_evaluates_through_registry(tiny_zip):
    from chromalab.data.cache import load_prepared
    from chromalab.evaluate import evaluate_split
    from chromalab.registry import load_predictor

    pred = load_predictor("pca-ceiling", data=str(tiny_zip), progress=False)
    prep = load_prepared(tiny_zip, progress=False)
    res = evaluate_split(pred, prep.split("val", limit=64), progress=False)
    gray = evaluate_split(load_predictor("gray"), prep.split("val", limit=64), progress=False)
    assert res["mse"] < gray["mse"]
    assert res["r2"] > 0.5  # the synthetic images are very regular
