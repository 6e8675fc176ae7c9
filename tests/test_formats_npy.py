"""shardgen.formats.npy: the header fast path gives what ``np.load`` gives, and leaves everything else to numpy."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from shardgen.formats.events import FormatError
from shardgen.formats.npy import _fast_array, load_npy, load_npz

CASES = [
    np.arange(5),
    np.zeros((0, 3), np.uint8),
    np.arange(6, dtype=">i4").reshape(2, 3),
    np.array(3.5),
    np.zeros((3, 0)),
    np.array([(1, 2, 3, 0), (7, -1, 5, 1)], [("t", "<i4"), ("x", "i1"), ("y", "i1"), ("p", "i1")]),
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),  # not C order: numpy's path
]


def _npy(a: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    b = io.BytesIO()
    if version is None:
        np.save(b, a)
    else:
        np.lib.format.write_array(b, a, version=version)
    return b.getvalue()


@pytest.mark.parametrize("version", [None, (2, 0), (3, 0)])
def test_load_npy_equals_np_load(version):
    for a in CASES:
        raw = _npy(a, version)
        got = load_npy(raw, "a.npy")
        ref = np.load(io.BytesIO(raw))
        assert got.dtype == ref.dtype and got.shape == ref.shape and np.array_equal(got, ref)
    assert _fast_array(_npy(CASES[0], version)) is not None  # the usual header takes the fast path
    assert _fast_array(_npy(CASES[-1], version)) is None  # Fortran order does not


def test_damaged_and_object_arrays_are_refused():
    raw = _npy(np.arange(100))
    assert _fast_array(raw + b"\0" * 8) is None  # numpy's path, which ignores trailing bytes as before
    assert np.array_equal(load_npy(raw + b"\0" * 8, "a.npy"), np.arange(100))
    for bad in (raw[:-8], raw[:40]):
        assert _fast_array(bad) is None
        with pytest.raises(FormatError, match="a.npy"):
            load_npy(bad, "a.npy")
    obj = _npy(np.array([1, "x"], dtype=object))
    assert _fast_array(obj) is None
    with pytest.raises(FormatError, match="pickle"):
        load_npy(obj, "o.npy")


def test_load_npz_equals_np_load():
    for compress in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        b = io.BytesIO()
        (np.savez_compressed if compress == zipfile.ZIP_DEFLATED else np.savez)(
            b, t=np.arange(4), pos=np.ones((2, 3), np.uint8), f=CASES[-1])
        got = load_npz(b.getvalue(), "s.npz")
        with np.load(io.BytesIO(b.getvalue())) as z:
            assert sorted(got) == sorted(z.files)
            for k in z.files:
                assert got[k].dtype == z[k].dtype and np.array_equal(got[k], z[k])
    damaged = bytearray(b.getvalue())
    damaged[60] ^= 0xFF  # inside the first member's data: CRC mismatch or a bad deflate stream
    with pytest.raises(FormatError, match="s.npz"):
        load_npz(bytes(damaged), "s.npz")
