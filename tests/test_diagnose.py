"""htaf.diagnose and `htaf diagnose`: where each estimator's gradient lives."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import htaf
from htaf import estimators as E
from htaf.cli import main


def mlp(spec: str, scale: float = 1.0, offset: float = 0.0) -> nn.Sequential:
    torch.manual_seed(0)
    first = nn.Linear(16, 32)
    with torch.no_grad():
        first.weight.mul_(scale)
        first.bias.fill_(offset)
    return nn.Sequential(first, E.get(spec), nn.Linear(32, 3))


def batch(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 16, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_inputs_resting_below_threshold_starve_fixed_htaf():
    # membrane-like inputs: -1 +- 0.2, as resting neurons below a threshold of 1
    model = mlp("htaf(2,11)", scale=0.2, offset=-1.0)
    d = htaf.diagnose(model, batch(), nn.functional.cross_entropy)
    (layer,) = d.layers
    assert layer.layer == "1" and layer.live < 0.05 and layer.ref_live > 0.9
    assert layer.quantiles["abs_q50"] == pytest.approx(1.0, abs=0.1)
    assert layer.grad_norm < 1e-2 * layer.ref_grad_norm
    assert d.weight_grads["0.weight"] < 1e-2 * d.ref_weight_grads["0.weight"]
    assert d.verdict.startswith("vanishing") and "htaf(auto)" in d.suggestion
    # the suggestion is the alpha0 htaf(auto) would choose on these inputs
    x = model[0](batch()[0])
    assert layer.suggested_alpha0 == pytest.approx(htaf.functional.calibrate_alpha0(x), rel=1e-6)


def test_large_inputs_with_some_near_the_threshold_are_narrow_not_vanishing():
    d = htaf.diagnose(mlp("htaf(2,11)", scale=20.0), batch(), nn.functional.cross_entropy)
    assert d.layers[0].live < 0.05 and d.verdict.startswith("narrow")
    assert d.layers[0].estimator == "htaf(2,11)"  # the spec a user can paste back


def test_auto_is_healthy_on_the_same_model_and_the_user_model_is_untouched():
    model = mlp("htaf", scale=0.2, offset=-1.0)
    d = htaf.diagnose(model, batch(), nn.functional.cross_entropy)
    assert d.verdict.startswith("healthy") and d.layers[0].live == pytest.approx(0.5, abs=0.01)
    assert d.layers[0].estimator == "htaf(auto)"
    assert model[1].pending  # diagnosed on a copy
    assert d.weight_grads["0.weight"] > 0.1 * d.ref_weight_grads["0.weight"]


def test_reference_is_a_choice_and_the_report_serialises(tmp_path):
    d = htaf.diagnose(mlp("htaf(2,11)"), batch(), nn.functional.cross_entropy, reference="ste")
    assert d.reference == "ste" and d.layers[0].ref_live == 1.0
    text = json.dumps(d.to_dict())
    assert '"reference": "ste"' in text and "sample" not in text
    paths = d.plot(tmp_path)
    assert sorted(p.suffix for p in paths) == [".png", ".svg"] and all(
        p.stat().st_size for p in paths
    )
    assert "live [ste]" in d.table()


def test_a_model_without_estimators_is_refused():
    with pytest.raises(ValueError, match="no htaf estimator"):
        htaf.diagnose(nn.Linear(4, 2), torch.randn(3, 4), lambda out: out.sum())


def test_snntorch_neurons_through_interop():
    snn = pytest.importorskip("snntorch")
    from htaf.interop.snntorch import spike_grad

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), snn.Leaky(beta=0.9, spike_grad=spike_grad("htaf(2,11)"),
                        init_hidden=True), nn.Linear(32, 3))  # fmt: skip

    def forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        model[1].reset_hidden()
        return torch.stack([model(x) for _ in range(4)]).mean(0)

    d = htaf.diagnose(net, batch(), nn.functional.cross_entropy, forward=forward)
    assert [r.layer for r in d.layers] == ["1.spike_grad"] and d.layers[0].n > 0
    assert d.layers[0].ref_grad_norm > 0


def test_cli_on_a_config_writes_the_report(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('family = "snn"\ndataset = "digits_images"\nestimator = "htaf(2,11)"\n')
    assert main(["diagnose", "--config", str(config), "--batch-size", "32",
                 "--out", str(tmp_path / "d")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "stages.0.unit.spike" in out and "verdict:" in out and "suggested:" in out
    report = json.loads((tmp_path / "d" / "diagnose.json").read_text())
    assert report["layers"][0]["n"] > 0 and (tmp_path / "d" / "diagnose.svg").exists()


@pytest.mark.parametrize(
    "argv, words",
    [([], "one of them"), (["nowhere"], "nowhere"), (["--config", "x.toml", "y"], "one of them"),
     (["--config", "missing.toml"], "missing.toml")],
)  # fmt: skip
def test_cli_bad_input_exits_2_and_names_it(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["diagnose", *argv]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "diagnose").exists()


def test_cli_on_a_trained_run_folder(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('dataset = "breast_cancer"\nestimator = "htaf"\nepochs = 2\n'
                      'model = { widths = [16] }\n')  # fmt: skip
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["diagnose", str(tmp_path / "r"), "--trained"]) == 0
    assert "htaf(auto)" in capsys.readouterr().out
    report = json.loads((tmp_path / "r" / "diagnose" / "diagnose.json").read_text())
    assert report["layers"][0]["estimator"] == "htaf(auto)" and report["layers"][0]["n"] > 0
    assert main(["diagnose", str(tmp_path / "r"), "--trained", "--set", "seed=1"]) == 2


def test_spikingjelly_neurons_through_interop_resting_membranes_vanish():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron

    from htaf.interop.spikingjelly import surrogate

    def net(spec: str) -> nn.Sequential:
        torch.manual_seed(0)
        lif = neuron.LIFNode(tau=2.0, surrogate_function=surrogate(spec))
        model = nn.Sequential(layer.Linear(16, 32), lif)
        functional.set_step_mode(model, "m")
        return model

    def forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(model)
        out = model((torch.rand(8, *x.shape) < x.sigmoid()).float()).mean(0)
        functional.reset_net(model)
        return out[:, :3]

    x, y = batch()
    fixed = htaf.diagnose(net("htaf(2,11)"), (x, y), nn.functional.cross_entropy, forward=forward)
    auto = htaf.diagnose(net("htaf"), (x, y), nn.functional.cross_entropy, forward=forward)
    assert fixed.layers[0].layer == "1.surrogate_function" and fixed.layers[0].live < 0.05
    assert fixed.verdict.startswith("vanishing") and auto.verdict.startswith("healthy")
    assert auto.layers[0].live == pytest.approx(0.5, abs=0.05)
