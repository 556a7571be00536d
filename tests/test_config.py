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
        ({"dropout": None}, "'dropout' must be a number"),
        ({"lr": 0}, "'lr' must be > 0"),
        ({"widths": 64}, "'widths'"),
        ({"widths": ["a"]}, "'widths'"),
        ({"widths": [8, 0]}, "'widths'"),
        ({"widths": []}, "'widths'"),
        ({"estimator_params": 3}, "'estimator_params'"),
    ],
)
def test_bad_values_name_the_key(changes, key):
    with pytest.raises(ConfigError, match=key):
        RunConfig(**changes)


def test_overrides_are_typed_and_checked():
    data = apply_overrides({}, ["lr=0.01", "widths=[8, 4]", "dataset=wine"])
    assert RunConfig.from_dict(data).widths == [8, 4]
    with pytest.raises(ConfigError, match="'widths' must be a list"):
        RunConfig.from_dict(apply_overrides({}, ["widths=64"]))


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

    from htaf.dhn import HeavisideClassifier

    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        HeavisideClassifier(hidden_layer_sizes=(2.5,), epochs=1).fit(X, y)
