"""Implicit Concept Bottleneck Models (the ``icbm`` family): a backbone, K near-binary concepts,
and a linear classifier on the concepts (:class:`~htaf.families.icbm.model.ICBM`).

    htaf compare --family icbm                                # shapes level 1, 5 rows
    htaf compare --family icbm --dataset cub200 --backbone hf:models/vit --model n_concepts=256
    htaf concepts htaf-runs/compare-.../shapes/htaf/seed0     # the concept analysis

Estimators: any binary estimator is the bottleneck (``htaf``, ``ste``, ``scaled_sigmoid``...);
``relu`` and ``sigmoid`` give the concept-bottleneck baseline, trained continuous and thresholded
after training for its exact-binary (``*_hard``) metrics.

The ``[model]`` options: ``backbone`` (see :mod:`htaf.families.icbm.backbones`),
``n_concepts``, ``head``, ``batch_norm`` and ``norm_scale`` (a BatchNorm on the concept
pre-activations and its initial scale), ``freeze`` and ``unfrozen_blocks``, ``weights`` (a
safetensors file for the backbone), ``cnn_widths`` (``small_cnn``), ``posthoc_threshold``.

Why ``norm_scale = 0.75`` and 128 concepts: HTAF(2, 11) is within 0.05 of 0 or 1 outside
``|z| < 0.137`` and passes almost no gradient beyond ``|z| ~ 0.4``. A BatchNorm that starts at
scale ``s`` puts about ``0.8 * 0.137 / s`` of the pre-activations inside the band (15% at
``s = 0.75``); training pushes most of them out, while enough stay close for the backbone to
learn through them. A larger scale leaves the concepts as binary but the backbone barely
trains through them. A wider bottleneck leaves room for nodes of one attribute each, as a
ResNet's 512 features would, and recovers more of the ground-truth attributes. The runs behind
both choices are in docs/families/icbm.md. Every bottleneck in a grid gets the same
architecture, this scale included.

``backbone = "features:FILE"`` is a backbone whose outputs were computed ahead of time: the
family's data hook (:func:`prepare`) swaps each split's images for the file's rows, and the
model is the concept layer and classifier on them. Labels and ground-truth concepts still come
from the dataset, so the file only holds features (:func:`backbones.load_features`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from htaf.families import DataSpec, Family
from htaf.families.icbm.backbones import build_backbone, freeze, load_features, load_weights
from htaf.families.icbm.backbones import parse_name as parse_backbone
from htaf.families.icbm.model import ICBM, PosthocThreshold, concept_stats

__all__ = ["FAMILY", "ICBM", "ICBMOptions", "PosthocThreshold", "build", "concept_stats", "prepare"]


@dataclass(frozen=True)
class ICBMOptions:
    """The ICBM family's ``[model]`` table."""

    backbone: str = "small_cnn"
    n_concepts: int = 128
    head: Literal["linear", "mlp"] = "linear"
    batch_norm: bool = True
    norm_scale: float = 0.75
    freeze: Literal["auto", "none", "all", "partial"] = "auto"
    unfrozen_blocks: int = 1
    weights: str | None = None
    cnn_widths: tuple[int, ...] = (16, 32, 64)
    posthoc_threshold: float | None = None

    def check(self) -> None:
        parse_backbone(self.backbone)
        if self.n_concepts < 1:
            raise ValueError(f"option 'model.n_concepts' must be >= 1, got {self.n_concepts}")
        if not self.norm_scale > 0:
            raise ValueError(f"option 'model.norm_scale' must be > 0, got {self.norm_scale}")
        if self.unfrozen_blocks < 1:
            raise ValueError(
                f"option 'model.unfrozen_blocks' must be >= 1, got {self.unfrozen_blocks}"
            )
        if not self.cnn_widths or min(self.cnn_widths) <= 0:
            raise ValueError(f"option 'model.cnn_widths' must be positive, got {self.cnn_widths}")

    def freeze_mode(self) -> str:
        """``auto`` resolved: backbones trained from scratch train, pretrained ones freeze."""
        if self.freeze != "auto":
            return self.freeze
        kind = parse_backbone(self.backbone)[0]
        return "none" if kind in ("small_cnn", "identity", "features") else "all"


def build(
    options: ICBMOptions, spec: DataSpec, estimator: str, params: Mapping[str, float]
) -> ICBM:
    """Backbone (weights loaded, frozen as asked) -> concepts -> classifier."""
    backbone = build_backbone(
        options.backbone, spec.input_shape, normalize=spec.normalize, cnn_widths=options.cnn_widths
    )
    if options.weights is not None:
        load_weights(backbone, options.weights, options.backbone)
    freeze(backbone, options.freeze_mode(), options.unfrozen_blocks)
    return ICBM(
        backbone, options.n_concepts, spec.n_out, estimator, options.head,
        batch_norm=options.batch_norm, norm_scale=options.norm_scale,
        posthoc_threshold=options.posthoc_threshold, **params,
    )  # fmt: skip


def prepare(options: ICBMOptions, dataset: Any) -> Any:
    """The data the model sees: ``features:FILE`` swaps every split's inputs for the file's rows
    (a table of features); any other backbone takes the dataset as it is."""
    kind, path = parse_backbone(options.backbone)
    if kind != "features":
        return dataset
    rows = {s: len(getattr(dataset, f"y_{s}")) for s in ("train", "val", "test")}
    feats = load_features(path, rows)
    width = feats["train"].shape[1]
    return dataclasses.replace(
        dataset, X_train=feats["train"], X_val=feats["val"], X_test=feats["test"], kind="table",
        normalize=None, feature_names=[f"feature{i}" for i in range(width)],
        meta={**dataset.meta, "features_file": path, "input_kind": dataset.kind},
    )  # fmt: skip


FAMILY = Family(
    name="icbm",
    description="Implicit Concept Bottleneck Model: backbone -> near-binary concepts -> linear",
    options=ICBMOptions,
    build=build,
    prepare=prepare,
    kinds=("image", "table"),
    # shapes at difficulty 1: the lowest level whose rows differ by more than the seed spread
    # (`htaf study icbm-difficulty`; the measurements are in the README's ICBM section); at
    # level 0 every row is near 100%, too close to tell the bottlenecks apart.
    compare={
        "dataset": "shapes",
        "data_options": {"difficulty": 1},
        "epochs": 10,
        "lr": 3e-3,
        "batch_size": 128,
    },
    estimators=("htaf", "ste", "scaled_sigmoid", "relu", "sigmoid"),
    jobs=2,
)
