"""HeavisideClassifier / HeavisideRegressor: scikit-learn's estimator checks and real data."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, make_blobs
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

from htaf.estimators import estimators_in
from htaf.families.dhn import DHN
from htaf.sklearn import HeavisideClassifier, HeavisideRegressor

# Small nets keep the ~100 fits of the checks fast. The regressor gets more epochs: its check
# asks for training R² > 0.5, which 20 epochs at lr 1e-3 on 200 samples do not reach.
CHECKED = [
    HeavisideClassifier(hidden_layer_sizes=(16,), epochs=20),
    HeavisideRegressor(hidden_layer_sizes=(16,), epochs=50),
]


@pytest.mark.slow
@parametrize_with_checks(CHECKED)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def cancer_cv():
    """Default classifier (256-256-128, HTAF, hard forward) under stratified 5-fold CV."""
    X, y = load_breast_cancer(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    est = HeavisideClassifier(random_state=0)
    return X, y, cross_validate(est, X, y, cv=cv, return_estimator=True, return_indices=True)


def test_breast_cancer_hard_forward(cancer_cv) -> None:
    # each fold scores on held-out data; ~1 s per fit thanks to early stopping
    scores = cancer_cv[2]["test_score"]
    assert scores.min() >= 0.93 and scores.mean() >= 0.95, scores
    for est in cancer_cv[2]["estimator"]:
        assert est.forward == "hard" and isinstance(est.model_, DHN)
        assert 1 <= est.n_iter_ <= 100 and len(est.history_) == est.n_iter_


def _held_out(cancer_cv):
    X, _, cv = cancer_cv
    return cv["estimator"][0], X[cv["indices"]["test"][0]]


def test_predict_proba_and_hard_steps(cancer_cv) -> None:
    est, X_te = _held_out(cancer_cv)
    proba = est.predict_proba(X_te)
    assert proba.shape == (len(X_te), 2) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(est.predict(X_te), est.classes_[proba.argmax(1)])
    # forward="smooth" reuses the same weights through HTAF itself: close, not identical
    smooth = clone(est).set_params(forward="smooth")
    smooth.__dict__.update({k: v for k, v in est.__dict__.items() if k.endswith("_")})
    hard_z, smooth_z = est.decision_function(X_te), smooth.decision_function(X_te)
    assert not np.array_equal(hard_z, smooth_z)
    assert (np.sign(hard_z) == np.sign(smooth_z)).mean() > 0.9


def test_pickle_round_trip(cancer_cv) -> None:
    est, X_te = _held_out(cancer_cv)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X_te), est.predict_proba(X_te))


def test_clone_and_determinism() -> None:
    X, y = make_blobs(n_samples=120, centers=3, random_state=0)
    est = HeavisideClassifier(hidden_layer_sizes=(16,), epochs=10, random_state=3)
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "model_")
    a = est.fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, twin.fit(X, y).predict_proba(X))
    other = clone(est).set_params(random_state=4).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, other)
    assert est.predict_proba(X).shape == (120, 3) and set(est.predict(X)) <= {0, 1, 2}


def test_regressor_diabetes() -> None:
    X, y = load_diabetes(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
    reg = HeavisideRegressor(hidden_layer_sizes=(16,), batch_size=64, random_state=0)
    reg.fit(X_tr, y_tr)
    assert reg.score(X_te, y_te) > 0.3
    assert abs(reg.predict(X_te).mean() - y_te.mean()) < 0.5 * y_te.std()  # back in y's units


def test_unknown_activation_raises_at_fit() -> None:
    est = HeavisideClassifier(activation="htfa", epochs=1)  # construction never validates
    with pytest.raises(ValueError, match="htfa"):
        est.fit(np.random.rand(20, 3), np.arange(20) % 2)


@pytest.mark.parametrize("cls", [HeavisideClassifier, HeavisideRegressor])
def test_activation_is_the_parameter_and_estimator_its_deprecated_name(cls) -> None:
    # as scikit-learn renames a parameter: the old one defaults to "deprecated" and is
    # resolved at fit, with a FutureWarning, so get_params, set_params and clone keep working
    X, y = make_blobs(n_samples=80, centers=2, random_state=0)
    settings = {"hidden_layer_sizes": (8,), "epochs": 3, "random_state": 0}
    params = cls().get_params()
    assert params["activation"] == "htaf" and params["estimator"] == "deprecated"
    new = cls(activation="ste", **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        new.fit(X, y)
    old = cls(estimator="ste", **settings)
    assert clone(old).get_params() == old.get_params() and old.get_params()["estimator"] == "ste"
    with pytest.warns(FutureWarning, match="now called activation"):
        old.fit(X, y)
    assert {e.name for e in estimators_in(old.model_)} == {"ste"}
    np.testing.assert_array_equal(old.predict(X), new.predict(X))
    np.testing.assert_array_equal(old._logits(X), new._logits(X))
    agreeing = cls(activation="ste", estimator="ste", **settings)
    with pytest.warns(FutureWarning):
        np.testing.assert_array_equal(agreeing.fit(X, y).predict(X), new.predict(X))
    both = cls(**settings).set_params(activation="relu", estimator="ste")
    error = pytest.raises(ValueError, match="activation='relu' and estimator='ste'")
    with error, pytest.warns(FutureWarning):
        both.fit(X, y)


@pytest.mark.parametrize(("param", "value"), [("forward", "soft"), ("validation_fraction", 1.0)])
def test_bad_params_raise_at_fit(param: str, value) -> None:
    est = HeavisideRegressor(epochs=1).set_params(**{param: value})
    with pytest.raises(ValueError, match=param):
        est.fit(np.random.rand(20, 3), np.random.rand(20))


def test_scaling_uses_training_rows_only() -> None:
    # the early-stopping rows must not leak into the X scaler or the target standardisation;
    # x0 == y, so the scaler's mean of x0 is the training rows' target mean
    rng = np.random.default_rng(0)
    y = rng.normal(size=40) * 10
    X = np.column_stack([y, rng.normal(size=40)])
    reg = HeavisideRegressor(hidden_layer_sizes=(4,), epochs=1, validation_fraction=0.25)
    reg.set_params(patience=1, random_state=0).fit(X, y)
    assert reg.scaler_.n_samples_seen_ == 30
    assert reg.y_mean_ == pytest.approx(reg.scaler_.mean_[0]) and reg.y_mean_ != y.mean()
    assert reg.y_std_ == pytest.approx(reg.scaler_.scale_[0])
