"""``ImageFiles``: images decoded from disk on demand, for sets too big for memory.

A ``torch.utils.data.Dataset`` of uint8 tensors ``(C, H, W)`` at a fixed size, decoded with
Pillow (in DataLoader workers when ``num_workers > 0``). It stands where an image array would
stand in a ``Dataset``: ``len(X)``, ``X.shape`` ``(N, C, H, W)``, ``X.subset(idx)``.

Transforms, in order: resize (shorter side to ``resize``), then

* evaluation mode (the default): center crop to ``size``;
* training mode (``train(True)``, and only when ``augment``): zero-pad by ``pad`` pixels,
  random crop to ``size``, random horizontal flip.

The random draws come from a generator seeded by ``(seed, epoch, index)``, so an epoch's
augmentation is the same whatever the worker count or order; ``set_epoch(e)`` moves to the next
epoch. Workers receive a pickled copy of the object when a DataLoader iterator starts, so call
``set_epoch``/``train`` before iterating (and avoid ``persistent_workers``, whose copies would
keep the old epoch). Normalisation is not done here: ``Dataset.float_batch`` applies
``Dataset.normalize``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .dataset import DataError

MODES = {3: "RGB", 1: "L"}


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise DataError(
            f"ImageFiles: {name} must be a positive int or (height, width), not {size!r}"
        )
    return int(h), int(w)


class ImageFiles(torch.utils.data.Dataset):
    """Image files as a lazily decoded uint8 array ``(N, C, H, W)``; see the module doc.

    ``paths``: the image files, in sample order. ``size``: output (height, width) or one int.
    ``resize``: the shorter side before cropping (default: the larger of ``size``).
    ``channels``: 3 (RGB) or 1 (grey). ``augment``: allow random crop/flip in training mode.
    ``pad``: zero padding before the random crop. ``seed``: the augmentation seed.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        size: int | Sequence[int] = 224,
        resize: int | None = None,
        channels: int = 3,
        augment: bool = True,
        pad: int = 0,
        seed: int = 0,
        ids: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.size = _pair(size, "size")
        self.resize = max(self.size) if resize is None else int(resize)
        if self.resize < max(self.size):
            raise DataError(f"ImageFiles: resize={resize} is smaller than size={self.size}")
        if channels not in MODES:
            raise DataError(f"ImageFiles: channels must be 1 or 3, not {channels!r}")
        if not isinstance(pad, int) or pad < 0:
            raise DataError(f"ImageFiles: pad must be an int >= 0, not {pad!r}")
        self.channels = channels
        self.augment = bool(augment)
        self.pad = pad
        self.seed = int(seed)
        # Each image's identity for the augmentation draws; kept by ``subset`` so an image is
        # augmented the same way whichever subset it is read through.
        self.ids = np.arange(len(self.paths)) if ids is None else np.asarray(ids, dtype=np.int64)
        self.epoch = 0
        self.training = False

    # --- array-like ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.channels, *self.size)

    @property
    def ndim(self) -> int:
        return 4

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        # np.asarray would silently decode every file into memory: make that an error instead
        raise TypeError(
            "ImageFiles is decoded lazily; read it through a torch DataLoader, not np.asarray"
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageFiles:
        """The images at ``indices`` (same transforms and seed; evaluation mode, epoch 0)."""
        idx = np.asarray(indices, dtype=np.int64)
        return ImageFiles(
            [self.paths[i] for i in idx],
            size=self.size,
            resize=self.resize,
            channels=self.channels,
            augment=self.augment,
            pad=self.pad,
            seed=self.seed,
            ids=self.ids[idx],
        )

    # --- modes --------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> ImageFiles:
        """Training mode draws random crops/flips (when ``augment``); returns self."""
        self.training = bool(mode)
        return self

    def eval(self) -> ImageFiles:
        return self.train(False)

    def set_epoch(self, epoch: int) -> None:
        """The epoch that, with the seed and the image, decides its augmentation."""
        self.epoch = int(epoch)

    # --- reading ------------------------------------------------------------------------------

    def load(self, i: int) -> Image.Image:
        """Image ``i`` decoded and converted to the channel mode, untransformed."""
        path = self.paths[i]
        try:
            with Image.open(path) as im:
                scale = self.resize / min(im.size)
                if scale < 1:  # JPEG: decode at a reduced scale still >= the resize (faster)
                    im.draft(MODES[self.channels], tuple(math.ceil(v * scale) for v in im.size))
                return im.convert(MODES[self.channels])  # convert forces the full decode
        except FileNotFoundError:
            raise DataError(f"{path}: image file not found") from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(
                f"{path}: cannot decode the image ({e}); the file is truncated or corrupt. "
                f"Replace it with the official file at {path}"
            ) from e

    def __getitem__(self, i: int) -> torch.Tensor:
        i = int(i)
        img = _resize_shorter(self.load(i), self.resize)
        a = np.asarray(img, dtype=np.uint8)
        if a.ndim == 2:
            a = a[:, :, None]
        if self.training and self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, int(self.ids[i])])
            a = _random_crop(a, self.size, self.pad, rng)
            if rng.random() < 0.5:
                a = a[:, ::-1]
        else:
            a = _center_crop(a, self.size)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))

    def __repr__(self) -> str:
        mode = "train" if self.training else "eval"
        return f"ImageFiles(n={len(self)}, size={self.size}, resize={self.resize}, mode={mode})"


def _resize_shorter(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    if min(w, h) == side:
        return img
    scale = side / min(w, h)
    new = (max(side, round(w * scale)), max(side, round(h * scale)))
    return img.resize(new, Image.Resampling.BILINEAR)


def _center_crop(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    top, left = (a.shape[0] - size[0]) // 2, (a.shape[1] - size[1]) // 2
    return a[top : top + size[0], left : left + size[1]]


def _random_crop(
    a: np.ndarray, size: tuple[int, int], pad: int, rng: np.random.Generator
) -> np.ndarray:
    if pad:
        a = np.pad(a, ((pad, pad), (pad, pad), (0, 0)))
    top = int(rng.integers(0, a.shape[0] - size[0] + 1))
    left = int(rng.integers(0, a.shape[1] - size[1] + 1))
    return a[top : top + size[0], left : left + size[1]]
