"""The requirement files, environment.yml, pyproject.toml and the Makefile describe one environment."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENT_FILES = ("requirements-torch.txt", "requirements.txt", "requirements-nodeps.txt")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def read_pins(name: str) -> dict[str, str]:
    """{canonical package name: pinned version} of one requirement file; every line must be `name==version`."""
    pins: dict[str, str] = {}
    for number, raw in enumerate((ROOT / name).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{name}:{number}: {raw!r} is not pinned as name==version"
        key = canonicalize_name(match.group(1))
        assert key not in pins, f"{name}:{number}: {match.group(1)} is pinned twice"
        pins[key] = match.group(2)
    assert pins, f"{name} pins nothing"
    return pins


@pytest.fixture(scope="module")
def pins_by_file() -> dict[str, dict[str, str]]:
    return {name: read_pins(name) for name in REQUIREMENT_FILES}


@pytest.fixture(scope="module")
def all_pins(pins_by_file) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, pins in pins_by_file.items():
        for pkg, version in pins.items():
            assert pkg not in merged, f"{pkg} is pinned in more than one requirement file ({name} and another)"
            merged[pkg] = version
    return merged


def test_every_requirement_is_pinned_once(all_pins):
    assert len(all_pins) > 50  # the full freeze, not a hand-picked subset


def test_torch_is_pinned_only_in_its_own_file(pins_by_file):
    assert pins_by_file["requirements-torch.txt"] == {"torch": "2.13.0"}
    for name in ("requirements.txt", "requirements-nodeps.txt"):
        assert "torch" not in pins_by_file[name], f"{name} must not pin torch: it comes from requirements-torch.txt"


def test_pyproject_dependencies_are_pinned_compatibly(all_pins):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [Requirement(d) for d in project["dependencies"]]
    assert deps, "pyproject.toml declares no dependencies"
    for req in deps:
        key = canonicalize_name(req.name)
        assert key in all_pins, f"pyproject dependency {req} is not pinned in any requirement file"
        assert req.specifier.contains(all_pins[key], prereleases=True), (
            f"pyproject wants {req}, but the requirement files pin {req.name}=={all_pins[key]}"
        )
    torch = next(r for r in deps if canonicalize_name(r.name) == "torch")
    assert str(torch.specifier) == "==2.13.0", "pyproject must pin torch exactly, like requirements-torch.txt"
    assert SpecifierSet(project["requires-python"]).contains("3.11.7")
    assert not SpecifierSet(project["requires-python"]).contains("3.12.0")


def test_environment_yml_references_the_requirement_files():
    text = (ROOT / "environment.yml").read_text()
    env = yaml.safe_load(text)
    deps = env["dependencies"]
    assert "python=3.11" in deps
    assert "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pip_section == ["-r requirements-torch.txt", "-r requirements.txt"], (
        "environment.yml must take every pip package from the requirement files, torch first"
    )
    # pip cannot read --no-deps from a requirements file, so conda users run this step by hand; it is
    # spelled out in the file's header, exactly as the Makefile runs it.
    assert "pip install --no-deps -r requirements-nodeps.txt" in text
    assert "pip install --no-deps -e ." in text
    for name in REQUIREMENT_FILES:
        assert (ROOT / name).is_file()


def test_makefile_installs_the_same_files_in_order():
    text = (ROOT / "Makefile").read_text()
    steps = [
        "pip install -r requirements-torch.txt -c requirements.txt",
        "pip install -r requirements.txt -c requirements-torch.txt",
        "pip install --no-deps -r requirements-nodeps.txt",
        "pip install --no-deps -e .",
    ]
    positions = [text.find(step) for step in steps]
    assert all(p >= 0 for p in positions), dict(zip(steps, positions))
    assert positions == sorted(positions), "torch must be installed first, this package last"
    stamp_rule = re.search(r"^\$\(STAMP\):(.*)$", text, re.MULTILINE)
    assert stamp_rule, "the Makefile needs a stamp rule, so that a second `make test` installs nothing"
    prereqs = stamp_rule.group(1) + " " + re.search(r"^REQUIREMENTS :=(.*)$", text, re.MULTILINE).group(1)
    for name in (*REQUIREMENT_FILES, "pyproject.toml"):
        assert name in prereqs, f"the install stamp must depend on {name}"


def test_installed_environment_matches_the_pins(all_pins):
    """The environment running the tests is the one the files describe (catches a stale .venv)."""
    wrong = {}
    for pkg, version in all_pins.items():
        try:
            installed = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            wrong[pkg] = (version, "not installed")
            continue
        if not SpecifierSet(f"=={version}").contains(installed, prereleases=True):  # 2.13.0+cpu matches 2.13.0
            wrong[pkg] = (version, installed)
    assert not wrong, f"installed versions differ from the pins (pinned, installed): {wrong}; run `make install`"
