"""Event Stream (.es) and AEDAT 4.0 readers: real files against ``event_stream`` / ``aedat``, generated edge
cases (.es overflow bytes inside coordinates, ATIS), damaged files and fuzzing."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardgen.formats.aedat4 import iter_aedat4, read_aedat4, walk_aedat4
from shardgen.formats.es import iter_es, read_es
from shardgen.formats.events import FormatError
from tests.gen_eventfiles import encode_es, es_header, events_dict, random_events
from tests.realdata import real_file
from tests.test_formats_prophesee import assert_chunks_equal, assert_events

_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def event_stream_read(path) -> np.ndarray:
    es = pytest.importorskip("event_stream")
    parts = list(es.Decoder(str(path)))
    return np.concatenate(parts) if parts else np.zeros(0, es.dvs_dtype)


def ref_es(data: bytes) -> tuple[dict[str, np.ndarray], int]:
    """Slow byte-by-byte state machine from FORMATS.md §9 (DVS/ATIS); returns events and leftover bytes."""
    kind = data[15]
    width, height = struct.unpack_from("<HH", data, 16)
    t = 0
    out = []
    i = 20
    while i < len(data):
        b = data[i]
        if kind == 1 and b >= 0xFE:
            t += 127 if b == 0xFF else 0
            i += 1
            continue
        if kind == 2 and b >= 0xFC:
            t += 63 * (b & 3)
            i += 1
            continue
        if i + 5 > len(data):
            break
        x, y = struct.unpack_from("<HH", data, i + 1)
        if x >= width or y >= height:
            raise ValueError(i)
        if kind == 1:
            t += b >> 1
            out.append((t, x, y, b & 1))
        else:
            t += b >> 2
            if not b & 1:
                out.append((t, x, y, b >> 1 & 1))
        i += 5
    ev = np.asarray(out, dtype=np.int64).reshape(-1, 4)
    return events_dict(ev[:, 0], ev[:, 1], ev[:, 2], ev[:, 3]), len(data) - i


# ================================================================================================= .es


@pytest.mark.parametrize("name,size,count", [("test.es", (54, 239), 4407), ("trcl0.es", (30, 32), 2628)])
def test_es_real_equals_event_stream(name, size, count):
    path = real_file("eventstream_es", name)
    ev = read_es(path.read_bytes(), name)
    ref = event_stream_read(path)
    assert len(ev) == count
    assert_events(ev, {"t": ref["t"], "x": ref["x"], "y": ref["y"], "p": ref["on"]})
    assert (ev.width, ev.height, ev.camera) == (*size, "DVS")
    assert ev.t[0] == 0
    for chunk in (1, 2, 3, 64):
        assert_chunks_equal(list(iter_es(path, chunk)), ev)


def _tricky_events(rng, n):
    """Events whose x/y bytes are often 0xFE/0xFF/0xFC/0xFD, with gaps needing several overflow bytes."""
    ev = random_events(rng, n, 4000, 4000, t0=0, max_gap=700)
    special = np.array([0xFC, 0xFD, 0xFE, 0xFF, 0xFEFF, 0xFFFE, 0x01FF, 0xFF01, 0xFEFE, 0xFCFF, 0xFFFF - 1], np.uint16)
    for k in "xy":
        m = rng.random(n) < 0.5
        ev[k][m] = rng.choice(special, size=int(m.sum()))
    return ev


@pytest.mark.parametrize("kind", [1, 2])
def test_es_generated_overflow_bytes_inside_coordinates(tmp_path, kind):
    rng = np.random.default_rng(kind)
    n = 2500
    ev = _tricky_events(rng, n)
    tc = (rng.random(n) < 0.2).astype(int) if kind == 2 else None
    data = encode_es(ev["t"], ev["x"], ev["y"], ev["p"], 0xFFFF, 0xFFFF, kind=kind, is_tc=tc, rng=rng, resets=0.1)
    keep = np.ones(n, bool) if tc is None else tc == 0
    got = read_es(data, "g.es")
    assert_events(got, {k: v[keep] for k, v in ev.items()})
    assert got.camera == ("DVS" if kind == 1 else "ATIS")
    if kind == 2:
        assert got.skipped == {"threshold_crossing": int(tc.sum())}
    path = tmp_path / "g.es"
    path.write_bytes(data)
    ref = event_stream_read(path)
    ref_keep = np.ones(len(ref), bool) if kind == 1 else ~ref["exposure"]
    pol = ref["on"] if kind == 1 else ref["polarity"]
    assert_events(got, {"t": ref["t"][ref_keep], "x": ref["x"][ref_keep], "y": ref["y"][ref_keep],
                        "p": pol[ref_keep]})
    for chunk in (1, 2, 3, 7, 100):
        assert_chunks_equal(list(iter_es(path, chunk)), got)


def test_es_long_gap_only_overflow_and_empty():
    data = es_header(1, 10, 10) + b"\xff" * 1000 + b"\xfe" + bytes([3 << 1 | 1]) + struct.pack("<HH", 9, 9)
    ev = read_es(data, "o.es")
    assert_events(ev, {"t": [127 * 1000 + 3], "x": [9], "y": [9], "p": [1]})
    empty = read_es(es_header(2, 10, 10), "e.es")
    assert len(empty) == 0 and (empty.width, empty.height) == (10, 10)


def test_es_damaged(tmp_path):
    ev = {"t": [0, 5, 9], "x": [1, 2, 3], "y": [4, 5, 6], "p": [1, 0, 1]}
    data = encode_es(ev["t"], ev["x"], ev["y"], ev["p"], 10, 10)
    with pytest.raises(FormatError, match=r"c\.es: byte 30: file ends inside an event \(3 of 5"):
        read_es(data[:-2], "c.es")
    cut = read_es(data[:-2], "c.es", allow_truncated=True)
    assert len(cut) == 2 and cut.truncated_bytes == 3
    path = tmp_path / "c.es"
    path.write_bytes(data[:-2])
    with pytest.raises(FormatError, match=r"byte 30: file ends inside an event"):
        list(iter_es(path, 1))
    with pytest.raises(FormatError, match=r"o\.es: byte 25: event at \(2, 5\) outside the 2x10 sensor"):
        read_es(es_header(1, 2, 10) + data[20:], "o.es")
    with pytest.raises(FormatError, match=r"byte 0: not an Event Stream file"):
        read_es(b"Event Strem" + data[11:], "m.es")
    with pytest.raises(FormatError, match=r"byte 12: unsupported Event Stream version 1\.0\.0"):
        read_es(es_header(1, 10, 10, version=(1, 0, 0)), "v.es")
    for kind, what in ((0, "generic"), (4, "color"), (9, "unknown type 9")):
        with pytest.raises(FormatError, match=rf"byte 15: .*{what}"):
            read_es(es_header(kind, 10, 10), "k.es")
    with pytest.raises(FormatError, match=r"byte 17: incomplete Event Stream header"):
        read_es(es_header(1, 10, 10)[:17], "h.es")


def test_es_blocked_phase_scan_equals_sequential():
    from shardgen.formats.es import _run_phases

    rng = np.random.default_rng(9)
    for m in (0, 1, 5, 255, 256, 257, 64 * 9, 64 * 9 + 1, 3000):
        table = rng.integers(0, 5, size=(m, 5))
        ph0 = int(rng.integers(0, 5))
        expected = [ph0]
        for row in table:
            expected.append(int(row[expected[-1]]))
        np.testing.assert_array_equal(_run_phases(table.copy(), ph0), expected, err_msg=str(m))


@_FUZZ
@given(body=st.binary(max_size=400), kind=st.sampled_from([1, 2]), wide=st.booleans())
def test_fuzz_es(body, kind, wide):
    size = 0xFFFF if wide else 300
    data = es_header(kind, size, size) + body
    try:
        ref, left = ref_es(data)
    except ValueError as exc:  # the reference found a coordinate outside the sensor
        with pytest.raises(FormatError, match=rf"^fuzz: byte {exc.args[0]}: "):
            read_es(data, "fuzz")
        return
    if left:
        with pytest.raises(FormatError, match=rf"^fuzz: byte {len(data) - left}: file ends inside"):
            read_es(data, "fuzz")
        got = read_es(data, "fuzz", allow_truncated=True)
    else:
        got = read_es(data, "fuzz")
    assert_events(got, ref)


# =============================================================================================== AEDAT 4


def aedat_read(path, stream_id=0) -> tuple[np.ndarray, dict]:
    aedat = pytest.importorskip("aedat")
    decoder = aedat.Decoder(str(path))
    parts = [pk["events"] for pk in decoder if "events" in pk and pk["stream_id"] == stream_id]
    return np.concatenate(parts), decoder.id_to_stream()


@pytest.mark.parametrize(
    "name,camera,skipped",
    [
        ("sample.aedat4", "DVXplorer_DXB00010", {"imu_packets": 59}),
        ("davis.aedat4", "DAVIS346_00000104", {"frame_packets": 3, "imu_packets": 13, "trigger_packets": 11}),
    ],
)
def test_aedat4_real_equals_aedat(name, camera, skipped):
    pytest.importorskip("aedat")
    path = real_file("aedat4", name)
    ev = read_aedat4(path)
    ref, streams = aedat_read(path)
    assert_events(ev, {"t": ref["t"], "x": ref["x"], "y": ref["y"], "p": ref["on"]})
    assert (ev.width, ev.height) == (streams[0]["width"], streams[0]["height"])
    assert ev.camera == camera
    assert {k: v for k, v in ev.skipped.items() if v} == skipped
    assert ev.t[0] > 1_500_000_000 * 10**6  # absolute Unix µs
    for chunk in (1, 5000):
        assert_chunks_equal(list(iter_aedat4(path, chunk)), ev)
    with pytest.raises(FormatError, match="not an event stream"):
        read_aedat4(path, stream_id=2)


def test_aedat4_truncated_and_garbled(tmp_path):
    pytest.importorskip("aedat")
    src = real_file("aedat4", "sample.aedat4")
    data = src.read_bytes()
    layout = walk_aedat4(src)
    assert len(layout.packet_offsets) == 118 and layout.compression == 1
    cut_at = layout.packet_offsets[60] + 100
    cut = tmp_path / "cut.aedat4"
    cut.write_bytes(data[:cut_at])
    with pytest.raises(FormatError, match=rf"cut\.aedat4: byte {layout.packet_offsets[60]}: packet of \d+ bytes"):
        read_aedat4(cut)
    kept = read_aedat4(cut, allow_truncated=True)
    assert kept.truncated_bytes == 100
    full, _ = aedat_read(src)
    np.testing.assert_array_equal(kept.t, full["t"][: len(kept)])
    assert 0 < len(kept) < len(full)
    bad = bytearray(data)
    target = layout.packet_offsets[10]
    bad[target + 8 : target + 40] = b"\x55" * 32
    garbled = tmp_path / "garbled.aedat4"
    garbled.write_bytes(bytes(bad))
    with pytest.raises(FormatError, match=rf"garbled\.aedat4: byte {target}: aedat could not decode packet 10"):
        read_aedat4(garbled)
    wrong = tmp_path / "magic.aedat4"
    wrong.write_bytes(b"#!AER-DAT4.1\r\n" + data[14:])
    with pytest.raises(FormatError, match=r"magic\.aedat4: byte 0: not an AEDAT 4\.0 file"):
        read_aedat4(wrong)
    short = tmp_path / "short.aedat4"
    short.write_bytes(data[:200])
    with pytest.raises(FormatError, match=r"short\.aedat4: byte 14: IOHeader of 2316 bytes runs past"):
        read_aedat4(short)


def test_aedat4_missing_library_message(monkeypatch, tmp_path):
    src = real_file("aedat4", "sample.aedat4")
    monkeypatch.setitem(sys.modules, "aedat", None)
    with pytest.raises(ImportError, match=r"pip install 'eventshard\[aedat4\]'"):
        read_aedat4(src)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_fuzz_aedat4(tmp_path_factory, body):
    pytest.importorskip("aedat")
    src = real_file("aedat4", "sample.aedat4")
    head = src.read_bytes()[: 18 + 2316]  # magic + IOHeader (its data table position lies past these files)
    path = tmp_path_factory.mktemp("fuzz") / "f.aedat4"
    path.write_bytes(head + body)
    try:
        ev = read_aedat4(path)
    except FormatError as exc:
        assert str(exc).startswith(f"{path}: ")
        return
    assert ev.t.dtype == np.int64 and len(ev.t) == len(ev.p)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), kind=st.sampled_from([1, 2]), chunk=st.integers(1, 9))
def test_fuzz_es_chunks_equal_whole(tmp_path_factory, body, kind, chunk):
    data = es_header(kind, 0xFFFF, 0xFFFF) + bytes(b | 0xF0 if i % 3 else b for i, b in enumerate(body))
    path = tmp_path_factory.mktemp("es") / "f.es"
    path.write_bytes(data)
    try:
        whole = read_es(data, str(path), allow_truncated=True)
    except FormatError as exc:  # a coordinate of 0xFFFF: the chunked reader must fail at the same byte
        with pytest.raises(FormatError, match=rf"byte {exc.offset}: "):
            list(iter_es(path, chunk, allow_truncated=True))
        return
    assert_chunks_equal(list(iter_es(path, chunk, allow_truncated=True)), whole)

