"""Run store: keys, atomic writes, markers, crash-safe streams."""

from __future__ import annotations

import os

import pytest

from unidetox.store.jsonl import JsonlWriter, read_jsonl
from unidetox.store.run_store import StageDir, StoreError, atomic_path, stage_key, write_json


def test_key_depends_on_config_and_inputs_only():
    assert stage_key({"a": 1, "b": [1, 2]}) == stage_key({"b": [1, 2], "a": 1})
    assert stage_key({"a": 1}) != stage_key({"a": 2})
    assert stage_key({"a": 1}, {"x": "k1"}) != stage_key({"a": 1}, {"x": "k2"})


def test_stage_dir_marker(tmp_path):
    st = StageDir.create(tmp_path, "tiny", "distill", {"alpha": 0.1}, {"toxic-model": "abc"})
    assert st.path.parent == tmp_path / "tiny" / "distill" and (st.path / "config.json").exists()
    assert not st.done
    st.mark_done({"seconds": 1.5})
    again = StageDir.create(tmp_path, "tiny", "distill", {"alpha": 0.1}, {"toxic-model": "abc"})
    assert again.done and again.summary() == {"seconds": 1.5}


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash")
    assert os.listdir(tmp_path) == []
    write_json(target, {"ok": True})
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_unwritable_directory_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(StoreError, match="cannot"):
            write_json(ro / "x" / "y.json", {})
    finally:
        ro.chmod(0o700)


def test_jsonl_torn_line_is_cut_on_reopen(tmp_path):
    p = tmp_path / "s.jsonl"
    w = JsonlWriter(p)
    w.append([{"i": 0}, {"i": 1}])
    with open(p, "a") as f:
        f.write('{"i": 2, "te')  # killed mid-write
    assert read_jsonl(p) == [{"i": 0}, {"i": 1}]
    w2 = JsonlWriter(p)
    assert w2.records == [{"i": 0}, {"i": 1}]
    w2.append([{"i": 2}])
    assert read_jsonl(p) == [{"i": 0}, {"i": 1}, {"i": 2}]
