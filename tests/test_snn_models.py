"""Spiking MLP, CNN and SEW-ResNet: shapes, gradients, statistics, memory, checkpointing."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import htaf
from _saved_bytes import saved_activation_bytes
from htaf.families.snn import functional as SF
from htaf.families.snn import fused
from htaf.families.snn.layers import SpikeTrain, spike_linear
from htaf.families.snn.models import NeuronSpec, build_network


def net(arch="mlp", shape=(1, 8, 8), spike_fn="atan", **kw):
    spec = NeuronSpec(spike_fn=spike_fn, **kw.pop("spec", {}))
    kw.setdefault("widths", (16,))
    kw.setdefault("channels", (4, 8))
    kw.setdefault("steps", 4)
    return build_network(arch, shape, 3, spec, **kw)


@pytest.mark.parametrize("spike_fn", ["htaf", "atan", "relu"])
@pytest.mark.parametrize(
    ("arch", "shape", "extra"),
    [
        ("mlp", (1, 8, 8), {}),
        ("cnn", (1, 8, 8), {}),
        ("cnn", (1, 8, 8), {"widths": ()}),
        ("sew_resnet", (3, 16, 16), {"channels": (4, 8), "blocks": (1, 1)}),
    ],
)
def test_every_architecture_trains_in_both_kinds(arch, shape, extra, spike_fn):
    torch.manual_seed(0)
    model = net(arch, shape, spike_fn, **extra)
    x = torch.rand(5, *shape)
    logits = model(x)
    assert logits.shape == (5, 3) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 0, 1])).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    with htaf.harden(model):
        assert model.eval()(x).shape == (5, 3)


@pytest.mark.parametrize("connect", ["ADD", "AND", "IAND"])
def test_sew_connect_functions(connect):
    model = net("sew_resnet", (3, 8, 8), channels=(4,), blocks=(2,), connect=connect)
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("decoder", ["count", "membrane", "first_spike"])
@pytest.mark.parametrize("encoder", ["poisson", "latency", "direct"])
def test_encoders_and_decoders_combine(encoder, decoder):
    model = net(encoder=encoder, decoder=decoder)
    out = model(torch.rand(4, 1, 8, 8))
    out.sum().backward()
    assert out.shape == (4, 3)


def test_bad_architecture_and_shapes_name_themselves():
    with pytest.raises(ValueError, match="unknown architecture 'vit'"):
        net("vit")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        net("cnn", shape=(64,))
    with pytest.raises(ValueError, match="expected a batch of shape"):
        net()(torch.rand(4, 64))
    with pytest.raises(ValueError, match="unknown neuron 'hh'"):
        NeuronSpec(kind="hh")


def test_evaluation_is_deterministic_and_training_draws_fresh_spikes():
    model = net(decoder="membrane")
    x = torch.rand(6, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_normalised_batches_are_turned_back_into_intensities():
    norm = {"mean": [0.3], "std": [0.2]}
    model = net(normalize=norm, clamp=True)
    pixels = torch.rand(3, 1, 8, 8)
    assert torch.allclose(model.intensities((pixels - 0.3) / 0.2), pixels, atol=1e-6)


def test_eval_stats_report_rates_silence_saturation_and_spike_counts():
    model = net(spec={"threshold": 1e6}).eval()  # nothing can reach the threshold
    stats = model.eval_stats(torch.rand(8, 1, 8, 8))
    assert stats["rate"] == 0 and stats["silent"] == 1 and stats["saturated"] == 0
    assert stats["spikes_per_sample"] == 0 and stats["rate_layer1"] == 0
    assert 0 < stats["input_spikes_per_sample"] <= 4 * 64
    model = net(spec={"threshold": 1e-6}, decoder="count").eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.bias.fill_(1.0)
                m.weight.zero_()
    stats = model.eval_stats(torch.rand(8, 1, 8, 8))
    assert stats["rate"] == 1 and stats["saturated"] == 1 and stats["silent"] == 0
    assert stats["spikes_per_sample"] == 4 * (16 + 3)  # T x (hidden + output neurons)
    assert set(stats) >= {"rate_layer1", "silent_layer2", "saturated_layer2"}


def test_eval_arrays_hold_rasters_and_membrane_traces():
    model = net().eval()
    arrays = model.eval_arrays(torch.rand(2, 1, 8, 8))
    assert arrays["spikes.input"].shape == (2, 4, 64)
    assert arrays["spikes.layer1"].shape == (2, 4, 16)
    assert arrays["membrane.layer1"].shape[:2] == (2, 4)
    assert float(arrays["threshold"]) == 1.0
    assert net(spike_fn="relu").eval_arrays(torch.rand(2, 1, 8, 8)) == {}


def test_epoch_stats_are_the_training_firing_rates():
    model = net()
    model(torch.rand(4, 1, 8, 8))
    with torch.no_grad():
        model.eval()(torch.rand(4, 1, 8, 8))  # evaluation does not count
    stats = model.epoch_stats()
    assert set(stats) == {"rate_input", "rate_layer1"}
    assert 0 <= stats["rate_layer1"] <= 1
    assert model.epoch_stats() == {}  # reset after each call


# -- the memory-light synapse ----------------------------------------------------------------
@pytest.mark.parametrize("store", ["bits", "membrane", "input"])
def test_spike_linear_has_the_gradients_of_a_linear_layer(store):
    torch.manual_seed(0)
    layer = nn.Linear(6, 4).double()
    if store == "membrane":
        h = torch.randn(3, 2, 6, dtype=torch.float64, requires_grad=True)
        est = htaf.estimators.get("htaf")
        seq = fused.neuron_sequence(h, SF.LIFParameters(), est)
        train = SpikeTrain.from_neurons(seq, binary=False)
    else:
        values = torch.randn(3, 2, 6, dtype=torch.float64)
        values = (values > 0).double() if store == "bits" else values
        train = SpikeTrain(values.requires_grad_(), 3, binary=store == "bits")
    x = train.values
    g = torch.randn(3, 2, 4, dtype=torch.float64)
    got = torch.autograd.grad((spike_linear(train, layer) * g).sum(), [x, layer.weight, layer.bias])
    want = torch.autograd.grad((layer(x) * g).sum(), [x, layer.weight, layer.bias])
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_the_mlp_saves_under_half_of_an_unrolled_network():
    """The same 64-128-10 LIF MLP with nn.Linear and an unrolled loop (what the peers do)."""
    torch.manual_seed(0)
    steps, batch = 16, 32
    spec = NeuronSpec(spike_fn="sigmoid_surrogate", detach_reset=False)
    model = build_network("mlp", (64,), 10, spec, widths=(128,), steps=steps, decoder="count")
    x = (torch.rand(steps, batch, 64) < 0.3).float()
    y = torch.randint(0, 10, (batch,))
    fc1, fc2 = (m for m in model.modules() if isinstance(m, nn.Linear))
    est = htaf.estimators.get("sigmoid_surrogate")
    p = SF.LIFParameters(beta=0.9, detach_reset=False)  # the peers' reset, as the spec's

    def unrolled():
        v1 = v2 = None
        count = 0
        for t in range(steps):
            s1, v1 = SF.lif_step(fc1(x[t]), v1, p, est)
            s2, v2 = SF.lif_step(fc2(s1), v2, p, est)
            count = count + s2
        return F.cross_entropy(count, y)

    def fused_model():
        return F.cross_entropy(model.head.decode(model.body(SpikeTrain(x, steps, binary=True))), y)

    with torch.no_grad():
        assert torch.allclose(unrolled(), fused_model(), atol=1e-5)
    ours, theirs = (
        saved_activation_bytes(model, fused_model),
        saved_activation_bytes(model, unrolled),
    )
    assert ours <= 0.5 * theirs
    # the floor: the two membrane sequences in float32 and the input spikes as bits, plus
    # what the loss keeps (the log-softmax and the targets: 1.5 KiB)
    floor = steps * batch * ((128 + 10) * 4 + 64 // 8)
    assert floor <= ours <= floor + 2048


def test_checkpointing_over_time_chunks_gives_the_same_gradients_with_less_memory():
    torch.manual_seed(0)
    model = net(steps=12, widths=(32,), spec={"kind": "plif"}, checkpoint_steps=0)
    x = torch.rand(6, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    results = {}
    for chunk in (0, 5):
        model.checkpoint_steps = chunk
        model.zero_grad()
        torch.manual_seed(3)  # the same Poisson draws
        nbytes = saved_activation_bytes(model, lambda: F.cross_entropy(model(x), y))
        results[chunk] = (nbytes, [p.grad.clone() for p in model.parameters()])
    for a, b in zip(results[0][1], results[5][1], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert results[5][0] < 0.5 * results[0][0]
    stats = model.epoch_stats()  # the replayed chunks are not counted twice
    assert stats["rate_input"] == pytest.approx(float(x.mean()), abs=0.05)
