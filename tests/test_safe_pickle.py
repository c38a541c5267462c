"""The restricted unpickler refuses every name outside its allow-list before anything runs."""

from __future__ import annotations

import collections
import copyreg
import os
import pickle
import struct
import sys
import types

import pytest

from unidetox.safe_pickle import RestrictedUnpickler, UnsafePickleError, safe_load, safe_loads

ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "int"): int,
}


def _str(s: str) -> bytes:
    """Protocol-0 STRING opcode for `s` (repr quoting)."""
    return b"S" + repr(s).encode() + b"\n"


def payloads(marker: str) -> dict[str, bytes]:
    """Pickles that, loaded with plain pickle, create the file `marker` (each through a different opcode path)."""

    class SystemCall:
        def __reduce__(self):
            return (os.system, (f"touch '{marker}'",))

    proto0_system = b"cos\nsystem\n(" + _str(f"touch '{marker}'") + b"tR."
    popen = b"csubprocess\nPopen\n((" + _str("touch") + _str(marker) + b"ltR."
    eval_ = b"cbuiltins\neval\n(" + _str(f"open({marker!r}, 'w').close()") + b"tR."
    exec_inst = b"(" + _str(f"open({marker!r}, 'w').close()") + b"ibuiltins\nexec\n."
    nested = (
        b"ccollections\nOrderedDict\n)R(" + _str("k") + b"cbuiltins\neval\n(" + _str(f"open({marker!r}, 'w')") + b"tRu."
    )
    return {
        "os.system (GLOBAL, protocol 0)": proto0_system,
        "posix.system (STACK_GLOBAL, protocol 4)": pickle.dumps(SystemCall(), protocol=4),
        "posix.system (GLOBAL, protocol 2)": pickle.dumps(SystemCall(), protocol=2),
        "subprocess.Popen": popen,
        "builtins.eval": eval_,
        "builtins.exec (INST)": exec_inst,
        "eval nested inside an allowed OrderedDict": nested,
    }


def test_payloads_are_real(tmp_path):
    """Control: plain pickle does run two of the payloads (so the refusals below prove something)."""
    for key in ("builtins.eval", "builtins.exec (INST)"):
        marker = tmp_path / key.replace(" ", "_")
        pickle.loads(payloads(str(marker))[key])
        assert marker.exists(), key


@pytest.mark.parametrize("key", list(payloads("x")))
def test_dangerous_globals_refused_without_side_effect(tmp_path, key):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError) as info:
        safe_loads(payloads(str(marker))[key], ALLOWED, source="evil.pkl")
    msg = str(info.value)
    assert "refusing to unpickle" in msg and "evil.pkl" in msg and "allow-list" in msg
    assert any(
        name in msg for name in ("os.system", "posix.system", "subprocess.Popen", "builtins.eval", "builtins.exec")
    )
    assert not marker.exists()


def test_refusal_is_an_unpickling_error():
    assert issubclass(UnsafePickleError, pickle.UnpicklingError)


@pytest.mark.parametrize(
    "data, name",
    [
        (pickle.dumps(collections.Counter(a=2)), "collections.Counter"),  # same module as an allowed class
        (b"cunidetox.config\nDataConfig\n)R.", "unidetox.config.DataConfig"),  # another module entirely
        (b"cbuiltins\ngetattr\n.", "builtins.getattr"),  # merely naming it is refused
        (pickle.dumps(types.SimpleNamespace(a=1)), "types.SimpleNamespace"),
    ],
)
def test_other_classes_refused(data, name):
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
        safe_loads(data, ALLOWED)


def test_extension_registry_opcode_goes_through_the_allow_list(tmp_path):
    marker = tmp_path / "ext"
    code = 0x7FFE1234
    copyreg.add_extension("builtins", "eval", code)
    try:
        ext4 = b"\x84" + struct.pack("<i", code)
        data = b"\x80\x02" + ext4 + b"(" + _str(f"open({str(marker)!r}, 'w').close()") + b"tR."
        pickle.loads(data)  # control: the registered extension really resolves and runs
        assert marker.exists()
        marker.unlink()
        with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
            safe_loads(data, ALLOWED)
    finally:
        copyreg.remove_extension("builtins", "eval", code)
    assert not marker.exists()


def test_persistent_ids_refused():
    with pytest.raises(UnsafePickleError, match="persistent id"):
        safe_loads(b"P1\n.", ALLOWED)


def test_allowed_classes_load(tmp_path):
    counts = collections.defaultdict(int, {"a": 3})
    obj = {"od": collections.OrderedDict([("x", 1), ("y", 2)]), "dd": counts, "n": [1, 2.5, "s", (None, True)]}
    for proto in (0, 2, 3, 4, 5):
        out = safe_loads(pickle.dumps(obj, protocol=proto), ALLOWED)
        assert out == obj
        assert type(out["od"]) is collections.OrderedDict and list(out["od"]) == ["x", "y"]
        assert type(out["dd"]) is collections.defaultdict and out["dd"].default_factory is int
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(obj))
    assert safe_load(path, ALLOWED) == obj


def test_allowed_name_maps_to_our_stand_in(monkeypatch):
    """A class named in the pickle is replaced by the object the allow-list maps it to (no import of its module)."""
    fake = types.ModuleType("thirdparty_mod")

    class Thing:
        def __init__(self):
            self.a = 1

    Thing.__module__ = "thirdparty_mod"
    Thing.__qualname__ = "Thing"
    fake.Thing = Thing
    monkeypatch.setitem(sys.modules, "thirdparty_mod", fake)
    data = pickle.dumps(Thing(), protocol=3)
    monkeypatch.delitem(sys.modules, "thirdparty_mod")

    class StandIn:
        pass

    out = safe_loads(data, {("thirdparty_mod", "Thing"): StandIn})
    assert type(out) is StandIn and out.a == 1
    with pytest.raises(UnsafePickleError, match=r"thirdparty_mod\.Thing"):
        safe_loads(data, ALLOWED)
    assert "thirdparty_mod" not in sys.modules


def test_unpickler_class_usable_directly():
    import io

    up = RestrictedUnpickler(io.BytesIO(pickle.dumps(collections.OrderedDict(a=1))), ALLOWED)
    assert up.load() == collections.OrderedDict(a=1)
    with pytest.raises(UnsafePickleError, match=r"\(none\)"):
        safe_loads(pickle.dumps(collections.OrderedDict()), {})
