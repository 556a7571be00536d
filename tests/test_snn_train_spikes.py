"""Which forward an SNN trains in: exact spikes by default (``model.train_spikes``), and the
trainer keeping the mode a model's builder chose (``Estimator.training_mode``)."""

import dataclasses

import pytest
import torch

from conftest import make_digits_images
from htaf.config import RunConfig
from htaf.estimators import estimators_in, get
from htaf.families import build_model, model_options
from htaf.families.snn import TRAIN_SPIKES
from htaf.families.snn.functional import LIFParameters, lif_step
from htaf.train import run_folder
from htaf.train.engine import Trainer


@pytest.fixture(scope="module")
def digits():
    return make_digits_images(160)


def snn_config(**model):
    return RunConfig(family="snn", dataset="digits_images", estimator="htaf", epochs=1,
                     batch_size=64, model={"T": 3, "widths": [16], **model})  # fmt: skip


def test_training_mode_is_the_class_default_unless_given():
    assert get("htaf").training_mode == "smooth"
    assert get("atan").training_mode == "hard"
    est = get("htaf", training_mode="hard")
    assert (est.mode, est.training_mode) == ("smooth", "hard")  # mode: the forward now
    with pytest.raises(ValueError, match="training_mode"):
        get("htaf", training_mode="exact")
    with pytest.raises(ValueError, match="training_mode"):
        est.training_mode = "binary"


def test_the_trainer_keeps_the_training_mode_a_builder_chose(digits):
    model = build_model(snn_config(train_spikes="estimator"), digits)
    (est,) = estimators_in(model)
    est.training_mode = "hard"
    est.mode = "smooth"  # e.g. left over from an evaluation
    Trainer(model, digits, snn_config(), progress=False)
    assert est.mode == "hard"
    plain = build_model(snn_config(train_spikes="estimator"), digits)
    Trainer(plain, digits, snn_config(), progress=False)
    assert [e.mode for e in estimators_in(plain)] == ["smooth"]  # HTAF's class default


@pytest.mark.parametrize(("train_spikes", "mode"), [("exact", "hard"), ("estimator", "smooth")])
def test_the_snn_family_trains_htaf_on_exact_spikes_unless_told(digits, train_spikes, mode):
    assert train_spikes in TRAIN_SPIKES
    model = build_model(snn_config(train_spikes=train_spikes), digits)
    modes = {(e.mode, e.training_mode) for e in estimators_in(model)}
    assert modes == {(mode, mode)}


def test_a_bad_train_spikes_names_the_option(digits):
    with pytest.raises(ValueError, match="train_spikes"):
        build_model(snn_config(train_spikes="smooth"), digits)


def test_an_exact_training_forward_fires_binary_spikes_with_htafs_derivative():
    """Hard mode: the forward is exactly 1{h >= θ}, the backward HTAF's derivative at h - θ,
    against a float64 reference of that derivative."""
    est = get("htaf(1.5,11)", training_mode="hard", mode="hard")
    x = torch.tensor([[0.3, 1.0, 1.7, -40.0, 40.0]], requires_grad=True)
    s, _ = lif_step(x, None, LIFParameters(beta=0.9), est)
    assert s.tolist() == [[0.0, 1.0, 1.0, 0.0, 1.0]]
    s.sum().backward()
    z = x.detach().double() - 1.0
    u = 11 * torch.tanh(1.5 * z)
    want = 1.5 * 11 * torch.sigmoid(u) * torch.sigmoid(-u) / torch.cosh(1.5 * z) ** 2
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad.double(), want, rtol=1e-5, atol=1e-30)


def test_a_run_saved_before_the_option_is_rebuilt_as_it_trained():
    old = run_folder.with_legacy_options(snn_config(), {"arch": "mlp", "T": 3})
    assert old.model["train_spikes"] == "estimator"
    saved = dataclasses.asdict(model_options("snn", {}))
    new = run_folder.with_legacy_options(snn_config(), saved)
    assert "train_spikes" not in new.model  # saved with the option: the default applies


def test_a_run_records_train_spikes_and_reloads_as_it_trained(tmp_path, monkeypatch, digits):
    import htaf
    from htaf.train.run import run_one

    monkeypatch.setattr(run_folder, "load_dataset", lambda c: digits)
    config = dataclasses.replace(snn_config(), seed=0)
    record = run_one(config, out_dir=tmp_path / "run", progress=False)
    assert record["metrics"]["test_accuracy_hard"] >= 0  # both forwards evaluated
    assert "test_accuracy_smooth" in record["metrics"]
    run = htaf.load_run(tmp_path / "run", dataset=digits)
    assert run.options.train_spikes == "exact"
    assert [e.training_mode for e in estimators_in(run.model(hard=False))] == ["hard"]
