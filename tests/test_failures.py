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


def _train(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('estimator = "htaf"\nepochs = 1\n[model]\nwidths = [4]\n')
    return main(["train", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress"])


@pytest.mark.parametrize("error", [TypeError("a bug"), KeyError("a bug"), ValueError("a bug")])
def test_a_bug_mid_run_shows_its_traceback_and_exits_1(tmp_path, capsys, monkeypatch, error):
    # Raised after config.json and the checkpoint were written: not bad input, whatever its type.
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr("htaf.train.run.final_metrics", broken)
    assert _train(tmp_path) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "in broken" in err and type(error).__name__ in err
    assert (tmp_path / "o" / "config.json").is_file()  # it did fail after writing


def test_a_bug_before_the_run_is_not_bad_input_either(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr("htaf.api.default_out", broken)
    config = tmp_path / "run.toml"
    config.write_text('estimator = "htaf"\nepochs = 1\n[model]\nwidths = [4]\n')
    assert main(["train", "--config", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "htaf train: internal error: TypeError: a bug" in err


def test_bad_input_still_exits_2_without_a_traceback(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('estimator = "no_such_estimator"\nepochs = 1\n')
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no_such_estimator" in err
    assert not (tmp_path / "o").exists()


def test_a_failed_grid_cell_that_is_a_bug_shows_its_traceback(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr("htaf.train.run.final_metrics", broken)
    code = main(["compare", "--estimators", "htaf", "--seeds", "1", "--epochs", "1",
                 "--widths", "4", "--out", str(tmp_path), "--no-progress"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'a bug'" in err and "failed" in err


UNGUARDED = """
import htaf
htaf.compare(out={out!r}, estimators=["htaf", "ste"], epochs=1, jobs=2, progress=False)
"""


def test_a_script_without_main_guard_gets_told_and_leaves_nothing(tmp_path):
    # jobs > 1 spawns workers that import the script again; without the guard each worker
    # would start a grid of its own. Nothing may be left that looks like an experiment.
    import subprocess
    import sys

    out = tmp_path / "runs"
    script = tmp_path / "script.py"
    script.write_text(UNGUARDED.format(out=str(out)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("htaf.experiment.WorkersDied"), proc.stderr[-2000:]
    assert 'if __name__ == "__main__":' in last
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))


def test_a_failed_grid_that_finished_runs_is_kept_for_resume(tmp_path, monkeypatch):
    import htaf
    from htaf import experiment
    from htaf.store import ResultStore

    real = experiment._run_cell
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "_run_cell", second_fails)
    with pytest.raises(experiment.GridRunError):
        htaf.compare(out=tmp_path, estimators=["htaf", "ste"], epochs=1, progress=False)
    (exp,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (exp / "config.json").is_file()
    assert [e["id"] for e in ResultStore(tmp_path / "results.sqlite").experiments()] == [exp.name]


def test_a_grid_that_fails_before_any_run_finishes_removes_its_experiment(tmp_path, monkeypatch):
    import htaf
    from htaf import experiment
    from htaf.store import ResultStore

    (tmp_path / "keep.txt").write_text("the user's own file")
    ResultStore(tmp_path / "results.sqlite").start_experiment("earlier", command="x")

    def fails(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(experiment, "_run_cell", fails)
    with pytest.raises(experiment.GridRunError):
        htaf.compare(out=tmp_path, estimators=["htaf"], epochs=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "results.sqlite"]
    assert [e["id"] for e in ResultStore(tmp_path / "results.sqlite").experiments()] == ["earlier"]
