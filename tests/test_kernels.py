"""The fused CPU kernels (htaf._kernels) against the pure-torch reference path.

Agreement tolerance: the kernels and the reference round differently (their ``exp`` differ by
about an ulp), and HTAF amplifies a rounding of ``tanh`` by ``a1``; the two paths are each as
close to a float64 truth as the other, and agree within ``1e-6 + 2e-7 * a1`` relative.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import torch

import htaf._kernels as K
from htaf import _build
from htaf import functional as hf
from htaf.functional import _htaf_forward, _htaf_forward_fusable, _htaf_grad, htaf

PARAMS = [(2.0, 11.0), (1.5, 1.5), (8.0, 2.75), (1.5, 24.0), (0.1, 0.1), (100.0, 100.0)]


@pytest.fixture(autouse=True)
def python_path(native_off):
    """These tests cover the Python autograd.Function and its ctypes calls, the fallback of the
    native operator (tests/test_native.py covers that one): turn the operator off."""
    native_off()


@pytest.fixture
def fast(monkeypatch):
    """Kernels on for every size (tests use small tensors); skip where they cannot build."""
    if not K.available():
        pytest.skip("no C compiler: the fused kernels are unavailable")
    monkeypatch.setattr(K, "MIN_NUMEL", 1)
    return K


def grid(dtype=torch.float32) -> torch.Tensor:
    return torch.cat(
        [
            torch.linspace(-1e4, 1e4, 20_001),
            torch.linspace(-30, 30, 20_001),
            torch.linspace(-1e-3, 1e-3, 2_001),
            torch.tensor([0.0, -0.0, 1e-30, -1e-30, 0.3125, -0.3125, 5.0, -5.0]),
        ]
    ).to(dtype)


def rtol_for(a1: float) -> float:
    return 1e-6 + 2e-7 * a1


def kernel_grad(x: torch.Tensor, a0: float, a1: float, grad=None) -> torch.Tensor:
    return K.backward(x, a0, a1, torch.ones_like(x) if grad is None else grad)


def assert_rel_close(got, ref, rtol, floor):
    """Relative closeness wherever |ref| > floor; elsewhere both below ~floor."""
    big = ref.abs() > floor
    rel = ((got.double() - ref.double()).abs() / ref.double().abs())[big]
    assert rel.max().item() <= rtol, f"max rel diff {rel.max().item():.3g} > {rtol:.3g}"
    assert (got[~big].abs() <= 2 * floor).all()


@pytest.mark.parametrize(("a0", "a1"), PARAMS)
def test_float32_agrees_with_reference(fast, a0, a1):
    x = grid()
    assert_rel_close(K.forward(x, a0, a1), _htaf_forward(x, a0, a1), rtol_for(a1), 1e-35)
    assert_rel_close(kernel_grad(x, a0, a1), _htaf_grad(x, a0, a1), rtol_for(a1), 1e-35)


@pytest.mark.parametrize(("a0", "a1"), PARAMS)
def test_float64_agrees_with_reference(fast, a0, a1):
    x = grid(torch.float64)
    assert_rel_close(K.forward(x, a0, a1), _htaf_forward(x, a0, a1), 1e-13, 1e-300)
    assert_rel_close(kernel_grad(x, a0, a1), _htaf_grad(x, a0, a1), 1e-13, 1e-300)


@pytest.mark.parametrize(("a0", "a1"), [*PARAMS, (0.1, 100.0), (100.0, 0.1)])
def test_float32_gradient_accurate_against_float64(fast, a0, a1):
    x = grid()
    truth = _htaf_grad(x.double(), a0, a1)
    got = kernel_grad(x, a0, a1).double()
    keep = truth > 1e-30
    assert ((got - truth).abs() / truth)[keep].max().item() < 1e-4
    assert torch.isfinite(got).all()


def test_nan_and_inf(fast):
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, 1.0])
    y = K.forward(x, 2.0, 11.0)
    assert torch.isnan(y[0]) and not torch.isnan(y[1:]).any()
    torch.testing.assert_close(y[1:], _htaf_forward(x[1:], 2.0, 11.0))
    g = kernel_grad(x, 2.0, 11.0)
    assert torch.isnan(g[0]) and not torch.isnan(g[1:]).any()
    assert g[1] == 0 and g[2] == 0
    # A NaN upstream gradient propagates too.
    g = kernel_grad(x[1:], 2.0, 11.0, torch.tensor([1.0, 1.0, float("nan"), 1.0]))
    assert torch.isnan(g[2]) and not torch.isnan(g[[0, 1, 3]]).any()
    for dtype in (torch.float32, torch.float64):
        xn = torch.full((100,), float("nan"), dtype=dtype)
        assert torch.isnan(K.forward(xn, 2.0, 11.0)).all()
        assert torch.isnan(kernel_grad(xn, 2.0, 11.0)).all()


def test_through_autograd_uses_kernels_and_saves_one_tensor(fast, monkeypatch):
    calls = []
    monkeypatch.setattr(K, "forward", lambda *a, f=K.forward: calls.append("f") or f(*a))
    monkeypatch.setattr(K, "backward", lambda *a, f=K.backward: calls.append("b") or f(*a))
    x = grid().requires_grad_()
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        y = htaf(x, 2.0, 11.0)
    assert len(packed) == 1 and packed[0] is x
    (y * 3).sum().backward()
    assert calls == ["f", "b"]
    ref = 3 * _htaf_grad(x.detach(), 2.0, 11.0)
    assert_rel_close(x.grad, ref, rtol_for(11.0), 1e-35)


def test_broadcast_scalar_grad_matches_dense_grad(fast):
    x = grid().requires_grad_()
    htaf(x).sum().backward()  # upstream gradient is an expanded scalar (stride 0)
    dense = kernel_grad(x.detach(), 2.0, 11.0)
    assert torch.equal(x.grad, dense)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_goes_through_float32(fast, dtype):
    x = torch.linspace(-8, 8, 4001, dtype=dtype).requires_grad_()
    y = htaf(x)
    assert y.dtype == dtype
    ref = _htaf_forward(x.detach().float(), 2.0, 11.0).to(dtype)
    torch.testing.assert_close(y, ref, rtol=0, atol=float(torch.finfo(dtype).eps))
    y.backward(torch.ones_like(y))
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()


def layouts():
    base = torch.randn(6, 40, 30, generator=torch.Generator().manual_seed(0)) * 3
    return {
        "transposed": base.transpose(0, 2),
        "strided": base[:, ::2, 1::3],
        "channels_last": base.reshape(2, 3, 40, 30).contiguous(memory_format=torch.channels_last),
        "expanded": base[:, :1, :].expand(6, 40, 30),
    }


@pytest.mark.parametrize("name", ["transposed", "strided", "channels_last", "expanded"])
def test_non_contiguous_inputs(fast, name):
    x = layouts()[name]
    y = K.forward(x, 2.0, 11.0)
    assert y.shape == x.shape
    assert torch.equal(y, K.forward(x.contiguous(), 2.0, 11.0))
    if name in ("transposed", "channels_last"):  # dense: the output keeps the input's layout
        assert y.stride() == x.stride()
    grad = torch.randn(x.shape).transpose(0, -1).contiguous().transpose(0, -1)
    g = K.backward(x, 2.0, 11.0, grad)
    assert torch.equal(g, K.backward(x.contiguous(), 2.0, 11.0, grad.contiguous()))
    assert_rel_close(g, grad * _htaf_grad(x, 2.0, 11.0), rtol_for(11.0), 1e-35)


def test_thread_count_does_not_change_results(fast, monkeypatch):
    monkeypatch.setattr(K, "_PARALLEL_NUMEL", 1)
    x = grid()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = (K.forward(x, 2.0, 11.0), kernel_grad(x, 2.0, 11.0))
        torch.set_num_threads(max(2, threads))
        many = (K.forward(x, 2.0, 11.0), kernel_grad(x, 2.0, 11.0))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_block_split_gives_the_same_elements_at_every_length(fast, monkeypatch, dtype):
    """The kernels run over blocks of output pages split among threads, 16-element vectors
    with a masked tail inside: each element's value must not depend on where it falls."""
    monkeypatch.setattr(K, "_PARALLEL_NUMEL", 1)
    x = 30 * torch.rand(2 * 262144 + 4099, generator=torch.Generator().manual_seed(5)) - 15
    x = x.to(dtype)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(6)).to(dtype)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y_all, g_all = K.forward(x, 2.0, 11.0), K.backward(x, 2.0, 11.0, g)
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            for n in (1, 15, 16, 17, 33, 4095, 8193, 131073, 262143, 262145, x.numel()):
                assert torch.equal(K.forward(x[:n], 2.0, 11.0), y_all[:n]), (nt, n)
                assert torch.equal(K.backward(x[:n], 2.0, 11.0, g[:n]), g_all[:n]), (nt, n)
    finally:
        torch.set_num_threads(threads)


def test_fresh_large_outputs_are_computed_alike(fast):
    """An output of 32 MiB or more is a fresh mapping (glibc maps such blocks anew), which
    the kernels fault in block by block before computing: the values must be those of the
    same elements computed in small, already-mapped outputs (and, for the step, exact)."""
    x = 40 * torch.rand(8 * 2**20 + 37, generator=torch.Generator().manual_seed(7)) - 20
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(8))
    y, dx = K.forward(x, 2.0, 11.0), K.backward(x, 2.0, 11.0, g)
    for lo in (0, 2**20 - 5, 4 * 2**20 + 3, x.numel() - 4099):
        part = slice(lo, lo + 4099)
        assert torch.equal(y[part], K.forward(x[part], 2.0, 11.0))
        assert torch.equal(dx[part], K.backward(x[part], 2.0, 11.0, g[part]))
    assert_rel_close(y[::997], _htaf_forward(x[::997], 2.0, 11.0), rtol_for(11.0), 1e-35)
    assert torch.equal(K.step(x, -1.0), torch.where(x >= 0, 1.0, -1.0))


def test_gradcheck_float64(fast):
    x = torch.linspace(-3, 3, 61, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: htaf(t, 1.5, 4.0), (x,))


def test_double_backward_uses_differentiable_path(fast):
    x = torch.linspace(-3, 3, 61, dtype=torch.float64).requires_grad_()
    (g,) = torch.autograd.grad(htaf(x, 1.5, 4.0).sum(), x, create_graph=True)
    assert g.requires_grad
    assert torch.autograd.gradgradcheck(lambda t: htaf(t, 1.5, 4.0), (x,))


def test_vmap_takes_torch_path(fast):
    x = torch.randn(3, 2000)
    torch.testing.assert_close(torch.func.vmap(htaf)(x), _htaf_forward(x, 2.0, 11.0))
    g = torch.func.vmap(torch.func.grad(lambda t: htaf(t).sum()))(x)
    torch.testing.assert_close(g, _htaf_grad(x, 2.0, 11.0))


def test_small_tensors_use_torch_path(monkeypatch):
    monkeypatch.setattr(K, "forward", None)  # would raise if called
    x = torch.randn(100, requires_grad=True)
    htaf(x).sum().backward()
    assert torch.equal(x.grad, _htaf_grad(x.detach(), 2.0, 11.0))


def test_compile_without_the_operators_traces_pure_torch_path(fast, monkeypatch):
    """Where htaf._ops registered nothing (no kernels), compile traces the decomposition and
    never reaches a kernel. (With the operators, tests/test_ops.py.)"""
    from htaf import _ops

    monkeypatch.setattr(_ops, "AVAILABLE", False)
    monkeypatch.setattr(K, "forward", None)
    monkeypatch.setattr(K, "backward", None)
    torch._dynamo.reset()
    fn = torch.compile(lambda t: htaf(t, 2.0, 11.0), backend="aot_eager", fullgraph=True)
    x = grid().requires_grad_()
    y = fn(x)
    y.sum().backward()
    torch.testing.assert_close(y, _htaf_forward(x.detach(), 2.0, 11.0))
    torch.testing.assert_close(x.grad, _htaf_grad(x.detach(), 2.0, 11.0))


@pytest.mark.parametrize(("a0", "a1"), [*PARAMS, (0.1, 100.0)])
def test_fusable_forward_accurate_against_float64(a0, a1):
    x = grid()
    truth = torch.sigmoid(a1 * torch.tanh(a0 * x.double()))
    assert_rel_close(_htaf_forward_fusable(x, a0, a1), truth, rtol_for(a1), 1e-35)
    assert torch.isnan(_htaf_forward_fusable(torch.tensor([float("nan")]), a0, a1)).all()


def test_non_cpu_and_subclass_inputs_are_not_supported(fast):
    assert not K.supports(torch.empty(10, device="meta"))
    assert not K.supports(torch.empty(10, dtype=torch.float16))
    assert not K.supports(torch.empty(10, dtype=torch.int32))
    y = htaf(torch.empty(1000, device="meta"))  # pure-torch path handles other devices
    assert y.device.type == "meta"


def reset_loader(monkeypatch):
    """The next K._load() builds again; the loaded kernels come back after the test."""
    monkeypatch.setattr(K._load, "result", K.Once.UNBUILT)


def test_fallback_without_compiler(monkeypatch, tmp_path):
    reset_loader(monkeypatch)
    monkeypatch.setenv("HTAF_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "htaf-no-such-compiler")
    monkeypatch.setattr(K, "MIN_NUMEL", 1)
    assert not K.available()
    assert not K.supports(torch.ones(10))
    x = grid().requires_grad_()
    y = hf.htaf(x)
    y.backward(torch.ones_like(y))
    assert torch.equal(y, _htaf_forward(x.detach(), 2.0, 11.0))
    assert torch.equal(x.grad, _htaf_grad(x.detach(), 2.0, 11.0))


def test_fallback_when_disabled(monkeypatch):
    reset_loader(monkeypatch)
    monkeypatch.setenv("HTAF_DISABLE_KERNELS", "1")
    assert not K.available()


def test_fresh_build_into_cache(monkeypatch, tmp_path):
    if _build.compiler() is None:
        pytest.skip("no C compiler")
    reset_loader(monkeypatch)
    monkeypatch.setenv("HTAF_KERNEL_CACHE", str(tmp_path / "cache"))
    assert K.available()
    built = list((tmp_path / "cache").glob("htaf_kernels_*.so"))
    assert len(built) == 1
    assert not list((tmp_path / "cache").glob(".build-*"))  # temporary build dir removed


@pytest.mark.parametrize(("a0", "a1"), PARAMS)
def test_every_float32_kernel_pair_is_accurate(fast, monkeypatch, a0, a1):
    """Every float32 pair the library holds must be right, not only the one this CPU uses: an
    AVX-512 CPU also compiles the AVX2 pair (what CPUs without AVX-512 run) and the portable
    loops (what CPUs without AVX2 run)."""
    kernels = K._load()
    lib = kernels.lib
    simd = [f"f32_{isa}" for isa in K.SIMD if hasattr(lib, f"htaf_fwd_f32_{isa}")]
    if not simd:
        pytest.skip("this CPU has no AVX2 + FMA: only the portable kernels were compiled")
    x = grid()
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    results = {}
    for name in ("f32", *simd):
        pair = (getattr(lib, f"htaf_fwd_{name}"), getattr(lib, f"htaf_bwd_{name}"))
        fns = {**kernels.fns, torch.float32: pair}
        monkeypatch.setattr(K._load, "result", dataclasses.replace(kernels, fns=fns))
        results[name] = (K.forward(x, a0, a1), K.backward(x, a0, a1, g))
    truth_y = torch.sigmoid(a1 * torch.tanh(a0 * x.double()))
    truth_g = g.double() * _htaf_grad(x.double(), a0, a1)
    for name, (y, dx) in results.items():  # the bounds of the float32 tests above
        print(name)  # shown when an assertion below fails
        assert_rel_close(y, truth_y, rtol_for(a1), 1e-35)
        assert_rel_close(dx, truth_g, 1e-4, 1e-30)


def test_once_builds_once_across_threads():
    calls = []

    def build():
        calls.append(1)
        time.sleep(0.05)  # let the other threads arrive while the build runs
        return object()

    once = K.Once(build, "test value")
    results = []
    threads = [threading.Thread(target=lambda: results.append(once())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert once() is results[0]
    once.reset()
    assert once() is not results[0] and len(calls) == 2


def test_once_turns_a_failed_build_into_none():
    calls = []

    def build():
        calls.append(1)
        raise RuntimeError("no compiler")

    once = K.Once(build, "test value")
    assert once() is None and once() is None
    assert len(calls) == 1  # a failure is remembered, not retried
