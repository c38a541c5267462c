"""Inputs fuzzed, not listed (hypothesis): text sources, ``--set`` overrides and prompts.

Every generated input must end in a result or in one ``error:`` line with exit status 2: never a traceback, never a
half-written stage. At the level of the readers, that is a value or a :class:`UnidetoxError` (which the CLI prints
as that one line); a handful of whole commands are run in-process on top. The strings mix arbitrary Unicode with
what breaks text handling: lone surrogates (``json.loads('"\\ud800"')`` gives one; a file cannot hold one in UTF-8),
NUL, byte-order marks, line and paragraph separators, CSV quotes and separators, empty and very long rows.

The rule for a lone surrogate, wherever a text comes from (a text source, a prompt, a ``--set`` value): it is not a
character, so it is refused with one line naming where it is (row, setting) rather than replaced, which would train
on or score a text that the file does not hold.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from harness import half_written, temporary_leftovers
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_bad_inputs import check_failure

from unidetox.cli import run
from unidetox.config import ConfigError, to_dict
from unidetox.config.loader import load_profile
from unidetox.data.texts import TextSourceError, read_texts
from unidetox.models.loading import load_tokenizer
from unidetox.report.tables.settings import settings as all_settings

#: hypothesis settings of every test here: no deadline (a shared 2-core machine), no example database in the
#: repository, and function-scoped fixtures are fine (each example writes under its own fresh folder)
FUZZ = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
TRICKY = ["\ud800", "\udfff", "\udcff", "\x00", "\ufeff", "\u2028", "\r", "\n", '"', ",", "\t", "\\", " ",
          "é", "💥", "\u0301", "\x85"]  # fmt: skip
chars = st.one_of(st.characters(), st.sampled_from(TRICKY))
texts = st.lists(chars, max_size=40).map("".join)  # st.text() would drop the surrogates
rows = st.lists(st.one_of(texts, st.just(""), st.just("   "), st.just("x" * 100_000)), max_size=6)
TOKENIZERS = {}


def tokenizer(spec: str):
    if spec not in TOKENIZERS:
        TOKENIZERS[spec] = load_tokenizer(spec)
    return TOKENIZERS[spec]


def fresh(tmp_path: Path) -> Path:
    """A new empty folder under `tmp_path` for one example."""
    n = len(list(tmp_path.iterdir()))
    d = tmp_path / f"ex{n}"
    d.mkdir()
    return d


def check_source(path: Path) -> None:
    """A text source reads to texts that are text (UTF-8 encodable, not blank) and that the tiny tokenizers take, or
    to one TextSourceError."""
    try:
        src = read_texts(path)
    except TextSourceError as e:
        event(f"refused: {str(e).split(':')[1][:30] if ':' in str(e) else str(e)[:30]}")
        assert path.name in str(e)
        return
    event("read")
    assert src.texts and all(isinstance(t, str) and t.strip() for t in src.texts)
    for t in src.texts:
        t.encode("utf-8")  # raises on a lone surrogate
    for spec in ("tiny:gpt2", "tiny:llama"):
        ids = tokenizer(spec)(list(src.texts[:3]), truncation=True, max_length=16)["input_ids"]
        assert len(ids) == min(3, len(src.texts))


# ----------------------------------------------------------------------------- text sources


@settings(max_examples=60, **FUZZ)
@given(rows=rows, bom=st.booleans(), column=st.sampled_from(["Text", "text", "body"]))
def test_csv_sources(tmp_path, rows, bom, column):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([column])
    w.writerows([r] for r in rows)
    raw = buf.getvalue().encode("utf-8", errors="surrogatepass")  # a lone surrogate: bytes that are not UTF-8
    path = fresh(tmp_path) / "t.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + raw)
    check_source(path)


values = st.one_of(texts, st.none(), st.integers(), st.floats(), st.booleans(), st.lists(texts, max_size=2),
                   st.just("x" * 100_000))  # fmt: skip
good = st.fixed_dictionaries({"text": st.one_of(texts, st.none(), st.just(""), st.just("x" * 100_000))})
odd = st.one_of(st.fixed_dictionaries({"text": values}), st.dictionaries(texts, values, max_size=3),
                st.lists(values, max_size=2), values)  # fmt: skip


@settings(max_examples=80, **FUZZ)
@given(recs=st.lists(good, max_size=6), bad=st.none() | st.tuples(st.integers(0, 6), odd), ascii_json=st.booleans(),
       bom=st.booleans(), junk=st.sampled_from(["", "\n", "{not json\n", "\n\n"]))  # fmt: skip
def test_jsonl_sources(tmp_path, recs, bad, ascii_json, bom, junk):
    """JSON escapes a lone surrogate as \\ud800 (valid JSON, the issue's case); without escapes it is not UTF-8.
    Mostly well-formed files (a text field per line), some with one odd record or a junk line."""
    if bad is not None:
        recs = [*recs[: bad[0]], bad[1], *recs[bad[0] :]]
    lines = "".join(json.dumps(r, ensure_ascii=ascii_json) + "\n" for r in recs) + junk
    path = fresh(tmp_path) / "t.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + lines.encode("utf-8", errors="surrogatepass"))
    check_source(path)


valid = st.text(st.characters(exclude_categories=["Cs"]) | st.sampled_from(["\x00", "\ufeff", "\u2028"]), max_size=40)


@settings(max_examples=30, **FUZZ)
@given(col=st.lists(st.one_of(valid, st.none(), st.just(""), st.just("x" * 100_000)), max_size=6),
       numbers=st.booleans(), name=st.sampled_from(["text", "Text", "other"]))  # fmt: skip
def test_parquet_sources(tmp_path, col, numbers, name):
    """Arrow strings are UTF-8 (no lone surrogate can be stored); a column of numbers instead of texts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = fresh(tmp_path) / "t.parquet"
    values = [len(v) if v is not None else None for v in col] if numbers else col
    pq.write_table(pa.table({name: pa.array(values, type=pa.int64() if numbers else pa.string())}), path)
    check_source(path)


@settings(max_examples=12, **FUZZ)
@given(col=st.lists(st.one_of(valid, st.none(), st.just("")), max_size=5), split=st.sampled_from([None, "train",
       "test"]))  # fmt: skip
def test_dataset_folder_sources(tmp_path, col, split):
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_dict({"text": col}, features=None) if col else Dataset.from_dict({"text": []})
    path = fresh(tmp_path) / "ds"
    (DatasetDict({split: ds}) if split else ds).save_to_disk(str(path))
    check_source(path)


@settings(max_examples=6, **FUZZ)
@given(recs=st.lists(st.fixed_dictionaries({"text": st.one_of(texts, st.none(), st.just(""))}), min_size=1,
       max_size=4))  # fmt: skip
def test_detox_on_fuzzed_texts_ends_in_a_model_or_one_error_line(tmp_path, capsys, recs, one_torch_thread):
    """The whole command, in-process: `unidetox detox --target tiny:gpt2 --texts FILE` (one step)."""
    d = fresh(tmp_path)
    (d / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    capsys.readouterr()
    rc = run(["detox", "--profile", "tiny", "--quiet", "--set", f"runs_dir={d / 'runs'}", "--target", "tiny:gpt2",
              "--texts", str(d / "t.jsonl"), "--steps", "1", "--batch-size", "2", "--max-length", "8"])  # fmt: skip
    err = capsys.readouterr().err
    event("trained" if rc == 0 else f"refused: {err[:40]}")
    if rc != 0:
        check_failure(rc, err, ["error: "])
    assert not half_written(d / "runs") and not temporary_leftovers(d)


def test_lone_surrogate_in_a_text_source_names_the_row(tmp_path):
    """The issue's case: ``{"text": "a\\ud800b"}`` ended in a TypeError traceback from the tokenizer."""
    (tmp_path / "t.jsonl").write_text('{"text": "fine"}\n{"text": "a\\ud800b"}\n', encoding="utf-8")
    with pytest.raises(TextSourceError, match=r"row 2 holds a lone surrogate \(U\+D800, character 2\)"):
        read_texts(tmp_path / "t.jsonl")


# ----------------------------------------------------------------------------- --set


KEYS = [s.key for s in all_settings()]
YAML_ODD = ["[]", "[1, 2]", "{}", "{a: 1}", "null", "~", ".nan", "-.inf", "1e-5", "1e400", "9" * 400, "true", "yes",
            "2020-01-01", "!!binary aGk=", "!!python/object:os.system x", "[", "'", "&a [*a]", "0x10", "-0"]  # fmt: skip
raw_values = st.one_of(texts, st.sampled_from(YAML_ODD), st.integers().map(str), st.floats().map(repr),
                       st.lists(st.integers(-2, 10), max_size=3).map(str), st.text("abc:/._-0", max_size=12))  # fmt: skip
keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS), st.sampled_from(KEYS), texts,
                 st.sampled_from(["toxic", "toxic.train", "detox.train", "eval", "distill.alpha.x", ""]))  # fmt: skip


@settings(max_examples=250, **FUZZ)
@given(sets=st.lists(st.tuples(keys, raw_values), min_size=1, max_size=3))
def test_set_overrides_load_or_refuse(sets):
    overrides = [f"{k}={v}" for k, v in sets]
    try:
        profile = load_profile("tiny", overrides)
    except ConfigError as e:
        event(f"refused: {str(e)[:25]}")
        assert str(e).strip()
        return
    event("loaded")
    # a profile that loads can be written as a stage configuration (UTF-8 JSON) and names no path with a NUL
    text = json.dumps(to_dict(profile), ensure_ascii=False, sort_keys=True)
    text.encode("utf-8")
    assert "\x00" not in text


SCALARS = {
    "int": st.one_of(st.integers(-3, 1000), st.just(10**30)),
    "float": st.one_of(st.floats(), st.floats(0, 1), st.integers(-3, 10)),
    "str": st.one_of(texts, st.text("abc:/._-0", max_size=12), st.sampled_from(["tiny:gpt2", "~", "", " "])),
    "bool": st.booleans(),
}


@st.composite
def typed_override(draw) -> str:
    """`key=value` for a real setting, with a value of its own type (JSON, which YAML reads: "\\ud800" in a JSON
    string is how a lone surrogate gets into a setting)."""
    setting = draw(st.sampled_from(all_settings()))
    kind = setting.type
    if kind.startswith("list["):
        value = draw(st.lists(SCALARS[kind[5:-1]], max_size=3))
    else:
        value = draw(SCALARS[kind])
    return f"{setting.key}={json.dumps(value, ensure_ascii=draw(st.booleans()))}"


@settings(max_examples=200, **FUZZ)
@given(overrides=st.lists(typed_override(), min_size=1, max_size=3))
def test_set_values_of_the_right_type_load_or_refuse(overrides):
    """Values of each setting's own type, edge cases included (0, negatives, 10**30, NaN, empty, surrogates): the
    checks of each dataclass refuse what is out of range, and whatever loads can be written as a stage configuration."""
    try:
        profile = load_profile("tiny", overrides)
    except ConfigError as e:
        event("refused")
        assert str(e).strip()
        return
    event("loaded")
    json.dumps(to_dict(profile), ensure_ascii=False).encode("utf-8")


@settings(max_examples=15, **FUZZ)
@given(override=st.one_of(typed_override(), st.tuples(keys, raw_values).map("=".join)))
def test_set_on_the_command_line_ends_in_one_line(tmp_path, capsys, override):
    """`unidetox verify` with a fuzzed --set (runs_dir last, so that no fuzzed folder is written): exit 2 with one
    error line (a bad value, or no run store yet), never a traceback."""
    d = fresh(tmp_path)
    capsys.readouterr()
    rc = run(["verify", "--profile", "tiny", "--set", override, "--set", f"runs_dir={d / 'runs'}"])
    check_failure(rc, capsys.readouterr().err, ["error: "])
    assert not (d / "runs").exists()


# ----------------------------------------------------------------------------- prompts


@pytest.fixture(scope="module")
def explorer(tiny_gpt2, tiny_llama, one_torch_thread):
    from unidetox.measure.scorers import load_scorer
    from unidetox.pipeline.explore import Explorer, Model

    models = [Model("tiny:gpt2", "No detoxification", tiny_gpt2), Model("tiny:llama", "No detoxification", tiny_llama)]
    return Explorer(load_profile("tiny", ["eval.max_new_tokens=4"]), models, load_scorer("tiny"))


@settings(max_examples=25, **FUZZ)
@given(prompt=st.one_of(texts, st.just(""), st.just("x" * 5000), st.text(st.sampled_from(TRICKY), max_size=8)))
def test_prompts_are_explored_or_refused(explorer, prompt):
    from unidetox.pipeline.explore import ExploreError

    try:
        frame = explorer.run(prompt, samples=2, seed=1)
    except ExploreError as e:
        event(f"refused: {str(e)[:20]}")
        assert str(e).strip()
        return
    event("explored")
    assert len(frame) == 4 and frame.toxicity.between(0, 1).all()
    assert all(isinstance(c, str) for c in frame.continuation)
