"""Text sources for fine-tuning: the released CSV, JSONL, saved datasets; content hashes; bad files."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
from harness import DATA_DIR

from unidetox.data.texts import RELEASED_CSV, TextSourceError, read_texts


def test_released_csv_reads_640_texts_with_its_file_hash():
    path = DATA_DIR / RELEASED_CSV
    src = read_texts(path)
    with open(path, newline="", encoding="utf-8") as f:  # independent reader: the csv module
        csv.field_size_limit(1 << 30)
        expected = [r["Text"] for r in csv.DictReader(f)]
    assert src.kind == "csv" and src.column == "Text" and src.n_dropped == 0
    assert list(src.texts) == expected and len(expected) == 640
    assert src.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_jsonl_and_csv_with_lowercase_column_drop_empty_texts(tmp_path):
    j = tmp_path / "t.jsonl"
    j.write_text('{"text": "first one"}\n\n{"text": "  "}\n{"text": "second", "id": 2}\n', encoding="utf-8")
    src = read_texts(j)
    assert src.texts == ("first one", "second") and src.n_dropped == 1 and src.kind == "jsonl"
    c = tmp_path / "t.csv"
    c.write_text('id,text\n1,"a, quoted\nnewline"\n2,\n3,b\n', encoding="utf-8")
    src = read_texts(c)
    assert src.column == "text" and src.texts == ("a, quoted\nnewline", "b") and src.n_dropped == 1
    assert read_texts(c, column="id").texts == ("1", "2", "3")


def test_saved_dataset_and_dataset_dict(tmp_path):
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_dict({"text": ["x y", "z"], "n": [1, 2]})
    ds.save_to_disk(str(tmp_path / "ds"))
    src = read_texts(tmp_path / "ds")
    assert src.kind == "dataset" and src.texts == ("x y", "z")
    DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    assert read_texts(tmp_path / "dd").texts == ("x y", "z")


def test_hash_follows_content_only(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"text": "same"}) + "\n")
    b.write_text(json.dumps({"text": "same"}) + "\n")
    assert read_texts(a).sha256 == read_texts(b).sha256
    b.write_text(json.dumps({"text": "changed"}) + "\n")
    assert read_texts(a).sha256 != read_texts(b).sha256


@pytest.mark.parametrize(
    "name, content, phrases",
    [
        ("missing.csv", None, ["does not exist", ".jsonl"]),
        ("nocol.csv", "body,label\nhello,1\n", ["no column 'Text' or 'text'", "found: body, label", "--text-column"]),
        ("empty.csv", "", ["is empty"]),
        ("header-only.csv", "Text\n", ["no non-empty text"]),
        ("blank.jsonl", '{"text": ""}\n', ["no non-empty text"]),
        ("empty.jsonl", "\n", ["is empty"]),
        ("latin1.csv", "Text\ncaf\xe9\n".encode("latin-1"), ["is not UTF-8", "re-save it as UTF-8"]),
        ("nofield.jsonl", '{"body": "x"}\n', ["line 1 has no field 'text'", "--text-column"]),
        ("broken.jsonl", '{"text": "x"\n', ["line 1: not JSON"]),
        ("notes.txt", "hello\n", ["unknown text source type '.txt'"]),
    ],
)
def test_bad_sources_say_what_and_how_to_fix(tmp_path, name, content, phrases):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TextSourceError) as e:
        read_texts(path)
    assert all(p in str(e.value) for p in phrases), str(e.value)


def test_empty_dataset_and_plain_directory(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"text": []}).save_to_disk(str(tmp_path / "empty"))
    with pytest.raises(TextSourceError, match="has no rows"):
        read_texts(tmp_path / "empty")
    (tmp_path / "plain").mkdir()
    with pytest.raises(TextSourceError, match="not a dataset saved by datasets"):
        read_texts(tmp_path / "plain")
