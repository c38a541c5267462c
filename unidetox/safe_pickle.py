"""Load pickles that may only name an explicit allow-list of classes.

Unpickling runs code: every class or function a pickle names (opcodes GLOBAL, STACK_GLOBAL, INST, and the
copyreg extension opcodes EXT1/2/4 once copyreg's extension cache is emptied) goes through ``find_class`` and may
then be called by REDUCE/NEWOBJ/BUILD. :class:`RestrictedUnpickler` answers ``find_class`` only from an allow-list
that maps ``(module, name)`` as written in the pickle to an object of *ours* (the real class, or a stand-in), and
refuses every other name with :class:`UnsafePickleError` *before* anything is called. Persistent ids are refused.

>>> import collections, pickle
>>> d = safe_loads(pickle.dumps(collections.OrderedDict(a=1)), {("collections", "OrderedDict"): collections.OrderedDict})
>>> dict(d)
{'a': 1}
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from unidetox.errors import UnidetoxError

Allowed = Mapping[tuple[str, str], Any]


class UnsafePickleError(UnidetoxError, pickle.UnpicklingError):
    """A pickle names a class or function outside the allow-list (nothing from it was executed)."""


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose ``find_class`` resolves only the names in `allowed`.

    `allowed` maps ``(module, qualified name)`` exactly as the pickle spells them to the object to use in their
    place, e.g. ``{("keras_preprocessing.text", "Tokenizer"): OurTokenizerStandIn}``.
    """

    def __init__(self, file: BinaryIO, allowed: Allowed, *, source: str = "pickle"):
        super().__init__(file)
        self._allowed = dict(allowed)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles written by Python 3 spell some names the Python 2 way (builtins.int ->
        # __builtin__.long); map them back as pickle's own find_class does, then check the allow-list.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self._allowed[(module, name)]
        except KeyError:
            names = ", ".join(sorted(f"{m}.{n}" for m, n in self._allowed)) or "(none)"
            raise UnsafePickleError(
                f"refusing to unpickle {module}.{name} from {self._source}: it is not in the allow-list ({names}). "
                "Unpickling arbitrary classes can execute code; if this class is genuinely needed and harmless, "
                "add it to the allow-list explicitly."
            ) from None

    def load(self) -> Any:
        # CPython resolves EXT1/2/4 codes from copyreg's global cache before calling find_class, so an object cached
        # by an earlier unrestricted load would slip past the allow-list. The cache is only an optimisation: empty it.
        copyreg._extension_cache.clear()
        return super().load()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r} in {self._source}: persistent ids are not allowed")


def safe_loads(data: bytes, allowed: Allowed, *, source: str = "pickle") -> Any:
    """Unpickle `data`, resolving class names only through `allowed` (see :class:`RestrictedUnpickler`)."""
    return RestrictedUnpickler(io.BytesIO(data), allowed, source=source).load()


def safe_load(path: str | Path, allowed: Allowed) -> Any:
    """Unpickle the file at `path` (plain pickle, e.g. a joblib dump without numpy arrays) through `allowed`."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(fh, allowed, source=str(path)).load()


__all__ = ["Allowed", "RestrictedUnpickler", "UnsafePickleError", "safe_load", "safe_loads"]
