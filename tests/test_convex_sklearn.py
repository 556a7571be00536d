"""ConvexThresholdClassifier / ConvexThresholdRegressor: scikit-learn wrappers in htaf.sklearn
(also htaf.convex)."""

import sys

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from htaf import convex
from htaf.estimators import harden
from htaf.sklearn import ConvexThresholdClassifier, ConvexThresholdRegressor

CHECKED = [
    ConvexThresholdClassifier(n_directions=200),
    ConvexThresholdRegressor(n_directions=200),
    ConvexThresholdClassifier(variant="deep", width=100),
    ConvexThresholdRegressor(variant="deep", width=100),
]


def test_the_wrappers_live_in_htaf_sklearn_and_htaf_convex_re_exports_them():
    assert ConvexThresholdClassifier.__module__ == ConvexThresholdRegressor.__module__
    assert ConvexThresholdClassifier.__module__ == "htaf.sklearn"
    assert convex.ConvexThresholdClassifier is ConvexThresholdClassifier
    assert convex.ConvexThresholdRegressor is ConvexThresholdRegressor


@pytest.mark.slow
@parametrize_with_checks(CHECKED)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    return X, np.where(X[:, 0] * X[:, 1] + 0.2 * X[:, 2] > 0, "yes", "no")


@pytest.mark.parametrize("variant", ["two_layer", "deep"])
def test_classifier_fits_and_its_dhn_predicts_the_same(variant):
    X, y = data()
    clf = ConvexThresholdClassifier(
        n_directions=500, variant=variant, width=200, random_state=0, linear=False
    )
    clf.fit(X, y)
    assert set(clf.classes_) == {"no", "yes"} and clf.score(X, y) == 1.0
    assert clf.solver_info_["optimal"] and clf.solver_info_["gap"] >= 0
    assert clf.objective_ == pytest.approx(clf.solver_info_["network_objective"] / len(X))
    X_new, _ = data(300, seed=1)
    dhn = clf.to_dhn()
    with torch.no_grad(), harden(dhn):
        logits = dhn(torch.as_tensor(X_new, dtype=torch.float32)).numpy().reshape(-1)
    decision = clf.decision_function(X_new)
    np.testing.assert_allclose(logits, decision, atol=1e-4)
    assert np.array_equal(clf.classes_[(logits >= 0).astype(int)], clf.predict(X_new))


def test_same_random_state_same_model_and_regressor_fits():
    X, _ = data()
    y = X[:, 0] ** 2 - X[:, 1]
    a = ConvexThresholdRegressor(n_directions=300, beta=None, random_state=3).fit(X, y)
    b = ConvexThresholdRegressor(n_directions=300, beta=None, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.score(X, y) > 0.9 and a.n_units_ == np.count_nonzero(a.network_.output)
    assert a.beta_ == pytest.approx(1e-3 * len(X))


def test_bad_input_names_it(monkeypatch):
    X, y = data()
    y3 = np.array(["a", "b", "c"] * (len(X) // 3) + ["a"] * (len(X) % 3))
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        ConvexThresholdClassifier().fit(X, y3)
    with pytest.raises(ValueError, match="beta"):
        ConvexThresholdClassifier(beta=0.0).fit(X, y)
    with pytest.raises(ValueError, match="beta"):
        ConvexThresholdRegressor(beta=-2).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="n_directions"):
        ConvexThresholdClassifier(n_directions=0).fit(X, y)
    with pytest.raises(ValueError, match="variant"):
        ConvexThresholdClassifier(variant="three").fit(X, y)
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(ValueError, match=r"pip install 'htaf\[convex\]'"):
        ConvexThresholdClassifier(solver="cvxpy").fit(X, y)
