"""``--track mlflow``: what MLflow's client reads back from a temporary store is what the runs
recorded; one MLflow experiment per htaf experiment, one MLflow run per htaf run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import htaf
from htaf.config import RunConfig

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient


def by_name(client: MlflowClient, experiment_id: str) -> dict:
    return {r.info.run_name: r for r in client.search_runs([experiment_id])}


@pytest.mark.slow
def test_compare_in_a_process_pool_logs_one_run_per_cell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts a user store's artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    exp = htaf.compare(estimators=["htaf", "relu"], seeds=2, epochs=2, model={"widths": [8]},
                       out=tmp_path / "out", jobs=2, progress=False, track="mlflow")  # fmt: skip
    assert exp.spec["track"] == {"kind": "mlflow", "uri": uri}
    assert not (tmp_path / "out" / "mlflow.db").exists()  # the URI from the environment won
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(exp.id)
    runs = by_name(client, experiment.experiment_id)
    cells = [f"breast_cancer/{e}/seed{s}" for e in ("htaf", "relu") for s in (0, 1)]
    assert sorted(runs) == sorted([*cells, "summary"])
    for record in exp.records:
        cfg = record["config"]
        run = runs[f"breast_cancer/{cfg['estimator']}/seed{cfg['seed']}"]
        assert run.info.status == "FINISHED"
        assert run.data.params["model.widths"] == "[8]" and run.data.params["lr"] == "0.0003"
        assert run.data.tags["htaf.estimator"] == cfg["estimator"]
        for key in ("val_auroc_hard", "grad_norm/layer1", "act/smooth/saturation"):
            logged = client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in logged] == [1, 2]
            keys = key.split("/")
            assert [m.value for m in logged] == [_get(row, keys) for row in record["history"]]
        metrics = json.loads((Path(record["run_dir"]) / "metrics.json").read_text())
        assert run.data.metrics["final/test_auroc_hard"] == metrics["test_auroc_hard"]
        assert run.data.metrics["final/test_accuracy_smooth"] == metrics["test_accuracy_smooth"]
    summary = runs["summary"]
    mean = exp.summary.loc[("dhn", "breast_cancer", "relu"), ("test_auroc_hard", "mean")]
    assert summary.data.metrics["relu/test_auroc_hard"] == pytest.approx(mean, rel=1e-12)
    files = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"report.html", "report.md", "plots"} <= files
    plots = {a.path for a in client.list_artifacts(summary.info.run_id, "plots")}
    assert "plots/learning_curves.png" in plots


def _get(row: dict, keys: list[str]) -> float:
    for key in keys:
        row = row[key]
    return row


@pytest.mark.slow
def test_train_one_uses_a_local_store_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = RunConfig(epochs=2, model={"widths": [8]}, lr=3e-3)
    run = htaf.train_one(config, tmp_path / "one", progress=False, track="mlflow")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # beside the run folder
    (logged,) = client.search_runs([client.get_experiment_by_name("htaf-train").experiment_id])
    assert logged.info.run_name == "one" and logged.info.status == "FINISHED"
    history = client.get_metric_history(logged.info.run_id, "train_loss")
    assert [m.value for m in history] == list(run.history["train_loss"])
    assert logged.data.metrics["final/test_auroc_hard"] == run.metrics["test_auroc_hard"]
    plots = {a.path for a in client.list_artifacts(logged.info.run_id, "plots")}
    assert {"plots/learning_curves.png", "plots/gradient_norms.png"} <= plots
    # The artifacts sit beside the store, not in the working directory.
    assert list((tmp_path / "mlartifacts").rglob("learning_curves.png"))


@pytest.mark.slow
def test_a_file_store_from_the_environment_and_a_failed_run(tmp_path, monkeypatch):
    """Any tracking URI works, e.g. MLflow's ``file:`` store (which MLflow 3 only opens when
    ``MLFLOW_ALLOW_FILE_STORE`` is set); a run that fails is marked FAILED."""
    from htaf.train.engine import Trainer, TrainingDiverged

    monkeypatch.chdir(tmp_path)
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setattr(Trainer, "_train_epoch", lambda *args: float("nan"))
    with pytest.raises(TrainingDiverged):
        htaf.train_one({"epochs": 2}, tmp_path / "one", progress=False, track="mlflow")
    client = MlflowClient(uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("htaf-train").experiment_id])
    assert logged.info.status == "FAILED"


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"family": "bnn", "dataset": "digits", "model": {"arch": "nope"}}, "arch"),
        ({"dataset": "heloc", "data_dir": "missing-folder"}, "missing-folder"),
        ({"family": "convex", "epochs": 3}, "closed-form"),
    ],
)  # fmt: skip
def test_bad_input_opens_no_mlflow_store(tmp_path, monkeypatch, capsys, config, error):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ValueError, match=error):
        htaf.train_one(config, "runs/one", progress=False, track="mlflow")
    assert list(tmp_path.rglob("*")) == []  # no mlflow.db, no mlartifacts, no run folder
    from htaf.cli import main

    top = [f"{k} = {json.dumps(v)}" for k, v in config.items() if k != "model"]
    model = [f"{k} = {json.dumps(v)}" for k, v in config.get("model", {}).items()]
    (tmp_path / "c.toml").write_text("\n".join([*top, "[model]", *model]) + "\n")
    args = ["train", "--config", "c.toml", "--out", "runs/one", "--track", "mlflow"]
    assert main([*args, "--no-progress"]) == 2
    assert error in capsys.readouterr().err
    assert list(tmp_path.rglob("*")) == [tmp_path / "c.toml"]
