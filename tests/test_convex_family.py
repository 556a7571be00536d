"""The convex family in the engine: solved by run_one, saved, loaded, compared; bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from htaf.cli import main
from htaf.config import RunConfig
from htaf.estimators import harden
from htaf.families import build_model, get_family, model_options
from htaf.families.convex.network import fit_network, targets_for
from htaf.train import load_safetensors, run_one
from htaf.train.run_folder import load_dataset


@pytest.mark.parametrize("model", [{"directions": 600}, {"variant": "deep", "width": 200}])
def test_run_one_solves_saves_and_loads(tmp_path, model):
    config = RunConfig(family="convex", dataset="breast_cancer", epochs=1, model=model, seed=1)
    record = run_one(config, tmp_path / "run", progress=False)
    m = record["metrics"]
    assert m["solver_optimal"] is True and m["solver_gap"] >= 0
    assert m["solver_relative_gap"] <= 1e-6 and m["solver_units"] >= 1
    assert m["train_accuracy_hard"] >= 0.97 and m["test_accuracy_hard"] >= 0.9
    assert record["history"][0]["solver"]["objective"] == m["solver_objective"]

    # a fresh build loads the saved weights, whatever width the solve chose
    dataset = load_dataset(config)
    torch.manual_seed(123)
    fresh = build_model(config, dataset)
    load_safetensors(fresh, tmp_path / "run" / "model.safetensors")
    x_test = torch.as_tensor(dataset.X_test, dtype=torch.float32)
    with torch.no_grad(), harden(fresh):
        logits = fresh(x_test).numpy().reshape(-1)
    accuracy = np.mean((logits >= 0) == (dataset.y_test == 1))
    assert accuracy == pytest.approx(m["test_accuracy_hard"])

    # the saved network equals the convex model solved independently (same seed, float64)
    options = model_options("convex", model)
    net = fit_network(
        dataset.X_train, targets_for(dataset.y_train, "binary"), options, int(fresh.seed)
    )
    np.testing.assert_allclose(logits, net.predict(dataset.X_test), atol=1e-4)
    assert fresh.widths == net.widths


def test_regression_targets_and_refused_tasks():
    assert np.array_equal(targets_for(np.array([0.0, 1.0, 1.0]), "binary"), [-1, 1, 1])
    assert np.array_equal(targets_for(np.array([0.5, -2.0]), "regression"), [0.5, -2.0])
    with pytest.raises(ValueError, match="multiclass"):
        targets_for(np.array([0.0, 2.0]), "multiclass")
    with pytest.raises(ValueError, match="0/1"):
        targets_for(np.array([0.0, 2.0]), "binary")
    assert get_family("convex").tasks == ("binary", "regression")


def test_compare_runs_the_family_in_the_grid(tmp_path, capsys):
    code = main(
        [
            "compare",
            "--family",
            "convex",
            "--dataset",
            "diabetes",
            "--seeds",
            "1",
            "--model",
            "directions=300",
            "--model",
            "beta=10",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    metrics = next(tmp_path.glob("compare-*/diabetes/*/seed0/metrics.json"))
    m = json.loads(metrics.read_text())
    assert m["solver_optimal"] is True and m["test_r2_hard"] > 0.1  # beta = 10: 1e-3 n overfits
    assert "report:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "beta=0"], "model.beta"),
        (["--model", "beta=-1.5"], "model.beta"),
        (["--model", "directions=0"], "model.directions"),
        (["--dataset", "digits"], "multiclass"),
        (["--model", "solver=cvxpy"], "pip install 'htaf[convex]'"),
        (["--epochs", "3"], "config key 'epochs' must be 1 for a closed-form model, got 3"),
    ],
)
def test_compare_bad_input_exit_2_nothing_written(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # as if CVXPY were not installed
    out = tmp_path / "out"
    code = main(["compare", "--family", "convex", "--seeds", "1", "--out", str(out), *args])
    assert code == 2 and not out.exists()
    assert message in capsys.readouterr().err
