"""In-memory image datasets for the ICBM tests: small, fast, with ground-truth concepts.

``shapes_standin`` is deliberately not ``htaf.data.shapes``: the tests train on 60-160 images,
too few for that set's 16 classes. It draws one shape per 32x32 RGB image with five attributes
(shape, colour, size, quadrant, background: 16 one-hot concepts) and four classes from a grouped
rule on shape, colour and size, so that a few epochs separate them and some attributes are
irrelevant to the class (what the alignment tests need).
"""

from __future__ import annotations

import numpy as np

from htaf.data import Dataset

ATTRIBUTES = {
    "shape": ["circle", "square", "triangle", "cross"],
    "colour": ["red", "yellow", "green", "blue"],
    "size": ["small", "large"],
    "position": ["top_left", "top_right", "bottom_left", "bottom_right"],
    "background": ["dark", "light"],
}
CLASSES = ["round_warm", "round_cool", "pointed_large", "pointed_small"]
RGB = np.array([(215, 45, 40), (225, 205, 40), (45, 175, 65), (45, 80, 215)], dtype=float)
SIDE = 32


def _masks(shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray) -> np.ndarray:
    y, x = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    dx, dy = x[None] - cx[:, None, None], y[None] - cy[:, None, None]
    r = r[:, None, None]
    circle = dx**2 + dy**2 <= r**2
    square = (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    depth = dy + r
    triangle = (dy <= 0.75 * r) & (depth >= 0) & (np.abs(dx) <= depth / 1.75)
    arm = 0.35 * r
    cross = ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    return np.choose(shape[:, None, None], [circle, square, triangle, cross])


def generate(n: int, seed: int = 0, noise: float = 0.05):
    """(images (n, 3, 32, 32) uint8, classes (n,), concepts (n, 16) uint8, concept names)."""
    rng = np.random.default_rng(seed)
    idx = {a: rng.integers(0, len(v), n) for a, v in ATTRIBUTES.items()}
    bg = np.where(idx["background"] == 0, rng.uniform(25, 70, n), rng.uniform(170, 220, n))
    r = np.where(idx["size"] == 0, rng.uniform(3.5, 4.5, n), rng.uniform(6.0, 7.5, n))
    q = idx["position"]
    cx = (q % 2) * SIDE / 2 + rng.uniform(r + 0.5, SIDE / 2 - r - 0.5)
    cy = (q // 2) * SIDE / 2 + rng.uniform(r + 0.5, SIDE / 2 - r - 0.5)
    colour = np.clip(RGB[idx["colour"]] + rng.uniform(-20, 20, (n, 3)), 0, 255)
    mask = _masks(idx["shape"], cx, cy, r)[:, None]
    img = np.where(mask, colour[:, :, None, None], bg[:, None, None, None])
    img = img + rng.normal(0.0, noise * 255.0, img.shape)
    X = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    round_, warm, small = idx["shape"] <= 1, idx["colour"] <= 1, idx["size"] == 0
    y = np.where(round_, np.where(warm, 0, 1), np.where(small, 3, 2)).astype(np.int64)
    concepts = np.concatenate(
        [np.eye(len(v), dtype=np.uint8)[idx[a]] for a, v in ATTRIBUTES.items()], axis=1
    )
    names = [f"{a}={v}" for a, values in ATTRIBUTES.items() for v in values]
    return X, y, concepts, names


def image_dataset(X, y, concepts=None, concept_names=None, class_names=None, name="standin"):
    """A 60/15/25 split ``Dataset`` of uint8 images with per-channel normalisation."""
    n = len(y)
    a, b = int(0.6 * n), int(0.75 * n)
    x01 = X.astype(np.float64) / 255.0
    axes = (0, 2, 3)
    normalize = {"mean": x01.mean(axes).tolist(), "std": (x01.std(axes) + 1e-6).tolist()}
    k = int(y.max()) + 1
    parts = {
        "train": slice(0, a),
        "val": slice(a, b),
        "test": slice(b, n),
    }
    fields = {}
    for split, s in parts.items():
        fields[f"X_{split}"], fields[f"y_{split}"] = X[s], y[s]
        if concepts is not None:
            fields[f"concepts_{split}"] = concepts[s]
    return Dataset(
        name=name,
        task="multiclass",
        feature_names=[f"pixel{i}" for i in range(int(np.prod(X.shape[1:])))],
        class_names=class_names or [f"class{i}" for i in range(k)],
        n_classes=k,
        kind="image",
        normalize=normalize,
        concept_names=concept_names,
        meta={"source": "test stand-in"},
        **fields,
    )


def shapes_standin(n: int = 600, seed: int = 0, noise: float = 0.05) -> Dataset:
    X, y, concepts, names = generate(n, seed, noise)
    return image_dataset(X, y, concepts, names, CLASSES, name="shapes")


def digits_images() -> Dataset:
    """scikit-learn digits as (N, 1, 8, 8) uint8 images (no concepts)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = np.rint(d.images * 255 / 16).astype(np.uint8)[:, None]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    return image_dataset(X[order], d.target[order].astype(np.int64), name="digits_images")
