"""htaf from Python: ``htaf.compare``, ``load_experiment``, ``runs``, ``train_one``, the studies.

The commands are thin wrappers over these functions, so the same settings must give the same
results either way (``test_python_and_cli_give_identical_summaries``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import htaf
from htaf.cli import main
from htaf.config import RunConfig
from htaf.experiment import model_metrics

SETTINGS = {"estimators": ["htaf", "relu"], "seeds": 2, "epochs": 2, "model": {"widths": [8]}}
CLI = ["--estimators", "htaf,relu", "--seeds", "2", "--epochs", "2", "--widths", "8",
       "--no-progress"]  # fmt: skip


def only_experiment(out: Path) -> Path:
    (exp_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return exp_dir


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One tiny experiment run from Python, shared by the tests that read it."""
    out = tmp_path_factory.mktemp("api") / "runs"
    return htaf.compare(**SETTINGS, out=out, progress=False)


@pytest.mark.slow
def test_python_and_cli_give_identical_summaries(experiment, tmp_path):
    assert main(["compare", *CLI, "--out", str(tmp_path / "cli")]) == 0
    cli_dir = only_experiment(tmp_path / "cli")
    cli_rows = json.loads((cli_dir / "summary.json").read_text())
    py_rows = json.loads((experiment.path / "summary.json").read_text())
    assert len(cli_rows) == len(py_rows) == 2
    for c, p in zip(cli_rows, py_rows, strict=True):
        assert (c["family"], c["dataset"], c["estimator"]) == (
            p["family"],
            p["dataset"],
            p["estimator"],
        )
        assert model_metrics(c["metrics"]) == model_metrics(p["metrics"])  # wall times differ
    cli_spec = json.loads((cli_dir / "config.json").read_text())
    assert cli_spec["base"] == experiment.spec["base"]  # the same defaults filled in
    assert cli_spec["command"].startswith("htaf compare ")
    assert experiment.spec["command"].startswith("htaf.compare(")
    # The DataFrames agree as well: load_experiment reads what the command wrote.
    timed = [c for c in experiment.summary.columns if c[0].endswith("_s")]
    pd.testing.assert_frame_equal(
        htaf.load_experiment(cli_dir).summary.drop(columns=timed),
        experiment.summary.drop(columns=timed),
    )


def test_summary_frame_matches_the_runs(experiment):
    summary, runs = experiment.summary, experiment.runs
    assert summary.index.names == ["family", "dataset", "estimator"]
    assert list(summary.index.get_level_values("estimator")) == ["htaf", "relu"]
    assert summary.columns.names == ["metric", "stat"]
    assert len(runs) == 4 and list(runs.columns[:5]) == [
        "family", "dataset", "estimator", "seed", "run_dir"
    ]  # fmt: skip
    # An independent computation: pandas' own mean and sample std over the seeds.
    by = runs.groupby("estimator")["test_auroc_hard"]
    for est in ("htaf", "relu"):
        row = summary.xs(est, level="estimator").iloc[0]
        assert row[("test_auroc_hard", "mean")] == pytest.approx(by.mean()[est], rel=1e-12)
        assert row[("test_auroc_hard", "std")] == pytest.approx(by.std(ddof=1)[est], rel=1e-12)
        assert row[("test_auroc_hard", "n")] == 2
    for _, run in runs.iterrows():  # every run's metrics are its metrics.json
        saved = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
        assert run["test_accuracy_smooth"] == saved["test_accuracy_smooth"]


def test_history_report_plots_and_repr(experiment):
    history = experiment.history
    assert len(history) == 2 * 2 * 2  # estimators × seeds × epochs
    assert sorted(history["epoch"].unique()) == [1, 2]
    assert (history["grad_norm/layer1"] > 0).all()
    assert {"val_auroc_hard", "val_auroc_smooth", "act/smooth/near_binary_05"} <= set(history)
    assert experiment.report["html"].is_file() and experiment.report["markdown"].is_file()
    assert {p.stem for p in experiment.plots} >= {"learning_curves", "gradient_norms"}
    assert all(p.suffix == ".png" and p.is_file() for p in experiment.plots)
    assert "4/4 runs finished" in repr(experiment) and experiment.finished
    assert "<table>" in experiment._repr_html_()


def test_runs_reads_the_store_as_a_dataframe(experiment):
    out = experiment.path.parent
    relu = htaf.runs(out, estimator="relu")
    assert list(relu["estimator"]) == ["relu", "relu"] and list(relu["seed"]) == [0, 1]
    assert set(relu["experiment_id"]) == {experiment.id}
    for _, run in relu.iterrows():
        saved = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
        assert run["test_auroc_hard"] == saved["test_auroc_hard"]
    assert len(htaf.runs(out, experiment=experiment.id)) == 4
    assert list(htaf.runs(out, seed=0)["estimator"]) == ["htaf", "relu"]
    assert len(htaf.runs(out, estimator="relu", seed=[0, 1], status="done")) == 2
    assert len(htaf.runs(out, family="dhn")) == len(htaf.runs(out, task="dhn")) == 4
    assert htaf.runs(out, estimator="relu", experiment_id=experiment.id).equals(relu)
    with pytest.raises(ValueError, match=r"dataset='nope' \(the store's dataset values: '"):
        htaf.runs(out, dataset="nope")
    with pytest.raises(ValueError, match=r"no run .* has estimator='sigmoid'.*'htaf', 'relu'"):
        htaf.runs(out, estimator=["relu", "sigmoid"])
    with pytest.raises(ValueError, match=r"unknown filter 'colour'.*seed"):
        htaf.runs(out, colour="red")


def test_runs_without_a_store_names_it(tmp_path):
    with pytest.raises(ValueError, match=f"no results store at {tmp_path}"):
        htaf.runs(tmp_path)


@pytest.mark.slow
def test_resume_finishes_an_interrupted_experiment(experiment, tmp_path):
    import shutil

    exp_dir = tmp_path / experiment.id
    shutil.copytree(experiment.path, exp_dir)
    # As if killed after its last epoch was checkpointed, before the run's metrics were written.
    (exp_dir / "breast_cancer" / "relu" / "seed1" / "metrics.json").unlink()
    (exp_dir / "summary.json").unlink()
    loaded = htaf.load_experiment(exp_dir)
    assert not loaded.finished and "3/4 runs finished" in repr(loaded)
    done = loaded.resume(progress=False)
    assert done.finished and (exp_dir / "summary.json").is_file()
    timed = [c for c in done.summary.columns if c[0].endswith("_s")]
    pd.testing.assert_frame_equal(
        done.summary.drop(columns=timed), experiment.summary.drop(columns=timed)
    )


def test_load_experiment_bad_paths_name_the_path(experiment, tmp_path, capsys):
    missing = tmp_path / "nope"
    with pytest.raises(ValueError, match=f"{missing} holds no experiment: no such folder"):
        htaf.load_experiment(missing)
    with pytest.raises(ValueError, match=f"{tmp_path} holds no experiment: no config.json"):
        htaf.load_experiment(tmp_path)
    # The results folder itself: the error lists the experiments inside it.
    with pytest.raises(ValueError, match=experiment.id):
        htaf.load_experiment(experiment.path.parent)
    (tmp_path / "config.json").write_text('{"base": {}}')
    with pytest.raises(ValueError, match="not an experiment config: no 'datasets'"):
        htaf.load_experiment(tmp_path)
    with pytest.raises(TypeError, match="folder path"):
        htaf.load_experiment(123)
    assert main(["compare", "--resume", str(missing), "--no-progress"]) == 2
    assert f"{missing} holds no experiment" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epoch": 3}, TypeError, "unknown option 'epoch'"),
        ({"seed": 3}, TypeError, "'seed'"),
        ({"seeds": 0}, ValueError, "seeds must be >= 1"),
        ({"seeds": [1, 1]}, ValueError, "seed listed twice"),
        ({"seeds": "3"}, TypeError, "seeds must be a count"),
        ({"estimators": ["htaf", "htaf"]}, ValueError, "estimator listed twice"),
        ({"estimators": "htaf,nope"}, ValueError, "unknown estimator 'nope'"),
        ({"family": "nope"}, ValueError, "unknown model family"),
        ({"task": "nope"}, ValueError, "unknown model family"),
        ({"family": "dhn", "task": "snn"}, ValueError, "family='dhn' and task='snn'"),
        ({"model": [8]}, TypeError, "model must be a table"),
        ({"track": "wandb"}, ValueError, "unknown tracker 'wandb'"),
        ({"jobs": 0}, ValueError, "jobs"),
        ({"lr": -1.0}, ValueError, "'lr'"),
    ],
)
def test_compare_bad_input_raises_before_writing(tmp_path, kwargs, error, message):
    out = tmp_path / "out"
    with pytest.raises(error, match=message):
        htaf.compare(**{**SETTINGS, **kwargs}, out=out, progress=False)
    assert not out.exists()


def test_compare_grid_fills_family_defaults_then_arguments():
    from htaf.api import compare_grid
    from htaf.families import get_family

    family = get_family("dhn")
    grid = compare_grid()
    assert list(grid.estimators) == list(family.estimators) and list(grid.seeds) == [0, 1, 2, 3, 4]
    assert grid.base.lr == family.compare["lr"] and grid.base.epochs == family.compare["epochs"]
    grid = compare_grid(dataset=["wine", "digits"], estimators="htaf(2,11),ste", seeds=[7],
                        lr=0.01, epochs=None, weight_decay=1e-4)  # fmt: skip
    assert list(grid.datasets) == ["wine", "digits"] and list(grid.seeds) == [7]
    assert list(grid.estimators) == ["htaf(2,11)", "ste"]
    assert (grid.base.lr, grid.base.epochs, grid.base.weight_decay) == (0.01, 30, 1e-4)


def test_compare_grid_gives_the_familys_data_options_to_its_own_dataset_only():
    from htaf.api import compare_grid
    from htaf.families import get_family

    family = get_family("icbm")
    own = dict(family.compare["data_options"])
    assert "difficulty" in own  # the ICBM default is a shapes difficulty level
    assert compare_grid("icbm").base.data_options == own
    # the call's options win key by key; the family's stay where the call says nothing
    grid = compare_grid("icbm", data_options={"difficulty": 0, "n": 400})
    assert grid.base.data_options == {**own, "difficulty": 0, "n": 400}
    # another dataset gets none of them (cub200 has no difficulty)
    assert compare_grid("icbm", dataset="digits_images").base.data_options == {}
    assert compare_grid("dhn").base.data_options == {}


@pytest.mark.slow
def test_train_one_returns_the_run(tmp_path):
    config = RunConfig(epochs=2, model={"widths": [8]}, lr=3e-3)
    run = htaf.train_one(config, tmp_path / "one", progress=False, seed=1)
    assert run.config.seed == 1 and run.path == tmp_path / "one"
    assert run.metrics == json.loads((run.path / "metrics.json").read_text())
    assert list(run.history["epoch"]) == [1, 2] and "grad_norm/layer2" in run.history
    table = run.table
    assert list(table.columns) == ["hard", "smooth"]
    assert table.loc[("test", "auroc"), "hard"] == run.metrics["test_auroc_hard"]
    with pytest.raises(ValueError, match="already holds a run"):
        htaf.train_one(config, run.path, progress=False, seed=1)
    # A TOML file and a dict work too; overrides go on top.
    toml = tmp_path / "run.toml"
    toml.write_text('estimator = "relu"\nepochs = 1\n[model]\nwidths = [4]\n')
    again = htaf.train_one(toml, tmp_path / "two", progress=False, lr=0.01)
    assert (again.config.estimator, again.config.lr, again.config.model) == (
        "relu", 0.01, {"widths": [4]}
    )  # fmt: skip
    with pytest.raises(TypeError, match="config must be"):
        htaf.train_one(42, tmp_path / "three")
    with pytest.raises(ValueError, match="unknown config key 'epoch'"):
        htaf.train_one({"epoch": 1}, tmp_path / "three")
    assert not (tmp_path / "three").exists()


@pytest.mark.slow
def test_import_htaf_stays_cheap_and_exposes_the_api():
    code = (
        "import sys, htaf\n"
        "heavy = ['htaf.api', 'htaf.train', 'htaf.experiment', 'pandas', 'mlflow', 'tensorboard']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "import htaf.api\n"
        "print(htaf.compare is htaf.api.compare, htaf.train_one is htaf.api.train_one)\n"
        "print(callable(htaf.studies.gradient_flow), 'compare' in dir(htaf))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:3] == ["[]", "True True", "True True"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        htaf.nope  # noqa: B018


def test_studies_are_called_like_their_run(tmp_path):
    from htaf.studies import gradient_flow

    assert htaf.studies.gradient_flow is gradient_flow and callable(gradient_flow)
    with pytest.raises(ValueError, match="seeds must be an integer >= 1"):
        gradient_flow(tmp_path / "gf", seeds=0)
    assert not (tmp_path / "gf").exists()
    result = gradient_flow(tmp_path / "gf", labels=("htaf(2,11)", "relu"), epochs=1, seed=0,
                           widths=(8,), progress=False)  # fmt: skip
    assert list(result["norms"]) == ["htaf(2,11)", "relu"] and "relu" in result["ratios"]
    with pytest.raises(AttributeError):
        htaf.studies.nope  # noqa: B018


@pytest.mark.slow
def test_grids_and_epochs_share_one_progress_bar(monkeypatch, tmp_path):
    """The grid's bar and the epochs' bar both come from tqdm.auto (the notebook bar in
    Jupyter), through htaf.progress."""
    import tqdm.auto

    made = []

    class Recorder(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs.get("unit"))
            super().__init__(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    htaf.train_one(RunConfig(epochs=1, model={"widths": [4]}), tmp_path / "one")
    htaf.compare(estimators=["relu"], seeds=1, epochs=1, model={"widths": [4]}, out=tmp_path)
    assert made == ["epoch", "run"]


def test_an_experiment_with_no_finished_run_loads_empty(tmp_path):
    spec = {"base": RunConfig().to_dict(), "datasets": ["breast_cancer"], "estimators": ["htaf"],
            "seeds": [0], "command": "htaf compare"}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(spec))
    exp = htaf.load_experiment(tmp_path)
    assert exp.summary.empty and exp.runs.empty and exp.history.empty and exp.plots == []
    assert not exp.finished and "0/1 runs finished" in repr(exp)


def test_python_compare_runs_in_this_process_unless_asked(monkeypatch, tmp_path):
    from htaf import api

    # Workers are spawned: a script without a __main__ guard would die, so Python asks for them.
    seen = {}
    monkeypatch.setattr(api, "_run_experiment", lambda grid, out, **kw: seen.update(kw))
    api.compare(family="icbm", seeds=1, out=tmp_path)
    assert seen["jobs"] == 1
    api.compare(family="icbm", seeds=1, out=tmp_path, jobs=2)
    assert seen["jobs"] == 2
    assert api.family_jobs("icbm") == 2 and api.family_jobs(None) == 1


def test_the_cli_runs_the_familys_worker_count_unless_told(monkeypatch, tmp_path):
    from htaf import api

    class Stop(Exception):
        pass

    seen = []

    def compare(**kw):
        seen.append(kw["jobs"])
        raise Stop

    monkeypatch.setattr(api, "compare", compare)
    cases = [(["--family", "icbm"], 2), (["--family", "dhn"], 1), ([], 1),
             (["--task", "icbm"], 2), (["--family", "icbm", "--jobs", "1"], 1)]  # fmt: skip
    for argv, jobs in cases:
        assert main(["compare", *argv, "--seeds", "1", "--out", str(tmp_path)]) == 1  # Stop
        assert seen[-1] == jobs, argv
