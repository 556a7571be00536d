"""``shapes``: a generated 32x32 RGB image set whose ground-truth concepts are known.

Each image holds one shape on a plain background. Two attributes are drawn independently and
uniformly, and the class is the pair, so every attribute value matters to the class:

=========  ===========================================  ================================
attribute  values (the defaults)                        more, with ``kinds`` / ``colours``
=========  ===========================================  ================================
shape      ring, square, triangle, cross                x, down_triangle (``kinds`` 5, 6)
colour     red, yellow, green, blue                     magenta, cyan, purple, pink
                                                        (``colours`` 5 to 8)
=========  ===========================================  ================================

That gives ``kinds × colours`` classes, 16 at the defaults (``red_ring``, ``yellow_ring``, ...,
``blue_cross``; up to 48 with ``kinds=6, colours=8``). The ``kinds + colours`` one-hot attribute
values are the ground-truth concepts (``shape=ring``, ``colour=red``...; 8 at the defaults). A
linear classifier on them is exact: class ``(s, c)`` scores ``[shape=s] + [colour=c]``, which is
2 on its own images and at most 1 elsewhere. So a bottleneck as accurate as the ordinary model
*can* be made of the attributes; whether training finds them is what ``htaf concepts`` measures.
``class_names`` and ``concept_names`` give the names for any sizes; ``CLASSES`` and
``CONCEPT_NAMES`` are the defaults'.

Why every attribute enters the class: implicit concepts are learnt from the labels only, and an
attribute that never changes the label leaves nothing for a node to align with. (An earlier
version listed the quadrant and the background as attributes and grouped colours and shapes in
pairs; no node could recover what the labels never asked for.) The shapes are large (radius 6
to 9 pixels) and each has a part the others lack (the ring's hole, the square's corners, the
triangle's apex, the cross's arms, the x's diagonal arms, the down-triangle's lower apex): a
filled disc differs from a square only by lacking corners, and no concept node singled discs
out (best AUROC 0.71-0.80 over seeds). ``masks`` says how the two extra kinds were chosen.

Nuisance factors vary within each class and are not concepts: the shape's place (anywhere it
fits), its radius (6 to 9 pixels), the exact colour (±20 per channel), the background's grey
level, and Gaussian pixel noise of standard deviation ``noise`` (a fraction of 255). Everything
is drawn from ``seed`` (default: the split seed).

Difficulty. At the defaults every bottleneck is above 99.5%, too easy to tell estimators apart,
so three more nuisances can be turned up (all nuisance: the class and the concepts stay the
big shape's):

* ``clutter``: that many distractor shapes, drawn beneath the main one: any of the active
  kinds, any of the active colours (±20), radius 2.5 to 4 pixels, anywhere in the image. The
  class is the *large* shape's, so the network must tell a shape's colour from a distractor's;
* ``occlusion``: a band of the background's grey, ``occlusion · 2r`` wide, horizontal or
  vertical, crosses the shape's bounding box (it may hide the ring's hole or a cross's arm);
* ``noise``: as above.

``difficulty`` (0 to 4) sets the three together (``LEVELS``); an option given by name wins over
the level's. Level 0 is the set as it was before the knob, image for image: the distractors and
bands are drawn from a second generator, ``default_rng([seed, 1])``, so the first one's stream
is unchanged.

=====  =====  =======  =========
level  noise  clutter  occlusion
=====  =====  =======  =========
0      0.05   0        0
1      0.10   1        0.1
2      0.15   2        0.15
3      0.20   3        0.2
4      0.25   4        0.3
=====  =====  =======  =========

Occlusion costs the most accuracy of the three (the README's ICBM section has the figures), so
the levels raise it slowly.

More classes. ``kinds`` (4 to 6) and ``colours`` (4 to 8) are options by name, apart from the
levels. At the defaults the images, labels and concepts are those without the options, image
for image: the generators draw in the same order, and the first four kinds and colours are the
original ones.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

from .arrays import Part, build_dataset
from .dataset import DataError, Dataset
from .registry import Ctx, register

SIDE = 32
#: every shape kind and colour, in the order ``kinds`` and ``colours`` take them
SHAPE_KINDS = ["ring", "square", "triangle", "cross", "x", "down_triangle"]
COLOURS = ["red", "yellow", "green", "blue", "magenta", "cyan", "purple", "pink"]
# The four extra colours: a greedy search over RGB (steps of 5, channels 30-235), each in turn the
# farthest from the colours before it and from the background greys (g, g, g), g in 25-220.
# Nearest pairs: pink-magenta 107, pink-red 108, purple-magenta 110, purple-blue 113 (the
# defaults' nearest pair is 160); distance to the grey line >= 110 (the defaults' green: 99).
# The ±20 jitter moves a colour at most 35, so no two colours' draws overlap.
PALETTE = np.array(
    [(215, 45, 40), (225, 205, 40), (45, 175, 65), (45, 80, 215),
     (235, 30, 235), (30, 235, 235), (140, 30, 180), (235, 80, 140)],
    dtype=float,
)  # fmt: skip
KINDS_RANGE = (4, len(SHAPE_KINDS))
COLOURS_RANGE = (4, len(COLOURS))
#: the default attributes (``kinds=4, colours=4``)
ATTRIBUTES: dict[str, list[str]] = {"shape": SHAPE_KINDS[:4], "colour": COLOURS[:4]}
RGB = PALETTE[:4]  # the default palette
GREY = (25.0, 220.0)  # background level range
RADIUS = (6.0, 9.0)  # pixels
MIN_PER_CLASS = 10


def attributes(kinds: int = 4, colours: int = 4) -> dict[str, list[str]]:
    """The attribute values with ``kinds`` shape kinds and ``colours`` colours."""
    return {"shape": SHAPE_KINDS[:kinds], "colour": COLOURS[:colours]}


def class_names(kinds: int = 4, colours: int = 4) -> list[str]:
    """``colour_shape`` for every class, in class order (``class_of``)."""
    a = attributes(kinds, colours)
    return [f"{colour}_{shape}" for shape in a["shape"] for colour in a["colour"]]


def concept_names(kinds: int = 4, colours: int = 4) -> list[str]:
    """``shape=...`` then ``colour=...``: the concepts' columns."""
    return [f"{a}={v}" for a, values in attributes(kinds, colours).items() for v in values]


CLASSES = class_names()
CONCEPT_NAMES = concept_names()
#: difficulty level -> (noise, clutter, occlusion); see the module doc.
LEVELS: dict[int, tuple[float, int, float]] = {
    0: (0.05, 0, 0.0),
    1: (0.10, 1, 0.1),
    2: (0.15, 2, 0.15),
    3: (0.20, 3, 0.2),
    4: (0.25, 4, 0.3),
}
DISTRACTOR_RADIUS = (2.5, 4.0)  # pixels, below the main shape's 6
MAX_CLUTTER = 8
MAX_OCCLUSION = 0.8  # of the shape's diameter: a wider band leaves too little shape to classify


def class_of(shape: np.ndarray, colour: np.ndarray, colours: int = 4) -> np.ndarray:
    """The class of attribute indices: ``shape * colours + colour`` (see ``class_names``)."""
    return np.asarray(shape) * colours + np.asarray(colour)


def masks(shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Pixels (centres) inside each shape, ``(n, 32, 32)`` bool; shape indices as in
    ``SHAPE_KINDS``. A ring has inner radius r / 2; a square's side is 1.7 r (about a disc's
    area); a triangle points up; a cross is a plus sign with arms 0.7 r wide; an x is a cross
    turned 45° with arms 1.2 r long (to the square's corners); a down-triangle is the triangle
    upside down.

    The x and the down-triangle were chosen among a diamond, a horizontal bar, an x and a
    down-triangle by their overlap with the four others at r = 7.5 (the best IoU over shifts of
    up to 3 px and radii ±15%): diamond 0.79 (with the cross), x 0.76 (square), bar 0.62 (cross,
    but a bar is a cross's arm, a part the cross has), down-triangle 0.70 (square, as the
    triangle's); a disc and a square, the pair no node told apart, score 0.88. A small CNN
    trained 4 epochs on the eight confused the diamond with the cross most; on the six it told
    the kind apart 97% of the time after 8 epochs (any colour, noise 0.1), no pair standing out."""
    y, x = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    dx, dy = x[None] - cx[:, None, None], y[None] - cy[:, None, None]
    r = r[:, None, None]
    ring = (dx**2 + dy**2 <= r**2) & (dx**2 + dy**2 >= (0.5 * r) ** 2)
    square = (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    depth = dy + r  # 0 at the apex; the base lies 0.75 r below the centre
    triangle = (dy <= 0.75 * r) & (depth >= 0) & (np.abs(dx) <= depth / 1.75)
    arm = 0.35 * r
    cross = ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    kinds = [ring, square, triangle, cross]
    if shape.size and shape.max() >= len(kinds):
        u, v = np.abs(dx + dy) / np.sqrt(2), np.abs(dx - dy) / np.sqrt(2)
        kinds.append(((u <= arm) & (v <= 1.2 * r)) | ((v <= arm) & (u <= 1.2 * r)))
        rise = r - dy  # 0 at the lower apex; the top edge lies 0.75 r above the centre
        kinds.append((dy >= -0.75 * r) & (rise >= 0) & (np.abs(dx) <= rise / 1.75))
    return np.choose(shape[:, None, None], kinds)


@functools.lru_cache(maxsize=2)
def generate(
    n: int,
    seed: int,
    noise: float,
    clutter: int = 0,
    occlusion: float = 0.0,
    kinds: int = 4,
    colours: int = 4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (n, 3, 32, 32) uint8, classes (n,), concepts (n, kinds + colours) uint8),
    read-only.

    Cached: a grid of runs in one process draws the set once, not once per run (2 s each)."""
    rng = np.random.default_rng(seed)
    values = attributes(kinds, colours)
    idx = {a: rng.integers(0, len(v), n) for a, v in values.items()}
    r = rng.uniform(*RADIUS, n)
    cx, cy = (rng.uniform(r + 0.5, SIDE - r - 0.5) for _ in range(2))
    colour = np.clip(PALETTE[idx["colour"]] + rng.uniform(-20, 20, (n, 3)), 0, 255)
    background = rng.uniform(*GREY, n)
    inside = masks(idx["shape"], cx, cy, r)[:, None]
    img = np.broadcast_to(background[:, None, None, None], (n, 3, SIDE, SIDE))
    extra = np.random.default_rng([seed, 1])  # level 0 keeps the first stream's images
    for _ in range(clutter):
        img = draw_distractor(img, extra, kinds, colours)
    img = np.where(inside, colour[:, :, None, None], img)
    if occlusion > 0:
        img = np.where(
            band(extra, cx, cy, r, occlusion)[:, None], background[:, None, None, None], img
        )
    if noise > 0:
        img = img + rng.normal(0.0, noise * 255.0, img.shape)
    X = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    onehots = [np.eye(len(v), dtype=np.uint8)[idx[a]] for a, v in values.items()]
    y = class_of(idx["shape"], idx["colour"], colours).astype(np.int64)
    arrays = X, y, np.concatenate(onehots, axis=1)
    for a in arrays:
        a.setflags(write=False)
    return arrays


def draw_distractor(
    img: np.ndarray, rng: np.random.Generator, kinds: int = 4, colours: int = 4
) -> np.ndarray:
    """``img`` with one small shape per image painted on: random kind (of the first ``kinds``),
    colour (of the first ``colours``) and place."""
    n = len(img)
    kind, tone = rng.integers(0, kinds, n), rng.integers(0, colours, n)
    r = rng.uniform(*DISTRACTOR_RADIUS, n)
    cx, cy = (rng.uniform(r + 0.5, SIDE - r - 0.5) for _ in range(2))
    rgb = np.clip(PALETTE[tone] + rng.uniform(-20, 20, (n, 3)), 0, 255)
    return np.where(masks(kind, cx, cy, r)[:, None], rgb[:, :, None, None], img)


def band(
    rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray, r: np.ndarray, width: float
) -> np.ndarray:
    """``(n, 32, 32)`` bool: a band ``width · 2r`` wide across the whole image, horizontal or
    vertical at random, placed uniformly so that it lies within the shape's bounding box."""
    n = len(r)
    w = width * 2 * r
    horizontal = rng.random(n) < 0.5
    centre = np.where(horizontal, cy, cx)
    start = centre - r + rng.random(n) * (2 * r - w)
    y, x = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    along = np.where(horizontal[:, None, None], y[None], x[None])
    return (along >= start[:, None, None]) & (along <= (start + w)[:, None, None])


@register(
    "shapes",
    kind="image",
    task="multiclass",
    description="Generated 3x32x32 shapes; class = (shape, colour): kinds x colours classes "
    "(16 by default, up to 48), kinds + colours ground-truth concepts (8 by default)",
    source="generated (seed = split_seed unless seed= is given)",
)
def shapes(
    ctx: Ctx,
    *,
    n: int = 10000,
    difficulty: int = 0,
    noise: float | None = None,
    clutter: int | None = None,
    occlusion: float | None = None,
    kinds: int = 4,
    colours: int = 4,
    seed: int | None = None,
) -> Dataset:
    """``n`` images at ``difficulty`` 0-4 (``LEVELS``); ``noise`` (pixel noise std as a fraction
    of 255, in [0, 0.5]), ``clutter`` (distractor shapes, 0-8) and ``occlusion`` (band width as a
    fraction of the shape's diameter, in [0, 0.8]) override the level's value. ``kinds`` (4-6
    shape kinds) and ``colours`` (4-8) set the classes, ``kinds × colours``."""
    kinds = _count("kinds", kinds, KINDS_RANGE)
    colours = _count("colours", colours, COLOURS_RANGE)
    # Every class needs a few images in each of the three stratified splits.
    least = kinds * colours * MIN_PER_CLASS
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < least:
        raise DataError(
            f"shapes: n must be an integer >= {least} ({MIN_PER_CLASS} per class, "
            f"{kinds * colours} classes), not {n!r}"
        )
    noise, clutter, occlusion = level_settings(difficulty, noise, clutter, occlusion)
    if seed is not None and (not isinstance(seed, numbers.Integral) or seed < 0):
        raise DataError(f"shapes: seed must be None or an integer >= 0, not {seed!r}")
    seed = ctx.seed if seed is None else int(seed)
    X, y, concepts = generate(int(n), seed, noise, clutter, occlusion, kinds, colours)
    settings = {"n": int(n), "difficulty": int(difficulty), "noise": noise, "clutter": clutter,
                "occlusion": occlusion, "kinds": kinds, "colours": colours,
                "seed": seed}  # fmt: skip
    return build_dataset(
        "shapes",
        "image",
        Part(X, y, concepts),
        None,
        class_names=class_names(kinds, colours),
        seed=ctx.seed,
        val_size=ctx.val_size,
        test_size=ctx.test_size,
        concept_names=concept_names(kinds, colours),
        meta={
            "source": "generated shapes",
            "file": None,
            "files": [],
            "shapes": settings,
            "class_rule": f"class = (shape, colour): shape * {colours} + colour "
            f"({kinds} shapes x {colours} colours = {kinds * colours} classes)",
            "nuisance": [
                "position",
                "radius",
                "exact colour",
                "background grey",
                "noise",
                "distractor shapes",
                "occluding band",
            ],
        },
    )


def level_settings(
    difficulty: int, noise: float | None, clutter: int | None, occlusion: float | None
) -> tuple[float, int, float]:
    """(noise, clutter, occlusion): the level's, with the ones given by name put in, checked."""
    if (
        not isinstance(difficulty, numbers.Integral)
        or isinstance(difficulty, bool)
        or (difficulty not in LEVELS)
    ):
        raise DataError(
            f"shapes: difficulty must be an integer from 0 to {max(LEVELS)}, not {difficulty!r}"
        )
    level = LEVELS[int(difficulty)]
    noise = level[0] if noise is None else noise
    clutter = level[1] if clutter is None else clutter
    occlusion = level[2] if occlusion is None else occlusion
    if not _real(noise) or not 0 <= noise <= 0.5:
        raise DataError(f"shapes: noise must be a number in [0, 0.5], not {noise!r}")
    if (
        not isinstance(clutter, numbers.Integral)
        or isinstance(clutter, bool)
        or not (0 <= clutter <= MAX_CLUTTER)
    ):
        raise DataError(
            f"shapes: clutter must be an integer from 0 to {MAX_CLUTTER}, not {clutter!r}"
        )
    if not _real(occlusion) or not 0 <= occlusion <= MAX_OCCLUSION:
        raise DataError(
            f"shapes: occlusion must be a number in [0, {MAX_OCCLUSION}], not {occlusion!r}"
        )
    return float(noise), int(clutter), float(occlusion)


def _count(name: str, value: object, allowed: tuple[int, int]) -> int:
    """``value`` as an int, if it is an integer in ``allowed`` (inclusive)."""
    lo, hi = allowed
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not lo <= value <= hi:
        raise DataError(f"shapes: {name} must be an integer from {lo} to {hi}, not {value!r}")
    return int(value)


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
