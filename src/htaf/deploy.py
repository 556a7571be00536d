"""``htaf export``: a trained binary network's run folder as a packed file or an OpenVINO IR.

    htaf.deploy.export_run("runs/bnn", "packed", "model.htafb")
    htaf.deploy.export_run("runs/bnn", "openvino", "model_ov")

The run's model is rebuilt from its config and weights, hardened, and written with its family
options and its dataset's input normalization (so ``htaf predict`` takes raw images). The
formats are described in :mod:`htaf.families.bnn.packed` and :mod:`htaf.families.bnn.ov_export`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

FORMATS = ("packed", "openvino")

__all__ = ["FORMATS", "export_run"]


def export_run(run_dir: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the hardened model of the bnn run in ``run_dir`` as ``fmt`` (``"packed"``: one
    safetensors file; ``"openvino"``: an IR folder) to ``out``, and return ``out``.

    Raises ``ValueError`` for an unknown format, a run of another family, a model the format
    cannot express (naming the layer) or an ``out`` that exists as the wrong kind of path;
    nothing is written then.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    out = Path(out)
    if fmt == "packed" and out.is_dir():
        raise ValueError(f"--out {out} is a folder; a packed model is one file")
    if fmt == "openvino" and (out.is_file() or (out.is_dir() and any(out.iterdir()))):
        raise ValueError(f"--out {out} exists and is not an empty folder")
    from htaf.train import load_run

    run = load_run(run_dir)
    if run.config.family != "bnn":
        raise ValueError(f"{run_dir} is a {run.config.family!r} run; export takes bnn runs "
                         "(binary networks)")  # fmt: skip
    model = run.model(hard=True)
    options = dataclasses.asdict(run.options)
    normalize = getattr(run.dataset(), "normalize", None)
    normalize = normalize if isinstance(normalize, dict) else None
    from htaf.families.bnn.ov_export import export_openvino
    from htaf.families.bnn.packed import export_packed

    if fmt == "packed":
        return export_packed(model, out, options=options, normalize=normalize)

    with tempfile.TemporaryDirectory() as tmp:
        path = export_packed(model, Path(tmp) / "model.htafb", options=options,
                             normalize=normalize)  # fmt: skip
        return export_openvino(path, out)
