"""One run's configuration: what every model family, the engine, the CLI and the store share.

A config is plain data. It is saved beside every result (``config.json``) and can be written as
TOML for ``htaf train --config run.toml --set lr=0.01``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


@dataclass
class RunConfig:
    """Everything needed to reproduce one training run."""

    task: str = "dhn"
    dataset: str = "breast_cancer"
    estimator: str = "htaf"
    estimator_params: dict[str, float] = field(default_factory=dict)
    estimator_schedule: dict[str, Any] | None = None
    widths: list[int] = field(default_factory=lambda: [256, 256, 128])
    batch_norm: bool = False
    dropout: float = 0.0
    optimizer: str = "adam"
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
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        positive = {"lr": self.lr, "epochs": self.epochs, "batch_size": self.batch_size}
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"config key {key!r} must be > 0, got {value!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"config key 'dropout' must be in [0, 1), got {self.dropout!r}")
        if not self.widths or any(int(w) <= 0 for w in self.widths):
            raise ConfigError(f"config key 'widths' must be positive integers, got {self.widths}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(
                f"config key 'optimizer' must be 'adam' or 'sgd', got {self.optimizer!r}"
            )
        if self.lr_schedule not in ("none", "cosine", "step", "plateau"):
            raise ConfigError(
                "config key 'lr_schedule' must be none, cosine, step or plateau, "
                f"got {self.lr_schedule!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path, overrides: list[str] = ()) -> RunConfig:
        """Read a TOML file (top-level keys), then apply ``key=value`` overrides."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
        return cls.from_dict(apply_overrides(data, overrides))

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings; values are parsed as TOML literals, else kept as strings."""
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        data[key.strip()] = value
    return data
