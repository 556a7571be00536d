"""torch.compile(fullgraph=True) on every spiking architecture with its encoder: one graph,
the eager outputs and gradients (AOTAutograd with the eager backend: the graph is the one
inductor compiles, without the C++ build time; benchmarks/snn_step.py times inductor)."""

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.testing import CompileCounterWithBackend

from htaf.families.snn.models import NeuronSpec, build_network

# Each architecture with one neuron and estimator: a surrogate whose rule the kernel knows by
# formula, HTAF's smooth forward with a learned decay (PLIF), a rule passed in as a table.
CASES = [
    ("mlp", (64,), {"widths": (16,)}, "poisson", "atan", "lif"),
    ("cnn", (1, 8, 8), {"channels": (4,), "widths": (16,)}, "poisson", "htaf", "plif"),
    ("sew_resnet", (3, 8, 8), {"channels": (4, 8), "blocks": (1, 1)}, "direct", "erf", "if"),
    ("mlp", (64,), {"widths": (16,)}, "poisson", "atan", "synaptic"),  # a current-based LIF
]


def model(arch, shape, kw, encoder, spike_fn, kind):
    torch.manual_seed(0)
    net = build_network(arch, shape, 3, NeuronSpec(kind=kind, spike_fn=spike_fn, beta=0.8),
                        steps=4, encoder=encoder, **kw)  # fmt: skip
    with torch.no_grad():  # htaf(auto) calibrates on its first input, in eager mode
        net(torch.rand(3, *shape))
    return net


@pytest.mark.parametrize(("arch", "shape", "kw", "encoder", "spike_fn", "kind"), CASES)
def test_fullgraph_compile_matches_eager(arch, shape, kw, encoder, spike_fn, kind):
    torch._dynamo.reset()
    eager, compiled = (model(arch, shape, kw, encoder, spike_fn, kind) for _ in range(2))
    step = torch.compile(compiled, fullgraph=True, backend="aot_eager")
    x, y = torch.rand(3, *shape), torch.tensor([0, 1, 2])
    losses = []
    for net in (step, eager):
        torch.manual_seed(5)  # the same Poisson draws
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        losses.append(loss.detach())
    assert torch.isfinite(losses[0]) and torch.allclose(losses[0], losses[1], atol=1e-6)
    for (name, a), b in zip(compiled.named_parameters(), eager.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7), name
    assert compiled.epoch_stats() == pytest.approx(eager.epoch_stats())
    for a, b in zip(compiled.buffers(), eager.buffers(), strict=True):  # BatchNorm statistics
        assert torch.equal(a, b)
    compiled.eval()
    with torch.no_grad():  # the eval-mode graph (fixed draws, running statistics) as well
        assert torch.allclose(step(x), eager.eval()(x), atol=1e-6)


def test_training_steps_reuse_the_compiled_graphs():
    torch._dynamo.reset()
    net = model(*CASES[1])
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(net, fullgraph=True, backend=counter)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2])
    net.epoch_stats()  # forget the rates of the eager warm-up
    for _ in range(4):
        opt.zero_grad()
        F.cross_entropy(step(x), y).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        step(x), step(x)
    # training with no rates yet, training with rates, eval: nothing per batch
    assert counter.frame_count == 3
    assert 0 < net.epoch_stats()["rate_layer1"] < 1  # summed over the compiled steps


def test_compiled_encoder_still_refuses_intensities_outside_0_1():
    torch._dynamo.reset()
    net = model("mlp", (64,), {"widths": (16,)}, "poisson", "atan", "lif")
    step = torch.compile(net, fullgraph=True, backend="aot_eager")
    bad = torch.rand(3, 64)
    bad[1, 5] = 1.5
    with pytest.raises(RuntimeError, match=r"encoder 'poisson' takes intensities in \[0, 1\]"):
        step(bad)


def test_an_uncalibrated_htaf_auto_says_to_calibrate_before_compiling():
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = build_network("mlp", (64,), 3, NeuronSpec(spike_fn="htaf"), widths=(8,), steps=2)
    with pytest.raises(Exception, match=r"before torch\.compile"):
        torch.compile(net, fullgraph=True, backend="aot_eager")(torch.rand(2, 64))


def test_compiled_synapses_on_sparse_spikes_gather_as_in_eager(monkeypatch):
    """A 64-wide first synapse on 20% Poisson spikes takes the binary-matmul operators in the
    compiled graph, with the eager losses and gradients."""
    from htaf.families.snn import _compiled
    from htaf.families.snn import binary_matmul as bm

    if not _compiled.GATHER:
        pytest.skip("no C compiler for the binary-matmul kernel")
    calls = []
    real = bm._gather
    monkeypatch.setattr(bm, "_gather", lambda *a: calls.append(1) or real(*a))
    torch._dynamo.reset()
    case = ("mlp", (64,), {"widths": (64,)}, "poisson", "atan", "lif")
    eager, compiled = (model(*case) for _ in range(2))
    step = torch.compile(compiled, fullgraph=True, backend="aot_eager")
    x, y = 0.4 * torch.rand(3, 64), torch.tensor([0, 1, 2])
    losses = []
    for net in (step, eager):
        calls.clear()
        torch.manual_seed(5)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        losses.append(loss.detach())
        assert len(calls) == 2  # the forward and the weight gradient
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    for (name, a), b in zip(compiled.named_parameters(), eager.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6), name
