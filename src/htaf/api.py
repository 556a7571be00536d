"""htaf from Python: what ``htaf compare``, ``train``, ``runs`` do, as functions returning data.

    import htaf
    exp = htaf.compare(estimators=["htaf", "ste", "relu"], seeds=3, epochs=10)
    exp.summary            # a row per (family, dataset, estimator); columns (metric, stat)
    exp.runs               # a row per run, every metrics.json number
    exp.history            # a row per run and epoch
    exp.report["html"]     # and exp.plots: the files written
    htaf.load_experiment("htaf-runs/compare-...").resume()    # finish an interrupted one
    htaf.runs("htaf-runs", estimator="htaf")                  # every stored run, as a DataFrame
    run = htaf.train_one("run.toml", out="runs/one", epochs=5)
    run = htaf.load_run("runs/one")       # any run folder: .config .metrics .history .model()

The commands are thin wrappers over these functions, with the same defaults: a family's
``compare`` defaults (``htaf.families``), then what the call sets. Every input is checked
before anything is written; bad input raises ``ValueError`` (``ConfigError``, ``DataError``...)
or ``TypeError``, naming what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from htaf.config import ConfigError, RunConfig, canonical_keys, family_of

if TYPE_CHECKING:
    from htaf.train.run_folder import Run

DEFAULT_OUT = "htaf-runs"
#: Settings a family's ``compare`` defaults may fill when the call does not set them.
FAMILY_DEFAULTS = ("dataset", "epochs", "lr", "batch_size", "optimizer")
#: RunConfig keys the grid itself sets: not options of ``compare``.
GRID_KEYS = ("family", "dataset", "estimator", "seed")
#: Keys an experiment's ``config.json`` must hold.
SPEC_KEYS = ("base", "datasets", "estimators", "seeds", "command")
#: Filters of :func:`runs`: the store's column each one matches.
RUN_FILTERS = {"dataset": "dataset", "estimator": "estimator", "family": "family",
               "task": "family", "experiment": "experiment_id"}  # fmt: skip
#: The default model family.
DEFAULT_FAMILY = "dhn"


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas is a dependency; a broken install lacks it
        raise ImportError("htaf's DataFrames need pandas: pip install pandas") from None
    return pandas


# -- htaf compare ----------------------------------------------------------------------------------
def split_specs(text: str) -> list[str]:
    """Split on commas outside parentheses: ``"htaf(2,11),ste"`` -> ``["htaf(2,11)", "ste"]``."""
    items, depth, current = [], 0, []
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError(f"unbalanced parentheses in {text!r}")
        if ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if depth:
        raise ValueError(f"unbalanced parentheses in {text!r}")
    items.append("".join(current).strip())
    return _estimator_list([x for x in items if x], text)


def _estimator_list(items: Sequence[str], given: Any) -> list[str]:
    if not items or not all(isinstance(x, str) and x for x in items):
        raise ValueError(f"no estimator names in {given!r}")
    if len(set(items)) != len(items):
        raise ValueError(f"estimator listed twice in {given!r}")
    return list(items)


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    """``5`` -> seeds 0..4; a list of seeds is taken as it is."""
    if isinstance(seeds, bool):
        raise TypeError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    if not isinstance(seeds, Sequence) or isinstance(seeds, str):
        raise TypeError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed listed twice in {list(seeds)!r}")
    return [int(s) for s in seeds]


def family_jobs(family: str | None) -> int:
    """The worker processes ``htaf compare`` uses for ``family`` when ``--jobs`` is not given."""
    from htaf.families import get_family

    return get_family(DEFAULT_FAMILY if family is None else family).jobs


def _family_arg(family: str | None, task: str | None) -> str:
    """``family``, or ``task`` (its former name), or the default; ``ConfigError`` naming both
    when they are given and differ."""
    if task is not None:
        if family is not None and family != task:
            raise ConfigError(
                f"family={family!r} and task={task!r} (its former name) are both given and "
                "differ; give only family"
            )
        return task
    return DEFAULT_FAMILY if family is None else family


def compare_grid(
    family: str | None = None,
    dataset: str | Sequence[str] | None = None,
    estimators: str | Sequence[str] | None = None,
    seeds: int | Sequence[int] = 5,
    *,
    model: Mapping[str, Any] | None = None,
    task: str | None = None,
    **options: Any,
) -> Any:
    """The grid :func:`compare` runs: the family's defaults, then the arguments (``None``: the
    default). ``options`` are RunConfig keys (epochs, lr, weight_decay, data_dir, ...)."""
    from htaf.experiment import Grid
    from htaf.families import get_family

    family_name = _family_arg(family, task)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for key in options:
        if key in GRID_KEYS:
            raise TypeError(f"compare() sets {key!r} through family/dataset/estimators/seeds")
        if key not in fields:
            known = ", ".join(sorted(fields - set(GRID_KEYS)))
            raise TypeError(f"compare() got an unknown option {key!r} (RunConfig keys: {known})")
    if model is not None and not isinstance(model, Mapping):
        raise TypeError(f"model must be a table of model options, got {model!r}")
    family_ = get_family(family_name)
    settings = {k: v for k, v in family_.compare.items() if k in FAMILY_DEFAULTS}
    settings.update({k: v for k, v in options.items() if v is not None})
    if dataset is not None:
        settings["dataset"] = dataset
    datasets = settings.pop("dataset", RunConfig.dataset)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    if not datasets or not all(isinstance(d, str) and d for d in datasets):
        raise ValueError(f"dataset must be a name or a list of names, got {dataset!r}")
    # The family's data options belong to its own dataset (icbm: the shapes difficulty); the
    # call's options win key by key.
    family_data = family_.compare.get("data_options")
    if family_data and datasets == [family_.compare.get("dataset")]:
        settings["data_options"] = {**family_data, **(settings.get("data_options") or {})}
    if estimators is None:
        estimators = list(family_.estimators)
    elif isinstance(estimators, str):
        estimators = split_specs(estimators)
    else:
        estimators = _estimator_list(list(estimators), estimators)
    base = RunConfig(family=family_name, dataset=datasets[0], estimator=estimators[0],
                     model=dict(model or {}), **settings)  # fmt: skip
    return Grid(base, datasets, estimators, _seed_list(seeds))


def compare(
    family: str | None = None,
    dataset: str | Sequence[str] | None = None,
    estimators: str | Sequence[str] | None = None,
    seeds: int | Sequence[int] = 5,
    *,
    out: str | Path = DEFAULT_OUT,
    model: Mapping[str, Any] | None = None,
    backend: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    progress: bool = True,
    track: str | None = None,
    command: str | None = None,
    task: str | None = None,
    **options: Any,
) -> Experiment:
    """Train every estimator on the dataset over several seeds; what ``htaf compare`` does.

    ``family`` names the model family (default ``"dhn"``; ``task=`` is its former name, still
    accepted). The family brings its defaults: dataset, epochs, lr, batch size, optimizer,
    estimators, and the options of its default dataset, used when ``dataset`` is that one;
    ``estimators`` is a list of specs (``["htaf(2,11)", "ste"]``) or one comma-separated string;
    ``seeds`` a count (seeds 0..N-1) or a list; ``model`` the family's model options
    (``{"widths": [64, 64]}``); ``options`` any other RunConfig key (``epochs``, ``lr``,
    ``weight_decay``, ``data_dir``, ``target``, ``data_options``...). ``backend`` ``"local"``
    (``jobs`` worker processes; default 1: more need the script's ``if __name__ ==
    "__main__":`` guard, since workers are spawned; ``htaf compare`` uses the family's) or
    ``"ray"`` (``address``);
    ``track`` ``"tensorboard"`` or ``"mlflow"`` (``htaf.train.tracking``). ``command`` is what
    ``config.json`` and the report record as the call (default: this call, as Python).

    Writes ``OUT/<experiment-id>/`` and adds every run to ``OUT/results.sqlite``; returns the
    :class:`Experiment`. A run that fails after the input was accepted raises ``GridRunError``
    (a ``RuntimeError``).
    """
    family = _family_arg(family, task)
    grid = compare_grid(family, dataset, estimators, seeds, model=model, **options)
    if jobs is None:
        jobs = 1
    if command is None:
        given = {"family": family, "dataset": dataset, "estimators": estimators, "seeds": seeds,
                 "out": str(out), "model": model, **options}  # fmt: skip
        shown = ", ".join(f"{k}={v!r}" for k, v in given.items() if v is not None)
        command = f"htaf.compare({shown})"
    return _run_experiment(
        grid, Path(out).resolve(), command=command, backend=backend, jobs=jobs, address=address,
        progress=progress, track=track,
    )  # fmt: skip


def _run_experiment(
    grid: Any, out: Path, *, command: str, backend: str, jobs: int, address: str | None,
    progress: bool, track: str | None, exp_dir: Path | None = None,
) -> Experiment:  # fmt: skip
    """Check everything, create the experiment folder and store rows, run the grid, write the
    summary and report, log them. With ``exp_dir`` (a resume) the folder exists already."""
    from htaf.experiment import (
        EXPERIMENT_CONFIG,
        check_backend,
        check_not_bootstrapping,
        check_workers,
        new_experiment_id,
        ray_session,
        run_grid,
        validate,
    )
    from htaf.io import atomic_write_json
    from htaf.report import environment
    from htaf.store import STORE_NAME, ResultStore
    from htaf.train import tracking

    check_not_bootstrapping()
    check_backend(backend, jobs)
    tracking.check_name(track)
    configs = grid.configs()
    loaded = validate(configs)  # everything below writes; nothing may be written for bad input
    check_workers(configs, backend, jobs)
    resume = exp_dir is not None
    exp_id = exp_dir.name if exp_dir is not None else new_experiment_id("compare")
    exp_dir = out / exp_id
    # Ray and the tracking store are reached before anything is written: a bad address or an
    # unreachable MLflow server is bad input, not a half run.
    session = ray_session(address, jobs) if backend == "ray" else nullcontext()
    with session:
        tracked = tracking.prepare(track, root=exp_dir, experiment=exp_id, store_dir=out)
        spec = {
            "experiment_id": exp_id,
            "command": command,
            "base": grid.base.to_dict(),
            "datasets": list(grid.datasets),
            "estimators": list(grid.estimators),
            "seeds": list(grid.seeds),
            "backend": backend,
            "jobs": jobs,
            "track": tracked.describe() if tracked is not None else None,
            "environment": environment(),
        }
        new_store = not (out / STORE_NAME).exists()
        if not resume:
            atomic_write_json(exp_dir / EXPERIMENT_CONFIG, spec)
        store = ResultStore(out / STORE_NAME)
        store.start_experiment(exp_id, command=command, config=spec)
        finished: list[dict[str, Any]] = []

        def on_result(record: dict[str, Any]) -> None:
            store.add_run(record, experiment_id=exp_id)
            finished.append(record)

        try:
            records = run_grid(
                configs, exp_dir, backend=backend, jobs=jobs, address=address,
                progress=progress, resume=resume, tracking=tracked, datasets=loaded,
                on_result=on_result,
            )  # fmt: skip
        except BaseException:
            if not resume and not finished:
                _forget(exp_dir, store, exp_id, drop_store=new_store)
            raise
    experiment = _finish(exp_dir, records)
    reports = [experiment.report["markdown"], experiment.report["html"]]
    tracking.log_summary(tracked, experiment.summary_rows, experiment.plots, reports)
    return experiment


def _forget(exp_dir: Path, store: Any, exp_id: str, *, drop_store: bool) -> None:
    """Remove what a grid that finished no run created, so that neither ``--resume`` nor
    ``htaf runs`` takes it for an experiment. A grid that finished some runs is kept: it
    resumes."""
    import shutil

    shutil.rmtree(exp_dir, ignore_errors=True)
    store.drop_experiment(exp_id)
    if drop_store and not store.experiments():
        Path(store.path).unlink(missing_ok=True)
        with suppress(OSError):  # the output folder, if nothing else is in it
            Path(store.path).parent.rmdir()


def _finish(exp_dir: Path, records: list[dict[str, Any]]) -> Experiment:
    """summary.json, the plots and both reports of a finished grid."""
    from htaf.experiment import SUMMARY, summarize
    from htaf.io import atomic_write_json
    from htaf.report import write_report

    summary = summarize(records)
    atomic_write_json(exp_dir / SUMMARY, summary)
    write_report(exp_dir)
    return Experiment(exp_dir, _read_spec(exp_dir), records, summary)


# -- reading experiments back ------------------------------------------------------------------
def _read_spec(exp_dir: Path) -> dict[str, Any]:
    from htaf.experiment import EXPERIMENT_CONFIG

    spec_path = exp_dir / EXPERIMENT_CONFIG
    if not spec_path.is_file():
        inside = sorted(p.parent.name for p in exp_dir.glob(f"*/{EXPERIMENT_CONFIG}")
                        if p.parent.is_dir())  # fmt: skip
        hint = f"; it holds the experiments {', '.join(inside[:5])}" if inside else ""
        raise ConfigError(f"{exp_dir} holds no experiment: no {EXPERIMENT_CONFIG} there{hint}")
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{spec_path} is not an experiment config: {err}") from None
    missing = [k for k in SPEC_KEYS if k not in spec] if isinstance(spec, dict) else list(SPEC_KEYS)
    if missing:
        raise ConfigError(f"{spec_path} is not an experiment config: no {missing[0]!r}")
    return spec


def load_experiment(path: str | Path) -> Experiment:
    """The experiment in ``path`` (``OUT/<experiment-id>``), as far as it has run.

    Raises ``ValueError`` naming ``path`` when it holds no experiment, ``TypeError`` when it is
    not a path. An interrupted experiment loads with the runs that finished; ``.resume()``
    finishes it.
    """
    from htaf.experiment import SUMMARY, read_runs, summarize

    if not isinstance(path, str | Path):
        raise TypeError(f"load_experiment() takes a folder path, got {type(path).__name__}")
    exp_dir = Path(path).resolve()
    if not exp_dir.is_dir():
        raise ConfigError(f"{path} holds no experiment: no such folder")
    spec = _read_spec(exp_dir)
    records = read_runs(exp_dir)
    summary_path = exp_dir / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    return Experiment(exp_dir, spec, records, summary if summary else summarize(records))


@dataclass
class Experiment:
    """One ``htaf compare`` experiment: its folder, its runs and its results.

    ``summary`` (DataFrame): a row per (family, dataset, estimator) with columns
    (metric, "mean" | "std" | "n"); std is the sample std over seeds (0 for one seed).
    ``runs``: a row per run with every metric. ``history``: a row per run and epoch (nested
    values as ``grad_norm/layer1``). ``records`` and ``summary_rows`` are the same as plain
    dicts (``read_run`` records, ``summary.json`` rows).
    """

    path: Path
    spec: dict[str, Any]
    records: list[dict[str, Any]]
    summary_rows: list[dict[str, Any]]

    def __repr__(self) -> str:
        s = self.spec
        grid = f"{len(s['estimators'])} estimators × {len(s['seeds'])} seeds on "
        cells = len(s["datasets"]) * len(s["estimators"]) * len(s["seeds"])
        return (
            f"Experiment({str(self.path)!r}, {grid}{', '.join(s['datasets'])}, "
            f"{len(self.records)}/{cells} runs finished)"
        )

    @property
    def id(self) -> str:
        return str(self.spec.get("experiment_id", self.path.name))

    @property
    def finished(self) -> bool:
        """Whether every cell of the grid has its metrics."""
        s = self.spec
        return len(self.records) == len(s["datasets"]) * len(s["estimators"]) * len(s["seeds"])

    @property
    def summary(self) -> Any:
        pd = _pandas()
        index = [(family_of(r), r["dataset"], r["estimator"]) for r in self.summary_rows]
        names = sorted({m for r in self.summary_rows for m in r["metrics"]})
        columns = [(m, s) for m in names for s in ("mean", "std", "n")]
        empty = {"mean": None, "std": None, "n": 0}
        data = [[r["metrics"].get(m, empty)[s] for m, s in columns] for r in self.summary_rows]
        frame = pd.DataFrame(
            data,
            index=pd.MultiIndex.from_tuples(index, names=["family", "dataset", "estimator"]),
            columns=pd.MultiIndex.from_tuples(columns, names=["metric", "stat"]),
        )
        return frame.astype({c: "float64" for c in columns if c[1] != "n"})

    @property
    def runs(self) -> Any:
        rows = [{**{k: r["config"].get(k) for k in GRID_KEYS}, "run_dir": r["run_dir"],
                 **r["metrics"]} for r in self.records]  # fmt: skip
        return _frame(rows, [*GRID_KEYS, "run_dir"])

    @property
    def history(self) -> Any:
        from htaf.train.run_folder import flatten

        rows = [
            {**{k: r["config"].get(k) for k in GRID_KEYS}, **flatten(row)}
            for r in self.records
            for row in r["history"]
        ]
        return _frame(rows, [*GRID_KEYS, "epoch"])

    @property
    def report(self) -> dict[str, Path]:
        return {"html": self.path / "report.html", "markdown": self.path / "report.md"}

    @property
    def plots(self) -> list[Path]:
        """The PNG plots (each has an SVG beside it)."""
        return sorted((self.path / "plots").glob("*.png"))

    def resume(
        self, *, backend: str = "local", jobs: int = 1, address: str | None = None,
        progress: bool = True, track: str | None = None,
    ) -> Experiment:  # fmt: skip
        """Finish the grid: every run continues from its last checkpoint (finished runs are
        read back). ``track``: None logs where the experiment logged, ``"none"`` stops."""
        from htaf.experiment import Grid

        spec = _read_spec(self.path)
        grid = Grid(RunConfig.from_dict(spec["base"]), spec["datasets"], spec["estimators"],
                    spec["seeds"])  # fmt: skip
        if track is None:
            track = (spec.get("track") or {}).get("kind")
        return _run_experiment(
            grid, self.path.parent, command=spec["command"], backend=backend, jobs=jobs,
            address=address, progress=progress, track=track, exp_dir=self.path,
        )  # fmt: skip

    def _repr_html_(self) -> str:  # Jupyter shows the report's table
        from htaf.report import html_table, table_rows

        parts = [f"<p><b>{self.id}</b> ({self.path})</p>"]
        tables = table_rows(self.summary_rows, self.records)
        for (family, dataset), (header, rows) in tables.items():
            parts += [f"<p>{dataset} ({family})</p>", html_table(header, rows)]
        return "\n".join(parts)


def _frame(rows: list[dict[str, Any]], first: Sequence[str]) -> Any:
    """A DataFrame with the ``first`` columns first, then the others sorted."""
    pd = _pandas()
    others = sorted({k for r in rows for k in r} - set(first))
    return pd.DataFrame(rows, columns=[*first, *others])


def runs(out: str | Path = DEFAULT_OUT, **filters: Any) -> Any:
    """Every run in ``OUT/results.sqlite`` matching ``filters``, oldest first: what ``htaf runs``
    lists, as a DataFrame with every metric.

    A filter is any column of that frame (``dataset``, ``estimator``, ``family``, ``seed``,
    ``status``, ``experiment_id``, a metric...) set to a value, or to a list of values (any of
    them); ``experiment`` is another name for ``experiment_id`` and ``task`` the former name of
    ``family``. An unknown column, or a value no run in the store holds, raises ``ValueError``
    naming the columns, or the values that column holds."""
    from htaf.store import RUN_COLUMNS, STORE_NAME, ResultStore

    path = Path(out) / STORE_NAME
    if not path.is_file():
        raise ConfigError(f"no results store at {path}; run `htaf compare` first")
    rows = ResultStore(path).query()
    frame = _frame([{**{k: r[k] for k in RUN_COLUMNS}, **r["metrics"]} for r in rows],
                   RUN_COLUMNS)  # fmt: skip
    wanted: dict[str, Any] = {}
    for key, value in filters.items():
        column = RUN_FILTERS.get(key, key)
        if column not in frame.columns:
            raise ConfigError(
                f"runs() got an unknown filter {key!r}: filter on a column of the runs table "
                f"({', '.join(map(str, frame.columns))}; also {', '.join(RUN_FILTERS)})"
            )
        if column in wanted and wanted[column] != value:
            raise ConfigError(
                f"runs() got {column} twice (family and task, its former name?) and they differ"
            )
        wanted[column] = value
    mask = _pandas().Series(True, index=frame.index)
    for column, value in wanted.items():
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        present = frame[column].dropna().unique().tolist()
        missing = [v for v in values if v not in present]
        if missing:
            held = ", ".join(map(repr, sorted(present, key=str))) or "none"
            raise ConfigError(
                f"no run in {path} has {column}={', '.join(map(repr, missing))} "
                f"(the store's {column} values: {held})"
            )
        mask = mask & frame[column].isin(values)
    return frame[mask].reset_index(drop=True)


def write_runs_csv(frame: Any, path: str | Path) -> Path:
    """The frame of :func:`runs` as CSV at ``path``, written atomically (``htaf runs --csv``)."""
    from htaf.io import atomic_write_text

    return atomic_write_text(path, frame.to_csv(index=False, lineterminator="\n"))


# -- htaf train --------------------------------------------------------------------------------
def default_out(config: RunConfig) -> Path:
    """``runs/<dataset>-<estimator>-seed<k>``: where ``train_one`` writes without ``out``."""
    from htaf.experiment import safe_name

    name = f"{safe_name(config.dataset)}-{safe_name(config.estimator)}-seed{config.seed}"
    return Path("runs") / name


def _as_config(config: RunConfig | Mapping[str, Any] | str | Path, overrides: dict) -> RunConfig:
    if isinstance(config, RunConfig):
        base = config.to_dict()
    elif isinstance(config, Mapping):
        base = dict(config)
    elif isinstance(config, str | Path):
        base = RunConfig.from_toml(config).to_dict()
    else:
        raise TypeError(f"config must be a RunConfig, a dict or a TOML path, got {config!r}")
    # former key names (task) in either, so that an override wins whichever name each uses
    return RunConfig.from_dict({**canonical_keys(base), **canonical_keys(overrides)})


def train_one(
    config: RunConfig | Mapping[str, Any] | str | Path,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    track: str | None = None,
    **overrides: Any,
) -> Run:
    """Train one model; what ``htaf train`` does. Returns the :class:`Run`.

    ``config``: a RunConfig, a dict of its keys or a TOML file; ``overrides`` set keys on top
    (``epochs=5``). ``out`` (default ``runs/<dataset>-<estimator>-seed<k>``) must not hold a
    run unless ``resume`` (continue from its checkpoint) or ``overwrite``. ``track``:
    ``"tensorboard"`` (``OUT/tensorboard``) or ``"mlflow"`` (MLflow experiment ``htaf-train``;
    the default store is ``OUT/../mlflow.db``); with tracking the run's plots go to
    ``OUT/plots`` and are logged too.
    """
    from htaf.train import run_one, tracking
    from htaf.train.distributed import launch_rank
    from htaf.train.run_folder import MARKERS, PLOTS, Run

    config = _as_config(config, overrides)
    tracking.check_name(track)
    out = Path(out) if out is not None else default_out(config)
    if not (resume or overwrite) and any((out / m).exists() for m in MARKERS):
        raise ConfigError(
            f"{out} already holds a run: resume it (--resume, resume=True), replace it "
            "(--overwrite, overwrite=True) or choose another out"
        )
    opened: list[Any] = []

    def open_tracking() -> Any:
        # run_one calls this once it has checked the config, data and model: bad input
        # leaves no MLflow store behind (under torchrun rank 0 logs for all)
        opened.append(
            tracking.prepare(track, root=out, experiment="htaf-train", store_dir=out.parent)
        )
        return opened[0]

    tracker = open_tracking if launch_rank() == 0 else None
    record = run_one(config, out, resume=resume, progress=progress, tracking=tracker)
    tracked = opened[0] if opened else None
    from htaf.analysis.plots import run_figures

    figures = run_figures(out, record) if launch_rank() == 0 else []
    if tracked is not None:
        from htaf.analysis import plots

        folder = out / PLOTS
        drawn = plots.learning_curves([record], folder) + plots.gradient_norms([record], folder)
        drawn += plots.activation_histograms([record], folder)
        pngs = [p for p in drawn if p.suffix == ".png"]
        tracking.log_run_plots(tracked, out, pngs, step=len(record["history"]))
    return Run.from_record(record, figures)
