"""What ``--track tensorboard`` costs: per epoch, per run, and on a whole ``htaf compare``.

    python benchmarks/tracking_overhead.py [--runs 4] [--epochs 30] [--json FILE]
    python benchmarks/tracking_overhead.py --wall [--repeats 2] [--compare-args "--seeds 1"]

The first part (a minute or two) trains DHN runs at the ``htaf compare`` defaults with a
TensorBoard tracker and times the tracker's own calls inside each run: the per-epoch logging
against the epoch's time (both measured in the same epoch, so machine load cancels), the per-run
costs (opening the writer, final metrics, histograms, closing) against the run's time, and the
one-time import of ``torch.utils.tensorboard``. Target tracked by the project: tracking adds
<= 5% to a default ``htaf compare``.

``--wall`` also times the default ``htaf compare`` end to end without and with
``--track tensorboard``, alternating (off, on, off, on, ...), and prints the median ratio. That
takes ~4 full compares; on a loaded machine the wall times drift by more than the overhead.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.05


def per_epoch(runs: int, epochs: int) -> dict:
    import torch

    from htaf.api import compare_grid
    from htaf.train import run_one, tracking
    from htaf.train.run_folder import load_dataset

    torch.set_num_threads(1)  # as the grid's cells run
    t0 = time.perf_counter()
    import torch.utils.tensorboard

    import_s = time.perf_counter() - t0
    spent: dict[str, float] = {"epoch": 0.0, "open": 0.0, "finish": 0.0}
    TB = tracking.TensorBoardTracker

    def timed(name: str, method):
        def wrapper(self, *args, **kwargs):
            t = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t

        return wrapper

    TB.on_epoch_end = timed("epoch", TB.on_epoch_end)
    TB.on_fit_start = timed("open", TB.on_fit_start)
    TB.on_fit_end = timed("finish", TB.on_fit_end)
    TB.finish = timed("finish", TB.finish)
    grid = compare_grid(epochs=epochs, seeds=runs)  # the compare defaults: DHN, breast_cancer
    configs = [grid.base.replace(estimator=e, seed=s) for s in grid.seeds
               for e in grid.estimators][:runs]  # fmt: skip
    dataset = load_dataset(configs[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        spec = tracking.prepare("tensorboard", root=tmp, experiment="bench", store_dir=tmp)
        for i, config in enumerate(configs):
            before = dict(spent)
            t = time.perf_counter()
            record = run_one(config, Path(tmp) / f"run{i}", dataset=dataset, tracking=spec)
            run_s = time.perf_counter() - t
            epoch_s = [h["epoch_time_s"] for h in record["history"]]
            rows.append({
                "estimator": config.estimator, "epochs": len(epoch_s),
                "epoch_time_s": sum(epoch_s), "run_s": run_s,
                "log_epoch_s": spent["epoch"] - before["epoch"],
                "log_fixed_s": spent["open"] + spent["finish"] - before["open"]
                - before["finish"],
            })  # fmt: skip
    # The first run in a process also pays one-time costs (first writer, protobuf classes...):
    # reported apart; a grid pays them once per worker process.
    first, rest = rows[0], rows[1:] or rows
    per_epoch_ms = [1e3 * r["log_epoch_s"] / r["epochs"] for r in rest]
    epoch_ms = [1e3 * r["epoch_time_s"] / r["epochs"] for r in rest]
    frac_epoch = [r["log_epoch_s"] / r["epoch_time_s"] for r in rest]
    frac_run = [(r["log_epoch_s"] + r["log_fixed_s"]) / r["run_s"] for r in rest]
    return {
        "runs": rows,
        "import_tensorboard_s": import_s,
        "first_run_logging_s": first["log_epoch_s"] + first["log_fixed_s"],
        "median_log_ms_per_epoch": statistics.median(per_epoch_ms),
        "median_epoch_ms": statistics.median(epoch_ms),
        "median_fraction_of_epoch": statistics.median(frac_epoch),
        "median_fixed_ms_per_run": 1e3 * statistics.median(r["log_fixed_s"] for r in rest),
        "median_fraction_of_run": statistics.median(frac_run),
    }


def wall(repeats: int, extra: list[str]) -> dict:
    times: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for mode in ("off", "on"):
                args = [sys.executable, "-m", "htaf", "compare", "--no-progress",
                        "--out", f"{tmp}/{mode}{i}", *extra]  # fmt: skip
                if mode == "on":
                    args += ["--track", "tensorboard"]
                t = time.perf_counter()
                subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
                times[mode].append(time.perf_counter() - t)
                print(f"  compare {mode:>3} #{i + 1}: {times[mode][-1]:.1f} s", flush=True)
    ratios = [on / off for on, off in zip(times["on"], times["off"], strict=True)]
    return {"times_s": times, "paired_ratios": ratios, "median_ratio": statistics.median(ratios)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="runs timed in process (default 5)")
    p.add_argument("--epochs", type=int, default=30, help="epochs per run (compare default 30)")
    p.add_argument("--wall", action="store_true", help="also time whole compares, off/on")
    p.add_argument("--repeats", type=int, default=2, help="off/on pairs with --wall")
    p.add_argument("--compare-args", default="", help="extra htaf compare flags with --wall")
    p.add_argument("--json", default=None, help="write every number here")
    args = p.parse_args()

    result = {"per_epoch": per_epoch(args.runs, args.epochs)}
    r = result["per_epoch"]
    print(f"once per process: tensorboard import {r['import_tensorboard_s']:.2f} s, first run's "
          f"logging {r['first_run_logging_s']:.2f} s")  # fmt: skip
    print(f"per epoch: logging {r['median_log_ms_per_epoch']:.2f} ms of a "
          f"{r['median_epoch_ms']:.1f} ms epoch = {100 * r['median_fraction_of_epoch']:.2f}% "
          f"(median over runs 2..{len(r['runs'])})")  # fmt: skip
    share = 100 * r["median_fraction_of_run"]
    print(f"per run: fixed {r['median_fixed_ms_per_run']:.1f} ms (writer, final metrics, "
          f"histograms, close); all logging = {share:.2f}% of a run")  # fmt: skip
    verdict = "PASS" if r["median_fraction_of_run"] <= TARGET else "FAIL"
    print(f"target <= {100 * TARGET:.0f}% (in-run share): {verdict}")
    if args.wall:
        result["wall"] = wall(args.repeats, shlex.split(args.compare_args))
        w = result["wall"]
        print(f"whole compare, --track tensorboard / none: median {w['median_ratio']:.3f} "
              f"(pairs: {', '.join(f'{x:.3f}' for x in w['paired_ratios'])})")  # fmt: skip
    if args.json:
        from htaf.io import atomic_write_json

        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
