"""The dataset registry: ``load(name)``, ``available()`` and ``verify(name)``.

A source is a function ``loader(ctx, **options)`` registered under a name with ``@register``;
its keyword-only parameters are the options ``load`` accepts for it. A table source
(``kind="table"``) returns a ``Table`` of raw columns, which ``preprocess.build`` checks, splits
and scales. An image or sequence source returns a finished ``Dataset`` (made with
``arrays.build_dataset``, which splits with ``ctx.seed``/``ctx.val_size``/``ctx.test_size``).
``official`` lists the files the publisher distributes, with their published checksums, for
``verify`` and downloads. Names of the form ``csv:PATH`` load any user CSV (``target=``
required).
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
from .files import search_dirs
from .official import Official, verify_file, where_to_put
from .preprocess import Table, build

KINDS = ("table", "image", "sequence")


@dataclass(frozen=True)
class Ctx:
    """What every loader may need besides its own options."""

    data_dir: str | Path | None
    download: bool
    seed: int  # split_seed; generated datasets (teacher, shapes) draw from it too
    val_size: float = 0.15
    test_size: float = 0.2  # only for sets without an official test split


@dataclass(frozen=True)
class Source:
    name: str
    task: str
    description: str
    source: str
    files: tuple[str, ...]
    loader: Callable[..., Table | Dataset]
    kind: str = "table"
    official: tuple[Official, ...] = ()

    def options(self) -> dict[str, Any]:
        return _kwonly(self.loader)


def _kwonly(fn: Callable[..., Any]) -> dict[str, Any]:
    """A loader's options are its keyword-only parameters (with their defaults)."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}


REGISTRY: dict[str, Source] = {}
#: The modules of ``htaf.data`` whose loaders fill :data:`REGISTRY`. They are imported on the
#: first lookup, not with the package: a DataLoader worker that unpickles a dataset imports
#: ``htaf.data`` and must not pay for every loader's dependencies (scikit-learn, pandas).
LOADER_MODULES = (
    "bundled", "cifar", "cub", "heloc", "mnist", "shapes", "telco", "tiny_imagenet", "uci",
    "events", "neuromorphic",
)  # fmt: skip


def registered() -> dict[str, Source]:
    """:data:`REGISTRY` with every loader of :data:`LOADER_MODULES` imported."""
    import importlib

    for module in LOADER_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return REGISTRY


def register(
    name: str,
    *,
    task: str,
    description: str,
    source: str,
    files: tuple[str, ...] = (),
    kind: str = "table",
    official: tuple[Official, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding ``loader`` to the registry under ``name``.

    ``kind="table"`` loaders return a ``Table``; "image" and "sequence" loaders a ``Dataset``.
    ``files`` is what the listing shows; ``official`` what ``verify`` checks.
    """
    if kind not in KINDS:
        raise ValueError(f"dataset {name!r}: kind must be one of {KINDS}, not {kind!r}")

    def deco(loader: Callable[..., Any]) -> Callable[..., Any]:
        if name in REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        REGISTRY[name] = Source(name, task, description, source, files, loader, kind, official)
        return loader

    return deco


def available() -> list[dict[str, Any]]:
    """One dict per registered dataset: name, kind, task, description, source, files, options."""
    return [
        {
            "name": s.name,
            "kind": s.kind,
            "task": s.task,
            "description": s.description,
            "source": s.source,
            "files": list(s.files),
            "options": s.options(),
        }
        for s in sorted(registered().values(), key=lambda s: KINDS.index(s.kind))  # stable
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

    Files are looked for in ``data_dir``, then ``$HTAF_DATA``, then ``./data``. ``impute``
    (tables only): None (missing cells are errors), "mean" (train mean / most frequent) or
    "drop" (drop rows). Splits are deterministic in ``split_seed`` and stratified for
    classification. ``test_size`` applies to sets without an official test split; sets with
    one keep it (any other ``test_size`` than the default is an error) and carve validation
    (``val_size`` of it) out of their official training split.
    """
    seed_ok = isinstance(split_seed, numbers.Integral) and not isinstance(split_seed, bool)
    if not seed_ok or split_seed < 0:
        raise DataError(f"split_seed must be an integer >= 0, not {split_seed!r}")
    if name.startswith("csv:"):
        csv_options = {k: v for k, v in _kwonly(load_csv).items() if k != "target"}
        _check_options(name, csv_options, options)
        table = load_csv(name[4:], target=target, **options)
    else:
        src = _source(name)
        _check_options(name, src.options(), options)
        ctx = Ctx(data_dir, download, split_seed, val_size, test_size)
        out = src.loader(ctx, **options)
        if isinstance(out, Dataset):  # image and sequence sources split for themselves
            for key, value in (("target", target), ("impute", impute)):
                if value is not None:
                    raise DataError(f"dataset {name!r} is not a table; {key} does not apply")
            return out
        table = out
        if target not in (None, table.target):
            raise DataError(
                f"dataset {name!r} has the fixed target {table.target!r}, not {target!r}"
            )
    return build(
        name,
        table,
        impute=impute,
        split_seed=split_seed,
        val_size=val_size,
        test_size=test_size,
    )


def _source(name: str) -> Source:
    """The registered source ``name``, or a DataError suggesting close names."""
    if name not in registered():
        close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(
            f"unknown dataset {name!r}{hint} (available: {', '.join(REGISTRY)}, csv:PATH)"
        )
    return REGISTRY[name]


def verify(name: str, data_dir: str | Path | None = None) -> list[str]:
    """Check the local copies of ``name``'s official files against their published checksums.

    Returns one report line per file; a missing file or a checksum mismatch is a DataError
    that names the file and says where the official one goes.
    """
    src = _source(name)
    if not src.official:
        what = "generated or bundled" if not src.files else "no published checksum recorded"
        return [f"{name}: {what}; nothing to verify"]
    dirs = search_dirs(data_dir)
    lines = []
    for off in src.official:
        path = off.find(dirs)
        if path is None:
            missing = (
                f"dataset {name!r}: {off.name!r} not found (checksums are published for the "
                "files as distributed, not for unpacked copies). "
            )
            raise DataError(missing + where_to_put(name, off, dirs))
        lines.append(verify_file(name, path, off))
    return lines
