"""Every float32 kernel pair of the loaded HTAF library, timed side by side.

Usage::

    python benchmarks/kernel_pairs.py [--numel N] [--repeats R] [--threads T] [--json FILE]
    HTAF_KERNEL_ISA=avx2 python benchmarks/kernel_pairs.py   # the AVX2 build

Times the forward, the backward with a gradient tensor and the backward with a scalar
gradient (``y.sum().backward()``) of each pair the library holds: ``f32`` (the portable loops,
as the compiler vectorises them for the build's target), ``f32_avx2`` and ``f32_avx512`` (by
hand), into preallocated outputs (no page faults: the arithmetic alone). Rounds run in a
seeded random order; each ratio is the median over rounds of the ratio to ``f32`` in the same
round, with quartiles.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

import activation  # benchmarks/activation.py: the round-robin timer and paired ratios
from htaf import _kernels
from htaf.io import atomic_write_json


def calls(lib, name: str, x: torch.Tensor, g: torch.Tensor, nt: int) -> dict[str, Callable]:
    """The three timed calls of pair ``name``, each returning its seconds."""
    fwd, bwd = getattr(lib, f"htaf_fwd_{name}"), getattr(lib, f"htaf_bwd_{name}")
    n, out = x.numel(), torch.empty_like(x)
    xp, gp, op = x.data_ptr(), g.data_ptr(), out.data_ptr()

    def timed(fn: Callable[[], None]) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        return run

    return {
        f"{name} forward": timed(lambda: fwd(xp, op, n, 2.0, 11.0, nt)),
        f"{name} backward": timed(lambda: bwd(xp, gp, 0.0, op, n, -4.0, -11.0, 88.0, nt)),
        f"{name} backward, scalar g": timed(
            lambda: bwd(xp, None, 0.5, op, n, -4.0, -11.0, 88.0, nt)
        ),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = activation.timing_parser(__doc__, repeats=25, warmup=3)
    parser.set_defaults(numel=1 << 20)
    args = activation.parse_timing(parser, argv)
    kernels = _kernels._load()
    if kernels is None:
        raise SystemExit("the HTAF kernels are not available here")
    gen = torch.Generator().manual_seed(0)
    x, g = 3 * torch.randn(args.numel, generator=gen), torch.randn(args.numel, generator=gen)
    names = [
        "f32",
        *[f"f32_{isa}" for isa in _kernels.SIMD if hasattr(kernels.lib, f"htaf_fwd_f32_{isa}")],
    ]
    cases = {}
    for name in names:
        cases.update(calls(kernels.lib, name, x, g, args.threads))
    times = activation.time_rounds(cases, args.repeats, args.warmup)

    print(f"numel={args.numel} float32, threads={args.threads}, {args.repeats} rounds, "
          f"preallocated outputs; pairs: {', '.join(names)}")  # fmt: skip
    print(f"{'call':32s} {'median ms':>10s} {'ns/elem':>8s} {'÷ f32':>7s} {'quartiles':>14s}")
    ratios = {}
    for case, ts in times.items():
        base = "f32" + case[case.index(" ") :]
        q1, q2, q3 = activation.quartiles(activation.paired(times, case, base))
        ratios[case] = q2
        med = statistics.median(ts)
        print(f"{case:32s} {med * 1e3:10.3f} {med / args.numel * 1e9:8.2f} {q2:7.3f} "
              f"[{q1:5.3f}, {q3:5.3f}]")  # fmt: skip
    result = {"numel": args.numel, "threads": args.threads, "pairs": names, "times_s": times,
              "ratio_to_f32": ratios}  # fmt: skip
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
