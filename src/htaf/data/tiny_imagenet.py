"""Tiny ImageNet (CS231n): 200 classes, 64x64 JPEGs, 500 training and 50 validation images each.

Read from the ``tiny-imagenet-200/`` tree as distributed: ``wnids.txt``, ``words.txt``,
``train/<wnid>/images/*.JPEG``, ``val/val_annotations.txt`` and ``val/images/``. When only the
official ``tiny-imagenet-200.zip`` is present it is unpacked beside itself once. The official
test split has no labels, so the official validation split is the test split here, and
validation is carved out of the training split. Images stay on disk (``ImageFiles``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .arrays import IMAGENET, Part, build_dataset
from .dataset import DataError, Dataset
from .lazy import ImageFiles
from .official import Official, extract, locate
from .registry import Ctx, register

FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
# MD5 as used by public loaders (e.g. avalanche); SHA-256 not published by CS231n, as pinned by
# several public projects that agree with each other.
ARCHIVE = Official(
    "tiny-imagenet-200.zip",
    urls=(URL,),
    md5="90528d7ca1a48142e341f4ef8d21d0de",
    sha256="6198c8ae015e2b3e007c7841da39ec069199b9aa3bfa943a462022fe5e43c821",
    checksum_source="MD5 as used by public loaders (avalanche); SHA-256 as pinned in public code",
)


def _incomplete(root: Path) -> str:
    return (
        f"The folder {root} is incomplete: unpack the official {ARCHIVE.name} (from {URL}) "
        f"into {root.parent} again."
    )


def _text(path: Path, root: Path) -> list[str]:
    try:
        return [s for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found. " + _incomplete(root)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read file ({e})") from e


def _class_names(root: Path, wnids: list[str]) -> list[str]:
    """The first name of each wnid in words.txt (the wnid itself where a name repeats)."""
    words = {}
    for line in _text(root / "words.txt", root):
        wnid, _, text = line.partition("\t")
        words[wnid.strip()] = text.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    return [n if names.count(n) == 1 else f"{n} ({w})" for n, w in zip(names, wnids, strict=True)]


def _train(root: Path, wnids: list[str]) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for k, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        try:
            names = sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith(".jpeg"))
        except FileNotFoundError:
            raise DataError(f"{folder}: folder not found. " + _incomplete(root)) from None
        if not names:
            raise DataError(f"{folder}: no .JPEG images. " + _incomplete(root))
        paths += [folder / n for n in names]
        labels += [k] * len(names)
    return paths, np.array(labels, dtype=np.int64)


def _val(root: Path, index: dict[str, int]) -> tuple[list[Path], np.ndarray]:
    """val_annotations.txt: ``<file> <wnid> <x0> <y0> <x1> <y1>``, tab-separated."""
    path = root / "val" / "val_annotations.txt"
    paths, labels = [], []
    for no, line in enumerate(_text(path, root), start=1):
        f = line.split("\t")
        if len(f) < 2 or f[1].strip() not in index:
            raise DataError(f"{path}, line {no}: expected '<file>\\t<wnid from wnids.txt>...'")
        image = root / "val" / "images" / f[0].strip()
        if not image.is_file():
            raise DataError(
                f"{image}: image file not found (listed in {path}). " + _incomplete(root)
            )
        paths.append(image)
        labels.append(index[f[1].strip()])
    return paths, np.array(labels, dtype=np.int64)


@register(
    "tiny_imagenet",
    kind="image",
    task="multiclass",
    description="Tiny ImageNet, 200 classes, 3x64x64 (lazy), 100000 train / 10000 val as test",
    source="https://cs231n.stanford.edu/",
    files=(ARCHIVE.name, f"(or {FOLDER}/)"),
    official=(ARCHIVE,),
)
def tiny_imagenet(ctx: Ctx, *, size: int = 64, pad: int = 4, augment: bool = True) -> Dataset:
    """Images decoded lazily at ``size`` x ``size`` (resized when not 64). Training mode:
    ``pad`` pixels of zero padding, random crop, random flip (``augment``). Classes are the
    wnids in sorted order, named by words.txt. Normalized with the ImageNet statistics."""
    where = locate("tiny_imagenet", ARCHIVE, ctx.data_dir, ctx.download, folder=FOLDER)
    root = where if where.is_dir() else extract("tiny_imagenet", where, FOLDER)
    wnids = sorted({w.strip() for w in _text(root / "wnids.txt", root)})
    index = {w: k for k, w in enumerate(wnids)}
    options = {"size": size, "pad": pad, "augment": augment, "seed": ctx.seed}
    train_paths, y_train = _train(root, wnids)
    test_paths, y_test = _val(root, index)
    return build_dataset(
        "tiny_imagenet",
        "image",
        Part(ImageFiles(train_paths, **options), y_train),
        Part(ImageFiles(test_paths, **options), y_test),
        class_names=_class_names(root, wnids),
        seed=ctx.seed,
        val_size=ctx.val_size,
        test_size=ctx.test_size,
        normalize=IMAGENET,
        meta={
            "source": URL,
            "file": None,
            "files": [str(root)],
            "wnids": wnids,
            "test_split": "official validation split (the official test split has no labels)",
            "normalize_source": "ImageNet mean/std (torchvision's published values)",
        },
    )
