"""The documentation site's promises: one page per model family, each with a Python example
that runs and trains (run here, so the examples cannot rot), and every page in the navigation.
The strict build itself (broken links and references) runs in ``make test`` and ``make docs``.
"""

import importlib
import re
import tempfile
import types
from pathlib import Path

import pytest

from htaf.families import BUILTIN

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def test_every_family_has_a_page_with_an_example_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in sorted(BUILTIN):
        page = DOCS / "families" / f"{name}.md"
        assert page.is_file(), f"no page for family {name}"
        assert python_blocks(page), f"{page.name} has no ```python example"
        assert f"families/{name}.md" in nav, f"{page.name} is not in mkdocs.yml's nav"


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert "index.md" in pages
    assert [p for p in pages if p not in nav] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_family_page_example_runs(name, tmp_path, monkeypatch):
    # the examples' tempfile.mkdtemp() folders land in tmp_path, and are cleaned with it
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    page = DOCS / "families" / f"{name}.md"
    scope: dict = {}
    for code in python_blocks(page):
        exec(compile(code, str(page), "exec"), scope)
    metrics = scope["run"].metrics
    # every example trains through htaf.train_one: it learns (chance is 0.5 or less), judged
    # by the exact binary forward, and writes its run folder where it said
    assert metrics["test_accuracy_hard"] > 0.7
    assert (Path(scope["out"]) / "metrics.json").is_file()
    assert Path(scope["out"]).parent == tmp_path


def reference_targets() -> set[str]:
    """The modules the API reference renders (its ``::: module`` lines)."""
    pages = (DOCS / "api").glob("*.md")
    return {m for p in pages for m in re.findall(r"^::: ([\w.]+)", p.read_text(), re.M)}


def documented(name: str, obj: object, targets: set[str]) -> bool:
    if isinstance(obj, types.ModuleType):
        return obj.__name__ in targets
    homes = [importlib.import_module(t) for t in targets]
    return getattr(obj, "__module__", None) in targets or any(
        getattr(home, name, None) is obj for home in homes
    )


def test_the_api_reference_covers_the_public_names():
    import htaf
    import htaf.estimators

    targets = reference_targets()
    assert {"htaf", "htaf.api", "htaf.sklearn", "htaf.diagnosis"} <= targets
    assert {f"htaf.families.{name}" for name in BUILTIN} <= targets
    public = [(n, getattr(htaf, n)) for n in htaf.__all__ if n != "__version__"]
    public += [(n, getattr(htaf.estimators, n)) for n in htaf.estimators.__all__]
    missing = [n for n, obj in public if not documented(n, obj, targets)]
    assert missing == [], f"public names with no page in docs/api: {missing}"


def test_the_readmes_links_into_the_docs_exist():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs/|ARCHITECTURE)[^)#\s]*)", text)
    assert len(links) >= 10  # the README sends readers into the docs
    assert [link for link in links if not (ROOT / link).is_file()] == []
