"""Pickled ``.npy`` files (Bullying10K) read without executing anything they contain.

Bullying10K's authors saved each recording with ``np.save`` of a list of event packets, which
makes an object array whose ``.npy`` body is a pickle. A pickle is a small program: its
``GLOBAL``/``STACK_GLOBAL`` opcodes import any callable by name and ``REDUCE`` calls it with
arguments from the file, so loading an untrusted one with the standard loader can run any command.

Why this reader is safe: it subclasses the standard library's ``Unpickler`` and overrides
``find_class``, the single hook through which every importing opcode (``GLOBAL``,
``STACK_GLOBAL``, the ``EXT1/2/4`` extension codes, ``INST``/``OBJ``) obtains a callable. It
answers only what an array needs — ``numpy.core.multiarray._reconstruct`` (or
``numpy._core.multiarray._reconstruct``, numpy ≥ 2; wrapped to accept only plain ndarrays of a
small initial shape), ``numpy.ndarray`` (as a marker for that wrapper, not callable),
``numpy.dtype`` and ``numpy.core.multiarray.scalar`` — and raises :class:`FormatError` for anything
else, before any call happens. With those, ``REDUCE`` can only build small arrays, dtypes and numpy
scalars, and
``BUILD`` can only call ``ndarray.__setstate__`` / ``dtype.__setstate__`` (numpy's own checked
deserialisers); ``PERSID`` is refused (no ``persistent_load``). Nothing else a pickle can express
touches the interpreter. The ``.npy`` header itself is parsed by numpy's literal parser.

The project's rule "no pickle" still holds for everything eventshard writes; this module is the
only place that reads one, and only for this dataset's recordings.
"""

from __future__ import annotations

import io
from pickle import Unpickler as _StdUnpickler
from tokenize import TokenError
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from .events import FormatError

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own array reconstructor
_SCALAR = np.int64(0).__reduce__()[0]
MAX_ELEMENTS = 1 << 16
"""Largest shape ``_reconstruct`` may be asked for (numpy's own pickles ask for ``(0,)``; the data comes later)."""


class _NdarrayType:
    """What the pickle gets for ``numpy.ndarray``: a marker :func:`_reconstruct` accepts, not a callable."""

    def __repr__(self) -> str:
        return "numpy.ndarray (marker)"


NDARRAY = _NdarrayType()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain ndarrays of a small initial shape only (no allocation bombs)."""
    if subtype is not NDARRAY:
        raise ValueError(f"_reconstruct of {subtype!r}: only numpy.ndarray is allowed")
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(d, int) and 0 <= d for d in dims) or int(np.prod(dims, dtype=np.float64)) > MAX_ELEMENTS:
        raise ValueError(f"_reconstruct shape {shape!r}: not a small initial shape")
    return _RECONSTRUCT(np.ndarray, dims, dtype)


ALLOWED: dict[tuple[str, str], Any] = {("numpy", "ndarray"): NDARRAY, ("numpy", "dtype"): np.dtype}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_mod, "_reconstruct")] = _reconstruct
    ALLOWED[(_mod, "scalar")] = _SCALAR
MAX_DEPTH = 2
"""Object arrays may hold arrays (packets), which may not hold object arrays again."""


class _ArraysOnly(_StdUnpickler):
    """An unpickler whose ``find_class`` knows only numpy's array-reconstruction callables."""

    def __init__(self, data: bytes, name: str):
        super().__init__(io.BytesIO(data))
        self.name = name

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - the pickle hook
        """Only the callables in :data:`ALLOWED`; anything else is refused before it is imported."""
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise FormatError(self.name, None, f"refused: the pickle asks for {module}.{name}, not a numpy array "
                                               "(only numpy array reconstruction is allowed)") from None

    def persistent_load(self, pid: Any) -> Any:
        """Persistent references are refused."""
        raise FormatError(self.name, None, "refused: the pickle uses a persistent reference")


def _check(obj: Any, name: str, depth: int = 0) -> None:
    """The loaded value is an array whose objects are arrays (or numpy scalars), nothing else."""
    if not isinstance(obj, np.ndarray):
        raise FormatError(name, None, f"the pickle holds {type(obj).__name__}, not a numpy array")
    if obj.dtype.hasobject:
        if depth >= MAX_DEPTH or obj.dtype != np.dtype(object):
            raise FormatError(name, None, "nested object arrays are not event packets")
        for item in obj.reshape(-1):
            if not isinstance(item, np.ndarray | np.generic):
                raise FormatError(name, None, f"an element is a {type(item).__name__}, not an array")
            if isinstance(item, np.ndarray):
                _check(item, name, depth + 1)


def load_pickled_npy(data: bytes | bytearray | memoryview, name: str) -> np.ndarray:
    """The array stored in a ``.npy`` file, unpickling its body (object arrays) with :class:`_ArraysOnly`.

    A ``.npy`` without objects is read by numpy without pickle. Raises :class:`FormatError` naming the
    file for a refused callable (a hostile file), a damaged header or pickle, or a value that is not
    an array of arrays.
    """
    raw = bytes(data)
    f = io.BytesIO(raw)
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f)  # numpy's literal parser, no eval
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy version {version[0]}.{version[1]} (1.0 and 2.0 are read)")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, TokenError, UnicodeDecodeError, KeyError,
            IndexError, MemoryError, OverflowError, RecursionError) as exc:  # numpy's header parser on bad bytes
        raise FormatError(name, None, f"not a .npy file ({type(exc).__name__}: {exc})") from None
    if not dtype.hasobject:
        try:
            return np.load(io.BytesIO(raw))
        except (ValueError, OSError, EOFError, TypeError, MemoryError, OverflowError) as exc:
            raise FormatError(name, None, f"not a readable .npy array ({exc})") from None
    body = raw[f.tell():]
    try:
        obj = _ArraysOnly(body, name).load()
    except FormatError:
        raise
    except Exception as exc:  # UnpicklingError, and whatever numpy's own deserialisers raise on damaged states
        raise FormatError(name, f.tell(), f"damaged pickle in the .npy body ({type(exc).__name__}: {exc})") from None
    _check(obj, name)
    return obj
