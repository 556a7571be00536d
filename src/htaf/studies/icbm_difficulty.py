"""The paper's three ICBM claims across ``shapes`` difficulty levels (issue 18).

At ``shapes`` level 0 every bottleneck is above 99.5%, so no claim can be told from a tie. This
study trains the ICBM family (its default model: ``small_cnn``, 128 concepts, BatchNorm at scale
0.75, a linear head) on each ``difficulty`` level (``htaf.data.shapes.LEVELS``: pixel noise,
distractor shapes, occluding bands) for every estimator row and seed, and reports per level:

* per row: exact-binary test accuracy ``test_accuracy_hard`` (the hard forward; for ``relu`` and
  ``sigmoid`` the post-hoc thresholded model) and ``test_accuracy_smooth`` (as trained), mean
  and sample standard deviation over seeds; the fraction of concept outputs (smooth forward, test
  split) within 0.05 of 0 or 1 (``near_binary_05``); the loss to thresholding, smooth - hard;
* claim 1, *HTAF loses little against the ReLU model*: HTAF's hard accuracy minus the ReLU
  bottleneck's smooth accuracy, within 1.5 points (``benchmarks/icbm_targets.py``'s target);
* claim 2, *HTAF's concepts are near-binary*: its ``near_binary_05`` at least 95%;
* claim 3, *post-hoc thresholding costs the sigmoid CBM more than HTAF*: the sigmoid row's
  smooth - hard above HTAF's, and by more than the larger of their seed standard deviations
  (``beyond_spread``);
* whether the rows differ by more than the seed spread: the range of the rows' mean hard
  accuracies against the largest per-row seed standard deviation (``rows_separated``), and
  the pairs of rows whose means differ by more than the larger of the two stds
  (``pairs_apart``).

Every claim is reported as measured, holding or not. The rows are the specs as given
(``estimators``): the HTAF row of the claims is ``htaf_row`` (default: the first spec that
starts with ``htaf``), the ReLU and sigmoid rows are ``relu`` and ``sigmoid``; a claim whose
rows are missing is left out.

    import htaf
    result = htaf.studies.icbm_difficulty("out/icbm-difficulty", levels=[0, 2], seeds=3)
    result["levels"]["2"]["claims"]["thresholding"]["holds"]

``htaf study icbm-difficulty`` calls :func:`run` with the same defaults (``DEFAULTS``): 6000
images a level, 8 epochs, 3 seeds, 2 worker processes: smaller than ``htaf compare --family
icbm`` (10000 images, 10 epochs, 5 seeds) so the sweep fits in about 10 minutes on 2 cores.
Outputs: ``icbm_difficulty.json``, ``icbm_difficulty.md``, ``config.json``,
``icbm_difficulty.png/.svg`` and the runs under ``level{k}/``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from htaf.config import RunConfig
from htaf.io import atomic_write_json, atomic_write_text
from htaf.studies import callable_study

#: The ICBM compare default's rows.
ESTIMATORS = ("htaf", "ste", "scaled_sigmoid", "relu", "sigmoid")
DEFAULTS: dict[str, Any] = {
    "levels": (0, 1, 2, 3, 4),
    "estimators": ESTIMATORS,
    "seeds": 3,
    "n": 6000,
    "epochs": 8,
    "lr": 3e-3,
    "batch_size": 128,
    "jobs": 2,
}
RELU_MARGIN = 0.015  # claim 1: HTAF's binary accuracy at most 1.5 points below the ReLU model
NEAR_BINARY = 0.95  # claim 2


def configs(
    level: int, *, estimators: Sequence[str] = ESTIMATORS, seeds: Sequence[int] = (0, 1, 2),
    n: int = DEFAULTS["n"], data_options: dict[str, Any] | None = None, **overrides: Any,
) -> list[RunConfig]:  # fmt: skip
    """One ICBM run config per row and seed on ``shapes`` at ``level``."""
    settings = {k: DEFAULTS[k] for k in ("epochs", "lr", "batch_size")}
    settings.update(overrides)
    options = {"n": n, "difficulty": level, **(data_options or {})}
    base = RunConfig(family="icbm", dataset="shapes", data_options=options, **settings)
    return [base.replace(estimator=e, seed=s) for e in estimators for s in seeds]


def run(
    out_dir: str | Path,
    *,
    levels: Sequence[int] = DEFAULTS["levels"],
    estimators: Sequence[str] = DEFAULTS["estimators"],
    seeds: int = DEFAULTS["seeds"],
    jobs: int = DEFAULTS["jobs"],
    htaf_row: str | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """Train every row and seed on every level; write the JSON, the table and the plot.

    ``kwargs`` go to :func:`configs` (``n``, ``epochs``, ``lr``, ``batch_size``,
    ``data_options``, ``model``...). Returns ``{"levels": {level: summary}, "table": markdown,
    "plots": [...], "wall_s": ...}``.
    """
    from htaf.experiment import run_grid, validate

    levels, estimators = _check(levels, estimators, seeds)
    htaf_row = _htaf_row(estimators, htaf_row)
    out_dir = Path(out_dir)
    per_level = {lv: configs(lv, estimators=estimators, seeds=range(seeds), **kwargs)
                 for lv in levels}  # fmt: skip
    for cfgs in per_level.values():  # every level's input before any run
        validate(cfgs)
    summary: dict[str, Any] = {}
    start = time.perf_counter()
    for lv, cfgs in per_level.items():
        t0 = time.perf_counter()
        records = run_grid(cfgs, out_dir / f"level{lv}", jobs=jobs, progress=progress)
        rows = summarize_rows(cfgs, [r["metrics"] for r in records])
        summary[str(lv)] = {
            "rows": rows,
            "claims": claims(rows, htaf_row),
            "separation": separation(rows),
            "wall_s": time.perf_counter() - t0,
        }
    wall = time.perf_counter() - start
    first = per_level[levels[0]][0]
    settings = {k: v for k, v in first.to_dict().items() if k not in ("estimator", "seed")}
    settings["data_options"] = {k: v for k, v in first.data_options.items() if k != "difficulty"}
    config = {**settings, "levels": list(levels), "estimators": list(estimators),
              "seeds": list(range(seeds)), "htaf_row": htaf_row, "jobs": jobs}  # fmt: skip
    atomic_write_json(out_dir / "config.json", config, sort_keys=False)
    atomic_write_json(
        out_dir / "icbm_difficulty.json", {"levels": summary, "wall_s": wall}, sort_keys=False
    )
    table = markdown(summary, htaf_row)
    atomic_write_text(out_dir / "icbm_difficulty.md", table + "\n")
    plots = plot(summary, out_dir, f"shapes n={first.data_options['n']}, {first.epochs} epochs, "
                 f"{seeds} seeds")  # fmt: skip
    return {"levels": summary, "table": table, "plots": plots, "wall_s": wall}


def _check(
    levels: Sequence[int], estimators: Sequence[str], seeds: int
) -> tuple[list[int], list[str]]:
    from htaf.data.shapes import LEVELS

    if isinstance(levels, str | int) or not levels:
        raise ValueError(f"levels must be a non-empty list of difficulty levels, got {levels!r}")
    bad = [lv for lv in levels if isinstance(lv, bool) or lv not in LEVELS]
    if bad or len(set(levels)) != len(levels):
        raise ValueError(f"levels must be distinct integers from 0 to {max(LEVELS)}, got "
                         f"{list(levels)!r}")  # fmt: skip
    if isinstance(estimators, str) or not estimators or len(set(estimators)) != len(estimators):
        raise ValueError(f"estimators must be a list of distinct specs, got {estimators!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ValueError(f"seeds must be an integer >= 2 (the spread needs two), got {seeds!r}")
    return [int(lv) for lv in levels], list(estimators)


def _htaf_row(estimators: list[str], htaf_row: str | None) -> str | None:
    if htaf_row is None:
        return next((e for e in estimators if e.replace(" ", "").startswith("htaf")), None)
    if htaf_row not in estimators:
        raise ValueError(f"htaf_row {htaf_row!r} is not one of the estimators {estimators}")
    return htaf_row


def _stats(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values), "seeds": values}


def summarize_rows(cfgs: Sequence[RunConfig], metrics: Sequence[dict[str, Any]]) -> dict:
    """Per row: hard and smooth test accuracy, near-binary fraction and smooth - hard, each as
    mean, sample std over seeds and the per-seed values (in seed order)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for cfg, m in sorted(zip(cfgs, metrics, strict=True), key=lambda cm: cm[0].seed):
        by.setdefault(cfg.estimator, []).append(m)
    rows = {}
    for spec, ms in by.items():
        hard = [float(m["test_accuracy_hard"]) for m in ms]
        smooth = [float(m["test_accuracy_smooth"]) for m in ms]
        rows[spec] = {
            "accuracy_hard": _stats(hard),
            "accuracy_smooth": _stats(smooth),
            "near_binary_05": _stats([float(m["near_binary_05"]) for m in ms]),
            "thresholding_loss": _stats([s - h for s, h in zip(smooth, hard, strict=True)]),
            "train_time_s": sum(float(m["train_time_s"]) for m in ms),
        }
    return rows


def claims(rows: dict[str, Any], htaf: str | None) -> dict[str, Any]:
    """The three claims at one level (see the module doc); a claim missing a row is left out."""
    out: dict[str, Any] = {}
    if htaf is None or htaf not in rows:
        return out
    h = rows[htaf]
    if "relu" in rows:
        gap = h["accuracy_hard"]["mean"] - rows["relu"]["accuracy_smooth"]["mean"]
        out["vs_relu"] = {"htaf_minus_relu": gap, "holds": gap >= -RELU_MARGIN}
    near = h["near_binary_05"]["mean"]
    out["near_binary"] = {"htaf": near, "holds": near >= NEAR_BINARY}
    if "sigmoid" in rows:
        sig, mine = rows["sigmoid"]["thresholding_loss"], h["thresholding_loss"]
        diff = sig["mean"] - mine["mean"]
        out["thresholding"] = {
            "sigmoid_loss": sig["mean"], "htaf_loss": mine["mean"], "difference": diff,
            "holds": diff > 0, "beyond_spread": diff > max(sig["std"], mine["std"]),
        }  # fmt: skip
    return out


def separation(rows: dict[str, Any]) -> dict[str, Any]:
    """Do the rows differ by more than the seed spread? The range of the rows' mean hard
    accuracies against the largest per-row sample std of the hard accuracy; and how many pairs
    of rows have means further apart than the larger of the pair's two stds (``pairs_apart``
    of ``pairs``), since one odd row (ReLU's post-hoc threshold) can make the range alone."""
    stats = [r["accuracy_hard"] for r in rows.values()]
    means = [a["mean"] for a in stats]
    spread = max(a["std"] for a in stats)
    span = max(means) - min(means)
    pairs = [(a, b) for i, a in enumerate(stats) for b in stats[i + 1 :]]
    apart = sum(abs(a["mean"] - b["mean"]) > max(a["std"], b["std"]) for a, b in pairs)
    return {"row_range": span, "max_seed_std": spread, "rows_separated": span > spread,
            "pairs_apart": apart, "pairs": len(pairs)}  # fmt: skip


def markdown(summary: dict[str, Any], htaf: str | None) -> str:
    """One table of the rows per level, then one of the claims per level."""
    lines = [
        "| level | row | binary (hard) | trained (smooth) | near-binary ±0.05 | smooth − hard |",
        "|---|---|---|---|---|---|",
    ]
    for lv, s in summary.items():
        for spec, r in s["rows"].items():
            a, b = r["accuracy_hard"], r["accuracy_smooth"]
            t = r["thresholding_loss"]
            lines.append(
                f"| {lv} | {spec} | {a['mean']:.4f} ± {a['std']:.4f} | {b['mean']:.4f} ± "
                f"{b['std']:.4f} | {r['near_binary_05']['mean']:.1%} | "
                f"{100 * t['mean']:+.2f} ± {100 * t['std']:.2f} pts |"
            )
    lines += [
        "",
        f"| level | {htaf} − relu (≥ −1.5 pts) | {htaf} near-binary (≥ 95%) | thresholding loss "
        f"sigmoid vs {htaf} (sigmoid larger) | rows apart (range vs largest seed std) | "
        "row pairs apart |",
        "|---|---|---|---|---|---|",
    ]
    for lv, s in summary.items():
        c, sep = s["claims"], s["separation"]
        cells = [_claim_cell(c.get("vs_relu"), lambda x: f"{100 * x['htaf_minus_relu']:+.2f} pts"),
                 _claim_cell(c.get("near_binary"), lambda x: f"{x['htaf']:.1%}"),
                 _claim_cell(c.get("thresholding"), _thresholding_text)]  # fmt: skip
        apart = "yes" if sep["rows_separated"] else "no"
        lines.append(
            f"| {lv} | {' | '.join(cells)} | {apart} ({100 * sep['row_range']:.2f} vs "
            f"{100 * sep['max_seed_std']:.2f} pts) | {sep['pairs_apart']} of {sep['pairs']} |"
        )
    return "\n".join(lines)


def _thresholding_text(c: dict[str, Any]) -> str:
    spread = (
        "" if not c["holds"] else (", beyond spread" if c["beyond_spread"] else ", within spread")
    )
    return f"{100 * c['sigmoid_loss']:+.2f} vs {100 * c['htaf_loss']:+.2f} pts{spread}"


def _claim_cell(claim: dict[str, Any] | None, text: Any) -> str:
    if claim is None:
        return "n/a"
    return f"{text(claim)} {'holds' if claim['holds'] else 'FAILS'}"


def plot(summary: dict[str, Any], out_dir: str | Path, settings: str = "") -> list[Path]:
    """Mean exact-binary test accuracy per level, one line per row, error bars = seed std."""
    from htaf.analysis.plots import plt, save_figure

    levels = [int(lv) for lv in summary]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for spec in next(iter(summary.values()))["rows"]:
        rows = [summary[str(lv)]["rows"][spec]["accuracy_hard"] for lv in levels]
        ax.errorbar(levels, [r["mean"] for r in rows], yerr=[r["std"] for r in rows],
                    marker="o", markersize=3, capsize=3, label=spec)  # fmt: skip
    title = "ICBM on shapes: exact-binary accuracy by difficulty" + (
        f"\n{settings}" if settings else ""
    )
    ax.set(xlabel="shapes difficulty", ylabel="test accuracy (hard forward)", title=title)
    ax.set_xticks(levels)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir, "icbm_difficulty")


callable_study(__name__)  # htaf.studies.icbm_difficulty(...) is run(...)
