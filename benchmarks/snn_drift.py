"""How far an SNN's smooth forward drifts from its exact one, time step by time step.

A spike is also the neuron's reset, so HTAF's smooth spike changes the membrane that the next
step starts from. For trained snn runs, this runs the test set through the same weights twice,
with exact spikes and with every estimator's smooth forward, and prints per layer and time
step the mean |h_smooth - h_exact| of the membrane and the fraction of neurons whose spike
differs (a smooth spike counts as fired at >= 0.5). The README's event data section quotes it.

    htaf compare --family snn --dataset event_motion --model 'train_spikes="estimator"' \\
        --estimators htaf --seeds 1 --out runs
    python benchmarks/snn_drift.py runs/compare-*/event_motion/htaf/seed0
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import htaf
from htaf.estimators import set_mode


def record(model: Any, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{layer: (spikes, membrane)}``, each ``(T, B, N)``, of one forward of ``x``."""
    rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(name: str, spikes: torch.Tensor, membrane: torch.Tensor | None) -> None:
        if membrane is not None:
            rows[name] = (spikes.detach().flatten(2), membrane.detach().flatten(2))

    model._record(x, keep)  # the family's own recorder (what eval_stats and the rasters use)
    return rows


def drift(run_dir: str) -> None:
    run = htaf.load_run(run_dir)
    model = run.model(hard=True)
    data = run.dataset()
    x = torch.as_tensor(data.X_test, dtype=torch.float32)
    y = torch.as_tensor(data.y_test).long()
    exact = record(model, x)
    with torch.no_grad():
        acc_exact = (model(x).argmax(1) == y).float().mean().item()
    with set_mode(model, "smooth"):
        smooth = record(model, x)
        with torch.no_grad():
            acc_smooth = (model(x).argmax(1) == y).float().mean().item()
    print(f"{run_dir}: {run.config.estimator}, model {run.config.model}")
    print(f"  test accuracy: exact {acc_exact:.4f}, smooth {acc_smooth:.4f}")
    for name, (s_exact, h_exact) in exact.items():
        s_smooth, h_smooth = smooth[name]
        dh = (h_smooth - h_exact).abs().mean((1, 2))
        flips = ((s_smooth >= 0.5) != (s_exact >= 0.5)).float().mean((1, 2))
        print(f"  {name}: t, mean |h_smooth - h_exact|, spikes that differ")
        for t in range(len(dh)):
            print(f"    {t:3d}  {dh[t]:.4f}  {flips[t]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="folders of finished snn runs")
    for run_dir in parser.parse_args().runs:
        drift(run_dir)


if __name__ == "__main__":
    main()
