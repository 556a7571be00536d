"""The native HTAF operator (htaf._native): the same kernels as the ctypes path behind a C++
autograd node. It must agree with that path bit for bit, route every other input elsewhere,
stay differentiable twice, and build once even when two processes race to build it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import htaf._kernels as K
import htaf._native as N
from estimator_specs import SPECS, make
from htaf.estimators import get as get_estimator
from htaf.functional import _HTAF, _htaf_forward, _htaf_grad, htaf

PARAMS = [(2.0, 11.0), (8.0, 2.75), (11.0, 2.0), (0.1, 0.1), (100.0, 100.0)]
ESTIMATORS = SPECS


@pytest.fixture
def native(monkeypatch):
    if not N.available():
        pytest.skip("no C++ compiler or PyTorch headers: the native operator is unavailable")
    monkeypatch.setattr(K, "MIN_NUMEL", 1)  # the Python path uses the kernels at every size
    return N


def grid(dtype=torch.float32) -> torch.Tensor:
    x = torch.cat([torch.linspace(-40, 40, 8001), torch.linspace(-1e-3, 1e-3, 1001)])
    extreme = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 3e38, -3e38, 1e4, -1e4])
    return torch.cat([x, extreme]).to(dtype)


def both_paths(x: torch.Tensor, a0: float, a1: float, grad=None):
    """(native y, native dx), (python y, python dx) for the same input and upstream grad."""
    out = []
    for fn in (lambda t: htaf(t, a0, a1), lambda t: _HTAF.apply(t, a0, a1)):
        xi = x.detach().clone().requires_grad_()
        y = fn(xi)
        (y.sum() if grad is None else (y * grad).sum()).backward()
        out.append((y.detach(), xi.grad))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("a0", "a1"), PARAMS)
def test_native_equals_python_path_bit_for_bit(native, dtype, a0, a1):
    x = grid(dtype)
    g = torch.randn(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    for grad in (None, g):  # None: .sum()'s broadcast scalar gradient
        (yn, dn), (yp, dp) = both_paths(x, a0, a1, grad)
        assert torch.equal(yn, yp)
        assert torch.equal(dn, dp)


@pytest.mark.parametrize(("a0", "a1"), PARAMS)
def test_float32_close_to_float64_truth_and_finite(native, a0, a1):
    x = grid().requires_grad_()
    y = htaf(x, a0, a1)
    y.backward(torch.ones_like(y))
    truth_y = _htaf_forward(x.detach().double(), a0, a1)
    truth_d = _htaf_grad(x.detach().double(), a0, a1)
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert torch.allclose(y.double(), truth_y, rtol=1e-6 + 3e-7 * a1, atol=1e-37)
    assert torch.allclose(x.grad.double(), truth_d, rtol=1e-5 + 3e-7 * a1, atol=1e-37)


def test_nan_propagates_and_inf_saturates(native):
    x = torch.tensor([float("nan"), float("inf"), -float("inf")], requires_grad=True)
    y = htaf(x)
    y.backward(torch.ones_like(y))
    assert torch.isnan(y[0]) and torch.isnan(x.grad[0])
    assert y[1] == torch.sigmoid(torch.tensor(11.0)) and y[2] == torch.sigmoid(torch.tensor(-11.0))
    assert torch.equal(x.grad[1:], torch.zeros(2))


def test_uses_native_node_and_saves_only_the_input(native):
    x = torch.randn(4, 8, requires_grad=True)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        y = htaf(x)
    assert "HtafFunction" in y.grad_fn.name()
    assert len(packed) == 1 and packed[0] is x


def test_gradcheck_and_double_backward(native):
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    fn = lambda t: htaf(t, 0.7, 3.0)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    (dx,) = torch.autograd.grad(htaf(x).sum(), x, create_graph=True)
    assert dx.requires_grad
    assert torch.allclose(dx, _htaf_grad(x.detach(), 2.0, 11.0), rtol=1e-12, atol=0)


def test_no_grad_and_inference_mode_build_no_graph(native):
    x = torch.randn(64, 32)
    ref = htaf(x.clone().requires_grad_()).detach()
    with torch.no_grad():
        assert torch.equal(htaf(x), ref) and not htaf(x).requires_grad
    with torch.inference_mode():
        assert torch.equal(htaf(x), ref)


def test_empty_and_expanded_gradients(native):
    e = torch.empty(0, 3, requires_grad=True)
    htaf(e).sum().backward()
    assert e.grad.shape == (0, 3)
    x = torch.randn(5, 7, requires_grad=True)
    g_row = torch.randn(1, 7)
    htaf(x).backward(g_row.expand(5, 7))  # stride 0 in one dimension only: gathered per piece
    assert torch.equal(x.grad, K.backward(x.detach(), 2.0, 11.0, g_row.expand(5, 7).contiguous()))


def layouts(rows: int, cols: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Gradients of shape (rows, cols) in every layout the backward distinguishes."""
    gen = torch.Generator().manual_seed(1)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=dtype)

    return {
        "scalar": randn(1, 1).expand(rows, cols),
        "row": randn(1, cols).expand(rows, cols),
        "column": randn(rows, 1).expand(rows, cols),
        "transposed": randn(cols, rows).t(),
        "sliced": randn(rows, cols + 9)[:, 5 : cols + 5],
        "stepped": randn(rows, 2 * cols)[:, ::2],
        "strided rows": randn(2 * rows, cols)[::2],
    }


def assert_backward_equals_contiguous(x: torch.Tensor, g: torch.Tensor, name: str) -> None:
    assert not g.is_contiguous(), name
    got, want = (x.detach().clone().requires_grad_() for _ in range(2))
    htaf(got).backward(g)
    htaf(want).backward(g.contiguous())
    assert got.grad.is_contiguous(), name
    assert torch.equal(got.grad.nan_to_num(7.0), want.grad.nan_to_num(7.0)), name
    assert got.grad.flatten()[0].isnan(), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("rows", "cols"), [(37, 53), (3, 70_001), (40_000, 3), (256, 256)])
def test_non_contiguous_gradients_equal_the_contiguous_result(native, dtype, rows, cols):
    """Expanded, transposed, sliced and strided gradients (each piece gathered, or copied by
    ATen) give bit for bit what the same gradient made contiguous gives: single pieces, pieces
    that split one long row, and rows of three elements."""
    x = torch.randn(rows, cols, dtype=dtype, generator=torch.Generator().manual_seed(0))
    x[0, :3] = torch.tensor([float("nan"), 0.0, -50.0])
    for name, g in layouts(rows, cols, dtype).items():
        assert_backward_equals_contiguous(x, g, name)
    # Three dimensions that do not merge into two: copied by ATen first.
    x3 = x.reshape(1, rows, cols).expand(2, rows, cols).contiguous()
    g3 = torch.randn(cols, rows, 2, dtype=dtype).permute(2, 1, 0)
    assert_backward_equals_contiguous(x3, g3, "3-d permuted")


def test_other_inputs_take_the_python_path(native):
    base = torch.randn(8, 16)
    cases = {
        "non-contiguous": base.t(),
        "float16": base.half(),
        "bfloat16": base.bfloat16(),
    }
    for what, x in cases.items():
        y = htaf(x.requires_grad_())
        assert "HtafFunction" not in y.grad_fn.name(), what
        y.sum().backward()
        assert torch.isfinite(x.grad.float()).all(), what


def test_compile_and_vmap_do_not_see_the_operator(native):
    x = torch.randn(3, 50)
    compiled = torch.compile(lambda t: htaf(t), backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(x), htaf(x), rtol=1e-5, atol=1e-7)
    assert torch.allclose(torch.vmap(htaf)(x), htaf(x), rtol=1e-6, atol=1e-7)


def test_operator_rejects_what_the_gate_would_not_pass(native):
    with pytest.raises(RuntimeError, match="contiguous CPU tensor"):
        N.htaf(torch.randn(4, 4).t(), 2.0, 11.0)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        N.htaf(torch.randn(4).half(), 2.0, 11.0)


def test_thread_count_does_not_change_results(native):
    x = torch.randn(70_000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = both_paths(x, 2.0, 11.0)[0]
        torch.set_num_threads(max(2, threads))
        many = both_paths(x, 2.0, 11.0)[0]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])


PROBE = (
    "import torch; from htaf import _native, functional as hf;"
    "x = torch.randn(300, requires_grad=True); y = hf.htaf(x);"
    "print(_native.available(), y.grad_fn.name())"
)


def probe(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_build_once_into_a_fresh_cache(native, tmp_path):
    """Both processes start with an empty cache; the file lock makes one build and the other
    wait, and neither leaves a partial file behind."""
    cache = tmp_path / "cache"
    procs = [probe({"HTAF_KERNEL_CACHE": str(cache)}) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.split()[0] == "True" and "HtafFunction" in out, out
    assert len(list(cache.glob("htaf_native_*.so"))) == 1
    assert not list(cache.glob(".build-*"))


@pytest.mark.parametrize("env", [{"CXX": "htaf-no-such-compiler"}, {"HTAF_DISABLE_NATIVE": "1"}])
def test_without_the_operator_htaf_still_works(tmp_path, env):
    proc = probe({"HTAF_KERNEL_CACHE": str(tmp_path), **env})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.split()[0] == "False" and "HtafFunction" not in out, out


def test_estimator_fast_path_matches_generic_path(native):
    x = torch.randn(32, 64, requires_grad=True)
    est = get_estimator("htaf(8,2.75)")
    y = est(x)
    assert "HtafFunction" in y.grad_fn.name()
    assert torch.equal(y, htaf(x, 8.0, 2.75))
    signed = get_estimator("htaf(8,2.75)", signed=True)(x)
    assert torch.equal(signed, 2 * htaf(x, 8.0, 2.75) - 1)
    est.mode = "hard"
    assert torch.equal(est(x), (x >= 0).float())


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_hard_estimator_equals_its_generic_path(native, native_off, name, signed):
    """The native step (+ rule) gives the values and gradients of output_hard(x), exactly.

    At NaN and ±inf the gradients differ by design and the test compares values only: the
    generic path's gradient is 0 there (with_rule's nan_to_num), the native one grad·rule(x)."""
    x = torch.cat([grid(), torch.tensor([float("nan"), float("inf"), -float("inf")])])
    x_eval = x
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    outs = []
    for _ in ("native", "generic"):
        est = make(name, mode="hard", signed=signed)
        if est.stochastic:
            est.generator = torch.Generator().manual_seed(3)
        xi = x.clone().requires_grad_()
        y = est(xi)
        (y * g).sum().backward()
        with torch.no_grad():
            y_eval = est(x_eval)
        outs.append((y.detach(), xi.grad, y_eval))
        native_off()
    (yn, dn, en), (yp, dp, ep) = outs
    assert torch.allclose(yn, yp, rtol=0, atol=0, equal_nan=True)
    assert torch.allclose(en, ep, rtol=0, atol=0, equal_nan=True)
    # Both multiply the upstream gradient by the same output-space rule: bit for bit.
    assert torch.equal(dn[:-3], dp[:-3])


@pytest.mark.parametrize("name", ["htaf", "ste", "atan"])
def test_non_tensor_input_gets_the_usual_error(name):
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor, got list"):
        make(name)([1.0, -1.0])
