"""One contract test for every registered estimator (after SpikingJelly's surrogate test).

For each estimator: the backward rule against an independent float64 reference (a central
finite difference of its smooth function, or its formula for the stochastic rules), a binary
hard forward, finite outputs and gradients at extreme inputs, state_dict round-trips, and
torch.compile. Every test runs twice: through the native operators (htaf._native, where they
build) and through the pure-PyTorch path that GPUs, torch.compile and machines without a
compiler use.
"""

import io

import numpy as np
import pytest
import torch

import htaf
from estimator_specs import SPECS, make
from htaf import estimators as E


@pytest.fixture(autouse=True, params=["native", "pytorch"])
def path(request, native_off):
    if request.param == "pytorch":
        native_off()
    return request.param


NAMES = E.names()
EXTREME = torch.tensor(
    [0.0, -0.0, 1e-30, -1e-7, 0.3, -0.7, 1.0, -1.0, 5.0, 100.0, -1e4, 1e4, 1e15, -1e30, 3.0e38]
)


#: Straight-through rules pass the upstream gradient unchanged in both output spaces.
STRAIGHT_THROUGH = {"ste", "ste_clipped"}
#: Rules whose backward means the same in both output spaces: straight-through and Troiano
#: et al.'s decoupled rules (pass, window or scale the upstream gradient by at most 1).
PASS_THROUGH = STRAIGHT_THROUGH | {
    "decoupled_constant", "decoupled_rectangular", "decoupled_triangular",
    "jamming", "jamming_positive", "jamming_rectangular",
}  # fmt: skip


def gain(name, signed):
    """What the output-space backward is, relative to the natural-space rule ``grad``: 1 in
    the natural space and for straight-through; else the step's height ratio, 2 from {0, 1}
    to ±1 outputs and 1/2 back (written out here, independently of ``output_grad``)."""
    natural_signed = make(name).natural == "signed"
    if name in PASS_THROUGH or signed == natural_signed:
        return 1.0
    return 2.0 if signed else 0.5


def autograd_grad(est, x):
    x = x.detach().clone().requires_grad_(True)
    est(x).sum().backward()
    return x.grad


def smooth_points(est, n=2001, span=3.0, h=1e-6):
    """Float64 points away from kinks, where one-sided differences agree."""
    # Points exact in float32, so that float32 autograd and the float64 reference see one x.
    x = (torch.linspace(-span, span, n, dtype=torch.float64) + 1.234e-4).float().double()
    f = est.smooth
    left = (f(x) - f(x - h)) / h
    right = (f(x + h) - f(x)) / h
    ok = (left - right).abs() <= 1e-4 * (1 + left.abs())
    return x[ok]


def test_registry_has_the_required_names():
    required = {
        "htaf", "scaled_sigmoid", "tanh_continuation", "ste", "ste_clipped", "approx_sign",
        "swish_sign", "sigmoid_surrogate", "atan", "fast_sigmoid", "triangle", "rectangular",
        "piecewise_quadratic", "piecewise_exp", "erf", "decoupled_constant",
        "decoupled_rectangular", "decoupled_triangular", "jamming", "jamming_positive",
        "jamming_rectangular",
    }  # fmt: skip
    assert required <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_documented(name):
    info = next(i for i in E.available() if i.name == name)
    assert info.description and info.source and info.forward and info.backward
    cls = type(make(name))
    doc = cls.__doc__.lower()
    assert "forward" in doc and "backward" in doc
    assert info.defaults == cls.defaults


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("name", [n for n in SPECS if not make(n).stochastic])
def test_backward_matches_finite_difference_of_smooth(name, signed):
    est = make(name, signed=signed)
    x = smooth_points(est)
    h = 1e-6
    fd = (est.smooth(x + h) - est.smooth(x - h)) / (2 * h)
    torch.testing.assert_close(est.grad(x), fd, rtol=1e-5, atol=1e-7)
    assert torch.isfinite(fd).all()
    # The float64 reference in the output space: the natural-space difference quotient times
    # the gain the output space implies.
    ref = gain(name, signed) * fd
    # The output-space smooth forward (float64) has that reference as its derivative too.
    est.mode = "smooth"
    fd_out = (est(x + h) - est(x - h)) / (2 * h)
    torch.testing.assert_close(fd_out, ref, rtol=1e-5, atol=1e-7)
    # float32 autograd, in both modes, against the float64 reference; float32 rounding of the
    # output (hence atol) scales with the step's height in the output space.
    for mode in ("smooth", "hard"):
        est.mode = mode
        g32 = autograd_grad(est, x.float()).double()
        torch.testing.assert_close(g32, ref, rtol=2e-5, atol=2e-6 * gain(name, signed))
    torch.testing.assert_close(est.output_grad(x), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("name", sorted(STRAIGHT_THROUGH))
def test_straight_through_passes_the_gradient_unchanged_in_both_spaces(name, signed):
    """Backward 1 (``ste``) and 1{|x| <= clip} (``ste_clipped``), exactly, with {0, 1} and
    ±1 outputs alike, at every dtype and at extreme inputs; the hard forward stays the step."""
    clip = 0.75
    est = make(name, mode="hard", signed=signed, **({"clip": clip} if "clip" in name else {}))
    x = torch.cat([EXTREME, -EXTREME, torch.tensor([clip, -clip, 0.7499, 0.7501])])
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        xd = x.to(dtype)
        xd = xd[torch.isfinite(xd)]
        expected = (xd.abs() <= clip).to(dtype) if "clip" in name else torch.ones_like(xd)
        g = autograd_grad(est, xd)
        assert torch.equal(g, expected), f"{name} signed={signed} {dtype}"
        upstream = torch.linspace(-3, 3, xd.numel(), dtype=dtype)
        xi = xd.clone().requires_grad_()
        (est(xi) * upstream).sum().backward()
        assert torch.equal(xi.grad, upstream * expected)


@pytest.mark.parametrize("mode", ["smooth", "hard"])
def test_straight_through_on_heaviside_is_troianos_constant_and_rectangular_rule(mode):
    """On {0, 1} outputs ``ste`` is Troiano et al.'s constant rule and ``ste_clipped`` their
    rectangular window, forward and backward (two independent definitions of the same rule)."""
    x = torch.cat([torch.linspace(-3, 3, 601, dtype=torch.float64), EXTREME.double()])
    pairs = [
        (E.get("ste", mode=mode), E.get("decoupled_constant", mode=mode)),
        (
            E.get("ste_clipped", clip=0.5, mode=mode),
            E.get("decoupled_rectangular", half_width=0.5, mode=mode),
        ),
    ]
    for ste, troiano in pairs:
        assert torch.equal(ste(x), troiano(x))
        assert torch.equal(autograd_grad(ste, x), autograd_grad(troiano, x))


@pytest.mark.parametrize("mode", ["smooth", "hard"])
@pytest.mark.parametrize("signed", [False, True])
def test_troianos_decoupled_rules_pass_the_same_gradient_in_both_spaces(signed, mode):
    """Troiano et al.'s rules pass the upstream gradient (times 1, a window, or a triangle of
    peak 1) with {0, 1} and ±1 outputs alike: never doubled on ±1 outputs. Reference: the
    formulas in float64, written out here; stochastic rules with the same generator seed."""
    x = torch.cat([torch.linspace(-3, 3, 601, dtype=torch.float64) + 1.234e-4, EXTREME.double()])
    reference = {
        "decoupled_constant": torch.ones_like(x),
        "decoupled_rectangular": (x.abs() <= 0.5).double(),
        "decoupled_triangular": (1 - x.abs()).clamp(min=0),
    }
    upstream = torch.linspace(-2, 2, x.numel(), dtype=torch.float64)
    for name, ref in reference.items():
        est = E.get(name, mode=mode, signed=signed)
        xi = x.clone().requires_grad_()
        (est(xi) * upstream).sum().backward()
        torch.testing.assert_close(xi.grad, upstream * ref, rtol=0, atol=1e-12)
    for name in ("jamming", "jamming_positive", "jamming_rectangular"):
        grads = [
            autograd_grad(E.get(name, signed=s, generator=torch.Generator().manual_seed(3)), x)
            for s in (False, True)
        ]
        assert torch.equal(grads[0], grads[1]), name
        assert float(grads[1].max()) <= 1.0


@pytest.mark.parametrize("name", [n for n in SPECS if make(n).stochastic])
def test_stochastic_backward_matches_formula(name):
    gen = torch.Generator().manual_seed(7)
    est = make(name, generator=gen)
    x = torch.linspace(-8, 8, 4001)
    g = autograd_grad(est, x).double()
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(7)).double()
    xd = x.double()
    window = {
        "jamming": torch.ones_like(xd),
        "jamming_positive": (xd >= 0).double(),
        "jamming_rectangular": (xd.abs() <= 5).double(),
    }[name]
    torch.testing.assert_close(g, u * window)
    # Fresh draws on every pass, reproducible from the generator.
    g2 = autograd_grad(est, x)
    assert not torch.equal(g2, g.float())
    est2 = make(name, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(autograd_grad(est2, x).double(), g)
    assert 0.45 < u.mean().item() < 0.55


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("name", SPECS)
def test_hard_forward_is_binary_and_extremes_are_finite(name, signed):
    est = make(name, mode="hard", signed=signed)
    x = torch.cat([EXTREME, -EXTREME, torch.randn(500)])
    y = est(x)
    allowed = torch.tensor([-1.0, 1.0]) if signed else torch.tensor([0.0, 1.0])
    assert torch.isin(y, allowed).all()
    assert torch.equal(y, htaf.functional.sign(x) if signed else htaf.heaviside(x))
    for mode in ("hard", "smooth"):
        est.mode = mode
        for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            xd = x.to(dtype)
            xd = xd[torch.isfinite(xd)]
            g = autograd_grad(est, xd)
            out = est(xd)
            assert out.dtype == dtype
            assert torch.isfinite(g).all(), f"{name} {mode} {dtype} grad not finite"
            if est.has_primitive and name not in ("ste", "decoupled_constant"):
                assert torch.isfinite(out).all(), f"{name} {mode} {dtype} output not finite"


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("name", SPECS)
def test_hard_forward_at_infinity_is_the_step_while_training(name, signed):
    est = make(name, mode="hard", signed=signed)
    x = torch.tensor([float("inf"), -float("inf"), 2.0, -2.0], requires_grad=True)
    y = est(x)
    lo = -1.0 if signed else 0.0
    assert torch.equal(y.detach(), torch.tensor([1.0, lo, 1.0, lo]))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", SPECS)
def test_nan_input_gives_nan(name):
    est = make(name, mode="hard")
    x = torch.tensor([float("nan"), 1.0])
    assert torch.isnan(est(x)[0])


@pytest.mark.parametrize("name", SPECS)
def test_signed_is_the_affine_image(name):
    """The exact step maps by s = 2u − 1; the backward by the ratio of the two spaces' gains
    (2, or 1 for straight-through, whose smooth forward is shifted instead: s = u − 1/2)."""
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    ratio = gain(name, True) / gain(name, False)
    for mode in ("smooth", "hard"):
        u = make(name, mode=mode)
        s = make(name, mode=mode, signed=True)
        if not u.stochastic:
            shifted = mode == "smooth" and name in PASS_THROUGH
            torch.testing.assert_close(s(x), u(x) - 0.5 if shifted else 2 * u(x) - 1)
            torch.testing.assert_close(autograd_grad(s, x), ratio * autograd_grad(u, x))
            torch.testing.assert_close(s.output_grad(x), autograd_grad(s, x))
            torch.testing.assert_close(u.output_grad(x), autograd_grad(u, x))


@pytest.mark.parametrize("name", SPECS)
def test_state_dict_round_trip(name):
    est = make(name, mode="smooth", signed=True)
    for key in est.defaults:
        est.set_param(key, est.params[key] * 1.5)
    buf = io.BytesIO()
    torch.save(est.state_dict(), buf)
    buf.seek(0)
    fresh = make(name)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.params == est.params and fresh.mode == "smooth" and fresh.signed
    x = torch.linspace(-3, 3, 31)
    if not est.stochastic:
        torch.testing.assert_close(fresh(x), est(x))


def test_generator_state_round_trips():
    est = E.get("jamming", generator=torch.Generator().manual_seed(3))
    x = torch.linspace(-1, 1, 100)
    autograd_grad(est, x)
    state = est.state_dict()
    expected = autograd_grad(est, x)
    other = E.get("jamming")
    other.load_state_dict(state)
    torch.testing.assert_close(autograd_grad(other, x), expected)


COMPILE_NAMES = SPECS


@pytest.mark.parametrize("name", COMPILE_NAMES)
def test_runs_under_torch_compile(name):
    torch._dynamo.reset()
    gen = {"generator": torch.Generator().manual_seed(0)} if make(name).stochastic else {}
    est = make(name, **gen)
    layer = torch.nn.Sequential(torch.nn.Linear(4, 8), est)
    compiled = torch.compile(layer, backend="aot_eager" if name != "htaf" else "inductor")
    x = torch.randn(16, 4)
    for mode in ("smooth", "hard"):
        est.mode = mode
        out = compiled(x)
        out.sum().backward()
        if not est.stochastic:
            torch.testing.assert_close(out, layer(x))
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        layer.zero_grad()


def test_unknown_name_lists_close_matches():
    with pytest.raises(E.UnknownEstimatorError, match="did you mean htaf"):
        E.get("htfa")
    with pytest.raises(ValueError, match="ste_clipped"):
        E.get("ste_clip")


def test_bad_parameters_and_mode():
    with pytest.raises(ValueError, match="alpha1"):
        E.get("htaf", alpha1=-2)
    with pytest.raises(ValueError, match="no parameter 'gamma'"):
        E.get("htaf", gamma=1)
    with pytest.raises(ValueError, match="mode"):
        E.get("htaf", mode="binary")
    est = E.get("atan")
    with pytest.raises(ValueError, match="mode"):
        est.mode = "exact"
    with pytest.raises(TypeError, match="floating-point"):
        est(torch.arange(3))


def test_spec_strings():
    est = E.get("htaf(8, 2.75)")
    assert est.params == {"alpha0": 8.0, "alpha1": 2.75}
    assert E.get("scaled_sigmoid(beta=30)").beta == 30.0
    assert E.parse_spec("htaf(alpha1=3)") == ("htaf", {"alpha1": 3.0})
    with pytest.raises(ValueError, match="not a number"):
        E.get("htaf(a)")


def test_harden_and_soften_permanent_and_as_context():
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 5), E.get("htaf"), torch.nn.Linear(5, 5), E.get("atan"), torch.nn.ReLU()
    )
    modes = lambda: [m.mode for m in E.estimators_in(model)]  # noqa: E731
    assert modes() == ["smooth", "hard"]
    with htaf.harden(model):
        assert modes() == ["hard", "hard"]
        h = model[:2](torch.randn(10, 3))
        assert torch.isin(h, torch.tensor([0.0, 1.0])).all()
    assert modes() == ["smooth", "hard"]
    htaf.soften(model)
    assert modes() == ["smooth", "smooth"]
    htaf.harden(model)
    assert modes() == ["hard", "hard"]
    with pytest.raises(ValueError, match="mode"):
        E.set_mode(model, "fuzzy")


def test_schedules_move_parameters():
    model = torch.nn.Sequential(E.get("htaf"), E.get("tanh_continuation"))
    sched = E.Schedule(model, "alpha1", E.linear(4.0, 11.0, steps=7))
    assert model[0].alpha1 == 4.0
    values = [sched.step() for _ in range(10)]
    assert values[6] == pytest.approx(11.0) and model[0].alpha1 == pytest.approx(11.0)
    hn = E.Schedule(model, "beta", E.hashnet())
    for _ in range(200):
        hn.step()
    assert model[1].beta == pytest.approx((1 + 0.005 * 200) ** 0.5)
    restored = E.Schedule(model, "beta", E.hashnet())
    restored.load_state_dict(hn.state_dict())
    assert restored.value == hn.value
    cfg = E.Schedule.from_config(model, {"param": "alpha1", "kind": "exponential",
                                         "start": 2.0, "end": 8.0, "steps": 2})  # fmt: skip
    cfg.step()
    assert model[0].alpha1 == pytest.approx(4.0)
    with pytest.raises(ValueError, match="no estimator"):
        E.Schedule(model, "k", E.constant(1.0))
    held = [E.linear(1.0, 2.0, steps=4, hold=3)(t) for t in range(9)]
    assert held == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.25, 1.5, 1.75, 2.0, 2.0])
    assert E.cosine(1.0, 3.0, steps=2, hold=1)(2) == pytest.approx(2.0)
    assert E.exponential(1.0, 4.0, steps=2, hold=5)(6) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="hold"):
        E.linear(1.0, 2.0, steps=4, hold=-1)
    with pytest.raises(ValueError, match="alpha1"):
        E.Schedule(model, "alpha1", E.constant(-1.0))


def test_mixed_precision_estimator_grad_close_to_float32():
    est = E.get("htaf")
    x = torch.linspace(-3, 3, 601)
    g32 = autograd_grad(est, x)
    g16 = autograd_grad(est, x.bfloat16()).float()
    np.testing.assert_allclose(g16.numpy(), g32.numpy(), atol=0.05 * g32.max().item())


@pytest.mark.parametrize(
    "spec, expected",
    [("htaf(2,11)", True), ("htaf(auto)", True), ("htaf(2,2)", False), ("ste", False),
     ("ste_clipped", True), ("fast_sigmoid", False), ("atan", True), ("triangle", True),
     ("scaled_sigmoid", True), ("decoupled_constant", False), ("approx_sign", True)],
)  # fmt: skip
def test_smooth_is_forward_when_its_limits_reach_both_step_values(spec, expected):
    est = htaf.estimators.get(spec)
    assert est.smooth_is_forward is expected
    if est.has_primitive and not getattr(est, "pending", False):
        # the same answer from the module's smooth forward, in float64, in its natural space
        est.mode, est.signed = "smooth", est.natural == "signed"
        ends = est(torch.tensor([-1e9, 1e9], dtype=torch.float64))
        ends = (ends + 1) / 2 if est.signed else ends
        assert (abs(float(ends[0])) <= 0.05 and abs(float(ends[1]) - 1) <= 0.05) is expected
