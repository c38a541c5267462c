"""Cards the Hub can read: table cells that stay cells, and cards checked by loading them back."""

from __future__ import annotations

import pytest

from unidetox.report.card_metadata import CardError, md_cell, table_problems, write_card
from unidetox.report.cards import render_dataset_card, write_dataset_card

FACTS = {"name": "unidetox-distilled-tiny", "what": "distilled", "profile": "tiny", "n_texts": 3,
         "texts_sha256": "ab" * 32, "license": "mit", "license_note": "",
         "generation": {"base_model": "tiny:gpt2", "distill.context": "\n\n", "distill.alpha": 0.1,
                        "distill.note": "a|b", "distill.prefix": " ", "distill.empty": ""}}  # fmt: skip


@pytest.mark.parametrize(
    "value, cell",
    [("\n\n", r"`'\n\n'`"), ("a|b", r"a\|b"), (0.123456, "0.1235"), ("", "`''`"), (" x", "`' x'`"),
     ("plain text", "plain text"), (3, "3"), ("tab\there", r"`'tab\there'`")],
)  # fmt: skip
def test_md_cell(value, cell):
    assert md_cell(value) == cell


def test_table_problems_sees_a_value_that_breaks_its_row():
    good = "| setting | value |\n|---|---|\n| `a` | 1 |\n| `b` | x\\|y |\n"
    assert table_problems(good) == []
    raw = "| setting | value |\n|---|---|\n| `distill.context` | \n\n |\n| `a` | b | c |\n"  # the old, raw card
    assert len(table_problems(raw)) == 2


def test_dataset_card_escapes_its_values_and_loads_back(tmp_path):
    from huggingface_hub import DatasetCard

    text = render_dataset_card(FACTS)
    assert table_problems(text) == [] and r"| `distill.context` | `'\n\n'` |" in text and r"a\|b" in text
    write_dataset_card(tmp_path / "README.md", FACTS)
    card = DatasetCard.load(tmp_path / "README.md")
    assert card.data.license == "mit" and card.text == DatasetCard(text).text


def test_a_card_that_would_not_load_back_is_not_written(tmp_path):
    path = tmp_path / "README.md"
    with pytest.raises(CardError, match="invalid YAML header"):
        write_card(path, "---\nlicense: [mit\n---\n\n# x\n")
    with pytest.raises(CardError, match="do not match their header"):
        write_card(path, "---\nlicense: mit\n---\n\n| a | b |\n|---|---|\n| 1 | 2 | 3 |\n")
    with pytest.raises(CardError, match="0 model-index results, 2 were written"):
        write_card(path, "---\nlicense: mit\n---\n\n# x\n", n_results=2)
    assert not path.exists()
    write_card(path, "---\nlicense: mit\n---\n\n# x\n")
    assert path.read_text().startswith("---\nlicense: mit")
