"""``htaf study icbm-difficulty``: the ICBM claims across shapes difficulty levels, small."""

import json
import statistics

import pytest

from htaf.cli import main
from htaf.config import RunConfig
from htaf.experiment import run_dir_for
from htaf.studies import icbm_difficulty

TINY = {"n": 320, "epochs": 1, "batch_size": 64,
        "model": {"n_concepts": 8, "cnn_widths": [4, 8]}}  # fmt: skip


def row(hard, smooth, near=0.99):
    stats = icbm_difficulty._stats
    loss = [s - h for s, h in zip(smooth, hard, strict=True)]
    return {"accuracy_hard": stats(hard), "accuracy_smooth": stats(smooth),
            "near_binary_05": stats([near, near]), "thresholding_loss": stats(loss)}  # fmt: skip


def test_claims_and_separation_follow_the_rows():
    rows = {
        "htaf(2,11)": row([0.90, 0.92], [0.905, 0.925]),  # loses 0.5 points to thresholding
        "relu": row([0.85, 0.86], [0.93, 0.93], near=0.5),
        "sigmoid": row([0.80, 0.84], [0.90, 0.90], near=0.1),  # loses 8 points
    }
    c = icbm_difficulty.claims(rows, "htaf(2,11)")
    assert c["vs_relu"]["htaf_minus_relu"] == pytest.approx(0.91 - 0.93)
    assert c["vs_relu"]["holds"] is False  # 2 points below, past the 1.5-point margin
    assert c["near_binary"] == {"htaf": pytest.approx(0.99), "holds": True}
    t = c["thresholding"]
    assert t["difference"] == pytest.approx(0.08 - 0.005) and t["holds"] and t["beyond_spread"]
    sep = icbm_difficulty.separation(rows)
    assert sep["row_range"] == pytest.approx(0.91 - 0.82)
    assert sep["max_seed_std"] == pytest.approx(statistics.stdev([0.80, 0.84]))
    assert sep["rows_separated"]
    # htaf-relu 5.5 points apart (larger std 1.4), htaf-sigmoid 9 (2.8), relu-sigmoid 3.5 (2.8)
    assert (sep["pairs_apart"], sep["pairs"]) == (3, 3)
    rows["relu"] = row([0.83, 0.85], [0.93, 0.93])  # 2 points from sigmoid's 0.82 ± 2.8
    assert icbm_difficulty.separation(rows)["pairs_apart"] == 2
    # a tie within the seed spread: the claim holds on the means but not beyond the spread
    rows["sigmoid"] = row([0.80, 0.90], [0.80, 0.912])  # loses 0.6 points, std 0.85
    t = icbm_difficulty.claims(rows, "htaf(2,11)")["thresholding"]
    assert t["holds"] and not t["beyond_spread"]
    assert "relu" not in icbm_difficulty.claims({"htaf": rows["htaf(2,11)"]}, "htaf")
    assert icbm_difficulty.claims(rows, None) == {}


def test_bad_settings_name_the_setting(tmp_path):
    for kwargs, message in (({"levels": [7]}, "levels must be"), ({"levels": [1, 1]}, "levels"),
                            ({"levels": 2}, "levels must be"), ({"seeds": 1}, "seeds must be"),
                            ({"estimators": "htaf,ste"}, "estimators must be"),
                            ({"htaf_row": "htaf(2,11)"}, "htaf_row"),
                            ({"data_options": {"clutter": 99}}, "clutter must be")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            icbm_difficulty.run(tmp_path / "bad", progress=False, **{"levels": [0], **kwargs})
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_the_study_writes_every_level_and_row(tmp_path):
    out = tmp_path / "study"
    result = icbm_difficulty(out, levels=[0, 2], estimators=["htaf(2,11)", "relu", "sigmoid"],
                             seeds=2, jobs=1, progress=False, **TINY)  # fmt: skip
    saved = json.loads((out / "icbm_difficulty.json").read_text())
    assert list(saved["levels"]) == ["0", "2"] and saved["wall_s"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["htaf_row"] == "htaf(2,11)" and config["data_options"] == {"n": 320}
    for level in ("0", "2"):
        rows = saved["levels"][level]["rows"]
        assert list(rows) == ["htaf(2,11)", "relu", "sigmoid"]
        for est, r in rows.items():
            folders = [run_dir_for(out / f"level{level}", RunConfig(dataset="shapes",
                                                                    estimator=est, seed=s))
                       for s in (0, 1)]  # fmt: skip
            runs = [json.loads((f / "metrics.json").read_text()) for f in folders]
            hard = [m["test_accuracy_hard"] for m in runs]
            assert r["accuracy_hard"]["seeds"] == hard
            assert r["accuracy_hard"]["std"] == pytest.approx(statistics.stdev(hard))
            losses = [m["test_accuracy_smooth"] - m["test_accuracy_hard"] for m in runs]
            assert r["thresholding_loss"]["mean"] == pytest.approx(statistics.fmean(losses))
            cfg = json.loads((folders[0] / "config.json").read_text())
            assert cfg["data_options"] == {"n": 320, "difficulty": int(level)}
        assert set(saved["levels"][level]["claims"]) == {"vs_relu", "near_binary", "thresholding"}
    table = (out / "icbm_difficulty.md").read_text()
    assert table == result["table"] + "\n" and "| 2 | sigmoid |" in table
    assert (out / "icbm_difficulty.png").is_file()


def test_cli_bad_levels_exit_2(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["study", "icbm-difficulty", "--out", str(out), "--levels", "0,x"]) == 2
    assert "--levels" in capsys.readouterr().err
    assert main(["study", "icbm-difficulty", "--out", str(out), "--levels", "9"]) == 2
    assert "levels must be" in capsys.readouterr().err
    assert not out.exists()
