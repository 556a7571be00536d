"""An experiment's report.md and self-contained report.html, built from its folder alone.

    write_report("htaf-runs/compare-20260101-120000-000000")

Reads ``config.json`` (what the command was asked), the run folders and ``summary.json``, draws
the plots into ``plots/`` and writes both reports. ``htaf report EXP_DIR`` calls it, so a report
can be rebuilt at any later time. The HTML inlines every image (base64 PNG): one file to share.
"""

from __future__ import annotations

import html
import json
import platform
import statistics
from pathlib import Path
from typing import Any

from htaf.config import canonical_keys, family_of
from htaf.html_page import figure, html_table, page
from htaf.io import atomic_write_text

#: Columns of the results table: (title, metric); the exact step's (hard) test value.
CLASSIFICATION_COLUMNS = (("test accuracy", "accuracy"), ("test AUROC", "auroc"))
REGRESSION_COLUMNS = (("test RMSE", "rmse"), ("test MAE", "mae"), ("test R²", "r2"))
PLOTS = (
    ("binary_metric", "Exact-binary test metric per estimator"),
    ("learning_curves", "Learning curves"),
    ("gradient_norms", "Gradient norms per layer"),
    ("activation_histograms", "Hidden activations (smooth forward, seed 0)"),
    ("model_stats", "Model statistics per epoch (e.g. firing rates per layer)"),
    ("spike_raster", "Spike rasters, first test sample (exact spikes, seed 0)"),
    ("membrane_traces", "Membrane traces, first test sample (seed 0)"),
)


def environment() -> dict[str, str]:
    """Versions that decide whether a result reproduces."""
    import numpy
    import torch

    import htaf

    return {
        "htaf": htaf.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def fmt(mean: float | None, std: float | None = None, digits: int = 4) -> str:
    """``0.9876 ± 0.0042``; a dash for a missing value."""
    if mean is None:
        return "–"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


#: The gap cell of an estimator whose smooth forward is not a model (``has_smooth_forward``).
NO_SMOOTH = "no smooth forward"


def stat(s: dict[str, Any] | None, digits: int = 4) -> str:
    """A summary statistic ``{"mean", "std", "n"}``: no spread is shown for a single value."""
    s = s or {}
    return fmt(s.get("mean"), s.get("std") if s.get("n", 2) > 1 else None, digits)


def _mean_std(xs: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std; the std is None for fewer than two values (no spread to show)."""
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def table_rows(
    summary: list[dict[str, Any]], records: list[dict[str, Any]]
) -> dict[tuple[str, str], tuple[list[str], list[list[str]]]]:
    """Per (family, dataset): the header and one row of formatted cells per estimator.
    Summary rows and records of older versions (``task`` for the family) are read too."""
    from htaf.analysis.plots import primary_metric, smooth_shown

    tables: dict[tuple[str, str], tuple[list[str], list[list[str]]]] = {}
    for row in summary:
        m = row["metrics"]
        metric = primary_metric(list(m), family=family_of(row)) or "accuracy"
        columns = REGRESSION_COLUMNS if "test_rmse_hard" in m else CLASSIFICATION_COLUMNS
        # The headline metric leads.
        columns = tuple(sorted(columns, key=lambda c: c[1] != metric))
        runs = [
            r
            for r in records
            if (family_of(r["config"]), r["config"]["dataset"], r["config"]["estimator"])
            == (family_of(row), row["dataset"], row["estimator"])
        ]
        # The gap is taken run by run (same weights), then averaged over seeds.
        gaps = [
            r["metrics"][f"test_{metric}_smooth"] - r["metrics"][f"test_{metric}_hard"]
            for r in runs
            if isinstance(r["metrics"].get(f"test_{metric}_smooth"), int | float)
            and isinstance(r["metrics"].get(f"test_{metric}_hard"), int | float)
        ]
        header = ["estimator", *(f"{t} (step)" for t, _ in columns)]
        header += [f"{metric} gap smooth−step", "near-binary ±0.05", "train time (s)", "seeds"]
        cells = [row["estimator"]]
        for _, name in columns:
            cells.append(stat(m.get(f"test_{name}_hard")))
        cells.append(fmt(*_mean_std(gaps)) if smooth_shown(row["estimator"]) else NO_SMOOTH)
        cells.append(stat(m.get("near_binary_05"), 3))
        cells.append(stat(m.get("train_time_s"), 2))
        cells.append(str(max((s.get("n", 0) for s in m.values()), default=0)))
        key = (family_of(row), row["dataset"])
        tables.setdefault(key, (header, []))[1].append(cells)
    return tables


def model_summaries(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    """Per (family, dataset): the ``model_summary.txt`` of the first run that wrote one (its
    layers, parameters and memory), keyed ``(family, dataset, estimator)``."""
    from htaf.train.run_folder import SUMMARY as MODEL_SUMMARY

    out: dict[tuple[str, str, str], str] = {}
    seen: set[tuple[str, str]] = set()
    for rec in records:
        cfg = rec["config"]
        key = (family_of(cfg), cfg["dataset"])
        path = Path(rec["run_dir"]) / MODEL_SUMMARY
        if key not in seen and path.is_file():
            seen.add(key)
            out[(*key, cfg["estimator"])] = path.read_text().rstrip()
    return out


def solver_warnings(records: list[dict[str, Any]]) -> list[str]:
    """One line per solved run (a closed-form family such as convex) whose solve stopped short
    of its tolerance (``solver_optimal`` false), naming the relative duality gap it reached."""
    lines = []
    for rec in records:
        m, cfg = rec.get("metrics") or {}, rec.get("config") or {}
        if m.get("solver_optimal") is not False:
            continue
        gap, tol = m.get("solver_relative_gap"), m.get("solver_tol")
        reached = f"{gap:.3g}" if isinstance(gap, int | float) else "?"
        wanted = f"{tol:g}" if isinstance(tol, int | float) else "?"
        lines.append(
            f"warning: {family_of(cfg)} / {cfg.get('dataset')} / {cfg.get('estimator')} seed "
            f"{cfg.get('seed')}: the solve stopped short of its tolerance, relative duality gap "
            f"{reached} > tol {wanted} (solver_optimal = false)"
        )
    return lines


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _load(exp_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    from htaf.experiment import EXPERIMENT_CONFIG, RUN_GLOB, SUMMARY, read_runs, summarize
    from htaf.train.run_folder import METRICS

    spec_path = exp_dir / EXPERIMENT_CONFIG
    spec = json.loads(spec_path.read_text()) if spec_path.is_file() else {}
    records = read_runs(exp_dir)
    if not records:
        raise FileNotFoundError(f"{exp_dir} holds no finished runs (no {RUN_GLOB}/{METRICS})")
    summary_path = exp_dir / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else summarize(records)
    return spec, records, summary


def _settings(spec: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    base = canonical_keys(spec.get("base") or records[0]["config"])

    def listed(key: str, config_key: str) -> str:  # the spec's list, else what the runs used
        values = spec.get(key) or sorted({r["config"][config_key] for r in records})
        return ", ".join(str(v) for v in values)

    items = [
        ("command", spec.get("command", "–")),
        ("experiment", spec.get("experiment_id", "–")),
        ("datasets", listed("datasets", "dataset")),
        ("estimators", listed("estimators", "estimator")),
        ("seeds", listed("seeds", "seed")),
        ("backend", f"{spec.get('backend', 'local')} (jobs={spec.get('jobs', 1)})"),
    ]
    shown = (
        "family",
        "model",
        "optimizer",
        "lr",
        "weight_decay",
        "lr_schedule",
        "epochs",
        "batch_size",
        "patience",
        "split_seed",
        "target",
        "impute",
    )
    items += [(k, json.dumps(base[k])) for k in shown if k in base]
    env = spec.get("environment") or {**environment(), "note": "recorded at report time"}
    items += [(f"env {k}", str(v)) for k, v in env.items()]
    return items


CONCEPT_HEADER = ["page", "estimator", "seed", "accuracy (binary)", "near-binary ±0.05",
                  "proportions near 0/1", "attributes recovered"]  # fmt: skip


def concept_pages(exp_dir: Path) -> list[list[str]]:
    """One row per run with a concept analysis (``RUN/concepts/summary.json``): the page's
    path relative to ``exp_dir`` and its headline numbers."""
    from htaf.experiment import run_folders

    rows = []
    for path in (run / "concepts" / "summary.json" for run in run_folders(exp_dir)):
        if not path.is_file():
            continue
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        recovered = s.get("attributes_recovered_fraction")
        rows.append([
            str((path.parent / "concepts.html").relative_to(exp_dir)), str(s.get("estimator")),
            str(s.get("seed")), fmt(s.get("test_accuracy_hard")),
            fmt(s.get("concept_near_binary_05"), digits=3),
            fmt(s.get("proportions_decided_fraction"), digits=3),
            "–" if recovered is None else f"{recovered:.0%}",
        ])  # fmt: skip
    return rows


def write_report(exp_dir: str | Path) -> dict[str, Path]:
    """Draw the plots and write ``report.md`` and ``report.html``; returns their paths."""
    from htaf.analysis.plots import plot_experiment

    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise FileNotFoundError(f"experiment folder {exp_dir} does not exist")
    spec, records, summary = _load(exp_dir)
    plot_experiment(exp_dir, records, summary)
    tables = table_rows(summary, records)
    settings = _settings(spec, records)
    title = f"htaf experiment {spec.get('experiment_id', exp_dir.name)}"
    note = (
        "Exact-binary (step) metrics use the hard forward at inference; the gap is the smooth "
        "forward's metric minus the step's, per run. Near-binary: fraction of the smooth "
        "forward's hidden outputs within 0.05 of 0 or 1 (STE and surrogates train with the "
        "step itself, so for them it describes a forward they never use). Mean ± sample std "
        "over seeds. Non-binary reference rows (relu) have no step: both columns are the "
        "same network."
    )
    if any(family_of(r["config"]) == "icbm" for r in records):
        note += (
            " In the icbm family the relu and sigmoid rows are the concept-bottleneck baseline: "
            "their step is a threshold applied after training (sigmoid > 0.5, relu > 0), and "
            "near-binary counts the concept bottleneck only."
        )

    md = [f"# {title}", "", note, ""]
    md += [f"- {line}" for line in solver_warnings(records)] + [""] * bool(solver_warnings(records))
    for (family, dataset), (header, rows) in tables.items():
        md += [f"## {dataset} ({family})", "", _md_table(header, rows), ""]
    summaries = model_summaries(records)
    for (family, dataset, estimator), text in summaries.items():
        md += [f"## Model: {dataset} ({family}), {estimator} runs", "", "```", text, "```", ""]
    md += ["## Plots", ""]
    md += [
        f"### {caption}\n\n![{caption}](plots/{stem}.png) ([svg](plots/{stem}.svg))\n"
        for stem, caption in PLOTS
        if (exp_dir / "plots" / f"{stem}.png").is_file()
    ]
    concepts = concept_pages(exp_dir)
    if concepts:
        md += [
            "## Concept analyses (htaf concepts)",
            "",
            _md_table(CONCEPT_HEADER, [[f"[{r[0]}]({r[0]})", *r[1:]] for r in concepts]),
            "",
        ]
    md += [
        "## Settings and environment",
        "",
        _md_table(["setting", "value"], [[k, v.replace("|", "\\|")] for k, v in settings]),
        "",
    ]
    md_path = atomic_write_text(exp_dir / "report.md", "\n".join(md))

    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(note)}</p>"]
    parts += [f"<p><strong>{html.escape(line)}</strong></p>" for line in solver_warnings(records)]
    for (family, dataset), (header, rows) in tables.items():
        parts += [
            f"<h2>{html.escape(dataset)} ({html.escape(family)})</h2>",
            html_table(header, rows),
        ]
    for (family, dataset, estimator), text in summaries.items():
        parts += [
            f"<h2>Model: {html.escape(dataset)} ({html.escape(family)}), "
            f"{html.escape(estimator)} runs</h2>",
            f"<pre>{html.escape(text)}</pre>",
        ]
    parts.append("<h2>Plots</h2>")
    for stem, caption in PLOTS:
        png = exp_dir / "plots" / f"{stem}.png"
        if png.is_file():
            parts.append(figure(png, caption))
    if concepts:
        links = [[f"<a href='{html.escape(r[0])}'>{html.escape(r[0])}</a>",
                  *map(html.escape, r[1:])] for r in concepts]  # fmt: skip
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in links)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in CONCEPT_HEADER)
        parts += [
            "<h2>Concept analyses (htaf concepts)</h2>",
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        ]
    parts += [
        "<h2>Settings and environment</h2>",
        html_table(["setting", "value"], [list(x) for x in settings]),
    ]
    html_path = atomic_write_text(exp_dir / "report.html", page(title, parts))
    return {"markdown": md_path, "html": html_path}
