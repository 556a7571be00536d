"""``--track tensorboard``: what TensorBoard's own event reader finds is what the runs recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import htaf
from htaf.cli import main
from htaf.config import RunConfig

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    IMAGES,
    EventAccumulator,
)


def events(logdir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={IMAGES: 0})
    acc.Reload()
    return acc


def history(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_compare_in_a_process_pool_logs_every_run(tmp_path):
    exp = htaf.compare(estimators=["htaf", "relu"], seeds=2, epochs=3, model={"widths": [8]},
                       out=tmp_path, jobs=2, progress=False, track="tensorboard")  # fmt: skip
    root = exp.path / "tensorboard"
    assert exp.spec["track"] == {"kind": "tensorboard", "logdir": str(root)}
    for record in exp.records:
        cfg = record["config"]
        run_dir = Path(record["run_dir"])
        acc = events(root / cfg["dataset"] / cfg["estimator"] / f"seed{cfg['seed']}")
        tags = set(acc.Tags()["scalars"])
        assert {"train_loss", "val_auroc_hard", "val_auroc_smooth", "lr", "grad_norm/layer1",
                "act/smooth/near_binary_05", "act/hard/layers/layer1/saturation",
                "final/test_auroc_hard", "final/test_accuracy_smooth"} <= tags  # fmt: skip
        rows = history(run_dir)
        for tag in ("train_loss", "val_auroc_hard", "grad_norm/layer1", "act/smooth/entropy"):
            logged = acc.Scalars(tag)
            assert [e.step for e in logged] == [1, 2, 3]
            keys = tag.split("/")
            want = [_get(row, keys) for row in rows]
            assert [e.value for e in logged] == pytest.approx(want, rel=1e-6)  # float32 events
        metrics = json.loads((run_dir / "metrics.json").read_text())
        (final,) = acc.Scalars("final/test_auroc_hard")
        assert final.value == pytest.approx(metrics["test_auroc_hard"], rel=1e-6)
        assert final.step == 3
        assert "activations_smooth/layer1" in acc.Tags()["histograms"]
    summary = events(root / "summary")
    assert {"plots/learning_curves", "plots/gradient_norms", "plots/binary_metric"} <= set(
        summary.Tags()["images"]
    )
    assert "report/text_summary" in summary.Tags()["tensors"]
    (mean,) = summary.Scalars("htaf/test_auroc_hard")
    assert mean.value == pytest.approx(
        exp.summary.loc[("dhn", "breast_cancer", "htaf"), ("test_auroc_hard", "mean")], rel=1e-6
    )
    # Resuming logs where the experiment logged, unless told otherwise.
    before = len(list((root / "summary").iterdir()))
    htaf.load_experiment(exp.path).resume(progress=False)
    assert len(list((root / "summary").iterdir())) == before + 1


def _get(row: dict, keys: list[str]) -> float:
    for key in keys:
        row = row[key]
    return row


class Killed(BaseException):
    """Stands in for a kill (like KeyboardInterrupt, not an error a run reports): raised where
    the process would die."""


@pytest.mark.slow
def test_train_logs_and_a_resumed_run_continues_its_curves(tmp_path, capsys, monkeypatch):
    from htaf.train.engine import Trainer

    (tmp_path / "run.toml").write_text("epochs = 3\nlr = 0.003\n[model]\nwidths = [8]\n")
    out = tmp_path / "one"
    args = ["train", "--config", str(tmp_path / "run.toml"), "--out", str(out), "--no-progress",
            "--track", "tensorboard"]  # fmt: skip
    write = Trainer._write

    def die_before_the_third_checkpoint(self, epoch):
        if epoch == 3:  # epoch 3 is logged, but its checkpoint is never written
            raise Killed
        write(self, epoch)

    monkeypatch.setattr(Trainer, "_write", die_before_the_third_checkpoint)
    with pytest.raises(Killed):
        main(args)
    monkeypatch.setattr(Trainer, "_write", write)
    assert main([*args, "--resume"]) == 0  # trains epoch 3 again, from epoch 2's checkpoint
    acc = events(out / "tensorboard" / "one")
    # Each epoch once: the resumed run hides what the killed one logged after its checkpoint.
    assert [e.step for e in acc.Scalars("train_loss")] == [1, 2, 3]
    want = [row["train_loss"] for row in history(out)]
    assert [e.value for e in acc.Scalars("train_loss")] == pytest.approx(want, rel=1e-6)
    assert {"plots/learning_curves", "plots/gradient_norms"} <= set(acc.Tags()["images"])
    assert (out / "plots" / "learning_curves.png").is_file()


def test_without_tracking_nothing_is_logged(tmp_path):
    htaf.train_one(RunConfig(epochs=1, model={"widths": [4]}), tmp_path / "one", progress=False)
    assert not (tmp_path / "one" / "tensorboard").exists()
    assert not (tmp_path / "one" / "plots").exists()
