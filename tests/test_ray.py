"""The Ray backend gives exactly the local backend's results (skipped when Ray is absent)."""

from __future__ import annotations

import pytest

from htaf.config import RunConfig
from htaf.experiment import Grid, model_metrics, run_grid

ray = pytest.importorskip("ray")


def test_ray_backend_matches_local(tmp_path):
    base = RunConfig(epochs=2, model={"widths": [8]}, batch_size=64)
    configs = Grid(base, ["breast_cancer"], ["htaf", "relu"], [0, 1]).configs()
    local = run_grid(configs, tmp_path / "local", progress=False)
    remote = run_grid(configs, tmp_path / "ray", backend="ray", jobs=2, progress=False)
    assert [r["config"] for r in remote] == [c.to_dict() for c in configs]  # grid order
    assert [model_metrics(r["metrics"]) for r in remote] == [
        model_metrics(r["metrics"]) for r in local
    ]
    written = sorted(p.relative_to(tmp_path / "ray").as_posix()
                     for p in (tmp_path / "ray").glob("*/*/seed*/metrics.json"))  # fmt: skip
    assert written == [f"breast_cancer/{e}/seed{s}/metrics.json"
                       for e in ("htaf", "relu") for s in (0, 1)]  # fmt: skip
    assert not ray.is_initialized()  # a cluster we started is shut down again
