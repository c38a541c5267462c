"""Load pickles that may only name an explicit allow-list of classes.

Unpickling runs code: every class or function a pickle names (opcodes GLOBAL, STACK_GLOBAL, INST, and the
copyreg extension opcodes EXT1/2/4 once copyreg's extension cache is emptied) goes through ``find_class`` and may
then be called by REDUCE/NEWOBJ/BUILD. :class:`RestrictedUnpickler` answers ``find_class`` only from an allow-list
that maps ``(module, name)`` as written in the pickle to an object of *ours* (the real class, or a stand-in), and
refuses every other name with :class:`UnsafePickleError` *before* anything is called. Persistent ids are refused.
:func:`safe_load_joblib` reads a joblib file (numpy arrays stored as raw bytes after their header) the same way,
never importing joblib; arrays of Python objects are refused.

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
from typing import Any, BinaryIO, ClassVar

from unidetox.errors import UnidetoxError

BUFFER_BYTES = 2**24  # most bytes of one joblib array read at once

Allowed = Mapping[tuple[str, str], Any]


class UnsafePickleError(UnidetoxError, pickle.UnpicklingError):
    """A pickle names a class or function outside the allow-list (nothing from it was executed)."""


def _allowed_object(allowed: Allowed, module: str, name: str, source: str) -> Any:
    """The object `allowed` maps ``(module, name)`` to; UnsafePickleError for any other name."""
    # Protocol 0-2 pickles written by Python 3 spell some names the Python 2 way (builtins.int ->
    # __builtin__.long); map them back as pickle's own find_class does, then check the allow-list.
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    try:
        return allowed[(module, name)]
    except KeyError:
        names = ", ".join(sorted(f"{m}.{n}" for m, n in allowed)) or "(none)"
        raise UnsafePickleError(
            f"refusing to unpickle {module}.{name} from {source}: it is not in the allow-list ({names}). "
            "Unpickling arbitrary classes can execute code; if this class is genuinely needed and harmless, "
            "add it to the allow-list explicitly."
        ) from None


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
        return _allowed_object(self._allowed, module, name, self._source)

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


class JoblibArray:
    """Stand-in for joblib's ``NumpyArrayWrapper``: the header (``shape``, ``order``, ``dtype``,
    ``numpy_array_alignment_bytes``, set by BUILD) of an array whose raw bytes follow it in the file."""

    def read(self, fh: BinaryIO, source: str) -> Any:
        """The array read from `fh` (numpy's ``read_array`` as joblib adapts it); object arrays are refused."""
        import numpy as np

        dtype, shape = np.dtype(self.dtype), tuple(int(n) for n in self.shape)
        if dtype.hasobject:
            raise UnsafePickleError(f"refusing an array of Python objects in {source}: it would be unpickled")
        if getattr(self, "numpy_array_alignment_bytes", None) is not None:
            fh.read(int.from_bytes(fh.read(1), "little"))  # padding: its length, then the bytes
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data = bytearray()
        while len(data) < nbytes and (chunk := fh.read(min(BUFFER_BYTES, nbytes - len(data)))):
            data += chunk
        if len(data) != nbytes:
            raise UnsafePickleError(f"{source} ends inside an array: {len(data)} of {nbytes} bytes")
        array = np.frombuffer(bytes(data), dtype=dtype).copy()
        array = array.reshape(shape[::-1]).T if self.order == "F" else array.reshape(shape)
        return array.astype(dtype.newbyteorder("="), copy=False)


class JoblibUnpickler(pickle._Unpickler):
    """A joblib file (a pickle whose numpy arrays follow their ``NumpyArrayWrapper`` header as raw bytes), read with
    the allow-list of :class:`RestrictedUnpickler`; map ``("joblib.numpy_pickle", "NumpyArrayWrapper")`` to
    :class:`JoblibArray`. Python's own unpickler class, whose BUILD opcode can be extended as joblib does."""

    dispatch: ClassVar[dict] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: BinaryIO, allowed: Allowed, *, source: str = "joblib file"):
        super().__init__(file)
        self._fh, self._allowed, self._source = file, dict(allowed), source

    def find_class(self, module: str, name: str) -> Any:
        return _allowed_object(self._allowed, module, name, self._source)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r} in {self._source}: persistent ids are not allowed")

    def load(self) -> Any:
        copyreg._extension_cache.clear()  # see RestrictedUnpickler.load
        return super().load()

    def load_build(self) -> None:
        pickle._Unpickler.load_build(self)
        if isinstance(self.stack[-1], JoblibArray):  # the array's bytes follow: joblib ended the frame before them
            self.stack.append(self.stack.pop().read(self._fh, self._source))

    dispatch[pickle.BUILD[0]] = load_build


def safe_load_joblib(path: str | Path, allowed: Allowed) -> Any:
    """Read the (uncompressed) joblib file at `path` through `allowed` (see :class:`JoblibUnpickler`)."""
    with open(path, "rb") as fh:
        if fh.read(2) in (b"\x1f\x8b", b"ZL"):  # gzip / zlib-compressed joblib files
            raise UnsafePickleError(f"{path} is a compressed joblib file; only uncompressed ones are read")
        fh.seek(0)
        return JoblibUnpickler(fh, allowed, source=str(path)).load()


__all__ = [
    "Allowed",
    "JoblibArray",
    "JoblibUnpickler",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "safe_load",
    "safe_load_joblib",
    "safe_loads",
]
