"""MNIST and Fashion-MNIST from their official IDX files (gzip-compressed, as distributed).

Each set is four files: ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``. The two sets share these names,
so each lives in its own folder of the data directory: ``mnist/`` and ``fashion_mnist/``
(torchvision's ``MNIST/raw/`` and ``FashionMNIST/raw/`` are accepted too, and so are the
uncompressed files beside the ``.gz`` ones).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .arrays import Part, build_dataset
from .dataset import DataError, Dataset
from .files import search_dirs
from .official import Official, locate, where_to_put
from .registry import Ctx, register

IMAGES, LABELS = 0x00000803, 0x00000801  # IDX magic: unsigned bytes, 3 and 1 dimensions
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")  # fmt: skip

# Checksums of the .gz files. MD5: as listed in torchvision's MNIST/FashionMNIST modules (for
# Fashion-MNIST also in its README). SHA-256: not published by the authors; as pinned by
# ankane/torchvision-ruby and several other public projects, which agree with each other.
MNIST_DIGESTS = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432",
                                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3",
                               "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c",
                               "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}  # fmt: skip
FASHION_DIGESTS = {
    "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe",
                                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79",
                               "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310",
                               "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
}  # fmt: skip
# yann.lecun.com often refuses downloads now; torchvision's mirror serves the same files.
MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/")  # fmt: skip
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
CHECKSUM_SOURCE = "MD5 as listed by torchvision; SHA-256 as pinned by torchvision-ruby"


def _officials(folder: str, torch_folder: str, digests: dict, urls: tuple) -> tuple:
    return tuple(
        Official(
            f"{folder}/{f}.gz",
            urls=tuple(u + f + ".gz" for u in urls),
            md5=digests[f][0],
            sha256=digests[f][1],
            checksum_source=CHECKSUM_SOURCE,
            also=(f"{torch_folder}/{f}.gz",),
        )
        for f in FILES
    )


MNIST_FILES = _officials("mnist", "MNIST/raw", MNIST_DIGESTS, MNIST_URLS)
FASHION_FILES = _officials("fashion_mnist", "FashionMNIST/raw", FASHION_DIGESTS, FASHION_URLS)


def _read(dataset: str, path: Path) -> bytes:
    """The bytes of an IDX file, gunzipped when it is a ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(
            f"{path}: cannot read ({e}); the file is truncated or corrupt. Replace it with the "
            f"official file at {path} (`htaf datasets --fetch {dataset}`)"
        ) from e


def read_idx(dataset: str, path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes as an array; magic number, dims and length are checked."""
    raw = _read(dataset, path)
    ndim = magic & 0xFF
    head = 4 + 4 * ndim
    got = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if got != magic:
        shown = "none" if got is None else f"{got:#010x}"
        raise DataError(
            f"{path}: not an IDX file of {ndim}-D unsigned bytes (magic number {shown}, "
            f"expected {magic:#010x}); is it the official file?"
        )
    if len(raw) < head:
        raise DataError(f"{path}: truncated inside the IDX header ({len(raw)} bytes)")
    dims = [int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    want, body = int(np.prod(dims)), len(raw) - head
    if body != want:
        problem = "truncated" if body < want else "longer than its header says"
        raise DataError(
            f"{path}: {problem}: the header announces {dims} = {want} bytes of data, the file "
            f"holds {body}. Replace it with the official file at {path}"
        )
    # a copy: frombuffer's array is read-only, which torch.from_numpy warns about
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims).copy()


def _find(dataset: str, off: Official, ctx: Ctx) -> Path:
    """The .gz file, or the uncompressed one beside where it would be."""
    raw = Official(off.name[:-3], also=tuple(a[:-3] for a in off.also))
    found = raw.find(search_dirs(ctx.data_dir))
    if found is not None and off.find(search_dirs(ctx.data_dir)) is None:
        return found
    return locate(dataset, off, ctx.data_dir, ctx.download)


def _split(dataset: str, files: tuple, ctx: Ctx, n_classes: int, k: int) -> Part:
    images = _find(dataset, files[2 * k], ctx)
    labels = _find(dataset, files[2 * k + 1], ctx)
    X = read_idx(dataset, images, IMAGES)
    y = read_idx(dataset, labels, LABELS)
    if len(X) != len(y):
        raise DataError(f"{images} holds {len(X)} images but {labels} holds {len(y)} labels")
    bad = np.flatnonzero(y >= n_classes)
    if bad.size:
        raise DataError(
            f"{labels}: label {y[bad[0]]} of item {bad[0]} is not in 0..{n_classes - 1}"
        )
    return Part(X[:, None], y.astype(np.int64))


def _load(dataset: str, files: tuple, ctx: Ctx, classes: list[str], source: str) -> Dataset:
    train, test = (_split(dataset, files, ctx, len(classes), k) for k in (0, 1))
    if train.X.shape[1:] != test.X.shape[1:]:
        raise DataError(
            f"dataset {dataset!r}: train images are {train.X.shape[2:]} but test images are "
            f"{test.X.shape[2:]}. " + where_to_put(dataset, files[0], search_dirs(ctx.data_dir))
        )
    meta = {"source": source, "file": None, "files": [f.name for f in files]}
    return build_dataset(
        dataset,
        "image",
        train,
        test,
        class_names=classes,
        seed=ctx.seed,
        val_size=ctx.val_size,
        test_size=ctx.test_size,
        meta=meta,
    )


@register(
    "mnist",
    kind="image",
    task="multiclass",
    description="MNIST handwritten digits, 1x28x28 uint8, 60000 train / 10000 test",
    source="http://yann.lecun.com/exdb/mnist/",
    files=("mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",),
    official=MNIST_FILES,
)
def mnist(ctx: Ctx) -> Dataset:
    return _load("mnist", MNIST_FILES, ctx, [str(d) for d in range(10)], MNIST_URLS[1])


@register(
    "fashion_mnist",
    kind="image",
    task="multiclass",
    description="Fashion-MNIST (Zalando), 1x28x28 uint8, 60000 train / 10000 test",
    source="https://github.com/zalandoresearch/fashion-mnist",
    files=("fashion_mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",),
    official=FASHION_FILES,
)
def fashion_mnist(ctx: Ctx) -> Dataset:
    return _load("fashion_mnist", FASHION_FILES, ctx, FASHION_CLASSES, FASHION_URLS[0])
