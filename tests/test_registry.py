"""The stage registry: every stage declared once (name, inputs, outputs, reproducible weights), read by the
commands, shown in the book, and spelt nowhere else in the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import unidetox
from unidetox.store.registry import STAGES, WEIGHT_STAGES, Stage, recompute_call, stages_markdown
from unidetox.store.run_store import StageDir, StoreError

PACKAGE = Path(unidetox.__file__).parent
REGISTRY = PACKAGE / "store" / "registry.py"
ROOT = PACKAGE.parent
#: callables that take a stage's name (a literal there spells a stage)
TAKES_A_STAGE = re.compile(r"stage|Stage|locate|create|plan_training")
#: modules where a stage's name means something else: the MMLU data set (its folder, ``mmlu/``) and the ``mmlu``
#: entry of ``unidetox score``'s summary
OTHER_MEANING = {
    "unidetox/data/checksums.py": "mmlu",
    "unidetox/data/mmlu.py": "mmlu",
    "unidetox/report/provenance/facts.py": "mmlu",
    "unidetox/report/tables/score.py": "mmlu",
}


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and ast.get_docstring(node, clean=False) is not None}  # fmt: skip


def _strings(node: ast.AST) -> list[ast.Constant]:
    """The string constants of `node` itself or, for a tuple/list/set, of its elements."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [n for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def stage_literals(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """(line, text) of each place in code (docstrings aside) that spells a stage of `names`: a name with a hyphen
    (no other meaning) anywhere; any name compared with (``==``, ``in``), joined to a path (``/``), given to a callable
    that takes a stage (:data:`TAKES_A_STAGE`), or starting a path (``"detox/*"``)."""
    docs, out = _docstrings(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            hyphenated = node.value in names and "-" in node.value
            if hyphenated or any(node.value.startswith(f"{n}/") for n in names):
                out.append((node.lineno, node.value))
        candidates: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            candidates = [node.left, *node.comparators]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            candidates = [node.left, node.right]
        elif isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if TAKES_A_STAGE.search(func):
                candidates = [*node.args, *(k.value for k in node.keywords)]
        out += [(c.lineno, c.value) for n in candidates for c in _strings(n) if c.value in names and "-" not in c.value]
    return sorted(set(out))


def test_no_module_but_the_registry_spells_a_stage_name():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if path != REGISTRY:
            names = set(STAGES) - {OTHER_MEANING.get(rel)}
            found += [f"{rel}:{line}: {text!r}" for line, text in stage_literals(ast.parse(path.read_text()), names)]
    assert not found, "stage names spelt outside unidetox/store/registry.py (use its Stage objects):\n" + "\n".join(
        found
    )


def test_the_spelling_check_sees_each_way_of_spelling_a_stage():
    code = """
WEIGHTS = ("detox", "toxic-model")
if stage.parent.name == "detox" or name in ("study", "budget"):
    path = root / "evaluate" / key
dirs = root.glob("study/*")
st = stage_dir(profile, "mmlu", config)
plan_training("detox", spec)
x = {"distill": 1}  # a profile section named like a stage is not a stage
"""
    assert stage_literals(ast.parse(code), set(STAGES)) == [
        (2, "toxic-model"), (3, "budget"), (3, "detox"), (3, "study"), (4, "evaluate"), (5, "study/*"), (6, "mmlu"),
        (7, "detox"),
    ]  # fmt: skip


def test_each_stage_reads_only_stages_declared_before_it():
    seen: set[str] = set()
    for name, stage in STAGES.items():
        assert stage.name == name and set(stage.inputs) <= seen, name
        seen.add(name)
    assert WEIGHT_STAGES == ("toxic-model", "expert-model", "detox")


def test_every_weights_stage_can_be_recomputed_once_the_pipeline_is_imported():
    import unidetox.pipeline  # noqa: F401  (its stage modules register how each weights stage is remade)

    assert [name for name, s in STAGES.items() if s.recompute is not None] == list(WEIGHT_STAGES)


def test_a_stage_without_a_recompute_is_refused_with_its_folder(tmp_path):
    from unidetox.config.loader import load_profile

    st = StageDir.create(tmp_path, "tiny", STAGES["evaluate"].name, {"x": 1})
    with pytest.raises(StoreError, match=rf"^{re.escape(str(st.path))}: a evaluate stage cannot be recomputed"):
        recompute_call(load_profile("tiny", [f"runs_dir={tmp_path}"]), st.path)


def test_locate_is_the_stores_directory_of_the_config(tmp_path):
    from unidetox.config.loader import load_profile

    profile = load_profile("tiny", [f"runs_dir={tmp_path}"])
    st = STAGES["distill"].locate(profile, {"a": 1}, {"toxic-model": "k"})
    assert st == StageDir.locate(tmp_path, "tiny", "distill", {"a": 1}, {"toxic-model": "k"})
    assert not st.path.exists()


def test_reuse_begin_finish(tmp_path, capsys):
    stage = Stage("demo", outputs=("out.txt",))
    st = StageDir.locate(tmp_path, "tiny", stage.name, {"a": 1})
    assert not stage.reuse(st)
    stage.begin(st)
    (st.path / "out.txt").write_text("x")
    stage.finish(st, {"n": 1}, st.path / "out.txt")
    assert stage.reuse(st, "demo run") and st.summary() == {"n": 1}
    out = capsys.readouterr().out
    assert f"demo: wrote {st.path / 'out.txt'}" in out and f"demo run: reusing {st.path}" in out
    (st.path / "out.txt").write_text("longer")  # damaged: reopened, recomputed by the caller
    assert not stage.reuse(st) and not st.done and not (st.path / "out.txt").exists()


def test_the_book_shows_the_registry():
    page = (ROOT / "book" / "method.md").read_text(encoding="utf-8")
    assert stages_markdown() in page, "book/method.md's stage table is stale: paste stages_markdown() there"
