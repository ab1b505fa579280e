"""Linear regression by gradient descent against numpy.linalg.lstsq and the ridge solution."""

from __future__ import annotations

import numpy as np
import pytest

from chromalab.classical import ridge_path
from chromalab.errors import ModelError
from chromalab.predictors.linear_gd import LinearGD, closed_form


def _problem(n=2000, d=30, k=5, seed=0, noise=2.0):
    """Correlated, off-centre inputs (condition number ~1e3) and noisy linear targets."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    X = rng.standard_normal((n, d)) @ A + rng.uniform(-3, 3, d)
    W = rng.standard_normal((d, k))
    Y = X @ W + 1.5 + noise * rng.standard_normal((n, k))
    return X.astype(np.float32), Y.astype(np.float32)


def _mse(X, Y, W, b):
    return float(((X.astype(np.float64) @ W + b - Y) ** 2).mean())


@pytest.mark.parametrize(("batch_size", "epochs"), [(None, 300), (128, 60)])
def test_gd_matches_lstsq(batch_size, epochs):
    X, Y = _problem()
    sol = np.linalg.lstsq(np.hstack([X, np.ones((len(X), 1))]).astype(np.float64), Y.astype(np.float64), rcond=None)[0]
    ref = _mse(X, Y, sol[:-1], sol[-1])
    gd = LinearGD(alpha=0.0, batch_size=batch_size, max_epochs=epochs, patience=0).fit(X, Y)
    assert abs(gd.train_mse_ / ref - 1) < 0.01
    assert abs(_mse(X, Y, gd.coef_, gd.intercept_) / ref - 1) < 0.01
    # the weights themselves are close too (the problem is well posed)
    assert np.linalg.norm(gd.coef_ - sol[:-1]) / np.linalg.norm(sol[:-1]) < 0.05
    np.testing.assert_allclose(gd.predict(X), X @ gd.coef_ + gd.intercept_, rtol=1e-5, atol=1e-4)


def test_gd_matches_ridge_same_alpha():
    X, Y = _problem(seed=1)
    alpha = 0.5
    W, b = closed_form(X, Y, alpha)
    # closed_form is sklearn's Ridge with alpha_sklearn = N * alpha (independent check)
    from sklearn.linear_model import Ridge

    sk = Ridge(alpha=alpha * len(X)).fit(X.astype(np.float64), Y.astype(np.float64))
    np.testing.assert_allclose(W, sk.coef_.T, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b, sk.intercept_, rtol=1e-6, atol=1e-8)
    gd = LinearGD(alpha=alpha, batch_size=256, max_epochs=40, patience=0).fit(X, Y)

    def objective(W, b):
        return 0.5 * _mse(X, Y, W, b) * Y.shape[1] + 0.5 * alpha * float((W**2).sum())

    assert abs(gd.train_mse_ / _mse(X, Y, W, b) - 1) < 0.01
    assert objective(gd.coef_.astype(np.float64), gd.intercept_) <= objective(W, b) * 1.001
    assert abs(gd.lipschitz_ - (np.linalg.eigvalsh(np.cov(X.T, bias=True)).max() + alpha)) < 0.02 * gd.lipschitz_


def test_ridge_path_equals_closed_form():
    X, Y = _problem(n=500, d=12, k=3, seed=2)
    Xv, Yv = _problem(n=200, d=12, k=3, seed=3)
    rows = ridge_path(X, Y, Xv, Yv, [0.0, 0.3, 3.0])
    for r in rows:
        W, b = closed_form(X, Y, r["alpha"])
        assert r["val_mse"] == pytest.approx(_mse(Xv, Yv, W, b), rel=1e-5)
        assert r["train_mse"] == pytest.approx(_mse(X, Y, W, b), rel=1e-5)


def test_early_stopping_keeps_best_epoch():
    X, Y = _problem(n=400, d=40, k=2, seed=4, noise=8.0)
    Xv, Yv = _problem(n=400, d=40, k=2, seed=5, noise=8.0)  # (a different true W: overfits)
    gd = LinearGD(alpha=0.0, batch_size=32, max_epochs=50, patience=2, lr=None).fit(X, Y, Xv, Yv)
    assert gd.stopped_early_ and gd.n_epochs_ < 50
    assert gd.best_epoch_ == int(np.argmin(gd.val_history_)) + 1
    assert gd.mse(Xv, Yv) == pytest.approx(min(gd.val_history_), rel=1e-4)
    assert len(gd.loss_history_) == gd.n_epochs_


def test_predict_before_fit_and_bad_input_raise():
    with pytest.raises(ModelError, match="not fitted"):
        LinearGD().predict(np.zeros((2, 3)))
    gd = LinearGD(max_epochs=2, patience=0).fit(np.eye(4), np.ones((4, 2)))
    with pytest.raises(ValueError, match="4 features"):
        gd.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        LinearGD().fit(np.zeros((4, 2)), np.zeros((3, 1)))
    with pytest.raises(ModelError, match="schedule"):
        LinearGD(schedule="warp").fit(np.eye(3), np.ones(3))
