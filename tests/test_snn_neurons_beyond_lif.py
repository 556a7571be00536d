"""The neurons beyond LIF: current-based (Synaptic), adaptive threshold (ALIF), recurrent
(RLIF). Their values and gradients against float64 loops for every estimator are in
test_snn_fused.py; here: cells against modules, bad input, snnTorch, and the family."""

import json

import pytest
import torch

from htaf import estimators
from htaf.cli import main
from htaf.config import ConfigError
from htaf.families import model_options
from htaf.families.snn import functional as SF
from htaf.families.snn.models import NeuronSpec, build_network
from htaf.families.snn.neurons import (
    ALIF,
    RLIF,
    ALIFCell,
    RLIFCell,
    Synaptic,
    SynapticCell,
    make_neuron,
)

T, B, N = 7, 3, 5
KINDS = {
    "synaptic": (Synaptic, SynapticCell, {"alpha": 0.6}),
    "alif": (ALIF, ALIFCell, {"rho": 0.8, "adapt": 0.4}),
    "rlif": (RLIF, RLIFCell, {"size": N}),
}


def currents(seed=0, scale=0.9, shift=0.35, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, N, generator=gen, dtype=dtype) * scale + shift


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_cell_steps_through_the_modules_run(kind):
    module_cls, cell_cls, kw = KINDS[kind]
    module = module_cls(spike_fn="atan", **kw).double()
    cell = cell_cls(spike_fn="atan", **kw).double()
    cell.load_state_dict({f"neuron.{k}": v for k, v in module.state_dict().items()})
    x = currents()
    seq = module.run(x)
    state, spikes = None, []
    for t in range(T):
        s, state = cell(x[t], state)
        spikes.append(s)
    assert seq.spikes.sum() > 0
    assert torch.equal(torch.stack(spikes), seq.spikes)
    for a, b in zip(state, seq.state, strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-15)


def test_alif_raises_its_threshold_after_each_spike():
    """A constant drive: LIF fires at a fixed rate, ALIF slower and slower."""
    x = torch.full((40, 1, 1), 0.3, dtype=torch.float64)
    lif = make_neuron("lif", spike_fn="atan").double().run(x).spikes.flatten()
    alif = ALIF(rho=0.95, adapt=0.5, spike_fn="atan").double().run(x).spikes.flatten()
    assert 0 < alif.sum() < lif.sum()
    times = torch.nonzero(alif).flatten()
    gaps = times.diff()
    assert gaps[-1] > gaps[0]  # the intervals grow as the adaptation builds up


def test_synaptic_current_is_a_leaky_filter_of_the_input():
    x = torch.zeros(T, 1, 1, dtype=torch.float64)
    x[0] = 0.5
    seq = Synaptic(alpha=0.5, beta=0.9, spike_fn="atan").double().run(x)
    # i_t = 0.5^(t+1); h_t = 0.9 h_{t-1} + i_t (nothing fires)
    h = 0.0
    for t in range(T):
        h = 0.9 * h + 0.5 ** (t + 1)
        assert float(seq.membrane[t]) == pytest.approx(h, rel=1e-12)


def test_rlif_step_with_input_weights_is_the_module_fed_by_a_linear():
    gen = torch.Generator().manual_seed(1)
    w_in = torch.randn(N, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(T, B, 4, generator=gen, dtype=torch.float64)
    module = RLIF(N, spike_fn="atan").double()
    seq = module.run(x @ w_in.T)
    state = None
    for t in range(T):
        s, state = SF.rlif_step(x[t], state, module.w_rec, module.params, module.spike, w_in)
        assert torch.equal(s, seq.spikes[t])


# -- bad input ------------------------------------------------------------------------------------
def test_a_recurrent_state_of_the_wrong_shape_names_both_shapes():
    cell = RLIFCell(N, spike_fn="atan")
    x = torch.randn(B, N)
    with pytest.raises(ValueError, match=r"state s has shape \(3, 4\), expected \(3, 5\)"):
        cell(x, SF.RLIFState(torch.zeros(B, N), torch.zeros(B, 4)))
    with pytest.raises(ValueError, match=r"state v has shape \(2, 5\), expected \(3, 5\)"):
        bad = SF.RLIFState(torch.zeros(2, N), torch.zeros(B, N))
        RLIF(N, spike_fn="atan").run(x.expand(T, B, N), bad)
    with pytest.raises(ValueError, match=r"RLIF of size 5 takes currents \(T, B, 5, \.\.\.\)"):
        RLIF(N, spike_fn="atan").run(torch.randn(T, B, 6))
    with pytest.raises(ValueError, match=r"w_rec has shape \(4, 4\), expected \(5, 5\)"):
        SF.rlif_step(x, None, torch.zeros(4, 4), SF.RLIFParameters(), estimators.get("atan"))
    with pytest.raises(ValueError, match="RLIFState"):
        cell(x, torch.zeros(B, N))  # a bare tensor is not a state


@pytest.mark.parametrize("kind", ["synaptic", "alif"])
def test_other_states_of_the_wrong_shape_are_named(kind):
    module_cls, cell_cls, kw = KINDS[kind]
    state = module_cls.state_type(torch.zeros(B, N), torch.zeros(B, N + 1))
    field = module_cls.state_type._fields[1]
    with pytest.raises(ValueError, match=rf"state {field} has shape \(3, 6\), expected \(3, 5\)"):
        cell_cls(spike_fn="atan", **kw)(torch.randn(B, N), state)
    with pytest.raises(ValueError, match=rf"state {field} has shape"):
        module_cls(spike_fn="atan", **kw).run(torch.randn(T, B, N), state)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SF.SynapticParameters(alpha=0.0), "alpha"),
        (lambda: SF.SynapticParameters(alpha=1.5), "alpha"),
        (lambda: SF.SynapticParameters(alpha=float("nan")), "alpha"),
        (lambda: SF.ALIFParameters(rho=0.0), "rho"),
        (lambda: SF.ALIFParameters(rho=1.01), "rho"),
        (lambda: SF.ALIFParameters(adapt=-0.1), "adapt"),
        (lambda: SF.ALIFParameters(threshold=0.0), "threshold"),
        (lambda: SF.RLIFParameters(beta=0.0), "beta"),
        (lambda: Synaptic(tau=0.0), "tau"),
        (lambda: ALIF(tau=-1.0), "tau"),
        (lambda: RLIF(0), "size"),
        (lambda: RLIF(N, tau=1.0), "tau"),
    ],
)
def test_bad_parameters_name_themselves(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_the_kernel_backend_is_refused_with_the_reason_where_it_cannot_run():
    with pytest.raises(ValueError, match="threshold is a constant"):
        ALIF(backend="kernel")
    with pytest.raises(ValueError, match="matrix product at every step"):
        RLIF(N, backend="kernel")
    with pytest.raises(ValueError, match="backend must be one of"):
        RLIF(N, backend="cuda")
    # the synaptic current is a filter outside the node: its LIF part runs in the kernel
    assert Synaptic(backend="kernel").backend == "kernel"
    assert ALIF(backend="torch").run(torch.randn(T, B, N)).spikes.shape == (T, B, N)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"neuron": "synaptic", "alpha": 0.0}, "model.alpha"),
        ({"neuron": "alif", "rho": 2.0}, "model.rho"),
        ({"neuron": "alif", "adapt": -1.0}, "model.adapt"),
        ({"neuron": "rlif", "tau": 0.5}, "model.tau"),
    ],
)
def test_bad_neuron_options_exit_2_naming_the_key_and_write_nothing(tmp_path, capsys, options,
                                                                    key):  # fmt: skip
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        model_options("snn", options)
    out = tmp_path / "cmp"
    args = ["compare", "--family", "snn", "--out", str(out), "--no-progress"]
    for k, v in options.items():
        args += ["--model", f"{k}={json.dumps(v)}"]
    assert main(args) == 2
    assert key in capsys.readouterr().err
    assert not out.exists()


# -- snnTorch: the same trajectories where the definitions agree ----------------------------------
def _f32(value):
    """A float as snnTorch stores it (a float32 tensor), so both sides use the same number."""
    return float(torch.tensor(value, dtype=torch.float32))


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_synaptic_follows_snntorch_synaptic(reset):
    """snnTorch ``Synaptic(reset_delay=False)``: ``syn`` is our current ``i`` and ``mem``
    (after its reset) our state ``v``. The subtract reset agrees while no reset leaves the
    membrane at or over θ (checked); snnTorch fires at mem > θ, htaf at h >= θ (no ties here)."""
    snn = pytest.importorskip("snntorch", reason="the comparison needs snnTorch")
    alpha, beta = _f32(0.7), _f32(0.85)
    theirs = snn.Synaptic(alpha=0.7, beta=0.85, threshold=1.0, reset_mechanism=reset,
                          reset_delay=False)  # fmt: skip
    ours = SynapticCell(alpha, beta, reset="hard" if reset == "zero" else "soft",
                        spike_fn=estimators.get("atan", mode="hard"))  # fmt: skip
    x = currents(seed=2, scale=0.3, shift=0.1, dtype=torch.float32)
    state = None
    fired = 0
    for t in range(T):
        spk, syn, mem = theirs(x[t])
        s, state = ours(x[t], state)
        assert torch.equal(s, spk)
        torch.testing.assert_close(state.i, syn, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(state.v, mem, rtol=1e-6, atol=1e-6)
        assert (state.v < 1.0).all()  # the premise of the subtract case
        fired += int(s.sum())
    assert fired > 0


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_rlif_follows_snntorch_rleaky(reset):
    """snnTorch ``RLeaky(all_to_all=True, linear_features=N, reset_delay=False)`` with our
    ``W_rec`` as its recurrent weight and a zero recurrent bias."""
    snn = pytest.importorskip("snntorch", reason="the comparison needs snnTorch")
    torch.manual_seed(0)  # W_rec: nn.Linear's initialisation
    theirs = snn.RLeaky(beta=0.85, linear_features=N, threshold=1.0, reset_mechanism=reset,
                        reset_delay=False)  # fmt: skip
    ours = RLIFCell(N, _f32(0.85), reset="hard" if reset == "zero" else "soft",
                    spike_fn=estimators.get("atan", mode="hard"))  # fmt: skip
    with torch.no_grad():
        theirs.recurrent.weight.copy_(ours.neuron.w_rec * 2)
        ours.neuron.w_rec.mul_(2)  # strong enough that the recurrence matters
        theirs.recurrent.bias.zero_()
    x = currents(seed=4, scale=0.3, shift=0.1, dtype=torch.float32)
    state, fired, recurrent = None, 0, 0.0
    for t in range(T):
        spk, mem = theirs(x[t])
        if state is not None:
            recurrent += float(
                SF.recurrent_current(state.s, ours.neuron.w_rec).detach().abs().sum()
            )
        s, state = ours(x[t], state)
        assert torch.equal(s, spk)
        torch.testing.assert_close(state.v, mem, rtol=1e-5, atol=1e-6)
        assert (state.v < 1.0).all()
        fired += int(s.sum())
    assert fired > 0 and recurrent > 0


# -- in the family ---------------------------------------------------------------------------------
def _net(kind, arch="mlp", **kw):
    extra = {k: v for k, v in KINDS[kind][2].items() if k != "size"}
    spec = NeuronSpec(kind=kind, spike_fn="atan", extra=extra)
    shape = (1, 8, 8)
    return build_network(arch, shape, 3, spec, widths=(16,), channels=(4,), blocks=(1,),
                         steps=6, encoder="direct", **kw)  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("arch", ["mlp", "cnn", "sew_resnet"])
def test_every_architecture_runs_the_new_neurons(kind, arch):
    torch.manual_seed(0)
    net = _net(kind, arch)
    x = torch.rand(4, 1, 8, 8)
    out = net(x)
    out.sum().backward()
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    layers = net.neuron_layers()
    assert layers and all(type(m).__name__ == KINDS[kind][0].__name__ for _, m in layers)
    if kind == "rlif":
        assert all(m.w_rec.grad.abs().sum() > 0 for _, m in layers)


@pytest.mark.parametrize("kind", list(KINDS))
def test_time_chunk_checkpointing_carries_the_whole_state(kind):
    torch.manual_seed(0)
    whole = _net(kind)
    chunked = _net(kind, checkpoint_steps=4)
    chunked.load_state_dict(whole.state_dict())
    x = torch.rand(4, 1, 8, 8)
    grads = []
    for net in (whole, chunked):
        net.train()
        out = net(x)
        out.square().sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # the run draws its figures
def test_a_recurrent_snn_trains_from_the_cli(tmp_path, monkeypatch):
    from conftest import make_digits_images
    from htaf.train import run_folder as run_module

    ds = make_digits_images(200)
    load = run_module.load_dataset
    monkeypatch.setattr(
        run_module, "load_dataset", lambda c: ds if c.dataset == "digits_images" else load(c)
    )
    config = tmp_path / "run.toml"
    config.write_text('family = "snn"\ndataset = "digits_images"\nepochs = 1\nbatch_size = 64\n'
                      '[model]\nneuron = "rlif"\nT = 3\n')  # fmt: skip
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy_hard"] <= 1 and 0 <= metrics["test_accuracy_smooth"] <= 1
    assert 0 <= metrics["test_rate_layer1_hard"] <= 1  # the recurrent layer is observed
