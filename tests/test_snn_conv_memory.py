"""Conv SNNs keep their spikes as bits: the same gradients as nn.Conv2d -> nn.BatchNorm2d ->
nn.MaxPool2d on float spikes, fewer bytes saved for backward, and time-chunk checkpointing."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _saved_bytes import saved_activation_bytes
from htaf.families.snn import layers, stages
from htaf.families.snn.layers import SpikeTrain, spike_conv_bn
from htaf.families.snn.models import NeuronSpec, build_network

ARCHS = [
    ("cnn", (1, 8, 8), {"channels": (4, 8), "widths": (16,)}),
    ("sew_resnet", (3, 8, 8), {"channels": (4, 8), "blocks": (2, 1), "encoder": "poisson"}),
]


def plain_conv_bn(inp, conv, bn):
    """The modules themselves on the merged batch, in the memory layout spike_conv_bn runs
    them in (channels-last on the CPU): they keep their float inputs."""
    x = layers.channels_last(inp.values if inp.constant else inp.values.flatten(0, 1))
    y = bn(conv(x))
    return y if inp.constant else y.unflatten(0, inp.values.shape[:2])


def plain_max_pool(inp, pool):
    y = pool(inp.values.flatten(0, 1)).unflatten(0, inp.values.shape[:2])
    return SpikeTrain(y, inp.steps, binary=inp.binary)


def standard_layout_conv_bn(inp, conv, bn):
    """The modules on the merged batch in the standard (N, C, H, W) memory layout."""
    x = inp.values if inp.constant else inp.values.flatten(0, 1)
    y = bn(conv(x))
    return y if inp.constant else y.unflatten(0, inp.values.shape[:2])


def run_both(arch, shape, kw, spike_fn, monkeypatch, bn_eval=False, steps=4, conv_bn=None):
    torch.manual_seed(0)
    model = build_network(arch, shape, 3, NeuronSpec(spike_fn=spike_fn), steps=steps, **kw)
    plain = copy.deepcopy(model)
    for m in (model, plain):
        for bn in m.modules():
            if bn_eval and isinstance(bn, nn.BatchNorm2d):
                bn.eval()
    x, y = torch.rand(5, *shape), torch.tensor([0, 1, 2, 0, 1])

    def loss(m):
        torch.manual_seed(1)  # the same Poisson draws
        return lambda: F.cross_entropy(m(x), y)

    ours = saved_activation_bytes([model, plain], loss(model))
    with monkeypatch.context() as patch:
        patch.setattr(stages, "spike_conv_bn", conv_bn or plain_conv_bn)
        patch.setattr(stages, "spike_max_pool", plain_max_pool)
        theirs = saved_activation_bytes([model, plain], loss(plain))
    return model, plain, ours, theirs


@pytest.mark.parametrize("bn_eval", [False, True])
@pytest.mark.parametrize("spike_fn", ["atan", "htaf"])
@pytest.mark.parametrize(("arch", "shape", "kw"), ARCHS)
def test_conv_snns_give_the_modules_gradients_and_keep_fewer_bytes(
    arch, shape, kw, spike_fn, bn_eval, monkeypatch
):
    model, plain, ours, theirs = run_both(arch, shape, kw, spike_fn, monkeypatch, bn_eval)
    for (name, a), b in zip(model.named_parameters(), plain.parameters(), strict=True):
        assert a.grad is not None, name
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7), name
    for a, b in zip(model.buffers(), plain.buffers(), strict=True):  # running statistics
        assert torch.equal(a, b)
    # exact spikes (atan) are kept as bits or not at all; HTAF's smooth spikes are floats,
    # kept through the neuron's membrane where a neuron made them
    assert ours <= (0.45 if spike_fn == "atan" else 0.5) * theirs


@pytest.mark.parametrize("spike_fn", ["atan", "htaf"])
@pytest.mark.parametrize(("arch", "shape", "kw"), ARCHS)
def test_channels_last_conv_snns_match_the_standard_layout_to_float32_rounding(
    arch, shape, kw, spike_fn, monkeypatch
):
    # Channels-last convolutions sum in another order: the same gradients up to float32
    # rounding (no spike flips at these sizes), the same running statistics to rounding.
    model, plain, _, _ = run_both(arch, shape, kw, spike_fn, monkeypatch,
                                  conv_bn=standard_layout_conv_bn)  # fmt: skip
    for (name, a), b in zip(model.named_parameters(), plain.parameters(), strict=True):
        scale = b.grad.abs().max()
        assert (a.grad - b.grad).abs().max() <= 1e-4 * scale + 1e-7, name
    for a, b in zip(model.buffers(), plain.buffers(), strict=True):
        assert torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-6)


def test_conv_stack_runs_channels_last_without_converting_back():
    torch.manual_seed(0)
    model = build_network("cnn", (3, 8, 8), 3, NeuronSpec(spike_fn="atan"), steps=2,
                          channels=(4, 8), widths=(16,))  # fmt: skip
    membranes = []
    model.stages[0].unit.observer = lambda seq: membranes.append(seq)
    model(torch.rand(2, 3, 8, 8)).sum().backward()
    seq = membranes[0]
    for t in (seq.spikes, seq.membrane):  # (T, B, C, H, W), the memory of (T·B) NHWC
        assert t.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
        assert not t.is_contiguous()
    assert torch.equal(seq.respike(seq.membrane), seq.spikes)
    assert seq.respike(seq.membrane).flatten(0, 1).is_contiguous(memory_format=torch.channels_last)


def test_sums_of_spikes_are_kept_as_uint8():
    train = SpikeTrain((torch.rand(2, 3, 2, 6, 6) < 0.5).float() * 2, 2, levels=2)
    train.values.requires_grad_(True)
    conv, bn = nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
    kept = []

    def pack(t):
        kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = spike_conv_bn(train, conv, bn)
    assert any(t.dtype == torch.uint8 and t.shape == (6, 2, 6, 6) for t in kept)
    assert not any(t.dtype == torch.float32 and t.numel() >= 6 * 2 * 36 for t in kept)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    (out * r).sum().backward()
    x = train.values.detach().flatten(0, 1).double().requires_grad_(True)
    conv64, bn64 = copy.deepcopy(conv).double(), copy.deepcopy(bn).double()
    for p in (*conv64.parameters(), *bn64.parameters()):
        p.grad = None
    (bn64(conv64(x)) * r.flatten(0, 1).double()).sum().backward()  # the float64 reference
    assert torch.allclose(conv.weight.grad.double(), conv64.weight.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(train.values.grad.flatten(0, 1).double(), x.grad, atol=1e-4)


@pytest.mark.parametrize(("arch", "shape", "kw"), ARCHS)
def test_time_chunk_checkpointing_covers_conv_snns(arch, shape, kw):
    torch.manual_seed(0)
    model = build_network(arch, shape, 3, NeuronSpec(spike_fn="atan"), steps=8, **kw)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:  # fixed statistics: a chunk normalises as the whole sequence does
        bn.eval()
    x, y = torch.rand(4, *shape), torch.tensor([0, 1, 2, 0])
    results = {}
    for chunk in (0, 3):
        model.checkpoint_steps = chunk
        model.zero_grad()
        torch.manual_seed(3)
        nbytes = saved_activation_bytes([model], lambda: F.cross_entropy(model(x), y))
        results[chunk] = (nbytes, [p.grad.clone() for p in model.parameters()])
    for a, b in zip(results[0][1], results[3][1], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert results[3][0] < 0.6 * results[0][0]
    # training BatchNorm: one update of the running statistics per chunk, none in the replay
    for bn in bns:
        bn.train()
    before = [bn.num_batches_tracked.item() for bn in bns]
    F.cross_entropy(model(x), y).backward()
    counted = [bn.num_batches_tracked.item() - b for bn, b in zip(bns, before, strict=True)]
    assert counted == [3] * len(bns)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_checkpoint_steps_must_be_a_count():
    with pytest.raises(ValueError, match="checkpoint_steps"):
        build_network("cnn", (1, 8, 8), 3, NeuronSpec(), checkpoint_steps=-2)


@pytest.mark.parametrize("const", [False, True])
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_neurons_on_channels_last_input_equal_the_standard_layout(const, backend):
    from htaf.estimators import activation
    from htaf.families.snn.functional import LIFParameters
    from htaf.families.snn.fused import neuron_sequence

    gen = torch.Generator().manual_seed(0)
    shape = (6, 3, 5, 4) if const else (3, 2, 3, 5, 4)  # (B, C, H, W) or (T, B, C, H, W)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) + 0.5
    v0 = torch.randn(shape if const else shape[1:], generator=gen, dtype=torch.float64)
    g = torch.randn((4, *shape) if const else shape, generator=gen, dtype=torch.float64)
    results = []
    for cl in (False, True):
        xi, vi = x.clone(), v0.clone()
        if cl:  # (T·B or B, C, H, W) in channels-last memory, as the conv stack hands it on
            xi = xi.flatten(0, -4).contiguous(memory_format=torch.channels_last)
            xi = xi.view(shape) if const else xi.unflatten(0, shape[:2])
            vi = vi.contiguous(memory_format=torch.channels_last)
            assert not xi.is_contiguous()
        xi.requires_grad_(True)
        vi.requires_grad_(True)
        seq = neuron_sequence(xi, LIFParameters(beta=0.8), activation("atan"), v0=vi,
                              steps=4 if const else None, backend=backend)  # fmt: skip
        ((seq.spikes * g).sum() + seq.v.sum()).backward()
        if cl:
            assert not seq.spikes.is_contiguous()  # left in the input's memory order
        results.append((seq.spikes, seq.membrane, seq.v, xi.grad, vi.grad))
    for a, b in zip(*results, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, padding=1)])
def test_max_pool_keeps_int32_positions_and_gives_the_modules_gradients(layout, pool):
    from htaf.families.snn.layers import spike_max_pool

    gen = torch.Generator().manual_seed(0)
    # 0/1 spikes: most windows hold ties, which must go where ATen sends them (the first maximum)
    x = (torch.rand(2, 3, 2, 7, 6, generator=gen, dtype=torch.float64) < 0.4).double()
    x = x.flatten(0, 1).contiguous(memory_format=layout).unflatten(0, (2, 3))
    g = torch.randn(pool(x.flatten(0, 1)).unflatten(0, (2, 3)).shape, generator=gen,
                    dtype=torch.float64)  # fmt: skip
    ours, theirs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    kept = []

    def pack(t):
        kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = spike_max_pool(SpikeTrain(ours, 2, binary=True), pool).values
    assert [t.dtype for t in kept] == [torch.int32]
    (out * g).sum().backward()
    ref = pool(theirs.flatten(0, 1)).unflatten(0, (2, 3))
    (ref * g).sum().backward()
    assert torch.equal(out, ref) and torch.equal(ours.grad, theirs.grad)


def test_training_rates_are_exact_for_spikes_in_either_layout():
    model = build_network("cnn", (1, 8, 8), 3, NeuronSpec(spike_fn="atan"), steps=2,
                          channels=(4,), widths=(16,))  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    spikes = (torch.rand(3, 5, 4, 9, 7, generator=gen) < 0.3).float()
    smooth = torch.rand(3, 5, 4, 9, 7, generator=gen)
    cl = spikes.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (3, 5))
    for name, s in (("a", spikes), ("b", cl), ("c", smooth)):
        model._add_rate(name, s)
        model._add_rate(name, s)  # a second batch adds to the first
    rates = model.epoch_stats()
    exact = spikes.double().mean().item()
    assert rates["rate_a"] == exact and rates["rate_b"] == exact  # 0/1 sums are exact
    assert rates["rate_c"] == pytest.approx(smooth.double().mean().item(), rel=1e-6)
