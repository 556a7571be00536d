"""Binary networks at inference: the packed model file and the fast forwards.

    import htaf
    model = htaf.load_run("runs/bnn").model()             # hardened: weights and signs ±1
    htaf.bnn.export_packed(model, "model.htafb")          # bits, scales, folded thresholds
    packed = htaf.bnn.PackedModel("model.htafb")          # the integer reference forward
    htaf.bnn.export_openvino("model.htafb", "model_ov")   # BinaryConvolution IR (openvino extra)
    labels = htaf.bnn.predict("model_ov", images)         # either file; raw images

Nothing here imports htaf's training code: :func:`predict` and the command ``htaf predict``
load the torch, numpy (and OpenVINO) they need and no more. The format and the exactness
argument are in :mod:`htaf.families.bnn.packed`; the OpenVINO graph in
:mod:`htaf.families.bnn.ov_export`; ``htaf export RUN_DIR`` is :func:`htaf.deploy.export_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from htaf.families.bnn.export import BinaryExportError, load_binary, save_binary
from htaf.families.bnn.ov_export import OpenVINOModel, export_openvino
from htaf.families.bnn.packed import PackedModel, export_packed, load_input

__all__ = [
    "BinaryExportError",
    "OpenVINOModel",
    "PackedModel",
    "export_openvino",
    "export_packed",
    "load_binary",
    "load_input",
    "load_model",
    "predict",
    "save_binary",
]


def load_model(path: str | Path, *, threads: int | None = None) -> Any:
    """A :class:`PackedModel` for a packed file, an :class:`OpenVINOModel` for an IR folder
    (``threads``: OpenVINO's inference threads). ``FileNotFoundError`` naming a missing path,
    :class:`BinaryExportError` (a ``ValueError``) naming what is wrong in a damaged file."""
    path = Path(path)
    if path.is_dir():
        return OpenVINOModel(path, threads=threads)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (a packed model file or an OpenVINO "
                                "export folder)")  # fmt: skip
    return PackedModel(path)


def predict(model: str | Path | Any, x: np.ndarray | str | Path, *,
            threads: int | None = None) -> np.ndarray:  # fmt: skip
    """Class labels (int64, one per row) of ``x``, raw inputs as the dataset gives them (uint8
    images or floats, shape ``(N, *input_shape)``), or a ``.npy``/``.npz`` file of them (read
    without pickle). ``model``: a path for :func:`load_model`, or a loaded model.
    ``ValueError`` naming the shape or dtype of an input the model cannot take."""
    if isinstance(model, str | Path):
        model = load_model(model, threads=threads)
    if isinstance(x, str | Path):
        x = load_input(x)
    return model.predict(x)
