"""The concept analysis, on arrays: what the concepts of a trained ICBM do on a set of images.

Inputs are the test images' concept pre-activations ``z`` ``(n, K)``, which concepts are active
(``active``, the bottleneck's exact binary forward, ``(n, K)`` bool), the labels ``y`` and,
where the data has them, the true attributes ``(n, A)``. Reading a run folder and drawing
figures are in ``htaf.analysis.concepts``.

* :func:`class_proportions`: ``P[c, k]``, the fraction of class-``c`` images that activate
  concept ``k``; :func:`specificity` summarises how class-specific the concepts are;
* :func:`top_images`: for one concept, the images it is most surely on / off for;
* :func:`ablate`: switch one concept off (0) or force it on (1) in the binary model, and the
  change in accuracy per class;
* :func:`alignment`: AUROC of every concept for every true attribute, each attribute's best
  concept, and the fraction of attributes some concept recovers at AUROC >= 0.9.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "RECOVERED_AUROC",
    "ablate",
    "alignment",
    "class_proportions",
    "node_table",
    "specificity",
    "top_images",
]

#: An attribute counts as recovered when some concept separates it at this AUROC or better.
RECOVERED_AUROC = 0.9
#: A proportion counts as decided when it is within this of 0 or 1.
DECIDED = 0.1


def class_proportions(active: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """``P[c, k]``: fraction of the class-``c`` images on which concept ``k`` is active (NaN
    for a class without images)."""
    active = np.asarray(active, dtype=np.float64)
    y = np.asarray(y)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    sums = np.zeros((n_classes, active.shape[1]))
    np.add.at(sums, y, active)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def specificity(props: np.ndarray) -> dict[str, Any]:
    """How class-specific the concepts are, from the proportions ``P`` ``(C, K)``.

    Per concept ``k`` (arrays of length K):

    * ``crispness``: mean over classes of ``|2 P[c, k] - 1|``: 1 when every class either
      always or never activates it, 0 when each class is split half and half;
    * ``classes_on``: classes with ``P >= 0.5`` (the naming prompt's Group A);
    * ``selectivity``: ``max_c P[c, k]`` minus the mean of the other classes' proportions.

    Summary numbers: ``decided_fraction`` (proportions within 0.1 of 0 or 1),
    ``mean_crispness``, ``mean_classes_on``, and ``class_specific_fraction``: concepts with
    crispness >= 0.8 that some but not every class turns on.
    """
    P = np.asarray(props, dtype=np.float64)
    P = P[~np.isnan(P).any(axis=1)]  # classes without test images say nothing
    C = len(P)
    crisp = np.abs(2 * P - 1).mean(axis=0)
    on = (P >= 0.5).sum(axis=0)
    top = P.max(axis=0)
    rest = (P.sum(axis=0) - top) / max(C - 1, 1)
    decided = np.minimum(P, 1 - P) <= DECIDED
    specific = (crisp >= 0.8) & (on > 0) & (on < C)
    return {
        "crispness": crisp,
        "classes_on": on,
        "selectivity": top - rest,
        "decided_fraction": float(decided.mean()) if P.size else float("nan"),
        "mean_crispness": float(crisp.mean()) if P.size else float("nan"),
        "mean_classes_on": float(on.mean()) if P.size else float("nan"),
        "class_specific_fraction": float(specific.mean()) if P.size else float("nan"),
    }


def top_images(z: np.ndarray, active: np.ndarray, node: int, k: int = 16) -> dict[str, np.ndarray]:
    """Indices of the ``k`` images the concept is most surely on for (active, highest ``z``
    first) and most surely off for (inactive, lowest ``z`` first)."""
    score, on = np.asarray(z)[:, node], np.asarray(active)[:, node].astype(bool)
    idx = np.arange(len(score))
    ones = idx[on][np.argsort(-score[on], kind="stable")][:k]
    zeros = idx[~on][np.argsort(score[~on], kind="stable")][:k]
    return {"on": ones, "off": zeros}


def _per_class_accuracy(pred: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    hits = np.bincount(y, weights=(pred == y).astype(np.float64), minlength=n_classes)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / counts


def ablate(
    classify: Callable[[np.ndarray], np.ndarray],
    concepts: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    nodes: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Interventions on the binary concepts: each concept switched off (set to 0) and forced
    on (set to 1) for every image, the rest unchanged.

    ``classify`` maps concepts ``(n, K)`` to logits ``(n, C)``. Returns ``base`` (per-class
    accuracy ``(C,)``), ``off`` and ``on`` (per-class accuracy, ``(len(nodes), C)``), and the
    overall accuracies ``base_all``, ``off_all``, ``on_all``.
    """
    c = np.asarray(concepts, dtype=np.float32)
    y = np.asarray(y)
    nodes = list(range(c.shape[1])) if nodes is None else list(nodes)
    base_pred = classify(c).argmax(axis=1)
    out: dict[str, Any] = {
        "nodes": np.asarray(nodes),
        "base": _per_class_accuracy(base_pred, y, n_classes),
        "base_all": float((base_pred == y).mean()) if len(y) else float("nan"),
    }
    for name, value in (("off", 0.0), ("on", 1.0)):
        per_class, overall = [], []
        for k in nodes:
            edited = c.copy()
            edited[:, k] = value
            pred = classify(edited).argmax(axis=1)
            per_class.append(_per_class_accuracy(pred, y, n_classes))
            overall.append((pred == y).mean() if len(y) else np.nan)
        out[name] = np.array(per_class).reshape(len(nodes), n_classes)
        out[f"{name}_all"] = np.array(overall, dtype=np.float64)
    return out


def alignment(z: np.ndarray, attributes: np.ndarray) -> dict[str, Any]:
    """How well each concept's score ``z[:, k]`` separates each true attribute.

    ``auroc[k, a]``: the AUROC of ``z[:, k]`` for attribute ``a`` (rank formula with average
    ranks for ties; NaN for an attribute that is constant on these images). A concept may
    carry an attribute either way round (on for it, or on for its absence), so a pair scores
    ``max(AUROC, 1 - AUROC)``; ``sign`` is +1 or -1 accordingly. Per attribute: ``best_node``,
    ``best_score``, ``best_sign``; ``recovered``: ``best_score >= 0.9``. Summary:
    ``recovered_fraction`` (over the attributes that vary), and the same counting only
    concepts that are on for the attribute (``recovered_fraction_positive``).
    """
    z = np.asarray(z, dtype=np.float64)
    A = np.asarray(attributes).astype(np.float64)
    n = len(z)
    ranks = rankdata(z, axis=0)  # average ranks for ties
    pos = A.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = (ranks.T @ A - pos * (pos + 1) / 2) / (pos * (n - pos))
    auroc[:, (pos == 0) | (pos == n)] = np.nan
    score = np.maximum(auroc, 1 - auroc)
    varies = ~np.isnan(auroc).all(axis=0)
    filled = np.where(np.isnan(score), -np.inf, score)
    best = filled.argmax(axis=0)
    best_score = np.where(varies, filled[best, np.arange(A.shape[1])], np.nan)
    best_sign = np.where(auroc[best, np.arange(A.shape[1])] >= 0.5, 1, -1)
    positive = np.where(np.isnan(auroc), -np.inf, auroc).max(axis=0)
    recovered = best_score >= RECOVERED_AUROC
    n_vary = int(varies.sum())
    return {
        "auroc": auroc,
        "best_node": best,
        "best_score": best_score,
        "best_sign": best_sign,
        "recovered": recovered,
        "varies": varies,
        "recovered_fraction": float(recovered[varies].mean()) if n_vary else float("nan"),
        "recovered_fraction_positive": (
            float((positive[varies] >= RECOVERED_AUROC).mean()) if n_vary else float("nan")
        ),
    }


def node_table(
    props: np.ndarray,
    active: np.ndarray,
    spec: dict[str, Any],
    class_names: Sequence[str],
    align: dict[str, Any] | None = None,
    attribute_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per concept: activation rate, class-specificity, the classes that turn it on
    most, and (with ``align``) the attribute it matches best."""
    active = np.asarray(active, dtype=np.float64)
    rows = []
    for k in range(active.shape[1]):
        order = np.argsort(-np.nan_to_num(props[:, k], nan=-1.0), kind="stable")
        row: dict[str, Any] = {
            "node": k,
            "active_rate": float(active[:, k].mean()) if len(active) else float("nan"),
            "classes_on": int(spec["classes_on"][k]),
            "crispness": float(spec["crispness"][k]),
            "selectivity": float(spec["selectivity"][k]),
            "top_classes": "; ".join(class_names[c] for c in order[:3]),
        }
        if align is not None and attribute_names is not None:
            auroc = align["auroc"][k]
            score = np.maximum(auroc, 1 - auroc)
            if np.isnan(score).all():
                row.update(best_attribute="", attribute_auroc=float("nan"))
            else:
                a = int(np.nanargmax(score))
                prefix = "" if auroc[a] >= 0.5 else "not "
                row.update(best_attribute=prefix + attribute_names[a],
                           attribute_auroc=float(score[a]))  # fmt: skip
        rows.append(row)
    return rows
