"""htaf's custom operators (htaf._ops): under torch.compile, HTAF and the hard estimators keep
the fused kernels as opaque graph nodes. Compiled results must equal eager ones, the graphs
must hold the operators (forward and backward) without graph breaks, fake tensors and the
operator checks must pass, the derivatives must be right to second order, and `import htaf`
must not register anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd
from torch._subclasses.fake_tensor import FakeTensorMode

import htaf._kernels as K
from estimator_specs import SPECS, make
from htaf import _ops  # importing it registers the operators (where the kernels build)
from htaf import estimators as E
from htaf.functional import _htaf_grad, htaf


@pytest.fixture
def ops(monkeypatch):
    if not _ops.AVAILABLE:
        pytest.skip("no C compiler: the fused kernels, hence the operators, are unavailable")
    monkeypatch.setattr(K, "MIN_NUMEL", 1)  # eager uses the kernels at every size, as they do
    torch._dynamo.reset()
    yield _ops
    torch._dynamo.reset()


class Recorder:
    """An AOTAutograd backend that keeps the forward and backward graphs' call targets."""

    def __init__(self) -> None:
        self.forward: list[str] = []
        self.backward: list[str] = []

    def _keep(self, into: list[str]):
        def compiler(gm: torch.fx.GraphModule, example_inputs):
            into.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
            return make_boxed_func(gm)

        return compiler

    def backend(self):
        return aot_autograd(
            fw_compiler=self._keep(self.forward), bw_compiler=self._keep(self.backward)
        )


def run(fn, x, upstream):
    xi = x.detach().clone().requires_grad_()
    y = fn(xi)
    (y * upstream).sum().backward()
    return y.detach(), xi.grad


def inputs(dtype=torch.float32, shape=(64, 96)):
    gen = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(shape, generator=gen, dtype=dtype)
    x.view(-1)[:6] = torch.tensor([0.0, -0.0, 1e-30, 40.0, -1e4, 3e38], dtype=dtype)
    return x, torch.randn(shape, generator=gen, dtype=dtype)


def test_import_htaf_registers_nothing():
    code = (
        "import sys, torch, htaf; print('htaf._ops' in sys.modules, "
        "hasattr(torch.ops.htaf, 'htaf'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_htaf_is_eager_htaf_bit_for_bit(ops, dtype):
    x, g = inputs(dtype)
    eager = run(lambda t: htaf(t, 2.0, 11.0), x, g)
    compiled = run(torch.compile(lambda t: htaf(t, 2.0, 11.0), fullgraph=True), x, g)
    assert torch.equal(compiled[0], eager[0]) and torch.equal(compiled[1], eager[1])
    assert torch.isfinite(compiled[0]).all() and torch.isfinite(compiled[1]).all()


def test_graphs_call_the_operators_forward_and_backward(ops):
    rec = Recorder()
    fn = torch.compile(lambda t: htaf(t, 2.0, 11.0) * 3, backend=rec.backend(), fullgraph=True)
    x, g = inputs()
    run(fn, x, g)
    assert "htaf.htaf.default" in rec.forward
    assert "htaf.htaf_backward.default" in rec.backward
    # and not the decomposition: no exp/tanh/sigmoid left in either graph
    assert not [
        t for t in rec.forward + rec.backward if any(k in t for k in ("exp", "tanh", "sigm"))
    ]


def test_no_graph_break_through_a_model(ops):
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32), make("htaf"), torch.nn.Linear(32, 32), E.get("ste"),
        torch.nn.Linear(32, 16), E.get("atan", signed=True),
    )  # fmt: skip
    explanation = torch._dynamo.explain(model)(torch.randn(4, 8))
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
    targets = {str(n.target) for gm in explanation.graphs for n in gm.graph.nodes}
    assert {"htaf.htaf", "htaf.step_with_rule"} <= {t.removesuffix(".default") for t in targets}


DETERMINISTIC = [n for n in SPECS if not make(n).stochastic]


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_every_hard_estimator_compiled_equals_eager(ops, name, signed):
    """The step operator under compile, with the rule traced: the values and gradients of
    eager mode, bit for bit (aot_eager runs the traced rule with the eager kernels)."""
    x, g = inputs()
    est = make(name, mode="hard", signed=signed)
    eager = run(est, x, g)
    rec = Recorder()
    compiled = run(torch.compile(est, backend=rec.backend(), fullgraph=True), x, g)
    assert "htaf.step_with_rule.default" in rec.forward
    assert torch.equal(compiled[0], eager[0])
    assert torch.equal(compiled[1], eager[1])
    with torch.no_grad():  # the plain step operator
        torch._dynamo.reset()
        rec = Recorder()
        y = torch.compile(est, backend=rec.backend(), fullgraph=True)(x)
    assert torch.equal(y, eager[0]) and "htaf.step.default" in rec.forward


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_dynamic_shapes_compile_in_one_graph(ops, name):
    """torch.compile(dynamic=True, fullgraph=True): the estimator's float parameters may then
    reach the functional checks as symbolic floats (check_param once broke the graph there);
    two batch sizes give eager mode's values and gradients."""
    est = make(name)
    compiled = torch.compile(est, backend="aot_eager", fullgraph=True, dynamic=True)
    for rows in (64, 37):
        x, g = inputs(shape=(rows, 96))
        eager, got = run(est, x, g), run(compiled, x, g)
        torch.testing.assert_close(got[0], eager[0], rtol=0, atol=1e-7)
        torch.testing.assert_close(got[1], eager[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["htaf", "ste", "ste_clipped", "atan", "approx_sign"])
def test_inductor_matches_eager(ops, name):
    """Inductor lowers the operators to calls of the kernels (values exact for the step, and
    for HTAF, whose gradient is the kernel's too); a rule that inductor fuses may round
    differently from eager PyTorch in the last bits."""
    x, g = inputs()
    for signed in (False, True):
        torch._dynamo.reset()
        mode = "smooth" if name == "htaf" else "hard"
        est = make(name, mode=mode, signed=signed)
        eager = run(est, x, g)
        compiled = run(torch.compile(est, fullgraph=True), x, g)
        if name == "htaf" and signed:
            torch.testing.assert_close(compiled[0], eager[0], rtol=0, atol=1e-7)
        else:
            assert torch.equal(compiled[0], eager[0])
        torch.testing.assert_close(compiled[1], eager[1], rtol=1e-6, atol=1e-7)
        assert torch.isfinite(compiled[1]).all()


@pytest.mark.parametrize("name", ["jamming", "jamming_positive", "jamming_rectangular"])
def test_stochastic_rules_compile_in_one_graph(ops, name):
    x = torch.linspace(-8, 8, 4096).requires_grad_()
    est = make(name)
    y = torch.compile(est, fullgraph=True)(x)
    y.sum().backward()
    window = {
        "jamming": x.abs() < 1e9,
        "jamming_positive": x >= 0,
        "jamming_rectangular": x.abs() <= 5,
    }
    inside = window[name]
    assert torch.equal(y, (x >= 0).float())
    assert (x.grad[~inside] == 0).all()
    assert (x.grad[inside] >= 0).all() and (x.grad[inside] <= 1).all()
    assert 0.4 < x.grad[inside].mean().item() < 0.6  # u ~ U[0, 1]


def test_half_precision_and_missing_kernels_keep_the_decomposition(ops, monkeypatch):
    x = torch.randn(64, 64)
    for case in ("bfloat16", "no kernels"):
        torch._dynamo.reset()
        rec = Recorder()
        xi = x.bfloat16() if case == "bfloat16" else x
        if case == "no kernels":
            monkeypatch.setattr(_ops, "AVAILABLE", False)
        y = torch.compile(lambda t: htaf(t), backend=rec.backend(), fullgraph=True)(xi)
        assert rec.forward and not [t for t in rec.forward if t.startswith("htaf.")], case
        tol = 1e-2 if case == "bfloat16" else 1e-5
        torch.testing.assert_close(y.float(), htaf(x), rtol=tol, atol=tol)


def test_fake_tensors(ops):
    with FakeTensorMode():
        x = torch.empty(3, 5, dtype=torch.float64).t()  # non-contiguous in, contiguous out
        rule = torch.empty(5, 3, dtype=torch.float64)
        for y in (
            torch.ops.htaf.htaf(x, 2.0, 11.0),
            torch.ops.htaf.htaf_backward(x, rule, 2.0, 11.0),
            torch.ops.htaf.step(x, 0.0),
            torch.ops.htaf.step_with_rule(x, rule, -1.0),
        ):
            assert y.shape == (5, 3) and y.dtype == torch.float64 and y.is_contiguous()
        with pytest.raises(ValueError, match="rule must have the shape of x"):
            torch.ops.htaf.step_with_rule(x, torch.empty(3, 5, dtype=torch.float64), 0.0)


def test_opcheck(ops):
    """torch.library.opcheck: schema, fake kernel, autograd registration and AOT dispatch."""
    x = torch.randn(7, 9, dtype=torch.float64, requires_grad=True)
    g = torch.randn(7, 9, dtype=torch.float64, requires_grad=True)
    rule = torch.rand(7, 9, dtype=torch.float64)
    cases = [
        (torch.ops.htaf.htaf.default, (x, 2.0, 11.0)),
        (torch.ops.htaf.htaf_backward.default, (x, g, 0.7, 3.0)),
        (torch.ops.htaf.step.default, (x.detach(), -1.0)),
        (torch.ops.htaf.step_with_rule.default, (x, rule, 0.0)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_gradcheck_and_gradgradcheck(ops):
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    fn = lambda t: torch.ops.htaf.htaf(t, 0.7, 3.0)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    bwd = lambda t, u: torch.ops.htaf.htaf_backward(t, u, 0.7, 3.0)  # noqa: E731
    assert torch.autograd.gradcheck(bwd, (x, g))
    assert torch.autograd.gradgradcheck(bwd, (x, g))
    # the straight-through operator: grad·rule, the rule not differentiated
    rule = torch.rand(6, 5, dtype=torch.float64)
    y = torch.ops.htaf.step_with_rule(x, rule, -1.0)
    assert torch.equal(y, torch.where(x >= 0, 1.0, -1.0).double())
    (dx,) = torch.autograd.grad((y * g).sum(), x)
    assert torch.equal(dx, g.detach() * rule)


def test_second_derivative_against_autograd_and_finite(ops):
    from htaf._ops import _htaf_grad2

    x = torch.cat([torch.linspace(-12, 12, 4001, dtype=torch.float64),
                   torch.linspace(-0.05, 0.05, 2001, dtype=torch.float64),
                   torch.tensor([0.0, -0.0, 1e-300, 1e30, -3e38, 1e308])])  # fmt: skip
    for a0, a1 in [(2.0, 11.0), (8.0, 2.75), (0.1, 0.1), (100.0, 100.0)]:
        xi = x.clone().requires_grad_()
        (ref,) = torch.autograd.grad(_htaf_grad(xi, a0, a1).sum(), xi)
        got = _htaf_grad2(x, a0, a1)
        assert torch.isfinite(got).all()
        # atol: near x = 0 both sides round 1 - exp(-2·a0·|x|) alike, to ~eps/|x| relative
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12 * ref.abs().max().item())
    for dtype in (torch.float32,):  # the operators take float32 and float64 only
        assert torch.isfinite(_htaf_grad2(x.to(dtype)[x.to(dtype).isfinite()], 2.0, 11.0)).all()


def test_lazy_registration_on_first_compile_and_kernel_switch():
    """In a fresh process the first compiled call registers the operators (dynamo runs the
    import); with HTAF_DISABLE_KERNELS=1 nothing is registered and the decomposition runs."""
    code = (
        "import sys, torch, htaf\n"
        "seen = []\n"
        "def backend(gm, example):\n"
        "    seen.extend(str(n.target) for n in gm.graph.nodes)\n"
        "    return gm\n"
        "x = torch.randn(4096)\n"
        "y = torch.compile(htaf.htaf, backend=backend, fullgraph=True)(x)\n"
        "print(hasattr(torch.ops.htaf, 'htaf'), any('htaf.htaf' in s for s in seen),"
        " bool(torch.allclose(y, htaf.htaf(x), rtol=1e-6, atol=1e-7)))\n"
    )
    # The kernels' cache is the one this process built; the C++ operator is not needed here.
    env = {**os.environ, "HTAF_DISABLE_NATIVE": "1"}
    for extra, expected in (
        ({}, "True True True"),
        ({"HTAF_DISABLE_KERNELS": "1"}, "False False True"),
    ):
        out = subprocess.run([sys.executable, "-c", code], env={**env, **extra},
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected.split(), (extra, out.stdout, out.stderr[-2000:])
