"""The package's import graph has no cycle: no module imports one that imports it back (STYLE.md §1).

The rule, read from the source text (ast), never by importing:
- a module depends on every `aggregator` module it names in `import X` or `from X import name`
  (on `X.name` when that is a module, else on `X`), wherever the statement stands: at module level,
  under `if TYPE_CHECKING:`, or inside a function (a lazy import still couples the two modules, it
  only moves the moment Python notices the cycle to whichever call comes first);
- the package `__init__` that Python runs before a submodule is not a dependency of the submodule:
  a package that re-exports its parts (`parse/__init__` importing `parse.feed`) is not a cycle, but a
  part importing the names of its package back (`publish.websub` importing `aggregator.publish`) is.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "aggregator"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """module → the package's modules it imports, as the rule in this module's docstring counts them."""
    files = {module_name(path, package.parent): path for path in sorted(package.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, name, is_package)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in files else base)
        graph[name] = {_owning_module(target, files) for target in targets} & files.keys() - {name}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, …, a], or None (depth-first search, three colours)."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return None


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _owning_module(target: str, files: Mapping[str, Path]) -> str:
    """`aggregator.fetch.client.Fetcher` → `aggregator.fetch.client`: the longest prefix that is a module."""
    while target and target not in files:
        target = target.rpartition(".")[0]
    return target


def test_no_module_of_the_package_imports_one_that_imports_it_back() -> None:
    graph = import_graph(PACKAGE)
    assert "aggregator.update" in graph and "aggregator.schedule" in graph["aggregator.update"]
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])


def test_a_lazy_import_back_counts_as_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "aggregator"
    (package / "publish").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "publish" / "__init__.py").write_text(
        "def publish():\n    from aggregator.publish.websub import ping\n    ping()\n"
    )
    (package / "publish" / "websub.py").write_text("from aggregator.publish import publish\n")
    (package / "publish" / "atom.py").write_text("from . import websub\nfrom .. import publish\n")
    graph = import_graph(package)
    assert graph["aggregator.publish.atom"] == {"aggregator.publish.websub", "aggregator.publish"}
    assert find_cycle(graph) == ["aggregator.publish", "aggregator.publish.websub", "aggregator.publish"]


def test_a_package_that_imports_its_own_parts_is_no_cycle(tmp_path: Path) -> None:
    package = tmp_path / "aggregator"
    (package / "parse").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "parse" / "__init__.py").write_text("from aggregator.parse.feed import parse_feed\n")
    (package / "parse" / "feed.py").write_text("from aggregator.parse.times import parse_time\n")
    (package / "parse" / "times.py").write_text("import re\n")
    assert find_cycle(import_graph(package)) is None

