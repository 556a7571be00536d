"""htaf.report and htaf.analysis.plots on a fake experiment folder (no training needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from htaf.analysis.plots import plot_experiment, primary_metric
from htaf.experiment import read_runs, summarize
from htaf.report import write_report

ESTIMATORS = ("htaf", "ste", "relu")


def fake_run(exp_dir: Path, estimator: str, seed: int, epochs: int = 4) -> dict:
    """A run folder shaped like ``htaf.train.run_one``'s output."""
    rng = np.random.default_rng(seed)
    run_dir = exp_dir / "breast_cancer" / estimator / f"seed{seed}"
    run_dir.mkdir(parents=True)
    config = {"family": "dhn", "dataset": "breast_cancer", "estimator": estimator, "seed": seed,
              "model": {"widths": [8, 8]}, "epochs": epochs}  # fmt: skip
    auroc = 0.97 + 0.01 * rng.random()
    metrics = {
        "test_auroc_hard": auroc,
        "test_auroc_smooth": auroc + 0.002,
        "test_accuracy_hard": 0.95,
        "test_accuracy_smooth": 0.955,
        "near_binary_05": 0.99 if estimator != "relu" else 0.3,
        "train_time_s": 1.0 + seed,
    }
    history = [
        {
            "epoch": e + 1,
            "train_loss": 1 / (e + 1),
            "val_loss": 1.2 / (e + 1),
            "val_auroc_hard": 0.9 + 0.01 * e,
            "val_auroc_smooth": 0.91 + 0.01 * e,
            "lr": 1e-3,
            "grad_norm": {"layer1": 10.0**-e, "layer2": 0.5},
        }
        for e in range(epochs)
    ]
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    smooth = rng.random(200) if estimator == "relu" else (rng.random(200) > 0.5).astype(float)
    np.savez(run_dir / "activations.npz", layer1_smooth=smooth, layer1_hard=smooth > 0.5)
    return {"config": config, "metrics": metrics, "history": history, "run_dir": str(run_dir)}


def fake_experiment(exp_dir: Path, seeds: int = 2) -> list[dict]:
    records = [fake_run(exp_dir, e, s) for e in ESTIMATORS for s in range(seeds)]
    spec = {"experiment_id": exp_dir.name, "command": "htaf compare", "datasets": ["breast_cancer"],
            "estimators": list(ESTIMATORS), "seeds": list(range(seeds)),
            "base": records[0]["config"]}  # fmt: skip
    (exp_dir / "config.json").write_text(json.dumps(spec))
    (exp_dir / "summary.json").write_text(json.dumps(summarize(records)))
    return records


def test_read_runs_in_grid_order(tmp_path):
    fake_experiment(tmp_path)
    runs = read_runs(tmp_path)
    assert [(r["config"]["estimator"], r["config"]["seed"]) for r in runs] == [
        (e, s) for e in ESTIMATORS for s in range(2)
    ]
    assert len(runs[0]["history"]) == 4


def test_plots_png_and_svg(tmp_path):
    fake_experiment(tmp_path)
    paths = plot_experiment(tmp_path)
    stems = {p.stem for p in paths}
    assert stems == {"learning_curves", "gradient_norms", "activation_histograms", "binary_metric"}
    for p in paths:
        assert p.stat().st_size > 1000 and p.suffix in (".png", ".svg")
    assert {p.suffix for p in paths} == {".png", ".svg"}


def test_report_is_self_contained(tmp_path):
    fake_experiment(tmp_path)
    paths = write_report(tmp_path)
    md = paths["markdown"].read_text()
    assert "| htaf |" in md and "plots/learning_curves.png" in md
    assert "test AUROC (step)" in md and "gap" in md and "env torch" in md
    # a DHN table leads with the family's own metric, AUROC
    assert md.index("test AUROC (step)") < md.index("test accuracy (step)")
    assert "auroc gap smooth−step" in md
    page = paths["html"].read_text()
    images = re.findall(r"<img[^>]*src='([^']*)'", page)
    assert len(images) == 4 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"src=[\"']?(https?:|//|plots/)", page)
    assert "<link" not in page and "<script" not in page
    # Rebuilding from the folder alone gives the same report.
    assert write_report(tmp_path)["markdown"].read_text() == md


def test_primary_metric():
    assert primary_metric(["test_auroc_hard", "test_accuracy_hard"]) == "accuracy"
    assert primary_metric(["test_auroc_hard"]) == "auroc"
    assert primary_metric(["test_accuracy_hard"]) == "accuracy"
    assert primary_metric(["test_rmse_hard", "test_r2_hard"]) == "rmse"
    assert primary_metric(["x"]) is None
    both = ["test_auroc_hard", "test_accuracy_hard"]
    assert primary_metric(both, family="dhn") == "auroc"  # the paper's measure for DHNs
    assert primary_metric(both, family="icbm") == "accuracy"
    assert primary_metric(["test_accuracy_hard"], family="dhn") == "accuracy"
    assert primary_metric(both, family="not-registered-here") == "accuracy"


def test_one_seed_shows_no_spread_and_two_seeds_do(tmp_path):
    from htaf.report import table_rows

    for seeds in (1, 2):
        exp = tmp_path / f"exp{seeds}"
        records = fake_experiment(exp, seeds=seeds)
        summary = json.loads((exp / "summary.json").read_text())
        ((_, rows),) = table_rows(summary, records).values()
        cells = [c for row in rows for c in row[1:-1]]
        assert any("±" in c for c in cells) == (seeds == 2), cells


def test_classification_tables_lead_with_accuracy_unless_the_family_names_its_own(tmp_path):
    from htaf.report import table_rows

    records = fake_experiment(tmp_path / "exp")
    for family, first in (("icbm", "accuracy"), ("dhn", "AUROC")):
        for r in records:
            r["config"]["family"] = family
        ((header, _),) = table_rows(summarize(records), records).values()
        assert header[1] == f"test {first} (step)", header
        assert header[3].startswith(first.lower() + " gap"), header


def test_rows_without_a_smooth_forward_say_so_instead_of_a_gap(tmp_path):
    from htaf.report import NO_SMOOTH, table_rows

    records = fake_experiment(tmp_path / "exp")
    ((header, rows),) = table_rows(summarize(records), records).values()
    gap = {row[0]: row[header.index("auroc gap smooth−step")] for row in rows}
    assert gap["ste"] == NO_SMOOTH  # ste's smooth form is the identity: no model
    assert gap["htaf"] != NO_SMOOTH and gap["relu"] != NO_SMOOTH


def test_a_damaged_run_file_leaves_the_plots_as_they_were(tmp_path, capsys):
    from htaf.cli import main

    exp = tmp_path / "exp"
    records = fake_experiment(exp, seeds=1)
    plot_experiment(exp)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (exp / "plots").iterdir()}
    assert before
    bad = Path(records[-1]["run_dir"]) / "activations.npz"
    np.savez(bad, layer1_smooth=np.array([{"a": 1}], dtype=object))  # needs pickle to read
    assert main(["report", str(exp)]) == 2
    assert "activations.npz" in capsys.readouterr().err
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (exp / "plots").iterdir()}
    assert after == before
    assert sorted(p.name for p in exp.iterdir() if p.name.startswith(".plots")) == []
