"""Safe checkpoints (file writes are atomic, through :mod:`htaf.io`).

Checkpoints hold only tensors and plain data (dicts, lists, tuples, numbers, strings, None), so
they load with ``torch.load(weights_only=True)``: loading never runs code, and a crafted pickle
is refused with :class:`CheckpointError` instead of being executed.
"""

from __future__ import annotations

import json
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from htaf.io import atomic_torch_save, atomic_write_bytes, read_safetensors, to_plain

#: Checkpoint format tag and version, checked on load.
FORMAT = "htaf-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely (corrupt, foreign, or carrying code)."""


# -- RNG state as plain data ---------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states, as tensors and plain data only."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- checkpoints ---------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Save ``payload`` (plus format tag) atomically; it must be weights_only-loadable."""
    return atomic_torch_save({"format": FORMAT, "version": VERSION, **payload}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing any code from it.

    Raises :class:`CheckpointError` for a file that holds anything but tensors and plain data
    (e.g. a pickle whose ``__reduce__`` would call ``os.system``), a corrupt file, or a file
    that is not an htaf checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load checkpoint {path}: it holds objects other than tensors and plain "
            f"data, and loading it could run code ({_unpickler_reason(err)}); load only "
            "checkpoints written by htaf"
        ) from None
    except Exception as err:  # corrupt zip, truncated file, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an htaf checkpoint")
    if obj.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {obj.get('version')!r}; "
            f"this htaf reads version {VERSION}"
        )
    return obj


def _unpickler_reason(err: Exception) -> str:
    """The informative line of torch's weights_only error (it names the refused global)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line.split("WeightsUnpickler error:", 1)[-1].strip().split(". ")[0]
    return "weights_only load failed"


def copy_state(model: nn.Module) -> dict[str, Any]:
    """A detached copy of ``model.state_dict()`` (tensors cloned, extra state deep-copied)."""
    return _clone(model.state_dict())


def _clone(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, Mapping):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_clone(v) for v in obj)
    return obj


def save_safetensors(
    model: nn.Module, path: str | Path, metadata: Mapping[str, Any] | None = None
) -> Path:
    """The model's tensors as ``safetensors`` (atomically); non-tensor state goes into metadata.

    Estimator hyperparameters and modes (``*._extra_state``) are not tensors: they are stored as
    JSON in the metadata entry ``extra_state``.
    """
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, Any] = {}
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor):
            # safetensors refuses shared or non-contiguous storage: give each tensor its own.
            tensors[key] = value.detach().cpu().contiguous().clone()
        else:
            extra[key] = to_plain(value)  # tensors inside (generator states) become lists
    meta = {str(k): json.dumps(to_plain(v)) for k, v in (metadata or {}).items()}
    meta["extra_state"] = json.dumps(extra, sort_keys=True)
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def load_safetensors(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights written by :func:`save_safetensors` into ``model`` (extra state included).

    A file that is not readable safetensors raises :class:`htaf.io.SafetensorsFileError`, damaged
    metadata :class:`CheckpointError` (both ``ValueError``s naming the file)."""
    tensors, meta = read_safetensors(path, what="weights file")
    state: dict[str, Any] = dict(tensors)
    try:
        extra = json.loads(meta.get("extra_state", "{}"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: its metadata 'extra_state' is not JSON ({err})") from None
    if not isinstance(extra, dict):
        raise CheckpointError(f"{path}: its metadata 'extra_state' is not a JSON object")
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(value.get("generator"), list):
            value["generator"] = torch.tensor(value["generator"], dtype=torch.uint8)
        state[key] = value
    model.load_state_dict(state)
    return model
