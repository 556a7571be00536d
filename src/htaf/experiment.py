"""Grids of runs (dataset × estimator × seed), run locally or on Ray, and their aggregation.

    grid = Grid(RunConfig(epochs=30), datasets=["breast_cancer"], estimators=["htaf", "ste"],
                seeds=[0, 1, 2])
    configs = grid.configs()
    validate(configs)                      # raises before anything is written
    records = run_grid(configs, "htaf-runs/exp1", backend="local", jobs=2)
    rows = summarize(records)              # mean/std/n of every metric over seeds

Every cell runs ``htaf.train.run_one`` in ``EXP_DIR/<dataset>/<estimator>/seed<k>/``. Seeding is
done by ``run_one`` from the config alone, so the backend and the number of workers do not
change any metric.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import re
import secrets
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from htaf.config import ConfigError, RunConfig, family_of
from htaf.threads import one_torch_thread
from htaf.train.run import RunFailed

BACKENDS = ("local", "ray")
#: An experiment folder's own files: what was asked (the grid) and the aggregated results.
EXPERIMENT_CONFIG = "config.json"
SUMMARY = "summary.json"


class GridRunError(RunFailed):
    """A run failed while the grid ran (its input had passed validation)."""

    def __init__(self, run_dir: str | Path, error: BaseException):
        # run_one's own RunFailed names the same run: keep only what it wraps.
        super().__init__(run_dir, error.error if isinstance(error, RunFailed) else error)


#: What to do when the worker processes of a grid cannot start the user's script.
MAIN_GUARD = (
    "jobs > 1 starts worker processes with 'spawn', which imports your script again in each "
    'of them: put the call under `if __name__ == "__main__":`, or run with jobs=1'
)


class WorkersDied(GridRunError):
    """The grid's worker processes died (``BrokenProcessPool``), most often because the script
    that started them has no ``if __name__ == "__main__":`` guard."""

    def __str__(self) -> str:
        return f"the worker processes of the grid died ({self.error}); {MAIN_GUARD}"


def check_not_bootstrapping() -> None:
    """``RuntimeError`` when called while a spawned worker imports its parent's script.

    Without a ``__main__`` guard a script that runs a grid with ``jobs > 1`` runs again in
    every worker as it starts; each would write an experiment of its own. Refusing there writes
    nothing, and the parent reports the guard (:class:`WorkersDied`).
    """
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(f"htaf.compare called while a worker process starts: {MAIN_GUARD}")


@dataclass
class Grid:
    """Every combination of ``datasets`` × ``estimators`` × ``seeds`` on top of ``base``."""

    base: RunConfig
    datasets: Sequence[str] = field(default_factory=lambda: ["breast_cancer"])
    estimators: Sequence[str] = field(default_factory=lambda: ["htaf"])
    seeds: Sequence[int] = field(default_factory=lambda: [0])

    def configs(self) -> list[RunConfig]:
        """One config per cell, in (dataset, estimator, seed) order."""
        return [
            self.base.replace(dataset=d, estimator=e, seed=int(s))
            for d in self.datasets
            for e in self.estimators
            for s in self.seeds
        ]

    def __len__(self) -> int:
        return len(self.datasets) * len(self.estimators) * len(self.seeds)


def new_experiment_id(prefix: str = "exp") -> str:
    """A sortable, readable id: ``compare-20260101-120000-123456-a3f9``.

    The random tail keeps ids unique when two processes start in the same microsecond.
    """
    return f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-{secrets.token_hex(2)}"


def safe_name(text: str) -> str:
    """A folder name for a dataset or estimator spec: ``htaf(2,11)`` -> ``htaf-2-11``."""
    name = re.sub(r"[^\w.-]+", "-", Path(text).name if ":" in text else text).strip("-.")
    return name or "x"


def run_dir_for(exp_dir: str | Path, config: RunConfig) -> Path:
    """Where a cell's files go: ``EXP_DIR/<dataset>/<estimator>/seed<k>``."""
    return (
        Path(exp_dir)
        / safe_name(config.dataset)
        / safe_name(config.estimator)
        / f"seed{config.seed}"
    )


# -- validation ---------------------------------------------------------------------------------
def validate(configs: Iterable[RunConfig]) -> dict[str, Any]:
    """Check every config before anything runs: families, estimators, parameters, datasets.

    Raises ``ValueError`` (``UnknownEstimatorError``, ``DataError``, ``ConfigError``) with a
    clear message. Returns each distinct dataset's loaded ``Dataset`` keyed by its data key.
    """
    from htaf import estimators
    from htaf.families import build_model, model_options, prepare_data
    from htaf.families.hooks import ModelHooks
    from htaf.train.engine import check_model_config
    from htaf.train.run_folder import dataset_key, load_dataset

    configs = list(configs)
    if not configs:
        raise ConfigError("the grid is empty: give at least one dataset, estimator and seed")
    seen_runs: set[str] = set()
    loaded: dict[str, Any] = {}
    built: dict[str, bool] = {}  # model key -> whether the model is closed-form
    for cfg in configs:
        cfg.validate()
        _check_family(cfg.family)
        model_options(cfg.family, cfg.model)
        # Building the activation checks the name, the spec's numbers and their ranges.
        estimators.activation(cfg.estimator, **cfg.estimator_params)
        key = dataset_key(cfg)
        if key not in loaded:
            loaded[key] = load_dataset(cfg)
        # Build each distinct model once (seeds aside): files a family reads (weights,
        # features) and the estimators a family takes are checked before anything is written.
        # The built model's own checks on the config (check_model_config) run for every cell.
        model_key = json.dumps([key, cfg.family, cfg.model, cfg.estimator, cfg.estimator_params],
                               sort_keys=True, default=str)  # fmt: skip
        if model_key not in built:
            model = build_model(cfg, prepare_data(cfg, loaded[key]))
            built[model_key] = ModelHooks(model).closed_form
        check_model_config(cfg, closed_form=built[model_key])
        cell = str(run_dir_for("", cfg))
        if cell in seen_runs:
            raise ConfigError(f"two grid cells share the run folder {cell}; repeated estimator?")
        seen_runs.add(cell)
    return loaded


def check_backend(backend: str, jobs: int) -> None:
    """A known backend, a positive job count, and Ray importable when it is asked for."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be an integer >= 1, got {jobs!r}")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError("the ray backend needs Ray: pip install 'htaf[ray]'")


def _check_family(family: str) -> None:
    from htaf.families import get_family

    get_family(family)  # ConfigError naming the config key and the registered families


# -- running ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Registrations:
    """What a worker process must register to run the grid, beyond htaf's own families and
    estimators: ``families`` (name -> module, for ``register_family``) and ``modules`` to
    import (those whose import registers an estimator, ``@register``)."""

    families: tuple[tuple[str, str], ...] = ()
    modules: tuple[str, ...] = ()

    def apply(self) -> None:
        """Register them in this process (a worker), where not registered yet."""
        from htaf.families import MODULES, register_family

        for name, module in self.families:
            if name not in MODULES:
                register_family(name, module)
        for module in (*(m for _, m in self.families), *self.modules):
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise ConfigError(
                    f"module {module!r}, registered at run time, cannot be imported in this "
                    f"worker ({err}): install it or put its folder on PYTHONPATH"
                ) from None


def registrations(configs: Iterable[RunConfig], where: str) -> Registrations:
    """The run-time registrations the configs use, for worker processes (``where`` names
    them in the error). Raises ``ConfigError`` for one defined in ``__main__`` (a notebook
    or a script), which no worker can import."""
    from htaf import estimators
    from htaf.families import BUILTIN, MODULES

    families: dict[str, str] = {}
    modules: list[str] = []
    for cfg in configs:
        if cfg.family not in BUILTIN:
            families[cfg.family] = MODULES[cfg.family]
        home = type(estimators.activation(cfg.estimator, **cfg.estimator_params)).__module__
        if home.split(".")[0] not in ("htaf", "torch") and home not in modules:
            modules.append(home)
    for what, module in [*((f"model family {n!r}", m) for n, m in families.items()),
                         *((f"estimator module {m!r}", m) for m in modules)]:  # fmt: skip
        if module == "__main__":
            raise ConfigError(
                f"{what} is defined in __main__ (a notebook or a script), which {where} cannot "
                "import: run with jobs=1, or move it into a module"
            )
    return Registrations(tuple(sorted(families.items())), tuple(modules))


def _run_cell(
    config_dict: dict[str, Any],
    run_dir: str,
    resume: bool,
    tracking: Any = None,
    registered: Registrations | None = None,
    dataset: Any = None,
) -> dict[str, Any]:
    """One cell, in whatever process runs it (importable at module level for pickling)."""
    from htaf.train import run_one

    if registered is not None:
        registered.apply()
    config = RunConfig.from_dict(config_dict)
    return run_one(
        config, Path(run_dir), resume=resume, progress=False, dataset=dataset, tracking=tracking
    )


def _single_thread() -> None:
    # Worker processes share the machine's cores; one torch thread each avoids oversubscription.
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # only settable once per process; Ray reuses workers
        torch.set_num_interop_threads(1)


def _ray_cell(
    config_dict: dict[str, Any], run_dir: str, resume: bool, tracking: Any = None,
    registered: Registrations | None = None,
) -> dict[str, Any]:  # fmt: skip
    _single_thread()
    return _run_cell(config_dict, run_dir, resume, tracking, registered)


def run_grid(
    configs: Sequence[RunConfig],
    out_dir: str | Path,
    *,
    backend: str = "local",
    jobs: int = 1,
    address: str | None = None,
    progress: bool = True,
    resume: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    tracking: Any = None,
    datasets: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run every config in its own folder under ``out_dir``; records come back in grid order.

    ``backend="local"`` runs in this process when ``jobs == 1``, else in a spawn process pool of
    ``jobs`` workers; ``backend="ray"`` sends each cell to Ray as a task (``address`` of a running
    cluster, or a local one; on a multi-machine cluster ``out_dir`` must be a shared path).
    ``on_result(record)`` is called in this process as each cell finishes (the CLI adds rows to
    the store there, so only one process writes). A cell that fails raises ``GridRunError``.
    ``tracking`` (``htaf.train.tracking.prepare``): every cell logs there, in its own process.
    ``datasets``: what :func:`validate` returned; in this process (``jobs == 1``) the cells
    use those loads instead of loading each dataset again.
    """
    check_backend(backend, jobs)
    in_workers = backend == "ray" or jobs > 1
    registered = registrations(configs, _workers(backend, jobs)) if in_workers else None
    cells = [(c.to_dict(), str(run_dir_for(out_dir, c)), resume, tracking, registered)
             for c in configs]  # fmt: skip
    results: list[dict[str, Any] | None] = [None] * len(cells)
    bar = _progress_bar(len(cells), progress)

    def done(i: int, record: dict[str, Any]) -> None:
        results[i] = record
        if on_result is not None:
            on_result(record)
        bar.set_postfix_str(f"{record['config']['estimator']} seed {record['config']['seed']}")
        bar.update(1)

    try:
        if backend == "ray":
            _run_ray(cells, done, jobs=jobs, address=address)
        elif jobs == 1:
            from htaf.train.run_folder import dataset_key, load_dataset

            loaded = dict(datasets or {})  # in one process the cells share each loaded dataset
            with one_torch_thread():
                for i, (config, cell) in enumerate(zip(configs, cells, strict=True)):
                    try:
                        key = dataset_key(config)
                        if key not in loaded:
                            loaded[key] = load_dataset(config)
                        record = _run_cell(*cell, loaded[key])
                    except Exception as err:
                        raise GridRunError(cell[1], err) from err
                    done(i, record)
        else:
            _run_pool(cells, done, jobs=jobs)
    finally:
        bar.close()
    return [r for r in results if r is not None]


def _workers(backend: str, jobs: int) -> str:
    return "a Ray worker" if backend == "ray" else f"a worker process (jobs={jobs})"


def check_workers(configs: Iterable[RunConfig], backend: str, jobs: int) -> None:
    """``ConfigError`` when the grid runs in worker processes (``jobs > 1`` or Ray) and uses a
    family or an estimator that they cannot register (see :func:`registrations`)."""
    if backend == "ray" or jobs > 1:
        registrations(configs, _workers(backend, jobs))


def _progress_bar(total: int, enabled: bool) -> Any:
    from htaf.progress import progress_bar

    return progress_bar(total=total, desc="runs", unit="run", disable=not enabled)


def _run_pool(cells: list[tuple], done: Callable[[int, dict], None], *, jobs: int) -> None:
    import multiprocessing

    # spawn, not fork: torch's thread pools do not survive a fork.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_single_thread) as pool:
        futures = {pool.submit(_run_cell, *cell): i for i, cell in enumerate(cells)}
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    record = fut.result()
                except BrokenProcessPool as err:
                    raise WorkersDied(cells[i][1], err) from err
                except Exception as err:
                    raise GridRunError(cells[i][1], err) from err
                done(i, record)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


@contextlib.contextmanager
def ray_session(address: str | None, jobs: int) -> Iterator[None]:
    """Connect to Ray (``address``) or start a local one with ``jobs`` CPUs, for the block.

    A connection failure is a ConfigError, raised before the caller writes anything. An
    already initialised Ray is used as it is and left running.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = jobs  # a local cluster: as many workers as asked
    try:
        ray.init(**kwargs)
    except Exception as err:  # ray raises ConnectionError, ValueError, RuntimeError...
        raise ConfigError(f"cannot start or reach Ray (address={address!r}): {err}") from err
    try:
        yield
    finally:
        ray.shutdown()


def _run_ray(
    cells: list[tuple], done: Callable[[int, dict], None], *, jobs: int, address: str | None
) -> None:
    import ray

    with ray_session(address, jobs):
        _wait_ray(ray, cells, done)


def _wait_ray(ray: Any, cells: list[tuple], done: Callable[[int, dict], None]) -> None:
    task = ray.remote(num_cpus=1)(_ray_cell)
    refs = {task.remote(*cell): i for i, cell in enumerate(cells)}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            i = refs[ref]
            try:
                record = ray.get(ref)
            except Exception as err:
                for other in pending:  # the grid has failed: stop the rest
                    ray.cancel(other)
                raise GridRunError(cells[i][1], getattr(err, "cause", None) or err) from err
            done(i, record)


# -- reading back -------------------------------------------------------------------------------
#: The run folders of an experiment, relative to it (``run_dir_for``'s layout).
RUN_GLOB = "*/*/seed*"


def run_folders(exp_dir: str | Path) -> list[Path]:
    """The finished runs' folders under an experiment folder (those with ``metrics.json``)."""
    from htaf.train.run_folder import METRICS

    return sorted(p.parent for p in Path(exp_dir).glob(f"{RUN_GLOB}/{METRICS}"))


def experiment_dir(run_dir: str | Path) -> Path | None:
    """The experiment folder holding ``run_dir`` (``EXP_DIR/<dataset>/<estimator>/seed<k>``),
    or None for a run on its own (``htaf train``)."""
    run_dir = Path(run_dir).resolve()
    exp_dir = run_dir.parents[2] if len(run_dir.parents) > 2 else None
    if exp_dir is None or not (exp_dir / EXPERIMENT_CONFIG).is_file():
        return None
    return exp_dir


def same_cell_runs(run_dir: str | Path) -> list[Path]:
    """The other estimators' runs of ``run_dir``'s experiment on its dataset and seed."""
    exp_dir = experiment_dir(run_dir)
    if exp_dir is None:
        return []
    run_dir = Path(run_dir).resolve()
    dataset = run_dir.parent.parent
    return [p for p in run_folders(exp_dir)
            if p.parent.parent == dataset and p.name == run_dir.name and p != run_dir]  # fmt: skip


def read_runs(exp_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished run under an experiment folder (``Run.record()`` dicts), in grid order
    when ``config.json`` has one."""
    from htaf.train.run_folder import load_run

    exp_dir = Path(exp_dir)
    records = [load_run(p).record() for p in run_folders(exp_dir)]
    order = _grid_order(exp_dir)
    if order:
        rank = {key: i for i, key in enumerate(order)}
        records.sort(key=lambda r: rank.get(_cell_key(r["config"]), len(rank)))
    return records


def _cell_key(cfg: dict[str, Any]) -> tuple[str, str, int]:
    return (cfg.get("dataset", ""), cfg.get("estimator", ""), int(cfg.get("seed", 0)))


def _grid_order(exp_dir: Path) -> list[tuple[str, str, int]]:
    path = exp_dir / EXPERIMENT_CONFIG
    if not path.is_file():
        return []
    spec = json.loads(path.read_text())
    return [
        (d, e, int(s))
        for d in spec.get("datasets", [])
        for e in spec.get("estimators", [])
        for s in spec.get("seeds", [])
    ]


# -- aggregation --------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def summarize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, sample std (ddof=1; 0 for a single run) and count of every numeric metric.

    One row per (family, dataset, estimator), in order of first appearance:
    ``{"family", "dataset", "estimator", "metrics": {NAME: {"mean", "std", "n"}}}``. Missing or
    non-finite values are left out of a metric's count. Records of older versions, whose
    config names the family ``task``, are read too.
    """
    groups: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for rec in records:
        cfg = rec["config"]
        key = (family_of(cfg), cfg["dataset"], cfg["estimator"])
        values = groups.setdefault(key, {})
        for name, raw in rec.get("metrics", {}).items():
            x = _number(raw)
            values.setdefault(name, [])
            if x is not None:
                values[name].append(x)
    return [
        {
            "family": family,
            "dataset": dataset,
            "estimator": estimator,
            "metrics": {name: _stats(xs) for name, xs in sorted(values.items())},
        }
        for (family, dataset, estimator), values in groups.items()
    ]


def _stats(xs: list[float]) -> dict[str, float | int | None]:
    if not xs:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return {"mean": statistics.fmean(xs), "std": std, "n": len(xs)}


def model_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` without wall-clock timings (``*_s``): what must match across backends."""
    return {k: v for k, v in metrics.items() if not k.endswith("_s")}
