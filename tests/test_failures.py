"""Runs that fail after their input was accepted: a clear error and exit status 1, not 2."""

import pytest

from htaf.cli import main
from htaf.config import RunConfig
from htaf.train import TrainingDiverged, run_one


def test_diverged_training_raises_a_named_error(tmp_path):
    cfg = RunConfig(estimator="relu", model={"widths": [8]}, epochs=2, lr=1e30)
    with pytest.raises(TrainingDiverged, match=r"epoch 1.*lower the learning rate"):
        run_one(cfg, tmp_path / "run")


def test_cli_reports_divergence_with_exit_1(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('estimator = "relu"\nepochs = 2\nlr = 1e30\n[model]\nwidths = [8]\n')
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 1
    assert capsys.readouterr().err.startswith("htaf train: error: training diverged")


def test_resume_without_checkpoint_clears_stale_files(tmp_path):
    # resume=True with no checkpoint is a fresh run: a previous run's files must not survive it.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"test_auroc_hard": 1.0}')
    cfg = RunConfig(estimator="relu", model={"widths": [8]}, epochs=2, lr=1e30)
    with pytest.raises(TrainingDiverged):
        run_one(cfg, run_dir, resume=True)
    assert not (run_dir / "metrics.json").exists()
