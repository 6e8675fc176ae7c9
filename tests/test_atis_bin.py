"""ATIS 40-bit ``.bin`` reader: generated files, SpikingJelly / tonic parity, real N-MNIST and SLAYER files."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardgen.formats.atis_bin import iter_atis_bin, read_atis_bin, read_atis_bin_file
from shardgen.formats.events import Events, FormatError
from tests.gen_rawfiles import atis_bin_bytes
from tests.realdata import real_files

TONIC_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


def concat(chunks: list[Events]) -> Events:
    """Concatenate chunked reads (skipped counts summed, truncated_bytes from the last chunk)."""
    skipped: dict[str, int] = {}
    for c in chunks:
        for k, v in c.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    return Events(
        t=np.concatenate([c.t for c in chunks]),
        x=np.concatenate([c.x for c in chunks]),
        y=np.concatenate([c.y for c in chunks]),
        p=np.concatenate([c.p for c in chunks]),
        skipped=skipped,
        truncated_bytes=chunks[-1].truncated_bytes,
    )


def assert_same(a: Events, b: Events) -> None:
    for f in "txyp":
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
        assert getattr(a, f).dtype == getattr(b, f).dtype
    assert a.skipped == b.skipped
    assert a.truncated_bytes == b.truncated_bytes


def expected_authors(x, y, p, t):
    """The authors' rule written as the plain loop of eventvision.read_dataset."""
    out = []
    add = 0
    for xi, yi, pi, ti in zip(x, y, p, t, strict=True):
        if yi == 240:
            add += 8192
            continue
        out.append((ti + add, xi, yi, pi))
    return np.array(out, dtype=np.int64).reshape(-1, 4)


records = st.lists(
    st.tuples(
        st.integers(0, 255),
        st.one_of(st.integers(0, 255), st.just(240)),
        st.integers(0, 1),
        st.integers(0, 2**23 - 1),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(records)
def test_round_trip_both_modes(recs):
    x, y, p, t = (np.array(c, dtype=np.int64) for c in zip(*recs, strict=True)) if recs else [np.zeros(0, np.int64)] * 4
    data = atis_bin_bytes(x, y, p, t)
    assert len(data) == 5 * len(recs)
    ign = read_atis_bin(data, "r.bin", overflow="ignore")
    np.testing.assert_array_equal(ign.t, t)
    np.testing.assert_array_equal(ign.x, x)
    np.testing.assert_array_equal(ign.y, y)
    np.testing.assert_array_equal(ign.p, p)
    assert ign.skipped == {}
    auth = read_atis_bin(data, "r.bin")
    exp = expected_authors(x, y, p, t)
    np.testing.assert_array_equal(np.stack([auth.t, auth.x, auth.y, auth.p], axis=1).astype(np.int64), exp)
    assert auth.skipped == {"overflow_markers": int(np.count_nonzero(y == 240))}
    assert auth.t.dtype == np.int64 and auth.x.dtype == np.uint8 and auth.y.dtype == np.uint8
    assert auth.p.dtype == np.uint8 and auth.width is None and auth.height is None


def test_overflow_marker_example():
    data = atis_bin_bytes([1, 0, 3, 0, 5], [2, 240, 4, 240, 6], [0, 0, 1, 1, 1], [100, 7, 50, 0, 2**23 - 1])
    auth = read_atis_bin(data, "m.bin")
    assert auth.t.tolist() == [100, 50 + 8192, 2**23 - 1 + 2 * 8192]
    assert auth.x.tolist() == [1, 3, 5] and auth.y.tolist() == [2, 4, 6] and auth.p.tolist() == [0, 1, 1]
    assert auth.skipped == {"overflow_markers": 2}
    ign = read_atis_bin(data, "m.bin", overflow="ignore")
    assert ign.t.tolist() == [100, 7, 50, 0, 2**23 - 1] and ign.y.tolist() == [2, 240, 4, 240, 6]
    with pytest.raises(ValueError, match="overflow"):
        read_atis_bin(data, "m.bin", overflow="tonic")


def test_bit_layout_single_record():
    # byte2 = 0b1_0000101 -> p=1, t high bits 5; t = 5<<16 | 0x0A<<8 | 0x0B
    ev = read_atis_bin(bytes([33, 7, 0x85, 0x0A, 0x0B]), "one.bin")
    assert (ev.x[0], ev.y[0], ev.p[0], ev.t[0]) == (33, 7, 1, (5 << 16) | 0x0A0B)


def test_empty_and_input_types(tmp_path):
    ev = read_atis_bin(b"", "empty.bin")
    assert len(ev) == 0 and ev.t.dtype == np.int64 and ev.skipped == {"overflow_markers": 0}
    data = atis_bin_bytes([1, 2], [3, 4], [1, 0], [10, 20])
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        from_mmap = read_atis_bin(mm, "a.bin")
        assert_same(from_mmap, read_atis_bin(memoryview(data), "a.bin"))
        del from_mmap  # release the buffer before the mmap closes
    assert_same(read_atis_bin_file(path), read_atis_bin(bytearray(data), "a.bin"))
    (tmp_path / "e.bin").write_bytes(b"")
    chunks = list(iter_atis_bin(tmp_path / "e.bin"))
    assert len(chunks) == 1 and len(chunks[0]) == 0


@pytest.mark.parametrize("tail", [1, 2, 3, 4])
def test_truncated_length(tmp_path, tail):
    data = atis_bin_bytes([1, 2, 3], [4, 5, 6], [0, 1, 0], [7, 8, 9]) + b"\x01\x02\x03\x04"[:tail]
    with pytest.raises(FormatError) as exc:
        read_atis_bin(data, "trunc.bin")
    assert exc.value.offset == 15
    assert str(exc.value).startswith("trunc.bin: byte 15: ")
    ev = read_atis_bin(data, "trunc.bin", allow_truncated=True)
    assert len(ev) == 3 and ev.truncated_bytes == tail and ev.t.tolist() == [7, 8, 9]
    path = tmp_path / "trunc.bin"
    path.write_bytes(data)
    with pytest.raises(FormatError, match=r"trunc\.bin: byte 15: "):
        next(iter_atis_bin(path))
    assert_same(concat(list(iter_atis_bin(path, 2, allow_truncated=True))), ev)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("overflow", ["authors", "ignore"])
def test_chunked_equals_whole(tmp_path, chunk, overflow):
    rng = np.random.default_rng(chunk)
    n = 50
    y = rng.integers(0, 34, n)
    y[[0, 6, 7, 20, 49]] = 240  # markers at the start, in runs, at the end
    data = atis_bin_bytes(rng.integers(0, 34, n), y, rng.integers(0, 2, n), np.sort(rng.integers(0, 2**23, n)))
    path = tmp_path / "c.bin"
    path.write_bytes(data)
    chunks = list(iter_atis_bin(path, chunk_events=chunk, overflow=overflow))
    assert len(chunks) == -(-n // chunk)
    assert_same(concat(chunks), read_atis_bin(data, "c.bin", overflow))


def test_parity_spikingjelly_load_atis_bin(tmp_path):
    from tests.sjcompat import import_spikingjelly_datasets

    sjd = import_spikingjelly_datasets()
    rng = np.random.default_rng(1)
    n = 500
    y = rng.integers(0, 256, n)
    y[::37] = 240
    x, p, t = rng.integers(0, 256, n), rng.integers(0, 2, n), rng.integers(0, 2**23, n)
    path = tmp_path / "sj.bin"
    path.write_bytes(atis_bin_bytes(x, y, p, t))
    ref = sjd.utils.load_ATIS_bin(str(path))
    ours = read_atis_bin(path.read_bytes(), "sj.bin", overflow="ignore")
    for f in "txyp":
        np.testing.assert_array_equal(getattr(ours, f), ref[f], err_msg=f)
    # without markers the authors' rule is the same as SpikingJelly's
    y[y == 240] = 3
    path.write_bytes(atis_bin_bytes(x, y, p, t))
    ref = sjd.utils.load_ATIS_bin(str(path))
    ours = read_atis_bin(path.read_bytes(), "sj.bin")
    assert ours.skipped == {"overflow_markers": 0}
    for f in "txyp":
        np.testing.assert_array_equal(getattr(ours, f), ref[f], err_msg=f)


def assert_equals_tonic(path, data: bytes) -> None:
    from tonic.io import read_mnist_file

    ref = read_mnist_file(str(path), dtype=TONIC_DTYPE)
    ours = read_atis_bin(data, str(path))
    assert len(ours) == len(ref)
    for f in "txyp":
        np.testing.assert_array_equal(getattr(ours, f), ref[f], err_msg=f"{path}: {f}")


def test_parity_tonic_with_markers(tmp_path):
    rng = np.random.default_rng(2)
    n = 400
    y = rng.integers(0, 34, n)
    y[rng.integers(0, n, 9)] = 240
    data = atis_bin_bytes(rng.integers(0, 34, n), y, rng.integers(0, 2, n), np.sort(rng.integers(0, 2**23, n)))
    path = tmp_path / "tonic.bin"
    path.write_bytes(data)
    assert_equals_tonic(path, data)
    assert read_atis_bin(data, "tonic.bin").skipped["overflow_markers"] == np.count_nonzero(y == 240)


@pytest.mark.parametrize(
    "folder,pattern",
    [("nmnist", "*.bin"), ("nmnist_slayer_small", "*.bs2"), ("dvsgesture_slayer_bs2", "*.bs2")],
)
def test_real_files_equal_tonic(folder, pattern):
    paths = real_files(folder, pattern)
    for path in paths:
        data = path.read_bytes()
        assert_equals_tonic(path, data)
        ev = read_atis_bin(data, str(path))
        assert len(ev) == len(data) // 5 - ev.skipped["overflow_markers"]


def test_real_nmnist_sample_values():
    (path,) = real_files("nmnist", "sample_nmnist.bin")
    ev = read_atis_bin(path.read_bytes(), path.name)
    # PROVENANCE.md: 4 325 events, x, y in [0, 33], p counts 2180/2145, t in [654, 311175], monotonic
    assert len(ev) == 4325 and ev.skipped == {"overflow_markers": 0}
    assert int(ev.x.max()) == 33 and int(ev.y.max()) == 33
    assert np.bincount(ev.p).tolist() == [2180, 2145]
    assert (int(ev.t[0]), int(ev.t[-1])) == (654, 311175) and (np.diff(ev.t) >= 0).all()
    assert_same(concat(list(iter_atis_bin(path, chunk_events=1000))), read_atis_bin(path.read_bytes(), path.name))
