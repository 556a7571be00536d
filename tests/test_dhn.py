"""DHN: the three heads, one estimator per layer, exact binary codes, summary, validation."""

import pickle

import pytest
import torch
from torch import nn

import htaf
from htaf.estimators import Estimator, UnknownEstimatorError
from htaf.families.dhn import DHN


@pytest.mark.parametrize(("n_out", "task"), [(1, "binary"), (5, "multiclass"), (1, "regression")])
def test_head_shapes(n_out: int, task: str) -> None:
    model = DHN(7, n_out, widths=(16, 8))
    assert model(torch.randn(4, 7)).shape == (4, n_out)
    hs = model.hidden(torch.randn(4, 7))
    assert [h.shape for h in hs] == [(4, 16), (4, 8)]


def test_one_fresh_estimator_per_layer() -> None:
    model = DHN(3, 2, widths=(4, 4, 4), activation="htaf(2,11)")
    acts = [layer.act for layer in model.layers]
    assert all(isinstance(a, Estimator) and a.name == "htaf" for a in acts)
    assert len({id(a) for a in acts}) == 3
    assert acts[0].params == {"alpha0": 2.0, "alpha1": 11.0}
    acts[0].set_param("alpha0", 5.0)  # layers do not share hyperparameters
    assert acts[1].params["alpha0"] == 2.0
    assert DHN(3, 2, (4,), activation="htaf", alpha1=20).layers[0].act.params["alpha1"] == 20


@pytest.mark.parametrize("name", ["htaf", "ste", "atan", "scaled_sigmoid"])
def test_harden_gives_exact_binary_codes(name: str) -> None:
    model = DHN(5, 3, widths=(32, 16), activation=name, batch_norm=True, dropout=0.2).eval()
    x = torch.randn(64, 5)
    with htaf.harden(model):
        hs = torch.cat([h.flatten() for h in model.hidden(x)])
        assert ((hs == 0) | (hs == 1)).all()
        assert 0 < hs.mean() < 1  # both values occur
    if name == "htaf":  # trains with the smooth forward: codes are then strictly inside (0, 1)
        hs = torch.cat([h.flatten() for h in model.hidden(x)])
        assert ((hs > 0) & (hs < 1)).any()


def test_hard_forward_backpropagates() -> None:
    model = DHN(5, 1, widths=(8,))
    htaf.harden(model)
    model(torch.randn(16, 5)).sum().backward()
    assert model.layers[0].linear.weight.grad.abs().sum() > 0


def test_reference_activation_and_layout() -> None:
    model = DHN(4, 2, widths=(8,), activation="relu", batch_norm=True, dropout=0.5)
    layer = model.layers[0]
    assert isinstance(layer.act, nn.ReLU) and not model.binary
    assert isinstance(layer.norm, nn.BatchNorm1d) and isinstance(layer.drop, nn.Dropout)
    assert isinstance(DHN(4, 2, (8,)).layers[0].drop, nn.Identity)


def test_profile_and_summary() -> None:
    model = DHN(30, 1, widths=(64, 32), activation="htaf(2,11)")
    rows = model.profile().rows
    assert [r.name for r in rows] == ["hidden1", "hidden2", "head"]
    assert (rows[0].input_shape, rows[0].output_shape, rows[0].params) == (
        (30,),
        (64,),
        30 * 64 + 64,
    )
    assert rows[0].activation_bits == 1 and rows[-1].activation_bits is None
    assert rows[0].activation == "htaf(alpha0=2, alpha1=11)"
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    text = model.summary()
    assert "hidden2" in text and "htaf(alpha0=2, alpha1=11)" in text
    assert f"total params: {sum(r.params for r in rows):,}" in text
    assert "binary activations: 96 of 96" in text
    assert "96 bits in binary mode vs 3,072 bits as float32 (32.0x" in text
    relu = DHN(3, 1, (8,), activation="relu").summary()
    assert "binary activations: 0 of 8" in relu and "(1.0x" in relu


def test_summary_counts_batch_norm_in_its_layer() -> None:
    model = DHN(4, 2, widths=(8,), activation="ste", batch_norm=True)
    rows = model.profile().rows
    assert rows[0].kind == "dense+bn" and rows[0].params == 4 * 8 + 8 + 2 * 8
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())


def test_summary_of_an_uncalibrated_htaf_auto_says_so() -> None:
    model = DHN(4, 1, widths=(3,), activation="htaf")
    text = model.summary()
    assert "alpha0=auto (not calibrated)" in text and "nan" not in text
    model(torch.randn(16, 4))  # the first batch calibrates alpha0
    alpha0 = model.layers[0].act.alpha0
    assert f"htaf(alpha0=auto:{alpha0:g}, alpha1=11)" in model.summary()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_in": 0}, "n_in"),
        ({"n_in": 2.5}, "n_in"),
        ({"n_out": -1}, "n_out"),
        ({"widths": ()}, "widths"),
        ({"widths": (8, 0)}, "widths"),
        ({"widths": "8"}, "widths"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
    ],
)
def test_validation_names_the_parameter(kwargs: dict, name: str) -> None:
    args = {"n_in": 3, "n_out": 1, **kwargs}
    with pytest.raises(ValueError, match=name):
        DHN(**args)


def test_unknown_activation() -> None:
    with pytest.raises(UnknownEstimatorError, match="htfa"):
        DHN(3, 1, activation="htfa")


def test_state_dict_and_pickle_round_trip() -> None:
    model = DHN(6, 3, widths=(8, 8), batch_norm=True).eval()
    x = torch.randn(10, 6)
    clone = DHN(6, 3, widths=(8, 8), batch_norm=True).eval()
    clone.load_state_dict(model.state_dict())
    assert torch.equal(model(x), clone(x))
    assert torch.equal(model(x), pickle.loads(pickle.dumps(model))(x))
