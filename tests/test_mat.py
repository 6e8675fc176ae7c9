"""ASL-DVS ``.mat`` reader: generated MAT v5 files, SpikingJelly ``asl_dvs`` parity, damaged files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardgen.formats.events import FormatError
from shardgen.formats.mat import read_asl_mat
from tests.gen_rawfiles import asl_mat_bytes


def sample(n: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 5_000_000, n)).astype(np.uint32)
    return (
        ts,
        rng.integers(0, 240, n).astype(np.uint8),
        rng.integers(0, 180, n).astype(np.uint8),
        rng.integers(0, 2, n).astype(np.uint8),
    )


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 30),
    st.sampled_from(["uint8", "uint16", "int32", "int64", "float64", "float32"]),
    st.sampled_from(["uint32", "int64", "float64"]),
    st.booleans(),
)
def test_round_trip_dtypes_and_shapes(n, xy_dtype, ts_dtype, column):
    rng = np.random.default_rng(n)
    ts = np.sort(rng.integers(0, 2**24, n)).astype(ts_dtype)  # float64 holds these exactly
    x, y = rng.integers(0, 240, n).astype(xy_dtype), rng.integers(0, 180, n).astype(xy_dtype)
    pol = rng.integers(0, 2, n).astype(np.uint8)
    ev = read_asl_mat(asl_mat_bytes(ts, x, y, pol, column=column), "a.mat")
    assert len(ev) == n
    np.testing.assert_array_equal(ev.t, ts.astype(np.int64))
    np.testing.assert_array_equal(ev.x, x.astype(np.int64))
    np.testing.assert_array_equal(ev.y, y.astype(np.int64))
    np.testing.assert_array_equal(ev.p, pol)
    assert (ev.t.dtype, ev.x.dtype, ev.y.dtype, ev.p.dtype) == (np.int64, np.uint16, np.uint16, np.uint8)
    assert ev.width is None and ev.skipped == {}


def test_single_event_and_bool_polarity():
    ev = read_asl_mat(asl_mat_bytes([123], [4], [5], np.array([True])), "one.mat")
    assert (ev.t.tolist(), ev.x.tolist(), ev.y.tolist(), ev.p.tolist()) == ([123], [4], [5], [1])


def test_parity_spikingjelly_asl_dvs(tmp_path):
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.asl_dvs import _read_mat_save_to_np

    ts, x, y, pol = sample(200)
    data = asl_mat_bytes(ts, x, y, pol)
    (tmp_path / "a.mat").write_bytes(data)
    _read_mat_save_to_np(tmp_path / "a.mat", tmp_path / "a.npz")
    ref = np.load(tmp_path / "a.npz")
    ours = read_asl_mat(data, "a.mat")
    # SpikingJelly's convention, applied here: x = 239 - x, y = 179 - y, p = pol, t = ts
    np.testing.assert_array_equal(ours.t, ref["t"])
    np.testing.assert_array_equal(239 - ours.x.astype(np.int64), ref["x"])
    np.testing.assert_array_equal(179 - ours.y.astype(np.int64), ref["y"])
    np.testing.assert_array_equal(ours.p, ref["p"])


def error_of(data: bytes, name: str = "bad.mat") -> str:
    with pytest.raises(FormatError) as exc:
        read_asl_mat(data, name)
    assert exc.value.offset is None and str(exc.value).startswith(f"{name}: ")
    return str(exc.value)


@pytest.mark.parametrize("var", ["ts", "x", "y", "pol"])
def test_missing_variable(var):
    ts, x, y, pol = sample()
    assert repr(var) in error_of(asl_mat_bytes(ts, x, y, pol, omit=[var]), "m.mat")


def test_unequal_lengths():
    ts, x, y, pol = sample()
    msg = error_of(asl_mat_bytes(ts, x[:-1], y, pol))
    assert "unequal" in msg and "'x': 49" in msg


@pytest.mark.parametrize("var", ["x", "y"])
def test_negative_coordinate(var):
    ts, x, y, pol = sample()
    cols = {"x": x.astype(np.int16), "y": y.astype(np.int16)}
    cols[var][7] = -1
    msg = error_of(asl_mat_bytes(ts, cols["x"], cols["y"], pol))
    assert f"'{var}'[7] = -1" in msg


def test_non_integral_and_non_finite_values():
    ts, x, y, pol = sample()
    t2 = ts.astype(np.float64)
    t2[3] += 0.5
    assert "'ts'[3]" in error_of(asl_mat_bytes(t2, x, y, pol))
    x2 = x.astype(np.float64)
    x2[0] = np.nan
    assert "'x'[0]" in error_of(asl_mat_bytes(ts, x2, y, pol))


def test_bad_polarity_and_shapes():
    ts, x, y, pol = sample()
    p2 = pol.astype(np.int8)
    p2[5] = -1
    assert "'pol'[5] = -1" in error_of(asl_mat_bytes(ts, x, y, p2))
    assert "'ts'" in error_of(asl_mat_bytes(np.stack([ts, ts], 1), x, y, pol, column=False))
    assert "'y'" in error_of(asl_mat_bytes(ts, x, np.array(["abc"]), pol, column=False))


@pytest.mark.parametrize("data", [b"", b"not a mat file at all" * 10, b"MATLAB 5.0 MAT-file" + b"\x00" * 40])
def test_not_a_mat_file(data):
    assert "MAT" in error_of(data, "junk.mat")


def test_empty_variables():
    ev = read_asl_mat(
        asl_mat_bytes(np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0)), column=False), "e.mat"
    )
    assert len(ev) == 0 and ev.t.dtype == np.int64 and ev.x.dtype == np.uint16
