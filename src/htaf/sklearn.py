"""scikit-learn estimators over htaf's models, every one predicting with exact steps.

    from htaf.sklearn import HeavisideClassifier
    clf = HeavisideClassifier(activation="htaf", hidden_layer_sizes=(256, 256, 128))
    clf.fit(X_train, y_train).score(X_test, y_test)   # predicts with the exact steps

    from htaf.sklearn import ConvexThresholdClassifier
    clf = ConvexThresholdClassifier(n_directions=5000, random_state=0).fit(X, y)
    clf.solver_info_["optimal"], clf.solver_info_["gap"]   # the certificate of the solve

``HeavisideClassifier`` / ``HeavisideRegressor`` wrap a :class:`~htaf.families.dhn.DHN` trained
with ``htaf.train.fit``; ``activation`` (as in scikit-learn's ``MLPClassifier``) is the
estimator spec the steps are trained through. They predict with the exact steps by default
(``forward="hard"``). ``ConvexThresholdClassifier`` / ``ConvexThresholdRegressor`` solve the
convex program of :mod:`htaf.families.convex` instead of training (also ``htaf.convex``).
These wrappers sit above the engine and the families, so that no family imports them.

"Estimator" here is scikit-learn's word (an object with ``fit``); htaf's own estimators (how a
step is trained: ``"htaf"``, ``"ste"``...) are what ``activation`` names.
"""

from __future__ import annotations

import itertools
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted

from htaf.config import RunConfig
from htaf.data import Dataset
from htaf.estimators import set_mode
from htaf.families.convex.deep import RECONSTRUCTIONS, fit_deep
from htaf.families.convex.model import ThresholdNet, check_beta, fit_two_layer
from htaf.families.convex.solver import CVXPY_HINT, SOLVERS, cvxpy_missing
from htaf.families.dhn import DHN
from htaf.train import fit as train_fit

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover
    _sk_validate_data = None

__all__ = [
    "ConvexThresholdClassifier",
    "ConvexThresholdRegressor",
    "HeavisideClassifier",
    "HeavisideRegressor",
]

#: The default of a parameter that has been renamed: scikit-learn's way of telling "not given".
DEPRECATED = "deprecated"
#: The convex wrappers' program variants.
VARIANTS = ("two_layer", "deep")


def _widths(sizes: Any) -> list[int]:
    """``hidden_layer_sizes`` as a list of ints; 2.5 is an error, not silently 2."""
    values = np.atleast_1d(sizes).tolist()
    for w in values:
        if isinstance(w, bool) or not isinstance(w, numbers.Integral) or w <= 0:
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {sizes!r}")
    return [int(w) for w in values]


def _validate_data(wrapper: BaseEstimator, X: Any, y: Any = "no_validation", **kw: Any) -> Any:
    """``sklearn.utils.validation.validate_data`` (>= 1.6), else the old private method."""
    kw.setdefault("dtype", [np.float64, np.float32])  # ints/objects become float64
    if _sk_validate_data is not None:
        return _sk_validate_data(wrapper, X, y, **kw)
    return wrapper._validate_data(X, y, **kw)  # pragma: no cover


class _HeavisideBase(BaseEstimator):
    """Shared fit/forward logic; subclasses define the target handling.

    Parameters (stored as given; checked at ``fit``):
        activation: how the steps are trained, any ``htaf.estimators`` spec (``"htaf"``,
            ``"htaf(2,11)"``, ``"ste"``, ...) or a continuous reference (``"relu"``).
        hidden_layer_sizes, batch_norm, dropout: the :class:`DHN` architecture.
        epochs, batch_size, lr, optimizer ("adam" | "sgd"), weight_decay: training.
        validation_fraction: share of the training data held out for early stopping
            (stratified for classifiers); 0 disables early stopping.
        patience: epochs without a better validation loss before stopping (best weights are
            restored); 0 disables early stopping.
        forward: the forward ``predict`` uses: ``"hard"`` (exact steps, the deployed binary
            network) or ``"smooth"`` (the estimator's smooth forward, e.g. HTAF itself).
        random_state: seed for the split, the initialisation and the batch order.
        verbose: show a progress bar.
        estimator: deprecated, the former name of ``activation``: still used (with a
            ``FutureWarning`` at ``fit``) when given, for one release.
    """

    _task_kind: str = ""

    def __init__(
        self,
        activation: str = "htaf",
        hidden_layer_sizes: Sequence[int] = (256, 256, 128),
        batch_norm: bool = False,
        dropout: float = 0.0,
        epochs: int = 100,
        batch_size: int = 32,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        validation_fraction: float = 0.1,
        patience: int = 10,
        forward: str = "hard",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
        estimator: str = DEPRECATED,
    ):
        self.activation = activation
        self.hidden_layer_sizes = hidden_layer_sizes
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.forward = forward
        self.random_state = random_state
        self.verbose = verbose
        self.estimator = estimator

    # -- subclass hooks ------------------------------------------------------------------------
    def _encode_targets(self, y: np.ndarray) -> tuple[np.ndarray, str, int]:
        """Return (encoded y, task, n_out); sets ``classes_`` for classifiers. ``fit``
        standardises a regression target with the training rows."""
        raise NotImplementedError

    # -- fitting -------------------------------------------------------------------------------
    def _activation(self) -> str:
        """``activation``, or ``estimator`` (its deprecated name) when that is given."""
        if isinstance(self.estimator, str) and self.estimator == DEPRECATED:
            return self.activation
        warnings.warn(
            f"{type(self).__name__}(estimator=...) is deprecated: it is now called activation "
            "(as in scikit-learn's MLPClassifier); estimator= will be removed in the next "
            "release",
            FutureWarning,
            stacklevel=3,
        )
        if self.activation not in ("htaf", self.estimator):
            raise ValueError(
                f"activation={self.activation!r} and estimator={self.estimator!r} (its "
                "deprecated name) are both set and differ: set only activation"
            )
        return self.estimator

    def _check_params(self) -> None:
        if self.forward not in ("hard", "smooth"):
            raise ValueError(f"forward must be 'hard' or 'smooth', got {self.forward!r}")
        vf = self.validation_fraction
        if isinstance(vf, bool) or not isinstance(vf, numbers.Real) or not 0 <= vf < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {vf!r}")
        p = self.patience
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 0:
            raise ValueError(f"patience must be an integer >= 0, got {p!r}")

    def _split(self, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (train, val): ``validation_fraction`` held out for early stopping,
        stratified for classifiers; no validation rows when early stopping is off or there is
        too little data to hold any out."""
        n = len(y)
        idx = np.arange(n)
        n_val = int(np.ceil(self.validation_fraction * n))
        if self.patience == 0 or n_val == 0 or n - n_val < 2:
            return idx, idx[:0]
        stratify = None
        if self._task_kind == "classifier":
            counts = np.bincount(y)
            # stratifying needs >= 2 samples per class and room for every class on each side
            if counts.min() >= 2 and len(counts) <= min(n_val, n - n_val):
                stratify = y
        tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
        return tr, va

    def fit(self, X: Any, y: Any) -> _HeavisideBase:
        """Standardise X, train a :class:`DHN` with ``htaf.train.fit``, and return self."""
        self._check_params()
        activation = self._activation()
        X, y = _validate_data(self, X, y)
        y_enc, task, n_out = self._encode_targets(y)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        tr, va = self._split(y_enc, seed)
        # Steps are scale-sensitive: unscaled inputs would leave most first-layer units stuck at
        # 0 or 1. Fit on the training rows only so the early-stopping rows stay unseen.
        self.scaler_ = StandardScaler().fit(X[tr])
        Xs = self.scaler_.transform(X).astype(np.float32)
        meta: dict[str, Any] = {}
        if task == "regression":  # t = (y - mean) / std, same rows as the scaler
            self.y_mean_ = float(y_enc[tr].mean())
            self.y_std_ = float(y_enc[tr].std()) or 1.0  # a constant target trains towards t = 0
            y_enc = ((y_enc - self.y_mean_) / self.y_std_).astype(np.float32)
            meta = {"y_mean": self.y_mean_, "y_std": self.y_std_}
        y_val = y_enc[va]
        data = Dataset(
            name="sklearn", task=task, X_train=Xs[tr], y_train=y_enc[tr], X_val=Xs[va],
            y_val=y_val, X_test=Xs[va], y_test=y_val,
            feature_names=[str(f) for f in getattr(self, "feature_names_in_", range(X.shape[1]))],
            class_names=[str(c) for c in self.classes_] if task != "regression" else None,
            n_classes=len(self.classes_) if task != "regression" else None,
            meta=meta,
        )  # fmt: skip
        widths = _widths(self.hidden_layer_sizes)
        model_options = {
            "widths": widths,
            "batch_norm": bool(self.batch_norm),
            "dropout": float(self.dropout),
        }
        config = RunConfig(
            family="dhn", dataset="sklearn", estimator=activation, model=model_options,
            optimizer=self.optimizer, lr=float(self.lr), weight_decay=float(self.weight_decay),
            epochs=int(self.epochs), batch_size=int(self.batch_size),
            patience=int(self.patience) if len(y_val) else 0, seed=seed, split_seed=seed,
        )  # fmt: skip
        # fork the global torch RNG so fitting is reproducible and leaves the caller's state alone
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = DHN(
                X.shape[1], n_out, widths, activation, bool(self.batch_norm),
                float(self.dropout),
            )  # fmt: skip
            result = train_fit(model, data, config, progress=bool(self.verbose))
        # leave model_ in the forward predict uses, so model_ on its own reproduces predict
        set_mode(model, self.forward)
        self.model_ = model.eval()
        self.history_ = result.history
        self.n_iter_ = result.epochs
        return self

    # -- inference -----------------------------------------------------------------------------
    def _logits(self, X: Any) -> np.ndarray:
        """Network outputs for X, computed in float64 with the ``forward`` mode's activations.

        float64 makes each row's result independent of the batch it comes in (BLAS kernels
        differ with batch size, which is visible in float32 logits); the steps stay exact.
        """
        check_is_fitted(self, "model_")
        X = _validate_data(self, X, reset=False)
        x = torch.from_numpy(self.scaler_.transform(X).astype(np.float64))
        tensors = itertools.chain(self.model_.named_parameters(), self.model_.named_buffers())
        state = {k: v.double() if v.is_floating_point() else v for k, v in tensors}
        with torch.no_grad(), set_mode(self.model_, self.forward):
            out = torch.func.functional_call(self.model_, state, (x,))
        return out.numpy()


class HeavisideClassifier(ClassifierMixin, _HeavisideBase):
    """A Deep Heaviside Network classifier with the scikit-learn API.

    Trains through ``activation`` (HTAF by default: smooth forward ``sigmoid(a1 tanh(a0 z))``)
    and, with ``forward="hard"``, predicts with the exact step ``H(z) = 1{z >= 0}`` in every
    hidden unit. Binary problems use one logit ``f(x)`` with ``P(y=1|x) = sigmoid(f(x))``;
    K classes use K logits and a softmax.

    Attributes:
        classes_, n_features_in_, feature_names_in_: as in scikit-learn.
        model_: the trained :class:`DHN` (float32, eval mode).
        scaler_: the ``StandardScaler`` fitted on the training X.
        n_iter_: epochs run; history_: ``htaf.train.fit``'s per-epoch history.
    """

    _task_kind = "classifier"

    def _encode_targets(self, y: np.ndarray) -> tuple[np.ndarray, str, int]:
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y, got 1 class")
        return y_enc.astype(np.int64), "binary" if k == 2 else "multiclass", 1 if k == 2 else k

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits: shape ``(n,)`` for two classes (> 0 means ``classes_[1]``), else ``(n, K)``."""
        z = self._logits(X)
        return z[:, 0] if len(self.classes_) == 2 else z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``: sigmoid or softmax of the logits."""
        z = self._logits(X)
        if len(self.classes_) == 2:
            p = expit(z[:, 0])
            return np.column_stack([1 - p, p])
        return softmax(z, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        z = self._logits(X)
        idx = (z[:, 0] > 0).astype(int) if len(self.classes_) == 2 else z.argmax(axis=1)
        return self.classes_[idx]


class HeavisideRegressor(RegressorMixin, _HeavisideBase):
    """A Deep Heaviside Network regressor with the scikit-learn API.

    y is standardised internally, ``t = (y - mean) / std`` with the statistics of the training
    rows (not the early-stopping ones); the network is trained with squared error on t, and
    predictions are mapped back: ``y_hat = std * f(x) + mean``. With ``forward="hard"`` every
    hidden unit is an exact step, so ``f`` is piecewise constant.

    Attributes: n_features_in_, feature_names_in_, model_, scaler_, y_mean_, y_std_, n_iter_,
    history_.
    """

    _task_kind = "regressor"

    def _encode_targets(self, y: np.ndarray) -> tuple[np.ndarray, str, int]:
        return np.asarray(y, dtype=np.float64), "regression", 1

    def predict(self, X: Any) -> np.ndarray:
        return self._logits(X)[:, 0] * self.y_std_ + self.y_mean_


# -- the convex threshold networks (Ergen et al.): solved, not trained -------------------------
def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _ConvexThresholdBase(BaseEstimator):
    """Shared parameters, checks and fitting of the convex wrappers: a globally optimal
    threshold network, the solution of a convex program (see :mod:`htaf.families.convex` for
    the programs and :mod:`htaf.families.convex.model` for the objective ``J``). Inputs are
    used as given (standardize them first, as for any network); both predict with the exact
    steps, in float64.

    Args:
        n_directions: P, the directions sampled for the two-layer arrangement matrix.
        beta: the regulariser of the program: a number > 0; ``"auto"`` (the default): the
            best beta of a warm-started path, scored on a held-out quarter of the training
            rows, then fitted on all of them (:mod:`htaf.families.convex.path`; the path is
            in ``beta_path_``); None: 1e-3 · n (Ergen et al.).
        variant: ``"two_layer"`` (the Lasso) or ``"deep"`` (the shattered program).
        width: the deep variant's random first-layer units.
        reconstruction: the deep variant's second-layer fit, ``"pinv"`` or ``"svm"``.
        solver: ``"working_set"`` (htaf's) or ``"cvxpy"`` (the CVXPY + Clarabel reference).
        tol: relative duality gap the solve must certify to be ``optimal``.
        random_state: seeds the directions (two-layer) or the first layer (deep).
        linear: two-layer: a linear skip term ``x · w`` beside the step units, with weight
            decay ``beta / std(y)`` and a free bias (:mod:`htaf.families.convex.skip`); in
            ``network_.linear``. False: Ergen et al.'s program alone (``to_dhn`` needs it).
        cv_repeats: ``beta="auto"`` deals the rows into folds this many times and averages
            the validation losses (a steadier choice of beta).
        cv_rule: ``"min"``: the beta of the best mean validation loss; ``"1se"``: the largest
            beta within one standard error of it; ``"auto"``: ``"1se"`` for a regression
            target with ``linear``, else ``"min"`` (:mod:`htaf.families.convex.path`).
    """

    def __init__(
        self,
        n_directions: int = 2000,
        beta: float | str | None = "auto",
        variant: str = "two_layer",
        width: int = 1000,
        reconstruction: str = "pinv",
        solver: str = "working_set",
        tol: float = 1e-6,
        random_state: Any = None,
        linear: bool = True,
        cv_repeats: int = 3,
        cv_rule: str = "auto",
    ):
        self.n_directions = n_directions
        self.beta = beta
        self.variant = variant
        self.width = width
        self.reconstruction = reconstruction
        self.solver = solver
        self.tol = tol
        self.random_state = random_state
        self.linear = linear
        self.cv_repeats = cv_repeats
        self.cv_rule = cv_rule

    def _check_params(self, n: int) -> float | str:
        """Every parameter checked before any work; returns beta as a number or "auto"."""
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
        if not isinstance(self.linear, (bool, np.bool_)):
            raise ValueError(f"linear must be True or False, got {self.linear!r}")
        _positive_int(self.cv_repeats, "cv_repeats")
        if self.cv_rule not in ("min", "1se", "auto"):
            raise ValueError(f"cv_rule must be 'min', '1se' or 'auto', got {self.cv_rule!r}")
        return check_beta(self.beta, n)

    def _fit_target(self, X: np.ndarray, target: np.ndarray, center: bool = False) -> None:
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
                center=center,
                linear=bool(self.linear),
                repeats=int(self.cv_repeats),
                cv_rule=self.cv_rule,
            )
        self.network_: ThresholdNet = net
        self.beta_ = float(net.info["beta"])
        self.beta_path_ = net.info.get("path")
        self.solver_info_ = dict(net.info)
        self.objective_ = net.objective(X, target, self.beta_) / len(X)
        self.n_units_ = int(net.output.size)
        if not net.info.get("optimal", True):
            warnings.warn(
                f"the convex solve stopped short of its tolerance: relative duality gap "
                f"{net.info['relative_gap']:.3g} > tol {self.tol:g} (objective "
                f"{net.info['objective']:.6g}, gap {net.info['gap']:.3g}); the network is "
                "certified only within that gap",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _output(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = _validate_data(self, X, reset=False)
        return self.network_.predict(X)

    def to_dhn(self, activation: str = "htaf", **params: float) -> Any:
        """The fitted network as an htaf :class:`~htaf.families.dhn.DHN` (exact steps in its
        hard mode; one logit, ``f(x)``); ValueError for a network fitted with ``linear=True``
        (a DHN has no skip term)."""
        check_is_fitted(self, "network_")
        return self.network_.to_dhn(activation, **params)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class ConvexThresholdClassifier(ClassifierMixin, _ConvexThresholdBase):
    """A globally optimal threshold network for binary classification (Ergen et al.).

    The labels are fitted as ±1 targets; ``decision_function`` is the network's output and
    ``predict`` its sign. After ``fit``: ``classes_``, ``network_``
    (:class:`~htaf.families.convex.model.ThresholdNet`), ``solver_info_`` (objective, gap,
    optimal, units, time, ...), ``objective_`` (``J / n``), ``n_units_``, ``beta_`` (the beta
    used), ``beta_path_`` (``beta="auto"``: the grid, validation losses, gaps, nonzeros).
    A solve that stops short of ``tol`` warns (``ConvergenceWarning``, naming the gap reached).
    Parameters: see ``_ConvexThresholdBase``.
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
    network's output. The two-layer variant fits ``y - mean(y)`` and keeps the mean as an
    unpenalised output bias (``network_.intercept``), as a linear model's intercept.
    Attributes as :class:`ConvexThresholdClassifier` (no ``classes_``)."""

    def fit(self, X: Any, y: Any) -> ConvexThresholdRegressor:
        X, y = _validate_data(self, X, y, y_numeric=True)
        self._fit_target(X, np.asarray(y, dtype=np.float64), center=True)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self._output(X)
