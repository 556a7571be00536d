"""How long the command line takes to answer ``--help`` and usage errors (issue 23).

Each case runs in a fresh subprocess (wall time of the whole process: interpreter start,
imports, parse, exit), round-robin over ``--runs`` rounds; each reports its median and
whether it is under the target (0.3 s). ``python -c pass`` and ``python -c "import torch"`` are
timed alike for reference: the first is the floor, the second what every command paid before
it parsed.

    .venv/bin/python benchmarks/cli_startup.py             # 11 rounds
    .venv/bin/python benchmarks/cli_startup.py --runs 21 --json out.json

The htaf cases run ``python -m htaf``; the ``htaf`` console script beside the interpreter is
timed too when it exists (``htaf --help [script]``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3


def cases() -> dict[str, tuple[list[str], int]]:
    """name -> (command, expected exit status)."""
    py = [sys.executable]
    out = {
        "python -c pass": ([*py, "-c", "pass"], 0),
        "python -c 'import torch'": ([*py, "-c", "import torch"], 0),
        "htaf --help": ([*py, "-m", "htaf", "--help"], 0),
        "htaf compare --help": ([*py, "-m", "htaf", "compare", "--help"], 0),
        "htaf compare --bogus": ([*py, "-m", "htaf", "compare", "--bogus"], 2),
    }
    script = Path(sys.executable).parent / "htaf"
    if script.exists():
        out["htaf --help [script]"] = ([str(script), "--help"], 0)
    return out


def time_once(cmd: list[str], expected: int) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != expected:
        raise SystemExit(f"{' '.join(cmd)}: exit status {done.returncode}, expected {expected}\n"
                         f"{done.stderr}")  # fmt: skip
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=11, help="rounds (default: 11)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the order within a round")
    ap.add_argument("--json", default=None, help="write every time to this file")
    args = ap.parse_args()
    todo = cases()
    times: dict[str, list[float]] = {name: [] for name in todo}
    for cmd, expected in todo.values():  # warm-up: the file system cache, .pyc files
        time_once(cmd, expected)
    rng = random.Random(args.seed)
    for _ in range(args.runs):
        order = list(todo)
        rng.shuffle(order)
        for name in order:
            times[name].append(time_once(*todo[name]))
    print(f"{args.runs} runs each, median wall time of a fresh process ({sys.executable})")
    width = max(map(len, todo))
    for name, ts in times.items():
        median = statistics.median(ts)
        verdict = ""
        if name.startswith("htaf"):
            verdict = "PASS" if median < TARGET_S else "FAIL"
            verdict = f"  {verdict} (< {TARGET_S} s)"
        print(f"  {name.ljust(width)}  {median:6.3f} s  [min {min(ts):.3f}]{verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(times, indent=2) + "\n")


if __name__ == "__main__":
    main()
