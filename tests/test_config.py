"""RunConfig validation: every bad value is a ConfigError naming its key."""

import pytest

from htaf.config import ConfigError, RunConfig, apply_overrides


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"lr": "abc"}, "'lr' must be a number"),
        ({"epochs": 2.5}, "'epochs' must be an integer"),
        ({"batch_size": True}, "'batch_size' must be an integer"),
        ({"seed": "1"}, "'seed' must be an integer"),
        ({"lr": 0}, "'lr' must be > 0"),
        ({"estimator_params": 3}, "'estimator_params'"),
        ({"model": [8]}, "'model' must be a table"),
    ],
)
def test_bad_values_name_the_key(changes, key):
    with pytest.raises(ConfigError, match=key):
        RunConfig(**changes)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"widths": 64}, "'model.widths' of family 'dhn' must be a list of integers"),
        ({"widths": ["a"]}, "'model.widths'"),
        ({"widths": [8, 0]}, "'model.widths' must be positive"),
        ({"widths": []}, "'model.widths' must be positive"),
        ({"dropout": None}, "'model.dropout' of family 'dhn' must be a number"),
        ({"dropout": 1.0}, r"'model.dropout' must be in \[0, 1\)"),
        ({"batch_norm": 1}, "'model.batch_norm' of family 'dhn' must be true or false"),
        ({"width": [8]}, "family 'dhn' has no option 'model.width'.*widths, batch_norm, dropout"),
    ],
)
def test_bad_model_options_name_the_key(table, message):
    from htaf.families import model_options

    with pytest.raises(ConfigError, match=message):
        model_options("dhn", table)


def test_model_options_fill_defaults():
    from htaf.families import model_options

    opts = model_options("dhn", {"widths": [8, 4]})
    assert opts.widths == (8, 4) and opts.batch_norm is False and opts.dropout == 0.0


def test_overrides_are_typed_and_checked():
    data = apply_overrides({}, ["lr=0.01", "model.widths=[8, 4]", "dataset=wine"])
    config = RunConfig.from_dict(data)
    assert config.model == {"widths": [8, 4]} and config.lr == 0.01
    data = apply_overrides({"model": {"dropout": 0.1}}, ["model.widths=[3]"])
    assert data["model"] == {"dropout": 0.1, "widths": [3]}
    with pytest.raises(ConfigError, match="only the tables"):
        apply_overrides({}, ["lr.x=1"])


def test_unreadable_toml(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        RunConfig.from_toml(tmp_path)  # a directory
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cannot be read"):
        RunConfig.from_toml(tmp_path / "bad.toml")


def test_negative_patience_names_the_key():
    with pytest.raises(ConfigError, match="patience"):
        RunConfig(patience=-1)


def test_fractional_hidden_layer_sizes_are_refused():
    import numpy as np

    from htaf.sklearn import HeavisideClassifier

    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        HeavisideClassifier(hidden_layer_sizes=(2.5,), epochs=1).fit(X, y)
