"""``htaf.load_run``: one reader of a run folder, for every family."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import htaf
from htaf.config import ConfigError, RunConfig
from htaf.estimators import estimators_in
from htaf.train import evaluate, run_one
from htaf.train.run_folder import CONFIG, METRICS, WEIGHTS

CONFIGS = {
    "dhn": RunConfig(model={"widths": [8, 6]}, epochs=2, estimator="htaf"),
    # latency coding: a deterministic encoder, so a reloaded model sees the same spikes
    "snn": RunConfig(
        family="snn",
        dataset="digits_images",
        epochs=1,
        batch_size=128,
        model={"widths": [16], "T": 3, "encoder": "latency"},
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {name: (out / name, run_one(cfg, out / name)) for name, cfg in CONFIGS.items()}


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_the_run_is_the_record_run_one_returned(runs, family):
    path, record = runs[family]
    run = htaf.load_run(path)
    assert run.config == CONFIGS[family]
    assert run.record() == record
    assert (
        run.saved_config["model_options"]
        == json.loads((path / CONFIG).read_text())["model_options"]
    )
    assert list(run.history["epoch"]) == list(range(1, CONFIGS[family].epochs + 1))
    hard = {k: v for k, v in run.activations().items() if k.endswith("_hard")}
    assert hard and all(set(np.unique(v)) <= {0.0, 1.0} for v in hard.values())
    assert run.table.loc[("test", "accuracy"), "hard"] == run.metrics["test_accuracy_hard"]


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_the_hard_model_reproduces_the_recorded_binary_metrics(runs, family):
    run = htaf.load_run(runs[family][0])
    data = run.dataset()
    model = run.model(hard=True)
    assert not model.training
    assert {e.mode for e in estimators_in(model)} == {"hard"}
    got = evaluate(model, data.X_test, data.y_test, data.task, data, modes=("hard",))
    for key in ("accuracy_hard", "auroc_hard", "logloss_hard"):
        assert got[key] == pytest.approx(run.metrics[f"test_{key}"], rel=1e-6, abs=1e-9)
    smooth = run.model(hard=False)
    assert {e.mode for e in estimators_in(smooth)} == {"smooth"}
    got = evaluate(smooth, data.X_test, data.y_test, data.task, data, modes=("smooth",))
    assert got["logloss_smooth"] == pytest.approx(run.metrics["test_logloss_smooth"], rel=1e-6)


def test_the_hard_model_emits_exact_binary_activations(runs):
    run = htaf.load_run(runs["dhn"][0])
    model, data = run.model(), run.dataset()
    seen = []
    hooks = [e.register_forward_hook(lambda m, i, o: seen.append(o)) for e in estimators_in(model)]
    with torch.no_grad():
        model(torch.as_tensor(data.X_test, dtype=torch.float32))
    for h in hooks:
        h.remove()
    assert len(seen) == 2 and all(set(torch.unique(o).tolist()) <= {0.0, 1.0} for o in seen)


def test_each_load_parses_the_data_once_and_rebuilds_a_fresh_model(runs):
    run = htaf.load_run(runs["dhn"][0])
    assert run.dataset() is run.dataset() and run.dataset(raw=True) is run.dataset(raw=True)
    a, b = run.model(), run.model()
    assert a is not b
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_missing_files_are_named(runs, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        htaf.load_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=f"no {CONFIG}"):
        htaf.load_run(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(runs["dhn"][0], copy)
    (copy / WEIGHTS).unlink()
    run = htaf.load_run(copy)  # the numbers are there; the model is not
    with pytest.raises(FileNotFoundError, match=f"{WEIGHTS} does not exist"):
        run.model()
    (copy / METRICS).unlink()
    with pytest.raises(FileNotFoundError, match=f"{METRICS} does not exist"):
        htaf.load_run(copy)


def test_an_experiment_folder_points_to_its_runs(tmp_path):
    (tmp_path / "exp" / "d" / "e" / "seed0").mkdir(parents=True)
    (tmp_path / "exp" / "d" / "e" / "seed0" / CONFIG).write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"give one of its runs, e\.g\. .*seed0"):
        htaf.load_run(tmp_path / "exp")


def test_bad_files_are_config_errors(runs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(runs["dhn"][0], copy)
    (copy / METRICS).write_text("[1, 2]")
    with pytest.raises(ConfigError, match=f"{METRICS}.*not a JSON object"):
        htaf.load_run(copy)
    (copy / CONFIG).write_text("{not json")
    with pytest.raises(ConfigError, match=f"{CONFIG} is not valid JSON"):
        htaf.load_run(copy)
    (copy / CONFIG).write_text("[]")
    with pytest.raises(ConfigError, match=f"{CONFIG} is not a run config"):
        htaf.load_run(copy)
    with pytest.raises(TypeError, match="folder path"):
        htaf.load_run(42)


def test_weights_of_another_model_are_refused(runs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(runs["dhn"][0], copy)
    saved = json.loads((copy / CONFIG).read_text())
    saved["model"] = {"widths": [5]}
    (copy / CONFIG).write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=f"{WEIGHTS} does not match the model its {CONFIG}"):
        htaf.load_run(copy).model()


def test_model_arrays_come_back_from_a_spiking_run(runs):
    arrays = htaf.load_run(runs["snn"][0]).model_arrays()
    spikes = [v for k, v in arrays.items() if k.startswith("spikes.")]
    assert spikes and all(set(np.unique(s)) <= {0.0, 1.0} for s in spikes)
    assert all(s.shape[1] == 3 for s in spikes)  # T = 3 time steps


def test_read_arrays_names_a_pickled_or_damaged_file(tmp_path):
    import numpy as np

    from htaf.config import ConfigError
    from htaf.train.run_folder import read_arrays

    np.savez(tmp_path / "pickled.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ConfigError, match=r"pickled\.npz is not a readable npz"):
        read_arrays(tmp_path / "pickled.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "pickled.npz").read_bytes()[:50])
    with pytest.raises(ConfigError, match=r"cut\.npz is not a readable npz"):
        read_arrays(tmp_path / "cut.npz")
