"""``shapes``: a generated 32x32 RGB image set whose ground-truth concepts are known.

Each image holds one shape drawn on a plain background. Its attributes are drawn independently
and uniformly:

=============  =========================================  ==========================
attribute      values                                     used by the class rule?
=============  =========================================  ==========================
shape          circle, square, triangle, cross            yes (which group)
colour         red, yellow, green, blue                   yes, for circles/squares
size           small, large                               yes, for triangles/crosses
position       top_left, top_right, bottom_left,          no
               bottom_right (the quadrant)
background     dark, light                                no
=============  =========================================  ==========================

The class combines attributes, so a classifier must too (each class has probability 1/4):

* ``circle_or_square_warm``: circle or square, red or yellow;
* ``circle_or_square_cool``: circle or square, green or blue;
* ``triangle_or_cross_large``: triangle or cross, large;
* ``triangle_or_cross_small``: triangle or cross, small.

The one-hot attribute values are the concepts (``shape=circle``, ``colour=red``, ...). Within
its value an attribute still varies (exact colour, radius, place in the quadrant, background
grey level), and Gaussian pixel noise of standard deviation ``noise`` (a fraction of 255) is
added. Everything is drawn from ``seed`` (default: the split seed).
"""

from __future__ import annotations

import numbers

import numpy as np

from .arrays import Part, build_dataset
from .dataset import DataError, Dataset
from .registry import Ctx, register

SIDE = 32
ATTRIBUTES: dict[str, list[str]] = {
    "shape": ["circle", "square", "triangle", "cross"],
    "colour": ["red", "yellow", "green", "blue"],
    "size": ["small", "large"],
    "position": ["top_left", "top_right", "bottom_left", "bottom_right"],
    "background": ["dark", "light"],
}
CLASSES = [
    "circle_or_square_warm",
    "circle_or_square_cool",
    "triangle_or_cross_large",
    "triangle_or_cross_small",
]
RGB = {"red": (215, 45, 40), "yellow": (225, 205, 40), "green": (45, 175, 65),
       "blue": (45, 80, 215)}  # fmt: skip
GREY = {"dark": (25, 70), "light": (170, 220)}  # background level range
RADIUS = {"small": (3.5, 4.5), "large": (6.0, 7.5)}
CONCEPT_NAMES = [f"{a}={v}" for a, values in ATTRIBUTES.items() for v in values]


def class_of(shape: np.ndarray, colour: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The class rule on attribute indices (see the module doc)."""
    round_group = shape <= 1  # circle, square
    warm = colour <= 1  # red, yellow
    small = size == 0
    return np.where(round_group, np.where(warm, 0, 1), np.where(small, 3, 2))


def _mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Pixels (centres) inside the shape."""
    y, x = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":  # side 1.7 r: about the circle's area
        return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    if shape == "triangle":  # apex up, base 0.75 r below the centre
        depth = dy + r  # 0 at the apex
        return (dy <= 0.75 * r) & (depth >= 0) & (np.abs(dx) <= depth / 1.75)
    arm = 0.35 * r  # cross: a plus sign
    return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))


def draw(attrs: dict[str, int], rng: np.random.Generator, noise: float) -> np.ndarray:
    """One uint8 image (3, 32, 32) for attribute indices ``attrs``."""
    value = {a: ATTRIBUTES[a][attrs[a]] for a in ATTRIBUTES}
    lo, hi = GREY[value["background"]]
    img = np.full((3, SIDE, SIDE), rng.uniform(lo, hi))
    r = rng.uniform(*RADIUS[value["size"]])
    q = attrs["position"]
    x0, y0 = (q % 2) * SIDE / 2, (q // 2) * SIDE / 2  # the quadrant's corner
    cx = x0 + rng.uniform(r + 0.5, SIDE / 2 - r - 0.5)
    cy = y0 + rng.uniform(r + 0.5, SIDE / 2 - r - 0.5)
    colour = np.clip(np.array(RGB[value["colour"]]) + rng.uniform(-20, 20, 3), 0, 255)
    img[:, _mask(value["shape"], cx, cy, r)] = colour[:, None]
    if noise > 0:
        img += rng.normal(0.0, noise * 255.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def generate(n: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (n, 3, 32, 32) uint8, classes (n,), concepts (n, 16) uint8)."""
    rng = np.random.default_rng(seed)
    idx = {a: rng.integers(0, len(v), n) for a, v in ATTRIBUTES.items()}
    X = np.stack([draw({a: int(idx[a][i]) for a in idx}, rng, noise) for i in range(n)])
    onehots = [np.eye(len(v), dtype=np.uint8)[idx[a]] for a, v in ATTRIBUTES.items()]
    y = class_of(idx["shape"], idx["colour"], idx["size"]).astype(np.int64)
    return X, y, np.concatenate(onehots, axis=1)


@register(
    "shapes",
    kind="image",
    task="multiclass",
    description="Generated 3x32x32 shapes; class = rule on shape, colour, size; "
    "16 ground-truth concepts",
    source="generated (seed = split_seed unless seed= is given)",
)
def shapes(ctx: Ctx, *, n: int = 6000, noise: float = 0.05, seed: int | None = None) -> Dataset:
    """``n`` images; ``noise``: pixel noise std as a fraction of 255, in [0, 0.5]."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 40:
        raise DataError(f"shapes: n must be an integer >= 40, not {n!r}")
    if not isinstance(noise, numbers.Real) or isinstance(noise, bool) or not 0 <= noise <= 0.5:
        raise DataError(f"shapes: noise must be a number in [0, 0.5], not {noise!r}")
    if seed is not None and (not isinstance(seed, numbers.Integral) or seed < 0):
        raise DataError(f"shapes: seed must be None or an integer >= 0, not {seed!r}")
    seed = ctx.seed if seed is None else int(seed)
    X, y, concepts = generate(int(n), seed, float(noise))
    return build_dataset(
        "shapes",
        "image",
        Part(X, y, concepts),
        None,
        class_names=CLASSES,
        seed=ctx.seed,
        val_size=ctx.val_size,
        test_size=ctx.test_size,
        concept_names=CONCEPT_NAMES,
        meta={
            "source": "generated shapes",
            "file": None,
            "files": [],
            "shapes": {"n": int(n), "noise": float(noise), "seed": seed},
            "class_rule": {
                CLASSES[0]: "shape in {circle, square} and colour in {red, yellow}",
                CLASSES[1]: "shape in {circle, square} and colour in {green, blue}",
                CLASSES[2]: "shape in {triangle, cross} and size = large",
                CLASSES[3]: "shape in {triangle, cross} and size = small",
            },
            "irrelevant_attributes": ["position", "background"],
        },
    )
