"""The families seam: options, data kinds, images through the engine, and the model hooks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from htaf.config import ConfigError, RunConfig
from htaf.data import Dataset
from htaf.families import Family, build_model, data_spec, family_names, get_family
from htaf.train import fit, run_one
from htaf.train.batches import batches, sequential
from htaf.train.callbacks import activation_stats
from htaf.train.engine import evaluate


def digit_images(n: int = 600) -> Dataset:
    """sklearn digits as uint8 (N, 1, 8, 8) images, the way an image loader stores them."""
    d = load_digits()
    X = np.round(d.images[:n] * 255 / 16).astype(np.uint8)[:, None]
    y = d.target[:n].astype(np.int64)
    a, b = int(0.6 * n), int(0.8 * n)
    return Dataset(
        "digits_images_test", "multiclass", X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:],
        feature_names=[], class_names=[str(i) for i in range(10)], n_classes=10,
        kind="image", normalize={"mean": [0.3], "std": [0.4]},
    )  # fmt: skip


class Files(torch.utils.data.Dataset):
    """Lazy 'image files' standing in for htaf.data.lazy.ImageFiles (module level: picklable)."""

    def __init__(self, X: np.ndarray):
        self.X, self.epoch, self.training = X, 0, False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.X.shape

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.X[i])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def train(self, mode: bool) -> None:
        self.training = mode


def test_dhn_is_registered_with_typed_defaults():
    assert "dhn" in family_names()
    fam = get_family("dhn")
    assert isinstance(fam, Family) and fam.compare["dataset"] == "breast_cancer"
    with pytest.raises(ConfigError, match=r"unknown model family.*'nope'.*dhn"):
        get_family("nope")


def test_float_batch_scales_uint8_and_normalises():
    ds = digit_images(50)
    x = torch.from_numpy(ds.X_train[:4])
    out = ds.float_batch(x)
    want = (ds.X_train[:4].astype(np.float64) / 255 - 0.3) / 0.4
    assert out.dtype == torch.float32 and np.allclose(out.numpy(), want, atol=1e-6)
    assert ds.input_shape == (1, 8, 8) and ds.n_features == 64


def test_dhn_flattens_images_and_trains_on_uint8():
    ds = digit_images()
    config = RunConfig(model={"widths": [64]}, epochs=8, lr=3e-3, batch_size=32)
    model = build_model(config, ds)
    assert data_spec(ds).input_shape == (1, 8, 8)
    fit(model, ds, config, progress=False)
    metrics = evaluate(model, ds.X_test, ds.y_test, "multiclass", ds)
    assert metrics["accuracy_hard"] > 0.6 and metrics["accuracy_smooth"] > 0.6  # chance: 0.1
    stats, _ = activation_stats(model, ds.X_test, to_float=ds.float_batch)
    assert 0 < stats["hard"]["near_binary_05"] <= 1 and stats["hard"]["near_binary_01"] == 1.0


def test_run_one_records_model_options_for_images(tmp_path):
    ds = digit_images(300)
    config = RunConfig(model={"widths": [16]}, epochs=2, batch_size=32)
    record = run_one(config, tmp_path / "run", dataset=ds)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"] == {"widths": [16]}
    assert saved["model_options"] == {"widths": [16], "batch_norm": False, "dropout": 0.0}
    # a fraction of the test images: a whole number of them
    n_right = record["metrics"]["test_accuracy_hard"] * len(ds.y_test)
    assert n_right == pytest.approx(round(n_right), abs=1e-9)


def test_lazy_files_give_the_same_training_as_arrays():
    arrays = digit_images(200)
    lazy = digit_images(200)
    for split in ("train", "val", "test"):
        setattr(lazy, f"X_{split}", Files(getattr(arrays, f"X_{split}")))
    config = RunConfig(model={"widths": [16]}, epochs=2, batch_size=50)
    results = []
    for ds in (arrays, lazy):
        torch.manual_seed(0)
        model = build_model(config, ds)
        results.append(fit(model, ds, config, progress=False).history)
    losses = [[row["train_loss"] for row in h] for h in results]
    assert np.allclose(losses[0], losses[1], rtol=1e-6)
    assert lazy.X_train.epoch == 1 and lazy.X_train.training is True
    assert lazy.X_val.training is False  # validation never augments


def test_batches_keep_order_and_convert():
    X = np.arange(24, dtype=np.uint8).reshape(6, 1, 2, 2)
    got = list(batches(X, sequential(6, 4), to_float=lambda t: t.float() * 2))
    assert [len(b) for b in got] == [4, 2] and got[1][0, 0, 0, 0].item() == 32.0


def test_family_rejects_data_of_another_kind(monkeypatch):
    import htaf.families.dhn as dhn

    table_only = Family("dhn", "x", dhn.DHNOptions, dhn.build, kinds=("table",))
    monkeypatch.setattr(dhn, "FAMILY", table_only)
    with pytest.raises(ConfigError, match=r"takes table data.*image data"):
        build_model(RunConfig(), digit_images(50))


class Hooked(nn.Module):
    """A model using every optional hook the engine honours."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 10)
        self.steps = 0
        self.epochs = 0

    def forward(self, x):
        return self.lin(x.flatten(1))

    def constrain_(self):
        self.steps += 1
        with torch.no_grad():
            self.lin.weight.clamp_(-0.01, 0.01)

    def epoch_stats(self):
        self.epochs += 1
        return {"max_weight": float(self.lin.weight.abs().max())}

    def eval_stats(self, x):
        return {"mean_input": float(x.mean())}


def test_engine_calls_the_model_hooks(tmp_path, monkeypatch):
    ds = digit_images(200)
    config = RunConfig(epochs=2, batch_size=40, lr=0.1)
    model = Hooked()
    monkeypatch.setattr("htaf.train.run.build_model", lambda config, data, **_: model)
    record = run_one(config, tmp_path / "run", dataset=ds)
    assert model.steps == 2 * 3 and model.epochs == 2
    assert all(row["model_stats"]["max_weight"] <= 0.01 + 1e-7 for row in record["history"])
    m = record["metrics"]
    assert m["test_mean_input_hard"] == pytest.approx(m["test_mean_input_smooth"])


class Solved(nn.Module):
    """A closed-form model: least squares on one-hot targets."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 10)

    def forward(self, x):
        return self.lin(x.flatten(1))

    def fit_closed_form(self, x, y, task):
        A = torch.cat([x.flatten(1), torch.ones(len(x), 1)], 1).double()
        T = nn.functional.one_hot(y, 10).double()
        W = torch.linalg.pinv(A) @ T  # min-norm: constant border pixels make A rank-deficient
        with torch.no_grad():
            self.lin.weight.copy_(W[:-1].T)
            self.lin.bias.copy_(W[-1])
        return {"optimal": True}


def test_closed_form_models_are_solved_not_trained(tmp_path, monkeypatch):
    ds = digit_images(400)
    monkeypatch.setattr("htaf.train.run.build_model", lambda config, data, **_: Solved())
    record = run_one(RunConfig(epochs=1), tmp_path / "run", dataset=ds)
    assert record["history"][0]["solver"] == {"optimal": True}
    assert record["metrics"]["test_accuracy_hard"] > 0.8
    with pytest.raises(ConfigError, match="'epochs' must be 1"):
        fit(Solved(), ds, RunConfig(epochs=3), progress=False)
