"""NumPy ``.npy`` / ``.npz`` sample files (DVS-Lip, HARDVS, ES-ImageNet), read from bytes without pickle.

``numpy.load`` with its default ``allow_pickle=False`` parses the header with a literal evaluator
and refuses object arrays, so nothing in the file is executed; the pickled ``.npy`` files of
Bullying10K go through :mod:`shardgen.formats.safe_pickle` instead. Every failure becomes a
:class:`FormatError` naming the file.
"""

from __future__ import annotations

import ast
import io
import math
import re
import zipfile
import zlib

import numpy as np

from .events import FormatError

_HEADER = re.compile(rb"\{'descr': (.+), 'fortran_order': False, 'shape': \(([0-9, ]*)\), \} *\n")
"""The header numpy writes (keys sorted, C order); anything else goes through ``numpy.lib.format``."""

_DTYPES: dict[bytes, np.dtype | None] = {}
"""``descr`` text → dtype, as numpy reads it (``None``: one the fast path leaves to numpy, e.g. object)."""


def _fast_array(data: bytes | bytearray | memoryview) -> np.ndarray | None:
    """The array of a ``.npy`` file whose header is numpy's usual one (version 1-3, C order, a known dtype and
    exactly the bytes its shape needs), as a read-only view of ``data``; ``None``: let ``np.load`` read it.

    Samples come by the thousand, each a few small arrays: this skips the literal evaluation of every header
    (each ``descr`` is still turned into a dtype by numpy once) and the copy through a file object.
    """
    mv = memoryview(data)
    if len(mv) < 10 or mv[:6] != b"\x93NUMPY" or mv[6] not in (1, 2, 3):
        return None
    start = 10 if mv[6] == 1 else 12
    if len(mv) < start:
        return None
    hlen = int.from_bytes(mv[8:start], "little")
    m = _HEADER.fullmatch(bytes(mv[start:start + hlen]))
    if m is None:
        return None
    descr, dims = m.group(1), m.group(2)
    if descr not in _DTYPES:
        try:
            dt = np.lib.format.descr_to_dtype(ast.literal_eval(descr.decode("latin1")))
        except (ValueError, TypeError, SyntaxError):
            dt = None
        dt = None if dt is None or dt.hasobject else dt
        if len(_DTYPES) < 256:  # the files of a dataset share a few; a hostile batch cannot grow the cache
            _DTYPES[descr] = dt
    else:
        dt = _DTYPES[descr]
    if dt is None:
        return None
    shape = tuple(int(d) for d in dims.split(b",") if d.strip())
    body = mv[start + hlen:]
    if len(body) != dt.itemsize * math.prod(shape):
        return None
    return np.frombuffer(body, dt).reshape(shape)


def load_npy(data: bytes | bytearray | memoryview, name: str) -> np.ndarray:
    """The array of one ``.npy`` file (plain or structured dtype; object arrays are refused)."""
    fast = _fast_array(data)
    if fast is not None:
        return fast
    try:
        arr = np.load(io.BytesIO(bytes(data)))
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise FormatError(name, None, f"not a readable .npy array without pickle ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise FormatError(name, None, "not a .npy array")
    return arr


def load_npz(data: bytes | bytearray | memoryview, name: str) -> dict[str, np.ndarray]:
    """Every array of one ``.npz`` file by name (object arrays are refused).

    Each member is read by :mod:`zipfile` (CRC checked) and its array taken by the fast path of
    :func:`load_npy` where the header allows, else by ``numpy.lib.format``.
    """
    try:
        out = {}
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                member = zf.read(info)
                if member[:6] != b"\x93NUMPY":  # what np.load's NpzFile gives for a member that is no .npy
                    out[key] = member
                    continue
                arr = _fast_array(member)
                out[key] = arr if arr is not None else np.lib.format.read_array(io.BytesIO(member),
                                                                                allow_pickle=False)
        return out
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
