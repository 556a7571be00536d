"""htaf.train.engine: fit, evaluate, seeding, early stopping, schedules, callbacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from htaf.config import ConfigError, RunConfig
from htaf.data import Dataset
from htaf.estimators import estimators_in
from htaf.families import build_model, family_names, output_size
from htaf.train import Callback, evaluate, fit, seed_everything
from htaf.train.callbacks import activation_stats
from htaf.train.distributed import DistInfo, shard
from htaf.train.engine import epoch_permutation


def make(ds, **changes):
    model = {"widths": [16], **changes.pop("model", {})}
    config = RunConfig(**{"model": model, "epochs": 3, "batch_size": 64, **changes})
    seed_everything(config.seed)
    return build_model(config, ds), config


def synthetic(task: str, n: int = 240, d: int = 6, k: int = 3, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    z = X @ rng.normal(size=(d, k))
    if task == "regression":
        y = z[:, 0].astype(np.float32)
        meta = {"y_mean": 5.0, "y_std": 2.0}
    else:
        y = (z[:, 0] > 0).astype(np.int64) if task == "binary" else z.argmax(1).astype(np.int64)
        meta = {}
    a, b = n // 2, 3 * n // 4
    classes = None if task == "regression" else (2 if task == "binary" else k)
    return Dataset("syn", task, X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:],
                   [f"x{i}" for i in range(d)], None, classes, meta)  # fmt: skip


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def test_families_registry(cancer):
    assert "dhn" in family_names()
    model, _ = make(cancer)
    assert model(torch.zeros(2, cancer.n_features)).shape == (2, 1)
    assert output_size(synthetic("multiclass")) == 3
    with pytest.raises(ValueError, match="dhn"):
        build_model(RunConfig(family="nope"), cancer)


def test_evaluate_reports_both_modes_and_hard_is_binary(cancer):
    model, config = make(cancer)
    fit(model, cancer, config, progress=False)
    metrics = evaluate(model, cancer.X_test, cancer.y_test, "binary", cancer)
    for name in ("accuracy", "auroc", "logloss", "loss"):
        assert {f"{name}_hard", f"{name}_smooth"} <= set(metrics)
    assert metrics["auroc_hard"] > 0.8
    assert all(est.mode == "smooth" for est in estimators_in(model))  # modes restored
    stats, samples = activation_stats(model, cancer.X_test)
    assert set(np.unique(samples["hard"]["layer1"])) <= {0.0, 1.0}
    assert stats["hard"]["near_binary_01"] == 1.0 and stats["hard"]["entropy"] == 0.0
    assert 0 < stats["smooth"]["near_binary_05"] < 1


def test_relu_reference_hard_equals_smooth(cancer):
    model, config = make(cancer, estimator="relu")
    fit(model, cancer, config, progress=False)
    m = evaluate(model, cancer.X_val, cancer.y_val, "binary")
    assert all(m[f"{k}_hard"] == m[f"{k}_smooth"] for k in ("accuracy", "auroc", "logloss"))


def test_seeded_runs_are_bit_identical(cancer):
    results = []
    for _ in range(2):
        model, config = make(cancer, estimator="jamming", model={"dropout": 0.2}, seed=3)
        res = fit(model, cancer, config, progress=False)
        results.append((weights(model), [h["val_loss"] for h in res.history]))
    (w1, h1), (w2, h2) = results
    assert h1 == h2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    # a different seed gives a different run
    model, config = make(cancer, estimator="jamming", model={"dropout": 0.2}, seed=4)
    res = fit(model, cancer, config, progress=False)
    assert [h["val_loss"] for h in res.history] != h1


def test_history_rows(cancer):
    model, config = make(cancer, estimator="htaf", model={"widths": [16, 8]})
    res = fit(model, cancer, config, progress=False)
    assert res.epochs == len(res.history) == 3
    row = res.history[-1]
    for key in (
        "train_loss",
        "val_loss",
        "val_auroc_hard",
        "val_auroc_smooth",
        "lr",
        "epoch_time_s",
    ):
        assert math.isfinite(row[key])
    # gradient norms: one per Linear layer (head last), positive and finite
    assert set(row["grad_norm"]) == {"layer1", "layer2", "layer3"}
    assert all(0 < v < math.inf for v in row["grad_norm"].values())
    act = row["act"]
    assert set(act["smooth"]["layers"]) == {"layer1", "layer2"}
    assert act["hard"]["near_binary_05"] == 1.0
    # the last epoch's validation pass, observed again on the weights it left
    assert not res.restored_best
    again, _ = activation_stats(model, cancer.X_val, modes=("smooth",))
    for key in ("near_binary_05", "near_binary_01", "entropy", "saturation"):
        assert act["smooth"][key] == pytest.approx(again["smooth"][key])
    assert res.activation_samples["layer1"].size <= 20_000


def test_activation_stats_come_from_the_validation_passes(cancer):
    """The per-epoch activation statistics are recorded while the engine validates: no extra
    forward passes over the validation set, and the same numbers as a pass of their own."""
    model, config = make(cancer, estimator="htaf", model={"widths": [16, 8]}, epochs=2)
    n_val = len(cancer.X_val)
    rows = []
    model.register_forward_hook(lambda m, i, o: rows.append(len(i[0])))
    res = fit(model, cancer, config, progress=False)
    n_train = len(cancer.X_train)
    per_epoch = n_train + 2 * n_val  # training, then one validation pass per forward mode
    assert sum(rows) == 2 * per_epoch
    stats, _ = activation_stats(model, cancer.X_val)
    for mode in ("smooth", "hard"):
        got, want = res.history[-1]["act"][mode], stats[mode]
        for key in ("near_binary_05", "near_binary_01", "entropy", "saturation"):
            assert got[key] == pytest.approx(want[key], abs=1e-12), (mode, key)


def test_a_callback_sees_every_validation_pass(cancer):
    seen = []

    class Watch(Callback):
        def observe(self, mode):
            import contextlib

            @contextlib.contextmanager
            def ctx():
                seen.append(("enter", mode))
                yield
                seen.append(("exit", mode))

            return ctx()

    model, config = make(cancer, epochs=1)
    fit(model, cancer, config, callbacks=[Watch()], progress=False)
    assert seen == [("enter", "smooth"), ("exit", "smooth"), ("enter", "hard"), ("exit", "hard")]


def test_training_uses_default_modes(cancer):
    seen = []

    class Spy(Callback):
        def on_fit_start(self, trainer):
            seen.extend(est.mode for est in estimators_in(trainer.model))

    for name, mode in (("htaf", "smooth"), ("ste", "hard"), ("atan", "hard")):
        seen.clear()
        model, config = make(cancer, estimator=name, epochs=1)
        fit(model, cancer, config, progress=False, callbacks=[Spy()])
        assert seen and set(seen) == {mode}


def test_early_stopping_restores_best(cancer):
    # A large lr makes the validation loss jump around, so early stopping triggers.
    model, config = make(cancer, estimator="ste", lr=0.5, epochs=30, patience=2)
    snapshots = {}

    class Keep(Callback):
        def on_epoch_end(self, epoch, logs):
            snapshots[epoch] = weights(model)

    res = fit(model, cancer, config, progress=False, callbacks=[Keep()])
    losses = [h["val_loss"] for h in res.history]
    best = int(np.argmin(losses)) + 1
    assert res.stopped_early and res.epochs < 30 and res.epochs == best + 2
    assert res.best_epoch == best and res.restored_best
    final = weights(model)
    assert all(torch.equal(final[k], snapshots[best][k]) for k in final)
    m = evaluate(model, cancer.X_val, cancer.y_val, "binary", cancer)
    assert m["loss_hard"] == pytest.approx(losses[best - 1], abs=1e-6)


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_estimator_schedule_moves_parameter(cancer, unit):
    sched = {
        "param": "alpha1",
        "kind": "linear",
        "start": 4.0,
        "end": 12.0,
        "steps": 2,
        "unit": unit,
    }
    model, config = make(cancer, estimator="htaf", estimator_schedule=sched)
    res = fit(model, cancer, config, progress=False)
    values = [h["estimator_params"]["alpha1"] for h in res.history]
    if unit == "epoch":
        assert values == [4.0, 8.0, 12.0]
    else:  # two steps reach the end already
        assert values == [12.0, 12.0, 12.0]
    assert all(est.alpha1 == 12.0 for est in estimators_in(model))


def test_tanh_continuation_gets_hashnet_per_step(cancer):
    model, config = make(cancer, estimator="tanh_continuation", epochs=2)
    res = fit(model, cancer, config, progress=False)
    steps = 2 * math.ceil(len(cancer.y_train) / config.batch_size)
    beta = res.history[-1]["estimator_params"]["beta"]
    assert beta == pytest.approx((1 + 0.005 * steps) ** 0.5)
    # {} switches the default schedule off
    model, config = make(cancer, estimator="tanh_continuation", epochs=1, estimator_schedule={})
    assert fit(model, cancer, config, progress=False).history[-1]["estimator_params"]["beta"] == 1.0


def test_bad_schedule_is_a_config_error(cancer):
    model, config = make(cancer, estimator_schedule={"param": "nope", "kind": "linear"})
    with pytest.raises(ConfigError, match="estimator_schedule"):
        fit(model, cancer, config, progress=False)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("cosine", [1.0, 0.75, 0.25]), ("step", [1.0, 1.0, 0.1, 0.01]), ("none", [1.0, 1.0, 1.0])],
)
def test_lr_schedules(cancer, schedule, expected):
    model, config = make(cancer, lr_schedule=schedule, epochs=len(expected), estimator="ste")
    res = fit(model, cancer, config, progress=False)
    got = [h["lr"] / config.lr for h in res.history]
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_other_tasks(task):
    ds = synthetic(task)
    model, config = make(
        ds, optimizer="sgd", lr=0.05, lr_schedule="plateau", model={"batch_norm": True}
    )
    res = fit(model, ds, config, progress=False)
    assert math.isfinite(res.history[-1]["train_loss"])
    m = evaluate(model, ds.X_test, ds.y_test, task, ds)
    if task == "regression":
        assert {"rmse_hard", "mae_smooth", "r2_hard"} <= set(m)
        baseline = np.sqrt(np.mean((ds.y_test * 2.0 + 5.0 - 5.0) ** 2))  # predict the mean
        assert m["rmse_smooth"] < 1.2 * baseline
    else:
        assert m["accuracy_smooth"] > 1 / 3


def test_no_validation_split():
    ds = synthetic("binary")
    empty = ds.X_val[:0]
    ds = Dataset("s", "binary", ds.X_train, ds.y_train, empty, ds.y_val[:0], ds.X_test,
                 ds.y_test, ds.feature_names, None, 2, {})  # fmt: skip
    model, config = make(ds)
    res = fit(model, ds, config, progress=False)
    assert math.isnan(res.history[-1]["val_loss"])
    with pytest.raises(ConfigError, match="patience"):
        fit(model, ds, config.replace(patience=2), progress=False)


def test_epoch_permutation_and_shards():
    assert torch.equal(epoch_permutation(50, 1, 3), epoch_permutation(50, 1, 3))
    assert not torch.equal(epoch_permutation(50, 1, 3), epoch_permutation(50, 1, 4))
    perm = epoch_permutation(11, 0, 0)
    parts = [shard(perm, DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]  # padded to 12
    assert set(torch.cat(parts).tolist()) == set(range(11))


@pytest.mark.parametrize(("estimator", "builds"), [("htaf", True), ("ste", True), ("relu", False)])
def test_kernels_are_built_before_the_timed_epochs(cancer, monkeypatch, estimator, builds):
    """A machine's first estimator call compiles the native operators (~15 s); that must not
    count as training time, so fit builds them up front, and only for models with estimators."""
    from htaf import _native

    calls = []
    monkeypatch.setattr(_native, "available", lambda: calls.append("built") or False)
    model, config = make(cancer, estimator=estimator, epochs=1)
    fit(model, cancer, config, progress=False)
    assert calls == (["built"] if builds else [])
