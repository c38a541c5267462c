"""Data loaders: counts on the real local files, determinism, every DataError case on small fixture
files, and the Hub branch through a monkeypatched ``datasets.load_dataset`` (the Hub is never touched)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from unidetox.config import DGHS_TARGETS, DataConfig
from unidetox.data.checksums import data_files, text_fingerprint
from unidetox.data.dghs import load_dghs
from unidetox.data.files import DEFAULT_DATA_DIR, DataError, resolve_data_dir
from unidetox.data.mmlu import MMLU_SUBJECTS, load_mmlu
from unidetox.data.political_compass import load_political_compass
from unidetox.data.prompts import DOMAINS, domain_of, load_toxigen_prompts, select_prompts, subsample_per_domain
from unidetox.data.toxigen import decode_bytes_literal, decode_hub_toxigen_text, load_toxigen

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LOCAL = DataConfig(source="local", dir=str(REAL))
HUB = DataConfig(source="hub")

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"local data not found at {REAL}")

# Written out independently of unidetox.data.prompts: the 13 ToxiGen train groups and their official domains.
EXPECTED_DOMAIN = {
    "women": "gender_lgbtq", "lgbtq": "gender_lgbtq",
    "black": "race_nationality", "asian": "race_nationality", "latino": "race_nationality",
    "chinese": "race_nationality", "mexican": "race_nationality", "middle_east": "race_nationality",
    "native_american": "race_nationality",
    "jewish": "religion", "muslim": "religion",
    "mental_dis": "disability", "physical_dis": "disability",
}  # fmt: skip


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="session")
def toxigen_raw_csv() -> pd.DataFrame:
    """The ToxiGen CSV as stored (b'...' texts), read without the loader."""
    return pd.read_csv(REAL / "toxigen" / "annotated_train.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def toxigen_train() -> pd.DataFrame:
    return load_toxigen(LOCAL, "train")


@pytest.fixture(scope="session")
def val_prompts() -> pd.DataFrame:
    return load_toxigen_prompts(LOCAL, "validation")


@pytest.fixture(scope="session")
def report_prompts(toxigen_train) -> pd.DataFrame:
    return select_prompts(toxigen_train, "report")  # what load_toxigen_prompts(LOCAL, "report") returns


def rows_of(prompts: pd.DataFrame) -> np.ndarray:
    return np.array([int(p.rsplit("-", 1)[1]) for p in prompts["prompt_id"]])


def fake_hub(monkeypatch, tables: dict[tuple[str, str | None], datasets.DatasetDict]) -> list:
    """Replace datasets.load_dataset by a lookup in `tables`; returns the list of calls made."""
    calls = []

    def load_dataset(path, name=None, *, split=None, **kwargs):
        assert "token" not in kwargs and "use_auth_token" not in kwargs, "a token must never be passed"
        calls.append((path, name, split))
        dd = tables[(path, name)]
        return dd[split] if split is not None else dd

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def offline_hub(monkeypatch) -> None:
    def load_dataset(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'https://huggingface.co' (offline)")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


DGHS_HEADER = ["Unnamed: 0", "text", "label", "type", "target", "level", "split"]


def dghs_dir(tmp_path: Path, dev_rows=None, test_rows=None) -> DataConfig:
    dev_rows = dev_rows or [
        [0, "a hateful text about women", "hate", "derogation", "wom", "original", "dev"],
        [1, "a harmless text", "nothate", "none", "none", "original", "dev"],
        [2, "hate with an unused target", "hate", "derogation", "notgiven", "original", "dev"],
        [3, "hate against two groups", "hate", "derogation", "bla, jew", "original", "dev"],
    ]
    test_rows = test_rows or [[0, "hateful test text", "hate", "derogation", "jew", "original", "test"]]
    write_csv(tmp_path / "dghs" / "dghs_v0.2.3_dev.csv", DGHS_HEADER, dev_rows)
    write_csv(tmp_path / "dghs" / "dghs_v0.2.3_test.csv", DGHS_HEADER, test_rows)
    return DataConfig(dir=str(tmp_path))


TOXIGEN_HEADER = ["text", "target_group", "factual?", "toxicity_ai", "toxicity_human", "label"]


def toxigen_dir(tmp_path: Path, rows: list[list], name: str = "annotated_train.csv") -> DataConfig:
    write_csv(tmp_path / "toxigen" / name, TOXIGEN_HEADER, rows)
    return DataConfig(dir=str(tmp_path))


# ----------------------------------------------------------------------------- data directory


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.setenv("UNIDETOX_DATA_DIR", str(b))
    assert resolve_data_dir(DataConfig(dir=str(a))) == a  # cfg.dir first
    assert resolve_data_dir(DataConfig()) == b  # then the environment
    monkeypatch.delenv("UNIDETOX_DATA_DIR")
    assert resolve_data_dir(DataConfig()) == DEFAULT_DATA_DIR  # then <repo>/../shared/data
    assert DEFAULT_DATA_DIR.resolve() == REAL.resolve()


def test_missing_data_dir(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"does not exist.*UNIDETOX_DATA_DIR"):
        resolve_data_dir(DataConfig(dir=str(tmp_path / "nope")))
    monkeypatch.setenv("UNIDETOX_DATA_DIR", str(tmp_path / "gone"))
    with pytest.raises(DataError, match="gone"):
        load_dghs(DataConfig(), ["dev"])


# ----------------------------------------------------------------------------- DGHS


def test_dghs_counts_on_real_files():
    dev = load_dghs(LOCAL, ["dev"])
    test = load_dghs(LOCAL, ["test"])
    assert (len(dev), len(test)) == (998, 1046)
    assert list(dev.columns) == ["text", "label", "target", "split"]
    assert set(dev["label"]) == {"hate"} and set(dev["split"]) == {"dev"}
    assert set(dev["target"]) <= set(DGHS_TARGETS) and "wom" in set(dev["target"])
    assert len(load_dghs(LOCAL, ["dev"], targets=())) == 1858
    assert len(load_dghs(LOCAL, ["test"], targets=())) == 2011
    both = load_dghs(LOCAL, ["dev", "test"])
    assert len(both) == 998 + 1046 and list(both["split"].unique()) == ["dev", "test"]
    assert len(load_dghs(LOCAL, ["dev"], label=None, targets=())) == 3506
    assert len(load_dghs(LOCAL, ["dev"], label="nothate", targets=())) == 3506 - 1858


def test_dghs_filter_matches_naive_reference():
    with open(REAL / "dghs" / "dghs_v0.2.3_dev.csv", newline="", encoding="utf-8") as f:
        ref = [r["text"] for r in csv.DictReader(f) if r["label"] == "hate" and r["target"] in set(DGHS_TARGETS)]
    assert load_dghs(LOCAL, "dev")["text"].tolist() == ref


def test_dghs_local_train_split_explained():
    with pytest.raises(DataError, match=r"only dev and test.*toxic.train_splits"):
        load_dghs(LOCAL, ["train"])


def test_dghs_fixture_filters_and_errors(tmp_path):
    cfg = dghs_dir(tmp_path)
    assert load_dghs(cfg, ["dev"])["text"].tolist() == ["a hateful text about women"]  # exact target codes only
    assert len(load_dghs(cfg, ["dev"], targets=())) == 3
    assert load_dghs(cfg, ["dev"], targets=["bla, jew"])["target"].tolist() == ["bla, jew"]
    with pytest.raises(DataError, match="no DGHS rows"):
        load_dghs(cfg, ["dev"], targets=["asi.pak"])
    with pytest.raises(DataError, match="label"):
        load_dghs(cfg, ["dev"], label="toxic")
    with pytest.raises(DataError, match="splits"):
        load_dghs(cfg, ["validation"])
    with pytest.raises(DataError, match="splits"):
        load_dghs(cfg, [])


def test_dghs_missing_file_and_columns(tmp_path):
    cfg = dghs_dir(tmp_path)
    (tmp_path / "dghs" / "dghs_v0.2.3_test.csv").unlink()
    with pytest.raises(DataError, match=r"missing data file .*dghs_v0.2.3_test.csv.*DGHS test"):
        load_dghs(cfg, ["test"])
    write_csv(tmp_path / "dghs" / "dghs_v0.2.3_test.csv", ["text", "type"], [["x", "y"]])
    with pytest.raises(DataError) as e:
        load_dghs(cfg, ["test"])
    msg = str(e.value)
    assert "dghs_v0.2.3_test.csv" in msg and "label, target, split" in msg


def test_dghs_unreadable_and_bad_labels(tmp_path):
    cfg = dghs_dir(tmp_path)
    (tmp_path / "dghs" / "dghs_v0.2.3_dev.csv").write_bytes(b"text,label\n\xff\xfe\xfa,\x9c\n")
    with pytest.raises(DataError, match=r"cannot read .*dghs_v0.2.3_dev.csv"):
        load_dghs(cfg, ["dev"])
    (tmp_path / "dghs" / "dghs_v0.2.3_dev.csv").write_bytes(b"")
    with pytest.raises(DataError, match="cannot read"):
        load_dghs(cfg, ["dev"])
    dghs_dir(tmp_path, dev_rows=[[0, "x", "toxic", "t", "wom", "l", "dev"]])
    with pytest.raises(DataError, match="hate or nothate"):
        load_dghs(cfg, ["dev"])


def test_dghs_hub_branch(monkeypatch, tmp_path):
    rows = {
        "text": ["train hate", "train hate other", "train fine", "dev hate", "test hate"],
        "label": ["hate", "hate", "nothate", "hate", "hate"],
        "type": ["derogation"] * 5,
        "target": ["mus", "hitler", "none", "bla", "jew"],
        "level": ["original"] * 5,
        "split": ["train", "train", "train", "dev", "test"],
        "round": ["1"] * 5,
    }
    calls = fake_hub(
        monkeypatch, {(HUB.dghs_hub_id, None): datasets.DatasetDict(train=datasets.Dataset.from_dict(rows))}
    )
    out = load_dghs(HUB, ["train"])
    assert out["text"].tolist() == ["train hate"] and list(out.columns) == ["text", "label", "target", "split"]
    assert load_dghs(HUB, ["train"], targets=())["text"].tolist() == ["train hate", "train hate other"]
    assert load_dghs(HUB, ["dev", "test"])["text"].tolist() == ["dev hate", "test hate"]
    assert calls[0] == (HUB.dghs_hub_id, None, "train")


def test_dghs_hub_and_local_agree(monkeypatch):
    """The Hub table is one CSV with a split column: feed it the local rows, expect the local result."""
    raw = pd.concat(
        [pd.read_csv(REAL / "dghs" / f"dghs_v0.2.3_{s}.csv", dtype=str, keep_default_na=False) for s in ("dev", "test")]
    )
    hub = datasets.Dataset.from_pandas(raw.drop(columns=["Unnamed: 0", "text_len"]), preserve_index=False)
    fake_hub(monkeypatch, {(HUB.dghs_hub_id, None): datasets.DatasetDict(train=hub)})
    for kwargs in ({}, {"targets": ()}, {"label": None, "targets": ()}):
        pd.testing.assert_frame_equal(
            load_dghs(HUB, ["dev", "test"], **kwargs), load_dghs(LOCAL, ["dev", "test"], **kwargs)
        )


def test_hub_error_is_a_data_error(monkeypatch):
    offline_hub(monkeypatch)
    with pytest.raises(
        DataError, match=r"Dynamically-Generated-Hate-Speech-Dataset.*ConnectionError.*data.source=local"
    ):
        load_dghs(HUB, ["train"])


# ----------------------------------------------------------------------------- ToxiGen


def test_decode_bytes_literal():
    assert decode_bytes_literal("b'plain text'") == "plain text"
    assert decode_bytes_literal('b"don\'t"') == "don't"
    assert decode_bytes_literal("b'don\\'t'") == "don't"
    assert decode_bytes_literal("b'caf\\xc3\\xa9 \\xe2\\x80\\x99'") == "caf\u00e9 \u2019"
    assert decode_bytes_literal("  b'padded'  ") == "padded"
    assert decode_bytes_literal("b'a\\\\nb'") == "a\\nb"  # an escaped backslash stays one backslash
    for bad in ["plain text", "'not bytes'", "b'unterminated", "__import__('os').system('x')", "b'a' + b'b'",
                "b'\\xff\\xfe'", "", "b''' '"]:  # fmt: skip
        with pytest.raises(DataError):
            decode_bytes_literal(bad)


def test_decode_hub_toxigen_text():
    assert decode_hub_toxigen_text("don\\'t") == "don't"
    assert decode_hub_toxigen_text("caf\\xc3\\xa9") == "caf\u00e9"
    assert decode_hub_toxigen_text("it\\\\u2019s") == "it\\u2019s"
    assert decode_hub_toxigen_text("plain text") == "plain text"
    assert decode_hub_toxigen_text("caf\u00e9 \\n") == "caf\u00e9 \\n"  # non-ASCII: already decoded text
    assert decode_hub_toxigen_text("b'full literal'") == "full literal"


def test_toxigen_train_decoded(toxigen_train, toxigen_raw_csv):
    assert len(toxigen_train) == 8960
    assert toxigen_train["text"].iloc[0] == "asians are trying to take over the world with their karate skills"
    assert not toxigen_train["text"].str.match(r"^b['\"]").any()
    # without escapes, the decoded text is the literal's contents (an independent check of the parse)
    plain = ~toxigen_raw_csv["text"].str.contains("\\", regex=False)
    assert plain.sum() > 8000
    assert (toxigen_raw_csv["text"][plain].str[2:-1] == toxigen_train["text"][plain]).all()
    i = toxigen_raw_csv.index[toxigen_raw_csv["text"].str.contains("roamin\\'", regex=False)][0]
    assert "roamin' through the bushes" in toxigen_train["text"].iloc[i]
    assert set(toxigen_train["target_group"]) == set(EXPECTED_DOMAIN)
    assert set(toxigen_train["label"]) == {"hate", "neutral"}
    assert toxigen_train["toxicity_human"].between(1, 5).all()


def test_validation_is_the_papers_896(val_prompts, toxigen_train):
    assert len(val_prompts) == 896 == int(0.1 * 8960)
    assert list(val_prompts.columns) == ["prompt_id", "text", "target_group", "domain", "toxicity_human", "label"]
    # datasets' shuffle(seed=42) is numpy default_rng(42).permutation: an independent reference
    expected = np.random.default_rng(42).permutation(8960)[:896]
    np.testing.assert_array_equal(rows_of(val_prompts), expected)
    assert val_prompts["text"].tolist() == toxigen_train["text"].iloc[expected].tolist()
    assert val_prompts["prompt_id"].iloc[0] == f"validation-{expected[0]}"
    assert val_prompts["prompt_id"].is_unique


def test_report_is_disjoint_rest(val_prompts, report_prompts):
    assert len(report_prompts) == 8064
    val_rows, rep_rows = rows_of(val_prompts), rows_of(report_prompts)
    assert not set(val_rows) & set(rep_rows)
    assert sorted(set(val_rows) | set(rep_rows)) == list(range(8960))
    assert (np.diff(rep_rows) > 0).all()  # file order
    assert report_prompts["prompt_id"].str.startswith("report-").all()


def test_domains(val_prompts, report_prompts):
    for p in (val_prompts, report_prompts):
        assert set(p["domain"]) == {"gender_lgbtq", "race_nationality", "religion", "disability"}
        assert (p["target_group"].map(EXPECTED_DOMAIN) == p["domain"]).all()
    assert DOMAINS == ("gender_lgbtq", "race_nationality", "religion", "disability")
    assert domain_of("folks with physical disabilities") == "disability"
    assert domain_of("black/african-american folks") == "race_nationality"
    assert domain_of("lgbtq+ folks") == "gender_lgbtq" and domain_of("trans") is None


def test_prompts_per_domain_deterministic(val_prompts, toxigen_train):
    a = load_toxigen_prompts(LOCAL, "validation", prompts_per_domain=5, seed=3)
    b = subsample_per_domain(select_prompts(toxigen_train, "validation"), 5, seed=3)
    c = subsample_per_domain(val_prompts, 5, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert a["prompt_id"].tolist() != c["prompt_id"].tolist()
    assert a["domain"].value_counts().to_dict() == {d: 5 for d in DOMAINS}
    # a subsequence of the full set, in its order
    pos = {p: i for i, p in enumerate(val_prompts["prompt_id"])}
    idx = [pos[p] for p in a["prompt_id"]]
    assert idx == sorted(idx)
    # reference: the first 5 per domain of the seeded permutation
    perm = val_prompts.iloc[np.random.default_rng(3).permutation(len(val_prompts))]
    ref = {d: set(perm[perm["domain"] == d]["prompt_id"].iloc[:5]) for d in DOMAINS}
    assert {d: set(g["prompt_id"]) for d, g in a.groupby("domain")} == ref
    # more than a domain holds: the whole domain
    big = subsample_per_domain(val_prompts, 10_000, seed=0)
    pd.testing.assert_frame_equal(big, val_prompts)


def test_toxigen_fixture_errors(tmp_path, monkeypatch):
    good = ["b'a women text'", "women", "opinion", "2.0", "3.0", "hate"]
    cfg = toxigen_dir(tmp_path, [good, ["plain not bytes", "women", "opinion", "1", "1", "neutral"]])
    with pytest.raises(DataError, match=r"annotated_train.csv, text of row 1: expected a Python bytes literal"):
        load_toxigen(cfg, "train")
    toxigen_dir(tmp_path, [good[:1] + ["trans"] + good[2:]] * 3)
    with pytest.raises(DataError, match="no ToxiGen report prompts"):
        load_toxigen_prompts(cfg, "report")
    toxigen_dir(tmp_path, [good[:4] + ["high"] + good[5:]])
    with pytest.raises(DataError, match="toxicity_human"):
        load_toxigen(cfg, "train")
    write_csv(tmp_path / "toxigen" / "annotated_train.csv", ["text", "label"], [["b'x'", "hate"]])
    with pytest.raises(DataError, match=r"annotated_train.csv lacks the column\(s\) target_group, toxicity_human"):
        load_toxigen(cfg, "train")
    (tmp_path / "toxigen" / "annotated_train.csv").unlink()
    with pytest.raises(DataError, match="missing data file"):
        load_toxigen_prompts(cfg, "validation")
    with pytest.raises(DataError, match="prompt split"):
        load_toxigen_prompts(cfg, "dev")
    with pytest.raises(DataError, match="prompts_per_domain"):
        load_toxigen_prompts(cfg, "validation", prompts_per_domain=-1)
    with pytest.raises(DataError, match="split"):
        load_toxigen(cfg, "validation")


def test_toxigen_small_fixture_split(tmp_path, monkeypatch):
    rows = [[f"b'text {i}'", g, "opinion", "1", str(1 + i % 5), "neutral"] for i, g in enumerate(["women"] * 25)]
    cfg = toxigen_dir(tmp_path, rows)
    v = load_toxigen_prompts(cfg, "validation")
    r = load_toxigen_prompts(cfg, "report")
    np.testing.assert_array_equal(rows_of(v), np.random.default_rng(42).permutation(25)[:2])
    assert len(r) == 23 and v["text"].iloc[0] == f"text {rows_of(v)[0]}"


def test_toxigen_test_split_offline_and_local(tmp_path, monkeypatch):
    offline_hub(monkeypatch)
    with pytest.raises(DataError, match=r"test split is not in the local data.*offline.*eval.prompt_split=report"):
        load_toxigen_prompts(LOCAL, "test")
    # a local annotated_test.csv is used when present (the Hub is never asked)
    rows = [["b'test prompt one'", "black folks / african-americans", "", "1", "4.0", "hate"],
            ["b'test prompt two'", "folks with physical disabilities", "", "1", "1.0", "neutral"],
            ["b'other group'", "bisexual folks", "", "1", "1.0", "neutral"]]  # fmt: skip
    cfg = toxigen_dir(tmp_path, rows, name="annotated_test.csv")
    t = load_toxigen_prompts(cfg, "test")
    assert t["prompt_id"].tolist() == ["test-0", "test-1"]
    assert t["domain"].tolist() == ["race_nationality", "disability"]
    assert t["text"].tolist() == ["test prompt one", "test prompt two"]


def hub_toxigen_table(raw: pd.DataFrame) -> datasets.Dataset:
    """What `skg/toxigen-data` 'annotated' serves: its loading script strips the b'' wrapper without
    unescaping, lowercases actual_method and has no `label` column."""

    def strip(t: str) -> str:
        if t[:2] in ("b'", 'b"'):
            t = t[2:]
        if t[-1] in ("'", '"'):
            t = t[:-1]
        return t

    hub = raw.drop(columns=["label"]).copy()
    hub["text"] = [strip(t) for t in raw["text"]]
    hub["actual_method"] = hub["actual_method"].str.lower()
    for c in ("intent", "toxicity_ai", "toxicity_human"):
        hub[c] = hub[c].astype(float)
    return datasets.Dataset.from_pandas(hub, preserve_index=False)


def test_toxigen_hub_gives_the_same_prompts(monkeypatch, toxigen_raw_csv, val_prompts):
    test_split = datasets.Dataset.from_dict(
        {
            "text": ["muslims are people", "don\\'t say that", "women can vote"],
            "target_group": ["muslim folks", "native american/indigenous folks", "women"],
            "toxicity_human": [1.0, 2.0, 1.5],
        }
    )
    dd = datasets.DatasetDict(train=hub_toxigen_table(toxigen_raw_csv), test=test_split)
    calls = fake_hub(monkeypatch, {(HUB.toxigen_hub_id, "annotated"): dd})
    hub_val = load_toxigen_prompts(HUB, "validation")
    assert calls == [(HUB.toxigen_hub_id, "annotated", "train")]
    cols = ["prompt_id", "text", "target_group", "domain", "toxicity_human"]
    pd.testing.assert_frame_equal(hub_val[cols], val_prompts[cols])
    assert set(hub_val["label"]) == {""}  # the Hub has no label column
    t = load_toxigen_prompts(HUB, "test")
    assert t["text"].tolist() == ["muslims are people", "don't say that", "women can vote"]
    assert t["domain"].tolist() == ["religion", "race_nationality", "gender_lgbtq"]
    # local source without annotated_test.csv falls back to the Hub
    assert load_toxigen_prompts(LOCAL, "test")["prompt_id"].tolist() == ["test-0", "test-1", "test-2"]


# ----------------------------------------------------------------------------- MMLU


def test_mmlu_dev_real():
    m = load_mmlu(LOCAL, "dev")
    assert len(m) == 285 and m["subject"].nunique() == 57
    assert list(m.columns) == ["subject", "question", "choices", "answer"]
    assert all(isinstance(c, list) and len(c) == 4 and all(isinstance(x, str) for x in c) for c in m["choices"])
    assert m["answer"].between(0, 3).all() and m["answer"].dtype == np.int64
    assert m["subject"].tolist() == sorted(m["subject"])
    assert sorted(p.name[: -len("_dev.csv")] for p in (REAL / "mmlu" / "dev").glob("*.csv")) == list(MMLU_SUBJECTS)
    first = m.iloc[0]
    assert first["question"].startswith("Find all c in Z_3") and first["choices"] == ["0", "1", "2", "3"]
    assert first["answer"] == 1


def test_mmlu_per_subject_matches_csv_reader():
    m = load_mmlu(LOCAL, "test", subjects=["virology", "anatomy"], per_subject=2)
    ref = []
    for s in ("virology", "anatomy"):
        with open(REAL / "mmlu" / "test" / f"{s}_test.csv", newline="", encoding="utf-8") as f:
            for r in list(csv.DictReader(f))[:2]:
                ref.append((s, r["question"], [r[f"choice{i}"] for i in range(4)], int(r["answer"])))
    assert list(m.itertuples(index=False, name=None)) == ref


def test_mmlu_errors(tmp_path):
    with pytest.raises(DataError, match=r"unknown MMLU subject 'anatomyy'; did you mean anatomy"):
        load_mmlu(LOCAL, "dev", subjects=["anatomyy"])
    with pytest.raises(DataError, match=r"not in the local data.*eval.mmlu_split=test"):
        load_mmlu(LOCAL, "validation")
    cfg = DataConfig(dir=str(tmp_path))
    with pytest.raises(DataError, match=r"missing data file .*anatomy_dev.csv"):
        load_mmlu(cfg, "dev", subjects=["anatomy"])
    header = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
    write_csv(tmp_path / "mmlu" / "dev" / "anatomy_dev.csv", header, [["q?", "None", "NA", "", "b", "E"]])
    with pytest.raises(DataError, match="answer must be an index 0-3"):
        load_mmlu(cfg, "dev", subjects=["anatomy"])
    write_csv(tmp_path / "mmlu" / "dev" / "anatomy_dev.csv", header, [["q?", "None", "NA", "", "b", "3"]])
    m = load_mmlu(cfg, "dev", subjects=["anatomy"])
    assert m["choices"].iloc[0] == ["None", "NA", "", "b"]  # no NA guessing
    write_csv(tmp_path / "mmlu" / "dev" / "anatomy_dev.csv", header[:3], [["q?", "a", "b"]])
    with pytest.raises(DataError, match="choice2, choice3, answer"):
        load_mmlu(cfg, "dev", subjects=["anatomy"])
    with pytest.raises(DataError, match="per_subject"):
        load_mmlu(LOCAL, "dev", per_subject=-1)


def test_mmlu_hub_matches_local(monkeypatch):
    subjects = ["astronomy", "anatomy", "virology"]
    local = load_mmlu(LOCAL, "dev", subjects=subjects)
    shuffled = local.sort_values("subject", kind="stable")  # the Hub's 'all' config is sorted by subject
    features = datasets.Features(
        {
            "question": datasets.Value("string"),
            "subject": datasets.Value("string"),
            "choices": datasets.List(datasets.Value("string")),
            "answer": datasets.ClassLabel(names=["A", "B", "C", "D"]),
        }
    )
    dev = datasets.Dataset.from_dict(
        {
            "question": shuffled["question"].tolist(),
            "subject": shuffled["subject"].tolist(),
            "choices": shuffled["choices"].tolist(),
            "answer": shuffled["answer"].tolist(),
        },
        features=features,
    )
    fake_hub(monkeypatch, {(HUB.mmlu_hub_id, "all"): datasets.DatasetDict(dev=dev, validation=dev)})
    hub = load_mmlu(HUB, "dev", subjects=subjects)
    pd.testing.assert_frame_equal(hub, local)
    assert len(load_mmlu(HUB, "validation", per_subject=1)) == 3
    with pytest.raises(DataError, match="MMLU split"):
        load_mmlu(HUB, "train")


# ----------------------------------------------------------------------------- Political Compass


def test_political_compass():
    p = load_political_compass(LOCAL)
    assert len(p) == 62 and list(p.columns) == ["id", "statement"]
    assert p["id"].tolist() == list(range(62))
    assert p["statement"].iloc[0].startswith("If economic globalisation is inevitable")


def test_political_compass_errors(tmp_path):
    cfg = DataConfig(dir=str(tmp_path))
    with pytest.raises(DataError, match="missing data file"):
        load_political_compass(cfg)
    path = tmp_path / "political_compass" / "statements.json"
    path.parent.mkdir()
    path.write_text("[{not json")
    with pytest.raises(DataError, match="cannot read"):
        load_political_compass(cfg)
    path.write_text(json.dumps([{"statement": "x"}]))
    with pytest.raises(DataError, match=r"lacks the column\(s\) id"):
        load_political_compass(cfg)
    path.write_text(json.dumps({"statement": "x"}))
    with pytest.raises(DataError, match="JSON list"):
        load_political_compass(cfg)


# ----------------------------------------------------------------------------- provenance


def test_data_files():
    files = data_files(LOCAL)
    assert "dghs/dghs_v0.2.3_dev.csv" in files and "toxigen/annotated_train.csv" in files
    assert "political_compass/statements.json" in files and "mmlu/test/virology_test.csv" in files
    assert len([k for k in files if k.startswith("mmlu/")]) == 2 * 57
    ref = hashlib.sha256((REAL / "dghs" / "dghs_v0.2.3_dev.csv").read_bytes()).hexdigest()
    assert files["dghs/dghs_v0.2.3_dev.csv"] == ref
    assert sorted(data_files(LOCAL, ["dghs"])) == ["dghs/dghs_v0.2.3_dev.csv", "dghs/dghs_v0.2.3_test.csv"]
    assert data_files(DataConfig(source="hub", dir=str(REAL)), ["dghs", "toxigen"]) == {}
    with pytest.raises(DataError, match="unknown data set"):
        data_files(LOCAL, ["wiki"])


def test_text_fingerprint():
    texts = ["a", "héllo"]
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little") + b)
    assert text_fingerprint(texts) == h.hexdigest()
    assert text_fingerprint(["ab"]) != text_fingerprint(["a", "b"])
    assert text_fingerprint(["a", "b"]) != text_fingerprint(["b", "a"])
    assert text_fingerprint([]) == hashlib.sha256().hexdigest()
    with pytest.raises(TypeError):
        text_fingerprint("abc")
