"""How htaf's fused kernels take the page faults of a fresh output, side by side with ReLU.

Usage::

    python benchmarks/page_faults.py [--numel N] [--repeats R] [--portable] [--json FILE]

Builds the kernel source of :mod:`htaf._kernels` (``htaf/csrc/htaf_kernels.c``) three ways
into a temporary folder and times ``forward + backward`` on freshly allocated outputs (as every
training step allocates them), paired with ReLU's forward + backward in the same round:

* ``madvise``: what htaf ships; when the output is fresh (its first page unmapped), each
  1 MiB block of it is faulted in with one ``madvise(MADV_POPULATE_WRITE)`` call before it is
  computed;
* ``stores``: the fallback where that call is refused: one byte written per page first;
* ``in loop``: no prefaulting; every page faults inside the vector loop.

``--portable`` builds the compiler-vectorised loops (AVX2 + FMA) instead of the AVX-512
intrinsics. Rounds run in a seeded random order; each ratio is the median over rounds of the
ratio within a round, with its quartiles. Needs a C compiler with OpenMP; Linux for madvise.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import activation  # benchmarks/activation.py: the round-robin timing and paired ratios
from htaf import _build, _kernels
from htaf.io import atomic_write_json

Call = Callable[[], float]

FRESH = "int fresh = htaf_fresh(out, n * (i64)sizeof(T));"
MADVISE = "int ok = __atomic_load_n(&htaf_populate_ok, __ATOMIC_RELAXED);"
VARIANTS = {
    "madvise": lambda src: src,
    "stores": lambda src: src.replace(MADVISE, "int ok = 0;"),
    "in loop": lambda src: src.replace(FRESH, "int fresh = 0;"),
}


def build(name: str, source: str, flags: list[str], folder: Path) -> ctypes.CDLL:
    cc = _build.compiler()
    if cc is None:
        raise SystemExit("page_faults.py needs a C compiler (CC, cc, gcc or clang)")
    c_file, so_file = folder / f"{name}.c", folder / f"{name.replace(' ', '_')}.so"
    c_file.write_text(source)
    base = _build.base_flags(_kernels.SOURCE)
    cmd = [cc, *base, *flags, "-fopenmp", f"-I{_build.CSRC}", str(c_file), "-o", str(so_file)]
    subprocess.run(cmd, check=True)
    lib = ctypes.PyDLL(str(so_file))
    _kernels._declare(lib)
    return lib


def fwd_bwd(lib: ctypes.CDLL, suffix: str, x: torch.Tensor, g: torch.Tensor, nt: int) -> Call:
    """Seconds for the kernels' forward and backward, each into a fresh output."""
    fwd, bwd = getattr(lib, f"htaf_fwd_{suffix}"), getattr(lib, f"htaf_bwd_{suffix}")
    n = x.numel()

    def run() -> float:
        start = time.perf_counter()
        y = torch.empty_like(x)
        fwd(x.data_ptr(), y.data_ptr(), n, 2.0, 11.0, nt)
        dx = torch.empty_like(x)
        bwd(x.data_ptr(), g.data_ptr(), 0.0, dx.data_ptr(), n, -4.0, -11.0, 88.0, nt)
        return time.perf_counter() - start

    return run


def main(argv: list[str] | None = None) -> dict:
    parser = activation.timing_parser(__doc__, repeats=40, warmup=3)
    parser.add_argument("--portable", action="store_true", help="AVX2 loops, not AVX-512")
    args = activation.parse_timing(parser, argv)
    source = (_build.CSRC / _kernels.SOURCE).read_text()
    if FRESH not in source or MADVISE not in source:
        raise SystemExit("htaf._kernels changed: update the variants of page_faults.py")

    flags, suffix = (["-mavx2", "-mfma"], "f32") if args.portable else (["-march=native"], "")
    gen = torch.Generator().manual_seed(0)
    x = 2 * torch.randn(args.numel, generator=gen)
    g = torch.randn(args.numel, generator=gen)
    relu_out = torch.relu(x)

    def relu() -> float:
        start = time.perf_counter()
        torch.relu(x)
        torch.ops.aten.threshold_backward(g, relu_out, 0)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        libs = {k: build(k, v(source), flags, Path(tmp)) for k, v in VARIANTS.items()}
        if not suffix:
            if not all(hasattr(lib, "htaf_fwd_f32_avx512") for lib in libs.values()):
                raise SystemExit("this CPU has no AVX-512: run with --portable")
            suffix = "f32_avx512"
        cases = {k: fwd_bwd(lib, suffix, x, g, args.threads) for k, lib in libs.items()}
        cases["relu"] = relu
        times = activation.time_rounds(cases, args.repeats, args.warmup)

    print(f"numel={args.numel} float32, threads={args.threads}, {suffix} kernels, "
          f"{args.repeats} rounds; fresh outputs, forward + backward")  # fmt: skip
    ratios = activation.print_paired(times, "relu", "faulting", "÷ relu (paired)")
    result = {"numel": args.numel, "threads": args.threads, "kernels": suffix,
              "repeats": args.repeats, "times_s": times, "ratio_to_relu": ratios}  # fmt: skip
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
