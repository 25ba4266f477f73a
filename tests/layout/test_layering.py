"""The import layering of search/, space/ and mnist_arch/, read from the source (ast), not by importing.

Data flows one way: CLI -> commands -> run side -> export -> results (reading a study) -> study and
storage -> space -> mnist_arch. Function-level (lazy) imports count like the others: they run too;
imports under `if TYPE_CHECKING:` do not.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from tests.helpers import REPO

PACKAGES = ("search", "space", "mnist_arch")
# Top to bottom: a module may import its own layer and the ones below it, never one above.
LAYERS = (
    "search.cli",
    "search.commands",
    "search.run",
    "search.export",
    "search.results",
    "search.study",
    "space",
    "mnist_arch",
)
# The longest chain of imports, counted in modules. It was 11 before the layout by role; the pixel
# normalisation in its own module keeps the trainer off the data loader (mnist_arch's chain is
# fused -> members -> trainer -> augment -> config).
MAX_DEPTH = 8


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _executed(node: ast.AST):
    """Every node below `node`, except the bodies of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for orelse in child.orelse for n in [orelse, *_executed(orelse)])
            continue
        yield child
        yield from _executed(child)


@functools.cache
def imports_of(name: str) -> frozenset[str]:
    """The project modules `name` imports (a `from package import module` names the module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _executed(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    found.add(f"{base}.{alias.name}")
                elif base in MODULES:
                    found.add(base)
    found.discard(name)
    return frozenset(found)


def layer_of(name: str) -> int:
    for index, layer in enumerate(LAYERS):
        if name == layer or name.startswith(layer + "."):
            return index
    return -1  # the package roots (search/__init__.py): its public names load lazily, by name


def test_every_module_is_in_a_layer() -> None:
    loose = [name for name in MODULES if layer_of(name) < 0 and name not in PACKAGES]
    assert not loose, f"modules outside the layers: {loose}"
    top = sorted(p.name for p in (REPO / "search").iterdir() if p.suffix == ".py")
    assert top == ["__init__.py", "cli.py"], top


def test_nothing_imports_upward() -> None:
    upward = [
        f"{name} imports {imported}"
        for name in MODULES
        for imported in imports_of(name)
        if layer_of(name) >= 0 and layer_of(imported) < layer_of(name)
    ]
    assert not upward, "\n".join(upward)


def test_reading_a_study_imports_nothing_that_runs() -> None:
    for name in MODULES:
        if layer_of(name) in (LAYERS.index("search.results"), LAYERS.index("search.study")):
            assert not any(m.startswith("search.run") for m in imports_of(name)), name


def test_no_import_cycles() -> None:
    def reaches(start: str, target: str) -> bool:
        seen, todo = set(), list(imports_of(start))
        while todo:
            name = todo.pop()
            if name == target:
                return True
            if name not in seen:
                seen.add(name)
                todo.extend(imports_of(name))
        return False

    cycles = [name for name in MODULES if reaches(name, name)]
    assert not cycles, f"modules on an import cycle: {cycles}"


def longest_chain() -> list[str]:
    @functools.cache
    def chain(name: str) -> tuple[str, ...]:
        return (name, *max((chain(m) for m in imports_of(name)), key=len, default=()))

    return list(max((chain(name) for name in MODULES), key=len))


def test_import_depth() -> None:
    chain = longest_chain()
    assert len(chain) <= MAX_DEPTH, " -> ".join(chain)
