"""The package's architecture, checked: layers import downwards only, no module imports itself through others (no
import circle, lazy imports included), modules and functions stay readable, and every error a user can meet derives
from UnidetoxError (so the CLI prints it as one line)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import unidetox
from unidetox.errors import UnidetoxError

PACKAGE = Path(unidetox.__file__).parent
#: the layers, lowest first: a module may import from its own layer and the ones before it
LAYERS = ("core", "scale", "method", "measure", "analysis", "report", "pipeline", "cli")
MAX_MODULE_LINES = 450  # ~400, with room for a module whose fields carry help text (as in unidetox/config/)
MAX_FUNCTION_LINES = 65


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every unidetox import in `tree`, lazy imports inside functions included."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("unidetox"):
            if node.module == "unidetox":
                out += [(node.lineno, f"unidetox.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("unidetox")]
    return out


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_layers_import_downwards_only():
    upward = []
    for path in SOURCES:
        me = module_name(path)
        for line, target in imported(ast.parse(path.read_text(encoding="utf-8"))):
            if LAYERS.index(layer(target)) > LAYERS.index(layer(me)):
                upward.append(f"{me}:{line} ({layer(me)}) imports {target} ({layer(target)})")
    assert not upward, "\n".join(upward)


def test_layer_checker_sees_an_upward_import():
    tree = ast.parse("def f():\n    from unidetox.pipeline import study\n")
    ((line, target),) = imported(tree)
    assert (line, layer(target), layer("unidetox.method.train")) == (2, "pipeline", "method")
    assert LAYERS.index(layer(target)) > LAYERS.index(layer("unidetox.method.train"))


MODULES = {module_name(p): p for p in SOURCES}


def imported_modules(me: str, tree: ast.AST, modules: set[str]) -> set[str]:
    """The package's modules that module `me` imports anywhere in `tree` (top level and inside functions):
    ``from a.b import c`` is the module ``a.b.c`` where that is a module, else ``a.b``; relative imports resolved.
    A package's ``__init__`` counts only where it is imported by name (importing a.b.c runs a.b's ``__init__`` first,
    but that is no edge: a package re-exporting its modules would otherwise be a circle)."""
    out = set()
    package = me if MODULES.get(me, Path()).name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in modules else base)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m in modules and m != me}


def import_graph(trees: dict[str, ast.AST]) -> dict[str, set[str]]:
    """Module -> the modules it imports (:func:`imported_modules`), for every module of `trees`."""
    return {me: imported_modules(me, tree, set(trees)) for me, tree in trees.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle ``[a, b, ..., a]`` through each strongly connected group of `graph` (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while v not in group:
                group.add(stack.pop())
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_circle_in(graph, group) for group in groups)


def _circle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest circle through the first module of `group` (breadth first, inside the group)."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & group):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no circle in {group}")  # pragma: no cover (a group of two or more has one)


def test_no_import_circles():
    graph = import_graph({me: ast.parse(p.read_text(encoding="utf-8")) for me, p in MODULES.items()})
    found = [" -> ".join(c) for c in circles(graph)]
    assert not found, "import circles (lazy imports included):\n" + "\n".join(found)


def test_the_circle_finder_sees_lazy_and_indirect_circles():
    sources = {
        "unidetox.a": "from unidetox.b import f\n",
        "unidetox.b": "def f():\n    from unidetox import c\n",  # lazy, and `from package import module`
        "unidetox.c": "import unidetox.a\n",
        "unidetox.d": "from unidetox.a import f\n",  # reads the circle, is not in it
        "unidetox.e": "from .d import f\n",  # relative
    }
    graph = import_graph({m: ast.parse(s) for m, s in sources.items()})
    assert graph["unidetox.e"] == {"unidetox.d"}
    assert circles(graph) == [["unidetox.a", "unidetox.b", "unidetox.c", "unidetox.a"]]
    assert circles({"x": {"y"}, "y": set()}) == []


def test_modules_and_functions_stay_short():
    long_modules = [f"{module_name(p)}: {n} lines" for p in SOURCES
                    if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]  # fmt: skip
    long_functions = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{module_name(path)}.{node.name}: {n} lines")
    assert not long_modules and not long_functions, "\n".join(long_modules + long_functions)


def _error_classes() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(unidetox.__path__, "unidetox."):
        mod = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ == mod.__name__:
                found.append(obj)
    return found


ERRORS = _error_classes()


def test_the_package_defines_its_errors():
    names = {e.__name__ for e in ERRORS}
    assert {"ConfigError", "StoreError", "TrainError", "LikelihoodError", "PoliticalError", "ScorerError"} <= names


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: f"{e.__module__}.{e.__name__}")
def test_every_error_is_a_unidetox_error(error):
    """The CLI catches UnidetoxError and prints one line: an error outside it would reach users as a traceback.
    (Internal control-flow exceptions are named here when there are any.)"""
    internal = {"_Terminated"}  # cli: SIGTERM turned into an exception, handled by the CLI itself
    assert error.__name__ in internal or issubclass(error, UnidetoxError)
