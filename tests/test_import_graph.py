"""The import graph runs one way (sensor_manager -> uploader -> fleetcore) and no modules import each other in a ring.

Imports are read from the source (ast), lazy imports inside functions included: a lazy import is
still a dependency, only one that fails later.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fleetcore", "uploader", "sensor_manager")
# The ring query and container_query formed until one ReadingSource protocol replaced their five dispatches.
KNOWN_CYCLE = frozenset({"sensor_manager.observe.query", "sensor_manager.observe.container_query"})


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports (`from pkg import mod` counts as importing pkg.mod when that is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
            found.update(submodules)
            if len(submodules) < len(node.names):  # names defined in `base` itself, not only its submodules
                found.add(base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def top(module: str) -> str:
    return module.split(".")[0]


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def edges_from(package: str, into: tuple[str, ...]) -> list[str]:
    return sorted(f"{source} -> {target}" for source, targets in import_graph().items() if top(source) == package
                  for target in targets if top(target) in into)


def test_the_uploader_never_imports_sensor_manager():
    assert edges_from("uploader", ("sensor_manager",)) == []


def test_fleetcore_imports_neither_package():
    assert edges_from("fleetcore", ("sensor_manager", "uploader")) == []


def test_no_cycle_between_the_top_level_packages():
    graph: dict[str, set[str]] = {}
    for source, targets in import_graph().items():
        graph.setdefault(top(source), set()).update(top(t) for t in targets if top(t) != top(source))
    assert cycles(graph) == []


def test_no_cycle_between_modules():
    assert [sorted(c) for c in cycles(import_graph())] == []


def test_no_known_cycle_left_in_observe():
    assert KNOWN_CYCLE not in cycles(import_graph())


def test_the_cycle_finder_finds_a_ring():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
