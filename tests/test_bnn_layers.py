"""Quantized layers: exact ±1 once hardened, the smooth signed HTAF, scaling, clip and flips."""

import math

import pytest
import torch
import torch.nn.functional as F

import htaf
from htaf.estimators import get
from htaf.families.bnn import QuantConv2d, QuantizerError, QuantLinear, weight_clip
from htaf.families.bnn.layers import ModeBatchNorm1d
from htaf.train.callbacks import activation_modules


def sign64(t):
    """An independent float64 reference of the hard forward: sign with sign(0) = +1."""
    return torch.where(t.double() >= 0, 1.0, -1.0).double()


@pytest.mark.parametrize("est", ["htaf", "ste_clipped", "approx_sign", "swish_sign", "ste"])
@pytest.mark.parametrize("scaling", ["none", "mean_abs", "learned"])
def test_hardened_linear_is_exactly_binary(est, scaling):
    layer = QuantLinear(16, 8, input_quantizer=est, kernel_quantizer=est, scaling=scaling)
    x = torch.randn(32, 16)
    x[0, :4] = 0.0  # sign(0) = +1
    htaf.harden(layer)
    w = layer.quantized_weight()
    alpha = torch.ones(8, dtype=torch.float64)
    if scaling == "mean_abs":
        alpha = layer.weight.detach().double().abs().mean(1)
    elif scaling == "learned":
        alpha = layer.scale.detach().double()
    assert torch.equal(torch.sign(w).double(), sign64(layer.weight))  # exactly ±alpha
    torch.testing.assert_close(w.abs().double(), alpha[:, None].expand(8, 16), rtol=1e-6, atol=0)
    want = sign64(x) @ (sign64(layer.weight) * alpha[:, None]).T + layer.bias.detach().double()
    torch.testing.assert_close(layer(x).double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pad_value", [1.0, -1.0, 0.0])
def test_hardened_conv_uses_signs_of_inputs_and_weights(pad_value):
    """The padding adds ``pad_value`` around the ±1 input (default 1: still binary)."""
    kwargs = {} if pad_value == 1.0 else {"pad_value": pad_value}
    layer = QuantConv2d(3, 4, 3, padding=1, bias=False, input_quantizer="htaf",
                        kernel_quantizer="htaf", **kwargs)  # fmt: skip
    x = torch.randn(2, 3, 6, 6)
    htaf.harden(layer)
    padded = F.pad(sign64(x), (1, 1, 1, 1), value=pad_value)
    want = F.conv2d(padded, sign64(layer.weight))
    torch.testing.assert_close(layer(x).double(), want)
    assert set(layer.quantized_weight().unique().tolist()) == {-1.0, 1.0}


def test_smooth_signed_htaf_is_tanh_of_tanh():
    """2·HTAF − 1 = tanh((a1/2)·tanh(a0·x)) on weights and inputs in the smooth forward."""
    layer = QuantLinear(6, 5, bias=False, input_quantizer="htaf(3,7)",
                        kernel_quantizer="htaf(3,7)")  # fmt: skip
    assert layer.kernel_quantizer.mode == "smooth"

    def ref(t):
        return torch.tanh(3.5 * torch.tanh(3.0 * t.double()))

    x = torch.randn(10, 6)
    torch.testing.assert_close(layer.quantized_weight().double(), ref(layer.weight))
    torch.testing.assert_close(
        layer(x).double(), ref(x) @ ref(layer.weight).T, rtol=1e-5, atol=1e-6
    )


def test_scale_has_no_gradient_for_mean_abs_and_learns_when_learned():
    for scaling, learns in (("mean_abs", False), ("learned", True)):
        layer = QuantLinear(4, 3, kernel_quantizer="ste_clipped", scaling=scaling)
        layer(torch.randn(5, 4)).sum().backward()
        assert layer.weight.grad is not None
        scale = getattr(layer, "scale", None)
        assert (scale is not None and scale.grad is not None) == learns


def test_constrain_clips_latent_weights_and_counts_flips():
    layer = QuantLinear(10, 10, kernel_quantizer="ste_clipped")
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.weight[0, :3] = -0.5
    layer.set_kernel_quantizer("ste_clipped")  # reference = the signs above
    with torch.no_grad():
        layer.weight[0, :3] = 2.0  # 3 flips, clipped back to 1
    layer.constrain_()
    assert layer.weight.max() == 1.0
    with torch.no_grad():
        layer.weight[1, 0] = -3.0  # 1 flip in the second step
    layer.constrain_()
    assert layer.weight.min() == -1.0
    assert layer.pop_flip_ratio() == pytest.approx((3 + 1) / (2 * 100))
    assert math.isnan(layer.pop_flip_ratio())  # reset: no step since


def test_full_precision_layer_is_a_plain_layer():
    layer = QuantLinear(4, 3)
    x = torch.randn(2, 4)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    layer.constrain_()  # nothing to clip
    assert not layer.binary and layer.precision() == (32, 32)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("relu", "continuous activation, not an estimator"),
        ("sgn", "unknown estimator 'sgn'"),
        ("htaf(a=1)", "no parameter"),
        (torch.nn.Tanh(), "must be an estimator name"),
        (get("htaf"), "build it with signed=True"),
    ],
)
def test_quantizer_that_is_not_a_signed_estimator_is_refused(spec, words):
    with pytest.raises(QuantizerError, match="kernel_quantizer") as err:
        QuantLinear(3, 3, kernel_quantizer=spec)
    assert words in str(err.value)
    assert isinstance(err.value, ValueError)


def test_kernel_quantizers_are_not_counted_as_activations():
    net = torch.nn.Sequential(
        QuantLinear(4, 4, kernel_quantizer="ste_clipped"),
        QuantLinear(4, 2, input_quantizer="htaf", kernel_quantizer="htaf"),
    )
    acts = activation_modules(net)
    assert acts == [net[1].input_quantizer]
    assert net[1].kernel_quantizer.quantizes_weights


def test_mode_norm_keeps_the_statistics_of_each_forward_apart():
    bn = ModeBatchNorm1d(3)
    x = torch.randn(64, 3) * 2 + 5
    bn.stats = "hard"
    bn.train()
    bn(x)
    assert torch.equal(bn.running_mean, torch.zeros(3))  # the other sets are untouched
    assert torch.equal(bn.smooth_mean, torch.zeros(3))
    torch.testing.assert_close(bn.hard_mean, 0.1 * x.mean(0))
    bn.eval()
    bn.stats = "mixed"
    torch.testing.assert_close(bn(x), F.batch_norm(x, torch.zeros(3), torch.ones(3),
                                                   bn.weight, bn.bias))  # fmt: skip
    bn.stats = "hard"
    torch.testing.assert_close(bn(x), F.batch_norm(x, bn.hard_mean, bn.hard_var,
                                                   bn.weight, bn.bias))  # fmt: skip
    bn.stats = "smooth"  # never estimated: the usual statistics
    torch.testing.assert_close(bn(x), F.batch_norm(x, torch.zeros(3), torch.ones(3),
                                                   bn.weight, bn.bias))  # fmt: skip


def _plain_loop(clip: bool, steps: int = 5) -> tuple[torch.nn.Module, list[float]]:
    """A plain PyTorch loop, SGD with a learning rate that pushes weights far past 1."""
    torch.manual_seed(0)
    conv = QuantConv2d(1, 2, 3, input_quantizer="ste_clipped", kernel_quantizer="ste_clipped")
    dense = QuantLinear(18, 3, kernel_quantizer="ste_clipped", scaling="mean_abs")
    model = torch.nn.Sequential(conv, torch.nn.Flatten(), dense)
    opt = torch.optim.SGD(model.parameters(), lr=50.0)
    if clip:
        weight_clip(opt, model)
    x, y = torch.randn(16, 1, 5, 5), torch.randint(0, 3, (16,))
    largest = []
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        largest.append(max(float(m.weight.detach().abs().max()) for m in (conv, dense)))
    return model, largest


def test_weight_clip_keeps_a_plain_loops_binary_weights_in_the_unit_interval():
    _, unclipped = _plain_loop(clip=False)
    assert max(unclipped) > 1.5  # the loop does push the latent weights out
    model, largest = _plain_loop(clip=True)
    assert all(w <= 1.0 for w in largest)
    conv, dense = model[0], model[2]
    assert conv.steps == dense.steps == 5  # flips counted after every step, as the engine
    assert not math.isnan(dense.pop_flip_ratio())
    opt = torch.optim.SGD(model.parameters(), lr=50.0)
    weight_clip(opt, model).remove()  # the handle stops it
    with pytest.raises(ValueError, match="no layer to clip"):
        weight_clip(opt, torch.nn.Linear(2, 2))


def test_soften_keeps_kernel_quantizers_hard_unless_asked():
    """``soften`` defaults to the activations (a kernel quantizer trains hard: softening it
    evaluates weights the model never trained with); ``which`` reaches the weights."""
    import htaf

    net = torch.nn.Sequential(
        QuantLinear(4, 4, input_quantizer="htaf(0.25, 11)", kernel_quantizer="ste_clipped"),
        QuantLinear(4, 2, input_quantizer="htaf(0.25, 11)", kernel_quantizer="approx_sign"),
    )
    acts = [layer.input_quantizer for layer in net]
    kernels = [layer.kernel_quantizer for layer in net]
    htaf.harden(net)
    modes = lambda ests: {e.mode for e in ests}  # noqa: E731
    with htaf.soften(net):
        assert modes(acts) == {"smooth"} and modes(kernels) == {"hard"}
    assert modes(acts + kernels) == {"hard"}
    with htaf.soften(net, which="both"):
        assert modes(acts + kernels) == {"smooth"}
    with htaf.soften(net, which="weights"):
        assert modes(acts) == {"hard"} and modes(kernels) == {"smooth"}
    htaf.soften(net, which="both")
    with htaf.harden(net, which="activations"):
        assert modes(acts) == {"hard"} and modes(kernels) == {"smooth"}
    with htaf.harden(net):
        assert modes(acts + kernels) == {"hard"}
    with htaf.set_mode(net, "hard"):  # the engine's binary forward: every estimator
        assert modes(acts + kernels) == {"hard"}
    htaf.harden(net)
    with htaf.set_mode(net, "smooth"):  # the engine's smooth forward: the activations only
        assert modes(acts) == {"smooth"} and modes(kernels) == {"hard"}
    with htaf.set_mode(net, "smooth", which="both"):
        assert modes(acts + kernels) == {"smooth"}
    for call in (htaf.soften, htaf.harden):
        with pytest.raises(ValueError, match="which"):
            call(net, which="kernels")
    with pytest.raises(ValueError, match="which"):
        htaf.set_mode(net, "smooth", which="all")


def test_soften_by_default_keeps_a_trained_bnn_at_its_trained_accuracy():
    """A kernel quantizer trained hard: the default ``soften`` gives the as-trained forward,
    ``which="both"`` the forward of softened weights."""
    import htaf

    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = (x[:, :4].sum(1) > x[:, 4:].sum(1)).long()
    net = torch.nn.Sequential(
        QuantLinear(8, 32, kernel_quantizer="ste_clipped"),
        torch.nn.BatchNorm1d(32),
        QuantLinear(32, 2, input_quantizer="htaf(0.25, 11)", kernel_quantizer="ste_clipped"),
    )
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        with torch.no_grad():
            for layer in (net[0], net[2]):
                layer.weight.clamp_(-1, 1)
    net.eval()
    with torch.no_grad():
        trained = net(x)
        with htaf.soften(net):
            assert torch.equal(net(x), trained)
        with htaf.soften(net, which="both"):
            assert not torch.equal(net(x), trained)
