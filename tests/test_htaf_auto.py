"""htaf(auto): alpha0 chosen from the data, against float64 references, with bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import htaf
from htaf import estimators as E
from htaf import functional as hf
from htaf.config import RunConfig
from htaf.families import build_model
from htaf.families.bnn.layers import QuantLinear, quantizer
from htaf.families.snn.functional import LIFParameters
from htaf.families.snn.fused import neuron_sequence
from htaf.train import fit, seed_everything


def ratio64(z: float, a1: float) -> float:
    """HTAF'(x)/HTAF'(0) at z = a0·x, written out in float64 from the definition."""
    u = a1 * math.tanh(z)
    s = 1 / (1 + math.exp(-u))
    return 4 * s * (1 - s) * (1 - math.tanh(z) ** 2)


@pytest.mark.parametrize("a1", [2.75, 6.0, 11.0, 24.0])
@pytest.mark.parametrize("level", [0.01, 0.1, 0.5])
def test_live_radius_is_where_the_derivative_falls_to_the_level(a1, level):
    z = hf.htaf_live_radius(a1, level)
    assert ratio64(z, a1) == pytest.approx(level, rel=1e-9)
    assert ratio64(0.99 * z, a1) > level > ratio64(1.01 * z, a1)


@pytest.mark.parametrize("live", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 40.0])
def test_calibration_puts_the_asked_fraction_in_the_live_region(live, scale):
    x = torch.randn(20_001, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = scale * x - 0.3 * scale  # an offset: the threshold is not the centre of the data
    a0 = hf.calibrate_alpha0(x, 11.0, live)
    g = hf.htaf_derivative(x, a0, 11.0)
    fraction = float((g >= 0.01 * a0 * 11.0 / 4).double().mean())
    assert fraction == pytest.approx(live, abs=1e-3)
    # invariant under rescaling the inputs: alpha0·x is what matters
    assert hf.calibrate_alpha0(2 * x, 11.0, live) == pytest.approx(a0 / 2, rel=1e-12)


def test_default_htaf_is_auto_and_the_paper_constants_stay_one_spec_away():
    est = E.get("htaf")
    assert est.auto and est.pending and est.alpha1 == 11.0
    fixed = E.get("htaf(2,11)")
    assert not fixed.auto and fixed.alpha0 == 2.0
    assert E.parse_spec("htaf(auto, live=0.8)") == ("htaf", {"alpha0": "auto", "live": 0.8})
    assert E.get("htaf(auto, live=0.8)").live == 0.8
    assert htaf.interop.snntorch.spike_grad().auto
    assert htaf.interop.spikingjelly.surrogate("htaf").auto


@pytest.mark.parametrize(
    "spec, words",
    [("htaf(alpha1=5, 3)", "follows a named"), ("htaf(2, alpha0=3)", "given twice"),
     ("htaf(auto, alpha0=1)", "given twice"), ("htaf(fast)", "not a number"),
     ("atan(auto)", "real number")],
)  # fmt: skip
def test_ambiguous_or_bad_specs_are_refused(spec, words):
    with pytest.raises(ValueError, match=words):
        E.get(spec)


def test_first_forward_calibrates_and_the_math_waits_for_it():
    est = E.get("htaf")
    with pytest.raises(RuntimeError, match="no alpha0 yet"):
        est.smooth(torch.ones(3))
    x = torch.linspace(-4, 4, 8001)
    y = est(x)
    assert not est.pending and est.alpha0 == pytest.approx(hf.htaf_live_radius(11.0) / 2, rel=1e-3)
    torch.testing.assert_close(y, hf.htaf(x, est.alpha0, 11.0))
    est(100 * x)  # later inputs never move it
    assert est.alpha0 == pytest.approx(hf.htaf_live_radius(11.0) / 2, rel=1e-3)


def test_a_constant_input_gets_the_exact_step_and_calibration_waits():
    est = E.get("htaf")
    x = torch.full((5,), -1.0, requires_grad=True)
    assert torch.equal(est(x), torch.zeros(5)) and est.pending
    est(torch.linspace(-1, 1, 101))
    assert not est.pending


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 8), E.get("htaf"), nn.Linear(8, 8), E.get("htaf"))


@pytest.mark.parametrize(
    "batch, words",
    [(torch.zeros(16, 4), "constant"), (torch.full((16, 4), math.nan), "NaN"),
     (torch.zeros(0, 4), "empty")],
)  # fmt: skip
def test_calibrating_on_a_bad_batch_names_the_layer(batch, words):
    model = nn.Sequential(nn.Linear(4, 8, bias=False), E.get("htaf"))
    with pytest.raises(ValueError, match=rf"layer '1'.*{words}|{words}.*layer '1'"):
        htaf.calibrate(model, batch)


def test_calibrate_runs_in_forward_order_and_leaves_buffers_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), E.get("htaf"), nn.Linear(8, 8),
                          E.get("htaf"))  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    x = torch.randn(256, 4)
    got = htaf.calibrate(model, x)
    assert set(got) == {"2", "4"} and all(v > 0 for v in got.values())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the second layer saw the first one's calibrated outputs
    h = model[3](hf.htaf(model[1](model[0](x)), got["2"], 11.0))
    assert got["4"] == pytest.approx(hf.calibrate_alpha0(h, 11.0, 0.5), rel=1e-9)
    assert htaf.calibrate(model, 10 * x)["2"] == got["2"]  # calibrated: kept


def test_calibrate_again_follows_the_new_scale():
    model = nn.Sequential(nn.Linear(4, 8, bias=False), E.get("htaf"))
    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    first = htaf.calibrate(model, x)["1"]
    assert htaf.calibrate(model, 10 * x, again=True)["1"] == pytest.approx(first / 10, rel=1e-5)


def test_state_dict_carries_the_calibration():
    est = E.get("htaf(auto, live=0.7)")
    pending = E.get("htaf")
    pending.load_state_dict(est.state_dict())  # an uncalibrated state stays uncalibrated
    assert pending.pending and pending.live == 0.7
    est(torch.linspace(-3, 3, 301))
    fresh = E.get("htaf")
    fresh.load_state_dict(est.state_dict())
    assert not fresh.pending and fresh.alpha0 == est.alpha0 and fresh.live == 0.7
    fixed = E.get("htaf(2,11)")
    fixed.load_state_dict(est.state_dict())
    assert fixed.auto and fixed.alpha0 == est.alpha0


def test_resumed_training_keeps_the_calibrated_alpha0(cancer, tmp_path):
    config = RunConfig(estimator="htaf", model={"widths": [16, 8]}, epochs=2, batch_size=64,
                       seed=3)  # fmt: skip
    seed_everything(config.seed)
    model = build_model(config, cancer)
    fit(model, cancer, config, out_dir=tmp_path / "a", progress=False)
    alphas = [m.alpha0 for m in E.estimators_in(model)]
    assert all(np.isfinite(alphas)) and len(set(alphas)) == 2  # one per layer
    seed_everything(config.seed)
    again = build_model(config, cancer)
    fit(again, cancer, config, out_dir=tmp_path / "a", resume=True, progress=False)
    assert [m.alpha0 for m in E.estimators_in(again)] == alphas


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_a_layer_run_over_time_calibrates_on_every_step(backend):
    x = torch.rand(6, 32, 20, generator=torch.Generator().manual_seed(1))
    est = E.get("htaf")
    p = LIFParameters(beta=0.9)
    neuron_sequence(x, p, est, backend=backend)
    exact = E.get("htaf(1,11)", mode="hard")  # the membranes under exact spikes
    h = neuron_sequence(x, p, exact, backend="torch").membrane
    assert est.alpha0 == pytest.approx(hf.calibrate_alpha0(h - 1.0, 11.0, 0.5), rel=1e-6)


def test_bare_htaf_quantizer_is_hard_and_explicit_specs_stay_smooth():
    q = quantizer("htaf")
    assert q.signed and q.mode == "hard" and q.auto and q.live == 0.9
    assert quantizer("htaf(auto)").mode == "smooth"
    assert quantizer("htaf", alpha0=2).mode == "smooth"
    layer = QuantLinear(8, 4, input_quantizer="htaf", kernel_quantizer="ste_clipped")
    out = layer(torch.randn(16, 8))
    assert layer.input_quantizer.alpha0 > 0 and torch.isfinite(out).all()


@pytest.mark.parametrize("a1", [6.0, 11.0, 24.0])
def test_theory_non_binary_band_ends_where_the_output_is_tol_from_binary(a1):
    from htaf import theory

    a0 = 0.7
    edge = theory.live_radius(a1) / a0
    x = theory.auto_non_binary_radius(a1, 0.05) * edge
    out = 1 / (1 + math.exp(-a1 * math.tanh(a0 * x)))  # float64, from the definition
    assert 1 - out == pytest.approx(0.05, rel=1e-9)
    assert theory.auto_alpha0([-1.0, -0.5, 0.2, 2.0], a1) == pytest.approx(
        theory.live_radius(a1) / 0.5
    )
    with pytest.raises(ValueError, match="alpha1"):
        theory.auto_non_binary_radius(2.0)
