"""The ``Dataset`` every loader returns, and ``DataError`` for every bad-input problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DataError(ValueError):
    """Bad or missing input data; the message names the file, column and row where relevant."""


@dataclass
class Dataset:
    """A preprocessed, split dataset: X float32 2-D, y int64 class indices or float32 targets.

    Regression targets are standardized with the training mean/std (``meta["y_mean"]``,
    ``meta["y_std"]``); ``inverse_target`` maps predictions back to original units.
    """

    name: str
    task: str  # "binary" | "multiclass" | "regression"
    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    feature_names: list[str] = field(repr=False)
    class_names: list[str] | None
    n_classes: int | None  # None for regression
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    def inverse_target(self, y: Any) -> Any:
        """Standardized regression targets/predictions -> original units (numpy or torch)."""
        if self.task != "regression":
            raise DataError(f"inverse_target is only defined for regression, not {self.task!r}")
        if isinstance(y, list | tuple):
            y = np.asarray(y, dtype=np.float64)
        return y * self.meta["y_std"] + self.meta["y_mean"]

    def __repr__(self) -> str:
        n = (len(self.y_train), len(self.y_val), len(self.y_test))
        return (
            f"Dataset({self.name!r}, task={self.task!r}, n_features={self.n_features}, "
            f"n_classes={self.n_classes}, train/val/test={n[0]}/{n[1]}/{n[2]})"
        )
