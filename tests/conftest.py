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
        monkeypatch.setattr(N, "_tried", True)
        monkeypatch.setattr(N, "_ops", None)

    return off
