"""ARCHITECTURE.md and the code cannot drift: its layer table is the import rule the package
keeps, and its "how to add" counts are what adding an estimator, a dataset and a family takes,
done once for real on a copy of the source and trained through the public API."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_layout import MODULES, imports

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "ARCHITECTURE.md"


def table_rows(heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after ``heading``, cells stripped of `."""
    text = DOC.read_text()
    section = text[text.index(heading) :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip().strip("`") for c in line.strip("|").split("|")])
        elif rows:
            break
    return [r for r in rows[1:] if not set(r[0]) <= set("-: ")]  # drop the header's rule


def layers() -> dict[str, int]:
    """Module prefix -> layer number, from the doc's layer table."""
    found = {}
    for number, prefixes, *_ in table_rows("## Layers"):
        for prefix in re.findall(r"htaf[\w.]*", prefixes):
            found[prefix] = int(number)
    return found


def layer_of(module: str, table: dict[str, int]) -> int:
    # "htaf" is the package's __init__ alone: a new top-level module must get its own row.
    matches = [p for p in table if module == p or (p != "htaf" and module.startswith(p + "."))]
    if not matches:
        raise AssertionError(f"{module} is in no layer of ARCHITECTURE.md's table")
    return table[max(matches, key=len)]


def test_the_layer_table_names_every_module():
    table = layers()
    assert {"htaf.functional", "htaf.estimators", "htaf.families", "htaf.cli"} <= set(table)
    for module in MODULES:
        layer_of(module, table)


def test_no_module_imports_a_layer_above_its_own():
    table = layers()
    bad = [
        f"{m} (layer {layer_of(m, table)}) imports {i} (layer {layer_of(i, table)})"
        for m in sorted(MODULES)
        for i in sorted(imports(m))
        if layer_of(i, table) > layer_of(m, table)
    ]
    assert not bad, "\n".join(bad)


def files_touched() -> dict[str, int]:
    """What the doc's "how to add" table claims: thing -> source files touched."""
    return {row[0]: int(row[1]) for row in table_rows("## How to add")}


def test_the_recipe_table_covers_the_five_recipes():
    counts = files_touched()
    assert set(counts) == {"an estimator", "a dataset", "a family", "a study", "a command"}
    assert all(1 <= n <= 3 for n in counts.values())


ESTIMATOR = '''

@register
class Cube(Estimator):
    """forward: H(x); backward: 3·alpha / (2(1 + |alpha·x|)^4) (a steeper fast sigmoid)."""

    name = "cube_surrogate"
    description = "a test surrogate (alpha=4)"
    source = "tests/test_architecture.py"
    forward_formula = "H(x)  [smooth: 1/2 + sign(x)(1 − (1 + alpha|x|)^−3)/2]"
    backward_formula = "3·alpha / (2(1 + alpha|x|)^4)"
    defaults = {"alpha": 4.0}

    def smooth(self, x: Tensor) -> Tensor:
        return 0.5 + torch.sign(x) * (1 - (1 + self.alpha * x.abs()) ** -3) / 2

    def grad(self, x: Tensor) -> Tensor:
        return 3 * self.alpha / (2 * (1 + self.alpha * x.abs()) ** 4)
'''

DATASET = """

@register(
    "two_blobs",
    task="binary",
    description="Two Gaussian blobs, 400 x 6 (a test set)",
    source="generated (seed = split_seed)",
)
def two_blobs(ctx: Ctx, *, n: int = 400) -> Table:
    rng = np.random.default_rng(ctx.seed)
    y = (rng.random(n) < 0.5).astype(np.float64)
    X = rng.standard_normal((n, 6)) + 1.5 * (2 * y[:, None] - 1)
    names = [f"x{j}" for j in range(6)]
    return _table("two_blobs", X, y, names, task="binary", classes=[0.0, 1.0], meta={})
"""

FAMILY = '''"""A test family: one hidden layer of steps."""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

from htaf.estimators import activation
from htaf.families import DataSpec, Family


@dataclass(frozen=True)
class TinyOptions:
    width: int = 32


def build(options: TinyOptions, spec: DataSpec, estimator: str, params: Mapping[str, float]):
    d = math.prod(spec.input_shape)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, options.width),
                         activation(estimator, **params), nn.Linear(options.width, spec.n_out))


FAMILY = Family(name="tiny", description="one hidden layer of steps", options=TinyOptions,
                build=build, compare={"dataset": "two_blobs", "epochs": 5})
'''


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def touched(root: Path, before: dict[str, str]) -> int:
    after = snapshot(root)
    return sum(after.get(k) != before.get(k) for k in set(before) | set(after))


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def add_estimator(htaf: Path) -> None:
    append(htaf / "estimators" / "surrogates.py", ESTIMATOR)


def add_dataset(htaf: Path) -> None:
    append(htaf / "data" / "bundled.py", DATASET)


def add_family(htaf: Path) -> None:
    (htaf / "families" / "tiny.py").write_text(FAMILY)
    registry = htaf / "families" / "__init__.py"
    text = registry.read_text()
    line = '    "snn": "htaf.families.snn",\n'
    assert line in text, "MODULES moved: update this recipe and ARCHITECTURE.md"
    registry.write_text(text.replace(line, line + '    "tiny": "htaf.families.tiny",\n'))


TRAIN = """
import json, sys, htaf
run = htaf.train_one({"family": "tiny", "dataset": "two_blobs", "estimator": "cube_surrogate",
                      "epochs": 5, "lr": 0.01, "batch_size": 32}, out=sys.argv[1],
                      progress=False)
model = htaf.load_run(sys.argv[1]).model()
print(json.dumps({"metrics": run.metrics, "estimators": [type(m).__name__ for m in
                  htaf.estimators.estimators_in(model)]}))
"""


@pytest.mark.slow
def test_adding_an_estimator_a_dataset_and_a_family_touches_what_the_doc_says(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "htaf", src / "htaf", ignore=shutil.ignore_patterns("__py*"))
    claims = files_touched()
    for thing, recipe in [("an estimator", add_estimator), ("a dataset", add_dataset),
                          ("a family", add_family)]:  # fmt: skip
        before = snapshot(src)
        recipe(src / "htaf")
        assert touched(src, before) == claims[thing], thing
    out = subprocess.run(
        [sys.executable, "-c", TRAIN, str(tmp_path / "run")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)},
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["estimators"] == ["Cube"]
    assert result["metrics"]["test_accuracy_hard"] > 0.9  # well-separated blobs, exact steps
