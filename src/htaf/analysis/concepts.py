"""The concept analysis of one ICBM run folder: ``htaf concepts RUN`` calls :func:`analyze_run`.

    summary = analyze_run("htaf-runs/compare-.../shapes/htaf/seed0", node=3, image=17)

The run folder is enough: its ``config.json`` rebuilds the data and the model, its
``model.safetensors`` holds the weights, and the concepts are recomputed on the test split.
Everything goes to ``RUN/concepts/``:

* figures (PNG + SVG): ``class_proportions`` (heatmap, classes x concepts),
  ``proportion_histogram``, ``node_K_images`` (the images concept K is most surely on / off
  for), ``image_I_concepts`` (one image, by default the first the binary model gets wrong, and
  its active concepts), ``bottleneck_histogram`` (this run's concept outputs, and those of the
  experiment's other bottlenecks with the same seed), ``ablation_node_K`` and
  ``ablation_overall`` (interventions), ``alignment`` (with true attributes);
* tables (CSV): ``nodes.csv``, ``class_proportions.csv``, ``ablation.csv``, ``alignment.csv``;
* ``naming_prompts.jsonl`` (always), ``summary.json``, and ``concepts.html``, a self-contained
  page that the experiment's report links to.

Every input is checked before anything is written. With ``llm`` the naming prompts are written
first and then sent; an endpoint failure raises ``LLMError`` after the prompts file, before
anything else is written.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from htaf.config import ConfigError
from htaf.estimators import set_mode
from htaf.families import get_family
from htaf.families.icbm import analysis as A
from htaf.families.icbm import naming
from htaf.families.icbm.model import concept_stats
from htaf.io import atomic_write_json, atomic_write_text
from htaf.train.run_folder import Run, load_run

OUT = "concepts"
TOP_IMAGES = 8
BATCH = 256
#: What the summary takes from :func:`concept_stats` (what training logs per epoch).
STATS = ("concept_near_binary_05", "concepts_active_mean", "concepts_dead", "concepts_always_on")


@dataclass
class Outputs:
    """The test split through the model: scores, concepts, predictions, labels."""

    z: np.ndarray  # concept pre-activations (n, K)
    smooth: np.ndarray  # concepts, smooth forward (n, K)
    active: np.ndarray  # concepts, exact binary forward (n, K) bool
    pred: np.ndarray  # predictions of the binary model (n,)
    pred_smooth: np.ndarray  # predictions of the smooth model (n,)
    y: np.ndarray


# -- loading ------------------------------------------------------------------------------------
def load_icbm_run(run_dir: str | Path) -> Run:
    """``htaf.load_run(run_dir)``, refused unless it holds an ICBM run (concepts need one)."""
    run = load_run(run_dir)
    if get_family(run.config.family).name != "icbm":
        raise ConfigError(f"{run_dir} holds a {run.config.family!r} run; concepts need icbm runs")
    return run


def outputs(model: torch.nn.Module, data: Any) -> Outputs:
    """The test split's concept scores, concepts and predictions (both forwards)."""
    from htaf.train.batches import batches, sequential

    X, y = data.X_test, np.asarray(data.y_test)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("z", "smooth", "active", "hs", "hh")}
    with torch.no_grad():
        for xb in batches(X, sequential(len(X), BATCH), to_float=data.float_batch):
            z = model.pre_concepts(xb)
            with set_mode(model.bottleneck, "smooth"):
                smooth = model.bottleneck(z)
            active = model.active(z)
            parts["z"].append(z)
            parts["smooth"].append(smooth)
            parts["active"].append(active)
            parts["hs"].append(model.classify(smooth))
            parts["hh"].append(model.classify(active.float()))
    cat = {k: torch.cat(v).numpy() for k, v in parts.items()}
    return Outputs(
        z=cat["z"], smooth=cat["smooth"], active=cat["active"].astype(bool),
        pred=cat["hh"].argmax(1), pred_smooth=cat["hs"].argmax(1), y=y,
    )  # fmt: skip


def _classifier(model: torch.nn.Module) -> Any:
    def classify(c: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.classify(torch.as_tensor(c, dtype=torch.float32)).numpy()

    return classify


# -- the analysis --------------------------------------------------------------------------------
def analyze_run(
    run_dir: str | Path,
    *,
    node: int | None = None,
    image: int | None = None,
    llm: str | None = None,
    llm_model: str | None = None,
    top: int = TOP_IMAGES,
) -> dict[str, Any]:
    """Analyse the concepts of the ICBM run in ``run_dir`` (see the module doc); returns the
    summary written to ``summary.json`` plus ``"files"``, the paths written."""
    run_dir = Path(run_dir)
    if llm is not None and not llm_model:
        raise ValueError("--llm needs --model NAME (the model the endpoint serves)")
    if llm_model and llm is None:
        raise ValueError("--model names the LLM; give the endpoint with --llm URL")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    run = load_icbm_run(run_dir)
    config, raw, data = run.config, run.dataset(raw=True), run.dataset()
    model = run.model(hard=True)  # the analysis picks each forward itself, part by part
    K = run.options.n_concepts
    if node is not None and not 0 <= node < K:
        raise ValueError(f"node {node} is out of range: the model has {K} concepts (0..{K - 1})")
    n_test = len(data.y_test)
    if image is not None and not 0 <= image < n_test:
        raise ValueError(
            f"image {image} is out of range: the test split has {n_test} images (0..{n_test - 1})"
        )
    if n_test == 0:
        raise ValueError(f"{run_dir}: the dataset's test split is empty")

    out = outputs(model, data)
    classes = list(data.class_names or [str(c) for c in range(data.n_classes)])
    props = A.class_proportions(out.active, out.y, len(classes))
    spec = A.specificity(props)
    node = _default_node(spec, len(classes)) if node is None else node
    wrong = np.flatnonzero(out.pred != out.y)
    image = (int(wrong[0]) if len(wrong) else 0) if image is None else image
    ablation = A.ablate(_classifier(model), out.active, out.y, len(classes))
    attrs, attr_names = _attributes(raw)
    align = A.alignment(out.z, attrs) if attrs is not None else None
    prompts = naming.naming_prompts(props, classes)

    folder = run_dir / OUT
    files = [atomic_write_text(folder / "naming_prompts.jsonl",
                               "".join(json.dumps(r) + "\n" for r in prompts))]  # fmt: skip
    names = naming.ask_llm(prompts, llm, llm_model) if llm is not None else {}

    rows = A.node_table(props, out.active, spec, classes, align, attr_names)
    for row in rows:
        row["name"] = names.get(row["node"], "")
    summary = _summary(config, run_dir, out, spec, align, node, image, ablation, names, llm_model)
    files += _write_tables(folder, rows, props, classes, ablation, align, attr_names)
    figures = _draw(folder, run_dir, raw, out, props, classes, spec, node, image, ablation,
                    align, attr_names, rows, model, top)  # fmt: skip
    files += figures
    summary["files"] = sorted(str(p.relative_to(run_dir)) for p in files)
    files.append(atomic_write_json(folder / "summary.json", summary))
    files.append(_page(folder, summary, rows, figures))
    _refresh_report(run_dir)
    return {**summary, "files": [str(p) for p in files]}


def _default_node(spec: dict[str, Any], n_classes: int) -> int:
    """The most class-specific concept that some but not every class turns on."""
    on = spec["classes_on"]
    score = np.where((on > 0) & (on < n_classes), spec["crispness"], -1.0)
    return int(np.argmax(score))


def _attributes(raw: Any) -> tuple[np.ndarray | None, list[str] | None]:
    attrs = getattr(raw, "concepts_test", None)
    names = getattr(raw, "concept_names", None)
    if attrs is None or not names or len(attrs) == 0:
        return None, None
    return np.asarray(attrs), list(names)


def _summary(
    config: Any, run_dir: Path, out: Outputs, spec: dict[str, Any], align: dict[str, Any] | None,
    node: int, image: int, ablation: dict[str, Any], names: dict[int, str], llm_model: str | None,
) -> dict[str, Any]:  # fmt: skip
    stats = concept_stats(torch.from_numpy(out.smooth), torch.from_numpy(out.active))
    summary: dict[str, Any] = {
        "run": str(run_dir),
        "dataset": config.dataset,
        "estimator": config.estimator,
        "seed": config.seed,
        "n_images": len(out.y),
        "n_concepts": int(out.active.shape[1]),
        "test_accuracy_hard": float((out.pred == out.y).mean()),
        "test_accuracy_smooth": float((out.pred_smooth == out.y).mean()),
        **{k: stats[k] for k in STATS},
        "proportions_decided_fraction": spec["decided_fraction"],
        "mean_crispness": spec["mean_crispness"],
        "mean_classes_on": spec["mean_classes_on"],
        "class_specific_fraction": spec["class_specific_fraction"],
        "node": node,
        "image": image,
        "image_label": int(out.y[image]),
        "image_prediction": int(out.pred[image]),
        "image_active_concepts": [int(k) for k in np.flatnonzero(out.active[image])],
        "ablation_off_accuracy": float(ablation["off_all"][node]),
        "ablation_on_accuracy": float(ablation["on_all"][node]),
        "llm_model": llm_model,
        "names": {str(k): v for k, v in sorted(names.items())},
    }
    if align is not None:
        summary["attributes_recovered_fraction"] = align["recovered_fraction"]
        summary["attributes_recovered_fraction_positive"] = align["recovered_fraction_positive"]
        summary["attributes_recovered"] = int(align["recovered"].sum())
        summary["attributes_varying"] = int(align["varies"].sum())
    return summary


# -- tables --------------------------------------------------------------------------------------
def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in r])
    return atomic_write_text(path, buf.getvalue())


def _write_tables(
    folder: Path, rows: list[dict[str, Any]], props: np.ndarray, classes: list[str],
    ablation: dict[str, Any], align: dict[str, Any] | None, attr_names: list[str] | None,
) -> list[Path]:  # fmt: skip
    header = list(rows[0])
    files = [_csv(folder / "nodes.csv", header, [[r[h] for h in header] for r in rows])]
    files.append(_csv(folder / "class_proportions.csv",
                      ["class", *(f"node{k}" for k in range(props.shape[1]))],
                      [[c, *map(float, props[i])] for i, c in enumerate(classes)]))  # fmt: skip
    table = []
    for mode in ("off", "on"):
        for i, k in enumerate(ablation["nodes"]):
            change = ablation[mode][i] - ablation["base"]
            worst = int(np.nanargmax(np.abs(np.nan_to_num(change))))
            table.append([int(k), mode, ablation["base_all"], float(ablation[f"{mode}_all"][i]),
                          float(ablation[f"{mode}_all"][i] - ablation["base_all"]),
                          classes[worst], float(change[worst])])  # fmt: skip
    files.append(_csv(folder / "ablation.csv",
                      ["node", "intervention", "accuracy_before", "accuracy_after", "change",
                       "most_changed_class", "class_accuracy_change"], table))  # fmt: skip
    if align is not None and attr_names is not None:
        files.append(_csv(folder / "alignment.csv",
                          ["attribute", "best_node", "auroc", "polarity", "recovered"],
                          [[a, int(align["best_node"][j]), float(align["best_score"][j]),
                            "+" if align["best_sign"][j] > 0 else "-", bool(align["recovered"][j])]
                           for j, a in enumerate(attr_names)]))  # fmt: skip
    return files


# -- figures -------------------------------------------------------------------------------------
def _draw(
    folder: Path, run_dir: Path, raw: Any, out: Outputs, props: np.ndarray, classes: list[str],
    spec: dict[str, Any], node: int, image: int, ablation: dict[str, Any],
    align: dict[str, Any] | None, attr_names: list[str] | None, rows: list[dict[str, Any]],
    model: torch.nn.Module, top: int,
) -> list[Path]:  # fmt: skip
    from htaf.analysis import concept_plots as P

    # A concept's label: its LLM name, else the true attribute it matches best.
    label = {r["node"]: r["name"] or (f"≈ {r['best_attribute']}" if r.get("best_attribute")
                                      else "") for r in rows}  # fmt: skip
    files = P.proportions_heatmap(folder, props, classes)
    files += P.proportion_histogram(folder, props, spec)
    images = raw.X_test if getattr(raw, "kind", "") == "image" else None
    if images is not None:
        picked = A.top_images(out.z, out.active, node, top)
        files += P.node_images(folder, node, picked, images, out.y, classes, label.get(node, ""))
        linear = isinstance(model.head, torch.nn.Linear)
        weights = model.head.weight.detach().numpy() if linear else None
        files += P.image_concepts(folder, image, images[image], out, classes, weights, label)
    files += P.bottleneck_histogram(folder, out.smooth, _siblings(run_dir))
    files += P.ablation_node(folder, node, ablation, classes)
    files += P.ablation_overall(folder, ablation)
    if align is not None and attr_names is not None:
        files += P.alignment(folder, align, attr_names)
    return files


def _siblings(run_dir: Path) -> dict[str, np.ndarray]:
    """The smooth bottleneck outputs (``activations.npz``) of the experiment's other
    bottlenecks on the same dataset and seed, by estimator."""
    from htaf.experiment import same_cell_runs

    found: dict[str, np.ndarray] = {}
    for path in same_cell_runs(run_dir):
        try:
            other = load_run(path)
            arrays = other.activations()
        except (OSError, ValueError):
            continue  # a half-written or foreign folder: leave it out of the comparison
        if other.config.family == "icbm" and "layer1_smooth" in arrays:
            found[other.config.estimator] = arrays["layer1_smooth"]
    return found


# -- the summary lines ---------------------------------------------------------------------------
def summary_lines(s: dict[str, Any]) -> list[tuple[str, str]]:
    """``(measure, value)`` lines of a concept summary (what :func:`analyze_run` returns, or
    its ``summary.json``): what ``htaf concepts`` prints and the page's table shows."""
    lines = [
        ("test accuracy, binary / smooth concepts",
         f"{s['test_accuracy_hard']:.4f} / {s['test_accuracy_smooth']:.4f}"),
        ("concept outputs within 0.05 of 0 or 1", f"{s['concept_near_binary_05']:.4f}"),
        ("active concepts per image", f"{s['concepts_active_mean']:.2f}"),
        ("dead / always-on concepts", f"{s['concepts_dead']} / {s['concepts_always_on']}"),
        ("class proportions within 0.1 of 0 or 1", f"{s['proportions_decided_fraction']:.4f}"),
        ("class-specific concepts", f"{s['class_specific_fraction']:.4f}"),
    ]  # fmt: skip
    if "attributes_recovered_fraction" in s:
        lines.append(("attributes recovered at AUROC >= 0.9",
                      f"{s['attributes_recovered']} of {s['attributes_varying']} "
                      f"({s['attributes_recovered_fraction']:.1%})"))  # fmt: skip
    return [
        *lines,
        (f"concept {s['node']}: accuracy with it off / on",
         f"{s['ablation_off_accuracy']:.4f} / {s['ablation_on_accuracy']:.4f}"),
        (f"test image {s['image']}: active concepts",
         " ".join(map(str, s["image_active_concepts"])) or "none"),
    ]  # fmt: skip


# -- the page ------------------------------------------------------------------------------------
def _page(folder: Path, summary: dict[str, Any], rows: list[dict[str, Any]],
          figures: list[Path]) -> Path:  # fmt: skip
    from htaf.html_page import figure, html_table, page

    title = f"Concepts of {summary['estimator']} on {summary['dataset']} (seed {summary['seed']})"
    facts = [list(line) for line in summary_lines(summary)]
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>run: {html.escape(summary['run'])}</p>",
             html_table(["measure", "value"], facts)]  # fmt: skip
    for png in (p for p in figures if p.suffix == ".png"):
        parts.append(figure(png, png.stem.replace("_", " "), alt=png.stem))
    header = list(rows[0])
    cells = [[f"{r[h]:.3f}" if isinstance(r[h], float) else str(r[h]) for h in header]
             for r in rows]  # fmt: skip
    parts += ["<h2>Concepts</h2>", html_table(header, cells)]
    return atomic_write_text(folder / "concepts.html", page(title, parts))


def _refresh_report(run_dir: Path) -> None:
    """Rewrite the experiment's report (it links every run's concepts page), if there is one."""
    from htaf.experiment import SUMMARY, experiment_dir
    from htaf.report import write_report

    exp_dir = experiment_dir(run_dir)
    if exp_dir is None or not (exp_dir / SUMMARY).is_file():
        return

    write_report(exp_dir)
