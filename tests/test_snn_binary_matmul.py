"""The event-driven products of htaf.families.snn.binary_matmul against float64 references."""

import pytest
import torch
from torch import nn

import htaf
from htaf.families.snn import binary_matmul as bm
from htaf.families.snn import functional as SF
from htaf.families.snn import fused
from htaf.families.snn.fused import pack_bits
from htaf.families.snn.layers import SpikeTrain, spike_linear
from htaf.families.snn.models import NeuronSpec, build_network

needs_kernel = pytest.mark.skipif(not bm.available(), reason="no C compiler for the kernel")

# rows x cols x width: rows and cols off the 8-bit, 64-bit and chunk boundaries, widths off a tile
SHAPES = [(1, 1, 32), (7, 9, 33), (130, 129, 65), (64, 64, 64), (200, 300, 130), (3, 1000, 40)]


def same(a, b):
    """Equal element for element, NaN where NaN."""
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def ones(rows, cols, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(rows, cols, generator=g) < density).float()


@pytest.fixture
def any_width(monkeypatch):
    """The kernel on every width (its numerics do not depend on where it pays off)."""
    monkeypatch.setattr(bm, "MIN_WIDTH", 1)


@pytest.fixture
def gathers(monkeypatch):
    """Counts the kernel's gathers (so a test knows which path it ran)."""
    calls = []
    real = bm._gather

    def counted(*args):
        calls.append(args[0].numel())
        return real(*args)

    monkeypatch.setattr(bm, "_gather", counted)
    return calls


@needs_kernel
@pytest.mark.parametrize(("rows", "cols", "width"), SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.05, 0.2])
def test_gathered_products_equal_the_float64_dense_ones(
    rows, cols, width, density, gathers, any_width
):
    x = ones(rows, cols, density)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(width, cols, generator=g)
    b = torch.randn(width, generator=g)
    grad = torch.randn(rows, width, generator=g)
    bits = pack_bits(x)
    y = bm.linear(bits, (rows, cols), w, b)
    dw = bm.weight_grad(bits, (rows, cols), grad)
    assert len(gathers) == 2  # both ran the kernel, not the dense fallback
    want_y = x.double() @ w.double().t() + b.double()
    want_dw = grad.double().t() @ x.double()
    assert y.shape == (rows, width) and dw.shape == (width, cols)
    assert torch.allclose(y.double(), want_y, rtol=1e-5, atol=1e-4)
    assert torch.allclose(dw.double(), want_dw, rtol=1e-5, atol=1e-4)
    no_bias = bm.linear(bits, (rows, cols), w, None).double()
    assert torch.allclose(no_bias, want_y - b.double(), rtol=1e-5, atol=1e-4)


@needs_kernel
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (7, 9), (9, 7), (33, 65), (64, 64), (3, 100),
                                            (513, 70)])  # fmt: skip
def test_the_blocked_transpose_copies_exactly_what_aten_copies(rows, cols):
    """The kernel's transposes (dW from dW^T; W^T tile-major, zero padded) equal ATen's copies
    bit for bit, NaN and infinities included, off the 8 x 8 and 32 x 32 block boundaries."""
    m = torch.randn(rows, cols, generator=torch.Generator().manual_seed(rows * cols))
    m[0, 0], m[-1, -1], m[rows // 2, cols // 2] = float("nan"), float("inf"), -float("inf")
    t = bm._transpose(m)
    assert t.shape == (cols, rows) and t.is_contiguous()
    assert same(t, m.t())
    tiles = -(-rows // bm._load().tile)
    padded = torch.cat([m, m.new_zeros(tiles * bm._load().tile - rows, cols)])
    want = padded.t().reshape(cols, tiles, -1).transpose(0, 1)
    got = bm._tile_major(m.t())  # the forward's operand: the transposed weight (out x in = m)
    assert got.shape == want.shape and same(got, want)


@needs_kernel
def test_dense_input_and_narrow_layers_take_the_dense_product(gathers):
    x = ones(50, 70, 0.9)
    w = torch.randn(64, 70)
    y = bm.linear(pack_bits(x), (50, 70), w, None)
    assert gathers == []  # 90% ones: over MAX_DENSITY
    assert torch.allclose(y.double(), x.double() @ w.double().t(), atol=1e-4)
    narrow = torch.randn(bm.MIN_WIDTH - 1, 70)
    x = ones(50, 70, 0.1)
    y = bm.linear(pack_bits(x), (50, 70), narrow, None)
    assert gathers == []
    assert torch.allclose(y.double(), x.double() @ narrow.double().t(), atol=1e-4)


def test_without_the_kernel_the_same_functions_multiply_densely(monkeypatch):
    monkeypatch.setattr(bm._load, "result", None)
    x = ones(20, 30, 0.2)
    w, grad = torch.randn(64, 30), torch.randn(20, 64)
    bits = pack_bits(x)
    assert torch.allclose(bm.linear(bits, (20, 30), w, None), x @ w.t(), atol=1e-5)
    assert torch.allclose(bm.weight_grad(bits, (20, 30), grad), grad.t() @ x, atol=1e-5)


@needs_kernel
def test_inf_and_nan_in_the_operand_reach_exactly_the_rows_that_select_them(gathers):
    x = ones(40, 70, 0.2)
    x[:, 3] = 0
    x[::2, 3] = 1
    w = torch.randn(64, 70)
    w[5, 3] = float("inf")
    w[6, 3] = float("nan")
    w[7] = 3e38  # finite, but sums of two overflow, as in float32 dense arithmetic
    y = bm.linear(pack_bits(x), (40, 70), w, None)
    assert gathers
    want = x.double() @ w.double().t()
    assert torch.equal(torch.isnan(y[:, 6]), x[:, 3] == 1)
    assert torch.equal(torch.isinf(y[:, 5]), x[:, 3] == 1)
    assert torch.isfinite(torch.cat([y[:, :5], y[:, 8:]], 1)).all()
    assert torch.allclose(y[:, :5].double(), want[:, :5], atol=1e-4)
    assert torch.equal(torch.isinf(y[:, 7]), x.sum(1) * 3e38 > torch.finfo(torch.float32).max)


@needs_kernel
@pytest.mark.parametrize("store", ["bits", "membrane"])
def test_spike_linear_on_spikes_gathers_with_the_gradients_of_a_linear_layer(store, gathers):
    torch.manual_seed(0)
    layer = nn.Linear(70, 64)
    if store == "membrane":  # the exact spikes of a neuron layer, kept as its membrane
        h = torch.randn(6, 5, 70, requires_grad=True)
        seq = fused.neuron_sequence(h, SF.LIFParameters(), htaf.estimators.get("atan"))
        train = SpikeTrain.from_neurons(seq, binary=True)
    else:
        train = SpikeTrain((torch.rand(6, 5, 70) < 0.2).float().requires_grad_(), 6, binary=True)
    x = train.values
    g = torch.randn(6, 5, 64)
    got = torch.autograd.grad((spike_linear(train, layer) * g).sum(), [x, layer.weight, layer.bias])
    assert len(gathers) == 2
    want = torch.autograd.grad((layer(x) * g).sum(), [x, layer.weight, layer.bias])
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(spike_linear(train, layer), layer(x), atol=1e-5)
    assert len(gathers) == 3


@needs_kernel
def test_a_trained_mlp_is_the_same_with_and_without_the_kernel(monkeypatch, gathers):
    """Two Adam steps of a 64-64-3 LIF MLP on Poisson spikes: the gathered and the dense
    products give the same losses and weights to float rounding."""

    def train(kernel: bool) -> tuple[list[float], torch.Tensor]:
        if not kernel:
            monkeypatch.setattr(bm, "available", lambda: False)
        torch.manual_seed(0)
        net = build_network("mlp", (64,), 3, NeuronSpec(spike_fn="atan"), widths=(64,), steps=6)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        x, y = 0.4 * torch.rand(16, 64), torch.randint(0, 3, (16,))  # 20% spikes
        losses = []
        for _ in range(2):
            torch.manual_seed(1)  # the same Poisson spikes in both runs
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, next(net.parameters()).detach().clone()

    fast, w_fast = train(True)
    assert gathers  # the first synapse (64 wide, on Poisson spikes) gathered
    dense, w_dense = train(False)
    assert fast == pytest.approx(dense, rel=1e-5)
    assert torch.allclose(w_fast, w_dense, atol=1e-5)


def test_bits_too_few_or_an_operand_of_another_shape_are_refused_before_the_kernel_reads():
    bits = pack_bits(ones(4, 10, 0.5))
    with pytest.raises(ValueError, match="at least 400 bits"):
        bm.linear(bits, (40, 10), torch.randn(64, 10), None)
    with pytest.raises(ValueError, match=r"operand of shape \(64, 9\)"):
        bm.linear(bits, (4, 10), torch.randn(64, 9), None)
    with pytest.raises(ValueError, match=r"operand of shape \(5, 64\)"):
        bm.weight_grad(bits, (4, 10), torch.randn(5, 64))
