"""One run's configuration: what every model family, the engine, the CLI and the store share.

A config is plain data. It is saved beside every result (``config.json``) and can be written as
TOML for ``htaf train --config run.toml --set lr=0.01 --set model.widths=[64,64]``. The
``model`` table holds the options of the model family ``family`` names (see
``htaf.families``); the family validates them when it builds the model, with errors that name
``model.KEY``.

``family`` was called ``task`` before (a word the data uses for binary, multiclass or
regression): ``task`` is still read wherever a config is written (TOML, JSON, dicts, keyword
arguments, ``--set``) as another name for ``family`` (:data:`KEY_ALIASES`); new files write
``family``.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


INT_KEYS = ("epochs", "batch_size", "patience", "seed", "split_seed")
FLOAT_KEYS = ("lr", "momentum", "weight_decay")
#: Config keys that are tables; ``--set TABLE.KEY=VALUE`` sets one entry.
TABLE_KEYS = ("model", "estimator_params", "data_options", "optimizer_params")
#: Optimizers, and the ``optimizer_params`` each takes (Bop: Helwegen et al. 2019, see htaf.optim).
OPTIMIZERS = {"adam": (), "sgd": (), "bop": ("gamma", "threshold")}
#: Former names of config keys, still read everywhere a config is written: old -> current.
KEY_ALIASES = {"task": "family"}


def canonical_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with every former key name (:data:`KEY_ALIASES`) moved to its current one.

    Both names given with the same value is accepted; with different values it is a
    ``ConfigError`` naming both keys.
    """
    out = dict(data)
    for old, new in KEY_ALIASES.items():
        if old not in out:
            continue
        value = out.pop(old)
        if new in out and out[new] != value:
            raise ConfigError(
                f"config keys {new!r} and {old!r} (its former name) are both given and differ: "
                f"{new} = {out[new]!r}, {old} = {value!r}; give only {new!r}"
            )
        out[new] = value
    return out


def family_of(config: Mapping[str, Any]) -> Any:
    """The model family of a config dict, summary row or store row, written by this version
    (``family``) or an older one (``task``)."""
    return config.get("family", config.get("task"))


@dataclass
class RunConfig:
    """Everything needed to reproduce one training run."""

    #: The model family (``htaf.families``: dhn, bnn, snn, icbm, convex); formerly ``task``.
    family: str = "dhn"
    dataset: str = "breast_cancer"
    estimator: str = "htaf"
    estimator_params: dict[str, float] = field(default_factory=dict)
    estimator_schedule: dict[str, Any] | None = None
    #: The family's model options (DHN: widths, batch_norm, dropout); defaults fill the rest.
    model: dict[str, Any] = field(default_factory=dict)
    #: "adam", "sgd", or "bop": Bop for the model's binary_parameters(), Adam for the rest.
    optimizer: str = "adam"
    #: Extra settings of the optimizer: Bop's ``gamma`` and ``threshold``.
    optimizer_params: dict[str, float] = field(default_factory=dict)
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "none"
    epochs: int = 30
    batch_size: int = 64
    patience: int = 0
    seed: int = 0
    split_seed: int = 0
    data_dir: str | None = None
    target: str | None = None
    impute: str | None = None
    #: Source-specific ``htaf.data.load`` options: ``drop`` (csv ID columns), ``variant``...
    data_options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        # TOML, JSON and --set give any type: check types before comparing, so a string is a
        # ConfigError naming its key rather than a TypeError deep inside training
        for key in INT_KEYS + FLOAT_KEYS:
            value = getattr(self, key)
            kind = numbers.Integral if key in INT_KEYS else numbers.Real
            if isinstance(value, bool) or not isinstance(value, kind):
                noun = "an integer" if key in INT_KEYS else "a number"
                raise ConfigError(f"config key {key!r} must be {noun}, got {value!r}")
        for key in ("lr", "epochs", "batch_size"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"config key {key!r} must be > 0, got {getattr(self, key)!r}")
        if self.patience < 0:
            raise ConfigError(f"config key 'patience' must be >= 0, got {self.patience!r}")
        for key in TABLE_KEYS:
            if not isinstance(getattr(self, key), dict):
                raise ConfigError(f"config key {key!r} must be a table, got {getattr(self, key)!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"config key 'optimizer' must be one of {', '.join(OPTIMIZERS)}, "
                f"got {self.optimizer!r}"
            )
        self._check_optimizer_params()
        if self.lr_schedule not in ("none", "cosine", "step", "plateau"):
            raise ConfigError(
                "config key 'lr_schedule' must be none, cosine, step or plateau, "
                f"got {self.lr_schedule!r}"
            )

    def _check_optimizer_params(self) -> None:
        allowed = OPTIMIZERS[self.optimizer]
        for key, value in self.optimizer_params.items():
            if key not in allowed:
                takes = f"takes {', '.join(allowed)}" if allowed else "takes none"
                raise ConfigError(
                    f"config key 'optimizer_params.{key}' does not apply: optimizer "
                    f"{self.optimizer!r} {takes}"
                )
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f"config key 'optimizer_params.{key}' must be a number")
        gamma = self.optimizer_params.get("gamma", 1.0)
        if not 0 < gamma <= 1:
            raise ConfigError(f"config key 'optimizer_params.gamma' must be in (0, 1], got {gamma}")
        if not self.optimizer_params.get("threshold", 0.0) >= 0:
            raise ConfigError("config key 'optimizer_params.threshold' must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def task(self) -> str:
        """Deprecated: the former name of :attr:`family`."""
        warnings.warn("RunConfig.task is now RunConfig.family", DeprecationWarning, stacklevel=2)
        return self.family

    @task.setter
    def task(self, value: str) -> None:
        warnings.warn("RunConfig.task is now RunConfig.family", DeprecationWarning, stacklevel=2)
        self.family = value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """A config from its keys (former names such as ``task`` accepted); ``ConfigError``
        names an unknown key."""
        data = canonical_keys(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
        """Read a TOML file (top-level keys), then apply ``key=value`` overrides."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} cannot be read: {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
        return cls.from_dict(apply_overrides(data, overrides))

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **canonical_keys(changes))


_fields_init = RunConfig.__init__


@functools.wraps(_fields_init)
def _init(self: RunConfig, *args: Any, **kwargs: Any) -> None:
    # RunConfig(task="snn") still works: former key names are keyword arguments too.
    _fields_init(self, *args, **canonical_keys(kwargs))


RunConfig.__init__ = _init  # type: ignore[method-assign]


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings; values are parsed as TOML literals, else kept as strings.

    ``table.key=value`` sets one entry of a table key (``model.widths=[64, 64]``). A former key
    name sets the current key (``task=snn`` sets ``family``), whichever name ``data`` uses.
    """
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        table, dot, entry = key.partition(".")
        if not dot:
            key = KEY_ALIASES.get(key, key)
            for old in (k for k, new in KEY_ALIASES.items() if new == key):
                data.pop(old, None)  # the override wins over the file, in either spelling
            data[key] = value
        elif table in TABLE_KEYS and entry:
            data[table] = {**(data.get(table) or {}), entry: value}
        else:
            raise ConfigError(
                f"override {item!r}: only the tables {', '.join(TABLE_KEYS)} take TABLE.KEY"
            )
    return data
