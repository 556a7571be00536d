"""htaf.train.metrics against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from htaf.data import Dataset
from htaf.train import metrics as M


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + 0.7 * rng.random(200), 0.01, 0.99)
    got = M.classification_metrics(y, p)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert got["auroc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert got["logloss"] == pytest.approx(skm.log_loss(y, p))
    # (n, 1) probabilities are the same as (n,)
    assert M.classification_metrics(y, p[:, None]) == got


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + 2 * np.eye(4)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    got = M.classification_metrics(y, p)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert got["auroc"] == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
    )
    assert got["logloss"] == pytest.approx(skm.log_loss(y, p, labels=range(4)))


def test_undefined_metrics_are_nan_not_errors():
    assert math.isnan(M.auroc(np.ones(5, int), np.full(5, 0.7)))
    assert math.isnan(M.accuracy(np.array([], int), np.array([])))
    assert math.isnan(M.r2(np.ones(4), np.arange(4.0)))
    # extreme probabilities are clipped, so log-loss stays finite
    assert math.isfinite(M.log_loss(np.array([0, 1]), np.array([1.0, 0.0])))


def test_regression_in_original_units():
    rng = np.random.default_rng(2)
    y_std = rng.normal(size=100).astype(np.float32)
    pred = y_std + 0.1 * rng.normal(size=100)
    empty = np.zeros((0, 1), np.float32)
    ds = Dataset("r", "regression", empty, empty[:, 0], empty, empty[:, 0], empty, empty[:, 0],
                 ["x"], None, None, meta={"y_mean": 10.0, "y_std": 3.0})  # fmt: skip
    got = M.regression_metrics(y_std, pred, ds)
    y0, p0 = y_std * 3.0 + 10.0, pred * 3.0 + 10.0
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y0, p0)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y0, p0))
    assert got["r2"] == pytest.approx(skm.r2_score(y0, p0))
    assert got["rmse"] == pytest.approx(3 * M.regression_metrics(y_std, pred)["rmse"])


def test_rank_auroc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 200))
        y = rng.random(n) < rng.random()
        if y.all() or not y.any():
            continue
        scores = np.round(rng.random(n), int(rng.integers(1, 4)))  # many ties
        assert M.auroc(y.astype(int), scores) == pytest.approx(
            skm.roc_auc_score(y, scores), abs=1e-12
        )
