"""CUB-200-2011 birds: 200 classes, 11788 photos, 312 binary attributes per image.

Read from the ``CUB_200_2011/`` tree as distributed (``images.txt``, ``image_class_labels.txt``,
``train_test_split.txt``, ``classes.txt``, ``images/``, ``attributes/image_attribute_labels.txt``,
and ``attributes.txt`` with the attribute names, which the archive keeps beside the folder).
When only the official ``CUB_200_2011.tgz`` is present it is unpacked beside itself once.
Images stay on disk (``ImageFiles``); the attributes become ``concepts_*``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .arrays import IMAGENET, Part, build_dataset
from .dataset import DataError, Dataset
from .lazy import ImageFiles
from .official import Official, extract, locate
from .registry import Ctx, register

FOLDER = "CUB_200_2011"
PAGE = "https://www.vision.caltech.edu/datasets/cub_200_2011/"
# MD5 as used by public CUB loaders (e.g. avalanche, TDeVries/cub2011_dataset); no SHA-256 is
# published, so only the MD5 is checked.
ARCHIVE = Official(
    "CUB_200_2011.tgz",
    urls=("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",),
    md5="97eceeb196236b17998738112f37df78",
    checksum_source="MD5 as used by public CUB loaders (avalanche, cub2011_dataset)",
)


def read_pairs(path: Path) -> dict[int, str]:
    """A ``<integer id> <value>`` file (one pair a line) as a dict; errors name file and line."""
    out: dict[int, str] = {}
    for no, line in enumerate(_lines(path), start=1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}, line {no}: expected '<id> <value>', got {line!r}")
        out[int(parts[0])] = parts[1].strip()
    if not out:
        raise DataError(f"{path}: file is empty")
    return out


def incomplete(folder: Path) -> str:
    """The advice for a file missing from an unpacked tree."""
    return (
        f"The folder {folder} is incomplete: unpack the official {ARCHIVE.name} (from "
        f"{ARCHIVE.urls[0]}) into {folder.parent} again."
    )


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        root = path.parent if path.parent.name == FOLDER else path.parent.parent
        raise DataError(f"{path}: file not found. " + incomplete(root)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read file ({e})") from e


def _ints(path: Path, pairs: dict[int, str], ids: list[int]) -> np.ndarray:
    """The integer values of ``pairs`` for ``ids``, in that order."""
    missing = [i for i in ids if i not in pairs]
    if missing:
        raise DataError(f"{path}: no line for image id {missing[0]} (listed in images.txt)")
    try:
        return np.array([int(pairs[i]) for i in ids], dtype=np.int64)
    except ValueError:
        i = next(i for i in ids if not pairs[i].strip().isdigit())
        raise DataError(f"{path}: image id {i} has the non-integer value {pairs[i]!r}") from None


def _attribute_names(root: Path) -> tuple[Path, list[str]]:
    """attributes.txt: in the folder, in attributes/, or beside the folder (as the archive has)."""
    for path in (root / "attributes.txt", root / "attributes" / "attributes.txt",
                 root.parent / "attributes.txt"):  # fmt: skip
        if path.is_file():
            pairs = read_pairs(path)
            if sorted(pairs) != list(range(1, len(pairs) + 1)):
                raise DataError(f"{path}: attribute ids are not 1..{len(pairs)}")
            return path, [pairs[k] for k in range(1, len(pairs) + 1)]
    raise DataError(
        f"attributes.txt (the names of the 312 attributes) not found in {root}, "
        f"{root / 'attributes'} or {root.parent}; it comes with the official archive, beside "
        f"the {FOLDER} folder. (concepts=False loads CUB without the attributes.)"
    )


def read_attributes(root: Path, ids: list[int]) -> tuple[np.ndarray, list[str]]:
    """(concepts (n, K) uint8 in ``ids`` order, attribute names) from the attribute files.

    image_attribute_labels.txt has a line ``<image> <attribute> <is_present> <certainty>
    <time>`` for every image and attribute; only the first three fields are read.
    """
    names_path, names = _attribute_names(root)
    path = root / "attributes" / "image_attribute_labels.txt"
    if not path.is_file():
        raise DataError(f"{path}: file not found. " + incomplete(root))
    try:  # numpy's C parser: seconds for the official 3.7 million lines, a Python loop is slow
        a = np.loadtxt(path, usecols=(0, 1, 2), dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: malformed line: {e} (rows counted from 0)") from e
    img, att, present = a[:, 0], a[:, 1] - 1, a[:, 2]
    order = np.asarray(ids)
    row = np.clip(np.searchsorted(order, img), 0, len(order) - 1)
    bad = (order[row] != img) | (att < 0) | (att >= len(names)) | ((present != 0) & (present != 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{path}, data line {i + 1}: image {img[i]}, attribute {att[i] + 1}, value "
            f"{present[i]} out of range (images from images.txt, attributes 1..{len(names)} "
            f"of {names_path}, values 0/1)"
        )
    cell = row * len(names) + att
    if len(a) != len(ids) * len(names) or np.bincount(cell).max(initial=0) > 1:
        raise DataError(
            f"{path}: {len(a)} attribute lines, expected one for each of {len(ids)} images x "
            f"{len(names)} attributes = {len(ids) * len(names)}; the file is truncated or not "
            "the official one"
        )
    out = np.zeros((len(ids), len(names)), dtype=np.uint8)
    out[row, att] = present
    return out, names


def _root(ctx: Ctx) -> Path:
    where = locate("cub200", ARCHIVE, ctx.data_dir, ctx.download, folder=FOLDER)
    return where if where.is_dir() else extract("cub200", where, FOLDER)


def _image_paths(root: Path, rel: dict[int, str], ids: list[int]) -> list[Path]:
    paths = [root / "images" / rel[i] for i in ids]
    for p in paths:  # a misplaced tree fails here, not hours later inside a DataLoader worker
        if not p.is_file():
            raise DataError(
                f"{p}: image file not found (listed in {root / 'images.txt'}). " + incomplete(root)
            )
    return paths


@register(
    "cub200",
    kind="image",
    task="multiclass",
    description="CUB-200-2011 birds, 200 classes, 5994 train / 5794 test photos (lazy), "
    "312 attribute concepts",
    source=PAGE,
    files=(ARCHIVE.name, f"(or {FOLDER}/)"),
    official=(ARCHIVE,),
)
def cub200(
    ctx: Ctx,
    *,
    size: int = 224,
    resize: int | None = None,
    augment: bool = True,
    concepts: bool = True,
) -> Dataset:
    """Images decoded lazily at ``size`` x ``size``: shorter side resized to ``resize``
    (default size * 256/224), center crop; in training mode random crop + flip (``augment``).
    Normalized with the ImageNet statistics. ``concepts``: load the 312 attributes."""
    root = _root(ctx)
    rel = read_pairs(root / "images.txt")
    ids = sorted(rel)
    label_path, split_path = root / "image_class_labels.txt", root / "train_test_split.txt"
    cls = _ints(label_path, read_pairs(label_path), ids)
    is_train = _ints(split_path, read_pairs(split_path), ids)
    classes = read_pairs(root / "classes.txt")
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise DataError(f"{root / 'classes.txt'}: class ids are not 1..{len(classes)}")
    bad = np.flatnonzero((cls < 1) | (cls > len(classes)))
    if bad.size:
        raise DataError(f"{label_path}: image {ids[bad[0]]} has unknown class {cls[bad[0]]}")
    # "001.Black_footed_Albatross" -> "Black_footed_Albatross"
    names = [classes[k].split(".", 1)[-1] for k in range(1, len(classes) + 1)]
    files = ImageFiles(
        _image_paths(root, rel, ids),
        size=size,
        resize=round(size * 256 / 224) if resize is None else resize,
        augment=augment,
        seed=ctx.seed,
    )
    C, concept_names = read_attributes(root, ids) if concepts else (None, None)
    part = Part(files, cls - 1, C)
    tr, te = np.flatnonzero(is_train == 1), np.flatnonzero(is_train != 1)
    return build_dataset(
        "cub200",
        "image",
        part.take(tr),
        part.take(te),
        class_names=names,
        seed=ctx.seed,
        val_size=ctx.val_size,
        test_size=ctx.test_size,
        normalize=IMAGENET,
        concept_names=concept_names,
        meta={
            "source": PAGE,
            "file": None,
            "files": [str(root)],
            "normalize_source": "ImageNet mean/std (torchvision's published values)",
            "image_size": list(files.size),
            "resize": files.resize,
        },
    )
