"""Benchmark HTAF against its naive composition, the scaled sigmoid and ReLU, eager and compiled.

Usage::

    python benchmarks/activation.py [--numel N] [--repeats R] [--threads T] [--json FILE]

Every case runs ``y = f(x); y.backward(grad)`` on the same float32 tensor. The cases are timed
round-robin (one call of each per round, in a seeded random order, after warm-up rounds) so
that background load hits them all alike, and each case reports the median over the rounds.
A ratio is the median over rounds of the ratio *within* a round (paired), so slow drifts of a
shared machine cancel; its quartiles show the spread. All cases use the same
``torch.get_num_threads()`` threads. The PASS/FAIL column reports against the targets and
never fails the run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch

from htaf import _build, _kernels
from htaf.functional import _HTAF, htaf, scaled_sigmoid
from htaf.io import atomic_write_json

A0, A1, BETA = 2.0, 11.0, 22.0

Fn = Callable[[torch.Tensor], torch.Tensor]


def htaf_eager(x: torch.Tensor) -> torch.Tensor:
    return htaf(x, A0, A1)


def naive(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(A1 * torch.tanh(A0 * x))


def sigmoid22(x: torch.Tensor) -> torch.Tensor:
    return scaled_sigmoid(x, BETA)


@contextmanager
def kernels_disabled():
    """Force htaf's pure-torch path (what runs on GPU, under compile or without a compiler)."""
    saved = _kernels.MIN_NUMEL
    _kernels.MIN_NUMEL = 1 << 62
    try:
        yield
    finally:
        _kernels.MIN_NUMEL = saved


def htaf_torch_path(x: torch.Tensor) -> torch.Tensor:
    """The autograd function without kernels (nor the native operator, which it bypasses);
    compiled, it is the inductor decomposition that ``torch.compile`` used before htaf's
    custom operators."""
    with kernels_disabled():
        return _HTAF.apply(x, A0, A1)


def fwd_bwd(fn: Fn, x: torch.Tensor, grad: torch.Tensor) -> float:
    leaf = x.detach().requires_grad_()
    start = time.perf_counter()
    fn(leaf).backward(grad)
    return time.perf_counter() - start


def paired(times: dict[str, list[float]], num: str, den: str) -> list[float]:
    """Per-round ratios num/den: both ran in the same round, under the same background load."""
    return [a / b for a, b in zip(times[num], times[den], strict=True)]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def print_paired(times: dict[str, list[float]], base: str, label: str, ratio: str) -> dict:
    """One line per case: median ms, the median per-round ratio to ``base`` and its quartiles;
    returns the median ratios by case."""
    width = max(len(label), *map(len, times))
    print(f"{label:{width}s} {'median ms':>10s} {ratio:>16s} {'quartiles':>14s}")
    ratios = {}
    for name, ts in times.items():
        q1, q2, q3 = quartiles(paired(times, name, base))
        ratios[name] = q2
        print(f"{name:{width}s} {statistics.median(ts) * 1e3:10.2f} {q2:16.3f} "
              f"[{q1:5.3f}, {q3:5.3f}]")  # fmt: skip
    return ratios


def time_rounds(
    calls: dict[str, Callable[[], float]], repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Each call (returning its own seconds) once per round, ``warmup`` rounds discarded."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    shuffle = random.Random(0).shuffle
    for rnd in range(warmup + repeats):
        # A fresh order each round: a case that always ran after the same neighbour would
        # inherit its cache and allocator state, and a paired ratio its bias.
        shuffle(order)
        for name in order:
            t = calls[name]()
            if rnd >= warmup:
                times[name].append(t)
    return times


def time_cases(
    cases: dict[str, Fn], x: torch.Tensor, grad: torch.Tensor, repeats: int, warmup: int
) -> dict[str, list[float]]:
    calls = {name: partial(fwd_bwd, fn, x, grad) for name, fn in cases.items()}
    return time_rounds(calls, repeats, warmup)


def saved_tensors(fn: Fn, x: torch.Tensor) -> dict[str, int] | None:
    """Count and total bytes of the tensors autograd saves for one call of ``fn``."""
    packed: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        packed.append(t)
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = fn(x.detach().requires_grad_())
    except Exception:  # e.g. a compiled function that refuses the hooks
        return None
    del y
    return {"count": len(packed), "bytes": sum(t.numel() * t.element_size() for t in packed)}


def cold_kernel_build_s() -> float | None:
    """Seconds to compile the fused kernels into an empty cache (None: no compiler)."""
    cc = _build.compiler()
    if cc is None:
        return None
    flags = [*_build.base_flags(_kernels.SOURCE), *_build.flag_variants()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ok = _build.compile_source(_kernels.SOURCE, cc, flags, Path(tmp) / "k.so")
        return time.perf_counter() - start if ok else None


def timing_parser(doc: str, repeats: int, warmup: int) -> argparse.ArgumentParser:
    """The options every elementwise timing script takes: size, rounds, threads, JSON."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--numel", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--repeats", type=int, default=repeats, help="timed rounds (>= 5)")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", metavar="FILE", help="write all numbers to FILE")
    return parser


def parse_timing(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse, check the round count and set torch's thread count."""
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be >= 5")
    torch.set_num_threads(args.threads)
    return args


def main(argv: list[str] | None = None) -> dict:
    parser = timing_parser(__doc__, repeats=7, warmup=2)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile cases")
    args = parse_timing(parser, argv)

    gen = torch.Generator().manual_seed(0)
    x = 2 * torch.randn(args.numel, generator=gen)
    grad = torch.randn(args.numel, generator=gen)

    # First call in this process: loads the fused kernels (compiling them if not cached).
    start = time.perf_counter()
    kernels = _kernels.available()
    kernel_load_s = time.perf_counter() - start

    eager: dict[str, Fn] = {
        "htaf": htaf_eager,
        # The same call again: its ratio to "htaf" shows how far apart two identical cases land
        # in this run, the resolution of every other ratio.
        "htaf [again]": htaf_eager,
        "htaf [pure torch]": htaf_torch_path,
        "naive sigmoid(11 tanh(2x))": naive,
        "scaled sigmoid(22x)": sigmoid22,
        "relu": torch.relu,
    }
    cases = dict(eager)
    compile_s: dict[str, float] = {}
    if not args.no_compile:
        compiled = {
            # htaf's custom operators: inductor calls the fused kernels eager mode calls.
            "compiled htaf": torch.compile(htaf_eager, fullgraph=True),
            # The inductor decomposition, which compiled HTAF ran before the custom operators.
            "compiled htaf [pure torch]": torch.compile(htaf_torch_path, fullgraph=True),
            "compiled scaled sigmoid": torch.compile(sigmoid22, fullgraph=True),
            "compiled relu": torch.compile(torch.relu, fullgraph=True),
        }
        for name, fn in compiled.items():
            compile_s[name] = fwd_bwd(fn, x, grad)  # first call compiles fwd and bwd
        cases.update(compiled)

    times = time_cases(cases, x, grad, args.repeats, args.warmup)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    saved = {name: saved_tensors(fn, x) for name, fn in cases.items()}

    # name: (numerator case, denominator case, target, comparison); "" = reported, no target
    specs: dict[str, tuple[str, str, float, str]] = {
        "htaf / scaled sigmoid (eager)": ("htaf", "scaled sigmoid(22x)", 1.1, "<="),
        "htaf / naive (eager)": ("htaf", "naive sigmoid(11 tanh(2x))", 1.0, "<="),
        "htaf / relu (eager)": ("htaf", "relu", float("nan"), ""),
        "htaf [again] / htaf (control)": ("htaf [again]", "htaf", float("nan"), ""),
    }
    if not args.no_compile:
        specs.update({
            "compiled htaf / eager htaf": ("compiled htaf", "htaf", 1.0, "<="),
            "compiled htaf / eager relu": ("compiled htaf", "relu", 1.15, "<="),
            "compiled htaf / compiled relu": ("compiled htaf", "compiled relu", float("nan"), ""),
            "compiled relu / eager relu": ("compiled relu", "relu", float("nan"), ""),
            "compiled htaf [pure torch] / eager htaf": (
                "compiled htaf [pure torch]", "htaf", float("nan"), ""
            ),
            "compiled htaf / compiled scaled sigmoid": (
                "compiled htaf", "compiled scaled sigmoid", float("nan"), ""
            ),
        })  # fmt: skip
    # paired median and quartiles of each ratio
    spread = {name: quartiles(paired(times, num, den)) for name, (num, den, _, _) in specs.items()}
    ratios = {name: (spread[name][1], target, op) for name, (_, _, target, op) in specs.items()}
    htaf_saved = saved["htaf"]["count"] if saved["htaf"] else -1
    naive_saved = saved["naive sigmoid(11 tanh(2x))"]
    naive_count = naive_saved["count"] if naive_saved else -1

    print(
        f"numel={args.numel} float32, threads={args.threads}, median of {args.repeats} "
        f"rounds after {args.warmup} warm-up, torch {torch.__version__}, "
        f"fused kernels: {'yes' if kernels else 'no'} (first load {kernel_load_s * 1e3:.0f} ms)"
    )
    print(f"\n{'fwd+bwd':34s} {'median ms':>10s} {'min ms':>8s} {'saved':>6s} {'saved MiB':>10s}")
    for name, ts in times.items():
        s = saved.get(name)
        n_saved = str(s["count"]) if s else "-"
        mib = f"{s['bytes'] / 2**20:.1f}" if s else "-"
        print(f"{name:34s} {med[name] * 1e3:10.1f} {min(ts) * 1e3:8.1f} {n_saved:>6s} {mib:>10s}")
    if compile_s:
        firsts = ", ".join(f"{k} {v:.1f}" for k, v in compile_s.items())
        print(f"\nfirst call (compile) s: {firsts}")
    cold = cold_kernel_build_s() if kernels else None
    if cold is not None:
        print(f"fused kernel cold build (empty cache): {cold:.2f} s")

    if not args.no_compile:
        side = ["htaf", "compiled htaf", "relu", "compiled relu"]
        print("\nside by side, each ÷ eager relu (paired median over rounds):")
        print("  ".join(f"{name} {statistics.median(paired(times, name, 'relu')):.2f}"
                        for name in side))  # fmt: skip

    print(f"\n{'ratio (paired median [quartiles])':42s} {'value':>7s} {'quartiles':>13s}  target")
    checks: dict[str, bool] = {}
    for name, (value, target, op) in ratios.items():
        if op:
            checks[name] = value <= target
            verdict = f"{op} {target:<4}  {'PASS' if checks[name] else 'FAIL'}"
        else:
            verdict = "(info)"
        q1, _, q3 = spread[name]
        print(f"{name:42s} {value:7.2f} [{q1:5.2f}, {q3:5.2f}]  {verdict}")
    checks["htaf saves exactly 1 tensor"] = htaf_saved == 1
    # The issue expected >= 3 for the naive chain; torch 2.13 saves 2 (the scalar multiplies
    # save nothing), so the honest check is that HTAF saves fewer tensors than the naive chain.
    checks["htaf saves fewer tensors than naive"] = 0 < htaf_saved < naive_count
    print(f"{'htaf saved tensors':42s} {htaf_saved:7d}  == 1   {_pf(htaf_saved == 1)}")
    fewer = 0 < htaf_saved < naive_count
    print(f"{'naive saved tensors':42s} {naive_count:7d}  > htaf {_pf(fewer)}")

    result = {
        "numel": args.numel,
        "dtype": "float32",
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "fused_kernels": kernels,
        "kernel_first_load_s": kernel_load_s,
        "kernel_cold_build_s": cold,
        "compile_first_call_s": compile_s,
        "times_s": times,
        "median_s": med,
        "saved_tensors": saved,
        "ratios": {k: v[0] for k, v in ratios.items()},
        "ratio_quartiles": spread,
        "targets": {k: f"{v[2]} {v[1]}" for k, v in ratios.items() if v[2]},
        "checks": checks,
    }
    if args.json:
        atomic_write_json(args.json, result)
    return result


def _pf(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    main()
