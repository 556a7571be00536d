"""UCI regression tables: wine quality (red/white) and abalone."""

from __future__ import annotations

import numpy as np

from .dataset import DataError
from .files import find_file, read_csv, require_columns
from .preprocess import Table
from .registry import Ctx, register

UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
WINE_URL = UCI + "/wine-quality/winequality-{}.csv"
WINE_COLUMNS = (
    "fixed acidity", "volatile acidity", "citric acid", "residual sugar", "chlorides",
    "free sulfur dioxide", "total sulfur dioxide", "density", "pH", "sulphates", "alcohol",
    "quality",
)  # fmt: skip
ABALONE_URL = UCI + "/abalone/abalone.data"
ABALONE_COLUMNS = [
    "Sex", "Length", "Diameter", "Height", "Whole weight", "Shucked weight", "Viscera weight",
    "Shell weight", "Rings",
]  # fmt: skip


def _wine(ctx: Ctx, colour: str, dataset: str) -> Table:
    name = f"winequality-{colour}.csv"
    url = WINE_URL.format(colour)
    path = find_file(dataset, (name,), ctx.data_dir, ctx.download, url)
    header, cols = read_csv(path, delimiter=";")  # UCI: semicolons, quoted header
    require_columns(path, header, WINE_COLUMNS)
    t = Table.from_columns(path, header, cols, "quality", task="regression", meta={"source": url})
    t.require_numeric(WINE_COLUMNS)
    return t


def _wine_quality(ctx: Ctx, variant: str, dataset: str = "wine_quality") -> Table:
    """``dataset`` is the registered name that file-not-found errors report."""
    if variant not in ("red", "white", "both"):
        raise DataError(f"wine_quality: variant must be 'red', 'white' or 'both', not {variant!r}")
    if variant != "both":
        return _wine(ctx, variant, dataset)
    red, white = _wine(ctx, "red", dataset), _wine(ctx, "white", dataset)
    red.features["is_red"] = np.ones(len(red.y))
    white.features["is_red"] = np.zeros(len(white.y))
    t = Table.concat([red, white])
    t.meta = {"source": f"{WINE_URL.format('red')} + {WINE_URL.format('white')}"}
    return t


WINE_FILES = ("winequality-red.csv", "winequality-white.csv")


@register(
    "wine_quality",
    task="regression",
    description="UCI wine quality (red+white, 6497 x 11 + is_red), target quality",
    source=UCI + "/wine-quality/",
    files=WINE_FILES,
)
def wine_quality(ctx: Ctx, *, variant: str = "both") -> Table:
    """``variant``: "red", "white" or "both" (both adds a 0/1 ``is_red`` feature)."""
    return _wine_quality(ctx, variant)


@register(
    "wine_quality_red",
    task="regression",
    description="UCI wine quality, red only (1599 x 11)",
    source=WINE_URL.format("red"),
    files=WINE_FILES[:1],
)
def wine_quality_red(ctx: Ctx) -> Table:
    return _wine_quality(ctx, "red", "wine_quality_red")


@register(
    "wine_quality_white",
    task="regression",
    description="UCI wine quality, white only (4898 x 11)",
    source=WINE_URL.format("white"),
    files=WINE_FILES[1:],
)
def wine_quality_white(ctx: Ctx) -> Table:
    return _wine_quality(ctx, "white", "wine_quality_white")


@register(
    "abalone",
    task="regression",
    description="UCI abalone, 4177 x 8 (Sex one-hot), target Rings",
    source=ABALONE_URL,
    files=("abalone.data",),
)
def abalone(ctx: Ctx) -> Table:
    path = find_file("abalone", ("abalone.data",), ctx.data_dir, ctx.download, ABALONE_URL)
    header, cols = read_csv(path, delimiter=",", names=ABALONE_COLUMNS)  # no header line
    t = Table.from_columns(
        path, header, cols, "Rings", task="regression", meta={"source": ABALONE_URL}
    )
    t.require_numeric(ABALONE_COLUMNS[1:])
    sex = t.features["Sex"]
    if sex.dtype != object:  # Sex is categorical even if a file codes it with numbers
        t.features["Sex"] = np.array([None if v != v else f"{v:g}" for v in sex], dtype=object)
    return t
