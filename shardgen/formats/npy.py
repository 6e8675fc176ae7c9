"""NumPy ``.npy`` / ``.npz`` sample files (DVS-Lip, HARDVS, ES-ImageNet), read from bytes without pickle.

``numpy.load`` with its default ``allow_pickle=False`` parses the header with a literal evaluator
and refuses object arrays, so nothing in the file is executed; the pickled ``.npy`` files of
Bullying10K go through :mod:`shardgen.formats.safe_pickle` instead. Every failure becomes a
:class:`FormatError` naming the file.
"""

from __future__ import annotations

import io
import zipfile
import zlib

import numpy as np

from .events import FormatError


def load_npy(data: bytes | bytearray | memoryview, name: str) -> np.ndarray:
    """The array of one ``.npy`` file (plain or structured dtype; object arrays are refused)."""
    try:
        arr = np.load(io.BytesIO(bytes(data)))
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise FormatError(name, None, f"not a readable .npy array without pickle ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise FormatError(name, None, "not a .npy array")
    return arr


def load_npz(data: bytes | bytearray | memoryview, name: str) -> dict[str, np.ndarray]:
    """Every array of one ``.npz`` file by name (object arrays are refused)."""
    try:
        with np.load(io.BytesIO(bytes(data))) as z:
            if not hasattr(z, "files"):
                raise ValueError("not an .npz archive")
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, KeyError, zlib.error, zipfile.BadZipFile) as exc:
        raise FormatError(name, None, f"not a readable .npz file without pickle ({exc})") from None


def integer_column(values: np.ndarray, name: str, column: str, limit: int | None = None) -> np.ndarray:
    """``values`` as int64, checked: integral (floats must hold whole numbers), ``>= 0`` and ``< limit``.

    Raises
    ------
    FormatError
        Naming the file, the column and the first bad element.
    """
    v = np.asarray(values).reshape(-1)
    if v.dtype.kind == "f":
        bad = ~np.isfinite(v) | (v != np.floor(v)) if v.size else np.zeros(0, bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FormatError(name, None, f"{column}[{i}] = {v[i]!r} is not a whole number")
    elif v.dtype.kind not in "iub":
        raise FormatError(name, None, f"column {column!r} has dtype {v.dtype}, expected numbers")
    out = v.astype(np.int64)
    if out.size and (int(out.min()) < 0 or (limit is not None and int(out.max()) >= limit)):
        i = int(np.flatnonzero((out < 0) | (out >= (limit if limit is not None else np.iinfo(np.int64).max)))[0])
        raise FormatError(name, None, f"{column}[{i}] = {int(out[i])} outside [0, {limit})")
    return out


def events_from_columns(cols: dict[str, np.ndarray], name: str, height: int, width: int,
                        fields: tuple[str, str, str, str] = ("t", "x", "y", "p")) -> tuple[np.ndarray, ...]:
    """``(t int64, x uint16, y uint16, p uint8)`` from four named columns of equal length, checked."""
    missing = [f for f in fields if f not in cols]
    if missing:
        raise FormatError(name, None, f"no {', '.join(repr(m) for m in missing)} field (has {', '.join(cols)})")
    lengths = {f: np.asarray(cols[f]).size for f in fields}
    if len(set(lengths.values())) > 1:
        raise FormatError(name, None, f"columns of different lengths {lengths}")
    ft, fx, fy, fp = fields
    t = integer_column(cols[ft], name, ft)
    x = integer_column(cols[fx], name, fx, width).astype(np.uint16)
    y = integer_column(cols[fy], name, fy, height).astype(np.uint16)
    p = integer_column(cols[fp], name, fp, 2).astype(np.uint8)
    return t, x, y, p
