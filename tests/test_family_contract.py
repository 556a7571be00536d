"""The family contract: every registered family, as the estimator contract test does for
every estimator. A new family gets these checks by registering: its output shape, exact binary
activations under ``harden``, the safetensors round trip, resume, and bad options.

Each family runs on a small synthetic set of the first data kind it takes (binary task), with
its first default estimator; ``SMALL`` only shrinks the known families' models for speed."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
import torch

import htaf
from htaf.config import ConfigError, RunConfig
from htaf.data import Dataset
from htaf.experiment import model_metrics, run_grid
from htaf.families import MODULES, build_model, family_names, get_family, model_options
from htaf.families.hooks import HOOKS, ModelHooks
from htaf.train import Trainer, run_one
from htaf.train.checkpoint import load_safetensors, save_safetensors

#: Smaller models than the defaults, only to keep the test fast.
SMALL = {
    "dhn": {"widths": [8]},
    "snn": {"widths": [16], "T": 2, "encoder": "latency"},
    "icbm": {"n_concepts": 8, "cnn_widths": [4, 8]},
    "convex": {"directions": 64},
}
FAMILIES = family_names()
#: Variants of a family that also get every check: the snn family's neurons beyond LIF.
VARIANTS = {f"snn[neuron={n}]": ("snn", {"neuron": n}) for n in ("synaptic", "alif", "rlif")}
CASES = [*FAMILIES, *VARIANTS]


def synthetic(kind: str, n: int = 160) -> Dataset:
    """A binary task: tables of 6 features, or 1x8x8 uint8 images (label: which half is
    brighter), split 100/30/30."""
    rng = np.random.default_rng(0)
    if kind == "image":
        X = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
        y = (X[:, 0, :4].mean((1, 2)) > X[:, 0, 4:].mean((1, 2))).astype(np.int64)
        normalize = {"mean": [0.5], "std": [0.29]}
        names: list[str] = []
    else:
        X = rng.normal(size=(n, 6)).astype(np.float32)
        y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
        normalize, names = None, [f"x{i}" for i in range(6)]
    a, b = int(n * 0.625), int(n * 0.8125)
    return Dataset(
        name=f"contract_{kind}", task="binary", X_train=X[:a], y_train=y[:a], X_val=X[a:b],
        y_val=y[a:b], X_test=X[b:], y_test=y[b:], feature_names=names,
        class_names=["0", "1"], n_classes=2, kind=kind, normalize=normalize,
    )  # fmt: skip


def setup(case: str) -> tuple[RunConfig, Dataset]:
    name, extra = VARIANTS.get(case, (case, {}))
    fam = get_family(name)
    config = RunConfig(family=name, estimator=fam.estimators[0],
                       model={**SMALL.get(name, {}), **extra},
                       epochs=1 if fam.compare.get("epochs") == 1 else 2, batch_size=32,
                       lr=float(fam.compare.get("lr", 1e-3)))  # fmt: skip
    return config, synthetic(fam.kinds[0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished run per family (its folder, config and data)."""
    out = tmp_path_factory.mktemp("families")
    runs = {}
    for name in CASES:
        config, data = setup(name)
        run_one(config, out / name, dataset=data)
        runs[name] = (out / name, config, data)
    return runs


def as_float(data: Dataset, X: np.ndarray) -> torch.Tensor:
    return data.float_batch(torch.as_tensor(X))


@pytest.mark.parametrize("name", CASES)
def test_output_is_one_logit_per_sample(trained, name):
    path, _, data = trained[name]
    run = htaf.load_run(path, dataset=data)  # the synthetic set has no loader name
    for hard in (True, False):
        out = run.model(hard=hard)(as_float(data, data.X_test))
        assert out.shape == (len(data.y_test), 1) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", CASES)
def test_harden_gives_exact_binary_activations(trained, name):
    path, _, data = trained[name]
    run = htaf.load_run(path, dataset=data)
    model = run.model(hard=True)
    modules = ModelHooks(model).activation_modules()
    assert modules, f"family {name!r} reports no activations under its default estimator"
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.detach())) for m in modules]
    with torch.no_grad():
        model(as_float(data, data.X_test))
    for h in hooks:
        h.remove()
    assert seen
    for out in seen:
        values = set(torch.unique(out).tolist())
        assert values <= {0.0, 1.0} or values <= {-1.0, 1.0}, f"{name}: {sorted(values)[:5]}"


@pytest.mark.parametrize("name", CASES)
def test_safetensors_round_trip(trained, name, tmp_path):
    path, config, data = trained[name]
    run = htaf.load_run(path, dataset=data)
    model = run.model(hard=True)
    save_safetensors(model, tmp_path / "again.safetensors")
    torch.manual_seed(123)  # a fresh model starts from other weights
    again = load_safetensors(build_model(config, run.dataset()), tmp_path / "again.safetensors")
    htaf.harden(again.eval())
    for key, value in model.state_dict().items():
        other = again.state_dict()[key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
    x = as_float(data, data.X_test)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    # and the run's own weights give the exact-binary numbers it recorded
    recorded = run.metrics["test_accuracy_hard"]
    with torch.no_grad():
        right = ((model(x)[:, 0] >= 0).long().numpy() == data.y_test).mean()
    assert right == pytest.approx(recorded)


@pytest.mark.parametrize("name", CASES)
def test_resume_ends_where_the_whole_run_ends(trained, name, tmp_path, monkeypatch):
    path, config, data = trained[name]
    whole = json.loads((path / "metrics.json").read_text())
    write = Trainer._write

    def crash_after_the_first_epoch(self, epoch):
        write(self, epoch)
        if epoch == 1 and config.epochs > 1:
            raise KeyboardInterrupt  # killed right after the checkpoint

    monkeypatch.setattr(Trainer, "_write", crash_after_the_first_epoch)
    if config.epochs > 1:
        with pytest.raises(KeyboardInterrupt):
            run_one(config, tmp_path / "r", dataset=data)
    else:  # a closed-form model: resuming its finished run changes nothing
        run_one(config, tmp_path / "r", dataset=data)
    monkeypatch.undo()
    torch.manual_seed(12345)  # a new process's RNG is anything at all
    resumed = run_one(config, tmp_path / "r", dataset=data, resume=True)
    assert model_metrics(resumed["metrics"]) == model_metrics(whole)


@pytest.mark.parametrize("name", FAMILIES)
def test_bad_options_are_named_before_anything_is_written(name, tmp_path):
    with pytest.raises(ConfigError, match=r"'model\.no_such_option'"):
        model_options(name, {"no_such_option": 1})
    config, data = setup(name)
    with pytest.raises(ConfigError, match=r"'model\.no_such_option'"):
        run_one(config.replace(model={"no_such_option": 1}), tmp_path / "r", dataset=data)
    assert not (tmp_path / "r").exists()


def test_the_hooks_have_no_op_defaults():
    hooks = ModelHooks(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()))
    assert not any(hooks.has(h) for h in HOOKS) and not hooks.closed_form
    x = torch.randn(4, 3)
    assert hooks.epoch_stats(x) == {} and hooks.eval_stats(x) == {} and hooks.eval_arrays(x) == {}
    assert hooks.binary_parameters() == [] and hooks.summary() is None
    assert [type(m) for m in hooks.activation_modules()] == [torch.nn.ReLU]
    hooks.constrain_()
    hooks.calibrate(x)
    with pytest.raises(TypeError, match="trained by gradient"):
        hooks.fit_closed_form(x, x, "binary")
    with pytest.raises(ValueError, match="not a model hook"):
        hooks.has("forward")


# -- families and estimators registered at run time, in worker processes -------------------------
FAMILY_MODULE = """
import dataclasses
from htaf.estimators import register
from htaf.estimators.straight_through import STE
from htaf.families.dhn import FAMILY as DHN

FAMILY = dataclasses.replace(DHN, name="contract_dhn")


@register
class ContractSTE(STE):
    name = "contract_ste"
"""


@pytest.fixture
def user_family(tmp_path, monkeypatch):
    """A family and an estimator defined in a user's module, registered at run time."""
    from htaf.estimators import registry

    (tmp_path / "contract_user_module.py").write_text(textwrap.dedent(FAMILY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get the parent's sys.path
    monkeypatch.setitem(MODULES, "contract_dhn", "contract_user_module")
    yield
    registry._REGISTRY.pop("contract_ste", None)
    sys.modules.pop("contract_user_module", None)


@pytest.mark.slow
def test_runtime_registrations_reach_worker_processes(user_family, tmp_path):
    get_family("contract_dhn")  # imports the module: the estimator registers here
    base = RunConfig(family="contract_dhn", model={"widths": [4]}, epochs=1)
    configs = [base.replace(estimator=e, seed=0) for e in ("htaf", "contract_ste")]
    local = run_grid(configs, tmp_path / "one", progress=False)
    pooled = run_grid(configs, tmp_path / "two", jobs=2, progress=False)
    assert [model_metrics(r["metrics"]) for r in pooled] == [
        model_metrics(r["metrics"]) for r in local
    ]


def test_registrations_in_main_are_refused_for_workers(tmp_path, monkeypatch):
    monkeypatch.setitem(MODULES, "notebook_family", "__main__")
    config = RunConfig(family="notebook_family", estimator="htaf")
    with pytest.raises(ConfigError, match=r"'notebook_family' is defined in __main__.*jobs=1"):
        run_grid([config], tmp_path, jobs=2, progress=False)
    assert not tmp_path.joinpath("breast_cancer").exists()
