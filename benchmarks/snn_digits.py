"""The default ``htaf compare --family snn`` grid, with its wall time.

    python benchmarks/snn_digits.py [--out DIR] [--seeds 5] [compare flags...]

Runs exactly ``htaf compare --family snn`` (spiking MLP on ``digits_images``, T = 8, Poisson;
htaf, atan, fast_sigmoid, sigmoid_surrogate, triangle and the ReLU reference; 5 seeds) and
prints the table and the elapsed time. Where ``digits_images`` is not a registered dataset
(before the image loaders land), it is built here the way the loaders build it: sklearn's
digits as (N, 1, 8, 8) uint8 (values x 255/16), the ``digits`` table's split, per-channel
normalisation statistics of the training split.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from htaf import data
from htaf.cli import main
from htaf.data.preprocess import split_indices
from htaf.train import run as run_module


def digits_images(split_seed: int = 0) -> data.Dataset:
    from sklearn import datasets

    bunch = datasets.load_digits()
    X = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    tr, va, te = split_indices(y, True, split_seed, 0.15, 0.2)
    scaled = X[tr].astype(np.float64) / 255.0
    return data.Dataset(
        name="digits_images", task="multiclass", X_train=X[tr], y_train=y[tr], X_val=X[va],
        y_val=y[va], X_test=X[te], y_test=y[te], feature_names=[],
        class_names=[str(c) for c in range(10)], n_classes=10, kind="image",
        normalize={"mean": [float(scaled.mean())], "std": [float(scaled.std())]},
        meta={"source": "sklearn.datasets.load_digits (benchmarks/snn_digits.py)"},
    )  # fmt: skip


def _patch_loader() -> None:
    """Serve digits_images from :func:`digits_images` if the registry does not know it."""
    if any(d["name"] == "digits_images" for d in data.available()):
        return
    load = run_module.load_dataset

    def load_dataset(config):
        if config.dataset == "digits_images":
            return digits_images(config.split_seed)
        return load(config)

    run_module.load_dataset = load_dataset


if __name__ == "__main__":
    _patch_loader()
    args = sys.argv[1:]
    t0 = time.perf_counter()
    code = main(["compare", "--family", "snn", "--no-progress", *args])
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    sys.exit(code)
