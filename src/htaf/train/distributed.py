"""Data-parallel training under ``torchrun``: process group, sharding, reductions.

Launched with ``torchrun --nproc_per_node N ...`` (``WORLD_SIZE`` > 1 in the environment), the
engine opens a process group (``nccl`` on CUDA, ``gloo`` on CPU), wraps the model in
``DistributedDataParallel`` and gives each rank an equal shard of every epoch's permutation
(``DistributedSampler`` semantics: the same per-epoch seed on every rank, padded by repeating
the first indices so every rank runs the same number of batches). Only rank 0 writes files and
shows progress. Without ``WORLD_SIZE`` > 1 every function here is a cheap no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` (0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when absent)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def launch_rank() -> int:
    """This process's rank as torchrun set it (``RANK``; 0 when not launched by torchrun).

    Unlike :func:`info`, it stays valid after the process group is closed.
    """
    return int(os.environ.get("RANK", "0") or 0)


def info() -> DistInfo:
    """The current process group's layout, or a single-process ``DistInfo``."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            backend=str(dist.get_backend()),
        )
    return DistInfo()


def _wants_cuda(device: str) -> bool:
    return str(device).startswith("cuda") and torch.cuda.is_available()


@contextmanager
def session(device: str = "cpu") -> Iterator[DistInfo]:
    """Open the process group when launched by torchrun, and close it on exit.

    Nested sessions (``run_one`` around ``fit``) share the outer group; only the session that
    opened the group destroys it.
    """
    opened = False
    if env_world_size() > 1 and dist.is_available() and not dist.is_initialized():
        backend = "nccl" if _wants_cuda(device) else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        opened = True
    try:
        yield info()
    finally:
        if opened and dist.is_initialized():
            dist.destroy_process_group()


def device_for(device: str, d: DistInfo) -> torch.device:
    """The rank's device: ``cuda:LOCAL_RANK`` when distributed on CUDA, else ``device``."""
    if d.enabled and _wants_cuda(device):
        return torch.device("cuda", d.local_rank)
    return torch.device(device)


def wrap(model: nn.Module, device: torch.device, d: DistInfo) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model`` itself."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or ``model`` itself)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    return model.module if isinstance(model, DDP) else model


def shard(indices: torch.Tensor, d: DistInfo) -> torch.Tensor:
    """This rank's share of ``indices``: padded to a multiple of ``world_size``, then strided."""
    if not d.enabled:
        return indices
    n = len(indices)
    total = -(-n // d.world_size) * d.world_size
    if total > n:  # repeat from the start, as DistributedSampler does
        reps = -(-(total - n) // max(n, 1))
        indices = torch.cat([indices, indices.repeat(reps)[: total - n]])
    return indices[d.rank : total : d.world_size]


def all_reduce_sum(values: torch.Tensor, d: DistInfo) -> torch.Tensor:
    """Sum ``values`` over ranks (returns ``values`` unchanged when not distributed)."""
    if d.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_flag(flag: bool, d: DistInfo, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (so all ranks stop at the same epoch)."""
    if not d.enabled:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(d: DistInfo) -> None:
    if d.enabled:
        dist.barrier()
