"""The package layout: no import cycles, and model families never import what trains them."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
#: What a family may not import: it builds models; the engine, store and CLI sit above it.
ABOVE_FAMILIES = ("htaf.train", "htaf.experiment", "htaf.store", "htaf.cli", "htaf.report")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((SRC / "htaf").rglob("*.py"))}


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def imports(name: str) -> set[str]:
    """htaf modules that ``name`` imports anywhere (lazy imports in functions included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    skip = {id(n) for node in ast.walk(ast.parse(path.read_text())) if _type_checking(node)
            for n in ast.walk(node)}  # fmt: skip
    for node in ast.walk(ast.parse(path.read_text())):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))  # fmt: skip
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


def test_the_scan_sees_imports():
    assert "htaf.families" in imports("htaf.train.run")
    assert {"htaf.train", "htaf.families.dhn"} <= imports("htaf.sklearn")
    assert "htaf.families.options" in imports("htaf.families")


def test_no_import_cycles():
    graph = {m: imports(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = [*path[path.index(n) :], n] if n in path else [m, n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("family", sorted(m for m in MODULES if m.startswith("htaf.families.")))
def test_families_never_import_the_engine_store_or_cli(family):
    bad = sorted(i for i in imports(family) if i.startswith(ABOVE_FAMILIES))
    assert not bad, f"{family} imports {bad}"
