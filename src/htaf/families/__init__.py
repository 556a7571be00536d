"""Model families: ``RunConfig.family`` names the family that turns a config into a model.

    model = build_model(config, dataset)      # config.family == "dhn" -> htaf.families.dhn.DHN

Each family lives in its own module here (``dhn``, ``bnn``, ``snn``, ``icbm``, ``convex``) and
defines ``FAMILY``, a :class:`Family`: its options (a dataclass, filled from the config's
``model`` table), a builder ``(options, spec, estimator, estimator_params) -> nn.Module`` that
sees only a :class:`DataSpec` (never the data, the engine, the store or the CLI), and the
defaults ``htaf compare --family NAME`` starts from. Modules are imported on first use (also
as attributes: ``htaf.families.dhn.DHN`` after a bare ``import htaf``), so ``import htaf``
stays cheap.

The model a builder returns maps a float batch ``(n, *spec.input_shape)`` to logits
``(n, spec.n_out)``. It may offer the engine more (``constrain_``, ``binary_parameters``,
``epoch_stats``, ``calibrate``, ``eval_stats``, ``eval_arrays``, ``fit_closed_form``,
``activation_modules``, ``summary``): the contract is written down, with its no-op defaults,
in ``htaf.families.hooks``, and the engine calls these methods only through it.

A family may also transform the loaded data before its model sees it (``Family.prepare``,
applied by :func:`prepare_data` wherever a run loads its data), e.g. ICBM's precomputed
backbone features replace the images.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from htaf import _lazy
from htaf.config import ConfigError
from htaf.families.options import defaults, parse_options

#: Registered families and the module that defines each one's ``FAMILY``.
MODULES: dict[str, str] = {
    "bnn": "htaf.families.bnn",
    "convex": "htaf.families.convex",
    "dhn": "htaf.families.dhn",
    "icbm": "htaf.families.icbm",
    "snn": "htaf.families.snn",
}
#: The families htaf itself defines; any other was registered at run time (register_family).
BUILTIN = frozenset(MODULES)


@dataclass(frozen=True)
class DataSpec:
    """What a family may know about the data: its shape and the task, not the data."""

    kind: str  # "table" | "image" | "sequence"
    input_shape: tuple[int, ...]
    n_out: int  # logits: 1 for binary classification and regression, K for K classes
    task: str  # "binary" | "multiclass" | "regression"
    n_concepts: int | None = None  # ground-truth attributes, where the data has them
    #: Per-channel ``{"mean": [...], "std": [...]}`` the float batch applies to ``x / 255``
    #: (``Dataset.normalize``): a model that needs raw intensities (a spike encoder) undoes it.
    normalize: Mapping[str, list[float]] | None = None
    #: ``(min, max)`` of the inputs before that normalisation, where known without reading
    #: lazily stored data: ``(0, 1)`` for uint8 images (as ``x / 255``), the training split's
    #: range for in-memory float arrays, else None.
    input_range: tuple[float, float] | None = None


Builder = Callable[[Any, DataSpec, str, Mapping[str, float]], nn.Module]


@dataclass(frozen=True)
class Family:
    """A model family: its options, its builder and its ``htaf compare`` defaults."""

    name: str
    description: str
    options: type  # a dataclass; see htaf.families.options
    build: Builder
    kinds: tuple[str, ...] = ("table", "image", "sequence")  # data kinds it accepts
    #: RunConfig fields ``htaf compare --family NAME`` starts from (dataset, lr, epochs...);
    #: ``data_options`` apply only while the grid's dataset is this ``dataset``.
    compare: Mapping[str, Any] = field(default_factory=dict)
    #: The estimators ``htaf compare --family NAME`` compares by default.
    estimators: tuple[str, ...] = ("htaf",)
    #: ``(options, dataset) -> dataset``: the data the model sees, if not the loaded one.
    prepare: Callable[[Any, Any], Any] | None = None
    #: Dataset tasks it accepts.
    tasks: tuple[str, ...] = ("binary", "multiclass", "regression")
    #: Worker processes ``htaf compare --family NAME`` runs at once unless told (``--jobs``):
    #: for small convolutional networks, two single-threaded runs on two cores finish a grid
    #: sooner than one run on two threads (a small network cannot keep two threads busy).
    jobs: int = 1
    #: The metric its tables and plots lead with (``"auroc"``, ``"accuracy"``, ``"rmse"``...);
    #: None: accuracy for classification, RMSE for regression.
    metric: str | None = None
    #: Options added after runs were saved without them, with the value those runs used: a
    #: saved run whose ``model_options`` lacks one is rebuilt with it, not with the new default.
    legacy_options: Mapping[str, Any] = field(default_factory=dict)


def family_names() -> list[str]:
    """Registered family names, sorted."""
    return sorted(MODULES)


def register_family(name: str, module: str) -> None:
    """Register a family defined as ``FAMILY`` in ``module`` (imported on first use).

    ``htaf compare --jobs N`` and Ray workers register it again in their own processes, so
    ``module`` must be importable there: one defined in ``__main__`` (a notebook, a script)
    is refused for them, and runs with ``jobs=1``."""
    if not name or name in MODULES:
        raise ValueError(f"model family {name!r} is empty or already registered")
    MODULES[name] = module


def get_family(name: str) -> Family:
    """The :class:`Family` registered as ``name``; ``ConfigError`` naming the others if none."""
    if name not in MODULES:
        raise ConfigError(
            f"unknown model family (config key 'family') {name!r} "
            f"(available: {', '.join(family_names())})"
        )
    return importlib.import_module(MODULES[name]).FAMILY


def model_options(family: str, table: Mapping[str, Any] | None) -> Any:
    """The family's options dataclass filled from ``table``; errors name ``model.KEY``."""
    fam = get_family(family)
    return parse_options(fam.options, table, fam.name)


def option_defaults(family: str) -> dict[str, Any]:
    """The family's default model options, as plain data."""
    return defaults(get_family(family).options)


def output_size(dataset: Any) -> int:
    """Logits a model needs: 1 for binary classification and regression, K for K classes."""
    if dataset.task == "multiclass":
        return int(dataset.n_classes)
    if dataset.task in ("binary", "regression"):
        return 1
    raise ValueError(f"unknown dataset task {dataset.task!r}")


def input_range(dataset: Any) -> tuple[float, float] | None:
    """:attr:`DataSpec.input_range` of a dataset (one pass over in-memory float inputs)."""
    X = getattr(dataset, "X_train", None)
    dtype = getattr(X, "dtype", None)
    if dtype in (np.uint8, torch.uint8):
        return (0.0, 1.0)
    if isinstance(X, np.ndarray) and X.size and np.issubdtype(X.dtype, np.floating):
        return (float(np.min(X)), float(np.max(X)))
    return None


def data_spec(dataset: Any) -> DataSpec:
    """The :class:`DataSpec` of a ``htaf.data.Dataset``."""
    names = getattr(dataset, "concept_names", None)
    normalize = getattr(dataset, "normalize", None)
    return DataSpec(
        kind=getattr(dataset, "kind", "table"),
        input_shape=tuple(dataset.input_shape),
        n_out=output_size(dataset),
        task=dataset.task,
        n_concepts=len(names) if names else None,
        normalize=dict(normalize) if normalize else None,
        input_range=input_range(dataset),
    )


def prepare_data(config: Any, dataset: Any, *, options: Any = None) -> Any:
    """The dataset as family ``config.family`` feeds it to its model (``Family.prepare``).
    ``options``: the already parsed ``model_options(config.family, config.model)``."""
    fam = get_family(config.family)
    if fam.prepare is None:
        return dataset
    if options is None:
        options = parse_options(fam.options, config.model, fam.name)
    return fam.prepare(options, dataset)


def check_data(family: str, dataset: Any) -> DataSpec:
    """The dataset's :class:`DataSpec`; ``ConfigError`` if ``family`` does not take its kind
    (table, image, sequence) or its task (binary, multiclass, regression)."""
    fam = get_family(family)
    spec = data_spec(dataset)
    if spec.kind not in fam.kinds:
        raise ConfigError(
            f"model family {fam.name!r} takes {' or '.join(fam.kinds)} data; dataset "
            f"{dataset.name!r} is {spec.kind} data"
        )
    if spec.task not in fam.tasks:
        raise ConfigError(
            f"model family {fam.name!r} fits {' or '.join(fam.tasks)} tasks; dataset "
            f"{dataset.name!r} is a {spec.task} task"
        )
    return spec


def build_model(config: Any, dataset: Any, *, options: Any = None) -> nn.Module:
    """Build the model of family ``config.family`` for ``dataset`` from ``config.model``
    (``options``: the already parsed ``model_options(config.family, config.model)``).

    Raises ``ConfigError`` (a ``ValueError``) for an unknown family, a bad option, or data of
    a kind or task the family does not take; builders raise ``ValueError`` for bad estimators.
    """
    fam = get_family(config.family)
    if options is None:
        options = parse_options(fam.options, config.model, fam.name)
    spec = check_data(config.family, dataset)
    return fam.build(options, spec, config.estimator, dict(config.estimator_params))


__all__ = [
    "DataSpec",
    "Family",
    "build_model",
    "check_data",
    "data_spec",
    "family_names",
    "get_family",
    "model_options",
    "option_defaults",
    "output_size",
    "prepare_data",
    "register_family",
]


def __getattr__(name: str) -> Any:
    # htaf.families.dhn (and every family module) imports on first access.
    return _lazy.submodule(__name__, name)
