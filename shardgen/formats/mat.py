"""ASL-DVS ``.mat`` reader (MAT v5 files read with ``scipy.io.loadmat``).

Layout (``shared/FORMATS.md`` §10): variables ``ts``, ``x``, ``y``, ``pol``, one value per event. Each is
squeezed as SpikingJelly's ``asl_dvs._read_mat_save_to_np`` does (a single-event file gives 0-d arrays
there; here it gives arrays of length 1, and an empty ``0×0`` variable gives length 0).

Values are returned **raw**: no mirroring (SpikingJelly outputs ``x = 239 − x``, ``y = 179 − y``; tonic
``y = 179 − y`` only; the ASL-DVS dataset module mirrors), ``t = ts`` unchanged (µs according to the
dataset's authors; not confirmed on a real file here).

Types: the shapes and dtypes of the real files could not be checked, so every numeric type is accepted
and converted without changing a value: integer and boolean arrays directly, floating-point arrays only
when every value is finite and integral (a fractional timestamp or coordinate is refused rather than
truncated, because truncation would silently differ from SpikingJelly, which keeps the floats). ``ts``
becomes int64; ``x``/``y`` must be ≥ 0 and fit uint16; ``pol`` must be 0/1 (uint8). Anything else —
not a MAT file, MAT v7.3 (HDF5), a missing variable, a non-numeric or 2-D variable, unequal lengths,
negative coordinates — is a :class:`FormatError` naming the file and the variable.

Damaged files: scipy's compiled MAT v5 reader trusts the file (an unknown data type indexes past a table,
a damaged sparse or complex array makes it read or write past its buffers) and can take the process down
with it. So the element structure is walked here first (:func:`_check_mat5`: known types, every byte count
inside its parent, compressed variables inflated with a 1 GiB bound, the four variables numeric with
exactly their parts); anything else is a :class:`FormatError` before scipy sees the bytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np

from .events import Events, FormatError

VARIABLES = ("ts", "x", "y", "pol")
SCIPY_MISSING = "reading ASL-DVS .mat files needs scipy: pip install 'eventshard[asl-dvs]'"


def _loadmat() -> Any:
    """``scipy.io.loadmat`` (scipy is an optional dependency: the ``asl-dvs`` extra)."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError(SCIPY_MISSING) from None
    return loadmat

# MAT v5 data types scipy knows (miINT8 … miUTF32); scipy indexes a C table with the type, unchecked.
_MI_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18})
_MI_INT8, _MI_INT32, _MI_UINT32, _MI_MATRIX, _MI_COMPRESSED = 1, 5, 6, 14, 15
_MI_NUMBERS = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13})
_NUMERIC_CLASSES = range(6, 16)  # mxDOUBLE_CLASS … mxUINT64_CLASS
_CLASS_NAMES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 16: "function", 17: "opaque"}
_MAX_INFLATED = 1 << 30  # a compressed variable may hold at most 1 GiB (ASL-DVS variables hold a few MB)
_MAX_DEPTH = 32


def _elements(buf: bytes, pos: int, end: int, order: str, name: str, where: int, depth: int) -> list[tuple]:
    """Walk the data elements of a miMATRIX body: known types, each inside its parent (recursing into matrices).

    Returns ``(mdtype, body offset, byte count)`` of the direct children. ``where`` is the file offset of
    ``buf[0]`` (for messages; inside a compressed variable it is that variable's offset).
    """
    if depth > _MAX_DEPTH:
        raise FormatError(name, where + pos, f"MAT arrays nested deeper than {_MAX_DEPTH} levels")
    children = []
    while pos < end:
        if end - pos < 8:
            raise FormatError(name, where + pos, "MAT data element tag cut short")
        word, count = struct.unpack_from(order + "II", buf, pos)
        small = word >> 16
        mdtype = word & 0xFFFF if small else word
        if small:
            if small > 4:
                raise FormatError(name, where + pos, f"MAT small data element of {small} bytes (at most 4)")
            body, count, stop = pos + 4, small, pos + 8
        else:
            body, stop = pos + 8, pos + 8 + count
        if mdtype not in _MI_TYPES or mdtype == _MI_COMPRESSED:
            raise FormatError(name, where + pos, f"unknown MAT data type {mdtype}")
        if stop > end:
            raise FormatError(name, where + pos, f"MAT data element of {count} bytes runs past its array")
        if mdtype == _MI_MATRIX:
            _elements(buf, body, stop, order, name, where, depth + 1)
        children.append((mdtype, body, count))
        pos = stop if small else min(end, stop + (-count % 8))
    return children


def _check_variable(buf: bytes, pos: int, end: int, order: str, name: str, where: int) -> None:
    """One top-level miMATRIX body: its elements, and a numeric class for the variables we read.

    scipy's compiled reader builds sparse (and object, function …) arrays from the file's indices without
    checking them, which crashes the process on a damaged file; the variables read here must be numeric.
    """
    children = _elements(buf, pos, end, order, name, where, 1)
    if not children:
        return  # an empty array: scipy reads it as such
    if (len(children) < 3 or children[0][0] != _MI_UINT32 or children[0][2] < 8 or children[1][0] != _MI_INT32
            or children[2][0] != _MI_INT8):
        raise FormatError(name, where + pos, "MAT array without array flags, dimensions and name")
    flags = struct.unpack_from(order + "I", buf, children[0][1])[0]
    mclass = flags & 0xFF
    var = buf[children[2][1] : children[2][1] + children[2][2]].decode("latin-1")
    if var not in VARIABLES:
        return  # scipy reads only the header of the others
    if mclass not in _NUMERIC_CLASSES:
        what = _CLASS_NAMES.get(mclass, f"class-{mclass}")
        raise FormatError(name, None, f"variable {var!r} is a MATLAB {what} array, expected a numeric vector")
    # flags, dimensions (int32), name, real part (and imaginary part when complex): scipy reads exactly these
    # from the stream, past the end of the variable if parts are missing
    parts = 5 if flags & 0x800 else 4
    if len(children) != parts or not all(mdtype in _MI_NUMBERS for mdtype, _, _ in children[3:]):
        raise FormatError(name, None, f"variable {var!r}: damaged numeric array (its parts are not flags, "
                          "dimensions, name and data)")


def _check_mat5(data: bytes, name: str) -> None:
    """Check the element structure of a MAT v5 file before scipy parses it.

    scipy's compiled MAT reader trusts the file: an unknown data type indexes past a table, a damaged
    sparse array writes past its buffers, and either takes the whole process down. This walk refuses them
    (and byte counts that run past their parent) with a :class:`FormatError`. Files that are not MAT v5
    (v4, v7.3, garbage) are left to scipy, which refuses them in Python.
    """
    if len(data) < 128 or 0 in data[:4]:
        return
    version = data[124:128]
    major = version[int(version[2:3] == b"I")]
    if major != 1:
        return
    order = "<" if data[126:128] == b"IM" else ">"
    pos = 128
    while pos < len(data):
        if len(data) - pos < 8:
            raise FormatError(name, pos, "MAT variable tag cut short")
        mdtype, count = struct.unpack_from(order + "II", data, pos)
        body, stop = pos + 8, pos + 8 + count
        if stop > len(data):
            raise FormatError(name, pos, f"MAT variable of {count} bytes runs past the end of the file")
        if mdtype == _MI_COMPRESSED:
            inflater = zlib.decompressobj()
            try:
                inner = inflater.decompress(data[body:stop], _MAX_INFLATED)
            except zlib.error as exc:
                raise FormatError(name, pos, f"MAT compressed variable does not inflate ({exc})") from None
            if inflater.unconsumed_tail:
                raise FormatError(name, pos, f"MAT compressed variable inflates to more than {_MAX_INFLATED} bytes")
            if len(inner) < 8:
                raise FormatError(name, pos, "MAT compressed variable does not hold an array")
            inner_type, inner_count = struct.unpack_from(order + "II", inner, 0)
            if inner_type != _MI_MATRIX or 8 + inner_count > len(inner):
                raise FormatError(name, pos, "MAT compressed variable does not hold an array")
            _check_variable(inner, 8, 8 + inner_count, order, name, pos)
        elif mdtype == _MI_MATRIX:
            _check_variable(data, body, stop, order, name, 0)
        else:
            raise FormatError(name, pos, f"MAT variable of type {mdtype}, expected an array (14) or compressed (15)")
        pos = stop


def _vector(value: object, name: str, var: str) -> np.ndarray:
    """Squeeze one MAT variable to a 1-D numeric array."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise FormatError(name, None, f"variable {var!r} is not a real numeric array (MATLAB class dtype {arr.dtype})")
    arr = arr.squeeze()
    if arr.ndim == 0:
        arr = arr.reshape(1)
    elif arr.ndim > 1:
        if arr.size:
            raise FormatError(name, None, f"variable {var!r} has shape {np.shape(value)}, expected a vector")
        arr = arr.reshape(0)
    return arr


def _as_integers(arr: np.ndarray, name: str, var: str) -> np.ndarray:
    """Exact integer values of ``arr`` as int64 (floats must be finite and integral)."""
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (np.abs(arr) >= 2.0**63)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FormatError(name, None, f"variable {var!r}[{i}] = {arr[i]!r} is not an integer")
        return arr.astype(np.int64)
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        i = int(np.argmax(arr))
        raise FormatError(name, None, f"variable {var!r}[{i}] = {arr[i]} does not fit int64")
    return arr.astype(np.int64)


def _coordinate(arr: np.ndarray, name: str, var: str) -> np.ndarray:
    values = _as_integers(arr, name, var)
    bad = (values < 0) | (values > np.iinfo(np.uint16).max)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FormatError(name, None, f"variable {var!r}[{i}] = {values[i]} is not a coordinate in [0, 65535]")
    return values.astype(np.uint16)


def read_asl_mat(data: bytes | bytearray | memoryview, name: str) -> Events:
    """Decode the events of one ASL-DVS ``.mat`` file held in memory.

    Parameters
    ----------
    data : bytes, bytearray or memoryview
        The whole file.
    name : str
        File name used in error messages.

    Returns
    -------
    Events
        ``t`` int64 (= ``ts``), raw ``x``, ``y`` uint16, ``p`` uint8 (= ``pol``), file order; width/height
        ``None`` (the file does not store them; ASL-DVS is 240×180).

    Raises
    ------
    FormatError
        Not a MAT v5 file, a missing/non-numeric/2-D variable, unequal lengths, a non-integral value,
        a negative or too large coordinate, or a polarity other than 0/1; the message names the file and
        the variable.
    """
    loadmat = _loadmat()
    data = bytes(data)
    _check_mat5(data, name)
    try:
        mat = loadmat(io.BytesIO(data), variable_names=VARIABLES)
    except NotImplementedError as exc:  # scipy's answer to MAT v7.3 (HDF5)
        raise FormatError(name, None, f"MAT v7.3 (HDF5) files are not supported ({exc})") from exc
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError, struct.error … on damaged files
        raise FormatError(name, None, f"not a readable MAT v5 file ({type(exc).__name__}: {exc})") from exc
    missing = [var for var in VARIABLES if var not in mat]
    if missing:
        raise FormatError(name, None, f"variable(s) {', '.join(map(repr, missing))} missing (expected ts, x, y, pol)")
    vec = {var: _vector(mat[var], name, var) for var in VARIABLES}
    sizes = {var: int(a.size) for var, a in vec.items()}
    if len(set(sizes.values())) > 1:
        raise FormatError(name, None, f"variables have unequal lengths {sizes}")
    t = _as_integers(vec["ts"], name, "ts")
    x = _coordinate(vec["x"], name, "x")
    y = _coordinate(vec["y"], name, "y")
    pol = _as_integers(vec["pol"], name, "pol")
    bad = (pol != 0) & (pol != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FormatError(name, None, f"variable 'pol'[{i}] = {pol[i]} is not 0 or 1")
    return Events(t=t, x=x, y=y, p=pol.astype(np.uint8))
