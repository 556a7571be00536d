"""One DHN training step with each activation, timed side by side; prints ratios to ReLU.

    python benchmarks/training_step.py [--batch 64 256 1024] [--repeats 15] [--steps 20]
                                       [--json FILE]

A step is forward, loss, backward and an Adam update of a [256, 256, 128] MLP on a random batch
of 30 features. Target tracked by the project: HTAF's step <= 1.15x ReLU's. The ratio depends
on the batch: small batches pay per-call overhead, large ones HTAF's four exps per element.
Each repeat times every activation back to back; the reported ratio is the median over repeats
of (activation time / ReLU time in the same repeat), with its quartiles.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from htaf import _kernels, _native
from htaf.families.dhn import DHN
from htaf.io import atomic_write_json

ACTIVATIONS = ["relu", "htaf", "scaled_sigmoid", "ste", "atan"]
TARGET = 1.15


def make_step(activation: str, x: torch.Tensor, y: torch.Tensor):
    torch.manual_seed(0)
    model = DHN(x.shape[1], 1, widths=(256, 256, 128), activation=activation)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def time_steps(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def measure(batch: int, repeats: int, steps: int) -> dict[str, list[float]]:
    x = torch.randn(batch, 30)
    y = (torch.rand(batch, 1) > 0.5).float()
    runners = {name: make_step(name, x, y) for name in ACTIVATIONS}
    for run in runners.values():  # warm-up: allocator, Adam state
        time_steps(run, 3)
    samples: dict[str, list[float]] = {name: [] for name in ACTIVATIONS}
    for _ in range(repeats):  # interleave so drift hits every activation alike
        for name, run in runners.items():
            samples[name].append(time_steps(run, steps))
    return samples


def paired_ratios(samples: dict[str, list[float]], base: str = "relu") -> dict[str, list[float]]:
    """Each repeat's time over the same repeat's ReLU time: the two ran back to back, so slow
    drifts of a shared VM (other tenants, clock changes) cancel in the ratio."""
    return {k: [t / b for t, b in zip(v, samples[base], strict=True)] for k, v in samples.items()}


def htaf_path() -> str:
    if _native.available():
        return "the native operator (htaf._native)"
    if _kernels.available():
        return "the Python autograd.Function with ctypes kernels (no C++ build)"
    return "pure torch (no C compiler)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    result = {"htaf_path": htaf_path()}
    print(f"htaf runs through: {result['htaf_path']}")
    for batch in args.batch:
        samples = measure(batch, args.repeats, args.steps)
        ratios = paired_ratios(samples)
        print(f"\nDHN [256,256,128], batch {batch}, {args.repeats} repeats x {args.steps} steps")
        print(f"{'activation':16s} {'ms/step':>9s} {'x relu':>8s} {'(q1-q3)':>14s}")
        for name in samples:
            t = statistics.median(samples[name])
            q1, _, q3 = statistics.quantiles(ratios[name], n=4)
            med = statistics.median(ratios[name])
            print(f"{name:16s} {t * 1e3:9.3f} {med:8.3f} {f'({q1:.3f}-{q3:.3f})':>14s}")
        ratio = statistics.median(ratios["htaf"])
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        note = f"median of paired ratios; target <= {TARGET}: {verdict}"
        print(f"htaf step / relu step = {ratio:.3f}  ({note})")
        result[str(batch)] = {
            "times_s": {k: statistics.median(v) for k, v in samples.items()},
            "ratios_to_relu": {k: statistics.median(v) for k, v in ratios.items()},
            "samples_s": samples,
        }
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
