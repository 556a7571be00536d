"""run_one's folder and record, and ``htaf train`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

import htaf
from htaf.cli import main
from htaf.config import RunConfig
from htaf.train import read_config, run_one
from htaf.train.run_folder import MODEL_ARRAYS, RUN_FILES

TOML = """
dataset = "breast_cancer"
estimator = "htaf"
epochs = 5
batch_size = 64

[model]
widths = [16]
"""


def test_run_one_folder_and_record(tmp_path):
    config = RunConfig(model={"widths": [16, 8]}, epochs=2, estimator="htaf")
    record = run_one(config, tmp_path / "run")
    run_dir = tmp_path / "run"
    # every file but the model's own arrays (a DHN has no eval_arrays)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(set(RUN_FILES) - {MODEL_ARRAYS})
    assert set(record) == {"config", "metrics", "history", "run_dir", "dataset_meta"}
    assert record["config"] == config.to_dict() and record["run_dir"] == str(run_dir)
    m = record["metrics"]
    run = htaf.load_run(run_dir)
    data = run.dataset()
    for mode in ("hard", "smooth"):  # the numbers, recomputed from the saved model's outputs
        model = run.model(hard=mode == "hard")
        for split in ("train", "val", "test"):
            x = torch.as_tensor(getattr(data, f"X_{split}"), dtype=torch.float32)
            y = np.asarray(getattr(data, f"y_{split}"))
            with torch.no_grad():
                p = torch.sigmoid(model(x)[:, 0]).double().numpy()
            assert m[f"{split}_accuracy_{mode}"] == pytest.approx(((p >= 0.5) == y).mean())
            assert m[f"{split}_auroc_{mode}"] == pytest.approx(roc_auc_score(y, p))
            assert m[f"{split}_logloss_{mode}"] == pytest.approx(log_loss(y, p), rel=1e-4)
    assert m["near_binary_05_hard"] == 1.0 and m["entropy_hard"] == 0.0
    # the whole test split is small enough to be the stored sample; the metric is a layer mean
    layers = [v for k, v in run.activations().items() if k.endswith("_smooth")]
    assert sum(v.size for v in layers) == len(data.y_test) * (16 + 8)
    near = [np.mean(np.minimum(np.abs(v), np.abs(v - 1)) <= 0.05) for v in layers]
    assert m["near_binary_05"] == pytest.approx(np.mean(near))
    assert m["train_time_s"] > 0 and m["epochs_run"] == 2
    # files agree with the record; the config round-trips
    assert json.loads((run_dir / "metrics.json").read_text()) == m
    assert read_config(run_dir) == config
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["versions"]["torch"] == torch.__version__
    assert saved["dataset_meta"]["split_sizes"]["test"] == 114
    assert htaf.load_run(run_dir).record() == record
    with np.load(run_dir / "activations.npz") as npz:
        assert set(npz.files) == {"layer1_smooth", "layer1_hard", "layer2_smooth", "layer2_hard"}
        assert set(np.unique(npz["layer2_hard"])) <= {0.0, 1.0}


def test_run_one_regression_and_relu(tmp_path):
    config = RunConfig(dataset="diabetes", model={"widths": [8]}, epochs=2, estimator="relu")
    m = run_one(config, tmp_path)["metrics"]
    assert m["test_rmse_hard"] == m["test_rmse_smooth"] > 10  # original units, not standardised
    assert {"val_mae_hard", "train_r2_smooth"} <= set(m)


def write_toml(tmp_path, extra=""):
    path = tmp_path / "run.toml"
    path.write_text(TOML + extra)
    return path


def test_cli_train_end_to_end(tmp_path, capsys):
    toml = write_toml(tmp_path)
    out = tmp_path / "out"
    code = main(["train", "--config", str(toml), "--set", "epochs=2", "--out", str(out),
                 "--set", "model.widths=[8]", "--no-progress"])  # fmt: skip
    assert code == 0
    assert json.loads((out / "config.json").read_text())["model_options"]["widths"] == [8]
    text = capsys.readouterr().out
    assert "hard (step)" in text and "smooth" in text and "auroc" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and math.isfinite(metrics["test_auroc_hard"])
    # a second fresh run into the same folder is refused; --resume finishes instantly
    assert main(["train", "--config", str(toml), "--out", str(out), "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--config", str(toml), "--set", "epochs=2", "--out", str(out),
                 "--set", "model.widths=[8]", "--resume", "--no-progress"]) == 0  # fmt: skip


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("bogus_key=1", "bogus_key"),
        ("estimator='htfa'", "htfa"),
        ("dataset='no_such_data'", "no_such_data"),
        ("lr=-1", "lr"),
        ("family='cnn'", "cnn"),
        ("task='cnn'", "cnn"),
        ("estimator_params={beta=3}", "beta"),
        ("model.depth=3", "'model.depth'"),
        ("model.widths=[0]", "'model.widths' must be positive"),
        ("model.dropout='high'", "'model.dropout' of family 'dhn' must be a number"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, override, named):
    toml = write_toml(tmp_path)
    out = tmp_path / "out"
    code = main(["train", "--config", str(toml), "--set", override, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("htaf train: error:") and named in err
    assert not out.exists()


def test_cli_train_into_a_file_exits_2(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("")
    assert main(["train", "--config", str(write_toml(tmp_path)), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("htaf train: error: ")
