"""The dataset registry: ``load(name)`` and ``available()``.

A source is a function ``loader(ctx, **options) -> Table`` registered under a name with
``@register``; its keyword-only parameters are the options ``load`` accepts for it. Names of
the form ``csv:PATH`` load any user CSV (``target=`` required).
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .csvfile import load_csv
from .dataset import DataError, Dataset
from .preprocess import Table, build


@dataclass(frozen=True)
class Ctx:
    """What every loader may need besides its own options."""

    data_dir: str | Path | None
    download: bool
    seed: int  # split_seed; generated datasets (teacher) draw from it too


@dataclass(frozen=True)
class Source:
    name: str
    task: str
    description: str
    source: str
    files: tuple[str, ...]
    loader: Callable[..., Table]

    def options(self) -> dict[str, Any]:
        return _kwonly(self.loader)


def _kwonly(fn: Callable[..., Any]) -> dict[str, Any]:
    """A loader's options are its keyword-only parameters (with their defaults)."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}


REGISTRY: dict[str, Source] = {}


def register(
    name: str, *, task: str, description: str, source: str, files: tuple[str, ...] = ()
) -> Callable[[Callable[..., Table]], Callable[..., Table]]:
    """Decorator adding ``loader`` to the registry under ``name``."""

    def deco(loader: Callable[..., Table]) -> Callable[..., Table]:
        if name in REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        REGISTRY[name] = Source(name, task, description, source, files, loader)
        return loader

    return deco


def available() -> list[dict[str, Any]]:
    """One dict per registered dataset: name, task, description, source, files, options."""
    return [
        {
            "name": s.name,
            "task": s.task,
            "description": s.description,
            "source": s.source,
            "files": list(s.files),
            "options": s.options(),
        }
        for s in REGISTRY.values()
    ]


def _check_options(name: str, allowed: dict[str, Any], options: dict[str, Any]) -> None:
    extra = sorted(set(options) - set(allowed))
    if extra:
        known = ", ".join(allowed) or "none"
        raise DataError(f"dataset {name!r} has no option(s) {extra}; its options: {known}")


def load(
    name: str,
    *,
    data_dir: str | Path | None = None,
    target: str | None = None,
    impute: str | None = None,
    split_seed: int = 0,
    val_size: float = 0.15,
    test_size: float = 0.2,
    download: bool = False,
    **options: Any,
) -> Dataset:
    """Load dataset ``name`` (see ``available()``, or ``"csv:PATH"`` with ``target=``).

    Files are looked for in ``data_dir``, then ``$HTAF_DATA``, then ``./data``. ``impute``:
    None (missing cells are errors), "mean" (train mean / most frequent) or "drop" (drop rows).
    Splits are deterministic in ``split_seed`` and stratified for classification.
    """
    seed_ok = isinstance(split_seed, numbers.Integral) and not isinstance(split_seed, bool)
    if not seed_ok or split_seed < 0:
        raise DataError(f"split_seed must be an integer >= 0, not {split_seed!r}")
    if name.startswith("csv:"):
        csv_options = {k: v for k, v in _kwonly(load_csv).items() if k != "target"}
        _check_options(name, csv_options, options)
        table = load_csv(name[4:], target=target, **options)
    else:
        if name not in REGISTRY:
            close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise DataError(
                f"unknown dataset {name!r}{hint} (available: {', '.join(REGISTRY)}, csv:PATH)"
            )
        src = REGISTRY[name]
        _check_options(name, src.options(), options)
        table = src.loader(Ctx(data_dir, download, split_seed), **options)
        if target not in (None, table.target):
            raise DataError(
                f"dataset {name!r} has the fixed target {table.target!r}, not {target!r}"
            )
    return build(
        name, table, impute=impute, split_seed=split_seed, val_size=val_size, test_size=test_size
    )
