"""The shared-kernel multi-output SVR against plain sklearn SVR(kernel='rbf')."""

from __future__ import annotations

import numpy as np
import pytest

from chromalab.errors import ModelError
from chromalab.predictors.svr import MultiOutputSVR, TargetScaler, resolve_gamma


def _problem(n=240, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = np.stack([np.sin(X[:, j % d]) + 0.3 * X[:, (j + 1) % d] ** 2 for j in range(k)], 1)
    Y += 0.1 * rng.standard_normal(Y.shape)
    Xt = rng.standard_normal((80, d))
    return X, Y, Xt


@pytest.mark.parametrize("gamma", ["scale", 0.3])
def test_fast_path_equals_plain_sklearn_svr(gamma):
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.svm import SVR

    X, Y, Xt = _problem()
    fast = MultiOutputSVR(C=2.0, epsilon=0.1, gamma=gamma, n_jobs=2).fit(X, Y)
    ref = [SVR(kernel="rbf", C=2.0, epsilon=0.1, gamma=gamma).fit(X, Y[:, j]) for j in range(Y.shape[1])]
    want = np.stack([m.predict(Xt) for m in ref], 1)
    got = fast.predict(Xt)
    tol = 1e-3 * Y.std(axis=0)
    assert np.all(np.abs(got - want) <= tol), np.abs(got - want).max(axis=0)
    # the same support vectors and intercepts as each plain SVR
    for j, m in enumerate(ref):
        assert fast.n_support_[j] == len(m.support_)
        assert fast.intercept_[j] == pytest.approx(m.intercept_[0], abs=1e-3 * Y[:, j].std())
    # and the same as sklearn's MultiOutputRegressor wrapper
    mo = MultiOutputRegressor(SVR(kernel="rbf", C=2.0, epsilon=0.1, gamma=gamma)).fit(X, Y)
    assert np.abs(mo.predict(Xt) - got).max() <= 1e-3 * Y.std()
    assert fast.gamma_ == pytest.approx(ref[0]._gamma)


def test_threads_do_not_change_the_result():
    X, Y, Xt = _problem(k=6, seed=1)
    a = MultiOutputSVR(C=1.0, epsilon=0.05, n_jobs=1).fit(X, Y)
    b = MultiOutputSVR(C=1.0, epsilon=0.05, n_jobs=3).fit(X, Y)
    np.testing.assert_array_equal(a.predict(Xt), b.predict(Xt))
    np.testing.assert_array_equal(a.support_, b.support_)


def test_state_round_trip_and_errors():
    X, Y, Xt = _problem(k=2, seed=2)
    m = MultiOutputSVR(C=1.0, epsilon=0.1).fit(X, Y)
    arrays, meta = m.get_state()
    again = MultiOutputSVR.from_state(arrays, meta)
    np.testing.assert_array_equal(again.predict(Xt), m.predict(Xt))
    with pytest.raises(ModelError, match="not fitted"):
        MultiOutputSVR().predict(Xt)
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        m.predict(Xt[:, :3])
    with pytest.raises(ModelError, match="gamma"):
        resolve_gamma(-1, X)


@pytest.mark.parametrize("mode", ["output", "global", "none"])
def test_target_scaler_round_trip(mode):
    Y = np.random.default_rng(0).standard_normal((50, 3)) * [1, 10, 100] + 5
    s = TargetScaler(mode).fit(Y)
    np.testing.assert_allclose(s.inverse_transform(s.transform(Y)), Y, atol=1e-9)
    if mode == "output":
        np.testing.assert_allclose(s.transform(Y).std(axis=0), 1.0, atol=1e-9)
    if mode == "global":
        assert np.all(s.scale_ == s.scale_[0])
