"""CIFAR-10 and CIFAR-100 from their official *binary* versions (never the pickled ones).

A record is 1 label byte (CIFAR-10) or 2 (CIFAR-100: coarse, then fine) followed by 3072 bytes:
the red, green and blue 32x32 planes, row-major, which is already (C, H, W). Either the
unpacked folder (``cifar-10-batches-bin/``, ``cifar-100-binary/``) or the official archive
(``cifar-10-binary.tar.gz``, ``cifar-100-binary.tar.gz``) is read; the archive is read member by
member in memory, never unpacked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import Part, build_dataset
from .dataset import DataError, Dataset
from .files import search_dirs
from .official import Official, locate, tar_members, where_to_put
from .registry import Ctx, register

PIXELS = 3 * 32 * 32
PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
# MD5: published on the CIFAR page. SHA-256: not published there; as pinned by public code
# (e.g. ankane/torchvision-ruby, gomlx, Julia MLDatasets), which agree with each other.
CIFAR10_ARCHIVE = Official(
    "cifar-10-binary.tar.gz",
    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
    md5="c32a1d4ab5d03f1284b67883e8d87530",
    sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    checksum_source=f"MD5 published at {PAGE}; SHA-256 as pinned by torchvision-ruby",
)
CIFAR100_ARCHIVE = Official(
    "cifar-100-binary.tar.gz",
    urls=("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",),
    md5="03b5dce01913d631647c71ecec9e9cb8",
    sha256="58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
    checksum_source=f"MD5 published at {PAGE}; SHA-256 as pinned by torchvision-ruby",
)


@dataclass(frozen=True)
class Layout:
    """Where a CIFAR variant keeps its records and label names, and how labels are coded."""

    folder: str
    train: tuple[str, ...]
    test: str
    names: str  # label names, one a line
    label_bytes: int  # bytes before the pixels in each record
    label_at: int  # which of them is the label used
    n_classes: int


CIFAR10 = Layout(
    "cifar-10-batches-bin",
    tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test_batch.bin",
    "batches.meta.txt",
    1,
    0,
    10,
)
CIFAR100_FINE = Layout(
    "cifar-100-binary", ("train.bin",), "test.bin", "fine_label_names.txt", 2, 1, 100
)
CIFAR100_COARSE = Layout(
    "cifar-100-binary", ("train.bin",), "test.bin", "coarse_label_names.txt", 2, 0, 20
)


def _read_files(
    dataset: str, off: Official, lay: Layout, ctx: Ctx
) -> tuple[dict[str, bytes], dict[str, str]]:
    """(bytes, where each came from) of the layout's files, from the folder or the archive."""
    members = [*lay.train, lay.test, lay.names]
    where = locate(dataset, off, ctx.data_dir, ctx.download, folder=lay.folder)
    if where.is_dir():
        out = {}
        for m in members:
            path = where / m
            if not path.is_file():
                raise DataError(
                    f"{path}: missing; the folder {where} is incomplete. "
                    + where_to_put(dataset, off, search_dirs(ctx.data_dir))
                )
            out[m] = path.read_bytes()
        return out, {m: str(where / m) for m in members}
    data = tar_members(dataset, where, [f"{lay.folder}/{m}" for m in members])
    return (
        {m: data[f"{lay.folder}/{m}"] for m in members},
        {m: f"{where} (member {lay.folder}/{m})" for m in members},
    )


def _records(raw: bytes, where: str, lay: Layout, dataset: str) -> Part:
    size = lay.label_bytes + PIXELS
    if not raw or len(raw) % size:
        raise DataError(
            f"{where}: {len(raw)} bytes is not a whole number of {size}-byte records; the file "
            f"is truncated or corrupt. Replace it with the official one "
            f"(`htaf datasets --fetch {dataset}`, then `htaf datasets --verify {dataset}`)"
        )
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)
    y = rec[:, lay.label_at].astype(np.int64)
    bad = np.flatnonzero(y >= lay.n_classes)
    if bad.size:
        raise DataError(
            f"{where}: record {bad[0]} has label {y[bad[0]]}, not in 0..{lay.n_classes - 1}; "
            "is it the official file of this dataset?"
        )
    # a contiguous, writable copy (frombuffer's array is read-only; the slice is strided)
    return Part(rec[:, lay.label_bytes :].reshape(-1, 3, 32, 32).copy(), y)


def _names(raw: bytes, where: str, n: int) -> list[str]:
    try:
        names = [s.strip() for s in raw.decode("utf-8").splitlines() if s.strip()]
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not a text file of class names ({e})") from e
    if len(names) != n:
        raise DataError(f"{where}: {len(names)} class names, expected {n}")
    return names


def load_cifar(dataset: str, off: Official, lay: Layout, ctx: Ctx) -> Dataset:
    raw, where = _read_files(dataset, off, lay, ctx)
    parts = [_records(raw[m], where[m], lay, dataset) for m in lay.train]
    train = Part(np.concatenate([p.X for p in parts]), np.concatenate([p.y for p in parts]))
    test = _records(raw[lay.test], where[lay.test], lay, dataset)
    meta = {"source": off.urls[0], "file": None, "files": list(where.values())}
    return build_dataset(
        dataset,
        "image",
        train,
        test,
        class_names=_names(raw[lay.names], where[lay.names], lay.n_classes),
        seed=ctx.seed,
        val_size=ctx.val_size,
        test_size=ctx.test_size,
        meta=meta,
    )


@register(
    "cifar10",
    kind="image",
    task="multiclass",
    description="CIFAR-10, 3x32x32 uint8, 10 classes, 50000 train / 10000 test",
    source=PAGE,
    files=(CIFAR10_ARCHIVE.name, f"(or {CIFAR10.folder}/)"),
    official=(CIFAR10_ARCHIVE,),
)
def cifar10(ctx: Ctx) -> Dataset:
    return load_cifar("cifar10", CIFAR10_ARCHIVE, CIFAR10, ctx)


@register(
    "cifar100",
    kind="image",
    task="multiclass",
    description="CIFAR-100, 3x32x32 uint8, 100 fine (or 20 coarse) classes, 50000 / 10000",
    source=PAGE,
    files=(CIFAR100_ARCHIVE.name, f"(or {CIFAR100_FINE.folder}/)"),
    official=(CIFAR100_ARCHIVE,),
)
def cifar100(ctx: Ctx, *, labels: str = "fine") -> Dataset:
    """``labels``: "fine" (100 classes) or "coarse" (the 20 superclasses)."""
    layouts = {"fine": CIFAR100_FINE, "coarse": CIFAR100_COARSE}
    if labels not in layouts:
        raise DataError(f"cifar100: labels must be 'fine' or 'coarse', not {labels!r}")
    ds = load_cifar("cifar100", CIFAR100_ARCHIVE, layouts[labels], ctx)
    ds.meta["labels"] = labels
    return ds
