"""``htaf predict``: class labels from a packed model file or an OpenVINO export.

    htaf predict model.htafb images.npy                 # one label per line
    htaf predict model_ov images.npz --out labels.npy

Loads no training code. The command parses and prints; ``htaf.bnn.predict`` does the work.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="class labels of inputs from a packed or OpenVINO model (htaf export)",
        description="Run a model written by htaf export on the array in INPUT (.npy, or .npz "
        "with one array or an x/X/X_test array; read without pickle): raw inputs as the "
        "dataset gives them, uint8 images or floats of shape (N, *input_shape).",
    )
    p.add_argument("model", help="a packed model file or an OpenVINO export folder")
    p.add_argument("input", help="a .npy or .npz file")
    p.add_argument("--out", help="write the labels here (.npy, else one per line) instead "
                   "of printing them")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="OpenVINO inference threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from htaf.bnn import predict

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    labels = predict(args.model, args.input, threads=args.threads)
    if not args.out:
        print("\n".join(str(int(v)) for v in labels))
        return 0
    import io

    import numpy as np

    from htaf.io import atomic_write_bytes, atomic_write_text

    if args.out.endswith(".npy"):
        buf = io.BytesIO()
        np.save(buf, labels, allow_pickle=False)
        atomic_write_bytes(args.out, buf.getvalue())
    else:
        atomic_write_text(args.out, "".join(f"{int(v)}\n" for v in labels))
    print(f"wrote {len(labels)} labels to {args.out}")
    return 0
