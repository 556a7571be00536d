"""htaf.functional against an independent float64 numpy reference, extreme inputs included."""

import math

import numpy as np
import pytest
import torch

from conftest import DEVICES
from htaf import functional as hf


def ref_htaf(x: np.ndarray, a0: float, a1: float) -> np.ndarray:
    return 1 / (1 + np.exp(-a1 * np.tanh(a0 * x)))


def ref_log_derivative(x: np.ndarray, a0: float, a1: float) -> np.ndarray:
    """log HTAF'(x) in float64, from log σ(u) + log σ(−u) + log sech²(a0 x)."""
    z = np.abs(a0 * x)
    u = a1 * np.tanh(z)
    log_sig_prod = -u - 2 * np.log1p(np.exp(-u))  # log σ(u)σ(−u) for u >= 0
    log_sech2 = 2 * (math.log(2) - z - np.log1p(np.exp(-2 * z)))
    return math.log(a0 * a1) + log_sig_prod + log_sech2


def grad_of(fn, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    fn(x).sum().backward()
    return x.grad


X_EXTREME = np.concatenate(
    [
        np.linspace(-1e4, 1e4, 20001),
        np.linspace(-20, 20, 40001),
        [0.0, -0.0, 1e-30, -1e-30, 1e-7, 9.0, 10.0, 45.0, 100.0],
    ]
)
ALPHAS = [0.1, 0.5, 1.0, 2.0, 11.0, 37.0, 100.0]


@pytest.mark.parametrize("a0", ALPHAS)
@pytest.mark.parametrize("a1", ALPHAS)
def test_float32_gradient_matches_float64_reference(a0, a1):
    x32 = torch.tensor(X_EXTREME, dtype=torch.float32)
    g = grad_of(lambda t: hf.htaf(t, a0, a1), x32).double().numpy()
    assert np.isfinite(g).all()
    x = x32.double().numpy()  # compare at the float32 points themselves
    log_ref = ref_log_derivative(x, a0, a1)
    keep = log_ref > math.log(1e-30)
    ref = np.exp(log_ref[keep])
    rel = np.abs(g[keep] - ref) / ref
    assert rel.max() < 1e-4, f"max rel error {rel.max():.3g} at x={x[keep][rel.argmax()]}"


@pytest.mark.parametrize("a0,a1", [(2, 11), (8, 2.75), (0.1, 100), (100, 0.1)])
def test_forward_matches_reference(a0, a1):
    x = torch.tensor(X_EXTREME, dtype=torch.float64)
    np.testing.assert_allclose(hf.htaf(x, a0, a1).numpy(), ref_htaf(x.numpy(), a0, a1), rtol=1e-12)
    y32 = hf.htaf(x.float(), a0, a1)
    assert torch.isfinite(y32).all()


def test_tail_does_not_vanish_where_naive_autograd_does():
    x = torch.tensor([10.0], requires_grad=True)
    naive = torch.sigmoid(11 * torch.tanh(2 * x))
    (naive_grad,) = torch.autograd.grad(naive.sum(), x)
    assert naive_grad.item() == 0.0  # the trap: tanh rounds to 1
    g = grad_of(lambda t: hf.htaf(t, 2.0, 11.0), torch.tensor([10.0])).item()
    assert 1e-21 < g < 1e-20  # 22·σ'(11·tanh 20)·sech²(20) ≈ 6e-21


def test_derivative_function_matches_autograd_and_peak():
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    auto = grad_of(lambda t: hf.htaf(t, 2.0, 11.0), x)
    torch.testing.assert_close(hf.htaf_derivative(x, 2.0, 11.0), auto)
    zero = torch.zeros(1, dtype=torch.float64)
    assert hf.htaf_derivative(zero, 3.0, 5.0).item() == pytest.approx(3 * 5 / 4)


def test_finite_difference_float64():
    x = torch.linspace(-3, 3, 301, dtype=torch.float64)
    h = 1e-6
    fd = (hf.htaf(x + h, 1.5, 6.0) - hf.htaf(x - h, 1.5, 6.0)) / (2 * h)
    torch.testing.assert_close(hf.htaf_derivative(x, 1.5, 6.0), fd, rtol=1e-6, atol=1e-9)


def test_nan_propagates_and_infinities_are_finite():
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 3e38, -3e38], requires_grad=True)
    y = hf.htaf(x)
    y.sum().backward()
    assert torch.isnan(y[0]) and torch.isnan(x.grad[0])
    assert torch.equal(y[1:].detach().round(decimals=4), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert torch.isfinite(x.grad[1:]).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes(dtype, device):
    x = torch.linspace(-12, 12, 97, dtype=dtype, device=device)
    y = hf.htaf(x)
    assert y.dtype == dtype and y.device == x.device
    g = grad_of(hf.htaf, x)
    assert g.dtype == dtype and torch.isfinite(g).all() and torch.isfinite(y).all()
    ref = ref_htaf(x.double().cpu().numpy(), 2.0, 11.0)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(dtype, 1e-6)
    np.testing.assert_allclose(y.double().cpu().numpy(), ref, atol=tol)


def test_saves_exactly_one_tensor():
    packed = []

    def pack(t):
        packed.append(t)
        return t

    x = torch.randn(1000, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = hf.htaf(x)
    assert len(packed) == 1 and packed[0].numel() == x.numel()
    naive = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: naive.append(t) or t, lambda t: t):
        torch.sigmoid(11 * torch.tanh(2 * x))
    assert len(naive) >= 2
    y.sum().backward()


def test_under_torch_compile():
    fn = torch.compile(lambda t: hf.htaf(t, 2.0, 11.0), backend="inductor", fullgraph=True)
    x = torch.linspace(-15, 15, 513)
    torch.testing.assert_close(fn(x), hf.htaf(x))
    torch.testing.assert_close(grad_of(fn, x), grad_of(hf.htaf, x), rtol=1e-4, atol=1e-30)


def test_signed_and_scaled_sigmoid_and_heaviside():
    x = torch.linspace(-4, 4, 81, dtype=torch.float64)
    torch.testing.assert_close(hf.signed_htaf(x, 2, 11), torch.tanh(5.5 * torch.tanh(2 * x)))
    torch.testing.assert_close(hf.scaled_sigmoid(x, 22), torch.sigmoid(22 * x))
    h = hf.heaviside(torch.tensor([-1.0, -0.0, 0.0, 1e-40, float("nan")]))
    assert h[:4].tolist() == [0.0, 1.0, 1.0, 1.0] and torch.isnan(h[4])
    assert hf.sign(torch.tensor([0.0, -2.0])).tolist() == [1.0, -1.0]


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"alpha0": 0.0}, "alpha0"),
        ({"alpha0": -1.0}, "alpha0"),
        ({"alpha1": float("nan")}, "alpha1"),
        ({"alpha1": float("inf")}, "alpha1"),
        ({"alpha0": torch.tensor([1.0, 2.0])}, "alpha0"),
    ],
)
def test_invalid_parameters_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        hf.htaf(torch.zeros(3), **kwargs)


def test_scalar_tensor_parameters_accepted():
    x = torch.linspace(-1, 1, 5)
    torch.testing.assert_close(hf.htaf(x, torch.tensor(2.0), torch.tensor([11.0])), hf.htaf(x))
    with pytest.raises(ValueError, match="beta"):
        hf.scaled_sigmoid(x, beta=0)


@pytest.mark.parametrize("fn", [hf.htaf, hf.heaviside, hf.scaled_sigmoid, hf.htaf_derivative])
def test_integer_tensors_raise_type_error(fn):
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.arange(5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaled_sigmoid_backward_is_accurate_in_both_tails(dtype):
    # autograd's β·y·(1 − y) is exactly 0 once σ(βx) rounds to 1 (βx ≳ 17 in float32).
    x = torch.tensor([-4.0, -1.0, -0.5, 0.0, 0.5, 0.8, 1.0, 2.0, 3.0, 1e30], dtype=dtype)
    x.requires_grad_(True)
    hf.scaled_sigmoid(x, 22).sum().backward()
    with torch.no_grad():
        ref = [22 * math.exp(-22 * abs(v)) / (1 + math.exp(-22 * abs(v))) ** 2 for v in x.tolist()]
    ref = torch.tensor(ref, dtype=torch.float64)
    tiny = torch.finfo(dtype).tiny
    normal = ref > tiny * 1e3  # below that the dtype itself cannot hold the value
    torch.testing.assert_close(x.grad.double()[normal], ref[normal], rtol=1e-5, atol=0)
    assert bool((x.grad[2:-2] > 0).all()), x.grad  # symmetric: x and −x get the same gradient
    assert torch.isfinite(x.grad).all()
    g = hf.scaled_sigmoid_derivative(x.detach(), 22)
    torch.testing.assert_close(g.double()[normal], ref[normal], rtol=1e-5, atol=0)
