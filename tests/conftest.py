import os

# Lets scikit-learn's array-API estimator checks run instead of skipping; must precede scipy.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

# Test models are tiny: one intra-op thread avoids OpenMP overhead that dominates their runtime.
torch.set_num_threads(1)

#: Devices every device-aware test runs on: CUDA joins in when present, never skipped.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cancer():
    """breast_cancer through the data registry (deterministic split)."""
    from htaf import data

    return data.load("breast_cancer")


@pytest.fixture
def native_off(monkeypatch):
    """A function that turns htaf's native operators off for the rest of the test, so that
    everything takes the pure-PyTorch path (as on GPUs or without a C++ compiler)."""
    import htaf._native as N

    def off() -> None:
        monkeypatch.setattr(N._load, "result", None)

    return off


def make_digits_images(n: int | None = None, split_seed: int = 0):
    """sklearn's digits as the ``digits_images`` loader makes them: (N, 1, 8, 8) uint8 (values
    x 255/16), the ``digits`` table's split, training-split normalisation (``n``: first rows)."""
    import numpy as np
    from sklearn import datasets

    from htaf.data import Dataset
    from htaf.data.preprocess import split_indices

    bunch = datasets.load_digits()
    X = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None][:n]
    y = bunch.target.astype(np.int64)[:n]
    tr, va, te = split_indices(y, True, split_seed, 0.15, 0.2)
    scaled = X[tr].astype(np.float64) / 255.0
    return Dataset(
        name="digits_images", task="multiclass", X_train=X[tr], y_train=y[tr], X_val=X[va],
        y_val=y[va], X_test=X[te], y_test=y[te], feature_names=[],
        class_names=[str(c) for c in range(10)], n_classes=10, kind="image",
        normalize={"mean": [float(scaled.mean())], "std": [float(scaled.std())]},
    )  # fmt: skip


@pytest.fixture(scope="session")
def digits_images():
    """The full digits_images set (1797 images), built as the image loaders build it."""
    return make_digits_images()
