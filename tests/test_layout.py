"""The package's architecture, checked: layers import downwards only, modules and functions stay readable, and
every error a user can meet derives from UnidetoxError (so the CLI prints it as one line)."""

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
