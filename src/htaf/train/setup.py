"""What a run needs before its first epoch: seeds, optimizer, schedules, resume checks.

Reproducibility rests on two seeds: :func:`seed_everything` seeds a fresh run's model
initialisation, and the epoch-``e`` shuffle comes from a generator seeded by ``(seed, e)``
alone (:func:`epoch_generator`), so a resumed run shuffles exactly as the straight run did.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from htaf.config import ConfigError, RunConfig, canonical_keys
from htaf.estimators import Schedule, estimators_in
from htaf.io import to_plain
from htaf.optim import Bop, bop_param_groups

#: ReduceLROnPlateau settings for ``lr_schedule = "plateau"`` (on the validation loss).
PLATEAU_FACTOR = 0.1
PLATEAU_PATIENCE = 5
#: Config keys that may differ between a checkpoint and the config resuming it.
RESUME_MAY_CHANGE = frozenset({"epochs", "device", "data_dir"})


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and CUDA).

    ``deterministic=True`` also asks torch for deterministic kernels (warning, not failing,
    where none exists); CPU training here is deterministic without it.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle generator of ``epoch``: a function of ``(seed, epoch)`` only."""
    state = np.random.SeedSequence([int(seed) % 2**32, int(epoch)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    return torch.randperm(n, generator=epoch_generator(seed, epoch))


def make_optimizer(model: nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names: Bop (binary weights, Adam the rest), Adam, SGD."""
    c = config
    params = model.parameters()
    if c.optimizer == "bop":  # Bop flips the binary weights; Adam trains the rest
        try:
            groups = bop_param_groups(model)
        except ValueError as err:
            raise ConfigError(f"config key 'optimizer': {err}") from None
        return Bop(groups, lr=c.lr, weight_decay=c.weight_decay, **c.optimizer_params)
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


def make_lr_scheduler(opt: torch.optim.Optimizer, config: RunConfig) -> Any:
    """Cosine (factor ½(1 + cos(π·e/E))), step (x0.1 at E/2 and 3E/4), plateau, or None."""
    kind, epochs = config.lr_schedule, config.epochs
    if kind == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, epochs) / epochs))
        )
    if kind == "step":  # x0.1 at 50% and again at 75% of the epochs
        m1, m2 = epochs // 2, (3 * epochs) // 4
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.1 ** ((e >= m1) + (e >= m2)))
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
        )
    return None


def make_estimator_schedule(model: nn.Module, config: RunConfig) -> tuple[Schedule | None, str]:
    """The estimator-parameter schedule of ``config`` and its unit (``"epoch"`` or ``"step"``)."""
    spec = config.estimator_schedule
    if spec is None:  # HashNet's continuation is part of tanh_continuation itself
        tanh = [e for e in estimators_in(model) if e.name == "tanh_continuation"]
        if not tanh:
            return None, "epoch"
        spec = {"param": "beta", "kind": "hashnet", "beta0": tanh[0].beta, "unit": "step"}
    if not spec:  # {} switches every schedule off
        return None, "epoch"
    if not isinstance(spec, Mapping) or "param" not in spec or "kind" not in spec:
        raise ConfigError(
            "config key 'estimator_schedule' must be a table with 'param' and 'kind' "
            f"(and optionally 'unit' = 'epoch' | 'step'), got {spec!r}"
        )
    unit = spec.get("unit", "epoch")
    if unit not in ("epoch", "step"):
        raise ConfigError(f"estimator_schedule 'unit' must be 'epoch' or 'step', got {unit!r}")
    try:
        schedule = Schedule.from_config(model, dict(spec))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config key 'estimator_schedule': {err}") from None
    return schedule, unit


def check_resume_config(config: RunConfig, saved: Mapping[str, Any], path: Path) -> None:
    """Refuse to resume the checkpoint at ``path`` under a config that changes what it trains."""
    now = to_plain(config.to_dict())
    saved = canonical_keys(saved)  # a checkpoint of an older version names the family "task"
    # A key newer than the checkpoint was at its default when the checkpoint was written.
    default = to_plain(RunConfig().to_dict())
    changed = sorted(
        k for k in set(now) | set(saved)
        if k not in RESUME_MAY_CHANGE and to_plain(saved.get(k, default.get(k))) != now.get(k)
    )  # fmt: skip
    if changed:
        raise ConfigError(
            f"cannot resume from {path}: config key(s) "
            f"{', '.join(map(repr, changed))} differ from the checkpoint's"
        )


def check_resume_world(saved: int, world_size: int, path: Path) -> None:
    """Refuse to resume a checkpoint written by another number of processes."""
    # Each rank's shard of every epoch depends on the world size: another size would
    # resume on different batches, and the result would no longer match a straight run.
    if saved != world_size:
        raise ConfigError(
            f"cannot resume from {path}: it was written by {saved} "
            f"process(es), this run has {world_size}; resume with the same number"
        )
