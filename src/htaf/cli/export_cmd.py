"""``htaf export``: a bnn run's hardened model as a packed file or an OpenVINO IR.

    htaf export runs/bnn --format packed --out model.htafb
    htaf export runs/bnn --format openvino --out model_ov

The command parses and prints; ``htaf.deploy.export_run`` does the work.
"""

from __future__ import annotations

import argparse

FORMATS = ("packed", "openvino")  # htaf.deploy.FORMATS, without importing it here


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a binary network's run as a packed model file or an OpenVINO IR",
        description="Rebuild the run's model, harden it and write it for inference: "
        "'packed' (one safetensors file: weights as bits along the input channels, scales, "
        "BatchNorm folded into integer thresholds, SHA-256 checksums) or 'openvino' (an IR "
        "folder whose binary layers are BinaryConvolution ops). Run it with htaf predict.",
    )
    p.add_argument("run_dir", help="a finished bnn run folder")
    p.add_argument("--format", choices=FORMATS, default="packed", help="packed (default) or "
                   "openvino")  # fmt: skip
    p.add_argument("--out", required=True, help="the file (packed) or folder (openvino)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from htaf.deploy import export_run

    path = export_run(args.run_dir, args.format, args.out)
    size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
    print(f"wrote {path} ({size / 1024:.1f} KiB, {args.format}){os.linesep}"
          f"run it: htaf predict {path} INPUT.npy")  # fmt: skip
    return 0
