"""The snn family in the engine: options, bad input at the CLI, runs, statistics and figures."""

import json

import numpy as np
import pytest

from conftest import make_digits_images
from htaf.cli import main
from htaf.config import ConfigError
from htaf.families import data_spec, get_family, model_options
from htaf.train import run_folder as run_module


@pytest.fixture
def small_digits(monkeypatch):
    """``digits_images`` (400 images) served to the engine by name, as the loaders will."""
    ds = make_digits_images(400)
    load = run_module.load_dataset
    monkeypatch.setattr(
        run_module, "load_dataset", lambda c: ds if c.dataset == "digits_images" else load(c)
    )
    return ds


def write_config(tmp_path, **model):
    lines = ['family = "snn"', 'dataset = "digits_images"', "epochs = 2", "batch_size = 64"]
    lines += ["[model]"] + [f"{k} = {json.dumps(v)}" for k, v in model.items()]
    path = tmp_path / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_family_defaults_are_the_issues():
    fam = get_family("snn")
    assert fam.compare["dataset"] == "digits_images"
    assert fam.estimators == (
        "htaf",
        "atan",
        "fast_sigmoid",
        "sigmoid_surrogate",
        "triangle",
        "relu",
    )
    options = model_options("snn", {})
    assert (options.arch, options.T, options.encoder) == ("mlp", 8, "poisson")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("T", 0, "model.T"),
        ("T", -4, "model.T"),
        ("neuron", "hodgkin_huxley", "model.neuron"),
        ("arch", "transformer", "model.arch"),
        ("tau", 0.0, "model.tau"),
        ("tau", -3.0, "model.tau"),
        ("beta", 1.5, "model.beta"),
        ("beta", 0.0, "model.beta"),
        ("encoder", "rank_order", "model.encoder"),
        ("reset", "zero", "model.reset"),
    ],
)
def test_bad_options_exit_2_naming_the_key_and_write_nothing(
    tmp_path, capsys, small_digits, key, value, message
):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        model_options("snn", {key: value})
    out = tmp_path / "run"
    code = main(
        ["train", "--config", str(write_config(tmp_path, **{key: value})), "--out", str(out)]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    code = main(["compare", "--family", "snn", "--model", f"{key}={json.dumps(value)}",
                 "--out", str(tmp_path / "cmp"), "--no-progress"])  # fmt: skip
    assert code == 2 and not (tmp_path / "cmp").exists()


@pytest.mark.slow
def test_negative_intensities_for_a_rate_code_exit_2_before_anything_is_written(
    tmp_path, capsys, monkeypatch
):
    from htaf.data import Dataset

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 1, 4, 4)).astype(np.float32)  # float images with negative values
    y = np.arange(60) % 3
    ds = Dataset("signed_images", "multiclass", X[:40], y[:40], X[40:50], y[40:50], X[50:],
                 y[50:], [], ["a", "b", "c"], 3, kind="image")  # fmt: skip
    assert data_spec(ds).input_range[0] < 0
    monkeypatch.setattr(run_module, "load_dataset", lambda c: ds)
    for argv in (
        ["train", "--config", str(write_config(tmp_path)), "--out", str(tmp_path / "run")],
        ["compare", "--family", "snn", "--out", str(tmp_path / "cmp"), "--no-progress"],
    ):
        assert main(argv) == 2
        assert "model.encoder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cmp").exists()
    # the constant-current encoder takes any input
    path = write_config(tmp_path, encoder="direct")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 0


def test_option_rules_between_keys_name_them():
    with pytest.raises(ConfigError, match=r"model\.beta.*plif"):
        model_options("snn", {"neuron": "plif", "beta": 1.0})
    with pytest.raises(ConfigError, match=r"model\.blocks"):
        model_options("snn", {"arch": "sew_resnet", "channels": [8, 16], "blocks": [1]})
    with pytest.raises(ConfigError, match=r"model\.checkpoint_steps"):
        model_options("snn", {"arch": "cnn", "checkpoint_steps": -1})
    assert model_options("snn", {"arch": "cnn", "checkpoint_steps": 4}).checkpoint_steps == 4
    assert model_options("snn", {"neuron": "plif", "tau": 2.0}).tau == 2.0


def test_data_spec_carries_the_normalisation_and_the_input_range(small_digits):
    spec = data_spec(small_digits)
    assert spec.input_range == (0.0, 1.0)
    assert spec.normalize == small_digits.normalize


@pytest.mark.slow
def test_a_run_reports_spiking_statistics_and_draws_its_figures(tmp_path, capsys, small_digits):
    out = tmp_path / "run"
    assert main(["train", "--config", str(write_config(tmp_path)), "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    for mode in ("hard", "smooth"):
        for key in ("rate_layer1", "silent_layer1", "saturated_layer1", "spikes_per_sample",
                    "input_spikes_per_sample"):  # fmt: skip
            assert f"test_{key}_{mode}" in metrics
    assert 0 <= metrics["test_rate_layer1_hard"] <= 1
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert "rate_layer1" in history[-1]["model_stats"]
    with np.load(out / "model_arrays.npz") as arrays:
        assert set(np.unique(arrays["spikes.layer1"])) <= {0.0, 1.0}  # exact spikes
    for stem in ("spike_raster", "membrane_traces", "model_stats"):
        for ext in ("png", "svg"):
            assert (out / "plots" / f"{stem}.{ext}").is_file()
    assert "figure:" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_reports_every_row_with_its_spiking_figures(tmp_path, small_digits):
    code = main(["compare", "--family", "snn", "--estimators", "htaf,atan,relu", "--seeds", "1",
                 "--epochs", "1", "--out", str(tmp_path), "--no-progress"])  # fmt: skip
    assert code == 0
    (exp,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    report = (exp / "report.md").read_text()
    for stem in ("spike_raster", "membrane_traces", "model_stats"):
        assert f"plots/{stem}.png" in report and (exp / "plots" / f"{stem}.svg").is_file()
    relu = json.loads((exp / "digits_images" / "relu" / "seed0" / "metrics.json").read_text())
    assert "test_rate_hard" not in relu  # the non-spiking reference has no spikes
    assert relu["test_accuracy_hard"] == relu["test_accuracy_smooth"]
