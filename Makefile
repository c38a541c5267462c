# The two commands of the README:
#   make test                 install into .venv if needed, then run the test suite
#   make book                 run the pipeline, execute the book's notebooks, build book/_build/html
#                             (PROFILE=cpu by default: real models, offline, 2 CPU cores; PROFILE=tiny: seconds),
#                             then `unidetox clean`: drop the model weights nothing reads any more (CLEAN=none: keep)
#   make lab                  JupyterLab on notebooks/, against the same run store (runs/) and data as make book
#   make notebooks            rewrite the paired notebooks/*.ipynb from the jupytext notebooks/*.py after an edit
#   make settings             regenerate book/settings.md (every setting, its default and help) from unidetox/config/
# Works on a fresh machine with only python3.11: the first call creates .venv and installs the pinned
# requirements; later calls install nothing unless a requirement file or pyproject.toml changed.

PYTHON ?= $(shell command -v python3.11 || echo python3)
VENV ?= .venv
PROFILE ?= cpu
SET ?=
CLEAN ?= all
PYTEST_ARGS ?=
TESTS ?= tests/
export UNIDETOX_DATA_DIR ?= $(abspath ../shared/data)

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REQUIREMENTS := requirements-torch.txt requirements.txt requirements-nodeps.txt pyproject.toml

.PHONY: test book lab notebooks settings lint format clean-book install

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) $(TESTS)

book: $(STAMP)
	$(BIN)/unidetox pipeline --profile $(PROFILE) $(foreach s,$(SET),--set $(s))
	$(BIN)/unidetox book --profile $(PROFILE) $(foreach s,$(SET),--set $(s))
	$(if $(filter none,$(CLEAN)),,$(BIN)/unidetox clean --quiet --what $(CLEAN) --profile $(PROFILE) $(foreach s,$(SET),--set $(s)))

# A kernel started by JupyterLab runs in notebooks/: UNIDETOX_RUNS_DIR points it at the repository's runs/.
# jupytext (a server extension of the environment) keeps each notebooks/<name>.ipynb and .py pair in sync on save.
LAB_ARGS ?=
lab: $(STAMP)
	UNIDETOX_RUNS_DIR=$(abspath runs) $(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) \
	  --ServerApp.preferred_dir=$(CURDIR)/notebooks $(LAB_ARGS)

notebooks: $(STAMP)
	$(BIN)/jupytext --update --to ipynb notebooks/*.py

settings: $(STAMP)
	$(BIN)/unidetox settings --markdown > book/settings.md.tmp && mv book/settings.md.tmp book/settings.md

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .

clean-book:
	rm -rf book/_build book/_generated

install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else \
	  "$(PYTHON) is Python %d.%d; unidetox needs 3.11: make PYTHON=/path/to/python3.11" % sys.version_info[:2])'
	$(PYTHON) -m venv $(VENV)

# 1. torch, pinned (a CPU wheel; an unpinned torch pulls a multi-GB CUDA build), its dependencies held to
#    the pins; 2. every other pin, torch held as a constraint; 3. the packages that ship model weights,
#    without their declared dependencies; 4. this package, editable (its dependencies are pinned above).
# The kernelspec makes papermill's `python3` kernel this environment's interpreter.
$(STAMP): $(REQUIREMENTS) | $(BIN)/python
	$(BIN)/python -m pip install -r requirements-torch.txt -c requirements.txt
	$(BIN)/python -m pip install -r requirements.txt -c requirements-torch.txt
	$(BIN)/python -m pip install --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (unidetox)"
	touch $@
