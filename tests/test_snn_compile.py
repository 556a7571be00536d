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


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_rate_code_draws_eager_modes_spikes_from_the_global_generator(backend):
    """In training the compiled rate code takes eager mode's draws from torch's global
    generator (inductor would make its own): the same spikes for the same seed, and the
    generator left where eager mode leaves it (a checkpoint carries it)."""
    from htaf.families.snn.encoders import Encoder

    torch._dynamo.reset()
    enc = Encoder("poisson", 5).train()
    x = torch.rand(4, 3, 6)
    spikes, after = [], []
    for fn in (enc, torch.compile(enc, fullgraph=True, backend=backend)):
        torch.manual_seed(11)
        spikes.append(fn(x))
        after.append(torch.rand(3))
    assert spikes[0].shape == (5, 4, 3, 6) and 0 < spikes[0].mean() < 1
    assert torch.equal(spikes[0], spikes[1]) and torch.equal(after[0], after[1])


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


# -- the conv stack's layers under dynamo ----------------------------------------------------------
POOLS = [
    ((2, 2), (2, 2), (0, 0)),  # tiles the input: uint8 positions, the fused backward
    ((3, 2), (3, 2), (0, 0)),  # tiles, with rows and columns past the last window
    ((3, 3), (2, 2), (1, 1)),  # overlapping windows: ATen's backward, int32 positions
]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(("kernel", "stride", "padding"), POOLS)
def test_compiled_max_pool_gives_the_modules_gradients(layout, kernel, stride, padding):
    """spike_max_pool under dynamo against nn.MaxPool2d in eager float64, on 0/1 spikes (ties
    in most windows, which go to the first maximum) and on distinct values."""
    from htaf.families.snn.layers import SpikeTrain, spike_max_pool

    torch._dynamo.reset()
    pool = torch.nn.MaxPool2d(kernel, stride, padding)
    gen = torch.Generator().manual_seed(0)
    for spikes in (True, False):
        x = torch.rand(2, 3, 4, 8, 7, generator=gen, dtype=torch.float64)
        x = (x < 0.4).double() if spikes else x
        x = x.flatten(0, 1).contiguous(memory_format=layout).unflatten(0, (2, 3))
        ref_in, ours = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ref = pool(ref_in.flatten(0, 1)).unflatten(0, (2, 3))
        g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
        (ref * g).sum().backward()
        kept = []

        def run(v, binary=spikes):
            return spike_max_pool(SpikeTrain(v, 2, binary=binary), pool).values

        def keep(t, kept=kept):
            kept.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            out = torch.compile(run, fullgraph=True, backend="aot_eager")(ours)
        (out * g).sum().backward()
        assert torch.equal(out, ref) and torch.equal(ours.grad, ref_in.grad)
        tiles = stride == kernel and padding == (0, 0)
        assert [t.dtype for t in kept if not t.is_floating_point()] == [
            torch.uint8 if tiles else torch.int32
        ]


def test_window_positions_and_scatter_match_aten_on_odd_sizes():
    """The fused pooling backward against ATen's, the formulas run eagerly: windows of 1x3
    and 3x1, planes that the windows do not fill, both layouts."""
    from htaf.families.snn import _compiled

    gen = torch.Generator().manual_seed(1)
    for kernel in ((1, 3), (3, 1), (2, 2)):
        for cl in (False, True):
            fmt = torch.channels_last if cl else torch.contiguous_format
            x = torch.rand(3, 5, 7, 8, generator=gen, dtype=torch.float64)
            x = x.contiguous(memory_format=fmt)
            y, where = F.max_pool2d(x, kernel, kernel, return_indices=True)
            at = _compiled.window_positions(where, list(x.shape), list(kernel), list(kernel),
                                            [0, 0], [1, 1], False)  # fmt: skip
            assert at.dtype == torch.uint8
            g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
            g = g.contiguous(memory_format=fmt)
            ours = _compiled.scatter_to_maxima(g, at, list(x.shape), cl, list(kernel))
            like = torch.empty_like(x)
            ref = torch.ops.aten.max_pool2d_with_indices_backward(
                g, like, list(kernel), list(kernel), [0, 0], [1, 1], False, where
            )
            assert torch.equal(ours, ref), (kernel, cl)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    _, where = F.max_pool2d(x, 3, 2, return_indices=True)
    assert _compiled.window_positions(where, [2, 3, 6, 6], [3, 3], [2, 2], [0, 0], [1, 1],
                                      False) is None  # fmt: skip


def test_strided_copy_hands_the_gradient_back_in_the_input_layout():
    from htaf.families.snn import _compiled

    x = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = _compiled.contiguous(x)  # to the standard layout: a copy
    assert y.is_contiguous() and torch.equal(y, x)
    g = torch.randn(y.shape, dtype=torch.float64)
    y.backward(g)
    assert torch.equal(x.grad, g) and x.grad.is_contiguous(memory_format=torch.channels_last)
    assert _compiled.contiguous(y) is y  # already so: no copy


def test_inductor_compiles_the_fused_pooling_backward():
    """The same pooling through inductor's C++ code (the uint8 positions and the comparisons
    it vectorises), against the modules in eager mode."""
    from htaf.families.snn.layers import SpikeTrain, spike_max_pool

    torch._dynamo.reset()
    pool = torch.nn.MaxPool2d(2)
    gen = torch.Generator().manual_seed(2)
    x = (torch.rand(16, 8, 7, 10, generator=gen) < 0.3).float()
    x = x.contiguous(memory_format=torch.channels_last).unflatten(0, (2, 8))
    ref_in, ours = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref = pool(ref_in.flatten(0, 1)).unflatten(0, (2, 8))
    g = torch.randn(ref.shape, generator=gen)
    (ref * g).sum().backward()
    run = torch.compile(lambda v: spike_max_pool(SpikeTrain(v, 2, binary=True), pool).values,
                        fullgraph=True)  # fmt: skip
    out = run(ours)
    (out * g).sum().backward()
    assert torch.equal(out, ref) and torch.equal(ours.grad, ref_in.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_respike_step_keeps_nan_and_matches_the_eager_step(dtype):
    from htaf.families.snn import _compiled, fused

    tiny = torch.finfo(dtype).tiny
    special = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, tiny, -tiny, 1e38, -1e38]
    u = torch.cat([torch.tensor(special, dtype=dtype), torch.randn(1000, dtype=dtype)])
    want = fused._step(u)
    for fn in (_compiled.step, torch.compile(_compiled.step, backend="inductor", fullgraph=True)):
        got = fn(u)
        assert got.dtype == dtype
        assert torch.equal(got.isnan(), want.isnan()) and got.isnan()[0]
        assert torch.equal(got.nan_to_num(), want.nan_to_num())
