"""Tracking without a tracker's package: names, bad input, what a row turns into."""

from __future__ import annotations

import pickle
import socket

import pytest

import htaf
from htaf.cli import main
from htaf.train import tracking

TINY = ["--estimators", "relu", "--seeds", "1", "--epochs", "1", "--widths", "4", "--no-progress"]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scalars_flatten_nested_rows_and_keep_finite_numbers():
    row = {"epoch": 3, "train_loss": 0.5, "grad_norm": {"layer1": 2.0},
           "act": {"smooth": {"layers": {"layer1": {"entropy": 0.25}}}},
           "val_auroc_hard": float("nan"), "note": "x", "flag": True}  # fmt: skip
    assert tracking.epoch_scalars(row) == {
        "train_loss": 0.5, "grad_norm/layer1": 2.0, "act/smooth/layers/layer1/entropy": 0.25
    }  # fmt: skip
    assert tracking.final_scalars({"test_auroc_hard": 0.9, "epochs_run": 2}) == {
        "final/test_auroc_hard": 0.9, "final/epochs_run": 2.0
    }  # fmt: skip
    assert tracking.params({"model": {"widths": [8, 4]}, "lr": 0.1, "target": None}) == {
        "model.widths": "[8, 4]", "lr": "0.1", "target": "null"
    }  # fmt: skip


def test_redact_hides_passwords_and_tokens():
    assert tracking.redact("https://me:s3cret@mlflow.example.com:5000/x") == (
        "https://me:***@mlflow.example.com:5000/x"
    )
    assert "tok" not in tracking.redact("https://tok@host/path")
    assert tracking.redact("sqlite:////tmp/m.db") == "sqlite:////tmp/m.db"


def test_tracking_spec_travels_to_worker_processes(tmp_path):
    spec = tracking.Tracking("mlflow", str(tmp_path), uri="sqlite:///x.db", experiment_id="3")
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert (
        spec.run_name(tmp_path / "breast_cancer" / "htaf" / "seed0") == "breast_cancer/htaf/seed0"
    )
    assert spec.describe() == {"kind": "mlflow", "uri": "sqlite:///x.db"}


@pytest.mark.parametrize("command", ["compare", "train"])
def test_unknown_tracker_exits_2_and_writes_nothing(tmp_path, capsys, command):
    out = tmp_path / "out"
    if command == "compare":
        args = ["compare", *TINY, "--out", str(out), "--track", "wandb"]
    else:
        (tmp_path / "run.toml").write_text("epochs = 1\n")
        args = ["train", "--config", str(tmp_path / "run.toml"), "--out", str(out),
                "--track", "wandb", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"htaf {command}: error: unknown tracker 'wandb'" in err and "tensorboard, mlflow" in err
    assert not out.exists()


def test_unknown_tracker_from_python(tmp_path):
    with pytest.raises(ValueError, match="unknown tracker 'TensorBoard'"):
        htaf.train_one({"epochs": 1}, tmp_path / "one", track="TensorBoard")
    with pytest.raises(ValueError, match="unknown tracker 42"):
        htaf.compare(estimators=["relu"], seeds=1, out=tmp_path / "out", track=42)
    assert not any(tmp_path.iterdir())


def test_a_missing_tracker_package_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name)
    )
    with pytest.raises(ValueError, match=r"pip install 'htaf\[mlflow\]'"):
        htaf.compare(estimators=["relu"], seeds=1, out=tmp_path / "out", track="mlflow")
    assert not (tmp_path / "out").exists()


def test_unreachable_mlflow_server_is_reported_before_training(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    uri = f"http://user:s3cret@127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="cannot be reached") as err:
        htaf.compare(estimators=["relu"], seeds=1, epochs=1, out=out, track="mlflow")
    assert "127.0.0.1" in str(err.value) and "s3cret" not in str(err.value)
    assert not out.exists()  # no folder, no store, no run: training never started
    assert main(["compare", *TINY, "--out", str(out), "--track", "mlflow"]) == 2
    message = capsys.readouterr().err
    assert "htaf compare: error: MLflow tracking URI http://user:***@127.0.0.1" in message
    assert not out.exists()
    (tmp_path / "run.toml").write_text("epochs = 1\n")
    train = ["train", "--config", str(tmp_path / "run.toml"), "--out", str(out), "--track",
             "mlflow"]  # fmt: skip
    assert main(train) == 2 and not out.exists()


def test_unusable_mlflow_store_is_bad_input(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the store's folder should be
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    with pytest.raises(ValueError, match="cannot be used"):
        htaf.compare(estimators=["relu"], seeds=1, epochs=1, out=tmp_path / "out", track="mlflow")
    assert not (tmp_path / "out").exists()
