"""A run folder: its layout (the one place that names its files) and :class:`Run`, read back.

    run = htaf.load_run("htaf-runs/compare-.../breast_cancer/htaf/seed0")
    run.config, run.metrics, run.history       # RunConfig, metrics.json, a row per epoch
    data = run.dataset()                       # the data as the model sees it
    model = run.model()                        # trained weights, exact binary forward
    model = run.model(hard=False)              # the smooth forward

Every family's run has the same folder (``htaf.train.run_one`` writes it; every file
atomically; under torchrun, by rank 0):

* ``config.json``: the exact config (top-level keys, as ``RunConfig.to_dict()``) plus
  ``versions`` (htaf, torch, python), ``model_options`` (the family's options with every
  default filled in) and ``dataset_meta``;
* ``history.jsonl``: one JSON line per epoch (rewritten after every epoch);
* ``checkpoint.pt``: the resumable state (``weights_only``-loadable);
* ``model.safetensors``: the final weights;
* ``metrics.json``: a flat dict ``SPLIT_METRIC_MODE`` (``test_auroc_hard``, ...), plus
  ``train_time_s``, ``epochs_run``, ``best_epoch`` and the test-set activation statistics
  ``near_binary_05``, ``near_binary_01``, ``entropy``, ``saturation`` (smooth forward) and
  their ``*_hard`` counterparts, the model's own test statistics
  (``test_{NAME}_{hard|smooth}``, see ``htaf.families``) and, for a closed-form model, its
  solve's certificate (``solver_{KEY}``: ``solver_gap``, ``solver_optimal``, ...);
* ``activations.npz``: per hidden layer a sample of the test-set outputs in the unsigned space,
  keys ``layer1_smooth``, ``layer1_hard``, ...;
* ``model_arrays.npz``: the model's ``eval_arrays`` of the first test samples with the exact
  forward (spike rasters, membrane traces; see ``htaf.families``), when the model has them;
* ``model_summary.txt``: the model's ``summary()`` (layers, parameters, memory), where it has
  one;
* ``plots/``: the model's own figures (``htaf train``).

Non-finite numbers are written as JSON ``null``. Loading never executes code: JSON, ``npz``
without pickles and safetensors only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from htaf.config import KEY_ALIASES, ConfigError, RunConfig

CONFIG = "config.json"
HISTORY = "history.jsonl"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.safetensors"
METRICS = "metrics.json"
ACTIVATIONS = "activations.npz"
MODEL_ARRAYS = "model_arrays.npz"
SUMMARY = "model_summary.txt"
PLOTS = "plots"
#: Every file a run writes; a run that does not continue a checkpoint removes stale ones first.
RUN_FILES = (CONFIG, HISTORY, CHECKPOINT, WEIGHTS, METRICS, ACTIVATIONS, MODEL_ARRAYS, SUMMARY)
#: Files that mark a folder as holding a run (a fresh ``train_one`` refuses to overwrite them).
MARKERS = (CHECKPOINT, METRICS)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas is a dependency; a broken install lacks it
        raise ImportError("htaf's DataFrames need pandas: pip install pandas") from None
    return pandas


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level, keys joined by ``/``: ``{"grad_norm": {"layer1": x}}`` ->
    ``{"grad_norm/layer1": x}``."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """The ``RunConfig`` in a ``config.json`` dict (the keys it adds, like ``versions``,
    dropped; one written by an older version, with ``task`` for ``family``, read too)."""
    fields = {f.name for f in dataclasses.fields(RunConfig)} | set(KEY_ALIASES)
    return RunConfig.from_dict({k: v for k, v in data.items() if k in fields})


def dataset_key(config: RunConfig) -> str:
    """The config keys that decide the loaded dataset, as one string: equal keys, equal data."""
    return json.dumps([config.dataset, config.data_dir, config.target, config.impute,
                       config.split_seed, config.data_options], sort_keys=True)  # fmt: skip


def load_dataset(config: RunConfig) -> Any:
    """``htaf.data.load`` with the config's dataset options."""
    from htaf import data

    return data.load(
        config.dataset,
        data_dir=config.data_dir,
        target=config.target,
        impute=config.impute,
        **config.data_options,
        split_seed=config.split_seed,
    )


def read_config(run_dir: str | Path) -> RunConfig:
    """The ``RunConfig`` saved in ``run_dir/config.json``, finished run or not."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{Path(run_dir)} is not a run folder: no {CONFIG}")
    return _config(_read_json(path), path)


def _config(saved: Any, path: Path) -> RunConfig:
    if not isinstance(saved, dict):
        raise ConfigError(f"{path} is not a run config: not a JSON object")
    try:
        config = config_from_dict(saved)
    except (TypeError, KeyError) as err:
        raise ConfigError(f"{path} is not a run config: {err}") from None
    return with_legacy_options(config, saved.get("model_options"))


def with_legacy_options(config: RunConfig, resolved: Any) -> RunConfig:
    """``config`` with the family's ``legacy_options`` that its saved ``model_options`` (every
    option, resolved, as the run used them) predate: such a run is rebuilt as it trained."""
    from htaf.families import get_family

    if not isinstance(resolved, dict):
        return config
    legacy = get_family(config.family).legacy_options
    missing = {k: v for k, v in legacy.items() if k not in resolved and k not in config.model}
    if not missing:
        return config
    return dataclasses.replace(config, model={**config.model, **missing})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON lines: {err}") from None


def read_arrays(path: str | Path) -> dict[str, Any]:
    """An ``npz`` file of a run (``activations.npz``, ``model_arrays.npz``) as a dict of arrays;
    empty if the run has none. Pickled objects are refused."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: np.asarray(npz[k]) for k in npz.files}
    except (ValueError, EOFError, zipfile.BadZipFile) as err:  # pickled objects, damaged file
        raise ConfigError(f"{path} is not a readable npz file of arrays: {err}") from None


@dataclass
class Run:
    """One trained run: its folder, config, ``metrics.json`` and per-epoch history.

    ``history_rows`` is ``history.jsonl`` (a dict per epoch); :attr:`history` is the same as a
    DataFrame. ``saved_config`` is ``config.json`` as written (with ``versions``,
    ``model_options`` and ``dataset_meta``). The data and the model are rebuilt on demand from
    the config: the family's options are parsed once, the dataset loaded once per ``Run``.
    """

    path: Path
    config: RunConfig = field(repr=False)
    metrics: dict[str, Any] = field(repr=False)
    history_rows: list[dict[str, Any]] = field(repr=False)
    #: The figures (PNG and SVG) in ``path/plots``: the model's own (``htaf train``), and with
    #: tracking the learning curves.
    figures: list[Path] = field(default_factory=list, repr=False)
    saved_config: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The loaded dataset, where the caller has it (one no loader can load again by name).
    given_dataset: Any = field(default=None, repr=False, compare=False)

    # -- what is on disk -----------------------------------------------------------------------
    @property
    def history(self) -> Any:
        """A row per epoch (nested values as ``grad_norm/layer1``)."""
        rows = [flatten(row) for row in self.history_rows]
        others = sorted({k for r in rows for k in r} - {"epoch"})
        return _pandas().DataFrame(rows, columns=["epoch", *others])

    @property
    def table(self) -> Any:
        """The metrics as ``htaf train`` prints them: a row per (split, metric), columns
        ``hard`` (the exact step) and ``smooth``."""
        pd = _pandas()
        rows: dict[tuple[str, str], dict[str, float]] = {}
        for key, value in self.metrics.items():
            split, _, rest = key.partition("_")
            name, _, mode = rest.rpartition("_")
            if split in ("train", "val", "test") and mode in ("hard", "smooth") and name:
                number = value if isinstance(value, int | float) else math.nan
                rows.setdefault((split, name), {})[mode] = number
        index = pd.MultiIndex.from_tuples(list(rows), names=["split", "metric"])
        return pd.DataFrame(list(rows.values()), index=index, columns=["hard", "smooth"])

    def activations(self) -> dict[str, Any]:
        """``activations.npz``: test-set hidden outputs, ``layer1_smooth``, ``layer1_hard``..."""
        return read_arrays(self.path / ACTIVATIONS)

    def model_arrays(self) -> dict[str, Any]:
        """``model_arrays.npz``: the model's ``eval_arrays`` (empty if it has none)."""
        return read_arrays(self.path / MODEL_ARRAYS)

    def summary_text(self) -> str | None:
        """``model_summary.txt``, where the model wrote one."""
        path = self.path / SUMMARY
        return path.read_text().rstrip() if path.is_file() else None

    def record(self) -> dict[str, Any]:
        """The run as plain data, as ``run_one`` returns it and the store and the report read
        it: ``{"config", "metrics", "history", "run_dir", "dataset_meta"}``."""
        return {
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "history": self.history_rows,
            "run_dir": str(self.path),
            "dataset_meta": self.saved_config.get("dataset_meta", {}),
        }

    # -- rebuilt from the config ---------------------------------------------------------------
    @cached_property
    def options(self) -> Any:
        """The family's model options (a dataclass), parsed once from ``config.model``."""
        from htaf.families import model_options

        return model_options(self.config.family, self.config.model)

    @cached_property
    def _raw_dataset(self) -> Any:
        return self.given_dataset if self.given_dataset is not None else load_dataset(self.config)

    @cached_property
    def _prepared_dataset(self) -> Any:
        from htaf.families import prepare_data

        return prepare_data(self.config, self._raw_dataset, options=self.options)

    def dataset(self, *, raw: bool = False) -> Any:
        """The run's dataset, loaded once: as its model sees it (the family's ``prepare``, e.g.
        ICBM's backbone features), or with ``raw=True`` as ``htaf.data.load`` gives it."""
        return self._raw_dataset if raw else self._prepared_dataset

    def model(self, *, hard: bool = True) -> Any:
        """A fresh model with the run's trained weights, in eval mode, every estimator switched
        to the exact step (``hard=True``, ``htaf.harden``) or to its smooth forward.

        Raises ``FileNotFoundError`` naming ``model.safetensors`` when the run has not finished,
        ``ConfigError`` when the weights do not fit the model its config builds.
        """
        from htaf.estimators import set_mode
        from htaf.families import build_model
        from htaf.train.checkpoint import load_safetensors

        weights = self.path / WEIGHTS
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} does not exist: the run has not finished")
        model = build_model(self.config, self.dataset(), options=self.options)
        try:
            load_safetensors(model, weights)
        except (RuntimeError, KeyError) as err:
            raise ConfigError(
                f"{weights} does not match the model its {CONFIG} builds: {err}"
            ) from None
        set_mode(model, "hard" if hard else "smooth")
        return model.eval()

    @classmethod
    def from_record(cls, record: dict[str, Any], figures: list[Path] | None = None) -> Run:
        """The :class:`Run` of a ``run_one`` record (no file is read)."""
        config = record["config"]
        saved = {**config, "dataset_meta": record.get("dataset_meta", {})}
        return cls(Path(record["run_dir"]), config_from_dict(config), record["metrics"],
                   record["history"], list(figures or []), saved)  # fmt: skip


def load_run(path: str | Path, *, dataset: Any = None) -> Run:
    """The run in folder ``path`` (any family), as written by ``htaf train`` or ``compare``.
    ``dataset``: its dataset as loaded already (``htaf.data.load``, or one built in memory and
    given to ``run_one``), else :meth:`Run.dataset` loads it by the config's name.

    Raises ``FileNotFoundError`` naming the missing file (``config.json``, ``metrics.json``)
    when ``path`` holds no finished run, ``ConfigError`` when a file is not what a run writes.
    """
    if not isinstance(path, str | Path):
        raise TypeError(f"load_run() takes a folder path, got {type(path).__name__}")
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run folder: no such folder")
    if not (run_dir / CONFIG).is_file():
        inside = sorted(p.parent for p in run_dir.glob(f"*/*/seed*/{CONFIG}"))
        hint = f"; give one of its runs, e.g. {inside[0]}" if inside else ""
        raise FileNotFoundError(f"{run_dir} is not a run folder: no {CONFIG}{hint}")
    if not (run_dir / METRICS).is_file():
        raise FileNotFoundError(
            f"{run_dir / METRICS} does not exist: the run has not finished (resume it)"
        )
    saved = _read_json(run_dir / CONFIG)
    config = _config(saved, run_dir / CONFIG)
    metrics = _read_json(run_dir / METRICS)
    if not isinstance(metrics, dict):
        raise ConfigError(f"{run_dir / METRICS} is not a run's metrics: not a JSON object")
    figures = sorted(p for p in (run_dir / PLOTS).glob("*") if p.suffix in (".png", ".svg"))
    history = _read_history(run_dir / HISTORY)
    return Run(run_dir, config, metrics, history, figures, saved, given_dataset=dataset)
