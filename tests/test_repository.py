"""The files a research repository is expected to carry: LICENSE, CITATION.cff, the licences of what it uses."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER_AUTHORS = ["Lu", "Isonuma", "Mori", "Sakata"]


def test_license_is_the_mit_licence_that_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text and 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_citation_cff_cites_the_paper_and_this_companion():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "type", "license", "preferred-citation"):
        assert key in cff, f"CITATION.cff lacks the required key {key!r}"
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert str(cff["version"]) == project["version"]
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("UniDetox: Universal Detoxification of Large Language Models")
    assert [a["family-names"] for a in paper["authors"]] == PAPER_AUTHORS
    assert paper["year"] == 2025 and "ICLR" in paper["conference"]["name"]
    assert any("2504.20500" in i["value"] for i in paper["identifiers"]) and "2504.20500" in paper["url"]
    assert cff["references"] == [paper], "the paper is also listed among the references"


def test_front_page_states_the_licences_of_the_cpu_profile():
    intro = (ROOT / "book" / "intro.md").read_text()
    section = intro.split("## Licences", 1)[1].split("\n## ", 1)[0]
    for needle in ("SmolLM2", "Apache-2.0", "Gemma Terms of Use", "DGHS", "ToxiGen", "CDLA-Permissive-2.0",
                   "MMLU", "MIT", "WikiText", "CC BY-SA", "unidetox_released", "LICENSE", "CITATION.cff"):  # fmt: skip
        assert needle in section, f"the front page's licence section does not mention {needle}"
