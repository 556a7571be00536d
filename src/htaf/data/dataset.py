"""The ``Dataset`` every loader returns, and ``DataError`` for every bad-input problem.

A dataset holds tables, images or sequences. ``X_*`` has shape ``(n, *input_shape)``:

* ``kind="table"``: float32 ``(n, n_features)``, standardized on the training split;
* ``kind="image"``: ``(n, C, H, W)``, uint8 where the source is uint8 (kept that way in memory),
  or a lazy ``htaf.data.lazy.ImageFiles`` for sets too big for memory. ``normalize`` records the
  per-channel ``mean`` and ``std`` applied to ``x / 255`` when a batch is made float
  (:meth:`Dataset.float_batch`);
* ``kind="sequence"``: float32 ``(n, T, F)``, time first; event data (``htaf.data.events``)
  keeps its frames, ``(n, T, C, H, W)``.

``concepts_*`` (optional, ``(n, K)`` uint8) are ground-truth attributes, named by
``concept_names``: CUB's 312 attributes, the ``shapes`` set's generating attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class DataError(ValueError):
    """Bad or missing input data; the message names the file, column and row where relevant."""


@dataclass
class Dataset:
    """A split dataset: ``X_*`` as the module doc says, ``y_*`` int64 class indices or float32
    regression targets.

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
    kind: str = "table"  # "table" | "image" | "sequence"
    #: Per-channel ``{"mean": [...], "std": [...]}`` applied to ``x / 255`` (uint8 images).
    normalize: dict[str, list[float]] | None = None
    concepts_train: np.ndarray | None = field(default=None, repr=False)
    concepts_val: np.ndarray | None = field(default=None, repr=False)
    concepts_test: np.ndarray | None = field(default=None, repr=False)
    concept_names: list[str] | None = field(default=None, repr=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape: ``(n_features,)``, ``(C, H, W)`` or ``(T, F)``."""
        return tuple(int(d) for d in self.X_train.shape[1:])

    @property
    def n_features(self) -> int:
        """Inputs per sample once flattened (``C * H * W`` for images)."""
        return math.prod(self.input_shape)

    def float_batch(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as the model sees it: float32, uint8 scaled to [0, 1] then normalized."""
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if self.normalize is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            mean = torch.tensor(self.normalize["mean"], dtype=x.dtype, device=x.device)
            std = torch.tensor(self.normalize["std"], dtype=x.dtype, device=x.device)
            x = (x - mean.view(shape)) / std.view(shape)
        return x

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
            f"Dataset({self.name!r}, task={self.task!r}, kind={self.kind!r}, "
            f"input_shape={self.input_shape}, "
            f"n_classes={self.n_classes}, train/val/test={n[0]}/{n[1]}/{n[2]})"
        )
