"""Metrics on numpy arrays: classification from probabilities, regression in target units.

* classification: ``accuracy``, ``auroc`` (binary; multiclass = macro one-vs-rest over the
  classes present with both labels), ``logloss`` (probabilities clipped to [1e-7, 1 - 1e-7]);
* regression: ``rmse``, ``mae``, ``r2``, computed after mapping predictions and targets back
  to the original units (``Dataset.inverse_target``) when a dataset is given.

A metric that is undefined on the data (AUROC with one class present, R² of a constant target)
is ``nan``, never an exception.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata

#: Metric names per task, in display order.
METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "auroc", "logloss"),
    "multiclass": ("accuracy", "auroc", "logloss"),
    "regression": ("rmse", "mae", "r2"),
}
#: The metric a table leads with, per task.
PRIMARY: dict[str, str] = {"binary": "auroc", "multiclass": "accuracy", "regression": "rmse"}
#: Whether a larger value is better, per metric name.
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "auroc": True,
    "logloss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
    "loss": False,
}

EPS = 1e-7


def _as_2d_probs(probs: np.ndarray) -> np.ndarray:
    """Binary P(y=1) of shape (n,) or (n, 1) -> (n, 2); multiclass (n, K) unchanged."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:
        return np.column_stack([1 - p, p])
    return p


def accuracy(y: np.ndarray, probs: np.ndarray) -> float:
    """Fraction correct; binary predicts class 1 when P(y=1) >= 0.5."""
    y = np.asarray(y)
    if y.size == 0:
        return math.nan
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1 or p.shape[1] == 1:
        pred = (p.reshape(-1) >= 0.5).astype(np.int64)
    else:
        pred = p.argmax(axis=1)
    return float(np.mean(pred == y))


def auroc(y: np.ndarray, probs: np.ndarray) -> float:
    """Binary AUROC, or the macro average of one-vs-rest AUROCs over classes.

    In the multiclass case a class enters the average only if both it and some other class are
    present in ``y`` (sklearn raises otherwise); ``nan`` if no class qualifies.
    """
    y = np.asarray(y)
    p = _as_2d_probs(probs)
    scores = []
    for k in range(1 if p.shape[1] == 2 else 0, p.shape[1]):
        positive = y == k
        if positive.any() and not positive.all():
            scores.append(binary_auroc(positive, p[:, k]))
    return float(np.mean(scores)) if scores else math.nan


def binary_auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """The area under the ROC curve as the Mann-Whitney statistic: the probability that a
    positive outscores a negative, ties counting 1/2 (what ``sklearn``'s ``roc_auc_score``
    integrates, without its per-call input checks, which cost more than the statistic itself
    when it is called per class, per epoch)."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    ranks = rankdata(np.asarray(score, dtype=np.float64))  # average ranks of ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood with probabilities clipped to [EPS, 1 - EPS]."""
    y = np.asarray(y, dtype=np.int64)
    if y.size == 0:
        return math.nan
    p = np.clip(_as_2d_probs(probs), EPS, 1 - EPS)
    p = p / p.sum(axis=1, keepdims=True)  # clipping broke normalisation; restore it
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, np.float64).ravel(), np.asarray(pred, np.float64).ravel()
    return float(np.sqrt(np.mean((y - pred) ** 2))) if y.size else math.nan


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, np.float64).ravel(), np.asarray(pred, np.float64).ravel()
    return float(np.mean(np.abs(y - pred))) if y.size else math.nan


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, np.float64).ravel(), np.asarray(pred, np.float64).ravel()
    total = np.sum((y - y.mean()) ** 2) if y.size else 0.0
    if total == 0:
        return math.nan
    return float(1 - np.sum((y - pred) ** 2) / total)


def classification_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """``accuracy``, ``auroc`` and ``logloss`` from class probabilities."""
    return {"accuracy": accuracy(y, probs), "auroc": auroc(y, probs), "logloss": log_loss(y, probs)}


def regression_metrics(y: np.ndarray, pred: np.ndarray, dataset: Any = None) -> dict[str, float]:
    """``rmse``, ``mae`` and ``r2``; in original units when ``dataset`` can invert the target."""
    if dataset is not None and getattr(dataset, "task", None) == "regression":
        y, pred = dataset.inverse_target(np.asarray(y)), dataset.inverse_target(np.asarray(pred))
    return {"rmse": rmse(y, pred), "mae": mae(y, pred), "r2": r2(y, pred)}
