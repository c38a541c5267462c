"""Resume checks what it reads back: stream records are validated against their stream's schema.

A stream that a kill left behind is normally a prefix of good records (tests/test_crash_resume.py). These tests
damage a record *inside* a stream (a changed byte that keeps valid JSON but gives a field the wrong type, a line
that is no longer JSON or UTF-8): the resumed stage says so in one line, keeps the records before it, recomputes
the rest, and ends as an undamaged run does. A finished file read with its schema names the damaged line instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import unidetox.pipeline as P
from unidetox.config import DistillConfig
from unidetox.config.loader import load_profile
from unidetox.measure.evaluate import GENERATION, PERPLEXITY
from unidetox.method import distill as D
from unidetox.method.train import TRAIN_LOG
from unidetox.store.jsonl import INT, TEXT, JsonlWriter, Schema, read_jsonl
from unidetox.store.run_store import DONE, StoreError

ROW = Schema("row", {"i": INT, "text": TEXT})


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _damage(path: Path, line: int, **fields) -> None:
    """Rewrite record `line` (0-based) of a JSONL file with `fields` changed (valid JSON, wrong content)."""
    lines = _lines(path)
    rec = json.loads(lines[line])
    lines[line] = json.dumps({**rec, **fields}, sort_keys=True) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ('{"i": 1, "text": 2.5}\n', "line 2: field 'text' is a number (2.5), not a text"),
        ('{"i": "1", "text": "b"}\n', "line 2: field 'i' is a text (\"1\"), not an integer >= 0"),
        ('{"i": 1}\n', "line 2: a row record without 'text'"),
        ("[1, 2]\n", "line 2: a JSON list, not a row record"),
        ('{"i": 1, "text": "b"\n', "line 2: not JSON"),
        (b'{"i": 1, "text": "\xff"}\n', "line 2: not UTF-8 (byte 18: invalid start byte)"),
    ],
)
def test_a_damaged_line_ends_the_kept_stream(tmp_path, capsys, bad, said):
    path = tmp_path / "s.jsonl"
    good = ['{"i": 0, "text": "a"}\n', '{"i": 2, "text": "c"}\n']
    path.write_bytes(good[0].encode() + (bad if isinstance(bad, bytes) else bad.encode()) + good[1].encode())
    with pytest.raises(StoreError, match="Fix: delete the stage's DONE") as e:
        read_jsonl(path, schema=ROW)
    assert said in str(e.value)
    w = JsonlWriter(path, ROW)
    out = capsys.readouterr().out
    assert said in out and "kept up to line 1 (1 records) and the rest recomputed" in out and len(out.splitlines()) == 1
    assert w.records == [{"i": 0, "text": "a"}] and path.read_text() == good[0]
    w.append([{"i": 1, "text": "b"}])
    assert read_jsonl(path, schema=ROW) == [{"i": 0, "text": "a"}, {"i": 1, "text": "b"}]


def test_schemas_accept_what_the_writers_write():
    gen = {"seed": 42, "unit": 0, "prompt_id": "validation-3", "domain": "religion", "sample": 1, "prompt": "p",
           "continuation": "", "toxicity": 0.0}  # fmt: skip
    assert GENERATION.problem(gen) is None and GENERATION.problem({**gen, "toxicity": 1}) is None
    assert GENERATION.problem({**gen, "toxicity": 1.5}) == "field 'toxicity' is a number (1.5), not a number in [0, 1]"
    assert GENERATION.problem({**gen, "toxicity": float("nan")}).startswith("field 'toxicity' is a number (NaN)")
    assert GENERATION.problem({**gen, "sample": True}) == "field 'sample' is a boolean (true), not an integer >= 0"
    ppl = {"seed": 42, "unit": 0, "prompt_id": "validation-3", "sample": 1, "ppl": None}
    assert PERPLEXITY.problem(ppl) is None and PERPLEXITY.problem({**ppl, "ppl": 12.5}) is None
    assert PERPLEXITY.problem({**ppl, "ppl": -1.0}) == "field 'ppl' is a number (-1.0), not a number > 0 or null"
    assert D.STREAM_RECORD.problem({"index": 0, "batch": 0, "text": "t", "n_tokens": 3}) is None
    assert D.STREAM_RECORD.problem({"index": 0, "text": "t"}) == "a distilled text record without 'batch', 'n_tokens'"
    assert D.TEXT_RECORD.problem({"index": 0, "text": "t"}) is None  # texts.jsonl of a stage finished long ago
    assert TRAIN_LOG.problem({"step": 2, "loss": 5.5, "lr": 1e-3, "tokens": 64, "elapsed": 0.1,
                              "grad_norm": float("nan")}) is None  # fmt: skip
    assert TRAIN_LOG.problem({"step": 6, "val_loss": None, "val_tokens": 0, "elapsed": 1.0}) is None
    assert TRAIN_LOG.problem({"step": 2, "loss": "x"}) == "field 'loss' is a text (\"x\"), not a finite number"


def test_a_damaged_evaluation_stream_is_recomputed_from_its_last_good_row(tmp_path, capsys, one_torch_thread):
    """The issue's case: DONE corrupt, one generation's continuation turned into a number (valid JSON). The rerun
    says so in one line, keeps the units before it and ends with the same files as before the damage."""
    profile = load_profile("tiny", [f"runs_dir={tmp_path}", "eval.prompts_per_domain=1", "eval.seeds=[42]"])
    st = P.evaluate(profile, P.untouched("tiny:gpt2"), quiet=True)
    before = {n: (st / n).read_text() for n in ("generations.jsonl", "perplexity.jsonl", "metrics.csv")}
    n_lines = len(_lines(st / "generations.jsonl"))
    assert n_lines >= 8
    (st / DONE).write_text("{corrupt")
    _damage(st / "generations.jsonl", n_lines // 2, continuation=0.25)
    _damage(st / "perplexity.jsonl", 1, ppl="high")
    capsys.readouterr()
    again = P.evaluate(profile, P.untouched("tiny:gpt2"), quiet=True)
    out = capsys.readouterr().out
    assert again.path == st.path and again.done
    said = [x for x in out.splitlines() if "the rest recomputed" in x]
    assert len(said) == 2, out
    assert f"generations.jsonl, line {n_lines // 2 + 1}: field 'continuation' is a number (0.25), not a text" in said[0]
    assert "perplexity.jsonl, line 2: field 'ppl' is a text (\"high\"), not a number > 0 or null" in said[1]
    assert {n: (st / n).read_text() for n in before} == before


def test_a_damaged_distillation_stream_resumes_to_the_same_texts(tiny_gpt2, tiny_toxic, tmp_path, capsys):
    cfg = DistillConfig(alpha=0.1, num_texts=7, max_new_tokens=8, batch_size=3, seed=11)
    full = D.contrastive_texts(tiny_gpt2, tiny_toxic, cfg, tmp_path / "full.jsonl", progress=False)
    (tmp_path / "cut.jsonl").write_text((tmp_path / "full.jsonl").read_text())
    _damage(tmp_path / "cut.jsonl", 4, n_tokens=-1)  # batch 1, second text
    capsys.readouterr()
    resumed = D.contrastive_texts(tiny_gpt2, tiny_toxic, cfg, tmp_path / "cut.jsonl", progress=False)
    assert "line 5: field 'n_tokens' is an integer (-1), not an integer >= 0" in capsys.readouterr().out
    assert resumed.texts == full.texts
    assert read_jsonl(tmp_path / "cut.jsonl") == read_jsonl(tmp_path / "full.jsonl")
