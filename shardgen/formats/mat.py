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
"""

from __future__ import annotations

import io

import numpy as np
import scipy.io

from .events import Events, FormatError

VARIABLES = ("ts", "x", "y", "pol")


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
    try:
        mat = scipy.io.loadmat(io.BytesIO(bytes(data)), variable_names=VARIABLES)
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
