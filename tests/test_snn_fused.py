"""The fused multi-step neuron: the same values and gradients as the unrolled loop, for every
registered estimator, in both modes and both backends, while saving only the membrane."""

import pytest
import torch

from htaf import estimators
from htaf.families.snn import fused
from htaf.families.snn.functional import IFParameters, LIFParameters

T, B, N = 6, 3, 5
BACKENDS = ["kernel", "torch"]


def unrolled(x, v0, beta, p, est):
    """The reference: plain autograd through one step at a time."""
    v, spikes, membranes = v0, [], []
    for t in range(x.shape[0]):
        h = beta * v + x[t]
        s = est(h - p.threshold)
        r = s.detach() if p.detach_reset else s
        v = h - p.threshold * r if p.reset == "soft" else h * (1 - r) + p.v_reset * r
        spikes.append(s)
        membranes.append(h)
    return torch.stack(spikes), torch.stack(membranes), v


def make_estimator(name, mode):
    est = estimators.get(name, mode=mode)
    if hasattr(est, "generator"):
        est.generator = torch.Generator()
    return est


def run_both(name, mode, p, backend, dtype=torch.float64, seed=0):
    """(reference, fused) results: spikes, membrane, last state and the gradients of x, v0, β."""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(T, B, N, generator=gen, dtype=dtype) * 0.9 + 0.35
    v00 = torch.randn(B, N, generator=gen, dtype=dtype) * 0.3
    weights = [torch.randn(T, B, N, generator=gen, dtype=dtype) for _ in range(2)]
    w_v = torch.randn(B, N, generator=gen, dtype=dtype)
    est = make_estimator(name, mode)
    out = []
    for which in ("reference", "fused"):
        if hasattr(est, "generator"):
            est.generator.manual_seed(7)  # the same draws for both
        x = x0.clone().requires_grad_()
        v0 = v00.clone().requires_grad_()
        beta = torch.tensor(0.85, dtype=dtype, requires_grad=True)
        if which == "reference":
            s, h, v = unrolled(x, v0, beta, p, est)
        else:
            seq = fused.neuron_sequence(x, p, est, beta=beta, v0=v0, backend=backend)
            s, h, v = seq.spikes, seq.membrane, seq.v
        loss = (s * weights[0]).sum() + (h * weights[1]).sum() * 0.1 + (v * w_v).sum()
        loss.backward()
        out.append([t.detach() for t in (s, h, v, x.grad, v0.grad, beta.grad)])
    return out


def assert_close(ref, got, rtol):
    names = ("spikes", "membrane", "v", "dx", "dv0", "dbeta")
    for name, a, b in zip(names, ref, got, strict=False):  # dw_rec: rlif only
        scale = max(float(a.abs().max()), 1e-12)
        err = float((a - b).abs().max()) / scale
        assert err <= rtol, f"{name}: relative error {err:.3g}"


@pytest.fixture(scope="module", autouse=True)
def _kernel():
    assert fused.kernel_available(), "the C++ kernel should build on this machine"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["smooth", "hard"])
@pytest.mark.parametrize("name", estimators.names())
def test_gradients_match_the_unrolled_float64_loop_for_every_estimator(name, mode, backend):
    p = LIFParameters(beta=0.85, threshold=1.0, reset="soft", detach_reset=False)
    ref, got = run_both(name, mode, p, backend)
    assert_close(ref, got, 1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize(
    ("name", "mode"), [("htaf", "smooth"), ("atan", "hard"), ("jamming", "hard"), ("ste", "hard")]
)
def test_every_reset_matches_the_unrolled_loop(name, mode, reset, detach, backend):
    p = LIFParameters(beta=0.85, reset=reset, v_reset=-0.2, detach_reset=detach)
    ref, got = run_both(name, mode, p, backend)
    assert_close(ref, got, 1e-6)


@pytest.mark.parametrize("name", ["htaf", "sigmoid_surrogate", "atan", "fast_sigmoid", "triangle"])
@pytest.mark.parametrize("mode", ["smooth", "hard"])
@pytest.mark.parametrize("detach", [True, False])
def test_float32_backends_are_as_accurate_as_each_other(name, mode, detach):
    """In float32 both backends round differently; each stays as close to the float64 truth
    as the other. (With the reset attached, a steep rule, |1 - θ g| > 1, amplifies rounding
    over time: HTAF's peak is 5.5, so there both are only ~1e-4 from float64.)"""
    p = LIFParameters(beta=0.9, detach_reset=detach)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(16, 8, 300, generator=gen, dtype=torch.float64) * 0.8 + 0.4
    results = {}
    for backend, dtype in (("kernel", torch.float32), ("torch", torch.float32),
                           ("torch", torch.float64)):  # fmt: skip
        x = x0.to(dtype).requires_grad_()
        seq = fused.neuron_sequence(x, p, estimators.get(name, mode=mode), backend=backend)
        (seq.spikes.sum() + 0.1 * seq.membrane.sum()).backward()
        results[backend, dtype] = [t.detach().double() for t in (seq.spikes, seq.membrane, x.grad)]
    truth = results["torch", torch.float64]
    for a, b, c in zip(results["kernel", torch.float32], results["torch", torch.float32], truth,
                       strict=True):  # fmt: skip
        scale = float(c.abs().max())
        err_kernel, err_torch = float((a - c).abs().max()), float((b - c).abs().max())
        assert err_kernel <= 2 * err_torch + 1e-6 * scale
        assert err_kernel <= (1e-4 if detach or mode == "hard" else 1e-3) * scale


@pytest.mark.parametrize("backend", BACKENDS)
def test_integrate_and_fire_is_the_beta_one_case(backend):
    x = torch.randn(T, B, N, dtype=torch.float64) + 0.3
    est = estimators.get("atan")
    a = fused.neuron_sequence(x, IFParameters(), est, backend=backend)
    b = fused.neuron_sequence(x, LIFParameters(beta=1.0), est, backend=backend)
    assert torch.equal(a.spikes, b.spikes) and torch.equal(a.membrane, b.membrane)
    # no leak: h_1 = (h_0 - θ s_0) + x_1
    assert torch.allclose(a.membrane[1], a.membrane[0] - a.spikes[0] + x[1], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_constant_input_is_read_every_step_and_its_gradient_summed(backend):
    base = torch.randn(B, N, dtype=torch.float64) + 0.4
    est = estimators.get("htaf")
    p = LIFParameters(beta=0.8)
    c = base.clone().requires_grad_()
    held = fused.neuron_sequence(c, p, est, steps=T, backend=backend)
    e = base.clone().requires_grad_()
    expanded = fused.neuron_sequence(e.expand(T, B, N), p, est, backend=backend)
    assert torch.allclose(held.spikes, expanded.spikes)
    held.spikes.sum().backward()
    expanded.spikes.sum().backward()
    assert c.grad.shape == (B, N)
    assert torch.allclose(c.grad, e.grad, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_node_saves_only_the_membrane_sequence(backend):
    x = torch.randn(T, B, N, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        seq = fused.neuron_sequence(x, LIFParameters(), estimators.get("atan"), backend=backend)
    assert len(saved) == 1 and saved[0].shape == (T, B * N)
    assert saved[0].untyped_storage().data_ptr() == seq.membrane.untyped_storage().data_ptr()
    seq.spikes.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_no_grad_gives_the_same_sequence_without_a_node():
    x = torch.randn(T, B, N)
    est = estimators.get("htaf")
    with_grad = fused.neuron_sequence(x.requires_grad_(), LIFParameters(), est)
    with torch.no_grad():
        plain = fused.neuron_sequence(x, LIFParameters(), est)
    assert plain.spikes.grad_fn is None
    assert torch.equal(plain.spikes, with_grad.spikes.detach())


def test_respike_recomputes_the_spikes():
    x = torch.randn(T, B, N)
    for name, mode in [("htaf", "smooth"), ("htaf", "hard"), ("scaled_sigmoid", "smooth")]:
        for backend in BACKENDS:
            est = estimators.get(name, mode=mode)
            seq = fused.neuron_sequence(x, LIFParameters(), est, backend=backend)
            again = seq.respike(seq.membrane)
            if backend == "kernel" or mode == "hard":  # the same code on the same numbers
                assert torch.equal(again, seq.spikes)
            else:  # PyTorch's vectorised and scalar tails may round a tiny value differently
                assert torch.allclose(again, seq.spikes, rtol=1e-6, atol=1e-30)


def test_finite_inputs_give_finite_outputs_and_huge_ones_do_not_overflow():
    x = torch.tensor([[1e30, -1e30, 0.0, 1e-30]]).repeat(4, 1).requires_grad_()
    for name in ("htaf", "atan", "sigmoid_surrogate", "fast_sigmoid"):
        seq = fused.neuron_sequence(x, LIFParameters(), estimators.get(name))
        seq.spikes.sum().backward()
        assert torch.isfinite(seq.spikes).all() and torch.isfinite(x.grad).all()
        x.grad = None


def test_bad_arguments_name_themselves():
    est = estimators.get("atan")
    with pytest.raises(ValueError, match="backend"):
        fused.neuron_sequence(torch.randn(2, 3), LIFParameters(), est, backend="cuda")
    with pytest.raises(ValueError, match="steps"):
        fused.neuron_sequence(torch.randn(3), LIFParameters(), est, steps=0)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000])
def test_bits_pack_and_unpack_exactly(n, monkeypatch):
    x = (torch.rand(n) < 0.4).float()
    packed = fused.pack_bits(x)
    assert packed.dtype == torch.uint8 and packed.numel() == (n + 7) // 8
    assert torch.equal(fused.unpack_bits(packed, (n,), torch.float32), x)
    monkeypatch.setattr(fused._load, "result", None)  # the PyTorch fallback packs the same bits
    assert torch.equal(fused.pack_bits(x), packed)
    assert torch.equal(fused.unpack_bits(packed, (n,), torch.float64), x.double())


# -- the neurons beyond LIF: the same contract, against plain float64 loops written here ----------
def reference_beyond_lif(kind, x, state, p, est, w_rec=None):
    """The documented equations, one step at a time, through the estimator module."""
    parts = list(state)
    spikes, membranes = [], []
    for t in range(x.shape[0]):
        if kind.startswith("synaptic"):
            v, i = parts
            i = p.alpha * i + x[t]
            h, theta = p.beta * v + i, p.threshold
        elif kind == "alif":
            v, a = parts
            h, theta = p.beta * v + x[t], p.threshold + p.adapt * a
        else:
            v, s_prev = parts
            h, theta = p.beta * v + x[t] + s_prev @ w_rec.T, p.threshold
        s = est(h - theta)
        r = s.detach() if p.detach_reset else s
        v = h - theta * r if p.reset == "soft" else h * (1 - r) + p.v_reset * r
        if kind.startswith("synaptic"):
            parts = [v, i]
        elif kind == "alif":
            parts = [v, p.rho * a + s]
        else:
            parts = [v, s]
        spikes.append(s)
        membranes.append(h)
    return torch.stack(spikes), torch.stack(membranes), parts


def module_beyond_lif(kind, est, reset="soft", detach=False):
    from htaf.families.snn import neurons

    common = dict(beta=0.85, reset=reset, v_reset=-0.2, detach_reset=detach, spike_fn=est)
    if kind in ("synaptic", "synaptic_torch"):  # the LIF part: C++ kernel, or PyTorch
        backend = "torch" if kind == "synaptic_torch" else "kernel"
        return neurons.Synaptic(alpha=0.7, backend=backend, **common)
    if kind == "alif":
        return neurons.ALIF(rho=0.8, adapt=0.3, **common)
    return neurons.RLIF(N, **common)


def run_beyond_lif(kind, est, reset="soft", detach=False, dtype=torch.float64):
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(T, B, N, generator=gen, dtype=dtype) * 0.9 + 0.35
    state0 = [torch.randn(B, N, generator=gen, dtype=dtype) * 0.3 for _ in range(2)]
    if kind == "rlif":
        state0[1] = (state0[1] > 0).to(dtype)  # previous spikes
    w0 = torch.randn(N, N, generator=gen, dtype=dtype) * 0.4
    weights = [torch.randn(T, B, N, generator=gen, dtype=dtype) for _ in range(2)]
    w_state = [torch.randn(B, N, generator=gen, dtype=dtype) for _ in range(2)]
    module = module_beyond_lif(kind, est, reset, detach).to(dtype)
    out = []
    for which in ("reference", "module"):
        if hasattr(est, "generator"):
            est.generator.manual_seed(7)
        x = x0.clone().requires_grad_()
        state = [t.clone().requires_grad_() for t in state0]
        w_rec = w0.clone().requires_grad_()
        if which == "reference":
            s, h, last = reference_beyond_lif(kind, x, state, module.params, est, w_rec)
        else:
            if kind == "rlif":
                module.w_rec = torch.nn.Parameter(w_rec)  # the same leaf: its gradient below
            seq = module.run(x, module.state_type(*state))
            s, h, last = seq.spikes, seq.membrane, list(seq.state)
        loss = (s * weights[0]).sum() + (h * weights[1]).sum() * 0.1
        loss = loss + sum((part * w).sum() for part, w in zip(last, w_state, strict=True))
        loss.backward()
        grads = [x.grad, *(t.grad if t.grad is not None else torch.zeros_like(t) for t in state)]
        if kind == "rlif":
            grads.append(w_rec.grad if which == "reference" else module.w_rec.grad)
        out.append([t.detach() for t in (s, h, *last, *grads)])
    return out


def assert_all_close(ref, got, rtol, names):
    for name, a, b in zip(names, ref, got, strict=False):  # dw_rec: rlif only
        scale = max(float(a.abs().max()), 1e-12)
        err = float((a - b).abs().max()) / scale
        assert err <= rtol, f"{name}: relative error {err:.3g}"


BEYOND = ["synaptic", "alif", "rlif"]
NAMES = ["spikes", "membrane", "state0", "state1", "dx", "dstate0", "dstate1", "dw_rec"]


@pytest.mark.parametrize("kind", [*BEYOND, "synaptic_torch"])
@pytest.mark.parametrize("mode", ["smooth", "hard"])
@pytest.mark.parametrize("name", estimators.names())
def test_new_neurons_match_the_float64_loop_for_every_estimator(name, mode, kind):
    """Synaptic and ALIF run their fused nodes, RLIF its loop: each against the equations
    of its docstring, written out here, forward and backward (reset attached: every term)."""
    from estimator_specs import make

    est = make(name, mode=mode)
    if hasattr(est, "generator"):
        est.generator = torch.Generator()
    ref, got = run_beyond_lif(kind, est)
    assert len(ref) == len(got) == (8 if kind == "rlif" else 7)
    assert ref[0].abs().sum() > 0, "some neuron should fire"
    assert_all_close(ref, got, 1e-6, NAMES)


@pytest.mark.parametrize("kind", BEYOND)
@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize(("name", "mode"), [("atan", "hard"), ("jamming", "hard"),
                                            ("htaf(2,11)", "smooth")])  # fmt: skip
def test_every_reset_of_the_new_neurons_matches_the_loop(name, mode, kind, reset, detach):
    from estimator_specs import make

    est = make(name, mode=mode)
    if hasattr(est, "generator"):
        est.generator = torch.Generator()
    ref, got = run_beyond_lif(kind, est, reset, detach)
    assert_all_close(ref, got, 1e-6, NAMES)


def test_the_alif_node_saves_only_the_membrane_sequence():
    x = torch.randn(T, B, N, requires_grad=True)
    saved = []
    p = fused.ALIFParameters()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        seq, _ = fused.alif_sequence(x, p, estimators.get("atan"))
    assert len(saved) == 1 and saved[0].shape == (T, B * N)
    seq.spikes.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_the_rlif_node_saves_the_membrane_and_its_weights_only():
    from htaf.families.snn.neurons import RLIF

    module = RLIF(N, spike_fn="atan")
    x = torch.randn(T, B, N, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        seq = module.run(x)
    assert [tuple(t.shape) for t in saved] == [(T, B, N), (N, N)]
    assert saved[1] is module.w_rec or saved[1].data_ptr() == module.w_rec.data_ptr()
    seq.spikes.sum().backward()
    assert module.w_rec.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("kind", BEYOND)
def test_the_unrolled_loop_gives_the_fused_values_and_gradients(kind):
    """Inside ``fused.unrolled()`` (for hooks per step) the new neurons run as plain loops."""
    est = estimators.get("atan")
    module = module_beyond_lif(kind, est).double()
    grads = []
    for unroll in (False, True):
        x = (torch.randn(T, B, N, generator=torch.Generator().manual_seed(5),
                         dtype=torch.float64) + 0.4).requires_grad_()  # fmt: skip
        module.zero_grad()
        if unroll:
            with fused.unrolled():
                seq = module.run(x)
        else:
            seq = module.run(x)
        (seq.spikes.sum() + 0.1 * seq.membrane.sum()).backward()
        grads.append([seq.spikes.detach(), x.grad, *(q.grad for q in module.parameters())])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", BEYOND)
def test_a_constant_input_gives_the_expanded_runs_values_and_gradient(kind):
    est = estimators.get("atan")
    module = module_beyond_lif(kind, est).double()
    base = torch.randn(B, N, dtype=torch.float64) + 0.4
    c = base.clone().requires_grad_()
    e = base.clone().requires_grad_()
    held, expanded = module.run(c, steps=T), module.run(e.expand(T, B, N))
    assert torch.allclose(held.spikes, expanded.spikes)
    assert torch.allclose(held.membrane, expanded.membrane, rtol=1e-12)
    (held.spikes.sum() + held.membrane.sum()).backward()
    (expanded.spikes.sum() + expanded.membrane.sum()).backward()
    assert torch.allclose(c.grad, e.grad, rtol=1e-10)


@pytest.mark.parametrize("kind", BEYOND)
def test_finite_inputs_give_finite_outputs_in_the_new_neurons(kind):
    x = torch.tensor([[1e30, -1e30, 0.0, 1e-30, 3.0]]).repeat(4, 1, 1).requires_grad_()
    for name in ("htaf", "atan", "fast_sigmoid"):
        module = module_beyond_lif(kind, estimators.get(name))
        if kind == "rlif":
            module = type(module)(5, spike_fn=name)
        seq = module.run(x)
        seq.spikes.sum().backward()
        assert torch.isfinite(seq.spikes).all() and torch.isfinite(x.grad).all()
        x.grad = None


@pytest.mark.parametrize("kind", BEYOND)
def test_half_precision_runs_in_float32_and_comes_back_in_its_dtype(kind):
    module = module_beyond_lif(kind, estimators.get("atan"))
    x32 = torch.randn(T, B, N) + 0.4
    ref = module.run(x32)
    x = x32.to(torch.bfloat16).requires_grad_()
    state = module.state_type(*(t.to(torch.bfloat16) for t in ref.state))
    seq = module.run(x, state)
    assert seq.spikes.dtype == seq.membrane.dtype == torch.bfloat16
    seq.spikes.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize("kind", BEYOND)
@pytest.mark.parametrize(("name", "mode"), [("htaf", "smooth"), ("atan", "hard")])
def test_the_new_neurons_spikes_come_back_from_their_membrane(kind, name, mode):
    """What lets the next synapse keep the membrane (saved already) instead of the spikes."""
    module = module_beyond_lif(kind, estimators.get(name, mode=mode))
    x = torch.randn(T, B, N) + 0.4
    state = module.state_type(torch.randn(B, N) * 0.3, (torch.rand(B, N) < 0.5).float())
    seq = module.run(x, state)
    assert seq.respike is not None
    assert torch.equal(seq.respike(seq.membrane), seq.spikes)
