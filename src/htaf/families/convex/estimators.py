"""scikit-learn estimators for the convex threshold networks (also ``htaf.convex``).

    from htaf.convex import ConvexThresholdClassifier
    clf = ConvexThresholdClassifier(n_directions=5000, random_state=0).fit(X, y)
    clf.solver_info_["optimal"], clf.solver_info_["gap"]   # the certificate of the solve
    clf.objective_                                          # J / n on the training data
    model = clf.to_dhn()                                    # the same network as an htaf DHN

The classifier fits binary targets as ±1 and predicts the sign of the network's output; the
regressor fits ``y`` as it is. Inputs are used as given (standardize them first, as for any
network). Both predict with the exact steps, in float64. See :mod:`htaf.families.convex` for
the programs and :mod:`.model` for the objective ``J``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted

from htaf.families.convex.deep import RECONSTRUCTIONS, fit_deep
from htaf.families.convex.model import ThresholdNet, check_beta, fit_two_layer
from htaf.families.convex.solver import CVXPY_HINT, SOLVERS, cvxpy_missing

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover
    _sk_validate_data = None

__all__ = ["ConvexThresholdClassifier", "ConvexThresholdRegressor"]

VARIANTS = ("two_layer", "deep")


def _validate_data(est: BaseEstimator, X: Any, y: Any = "no_validation", **kw: Any) -> Any:
    kw.setdefault("dtype", [np.float64, np.float32])
    if _sk_validate_data is not None:
        return _sk_validate_data(est, X, y, **kw)
    return est._validate_data(X, y, **kw)  # pragma: no cover


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _ConvexThresholdBase(BaseEstimator):
    """Shared parameters, checks and fitting.

    Args:
        n_directions: P, the directions sampled for the two-layer arrangement matrix.
        beta: the regulariser of the program; None: 1e-3 · n (Ergen et al.).
        variant: ``"two_layer"`` (the Lasso) or ``"deep"`` (the shattered program).
        width: the deep variant's random first-layer units.
        reconstruction: the deep variant's second-layer fit, ``"pinv"`` or ``"svm"``.
        solver: ``"working_set"`` (htaf's) or ``"cvxpy"`` (the CVXPY + Clarabel reference).
        tol: relative duality gap the solve must certify to be ``optimal``.
        random_state: seeds the directions (two-layer) or the first layer (deep).
    """

    def __init__(
        self,
        n_directions: int = 2000,
        beta: float | None = None,
        variant: str = "two_layer",
        width: int = 1000,
        reconstruction: str = "pinv",
        solver: str = "working_set",
        tol: float = 1e-6,
        random_state: Any = None,
    ):
        self.n_directions = n_directions
        self.beta = beta
        self.variant = variant
        self.width = width
        self.reconstruction = reconstruction
        self.solver = solver
        self.tol = tol
        self.random_state = random_state

    def _check_params(self, n: int) -> float:
        """Every parameter checked before any work; returns beta as a number."""
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        _positive_int(self.n_directions, "n_directions (P)")
        _positive_int(self.width, "width")
        if self.reconstruction not in RECONSTRUCTIONS:
            raise ValueError(
                f"reconstruction must be one of {', '.join(RECONSTRUCTIONS)}, "
                f"got {self.reconstruction!r}"
            )
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}")
        if self.solver == "cvxpy" and cvxpy_missing():
            raise ValueError(f"solver='cvxpy' needs CVXPY, which is not installed: {CVXPY_HINT}")
        real = isinstance(self.tol, (int, float, np.floating)) and not isinstance(self.tol, bool)
        if not real or not 0 < self.tol < 1:
            raise ValueError(f"tol must be a number in (0, 1), got {self.tol!r}")
        return check_beta(self.beta, n)

    def _fit_target(self, X: np.ndarray, target: np.ndarray) -> None:
        beta = self._check_params(len(X))
        seed = check_random_state(self.random_state).randint(0, 2**31 - 1)
        if self.variant == "deep":
            net = fit_deep(
                X,
                target,
                beta=beta,
                width=self.width,
                reconstruction=self.reconstruction,
                rng=seed,
                solver=self.solver,
                tol=self.tol,
            )
        else:
            net = fit_two_layer(
                X,
                target,
                beta=beta,
                n_directions=self.n_directions,
                rng=seed,
                solver=self.solver,
                tol=self.tol,
            )
        self.network_: ThresholdNet = net
        self.beta_ = beta
        self.solver_info_ = dict(net.info)
        self.objective_ = net.objective(X, target, beta) / len(X)
        self.n_units_ = int(net.output.size)

    def _output(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = _validate_data(self, X, reset=False)
        return self.network_.predict(X)

    def to_dhn(self, activation: str = "htaf", **params: float) -> Any:
        """The fitted network as an htaf :class:`~htaf.families.dhn.DHN` (exact steps in its
        hard mode; one logit, ``f(x)``)."""
        check_is_fitted(self, "network_")
        return self.network_.to_dhn(activation, **params)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class ConvexThresholdClassifier(ClassifierMixin, _ConvexThresholdBase):
    """A globally optimal threshold network for binary classification (Ergen et al.).

    The labels are fitted as ±1 targets; ``decision_function`` is the network's output and
    ``predict`` its sign. After ``fit``: ``classes_``, ``network_`` (:class:`.model.ThresholdNet`),
    ``solver_info_`` (objective, gap, optimal, units, time, ...), ``objective_`` (``J / n``),
    ``n_units_``, ``beta_``. Parameters: see ``_ConvexThresholdBase``.
    """

    def fit(self, X: Any, y: Any) -> ConvexThresholdClassifier:
        X, y = _validate_data(self, X, y)
        check_classification_targets(y)
        kind = type_of_target(y, input_name="y")
        classes = np.unique(y)
        if kind != "binary" or classes.size != 2:
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{kind} ({classes.size} class(es)); ConvexThresholdClassifier needs two classes."
            )
        self.classes_ = classes
        self._fit_target(X, np.where(y == classes[1], 1.0, -1.0))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """``f(x)``: positive for ``classes_[1]``."""
        return self._output(X)

    def predict(self, X: Any) -> np.ndarray:
        positive = self.decision_function(X) >= 0  # checks fitted first
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class ConvexThresholdRegressor(RegressorMixin, _ConvexThresholdBase):
    """A globally optimal threshold network for regression (Ergen et al.); ``predict`` is the
    network's output. Attributes as :class:`ConvexThresholdClassifier` (no ``classes_``)."""

    def fit(self, X: Any, y: Any) -> ConvexThresholdRegressor:
        X, y = _validate_data(self, X, y, y_numeric=True)
        self._fit_target(X, np.asarray(y, dtype=np.float64))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self._output(X)
