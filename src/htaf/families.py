"""Model families: ``RunConfig.task`` names the family that turns a config into a model.

    model = build_model(config, dataset)      # config.task == "dhn" -> htaf.dhn.DHN

A family is a builder ``(config, dataset) -> nn.Module`` registered under a name. The model
must map a float32 batch ``(n, n_features)`` to logits ``(n, n_out)`` (see :func:`output_size`);
the engine picks the loss from ``dataset.task``. Families for BNNs, SNNs, ICBMs and the convex
threshold networks plug in with :func:`register_family`; builders import their module lazily
so that ``htaf.families`` stays cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import nn

from htaf.config import ConfigError

if TYPE_CHECKING:
    from htaf.config import RunConfig

FamilyBuilder = Callable[["RunConfig", Any], nn.Module]

_FAMILIES: dict[str, FamilyBuilder] = {}


def register_family(name: str, builder: FamilyBuilder | None = None) -> Any:
    """Register ``builder`` under ``name``; usable as ``@register_family("dhn")`` too."""

    def deco(fn: FamilyBuilder) -> FamilyBuilder:
        if not name or name in _FAMILIES:
            raise ValueError(f"model family {name!r} is empty or already registered")
        _FAMILIES[name] = fn
        return fn

    return deco(builder) if builder is not None else deco


def family_names() -> list[str]:
    """Registered family names, sorted."""
    return sorted(_FAMILIES)


def output_size(dataset: Any) -> int:
    """Logits a model needs: 1 for binary classification and regression, K for K classes."""
    if dataset.task == "multiclass":
        return int(dataset.n_classes)
    if dataset.task in ("binary", "regression"):
        return 1
    raise ValueError(f"unknown dataset task {dataset.task!r}")


def build_model(config: RunConfig, dataset: Any) -> nn.Module:
    """Build the model of family ``config.task`` for ``dataset``.

    Raises ``ConfigError`` (a ``ValueError``) naming the registered families for an unknown
    ``task``; builders raise ``ValueError`` for bad estimators or parameters.
    """
    if config.task not in _FAMILIES:
        raise ConfigError(
            f"unknown model family (config key 'task') {config.task!r} "
            f"(available: {', '.join(family_names())})"
        )
    return _FAMILIES[config.task](config, dataset)


@register_family("dhn")
def _build_dhn(config: RunConfig, dataset: Any) -> nn.Module:
    """A Deep Heaviside Network: an MLP with one step activation per hidden layer."""
    from htaf.dhn import DHN

    return DHN(
        dataset.n_features,
        output_size(dataset),
        list(config.widths),
        config.estimator,
        batch_norm=config.batch_norm,
        dropout=config.dropout,
        **config.estimator_params,
    )
