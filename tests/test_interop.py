"""HTAF (and every registered estimator) inside snnTorch and SpikingJelly networks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import htaf
from htaf import estimators
from htaf.interop import snntorch as hs
from htaf.interop import spikingjelly as hj

snn = pytest.importorskip("snntorch", reason="the [interop] extra is not installed")
sj = pytest.importorskip("spikingjelly.activation_based", reason="the [interop] extra")


def toy(seed=0, n=64, steps=6):
    """Two classes of rate-coded 20-pixel patterns: class 1 is bright in the first half."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    p = torch.full((n, 20), 0.1)
    p[y == 1, :10] = 0.9
    p[y == 0, 10:] = 0.9
    return (torch.rand(steps, n, 20, generator=g) < p).float(), y


def train(model, run, steps=40):
    x, y = toy()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(run(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad(), htaf.harden(model):
        accuracy = (run(x).argmax(1) == y).float().mean().item()
    return losses, accuracy


def snntorch_net(spike_grad):
    net = nn.ModuleDict({
        "fc1": nn.Linear(20, 32), "lif1": snn.Leaky(beta=0.9, spike_grad=spike_grad),
        "fc2": nn.Linear(32, 2), "lif2": snn.Leaky(beta=0.9, spike_grad=spike_grad),
    })  # fmt: skip

    def run(x):
        mem1, mem2, count = net["lif1"].reset_mem(), net["lif2"].reset_mem(), 0
        for t in range(x.shape[0]):
            s1, mem1 = net["lif1"](net["fc1"](x[t]), mem1)
            s2, mem2 = net["lif2"](net["fc2"](s1), mem2)
            count = count + s2
        return count

    return net, run


def spikingjelly_net(surrogate_function):
    from spikingjelly.activation_based import functional, layer, neuron

    net = nn.Sequential(
        layer.Linear(20, 32, step_mode="m"),
        neuron.LIFNode(tau=2.0, surrogate_function=surrogate_function, step_mode="m"),
        layer.Linear(32, 2, step_mode="m"),
        neuron.LIFNode(tau=2.0, surrogate_function=surrogate_function, step_mode="m"),
    )

    def run(x):
        functional.reset_net(net)
        return net(x).sum(0)

    return net, run


@pytest.mark.parametrize("make", [snntorch_net, spikingjelly_net])
@pytest.mark.parametrize("name", ["htaf", "atan"])
def test_a_small_network_trains_in_each_peer(make, name):
    torch.manual_seed(0)
    fn = hs.spike_grad(name) if make is snntorch_net else hj.surrogate(name)
    net, run = make(fn)
    assert fn in list(net.modules())  # a submodule: harden/soften reach it
    losses, accuracy = train(net, run)
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy >= 0.9  # with exact spikes


@pytest.mark.parametrize("make", [snntorch_net, spikingjelly_net])
@pytest.mark.parametrize("name", estimators.names())
def test_every_registered_estimator_works_in_each_peer(make, name):
    torch.manual_seed(0)
    fn = hs.spike_grad(name) if make is snntorch_net else hj.surrogate(name)
    net, run = make(fn)
    x, y = toy(steps=3)
    F.cross_entropy(run(x), y).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with torch.no_grad(), htaf.harden(net):
        assert set(run(x).flatten().tolist()) <= {0.0, 1.0, 2.0, 3.0}  # counts of exact spikes


def test_htaf_parameters_and_modes_reach_the_peer():
    fn = hs.spike_grad("htaf", alpha0=1.5, alpha1=6.0, mode="hard")
    assert (fn.alpha0, fn.alpha1, fn.mode) == (1.5, 6.0, "hard")
    lif = snn.Leaky(beta=0.9, spike_grad=fn)
    spk, _ = lif(torch.tensor([0.5, 1.0, 2.0]), torch.zeros(3))
    assert spk.tolist() == [0.0, 1.0, 1.0]  # htaf's convention: fires at mem >= threshold
    with pytest.raises(ValueError, match="spikes are 0/1"):
        hj.surrogate("ste", signed=True)
    with pytest.raises(ValueError, match="unknown estimator"):
        hs.spike_grad("htfa")
