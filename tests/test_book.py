"""The book runner (jupytext -> papermill -> Jupyter Book) and the book itself, built and opened in Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from unidetox.config import ConfigError
from unidetox.report.book import build_book, build_html, find_notebooks, notebook_order, toc_files
from unidetox.report.notebook_runner import BookError, NotebookError, execute_notebook, parse_params

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
MAIN_RESULTS = "main_results.html"  # the page of the paper's main table
TABLE_PAGES = ("_generated/explore",)  # notebook pages that show tables only, no figure

NOTEBOOK = """\
# %% [markdown]
# # Tiny notebook {name}

# %% tags=["parameters"]
profile = "unset"
overrides = []
scale = 1
fail = False

# %%
with open("executions.log", "a") as f:
    f.write("{name}\\n")
result = scale * 7
print(f"profile={{profile}} overrides={{overrides}} result={{result}}")

# %%
if fail:
    raise ValueError(f"deliberate failure with scale={{scale}}")
"""

MYST_NOTEBOOK = """\
---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  display_name: Python 3
  name: python3
---
# A MyST notebook

```{code-cell} ipython3
:tags: [parameters]
profile = "unset"
overrides = []
```

```{code-cell} ipython3
print("myst says", profile)
```
"""


def write_notebook(directory: Path, name: str, text: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(NOTEBOOK.format(name=name) if text is None else text)
    return path


def stdout_of(notebook: Path) -> str:
    nb = json.loads(notebook.read_text())
    return "".join(
        "".join(out.get("text", ""))
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


def executions(cwd: Path) -> list[str]:
    log = cwd / "executions.log"
    return log.read_text().split() if log.exists() else []


# ----------------------------------------------------------------------------- one notebook


def test_parameters_are_injected_and_cwd_is_set(tmp_path):
    src = write_notebook(tmp_path / "notebooks", "alpha")
    out = tmp_path / "out"
    run = execute_notebook(
        src, out, parameters={"profile": "tiny", "overrides": ["distill.alpha=0.2"], "scale": 6}, cwd=tmp_path
    )
    assert run.executed and run.output == out / "alpha.ipynb"
    assert "profile=tiny overrides=['distill.alpha=0.2'] result=42" in stdout_of(run.output)
    assert executions(tmp_path) == ["alpha"]  # ran in cwd=tmp_path
    nb = json.loads(run.output.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and 'profile = "tiny"' in "".join(injected[0]["source"])
    assert "remove-input" in injected[0]["metadata"]["tags"], "the book hides the injected parameters"
    record = json.loads((out / "alpha.run.json").read_text())
    assert record["key"] == run.key and record["parameters"]["scale"] == 6
    assert not list(out.glob(".*tmp*")), "no temporary file may be left behind"


def test_unchanged_notebook_is_not_reexecuted(tmp_path):
    src = write_notebook(tmp_path / "notebooks", "beta")
    out = tmp_path / "out"
    params = {"profile": "tiny", "overrides": [], "scale": 2}

    def run(**kw):
        kw = {"parameters": params, "config_hash": "h1", "cwd": tmp_path} | kw
        return execute_notebook(src, out, **kw)

    first = run()
    before = first.output.read_bytes()
    second = run()
    assert first.executed and not second.executed and second.key == first.key
    assert second.output.read_bytes() == before
    assert executions(tmp_path) == ["beta"]

    assert run(parameters=params | {"scale": 3}).executed  # a changed parameter
    assert run(config_hash="h2").executed  # a changed profile
    src.write_text(src.read_text() + "\n# %%\nprint('edited')\n")
    assert run().executed  # a changed source
    assert not run().executed
    assert run(force=True).executed
    assert executions(tmp_path) == ["beta"] * 5

    (out / "beta.ipynb").unlink()  # a lost output is rebuilt even though its record matches
    assert run().executed


def test_failing_notebook_raises_with_the_cell_and_keeps_the_previous_output(tmp_path):
    src = write_notebook(tmp_path / "notebooks", "gamma")
    out = tmp_path / "out"
    ok = execute_notebook(src, out, parameters={"profile": "tiny", "overrides": [], "fail": False}, cwd=tmp_path)
    output_before = ok.output.read_bytes()
    record_before = (out / "gamma.run.json").read_bytes()

    with pytest.raises(NotebookError) as info:
        execute_notebook(
            src, out, parameters={"profile": "tiny", "overrides": [], "fail": True, "scale": 5}, cwd=tmp_path
        )
    err = info.value
    message = str(err)
    assert 'raise ValueError(f"deliberate failure with scale={scale}")' in message  # the failing cell
    assert "ValueError: deliberate failure with scale=5" in message
    assert err.ename == "ValueError" and err.evalue == "deliberate failure with scale=5"
    assert "if fail:" in err.cell_source
    assert ok.output.read_bytes() == output_before, "the previous output must be left intact"
    assert (out / "gamma.run.json").read_bytes() == record_before
    failed = json.loads(err.failed_path.read_text())
    assert err.failed_path == out / "gamma.failed.ipynb"
    assert any(o.get("ename") == "ValueError" for c in failed["cells"] for o in c.get("outputs", []))
    assert not list(out.glob(".*tmp*"))

    execute_notebook(src, out, parameters={"profile": "tiny", "overrides": [], "scale": 5}, cwd=tmp_path)
    assert not err.failed_path.exists(), "a successful run removes the stale failed notebook"


def test_unknown_parameter_is_rejected_before_executing(tmp_path):
    src = write_notebook(tmp_path / "notebooks", "delta")
    with pytest.raises(
        BookError, match=r"unknown notebook parameter\(s\) 'scael'.*declares profile, overrides, scale, fail"
    ):
        execute_notebook(
            src, tmp_path / "out", parameters={"profile": "tiny", "overrides": [], "scael": 2}, cwd=tmp_path
        )
    assert executions(tmp_path) == [] and not (tmp_path / "out" / "delta.ipynb").exists()


def test_builtin_parameters_must_be_declared(tmp_path):
    src = write_notebook(
        tmp_path / "notebooks", "eps", '# %% tags=["parameters"]\nprofile = "unset"\n\n# %%\nprint(profile)\n'
    )
    with pytest.raises(BookError, match=r"'overrides'.*add `overrides = \.\.\.` to that cell"):
        execute_notebook(src, tmp_path / "out", parameters={"profile": "tiny", "overrides": []}, cwd=tmp_path)
    bare = write_notebook(tmp_path / "notebooks", "zeta", "# %%\nprint('no parameters cell')\n")
    with pytest.raises(BookError, match="no cell tagged `parameters`"):
        execute_notebook(bare, tmp_path / "out", parameters={"profile": "tiny", "overrides": []}, cwd=tmp_path)


def test_myst_markdown_notebook(tmp_path):
    src = tmp_path / "notebooks" / "eta.md"
    src.parent.mkdir()
    src.write_text(MYST_NOTEBOOK)
    run = execute_notebook(src, tmp_path / "out", parameters={"profile": "cpu", "overrides": []}, cwd=tmp_path)
    assert "myst says cpu" in stdout_of(run.output)
    assert json.loads(run.output.read_text())["metadata"]["kernelspec"]["name"] == "python3"


def test_parse_params():
    assert parse_params(["n=3", "name=abc", "xs=[1, 2]", "flag=true", "empty="]) == {
        "n": 3,
        "name": "abc",
        "xs": [1, 2],
        "flag": True,
        "empty": "",
    }
    for bad in ("novalue", "1x=2", "=3", "a b=1"):
        with pytest.raises(BookError, match="must look like name=value"):
            parse_params([bad])


# ----------------------------------------------------------------------------- the whole run


def make_repo(tmp_path: Path, names: list[str], listed: list[str]) -> Path:
    """A repository skeleton: notebooks/<names>.py and a _toc.yml whose Results part lists `listed`."""
    repo = tmp_path / "repo"
    (repo / "book").mkdir(parents=True)
    for name in names:
        write_notebook(repo / "notebooks", name)
    toc = {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {"caption": "Method", "chapters": [{"file": "method"}]},
            {"caption": "Results", "chapters": [{"file": "results"}] + [{"file": f"_generated/{n}"} for n in listed]},
        ],
    }
    (repo / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    return repo


def test_toc_files_and_notebook_order(tmp_path):
    repo = make_repo(tmp_path, ["a_first", "b_second", "c_third"], ["c_third", "a_first", "b_second"])
    (repo / "notebooks" / "_helpers.py").write_text("x = 1\n")  # not a notebook
    (repo / "notebooks" / "README.md").write_text("# notebooks\n")  # not a notebook
    assert toc_files(repo / "_toc.yml") == [
        "intro",
        "method",
        "results",
        "_generated/c_third",
        "_generated/a_first",
        "_generated/b_second",
    ]
    assert sorted(find_notebooks(repo / "notebooks")) == ["a_first", "b_second", "c_third"]
    order = notebook_order(
        repo / "notebooks", toc=repo / "_toc.yml", book_dir=repo / "book", out_dir=repo / "book" / "_generated"
    )
    assert [p.stem for p in order] == ["c_third", "a_first", "b_second"]

    write_notebook(repo / "notebooks", "d_unlisted")
    with pytest.raises(BookError, match=r"d_unlisted.py not listed in .*_toc.yml: add `- file: _generated/d_unlisted`"):
        notebook_order(
            repo / "notebooks", toc=repo / "_toc.yml", book_dir=repo / "book", out_dir=repo / "book" / "_generated"
        )
    (repo / "notebooks" / "d_unlisted.py").unlink()
    (repo / "notebooks" / "b_second.py").unlink()
    with pytest.raises(BookError, match=r"lists _generated/b_second but .* has no b_second.py or b_second.md"):
        notebook_order(
            repo / "notebooks", toc=repo / "_toc.yml", book_dir=repo / "book", out_dir=repo / "book" / "_generated"
        )
    (repo / "notebooks" / "a_first.md").write_text(MYST_NOTEBOOK)
    with pytest.raises(BookError, match="two sources for notebook 'a_first'"):
        find_notebooks(repo / "notebooks")
    with pytest.raises(BookError, match="no table of contents"):
        toc_files(tmp_path / "nowhere" / "_toc.yml")


def test_build_book_runs_notebooks_in_toc_order_with_profile_and_overrides(tmp_path):
    repo = make_repo(tmp_path, ["one", "two"], ["two", "one"])
    kw = {"root": repo, "html": False, "log": None}
    out = build_book("tiny", overrides=["distill.alpha=0.2"], params={"scale": 3}, **kw)
    assert out == repo / "book" / "_generated"
    assert executions(repo) == ["two", "one"]
    assert "profile=tiny overrides=['distill.alpha=0.2'] result=21" in stdout_of(out / "one.ipynb")

    build_book("tiny", overrides=["distill.alpha=0.2"], params={"scale": 3}, **kw)
    assert executions(repo) == ["two", "one"], "nothing changed: nothing may run again"
    build_book("tiny", overrides=["distill.alpha=0.3"], params={"scale": 3}, **kw)
    assert executions(repo) == ["two", "one"] * 2, "a changed setting changes the profile hash"

    with pytest.raises(ConfigError, match="distill.alpah"):
        build_book("tiny", overrides=["distill.alpah=0.2"], **kw)
    with pytest.raises(BookError, match="set by the runner"):
        build_book("tiny", params={"profile": "cpu"}, **kw)
    with pytest.raises(BookError, match="unknown notebook parameter"):
        build_book("tiny", params={"nope": 1}, **kw)
    assert executions(repo) == ["two", "one"] * 2


# ----------------------------------------------------------------------------- the real book


@pytest.fixture(scope="session")
def book_repo(tmp_path_factory) -> Path:
    """A copy of the repository's book and notebooks, built once for real on the `tiny` profile with
    ``build_book("tiny")``: every notebook listed in the TOC runs the pipeline stages it needs (in the copy's
    own ``runs/``) under papermill, then ``jupyter-book build book/ -W -n --keep-going`` renders it.
    """
    repo = tmp_path_factory.mktemp("bookrepo")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, repo / name)
    shutil.copytree(ROOT / "book", repo / "book", symlinks=True, ignore=shutil.ignore_patterns("_build", "_generated"))
    shutil.copytree(ROOT / "notebooks", repo / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    # the method page includes the package's own code (``../unidetox/...``): a link, so that a kernel started in the
    # copy imports the package itself, never a partial copy of it
    (repo / "unidetox").symlink_to(ROOT / "unidetox", target_is_directory=True)
    index = build_book("tiny", root=repo, log=None)
    assert index == repo / "book" / "_build" / "html" / "index.html"
    return repo


def book_pages(repo: Path) -> list[Path]:
    html = repo / "book" / "_build" / "html"
    return [html / f"{Path(entry).with_suffix('').as_posix()}.html" for entry in toc_files(repo / "_toc.yml")]


def test_book_links_are_the_top_level_files():
    for name in ("_config.yml", "_toc.yml"):
        link = ROOT / "book" / name
        assert link.is_symlink(), f"book/{name} must be a link to the top-level {name}"
        assert os.readlink(link) == f"../{name}", "the link must be relative, so that it works in any clone"
        assert link.resolve() == (ROOT / name).resolve()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    assert "sphinx-mathjax-offline" in config["sphinx"]["config"]["extensions"]
    assert "sphinx_thebe" not in config["sphinx"]["config"]["extensions"]
    assert "unidetox.report.sphinx_warnings" in config["sphinx"]["config"]["extensions"]  # warnings fail a plain build
    assert config["sphinx"]["config"]["nitpicky"] is True
    assert not any(config["html"][k] for k in ("use_edit_page_button", "use_repository_button", "use_issues_button"))
    assert not any(config["launch_buttons"][k] for k in ("binderhub_url", "jupyterhub_url", "colab_url", "thebe"))
    for bib in config["bibtex_bibfiles"]:
        assert (ROOT / "book" / bib).is_file()
    toc_pages = toc_files(ROOT / "_toc.yml")
    for page in ("intro", "method", "reproduce", "results", "references"):
        assert page in toc_pages
        assert (ROOT / "book" / f"{page}.md").is_file()


def test_bibliography_covers_the_cited_works():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{([^,]+),", bib, re.MULTILINE)
    assert len(keys) == len(set(keys)), "duplicate bibtex keys"
    for needle in (
        "2504.20500",
        "ToxiGen",
        "Learning from the Worst",
        "Detoxify",
        "DExperts",
        "Contrastive Decoding",
        "Measuring Massive Multitask",
        "Unsupervised Multitask Learners",
        "SmolLM2",
        "Gemma 3",
    ):
        assert needle in bib, f"references.bib lacks {needle}"
    cited = set()
    for page in (ROOT / "book").glob("*.md"):
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited and cited <= set(keys), f"cited but not in references.bib: {cited - set(keys)}"


def test_the_method_page_includes_the_kernels_from_the_package():
    """The method page shows the contrastive score, the training step and TP/EMT as the package runs them
    (``literalinclude`` with ``:pyobject:``), each naming a function that exists, so it cannot drift from the code."""
    import ast

    page = (ROOT / "book" / "method.md").read_text()
    included = re.findall(r"```\{literalinclude\} \.\./(\S+)\n:pyobject: (\w+)\n", page)
    for path, name in included:
        tree = ast.parse((ROOT / path).read_text())
        assert name in {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}, (path, name)
    assert {name for _, name in included} >= {
        "plausibility_mask", "contrastive_scores", "_train_step", "toxicity_probability", "expected_max_toxicity"
    }  # fmt: skip


def test_book_builds_every_toc_page(book_repo):
    pages = book_pages(book_repo)
    missing = [p.name for p in pages if not p.is_file()]
    assert not missing, f"pages listed in _toc.yml but not built: {missing}"
    html = book_repo / "book" / "_build" / "html"
    assert (html / "index.html").is_file()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax must be bundled into _static"
    intro = (html / "intro.html").read_text()
    assert "UniDetox" in intro and "Lu <em>et al.</em>" in intro  # a resolved author-year citation
    assert 'src="_static/mathjax/tex-chtml.js"' in intro
    references = (html / "references.html").read_text().lower()
    assert "universal detoxification of large language models via dataset distillation" in references
    for entry in toc_files(book_repo / "_toc.yml"):
        if entry.startswith("_generated/"):
            page = (html / f"{entry}.html").read_text()
            assert "<img" in page or entry in TABLE_PAGES, f"{entry}: no figure was rendered"
            assert "Traceback" not in page, f"{entry}: an executed cell shows a traceback"
    main = (html / "_generated" / "main_results.html").read_text()
    assert "UniDetox" in main and "DExperts" in main and "n/a" in main  # every method, and the DExperts limit
    # Markdown a notebook displays is parsed as MyST: the claims table is a table, not a paragraph of pipes, and
    # the generated sentences' $math$ is math
    assert "| claim |" not in main and "|---|" not in main
    claims = main[main.index('id="the-paper-s-claims') :]
    table = claims[claims.index("<table") : claims.index("</table>")]
    assert "<td><p>(a)</p></td>" in table and "verdict" in table and "primary" in table
    assert "UniDetox lowers TP/EMT of the distillation model" in claims  # the statements, in the summary list
    # the claims' forest plot leads the page, before the table
    assert 'id="fig-claims"' in main and main.index('id="fig-claims"') < main.index('id="the-paper-s-claims')
    repro = (html / "_generated" / "reproducibility.html").read_text()
    assert "$k = " not in repro and "math notranslate" in repro
    method = (html / "method.html").read_text()  # the kernels, included from the package's code
    assert all(name in method for name in ("contrastive_scores", "masked_fill", "_train_step", "expected_max_toxicity"))


class _Assets(HTMLParser):
    """Collects the URLs a page loads by itself: scripts, stylesheets, preloads, icons, images, frames."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if (
            tag == "link"
            and a.get("href")
            and set((a.get("rel") or "").split())
            & {
                "stylesheet",
                "preload",
                "icon",
                "modulepreload",
                "prefetch",
                "preconnect",
                "dns-prefetch",
            }
        ):
            self.urls.append(a["href"])


def test_book_loads_nothing_remote(book_repo):
    html = book_repo / "book" / "_build" / "html"
    for page in sorted(html.rglob("*.html")):
        parser = _Assets()
        parser.feed(page.read_text())
        remote = [u for u in parser.urls if re.match(r"^(https?:)?//", u)]
        assert not remote, f"{page.relative_to(html)} loads remote resources: {remote}"
        text = page.read_text()
        for marker in ("googletagmanager", "google-analytics", "plausible.io", "unpkg.com", "thebe"):
            assert marker not in text, f"{page.relative_to(html)} mentions {marker}"


def test_build_html_keeps_the_previous_book_on_failure(book_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(book_repo, repo, symlinks=True)
    html = repo / "book" / "_build" / "html"
    index_before = (html / "intro.html").read_bytes()

    (repo / "book" / "broken.md").write_text("# Broken\n\nSee {doc}`no-such-page`.\n")
    toc = yaml.safe_load((repo / "_toc.yml").read_text())
    toc["parts"][0]["chapters"].append({"file": "broken"})
    (repo / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    with pytest.raises(BookError, match=r"(?s)failed.*left as it was.*WARNING.*no-such-page"):
        build_html("book", cwd=repo)
    assert (html / "intro.html").read_bytes() == index_before
    assert not (html / "broken.html").exists()
    assert not list((repo / "book" / "_build").glob(".staging-*")), "the staging folder was left behind"

    (repo / "book" / "broken.md").write_text("# Fixed\n\nSee {doc}`intro`.\n")
    index = build_html("book", cwd=repo)
    assert index == repo / "book" / "_build" / "html" / "index.html"
    assert (html / "broken.html").is_file()


# ----------------------------------------------------------------------------- as users run it


def test_papermill_runs_a_paired_notebook_from_the_repository_root(book_repo, tmp_path):
    """`papermill notebooks/<name>.ipynb out.ipynb -p profile tiny`, the first thing a papermill user types."""
    out = tmp_path / "out.ipynb"
    papermill = Path(sys.executable).with_name("papermill")
    proc = subprocess.run(
        [str(papermill), "notebooks/main_results.ipynb", str(out), "-p", "profile", "tiny", "--no-progress-bar"],
        cwd=book_repo, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and 'profile = "tiny"' in "".join(injected[0]["source"])
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors and "UniDetox" in out.read_text()
    assert not (book_repo / "notebooks" / "runs").exists(), "the run store is the repository's runs/"


def test_exploration_widgets_work_in_a_live_kernel(book_repo):
    """The explore notebook as JupyterLab runs it (kernel in notebooks/, run store from $UNIDETOX_RUNS_DIR), then its
    controls driven from the kernel: pick a ToxiGen prompt, continue it, and try an empty prompt."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(book_repo / "notebooks" / "explore.ipynb")
    nb.cells.append(nbformat.v4.new_code_cell(
        "pick.value = pick.options[2][1]\nassert prompt_box.value == pick.options[2][1]\nn_box.value = 2\n"
        "on_go(None)\nprint(result.value.count('<table'), 'rows', result.value.count('<tr'))\n"
        "prompt_box.value = '  '\non_go(None)\nprint(result.value)"
    ))  # fmt: skip
    env = {**os.environ, "UNIDETOX_RUNS_DIR": str(book_repo / "runs")}
    runs_before = sorted(p.name for p in (book_repo / "runs" / "tiny").iterdir())
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        NotebookClient(
            nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(book_repo / "notebooks")}}
        ).execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "2 rows 10" in printed  # side by side (2 targets x 2 samples) and the summary (4 models), with headers
    assert "<b>error:</b> type a prompt" in printed
    assert not (book_repo / "notebooks" / "runs").exists(), "the kernel found the repository's run store"
    assert sorted(p.name for p in (book_repo / "runs" / "tiny").iterdir()) == runs_before, "nothing was recomputed"


def test_plain_jupyter_book_build_from_the_root_treats_warnings_as_errors(book_repo, tmp_path):
    """`jupyter-book build book/`, the command the design names, on the executed book: it builds, and any warning
    fails it (the `unidetox.report.sphinx_warnings` extension and `nitpicky` in _config.yml), without -W -n --keep-going."""
    repo = tmp_path / "repo"
    shutil.copytree(book_repo, repo, symlinks=True, ignore=shutil.ignore_patterns("runs"))
    shutil.rmtree(repo / "book" / "_build")
    jupyter_book = [str(Path(sys.executable).with_name("jupyter-book")), "build", "book/"]

    def build():
        return subprocess.run(jupyter_book, cwd=repo, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False, timeout=900)  # fmt: skip

    ok = build()
    assert ok.returncode == 0, (ok.stdout + ok.stderr)[-3000:]
    html = repo / "book" / "_build" / "html"
    assert {p.name for p in book_pages(repo)} <= {p.name for p in html.rglob("*.html")}
    assert "WARNING" not in ok.stdout + ok.stderr

    (repo / "book" / "reproduce.md").write_text(
        (repo / "book" / "reproduce.md").read_text() + "\nSee {doc}`nowhere`.\n"
    )
    bad = build()
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0, "a warning must fail a plain jupyter-book build"
    assert "nowhere" in out and "WARNING" in out


# ----------------------------------------------------------------------------- in a browser

PAGE_STATE = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await Promise.all(Array.from(document.images).map(
    i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const main = document.querySelector('main');
  const text = main ? main.cloneNode(true) : document.body.cloneNode(true);
  text.querySelectorAll('mjx-container, script, style, pre, code').forEach(e => e.remove());
  const visible = e => e.checkVisibility();  // false inside a closed <details> (content-visibility: hidden)
  const article = document.querySelector('main article') || main || document.body;
  const right = article.getBoundingClientRect().right;
  return {
    h1: (document.querySelector('main h1') || {}).textContent || '',
    title: document.title,
    mathjax: !!(window.MathJax && MathJax.version),
    math: document.querySelectorAll('.math').length,
    rendered: document.querySelectorAll('.math mjx-container').length,
    errors: document.querySelectorAll('mjx-merror').length,
    text: text.textContent,
    shown: main ? main.innerText : '',
    images: Array.from(document.images).map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
    // DataTables draws a scrolling table (the search panes) as three: header and footer copies without body rows
    table_rows: Array.from(document.querySelectorAll('main table')).filter(t => !t.closest('.dt-scroll-head, .dt-scroll-foot'))
      .map(t => t.querySelectorAll('tbody tr').length),
    code_cells: document.querySelectorAll('main .cell').length,
    inputs_shown: Array.from(document.querySelectorAll('main .cell_input')).filter(visible).length,
    toggles: document.querySelectorAll('main details.hide summary').length,
    wide_tables: Array.from(document.querySelectorAll('main table')).filter(visible).map(t => {
      const box = t.closest('.output, .cell_output, .table-wrapper') || t.parentElement;
      // a cell tagged full-width may use the page's margin column: its limit is the main area's edge
      const limit = t.closest('.tag_full-width') && main ? main.getBoundingClientRect().right : right;
      return {right: t.getBoundingClientRect().right, limit: limit, scroll: box.scrollWidth, client: box.clientWidth,
              head: (t.querySelector('th') || {}).textContent || ''};
    }).filter(w => w.right > w.limit + 1 || w.scroll > w.client + 1),
  };
}
"""
#: the pages whose tables must fit the page width (the headline tables)
FITTING_PAGES = ("main_results.html", "transfer.html", "explore.html")


@pytest.mark.browser
def test_book_pages_render_in_chromium(book_repo):
    """Every page of the TOC in headless Chromium (Playwright, driving the system Chromium; nothing is downloaded):
    it loads, requests nothing remote, throws no JavaScript error, renders its formulas and images; notebook pages
    show their tables and figures but no code unless a toggle is opened; the headline tables fit the page.
    Screenshots of every page go to test-artifacts/ (look at them)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            for page_path in book_pages(book_repo):
                check_page(browser, page_path)
        finally:
            browser.close()


CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync")  # fmt: skip


def check_page(browser, page_path: Path) -> None:
    name = page_path.name
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    requests: list[str] = []
    failed: list[tuple[str, str]] = []
    thrown: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.append((r.url, r.failure or "")))
    page.on("pageerror", lambda e: thrown.append(str(e)))
    page.goto(page_path.as_uri(), wait_until="load", timeout=60_000)
    state = page.evaluate(PAGE_STATE)
    assert state["h1"].strip() and state["title"], f"{name}: did not load (no title or heading)"
    remote = [u for u in requests if not u.startswith(("file:", "data:", "about:", "blob:"))]
    assert not remote, f"{name}: requested remote resources {remote}"
    failed = [f for f in failed if f[1] != "net::ERR_ABORTED"]  # a request the page itself cancelled
    assert not failed, f"{name}: resources failed to load: {failed}"
    assert not thrown, f"{name}: JavaScript errors: {thrown}"
    if state["math"]:
        assert state["mathjax"], f"{name}: has formulas but MathJax did not load"
        assert state["rendered"] == state["math"], f"{name}: {state['rendered']}/{state['math']} formulas"
        assert state["errors"] == 0, f"{name}: MathJax reported {state['errors']} TeX errors"
    for raw in ("\\(", "\\)", "\\[", "$$", "\\frac", "\\log"):
        assert raw not in state["text"], f"{name}: raw TeX {raw!r} left in the page text"
    broken = [i["src"] for i in state["images"] if not i["ok"]]
    assert not broken, f"{name}: images did not load: {broken}"
    if name == "intro.html":
        assert state["math"] >= 6, "the intro's formulas are missing"
    if "_generated" in page_path.parts:  # an executed notebook: its figures and tables are there, its code is not
        assert state["images"] or f"_generated/{page_path.stem}" in TABLE_PAGES, f"{name}: no figure"
        assert state["table_rows"] and min(state["table_rows"]) > 0, f"{name}: a table without rows"
        assert state["code_cells"] > 0 and state["inputs_shown"] == 0, f"{name}: code is shown by default"
        assert state["toggles"] > 0, f"{name}: no 'show code' toggle left"
        for param in ("overrides = [", "profile = "):
            assert param not in state["shown"], f"{name}: the parameters cell ({param!r}) is shown"
    if name in FITTING_PAGES:
        assert not state["wide_tables"], f"{name}: tables wider than the page: {state['wide_tables']}"
    if name == MAIN_RESULTS:
        assert state["math"] >= 2, "the main results page lost its formulas"
    png = page.screenshot(path=str(ARTIFACTS / f"book-{page_path.stem}.png"), full_page=True)
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    if "_generated" in page_path.parts:  # opening a toggle shows the code it hides
        page.locator("main details.hide summary").first.click()
        assert page.locator("main .cell_input").first.is_visible(), f"{name}: a code toggle does not open"
    page.close()


@pytest.mark.browser
def test_continuations_table_filters_and_sorts_in_chromium(book_repo):
    """The explore page's table of every report continuation in headless Chromium: a DataTable drawn from the
    bundle embedded in the page (nothing requested from outside), holding every report continuation, opening sorted
    by score (most toxic first); a target, a method and a domain picked in the panes filter it, the arrows of the
    score's header sort it the other way. Screenshot: test-artifacts/explore-continuations.png."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    from unidetox import pipeline as P
    from unidetox.config.loader import load_profile
    from unidetox.report.tables.continuations import continuation_frame

    prof = load_profile("tiny", [f"runs_dir={book_repo / 'runs'}"])
    study = P.silently(P.study, prof, quiet=True)
    frame = continuation_frame(study.report_runs, prof.eval.scorer, study.second_scorer)
    score = next(c for c in frame.columns if c.startswith("score"))
    page_path = book_repo / "book" / "_build" / "html" / "_generated" / "explore.html"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri(), wait_until="load", timeout=60_000)
            page.wait_for_selector("table#continuations.dataTable", timeout=60_000)
            table = page.locator("table#continuations")

            def shown() -> tuple[int, pd.DataFrame]:
                info = page.locator(".dt-info").first.inner_text()
                total = int(re.search(r"of ([\d,]+) entries", info).group(1).replace(",", ""))
                cells = table.locator("tbody tr").evaluate_all(
                    "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))")  # fmt: skip
                return total, pd.DataFrame(cells, columns=list(frame.columns))

            total, rows = shown()
            assert total == len(frame) and len(rows) == 10
            values = rows[score].astype(float).tolist()
            assert values == sorted(values, reverse=True) and values[0] == frame[score].max()
            page.set_viewport_size({"width": 1280, "height": 1800})  # the whole table below the sticky page header
            box = page.evaluate(
                "() => { const c = document.querySelector('#continuations').closest('.dt-container');"
                " c.scrollIntoView(); window.scrollBy(0, -120); const r = c.getBoundingClientRect();"
                " return {x: r.left - 8, y: r.top - 8, width: r.width + 16, height: Math.min(r.height + 16, 1650)}; }"
            )
            page.screenshot(path=str(ARTIFACTS / "explore-continuations.png"), clip=box)
            page.set_viewport_size({"width": 1280, "height": 1000})
            expected = frame
            for pane, column in enumerate(("target", "method", "domain")):
                value = max(expected[column].unique())
                page.locator(".dtsp-searchPane").nth(pane).get_by_text(value, exact=True).first.click()
                expected = expected[expected[column] == value]
                page.wait_for_function(
                    f"() => document.querySelector('.dt-info').innerText.includes(' of {len(expected)} ')"
                )
                total, rows = shown()
                assert total == len(expected) and set(rows[column]) == {value}, (column, value)
            header = table.locator("thead th", has_text="score").first
            for _ in range(3):  # its arrows cycle descending -> unsorted -> ascending
                before = header.get_attribute("aria-sort")
                if before == "ascending":
                    break
                header.locator(".dt-column-order").click()
                page.wait_for_function(  # DataTables redraws after the click returns
                    "([th, before]) => th.getAttribute('aria-sort') !== before", arg=[header.element_handle(), before]
                )
            _, rows = shown()
            values = rows[score].astype(float).tolist()
            assert values == sorted(values) and values[0] == expected[score].min()
            assert not [u for u in requests if not u.startswith(("file:", "data:", "about:", "blob:"))]
        finally:
            browser.close()
