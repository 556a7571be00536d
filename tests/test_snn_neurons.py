"""Neurons (functional steps, multi-step and single-step modules), encoders and decoders."""

import math

import pytest
import torch

import htaf
from htaf.families import model_options
from htaf.families.snn import decoders, encoders
from htaf.families.snn import functional as SF
from htaf.families.snn.models import NeuronSpec, build_network
from htaf.families.snn.neurons import IF, LIF, PLIF, IFCell, LIFCell, PLIFCell, make_neuron


# -- parameters -------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [0.0, -0.1, 1.5, math.nan])
def test_beta_outside_zero_one_is_refused_by_name(beta):
    with pytest.raises(ValueError, match="beta"):
        SF.LIFParameters(beta=beta)
    with pytest.raises(ValueError, match="beta"):
        LIF(beta=beta)


@pytest.mark.parametrize("tau", [0.0, -2.0, 0.5, 1.0])
def test_tau_of_one_or_less_is_refused_by_name(tau):
    with pytest.raises(ValueError, match="tau"):
        SF.LIFParameters.from_tau(tau)
    with pytest.raises(ValueError, match="tau"):
        LIF(tau=tau)
    with pytest.raises(ValueError, match="init_tau"):
        PLIF(init_tau=tau)


def test_tau_is_spikingjellys_time_constant():
    assert SF.LIFParameters.from_tau(10.0).beta == pytest.approx(0.9)
    assert LIF(tau=4.0).params.beta == pytest.approx(0.75)
    assert PLIF(init_tau=2.0).tau == pytest.approx(2.0)


def test_other_bad_parameters_name_themselves():
    with pytest.raises(ValueError, match="threshold"):
        SF.IFParameters(threshold=0.0)
    with pytest.raises(ValueError, match="reset"):
        SF.IFParameters(reset="zero")
    with pytest.raises(ValueError, match="unknown neuron 'izhikevich'"):
        make_neuron("izhikevich")
    with pytest.raises(ValueError, match="signed"):
        SF.spike_estimator(htaf.estimators.get("ste", signed=True))
    with pytest.raises(ValueError, match="does not spike"):
        SF.spike_estimator(torch.nn.ReLU())


# -- the step functions ----------------------------------------------------------------------
def test_a_neuron_fires_at_exactly_the_threshold():
    x = torch.tensor([0.5, 1.0, 1.5])
    s, v = SF.if_step(x, None, SF.IFParameters(threshold=1.0), htaf.estimators.get("atan"))
    assert s.tolist() == [0.0, 1.0, 1.0]  # v >= θ fires (snnTorch and Norse: v > θ)
    assert v.tolist() == [0.5, 0.0, 0.5]  # soft reset subtracts θ


def test_lif_step_is_the_documented_recurrence():
    p = SF.LIFParameters(beta=0.5, threshold=1.0, reset="hard", v_reset=-0.25)
    triangle = htaf.estimators.get("triangle")
    s, v = SF.lif_step(torch.tensor([0.4, 0.9]), torch.tensor([1.0, 0.5]), p, triangle)
    # h = 0.5 v + x = [0.9, 1.15]: the second fires and is reset to v_reset
    assert s.tolist() == [0.0, 1.0]
    assert v.tolist() == pytest.approx([0.9, -0.25])
    p = SF.LIFParameters(beta=0.5, decay_input=True)
    s, v = SF.lif_step(torch.tensor([1.0]), torch.tensor([1.0]), p, triangle)
    assert v.tolist() == pytest.approx([0.0])  # h = 0.5·1 + 0.5·1 = 1 >= θ, soft reset: 0
    assert s.tolist() == [1.0]


def test_plif_step_learns_its_time_constant():
    w = torch.tensor(0.3, requires_grad=True)
    x = torch.tensor([0.7, 1.3])
    atan = htaf.estimators.get("atan")
    s, v = SF.plif_step(x, torch.tensor([0.5, 0.5]), w, SF.PLIFParameters(), atan)
    (s.sum() + v.sum()).backward()
    assert w.grad is not None and w.grad != 0


@pytest.mark.parametrize("step", ["if", "lif", "plif"])
def test_the_step_functions_refuse_a_name_and_say_what_to_pass(step):
    x, p = torch.tensor([0.5, 2.5]), {"if": SF.IFParameters(), "lif": SF.LIFParameters(),
                                       "plif": SF.PLIFParameters()}[step]  # fmt: skip
    args = (x, None, torch.tensor(0.0)) if step == "plif" else (x, None)
    fn = {"if": SF.if_step, "lif": SF.lif_step, "plif": SF.plif_step}[step]
    with pytest.raises(TypeError, match=r"the name 'htaf'.*htaf\.estimators\.get\('htaf'\)"):
        fn(*args, p, "htaf")
    with pytest.raises(TypeError, match="LIF/IF/PLIF modules, which take a name"):
        fn(*args, p, spike_fn="atan")
    s, _ = fn(*args, p, htaf.estimators.get("atan"))  # a module works: the same call
    assert s.tolist() == [0.0, 1.0]


class FunctionalLIF(torch.nn.Module):
    """A user's own layer over the functional API: it owns its estimator, as the doc says."""

    def __init__(self, name: str):
        super().__init__()
        self.spike = htaf.estimators.get(name)
        self.p = SF.LIFParameters(beta=0.9)

    def forward(self, x):
        v, out = None, []
        for x_t in x:
            s, v = SF.lif_step(x_t, v, self.p, self.spike)
            out.append(s)
        return torch.stack(out)


@pytest.mark.parametrize("make", [FunctionalLIF, LIF, LIFCell], ids=["functional", "LIF", "cell"])
def test_a_hardened_model_emits_exact_spikes_whatever_api_it_uses(make):
    torch.manual_seed(0)
    model = make("htaf") if make is FunctionalLIF else make(spike_fn="htaf")
    x = torch.randn(6, 4, 5) + 0.8

    def run():
        return model(x[0])[0] if make is LIFCell else model(x)

    smooth = run()
    assert ((smooth > 0) & (smooth < 1)).any()  # HTAF's default: smooth spikes
    htaf.harden(model)
    hard = run()
    assert set(hard.unique().tolist()) == {0.0, 1.0}


def test_layers_built_from_one_name_own_distinct_estimators():
    a, b = LIF(spike_fn="htaf"), LIF(spike_fn="htaf")
    assert a.spike is not b.spike
    a.spike.set_param("alpha0", 1.0)  # per-layer state stays in its layer
    assert b.spike.pending and a.spike.alpha0 == 1.0
    net = build_network("mlp", (6,), 3, NeuronSpec(spike_fn="htaf"), widths=(4, 4),
                        decoder="count")  # fmt: skip
    found = list(htaf.estimators.estimators_in(net))
    assert len(found) == 3 and len({id(e) for e in found}) == 3  # two hidden layers + the head


def test_detach_reset_has_one_default_everywhere():
    (default,) = {
        SF.DETACH_RESET,
        SF.IFParameters().detach_reset,
        SF.LIFParameters().detach_reset,
        SF.PLIFParameters().detach_reset,
        IF().params.detach_reset,
        LIF().params.detach_reset,
        PLIF().params.detach_reset,
        LIFCell().neuron.params.detach_reset,
        NeuronSpec().detach_reset,
        model_options("snn", {}).detach_reset,  # the family's
    }
    assert default is True  # chosen by the family's measurements (README, Spiking networks)


def test_detach_reset_removes_the_spike_from_the_reset_gradient():
    x = torch.tensor([1.2], requires_grad=True)
    for detach, expected in [(False, 1 - 1.0), (True, 1.0)]:  # ∂v/∂x = 1 - θ g (g = 1 at 0+)
        p = SF.IFParameters(detach_reset=detach)
        est = htaf.estimators.get("decoupled_constant")  # rule 1 everywhere
        _, v = SF.if_step(x, None, p, est)
        (g,) = torch.autograd.grad(v, x)
        assert g.item() == pytest.approx(expected)


# -- modules -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["if", "lif", "plif"])
def test_multi_step_modules_equal_their_single_step_cells(kind):
    torch.manual_seed(1)
    x = torch.randn(7, 4, 6) + 0.5
    multi = {"if": IF, "lif": LIF, "plif": PLIF}[kind](spike_fn="atan")
    cell = {"if": IFCell, "lif": LIFCell, "plif": PLIFCell}[kind](spike_fn="atan")
    if kind == "plif":
        cell.neuron.w.data.copy_(multi.w.data)
    v, spikes = None, []
    for t in range(7):
        s, v = cell(x[t], v)
        spikes.append(s)
    assert torch.allclose(multi(x), torch.stack(spikes), atol=1e-6)


def test_state_lives_inside_one_call():
    lif = LIF(spike_fn="atan")
    x = torch.rand(5, 2, 3) * 2
    first, second = lif(x), lif(x)
    assert torch.equal(first, second)  # nothing to reset between batches


@pytest.mark.parametrize("shape", [(8,), (8, 3)])
def test_a_multi_step_module_needs_a_time_dimension(shape):
    with pytest.raises(ValueError, match=r"\(T, B, \.\.\.\)"):
        LIF()(torch.randn(*shape))


def test_harden_and_soften_switch_the_neurons_forward():
    lif = LIF(spike_fn="htaf")
    x = torch.randn(4, 2, 3)
    assert lif.spike.mode == "smooth" and not lif.hard
    smooth = lif(x)
    assert ((smooth > 0) & (smooth < 1)).any()
    with htaf.harden(lif):
        hard = lif(x)
        assert lif.hard
    assert set(hard.unique().tolist()) <= {0.0, 1.0}


def test_forward_hooks_on_the_estimator_see_every_step_under_no_grad():
    lif = LIF(spike_fn="atan")
    seen = []
    lif.spike.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        lif(torch.randn(5, 2, 3))
    assert seen == [torch.Size([5, 2, 3])]


# -- encoders --------------------------------------------------------------------------------------
def test_poisson_spikes_at_the_intensity_rate():
    x = torch.tensor([0.0, 0.25, 1.0])
    s = encoders.poisson(x.expand(4000, 3), 8, torch.Generator().manual_seed(0))
    assert s.shape == (8, 4000, 3)
    assert s.mean((0, 1)).tolist() == pytest.approx([0.0, 0.25, 1.0], abs=0.01)


def test_latency_fires_once_earlier_for_brighter_inputs():
    s = encoders.latency(torch.tensor([[1.0, 0.5, 0.0]]), 5)
    assert s.sum(0).tolist() == [[1.0, 1.0, 0.0]]
    assert s[:, 0, 0].argmax().item() == 0 and s[:, 0, 1].argmax().item() == 2


def test_direct_holds_the_input_without_copying():
    x = torch.randn(2, 3)
    d = encoders.direct(x, 4)
    assert d.shape == (4, 2, 3) and d.stride(0) == 0 and torch.equal(d[3], x)


@pytest.mark.parametrize("kind", ["poisson", "latency"])
def test_rate_codes_refuse_intensities_outside_zero_one(kind):
    with pytest.raises(ValueError, match=f"encoder '{kind}'.*\\[-0.5"):
        encoders.Encoder(kind, 4)(torch.tensor([-0.5, 0.3]))
    with pytest.raises(ValueError, match="intensities in \\[0, 1\\]"):
        encoders.Encoder(kind, 4)(torch.tensor([1.5]))


@pytest.mark.parametrize("steps", [0, -3, 2.5, True])
def test_time_steps_must_be_a_positive_integer(steps):
    with pytest.raises(ValueError, match="T"):
        encoders.Encoder("poisson", steps)


def test_the_encoder_is_deterministic_in_eval_mode_only():
    enc = encoders.Encoder("poisson", 6)
    x = torch.full((3, 10), 0.5)
    enc.eval()
    assert torch.equal(enc(x), enc(x))
    enc.train()
    assert not torch.equal(enc(x), enc(x))


# -- decoders --------------------------------------------------------------------------------------
def test_mean_membrane_is_the_mean_of_a_leaky_integrator():
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    v, total = torch.zeros(2, 3, dtype=torch.float64), 0
    for t in range(6):
        v = 0.8 * v + x[t]
        total = total + v
    assert torch.allclose(decoders.mean_membrane(x, 0.8), total / 6)
    assert torch.allclose(decoders.mean_membrane(x, 1.0), x.cumsum(0).mean(0))


def test_first_spike_scores_the_earliest_spike():
    s = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # (T=3, K=3)
    assert decoders.first_spike(s.unsqueeze(1)).tolist() == [[2.0, 0.0, 3.0]]
    assert decoders.spike_count(s).tolist() == [2.0, 0.0, 2.0]
