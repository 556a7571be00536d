"""htaf.experiment: grids, validation, aggregation, and local process pools."""

from __future__ import annotations

import math
import statistics

import pytest

from htaf.api import split_specs
from htaf.config import RunConfig
from htaf.experiment import Grid, model_metrics, run_dir_for, safe_name, summarize, validate


def rec(estimator: str, seed: int, **metrics: float) -> dict:
    return {
        "config": {"family": "dhn", "dataset": "d", "estimator": estimator, "seed": seed},
        "metrics": metrics,
    }


def test_summarize_mean_and_sample_std():
    records = [rec("htaf", s, test_auroc_hard=v) for s, v in enumerate([0.9, 0.95, 1.0])]
    records += [rec("relu", 0, test_auroc_hard=0.8, train_time_s=2.0)]
    rows = summarize(records)
    assert [r["estimator"] for r in rows] == ["htaf", "relu"]
    assert set(rows[0]) == {"family", "dataset", "estimator", "metrics"}
    m = rows[0]["metrics"]["test_auroc_hard"]
    assert m["n"] == 3
    assert m["mean"] == pytest.approx(0.95)
    assert m["std"] == pytest.approx(statistics.stdev([0.9, 0.95, 1.0]))  # ddof = 1
    assert m["std"] == pytest.approx(0.05)
    # A single run has std 0, not NaN.
    assert rows[1]["metrics"]["test_auroc_hard"] == {"mean": 0.8, "std": 0.0, "n": 1}


def test_summarize_skips_missing_and_non_finite():
    rows = summarize([rec("a", 0, x=1.0), rec("a", 1, x=math.nan), rec("a", 2, x=3.0)])
    assert rows[0]["metrics"]["x"] == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "n": 2}
    rows = summarize([rec("a", 0, x=math.inf)])
    assert rows[0]["metrics"]["x"]["n"] == 0


def test_grid_order_and_folders(tmp_path):
    grid = Grid(RunConfig(epochs=1), ["breast_cancer"], ["htaf(2,11)", "relu"], [0, 1])
    configs = grid.configs()
    assert len(grid) == len(configs) == 4
    assert [(c.estimator, c.seed) for c in configs] == [
        ("htaf(2,11)", 0), ("htaf(2,11)", 1), ("relu", 0), ("relu", 1)
    ]  # fmt: skip
    assert run_dir_for(tmp_path, configs[1]) == tmp_path / "breast_cancer" / "htaf-2-11" / "seed1"
    assert safe_name("csv:/data/my file.csv") == "my-file.csv"


def test_split_specs():
    assert split_specs("htaf(2,11), ste ,relu") == ["htaf(2,11)", "ste", "relu"]
    assert split_specs("scaled_sigmoid(beta=22)") == ["scaled_sigmoid(beta=22)"]
    for bad in ("htaf(2,11", "htaf),(", "", "ste,ste"):
        with pytest.raises(ValueError):
            split_specs(bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"estimator": "nope"}, "unknown estimator"),
        ({"estimator": "htaf(2,x)"}, "not a number"),
        ({"estimator": "htaf", "estimator_params": {"gamma": 1.0}}, "no parameter"),
        ({"dataset": "nope"}, "unknown dataset"),
        ({"dataset": "csv:missing.csv", "target": "y"}, "missing.csv"),
    ],
)
def test_validate_rejects_bad_configs(tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        validate([RunConfig(epochs=1).replace(**change)])
    assert not any(tmp_path.iterdir())  # nothing written


def test_model_metrics_drops_timings():
    assert model_metrics({"test_auroc_hard": 1.0, "train_time_s": 3.0}) == {"test_auroc_hard": 1.0}


def test_process_pool_matches_in_process(tmp_path):
    from htaf.experiment import run_grid

    configs = Grid(
        RunConfig(epochs=2, model={"widths": [8]}), ["breast_cancer"], ["htaf", "ste"], [0, 1]
    )
    configs = configs.configs()
    seen = []
    one = run_grid(configs, tmp_path / "one", progress=False)
    two = run_grid(configs, tmp_path / "two", jobs=2, progress=False, on_result=seen.append)
    assert [r["config"] for r in two] == [c.to_dict() for c in configs]  # grid order
    assert [model_metrics(r["metrics"]) for r in two] == [model_metrics(r["metrics"]) for r in one]
    assert len(seen) == 4
    assert (tmp_path / "two" / "breast_cancer" / "ste" / "seed1" / "metrics.json").is_file()


def test_in_process_grid_loads_each_dataset_once(tmp_path, monkeypatch):
    from htaf import data
    from htaf.experiment import run_grid

    calls = []
    load = data.load
    monkeypatch.setattr(data, "load", lambda *a, **k: calls.append(a) or load(*a, **k))
    configs = Grid(
        RunConfig(epochs=1, model={"widths": [4]}), ["breast_cancer"], ["relu"], [0, 1]
    ).configs()
    run_grid(configs, tmp_path, progress=False)
    assert len(calls) == 1


def test_compare_loads_each_dataset_once_validation_included(tmp_path, monkeypatch):
    import htaf
    from htaf import data

    calls = []
    load = data.load
    monkeypatch.setattr(data, "load", lambda *a, **k: calls.append(a) or load(*a, **k))
    htaf.compare("dhn", ["breast_cancer", "diabetes"], ["relu"], seeds=2, epochs=1,
                 model={"widths": [4]}, out=tmp_path, jobs=1, progress=False)  # fmt: skip
    assert sorted(a[0] for a in calls) == ["breast_cancer", "diabetes"]
