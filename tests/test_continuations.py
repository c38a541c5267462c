"""The explore page's table of every report continuation: the frame against the stage files it reads, and the
itables HTML (offline: nothing from a CDN; panes for target, method and domain; sorted by score)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from unidetox.report.tables.continuations import (
    FILTER_COLUMNS,
    continuation_frame,
    interactive_html,
    method_label,
    table_options,
)


def _stage(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _records(scores: list[float], prompt: str = "p") -> list[dict]:
    return [{"seed": 42 + i // 2, "unit": 0, "prompt_id": f"{prompt}-1", "domain": "religion", "sample": i % 2,
             "prompt": f"the {prompt} | prompt", "continuation": f"cont {i}\nline", "toxicity": x}
            for i, x in enumerate(scores)]  # fmt: skip


@pytest.fixture
def runs(tmp_path):
    none = {"target": "packaged:smollm2-135m", "method": "none", "selection": ""}
    uni = {"target": "packaged:smollm2-135m", "method": "unidetox", "selection": "oracle"}
    a = _stage(tmp_path / "ev-a", _records([0.9, 0.1, 0.55555, 0.2]))
    b = _stage(tmp_path / "ev-b", _records([0.3, 0.4, 0.5, 0.6], "q"))
    a2 = _stage(tmp_path / "re-a", [{**r, "toxicity": 1 - r["toxicity"]} for r in _records([0.9, 0.1, 0.55555, 0.2])])
    b2 = _stage(tmp_path / "re-b", [{**r, "toxicity": 0.0} for r in _records([0.3, 0.4, 0.5, 0.6], "q")])
    return [(none, a, a2), (uni, b, b2)]


def test_frame_has_every_continuation_with_both_scores(runs):
    frame = continuation_frame(runs, "toxblock", "hatesonar")
    assert list(frame.columns) == ["target", "method", "domain", "prompt", "continuation", "seed",
                                   "score (toxblock)", "score (hatesonar)"]  # fmt: skip
    assert len(frame) == 8 and set(frame.target) == {"smollm2-135m"}
    assert set(frame.method) == {"No detoxification", "UniDetox (oracle)"}
    none = frame[frame.method == "No detoxification"].sort_values(["seed", "continuation"])
    assert none["score (toxblock)"].tolist() == [0.9, 0.1, 0.556, 0.2]  # rounded to 3 decimals
    assert (none["score (toxblock)"] + none["score (hatesonar)"]).round(3).eq(1.0).all()  # matched continuation-wise
    assert continuation_frame(runs, "toxblock").columns[-1] == "score (toxblock)"  # no second scorer: one score
    assert continuation_frame([], "tiny").empty


def test_method_labels_follow_the_main_table():
    assert method_label({"method": "unidetox", "selection": "transferred"}) == "UniDetox"
    assert method_label({"method": "unidetox", "selection": "oracle"}) == "UniDetox (oracle)"
    assert method_label({"method": "dexperts", "selection": "oracle"}) == "DExperts"
    assert method_label({"method": "dexperts", "selection": "transferred"}) == "DExperts (transferred)"
    assert method_label({"method": "none", "selection": ""}) == "No detoxification"


def test_table_is_offline_filterable_and_sorted_by_score(runs):
    frame = continuation_frame(runs, "toxblock", "hatesonar")
    opts = table_options(frame)
    assert opts["connected"] is False and opts["maxBytes"] == 0
    assert opts["searchPanes"]["columns"] == [list(frame.columns).index(c) for c in FILTER_COLUMNS]
    assert opts["order"] == [[list(frame.columns).index("score (toxblock)"), "desc"]]
    html = interactive_html(frame)
    loads = re.findall(r"<(?:script|link|img)[^>]+(?:src|href)=[\"']?([^\"' >]+)", html)
    assert not [u for u in loads if re.match(r"^(https?:)?//", u)], loads  # no CDN: the bundle is embedded
    assert "injectModule" in html and '"searchPanes"' in html and 'id="continuations"' in html
    assert len(html) > 500_000  # DataTables' bundle is in the page
    assert "the p | prompt" in html and "cont 0\\nline" in html  # the texts, as JSON data of the table


def test_frame_refuses_a_rescored_copy_that_does_not_match(runs, tmp_path):
    labels, evaluated, _ = runs[0]
    dup = _stage(tmp_path / "dup", _records([0.1, 0.2, 0.3, 0.4]) * 2)
    with pytest.raises(pd.errors.MergeError):
        continuation_frame([(labels, evaluated, dup)], "toxblock", "hatesonar")
