"""Atomic file writes: everything htaf writes goes through here.

The bytes land in a temporary file in the same folder (so ``os.replace`` never crosses a file
system), are flushed to disk, and are then swapped in. A reader, or a run killed half-way,
sees either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# numpy and torch are imported where they are used, not here: the studies import this module,
# and the command line imports the studies to build its parser before torch may be loaded.

FIGURE_FORMATS = ("png", "svg")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open with 0o666 rather than mkstemp, so the file gets the usual umask permissions.
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_plain(obj: Any) -> Any:
    """Numpy/torch scalars and arrays -> Python numbers and lists (JSON- and weights_only-safe)."""
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    # a torch or numpy value exists only once its module was imported: no need to import it
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if torch is not None and isinstance(obj, torch.Tensor):
        return to_plain(obj.detach().cpu().tolist()) if obj.ndim else obj.item()
    if np is not None and isinstance(obj, np.ndarray):
        return to_plain(obj.tolist())
    if np is not None and isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def json_safe(obj: Any) -> Any:
    """Plain JSON data: numpy/torch values converted, NaN and infinities replaced by None."""
    obj = to_plain(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any, *, sort_keys: bool = True) -> Path:
    """``obj`` as indented standard JSON (non-finite numbers become null).

    Keys are sorted unless ``sort_keys=False``: the studies keep their own order (labels,
    levels, rows), which is the order a reader compares them in.
    """
    text = json.dumps(json_safe(obj), indent=2, sort_keys=sort_keys, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def atomic_write_jsonl(path: str | Path, rows: list[Mapping[str, Any]]) -> Path:
    """One JSON object per line (non-finite numbers become null)."""
    text = "".join(json.dumps(json_safe(r), sort_keys=True, allow_nan=False) + "\n" for r in rows)
    return atomic_write_text(path, text)


def atomic_save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def save_figure(fig: Any, out_dir: str | Path, stem: str, *, dpi: int = 120) -> list[Path]:
    """Write a matplotlib figure as ``stem.png`` and ``stem.svg`` in ``out_dir``, atomically.

    The SVG carries no date, so rebuilding a figure from the same data gives the same file.
    """
    paths = []
    for fmt in FIGURE_FORMATS:
        buf = io.BytesIO()
        meta = {"Date": None} if fmt == "svg" else {}
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
        paths.append(atomic_write_bytes(Path(out_dir) / f"{stem}.{fmt}", buf.getvalue()))
    return paths


# -- reading safetensors --------------------------------------------------------------------------
class SafetensorsFileError(ValueError):
    """A file that should be safetensors and is not readable as such (truncated, overwritten,
    a pickle): the message names the file."""


def _safetensors_error(path: Path, what: str, err: Exception) -> SafetensorsFileError:
    return SafetensorsFileError(
        f"{what} {path} is not a readable safetensors file ({err}): it may be truncated, "
        "damaged or in another format (a pickle?)"
    )


def read_safetensors_metadata(path: str | Path, *, what: str = "file") -> dict[str, str]:
    """The metadata of a safetensors file, reading only its header (which checks that the file
    is as long as the header says). ``FileNotFoundError`` if it is missing,
    :class:`SafetensorsFileError` naming it if it is not safetensors."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except SafetensorError as err:
        raise _safetensors_error(path, what, err) from None


def read_safetensors(
    path: str | Path, *, framework: str = "pt", what: str = "file"
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every tensor (torch tensors, or numpy arrays with ``framework="numpy"``) and the metadata
    of a safetensors file. ``FileNotFoundError`` (an ``OSError``) if it is missing,
    :class:`SafetensorsFileError` (a ``ValueError``) naming it if it is not a readable
    safetensors file. ``what`` names the file in messages ("weights file", ...)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    try:
        with safe_open(str(path), framework=framework) as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except SafetensorError as err:
        raise _safetensors_error(path, what, err) from None
    return tensors, meta
