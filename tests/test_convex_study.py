"""``htaf study convex``: Ergen et al.'s benchmark, small."""

import json

import numpy as np
import pytest

from htaf.cli import main
from htaf.studies import convex

SMALL = [
    "--n",
    "40",
    "--n-test",
    "200",
    "--directions",
    "400",
    "--width",
    "100",
    "--epochs",
    "30",
    "--eval-every",
    "10",
    "--no-progress",
]


def test_teacher_is_the_official_data():
    data = convex.teacher(100, 20, 2000, 42)
    rng = np.random.RandomState(42)
    np.testing.assert_array_equal(data["X"], rng.randn(100, 20))
    np.testing.assert_array_equal(data["X_test"], rng.randn(2000, 20))
    assert set(np.unique(data["y"])) == {-1.0, 1.0} and data["y_test"].shape == (2000,)


@pytest.mark.slow
def test_study_writes_rows_table_and_figure(tmp_path, capsys):
    out = tmp_path / "convex"
    code = main(["study", "convex", "--out", str(out), *SMALL, "--baselines", "step + STE,HTAF"])
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert {"results.json", "table.md", "config.json", "convex.png", "convex.svg"} <= names
    res = json.loads((out / "results.json").read_text())
    labels = [r["label"] for r in res["rows"]]
    assert labels == [
        "convex two-layer",
        "convex deep (PI)",
        "convex deep (SVM)",
        "step + STE",
        "HTAF",
    ]
    rows = {r["label"]: r for r in res["rows"]}
    two = rows["convex two-layer"]
    assert two["solver"]["optimal"] is True
    # the two-layer convex objective is the Lasso optimum / n, recomputed from the network
    assert two["objective"] == pytest.approx(two["program_objective"], rel=1e-8)
    assert rows["convex deep (PI)"]["train_accuracy"] == 1.0
    assert len(rows["HTAF"]["curve"]["time_s"]) == 4  # epochs 0, 10, 20, 30
    check = res["objective_check"]
    assert check["holds"] == (check["convex_objective"] <= check["trained_objective"])
    config = json.loads((out / "config.json").read_text())
    assert config["beta"] == pytest.approx(1e-3 * 40) and config["n"] == 40
    assert "convex two-layer" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--beta-per-sample", "0"], "beta_per_sample"),
        (["--beta-per-sample", "-1"], "beta_per_sample"),
        (["--directions", "0"], "directions"),
        (["--baselines", "step + magic"], "baseline"),
    ],
)
def test_bad_input_exit_2_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "convex"
    assert main(["study", "convex", "--out", str(out), *SMALL, *args]) == 2
    assert not out.exists() and message in capsys.readouterr().err
