"""``htaf study gradient-flow``: files, labels and the per-epoch layer-1 gradient norms."""

from __future__ import annotations

import json

import pytest

from htaf.cli import main
from htaf.studies import gradient_flow


def test_configs_share_everything_but_the_activation():
    configs = gradient_flow.configs(epochs=3)
    assert [c.estimator for c in configs] == list(gradient_flow.LABELS)
    for c in configs:
        assert c.model == {"widths": [256, 256, 128], "batch_norm": False}
        assert {**c.to_dict(), "estimator": ""} == {**configs[0].to_dict(), "estimator": ""}


def test_geometric_mean_and_underflow():
    assert gradient_flow.geometric_mean([[1.0, 4.0], [100.0, 1.0]]) == pytest.approx([10.0, 2.0])
    assert gradient_flow.geometric_mean([[1.0], [0.0]]) == [0.0]


def test_ratios():
    norms = {"htaf(2,11)": [1.0, 0.5], "scaled_sigmoid(22)": [1.0, 0.001], "relu": [1.0, 0.0]}
    assert gradient_flow.ratios(norms) == {"scaled_sigmoid(22)": 500.0, "relu": float("inf")}


def test_cli_writes_json_and_plots(tmp_path, capsys):
    out = tmp_path / "gf"
    args = ["study", "gradient-flow", "--out", str(out), "--epochs", "2", "--seeds", "2",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    norms = json.loads((out / "gradient_flow.json").read_text())
    assert list(norms) == list(gradient_flow.LABELS)
    assert all(len(v) == 2 and all(x > 0 for x in v) for v in norms.values())
    per_seed = json.loads((out / "gradient_flow_seeds.json").read_text())
    assert set(per_seed["relu"]) == {"0", "1"}
    for label, curve in norms.items():  # the geometric mean lies between the seeds
        a, b = per_seed[label]["0"], per_seed[label]["1"]
        assert all(
            min(x, y) * 0.999 <= g <= max(x, y) * 1.001 for g, x, y in zip(curve, a, b, strict=True)
        )
    assert (out / "gradient_flow.png").is_file() and (out / "gradient_flow.svg").is_file()
    assert "htaf(2,11) / other" in capsys.readouterr().out


def test_cli_passes_dataset_options(tmp_path, capsys):
    out = tmp_path / "gf"
    args = ["study", "gradient-flow", "--out", str(out), "--epochs", "1", "--seeds", "1",
            "--dataset", "teacher", "--data-option", "n=300", "--data-option", "flip=0.1",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "teacher" and config["data_options"] == {"n": 300, "flip": 0.1}
    bad = [*args[:-2], "flip=0.9", "--no-progress"]
    bad[3] = str(tmp_path / "bad")
    assert main(bad) == 2
    assert "flip must be a number" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_htaf_2_11_keeps_the_gradient_that_htaf_11_2_loses(tmp_path):
    """The paper's result at the study's defaults (Adam, lr 1e-2, no batch norm), 5 epochs.

    Seed 0 is fixed so the test is deterministic; htaf(11,2) dies in 3 of 4 seeds by epoch 5
    (and in 5 of 5 by epoch 30), with ratios of 1e4 to 1e13. sigmoid(22x) is not tested: at
    these settings it ends below htaf(2,11) by 2e3x, 5e5x, 10x, 2x and 0.2x for seeds 0-4.
    """
    result = gradient_flow.run(
        tmp_path, labels=("htaf(2,11)", "htaf(11,2)"), epochs=5, seed=0, progress=False
    )
    assert result["ratios"]["htaf(11,2)"] >= 100
    assert result["records"][0]["metrics"]["test_auroc_hard"] > 0.9  # htaf(2,11) still learns
