"""AEDAT 2.0 reader: generated files, SpikingJelly CIFAR10-DVS / iniVation dv parity, real jAER recordings."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardgen.formats.aedat2 import chip_geometry, iter_aedat2, parse_header, read_aedat2, sniff
from shardgen.formats.events import Events, FormatError
from tests.gen_rawfiles import (
    CHIP_DAVIS240C,
    CHIP_DAVIS346,
    CHIP_DVS128,
    aedat2_bytes,
    aedat2_header,
    aedat2_records,
    davis_aps_address,
    davis_dvs_address,
    davis_external_address,
    davis_imu_address,
    dvs128_address,
)
from tests.realdata import real_file, real_files


def concat(chunks: list[Events]) -> Events:
    """Concatenate chunked reads (skipped counts summed, truncated_bytes from the last chunk)."""
    skipped: dict[str, int] = {}
    for c in chunks:
        for k, v in c.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    first = chunks[0]
    return Events(
        t=np.concatenate([c.t for c in chunks]),
        x=np.concatenate([c.x for c in chunks]),
        y=np.concatenate([c.y for c in chunks]),
        p=np.concatenate([c.p for c in chunks]),
        width=first.width,
        height=first.height,
        camera=first.camera,
        skipped=skipped,
        truncated_bytes=chunks[-1].truncated_bytes,
    )


def assert_same(a: Events, b: Events) -> None:
    for f in "txyp":
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
        assert getattr(a, f).dtype == getattr(b, f).dtype
    assert (a.width, a.height, a.camera) == (b.width, b.height, b.camera)
    assert a.skipped == b.skipped
    assert a.truncated_bytes == b.truncated_bytes


def sj_skip_header(data: bytes) -> int:
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.cifar10_dvs import _skip_header

    return _skip_header(io.BytesIO(data))


def sj_cifar10_dvs(path) -> dict:
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.cifar10_dvs import _load_origin_data

    return _load_origin_data(str(path))


def dv_events(path) -> np.ndarray:
    """``dv.LegacyAedatFile`` polarity events as an int64 array of rows (x, y, polarity, timestamp)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # dv 1.0.12 imports the deprecated 'imp' module
        from dv import LegacyAedatFile

    with LegacyAedatFile(str(path)) as f:
        rows = [(e.x, e.y, int(e.polarity), e.timestamp) for e in f]
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def assert_equals_sj_convention(ours: Events, ref: dict) -> None:
    """SpikingJelly's CIFAR10-DVS output = raw dvs128 fields swapped, mirrored and polarity-inverted."""
    np.testing.assert_array_equal(ours.t, ref["t"])
    np.testing.assert_array_equal(127 - ours.y.astype(np.int64), ref["x"])
    np.testing.assert_array_equal(127 - ours.x.astype(np.int64), ref["y"])
    np.testing.assert_array_equal(1 - ours.p.astype(np.int64), ref["p"])


# ------------------------------------------------------------------------------------------------ header


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
@pytest.mark.parametrize("end_marker", [False, True])
@pytest.mark.parametrize("chip", [CHIP_DVS128, CHIP_DAVIS240C, CHIP_DAVIS346, None])
def test_header_offset_and_chip(newline, end_marker, chip):
    header = aedat2_header(chip, ["# created today", "#<xml>"], newline, end_marker)
    data = header + aedat2_records([0x0102, 0x0304], [5, 6])
    pos, info = parse_header(data, "h.aedat")
    assert pos == len(header)
    assert pos == sj_skip_header(data)
    assert info["chip"] == chip and info["end_marker"] == end_marker
    assert info["lines"] == header.count(b"\n")
    expected = {
        CHIP_DVS128: ("dvs128", 128, 128),
        CHIP_DAVIS240C: ("davis", 240, 180),
        CHIP_DAVIS346: ("davis", 346, 260),
    }
    assert (info["layout"], info["width"], info["height"]) == expected.get(chip, (None, None, None))


def test_end_marker_resolves_hash_first_byte():
    # A DAVIS event with y = 140 has first byte 0x23 ('#'); only the end marker says it is data.
    addr = davis_dvs_address([5, 6], [140, 7], [1, 0])
    assert aedat2_records(addr, [1, 2])[0] == 0x23
    with_marker = aedat2_bytes(addr, [1, 2], chip=CHIP_DAVIS240C, end_marker=True)
    ev = read_aedat2(with_marker, "m.aedat")
    assert ev.x.tolist() == [5, 6] and ev.y.tolist() == [140, 7] and ev.p.tolist() == [1, 0]
    # Without the marker the record is read as a header line (jAER's, dv's and SpikingJelly's ambiguity).
    without = aedat2_bytes(addr, [1, 2], chip=CHIP_DAVIS240C, end_marker=False)
    pos, info = parse_header(without, "n.aedat")
    assert pos == len(without) and info["lines"] == 6
    assert len(read_aedat2(without, "n.aedat")) == 0


def test_end_marker_case_insensitive_and_stops():
    header = b"#!AER-DAT2.0\r\n# AEChip: " + CHIP_DVS128.encode() + b"\r\n#END OF ASCII HEADER\r\n"
    body = aedat2_records([0x23000000 | dvs128_address(3, 4, 1)], [9])  # first byte '#', then '\n'-free
    pos, info = parse_header(header + body, "c.aedat")
    assert pos == len(header) and info["end_marker"] and info["lines"] == 3


def test_unterminated_header_only_file():
    data = b"#!AER-DAT2.0\n# AEChip: " + CHIP_DVS128.encode()
    pos, info = parse_header(data, "u.aedat")
    assert pos == len(data) and info["lines"] == 2 and info["chip"] == CHIP_DVS128
    assert len(read_aedat2(data, "u.aedat")) == 0


@pytest.mark.parametrize("data", [b"", b"#!AER-DAT3.1\r\n", b"\x00" * 16, b"#!AER-DAT2"])
def test_not_aedat2(data):
    assert not sniff(data)
    with pytest.raises(FormatError) as exc:
        read_aedat2(data, "bad.aedat", layout="dvs128")
    assert exc.value.offset == 0 and str(exc.value).startswith("bad.aedat: byte 0: ")


def test_sniff_and_chip_geometry():
    assert sniff(b"#!AER-DAT2.0\r\n# This")
    assert chip_geometry("ch.unizh.ini.jaer.chip.retina.Tmpdiff128") == ("dvs128", 128, 128)
    assert chip_geometry("eu.seebetter.ini.chips.davis.DAVIS240B") == ("davis", 240, 180)
    assert chip_geometry("net.sf.jaer.chip.Unknown") is None and chip_geometry(None) is None


def test_layout_needed_for_unknown_chip():
    for chip in ("net.sf.jaer.chip.Cochlea", None):
        data = aedat2_bytes(dvs128_address([1], [2], [1]), [3], chip=chip)
        with pytest.raises(FormatError, match=r"^u\.aedat: .*layout"):
            read_aedat2(data, "u.aedat")
        ev = read_aedat2(data, "u.aedat", layout="dvs128")
        assert (ev.x[0], ev.y[0], ev.p[0], ev.width, ev.height, ev.camera) == (1, 2, 1, 128, 128, chip)
        assert read_aedat2(data, "u.aedat", layout="davis").width is None
    with pytest.raises(ValueError):
        read_aedat2(aedat2_bytes([], []), "x.aedat", layout="davis346")


# ------------------------------------------------------------------------------------------------ dvs128

dvs128_recs = st.lists(
    st.tuples(st.integers(0, 127), st.integers(0, 127), st.integers(0, 1), st.booleans(), st.integers(0, 2**31 - 1)),
    max_size=40,
)


@settings(max_examples=50, deadline=None)
@given(dvs128_recs, st.sampled_from([b"\r\n", b"\n"]), st.booleans())
def test_dvs128_round_trip(recs, newline, end_marker):
    x, y, p, ext, t = (
        (np.array(c, dtype=np.int64) for c in zip(*recs, strict=True)) if recs else [np.zeros(0, np.int64)] * 5
    )
    t = np.sort(t)
    data = aedat2_bytes(dvs128_address(x, y, p, ext.astype(bool)), t, newline=newline, end_marker=end_marker)
    ev = read_aedat2(data, "d.aedat")
    keep = ~ext.astype(bool)
    np.testing.assert_array_equal(ev.t, t[keep])
    np.testing.assert_array_equal(ev.x, x[keep])
    np.testing.assert_array_equal(ev.y, y[keep])
    np.testing.assert_array_equal(ev.p, p[keep])
    assert ev.skipped == {"external": int(ext.sum())}
    assert (ev.t.dtype, ev.x.dtype, ev.p.dtype) == (np.int64, np.uint16, np.uint8)
    every = read_aedat2(data, "d.aedat", keep_external=True)
    np.testing.assert_array_equal(every.x, x)
    np.testing.assert_array_equal(every.t, t)
    assert every.skipped == {"external": 0}


def test_dvs128_bit31_is_special():
    addr = np.array([dvs128_address(1, 2, 0), 0x80000000 | int(dvs128_address(3, 4, 1))], dtype=np.uint64)
    ev = read_aedat2(aedat2_bytes(addr, [1, 2]), "s.aedat")
    assert ev.x.tolist() == [1] and ev.skipped == {"external": 1}
    assert read_aedat2(aedat2_bytes(addr, [1, 2]), "s.aedat", keep_external=True).x.tolist() == [1, 3]


@pytest.mark.parametrize("tail", [1, 4, 7])
def test_truncated_body(tmp_path, tail):
    header = aedat2_header(CHIP_DVS128, end_marker=True)
    data = header + aedat2_records(dvs128_address([1, 2, 3], [4, 5, 6], [0, 1, 1]), [7, 8, 9]) + b"\x00" * tail
    offset = len(header) + 24
    with pytest.raises(FormatError) as exc:
        read_aedat2(data, "t.aedat")
    assert exc.value.offset == offset and str(exc.value).startswith(f"t.aedat: byte {offset}: ")
    ev = read_aedat2(data, "t.aedat", allow_truncated=True)
    assert ev.t.tolist() == [7, 8, 9] and ev.truncated_bytes == tail
    path = tmp_path / "t.aedat"
    path.write_bytes(data)
    with pytest.raises(FormatError, match=rf"t\.aedat: byte {offset}: "):
        next(iter_aedat2(path))
    assert_same(concat(list(iter_aedat2(path, 2, allow_truncated=True))), ev)


def test_timestamp_rule_dv(tmp_path):
    # unsigned reading: 0x7FFFFFFF -> 0x80000000 (jAER's int32 wrap) is an increase; each decrease bumps a counter
    # and t = ts | counter << 31 (an OR, as dv does: 0x80000001 with counter 1 stays 0x80000001).
    ts = [10, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 5, 0x80000001, 3, 4]
    addr = davis_dvs_address(np.arange(8), np.arange(8), np.zeros(8, int))
    path = tmp_path / "w.aedat"
    path.write_bytes(aedat2_bytes(addr, ts, chip=CHIP_DAVIS240C))
    ev = read_aedat2(path.read_bytes(), "w.aedat")
    assert ev.t.tolist() == [10, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 5 | 1 << 31, 0x80000001, 3 | 2 << 31, 4 | 2 << 31]
    np.testing.assert_array_equal(ev.t, dv_events(path)[:, 3])
    assert read_aedat2(path.read_bytes(), "w.aedat", layout="dvs128").t.tolist() == ev.t.tolist()


# ------------------------------------------------------------------------------------------------- davis


def davis_mix(rng: np.random.Generator, n: int):
    """Random DAVIS words: ~60 % DVS, 15 % APS, 15 % IMU, 10 % external input; non-decreasing timestamps."""
    kind = rng.choice(4, size=n, p=[0.6, 0.15, 0.15, 0.1])
    x, y, p = rng.integers(0, 240, n), rng.integers(0, 180, n), rng.integers(0, 2, n)
    addr = davis_dvs_address(x, y, p).astype(np.uint64)
    addr[kind == 1] = davis_aps_address(x, y, p, rng.integers(0, 1024, n))[kind == 1]
    addr[kind == 2] = davis_imu_address(rng.integers(0, 7, n), rng.integers(0, 65536, n))[kind == 2]
    ext = kind == 3
    addr[ext] = davis_external_address(x, y, 0b01)[ext]
    addr[ext & (p == 1)] = davis_external_address(x, y, 0b11)[ext & (p == 1)]
    t = np.cumsum(rng.integers(0, 50, n)) + 1_000_000
    return addr, t, kind, x, y, p


def test_davis_round_trip_and_counts():
    rng = np.random.default_rng(3)
    addr, t, kind, x, y, p = davis_mix(rng, 2000)
    ev = read_aedat2(aedat2_bytes(addr, t, chip=CHIP_DAVIS240C), "d.aedat")
    dvs = kind == 0
    np.testing.assert_array_equal(ev.t, t[dvs])
    np.testing.assert_array_equal(ev.x, x[dvs])
    np.testing.assert_array_equal(ev.y, y[dvs])
    np.testing.assert_array_equal(ev.p, p[dvs])
    assert ev.skipped == {
        "aps": int((kind == 1).sum()),
        "imu": int((kind == 2).sum()),
        "external": int((kind == 3).sum()),
    }
    assert (ev.width, ev.height, ev.camera) == (240, 180, CHIP_DAVIS240C)
    every = read_aedat2(aedat2_bytes(addr, t, chip=CHIP_DAVIS240C), "d.aedat", keep_external=True)
    keep = kind % 3 == 0
    np.testing.assert_array_equal(every.x, x[keep])
    np.testing.assert_array_equal(every.p, np.where(kind == 3, 0, p)[keep])  # external words are OFF, as in dv
    assert every.skipped["external"] == 0


def test_davis_parity_dv_generated(tmp_path):
    """dv.LegacyAedatFile on a generated file with every word kind and timestamp decreases."""
    rng = np.random.default_rng(4)
    addr, t, kind, *_ = davis_mix(rng, 1500)
    t[700:] -= 40_000  # a decrease (on an APS/IMU word or not) ...
    t[1200:] = t[1200:] % 97  # ... and another one
    path = tmp_path / "dv.aedat"
    path.write_bytes(aedat2_bytes(addr, t, chip=CHIP_DAVIS346, newline=b"\n"))
    ref = dv_events(path)
    ours = read_aedat2(path.read_bytes(), "dv.aedat", keep_external=True)
    np.testing.assert_array_equal(np.stack([ours.x, ours.y, ours.p, ours.t], axis=1).astype(np.int64), ref)
    assert ours.t.max() > 2**32  # many decreases (the mod-97 tail) -> counter > 2
    default = read_aedat2(path.read_bytes(), "dv.aedat")
    assert len(default) == int((kind == 0).sum())


# ------------------------------------------------------------------------------------------- chunked reads


@pytest.mark.parametrize("chunk", [1, 3, 100, 1 << 20])
def test_chunked_equals_whole(tmp_path, chunk):
    rng = np.random.default_rng(chunk)
    addr, t, *_ = davis_mix(rng, 300)
    t[150:] -= 10_000  # decrease on a chunk boundary for chunk 1/3/... sizes
    # > 64 KiB header (the 2015 DAVIS files have 175 KB) so the header is read in several blocks
    big = [f"#<entry key='k{i}' value='{'v' * 40}'/>" for i in range(3000)]
    data = aedat2_header(CHIP_DAVIS240C, big) + aedat2_records(addr, t)
    assert len(data) > 3 * (1 << 16)
    path = tmp_path / "c.aedat"
    path.write_bytes(data)
    whole = read_aedat2(data, str(path))
    chunks = list(iter_aedat2(path, chunk_events=chunk))
    assert len(chunks) == -(-300 // chunk)
    assert_same(concat(chunks), whole)
    for keep in (True, False):
        dvs128 = list(iter_aedat2(path, chunk, layout="dvs128", keep_external=keep))
        assert_same(concat(dvs128), read_aedat2(data, str(path), "dvs128", keep_external=keep))


def test_chunked_header_only(tmp_path):
    path = tmp_path / "h.aedat"
    path.write_bytes(aedat2_header(CHIP_DVS128, newline=b"\n"))
    chunks = list(iter_aedat2(path))
    assert len(chunks) == 1 and len(chunks[0]) == 0 and chunks[0].width == 128


# ----------------------------------------------------------------------------------- SpikingJelly parity


def test_parity_spikingjelly_cifar10_dvs_generated(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000
    x, y, p = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
    ext = rng.random(n) < 0.05
    t = np.cumsum(rng.integers(0, 100, n)) + 2**31 + 5  # past 2**31: SpikingJelly reads uint32, so do we
    path = tmp_path / "cifar.aedat"
    path.write_bytes(aedat2_bytes(dvs128_address(x, y, p, ext), t, chip=None, end_marker=True))
    ref = sj_cifar10_dvs(path)
    # SpikingJelly filters nothing: keep_external=True is value-for-value its reader
    assert_equals_sj_convention(read_aedat2(path.read_bytes(), "cifar.aedat", "dvs128", keep_external=True), ref)
    ours = read_aedat2(path.read_bytes(), "cifar.aedat", "dvs128")
    assert len(ours) == n - ext.sum() and ours.skipped == {"external": int(ext.sum())}
    keep = ~ext
    assert_equals_sj_convention(ours, {k: v[keep] for k, v in ref.items()})


# ------------------------------------------------------------------------------------------------ real files


def test_real_dvs128_equal_spikingjelly():
    for path in real_files("aedat2_dvs128", "*.aedat"):
        data = path.read_bytes()
        pos, info = parse_header(data, path.name)
        assert pos == sj_skip_header(data) == 3938 and info["end_marker"] and info["lines"] == 86
        ours = read_aedat2(data, path.name)  # layout from '# AEChip: ...DVS128'
        assert ours.skipped == {"external": 0} and (ours.width, ours.height) == (128, 128)
        assert len(ours) == (len(data) - pos) // 8
        assert_equals_sj_convention(ours, sj_cifar10_dvs(path))
        assert_same(concat(list(iter_aedat2(path, chunk_events=500))), read_aedat2(data, str(path)))


@pytest.mark.parametrize(
    "name,dvs,imu",
    [("IMU_translBoxes.aedat", 162_771, 33_837), ("IMU_rotDisk.aedat", 374_296, 51_688)],
)
def test_real_davis_equal_dv(name, dvs, imu):
    path = real_file("aedat2_davis", name)
    data = path.read_bytes()
    pos, info = parse_header(data, name)
    assert info["chip"] == CHIP_DAVIS240C and info["lines"] == 2104 and not info["end_marker"]
    assert pos == sj_skip_header(data)
    ours = read_aedat2(data, name)
    assert len(ours) == dvs and ours.skipped == {"aps": 0, "imu": imu, "external": 0}
    assert (ours.width, ours.height) == (240, 180)
    assert int(ours.x.max()) == 239 and int(ours.y.max()) == 179
    ref = dv_events(path)
    np.testing.assert_array_equal(np.stack([ours.x, ours.y, ours.p, ours.t], axis=1).astype(np.int64), ref)
    assert_same(concat(list(iter_aedat2(path, chunk_events=100_000))), ours)


def test_real_header_only_sample():
    path = real_file("aedat2_davis", "sample_aedat_header.aedat")
    data = path.read_bytes()
    assert b"\r" not in data  # LF-only header
    pos, info = parse_header(data, path.name)
    assert pos == len(data) == sj_skip_header(data) and info["lines"] == 12
    ev = read_aedat2(data, path.name)
    assert len(ev) == 0 and ev.camera == CHIP_DAVIS346 and (ev.width, ev.height) == (346, 260)
    assert ev.skipped == {"aps": 0, "imu": 0, "external": 0}
