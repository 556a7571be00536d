"""``htaf compare``, ``htaf runs`` and ``htaf report`` end to end (tiny networks, 2 epochs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from htaf.cli import main

TINY = ["--epochs", "2", "--seeds", "2", "--widths", "16", "--no-progress"]


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.delenv("HTAF_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "runs"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One tiny compare run shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("compare") / "runs"
    args = ["compare", *TINY, "--estimators", "htaf,ste,relu", "--out", str(out)]
    assert main(args) == 0
    (exp_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return out, exp_dir


def test_compare_writes_everything(experiment, capsys):
    out, exp_dir = experiment
    for name in ("config.json", "summary.json", "report.md", "report.html"):
        assert (exp_dir / name).is_file(), name
    assert (out / "results.sqlite").is_file()
    spec = json.loads((exp_dir / "config.json").read_text())
    assert spec["estimators"] == ["htaf", "ste", "relu"] and spec["seeds"] == [0, 1]
    assert spec["base"]["model"] == {"widths": [16]} and spec["command"].startswith("htaf compare")
    for est in ("htaf", "ste", "relu"):
        for seed in (0, 1):
            run = exp_dir / "breast_cancer" / est / f"seed{seed}"
            assert (run / "metrics.json").is_file() and (run / "history.jsonl").is_file()
    assert {p.stem for p in (exp_dir / "plots").iterdir()} >= {
        "learning_curves", "gradient_norms", "activation_histograms", "binary_metric"
    }  # fmt: skip


def test_summary_row_shape(experiment):
    _, exp_dir = experiment
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert [r["estimator"] for r in summary] == ["htaf", "ste", "relu"]
    for row in summary:
        assert set(row) == {"family", "dataset", "estimator", "metrics"}
        assert (row["family"], row["dataset"]) == ("dhn", "breast_cancer")
        for name in ("test_auroc_hard", "test_auroc_smooth", "test_accuracy_hard", "train_time_s"):
            stats = row["metrics"][name]
            assert set(stats) == {"mean", "std", "n"} and stats["n"] == 2
        seeds = [
            json.loads((exp_dir / "breast_cancer" / row["estimator"] / f"seed{s}" / "metrics.json")
                       .read_text())["test_auroc_hard"] for s in (0, 1)
        ]  # fmt: skip
        assert row["metrics"]["test_auroc_hard"]["mean"] == pytest.approx(np.mean(seeds))
        assert row["metrics"]["test_auroc_hard"]["std"] == pytest.approx(np.std(seeds, ddof=1))


def test_runs_lists_and_exports(experiment, tmp_path, capsys):
    out, _ = experiment
    assert main(["runs", "--out", str(out), "--estimator", "ste"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 2 and all("ste" in x for x in lines[2:])
    assert main(["runs", "--out", str(out), "--csv", str(tmp_path / "runs.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "runs.csv").open()))
    assert len(rows) == 6 and "test_auroc_hard" in rows[0]


def test_report_rebuilds(experiment, capsys):
    _, exp_dir = experiment
    (exp_dir / "report.html").unlink()
    assert main(["report", str(exp_dir)]) == 0
    page = (exp_dir / "report.html").read_text()
    assert "data:image/png;base64," in page and "src='http" not in page
    assert "report.html" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "files", "message"),
    [
        (["--estimators", "htaf,nope"], {}, "unknown estimator 'nope'"),
        (["--estimators", "htaf(2,x)"], {}, "not a number"),
        (["--dataset", "nope"], {}, "unknown dataset 'nope'"),
        (["--dataset", "csv:missing.csv", "--target", "y"], {}, "missing.csv"),
        (["--dataset", "csv:bad.csv", "--target", "y"], {"bad.csv": ["a,b,y", "1,2"]}, "bad.csv"),
        (
            ["--dataset", "csv:nan.csv", "--target", "y"],
            {"nan.csv": ["a,y", *[f"{i if i != 3 else ''},{i % 2}" for i in range(40)]]},
            "row 4, column 'a': missing value",
        ),
        (
            ["--dataset", "csv:inf.csv", "--target", "y"],
            {"inf.csv": ["a,y", *[f"{i if i != 3 else 'inf'},{i % 2}" for i in range(40)]]},
            "row 4, column 'a': infinite value",
        ),
        (
            ["--dataset", "abalone", "--data-dir", "."],
            {
                "abalone.data": [
                    *["M,0.45,0.36,0.09,0.51,0.22,0.10,0.15,15"] * 30,
                    "F,0.53,0.42,0.13,0.67,0.25,0.14,0.21,nine",
                ]
            },
            "column 'Rings': non-numeric value 'nine'",
        ),
        (
            ["--dataset", "csv:ok.csv", "--target", "label"],
            {"ok.csv": ["a,y", *[f"{i},{i % 2}" for i in range(40)]]},
            "label",
        ),
        (
            ["--dataset", "csv:one.csv", "--target", "y"],
            {"one.csv": ["a,y", *[f"{i},1" for i in range(40)]]},
            "class",
        ),
        (["--widths", "16,x"], {}, "--widths"),
        (["--model", "depth=3"], {}, "family 'dhn' has no option 'model.depth'"),
        (["--model", "dropout=2"], {}, "'model.dropout' must be in [0, 1)"),
        (["--model", "widths"], {}, "--model: override 'widths' must look like key=value"),
        (["--family", "nope"], {}, "unknown model family (config key 'family') 'nope'"),
        (["--seeds", "0"], {}, "seeds must be >= 1"),
        (["--epochs", "0"], {}, "epochs"),
        (["--jobs", "0"], {}, "jobs"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(out, capsys, extra, files, message):
    for name, rows in files.items():
        write_csv(Path(name), rows)
    assert main(["compare", *TINY, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("htaf compare: error: ") and message in err
    assert not out.exists()  # no store, no experiment folder


def test_runs_without_store_exits_2(out, capsys):
    assert main(["runs", "--out", str(out)]) == 2
    assert "no results store" in capsys.readouterr().err
    assert not out.exists()


def test_failed_run_is_not_bad_input(out, capsys, monkeypatch):
    import htaf.experiment

    def diverge(*args):
        raise ValueError("Input contains NaN")

    monkeypatch.setattr(htaf.experiment, "_run_cell", diverge)
    assert main(["compare", *TINY, "--out", str(out), "--estimators", "htaf"]) == 1
    err = capsys.readouterr().err
    assert "seed0 failed: ValueError: Input contains NaN" in err


def test_unusable_paths_exit_2_without_traceback(out, capsys):
    out.mkdir()
    (out / "results.sqlite").write_text("not sqlite")
    assert main(["runs", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("htaf runs: error: ")
    not_a_dir = out / "file"
    not_a_dir.write_text("")
    assert main(["compare", *TINY, "--seeds", "1", "--estimators", "relu",
                 "--out", str(not_a_dir)]) == 2  # fmt: skip
    assert capsys.readouterr().err.startswith("htaf compare: error: ")


def test_resume_of_a_foreign_config_names_the_missing_key(out, capsys):
    out.mkdir()
    (out / "config.json").write_text("{}")
    assert main(["compare", "--resume", str(out), "--no-progress"]) == 2
    assert "not an experiment config: no 'base'" in capsys.readouterr().err


def test_csv_with_id_column_dropped(tmp_path, capsys):
    rows = ["id,x1,x2,label"] + [f"{i},{i % 7},{(i * 3) % 5},{'a' if i % 7 > 3 else 'b'}"
                                 for i in range(120)]  # fmt: skip
    path = tmp_path / "d.csv"
    path.write_text("\n".join(rows) + "\n")
    args = ["compare", "--dataset", f"csv:{path}", "--target", "label", "--estimators", "htaf",
            "--seeds", "1", "--epochs", "2", "--widths", "8", "--no-progress"]  # fmt: skip
    assert main([*args, "--drop", "id", "--out", str(tmp_path / "ok")]) == 0
    (exp,) = [p for p in (tmp_path / "ok").iterdir() if p.is_dir()]
    (run,) = exp.glob("*/htaf/seed0/config.json")
    saved = json.loads(run.read_text())
    assert saved["data_options"] == {"drop": ["id"]}
    assert saved["dataset_meta"]["preprocessing"][0].startswith("standardize 2 numeric")
    assert main([*args, "--drop", "idd", "--out", str(tmp_path / "bad")]) == 2
    assert "'idd' not found" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_data_options_from_the_command_line(tmp_path, capsys):
    args = ["compare", "--dataset", "teacher", "--estimators", "htaf", "--seeds", "1",
            "--epochs", "1", "--widths", "8", "--no-progress"]  # fmt: skip
    ok = [
        *args,
        "--data-option",
        "n=300",
        "--data-option",
        "flip=0.1",
        "--out",
        str(tmp_path / "ok"),
    ]
    assert main(ok) == 0
    (exp,) = [p for p in (tmp_path / "ok").iterdir() if p.is_dir()]
    (run,) = exp.glob("*/htaf/seed0/config.json")
    saved = json.loads(run.read_text())
    assert saved["data_options"] == {"n": 300, "flip": 0.1}
    assert saved["dataset_meta"]["split_sizes"]["test"] == 60  # 20% of the 300 asked for
    bad = ["compare", "--family", "icbm", "--data-option", "difficulty=9", "--no-progress",
           "--out", str(tmp_path / "bad")]  # fmt: skip
    assert main(bad) == 2
    assert "difficulty must be an integer from 0 to 4" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_model_options_from_the_command_line(tmp_path):
    args = [
        "compare",
        "--estimators",
        "htaf",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--no-progress",
        "--model",
        "widths=[8, 4]",
        "--model",
        "batch_norm=true",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    (exp,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    spec = json.loads((exp / "config.json").read_text())
    assert spec["base"]["model"] == {"widths": [8, 4], "batch_norm": True}
    assert "--model 'widths=[8, 4]' --model batch_norm=true" in spec["command"]
    (run,) = exp.glob("*/htaf/seed0/config.json")
    saved = json.loads(run.read_text())
    assert saved["model_options"] == {"widths": [8, 4], "batch_norm": True, "dropout": 0.0}


def test_the_family_supplies_the_defaults():
    from htaf.api import compare_grid

    grid = compare_grid("dhn", lr=0.01)
    base = grid.base
    assert base.dataset == "breast_cancer" and base.epochs == 30 and base.lr == 0.01
    assert list(grid.estimators) == ["htaf", "ste", "ste_clipped", "scaled_sigmoid", "atan", "relu"]


def test_runs_filters_on_any_column_and_names_what_exists(experiment, capsys):
    out, _ = experiment
    assert main(["runs", "--out", str(out), "--where", "seed=0"]) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    assert len(lines) == 3 and all(line.split()[4] == "0" for line in lines)
    assert main(["runs", "--out", str(out), "--where", "seed=1", "--estimator", "ste"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["runs", "--out", str(out), "--where", "seed=7"]) == 2
    assert "seed values: 0, 1" in capsys.readouterr().err
    assert main(["runs", "--out", str(out), "--where", "colour=red"]) == 2
    err = capsys.readouterr().err
    assert "unknown filter 'colour'" in err and "seed" in err
    assert main(["runs", "--out", str(out), "--dataset", "wine"]) == 2
    assert "breast_cancer" in capsys.readouterr().err
