"""Bop (Helwegen et al. 2019) for binary weights, Adam for the rest, in one optimizer."""

import pytest
import torch
from torch import nn

from htaf.config import ConfigError, RunConfig
from htaf.optim import Bop, bop_param_groups


def bop_reference(w, grads, gamma, threshold):
    """Larq's update in float64, written independently: m += gamma (g - m);
    w = sign(-sign(w m - threshold) w), with w already ±1."""
    w, m = w.double().clone(), torch.zeros_like(w, dtype=torch.float64)
    for g in grads:
        m += gamma * (g.double() - m)
        w = torch.sign(-torch.sign(w * m - threshold) * w)
    return w, m


def test_bop_matches_larqs_update():
    torch.manual_seed(0)
    w0 = torch.where(torch.rand(50) < 0.5, -1.0, 1.0)
    grads = [torch.randn(50) * 1e-3 + 2e-4 for _ in range(30)]
    p = nn.Parameter(w0.clone())
    opt = Bop([p], gamma=0.05, threshold=1e-5)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    want_w, want_m = bop_reference(w0, grads, 0.05, 1e-5)
    assert torch.equal(p.detach().double(), want_w)
    torch.testing.assert_close(opt.state[p]["moment"].double(), want_m, rtol=1e-5, atol=1e-9)
    assert 0 < int((p.detach() != w0).sum()) < 50  # some flipped, some did not


def test_first_step_makes_latent_weights_binary():
    p = nn.Parameter(torch.tensor([0.3, -0.01, 0.0, -2.0]))
    opt = Bop([p], gamma=1e-4, threshold=1.0)  # threshold high: nothing flips
    p.grad = torch.ones(4)
    opt.step()
    assert p.tolist() == [1.0, -1.0, 1.0, -1.0]


def test_the_other_groups_take_plain_adam_steps():
    torch.manual_seed(1)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    binary = nn.Parameter(torch.ones(5))
    bop = Bop([{"params": [binary], "binary": True}, {"params": a.parameters()}], lr=0.01)
    adam = torch.optim.Adam(b.parameters(), lr=0.01)
    for _ in range(5):
        x = torch.randn(8, 4)
        for net, opt in ((a, bop), (b, adam)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
        binary.grad = torch.full((5,), 0.1)
        bop.step()
        adam.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert set(binary.tolist()) <= {-1.0, 1.0}
    # one state dict round trip, as a checkpoint does
    again = Bop([{"params": [binary], "binary": True}, {"params": a.parameters()}], lr=0.01)
    again.load_state_dict(bop.state_dict())
    assert torch.equal(again.state[binary]["moment"], bop.state[binary]["moment"])


def test_param_groups_need_binary_parameters():
    with pytest.raises(ValueError, match="has none"):
        bop_param_groups(nn.Linear(2, 2))

    class Net(nn.Linear):
        def binary_parameters(self):
            return [self.weight]

    groups = bop_param_groups(Net(2, 2))
    assert groups[0]["binary"] and len(groups[0]["params"]) == 1 and len(groups[1]["params"]) == 1


def test_param_groups_find_the_quantized_layers_of_a_plain_model():
    from htaf.families.bnn import QuantConv2d, QuantLinear

    conv = QuantConv2d(1, 2, 3, input_quantizer="ste_clipped", kernel_quantizer="ste_clipped")
    dense = QuantLinear(8, 3, kernel_quantizer="ste_clipped")
    first = QuantLinear(4, 8)  # full precision: not binary
    net = nn.Sequential(conv, nn.Flatten(), nn.Linear(2, 4), first, dense)
    groups = bop_param_groups(net)
    assert groups[0]["binary"] and groups[0]["params"] == [conv.weight, dense.weight]
    binary = {id(p) for p in groups[0]["params"]}
    assert len(groups[1]["params"]) == len(list(net.parameters())) - 2
    assert not binary & {id(p) for p in groups[1]["params"]}
    Bop(groups, lr=0.01)  # the groups build the optimizer
    with pytest.raises(ValueError, match="no quantized layer"):
        bop_param_groups(nn.Sequential(nn.Linear(2, 2), QuantLinear(2, 2)))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"optimizer": "rmsprop"}, "'optimizer' must be one of adam, sgd, bop"),
        ({"optimizer": "adam", "optimizer_params": {"gamma": 0.1}}, "optimizer_params.gamma"),
        ({"optimizer": "bop", "optimizer_params": {"beta": 0.1}}, "takes gamma, threshold"),
        ({"optimizer": "bop", "optimizer_params": {"gamma": 2.0}}, "in (0, 1]"),
        ({"optimizer": "bop", "optimizer_params": {"threshold": "x"}}, "must be a number"),
    ],
)
def test_config_checks_the_optimizer(kwargs, words):
    with pytest.raises(ConfigError) as err:
        RunConfig(**kwargs)
    assert words in str(err.value)


def test_bop_constructor_checks_its_numbers():
    p = nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="gamma"):
        Bop([p], gamma=0.0)
    with pytest.raises(ValueError, match="threshold"):
        Bop([p], threshold=-1.0)
