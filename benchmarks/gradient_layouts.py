"""HTAF's eager backward with gradients of every layout, paired with a contiguous gradient's.

Usage::

    python benchmarks/gradient_layouts.py [--numel N] [--repeats R] [--threads T] [--json FILE]
    HTAF_KERNEL_ISA=avx2 python benchmarks/gradient_layouts.py   # the AVX2 loops

Each case runs ``htaf(x)`` forward and backward on a square float32 ``x`` of about ``numel``
elements through the native operator, with the gradient in one layout: contiguous,
``y.sum().backward()`` (one value expanded, stride 0), a row or a column expanded, transposed,
a slice of a wider tensor (rows strided), every second column (inner stride 2); and the
transposed one copied by ATen first (``.contiguous()``, as the operator did before).
``sigmoid(22x)`` with the ``.sum()`` gradient is the reference the issue compares against;
with a contiguous and a transposed gradient it shows what a transposed gradient costs
PyTorch's own elementwise backward.
Each ratio is the median over rounds of the ratio to the contiguous case in the same round,
with quartiles.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import activation  # benchmarks/activation.py: the round-robin timer and paired ratios
from htaf import _kernels, _native
from htaf.functional import htaf
from htaf.io import atomic_write_json


def gradients(side: int, gen: torch.Generator) -> dict[str, torch.Tensor | None]:
    """The gradient of each case (None: ``.sum().backward()``)."""
    full = torch.randn(side, 2 * side, generator=gen)
    return {
        "contiguous": torch.randn(side, side, generator=gen),
        "sum (stride 0)": None,
        "row expanded": torch.randn(1, side, generator=gen).expand(side, side),
        "column expanded": torch.randn(side, 1, generator=gen).expand(side, side),
        "transposed": torch.randn(side, side, generator=gen).t(),
        "sliced rows": full[:, :side],
        "every 2nd column": full[:, ::2],
    }


def case(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    g: torch.Tensor | None,
    copy: bool = False,
) -> Callable[[], float]:
    """Seconds for ``fn(x)`` forward and backward with gradient ``g`` (copied first if ``copy``)."""

    def run() -> float:
        x.grad = None
        start = time.perf_counter()
        y = fn(x)
        if g is None:
            y.sum().backward()
        else:
            y.backward(g.contiguous() if copy else g)
        return time.perf_counter() - start

    return run


def main(argv: list[str] | None = None) -> dict:
    parser = activation.timing_parser(__doc__, repeats=21, warmup=3)
    args = activation.parse_timing(parser, argv)
    side = int(args.numel**0.5)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(side, side, generator=gen).requires_grad_()
    if not _native.accepts(x):
        raise SystemExit("the native HTAF operator is not available here")
    fns = _kernels._load().fns[torch.float32]
    grads = gradients(side, gen)
    calls = {name: case(htaf, x, g) for name, g in grads.items()}
    calls["transposed, copied"] = case(htaf, x, grads["transposed"], copy=True)

    def sigmoid(t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(22 * t)

    calls["sigmoid(22x), sum"] = case(sigmoid, x, None)
    # PyTorch's own elementwise backward with the same layouts: the price of a transposed
    # gradient for any operator, not only for HTAF's.
    calls["sigmoid(22x), contiguous"] = case(sigmoid, x, grads["contiguous"])
    calls["sigmoid(22x), transposed"] = case(sigmoid, x, grads["transposed"])
    times = activation.time_rounds(calls, args.repeats, args.warmup)

    print(f"{side}x{side} float32, threads={args.threads}, {args.repeats} rounds, "
          f"kernels {fns[0].__name__}")  # fmt: skip
    ratios = activation.print_paired(times, "contiguous", "gradient", "÷ contiguous")
    result = {"side": side, "threads": args.threads, "repeats": args.repeats,
              "times_s": times, "ratio_to_contiguous": ratios}  # fmt: skip
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
