"""Conv SNNs keep their spikes as bits: the same gradients as nn.Conv2d -> nn.BatchNorm2d ->
nn.MaxPool2d on float spikes, fewer bytes saved for backward, and time-chunk checkpointing."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _saved_bytes import saved_activation_bytes
from htaf.families.snn import stages
from htaf.families.snn.layers import SpikeTrain, spike_conv_bn
from htaf.families.snn.models import NeuronSpec, build_network

ARCHS = [
    ("cnn", (1, 8, 8), {"channels": (4, 8), "widths": (16,)}),
    ("sew_resnet", (3, 8, 8), {"channels": (4, 8), "blocks": (2, 1), "encoder": "poisson"}),
]


def plain_conv_bn(inp, conv, bn):
    """The modules themselves on the merged batch: they keep their float inputs."""
    x = inp.values if inp.constant else inp.values.flatten(0, 1)
    y = bn(conv(x))
    return y if inp.constant else y.unflatten(0, inp.values.shape[:2])


def plain_max_pool(inp, pool):
    y = pool(inp.values.flatten(0, 1)).unflatten(0, inp.values.shape[:2])
    return SpikeTrain(y, inp.steps, binary=inp.binary)


def run_both(arch, shape, kw, spike_fn, monkeypatch, bn_eval=False, steps=4):
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
        patch.setattr(stages, "spike_conv_bn", plain_conv_bn)
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
