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


def test_runtime_registrations_reach_ray_workers(tmp_path, monkeypatch):
    import os
    import sys
    import textwrap

    from htaf.estimators import registry
    from htaf.families import MODULES

    (tmp_path / "ray_user_module.py").write_text(textwrap.dedent('''
        import dataclasses
        from htaf.estimators import register
        from htaf.estimators.straight_through import STE
        from htaf.families.dhn import FAMILY as DHN

        FAMILY = dataclasses.replace(DHN, name="ray_dhn")


        @register
        class RaySTE(STE):
            name = "ray_ste"
    '''))  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    # Ray's workers are new interpreters: the module must be on their PYTHONPATH
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setitem(MODULES, "ray_dhn", "ray_user_module")
    try:
        import ray_user_module  # noqa: F401 - registers the estimator here

        config = RunConfig(family="ray_dhn", estimator="ray_ste", model={"widths": [4]}, epochs=1)
        local = run_grid([config], tmp_path / "local", progress=False)
        remote = run_grid([config], tmp_path / "ray", backend="ray", jobs=1, progress=False)
        assert model_metrics(remote[0]["metrics"]) == model_metrics(local[0]["metrics"])
    finally:
        registry._REGISTRY.pop("ray_ste", None)
        sys.modules.pop("ray_user_module", None)
