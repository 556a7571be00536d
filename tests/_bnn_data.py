"""Image datasets for the BNN tests, built as the data branch's loaders build them.

``digits_images`` matches the registry's ``digits_images`` (sklearn digits as (N, 1, 8, 8)
uint8, value·255/16; stratified 65/15/20 split by ``split_seed``; per-channel statistics of
the training split), so results here carry over to ``htaf compare --family bnn``.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from htaf.data import Dataset
from htaf.data.preprocess import split_indices


def channel_stats(X: np.ndarray) -> dict[str, list[float]]:
    values = X.astype(np.float64) / 255.0
    axes = (0, *range(2, X.ndim))
    std = values.std(axis=axes)
    return {"mean": values.mean(axis=axes).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def image_dataset(name: str, X: np.ndarray, y: np.ndarray, split_seed: int = 0) -> Dataset:
    """A multiclass image Dataset from uint8 (N, C, H, W) and labels, split 65/15/20."""
    tr, va, te = (np.sort(i) for i in split_indices(y, True, split_seed, 0.15, 0.2))
    k = int(y.max()) + 1
    return Dataset(
        name=name, task="multiclass", X_train=X[tr], y_train=y[tr], X_val=X[va], y_val=y[va],
        X_test=X[te], y_test=y[te], feature_names=[], class_names=[str(c) for c in range(k)],
        n_classes=k, kind="image", normalize=channel_stats(X[tr]),
        meta={"split_seed": split_seed},
    )  # fmt: skip


def digits_images(split_seed: int = 0) -> Dataset:
    b = load_digits()
    X = np.rint(b.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return image_dataset("digits_images", X, b.target.astype(np.int64), split_seed)


def random_images(shape: tuple[int, ...], n: int = 120, k: int = 10, seed: int = 0) -> Dataset:
    """Random uint8 images of ``shape`` whose class shifts the mean brightness (learnable)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.integers(0, 200, size=(n, *shape)) + (y * 5)[:, None, None, None]
    return image_dataset(f"random{shape}", X.astype(np.uint8), y.astype(np.int64))
