"""Checkpoints: exact resume after a crash, weights_only safety, atomic files, safetensors."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from conftest import DEVICES
from htaf.config import ConfigError, RunConfig
from htaf.families import build_model
from htaf.train import Callback, CheckpointError, evaluate, fit, load_checkpoint, seed_everything
from htaf.train.checkpoint import (
    atomic_write_bytes,
    load_safetensors,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


class Crash(Callback):
    """Raise in the middle of an epoch, as a killed process would stop."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, batch, logs):
        if logs["epoch"] == self.epoch and batch == self.batch:
            raise KeyboardInterrupt("simulated kill")


def build(ds, config):
    seed_everything(config.seed)
    return build_model(config, ds)


def tensors(model):
    return {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def without_times(history):
    return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in history]


CASES = {
    # smooth forward, dropout, cosine lr, a per-epoch estimator schedule, early stopping state
    "htaf": dict(estimator="htaf", model={"widths": [16, 8], "dropout": 0.2},
                 lr_schedule="cosine", patience=3,
                 estimator_schedule={"param": "alpha1", "kind": "linear", "start": 4,
                                     "end": 11, "steps": 4}),
    # a stochastic backward rule (global RNG), SGD momentum, plateau lr, batch norm
    "jamming": dict(estimator="jamming", optimizer="sgd", lr=0.05, lr_schedule="plateau",
                    model={"widths": [16, 8], "batch_norm": True}),
    # per-iteration continuation schedule
    "tanh": dict(estimator="tanh_continuation", lr_schedule="step"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_resume_after_crash_is_exact(cancer, tmp_path, case):
    config = RunConfig(**{"model": {"widths": [16, 8]}, "epochs": 5, "batch_size": 64, "seed": 7,
                          **CASES[case]})  # fmt: skip

    straight = build(cancer, config)
    ref = fit(straight, cancer, config, out_dir=tmp_path / "a", progress=False)

    crashed = build(cancer, config)
    with pytest.raises(KeyboardInterrupt):
        fit(
            crashed, cancer, config, out_dir=tmp_path / "b", callbacks=[Crash(3, 2)], progress=False
        )
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 2
    torch.manual_seed(12345)  # the new process's RNG is anything at all
    np.random.seed(12345)

    resumed = build(cancer, config)
    out = fit(resumed, cancer, config, out_dir=tmp_path / "b", resume=True, progress=False)

    a, b = tensors(straight), tensors(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert without_times(out.history) == without_times(ref.history)
    assert (out.best_epoch, out.epochs) == (ref.best_epoch, ref.epochs)
    ma = evaluate(straight, cancer.X_test, cancer.y_test, "binary", cancer)
    mb = evaluate(resumed, cancer.X_test, cancer.y_test, "binary", cancer)
    assert ma == mb
    # the history file was rewritten with every epoch
    lines = (tmp_path / "b" / "history.jsonl").read_text().splitlines()
    assert len(lines) == ref.epochs


def test_resume_of_finished_run_trains_nothing(cancer, tmp_path):
    config = RunConfig(model={"widths": [8]}, epochs=2)
    model = build(cancer, config)
    fit(model, cancer, config, out_dir=tmp_path, progress=False)
    again = build(cancer, config.replace(seed=config.seed))

    class NoBatches(Callback):
        def on_batch_end(self, batch, logs):
            raise AssertionError("a finished run must not train again")

    res = fit(again, cancer, config, out_dir=tmp_path, resume=True, callbacks=[NoBatches()],
              progress=False)  # fmt: skip
    assert res.epochs == 2
    a, b = tensors(model), tensors(again)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_changed_config_is_refused(cancer, tmp_path):
    config = RunConfig(model={"widths": [8]}, epochs=2)
    fit(build(cancer, config), cancer, config, out_dir=tmp_path, progress=False)
    changed = config.replace(lr=0.5)
    with pytest.raises(ConfigError, match="'lr'"):
        fit(build(cancer, changed), cancer, changed, out_dir=tmp_path, resume=True)


def test_resume_with_another_world_size_is_refused(cancer, tmp_path):
    config = RunConfig(model={"widths": [8]}, epochs=2)
    fit(build(cancer, config), cancer, config, out_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["world_size"] = 2  # as if written by a 2-process torchrun
    torch.save(ckpt, path)
    with pytest.raises(ConfigError, match="written by 2 process"):
        fit(build(cancer, config), cancer, config, out_dir=tmp_path, resume=True)


class Evil:
    """Unpickling this calls ``open(marker, "w")``: code execution on load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_checkpoint_is_refused_not_executed(cancer, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "htaf-checkpoint", "version": 1, "model": Evil(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()
    # resuming from it fails the same way, before anything else happens
    config = RunConfig(model={"widths": [8]}, epochs=1)
    with pytest.raises(CheckpointError):
        fit(build(cancer, config), cancer, config, out_dir=tmp_path, resume=True)
    assert not marker.exists()
    # the same bytes as a plain pickle file
    path.write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()
    # sanity: the payload is live, so the checks above mean something
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_foreign_or_corrupt_files_are_refused(tmp_path):
    torch.save({"just": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not an htaf checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    (tmp_path / "y.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")


def test_rng_state_round_trips_through_weights_only(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3), __import__("random").random())
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(path.parent) == ["f.txt"]


def test_safetensors_weights_round_trip(cancer, tmp_path):
    config = RunConfig(
        model={"widths": [8]}, epochs=1, estimator="htaf", estimator_params={"alpha1": 9.0}
    )
    model = build(cancer, config)
    fit(model, cancer, config, out_dir=tmp_path, progress=False)
    fresh = build(cancer, config.replace(seed=99, estimator_params={}))
    load_safetensors(fresh, tmp_path / "model.safetensors")
    a, b = tensors(model), tensors(fresh)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert fresh.layers[0].act.alpha1 == 9.0


@pytest.mark.parametrize("device", DEVICES)
def test_resume_on_device(cancer, tmp_path, device):
    config = RunConfig(model={"widths": [16]}, epochs=3, device=device, estimator="jamming")
    config.model["dropout"] = 0.1
    straight = build(cancer, config)
    fit(straight, cancer, config, out_dir=tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(build(cancer, config), cancer, config, out_dir=tmp_path / "b",
            callbacks=[Crash(2, 1)], progress=False)  # fmt: skip
    resumed = build(cancer, config)
    fit(resumed, cancer, config, out_dir=tmp_path / "b", resume=True, progress=False)
    a, b = tensors(straight), tensors(resumed)
    assert all(v.device.type == device for v in b.values())
    if device == "cpu":
        assert all(torch.equal(a[k], b[k]) for k in a)
    else:  # GPU kernels may not promise bit-equality; the same state must still be restored
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
