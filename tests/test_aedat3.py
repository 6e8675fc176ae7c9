"""Unit tests of the AEDAT 3.1 reader on bytes built with the generator's low-level writers."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from shardgen.formats.aedat3 import AedatError, header_end, read_aedat3
from tests.gen_dvsgesture import (
    FRAME,
    FRAME_EVENT_SIZE,
    IMU6,
    IMU6_EVENT_SIZE,
    POLARITY,
    SPECIAL,
    aedat31_bytes,
    aedat31_header,
    frame_payload,
    imu6_payload,
    packet_bytes,
    packet_header,
    polarity_payload,
    special_payload,
    write_gesture_download,
)

HEADER = aedat31_header()
HLEN = len(HEADER)
PH = 28  # packet header bytes


def _layout(packets: list[bytes]) -> tuple[bytes, list[int]]:
    """File bytes and the byte offset of every packet header."""
    offsets, pos = [], HLEN
    for pk in packets:
        offsets.append(pos)
        pos += len(pk)
    return aedat31_bytes(packets), offsets


def _expected_t(ts_field: np.ndarray, ovf: int) -> np.ndarray:
    """SpikingJelly's rule: uint32(timestamp) | eventTSOverflow << 31."""
    return ts_field.astype(np.int32).view(np.uint32).astype(np.int64) | (np.int64(ovf) << 31)


# ----------------------------------------------------------------------------------------------- a mixed file

# three polarity packets with real events (one with an invalid event, one with overflow 1 and a negative int32
# timestamp field, one with overflow 3), an empty polarity packet, and special / frame / IMU6 packets between
PA = {"t": [10, 10, 25], "x": [0, 127, 64], "y": [5, 0, 127], "p": [1, 0, 1], "valid": [1, 0, 1], "ovf": 0}
PB = {"t": [(1 << 31) - 2, (1 << 31) + 5], "x": [3, 4], "y": [6, 7], "p": [0, 1], "valid": [1, 1], "ovf": 1}
PC = {"t": [(3 << 31) + 7], "x": [100], "y": [101], "p": [1], "valid": [1], "ovf": 3}


def _pol(spec: dict) -> bytes:
    payload = polarity_payload(spec["t"], spec["x"], spec["y"], spec["p"], spec["valid"], overflow=spec["ovf"])
    return packet_bytes(POLARITY, spec["ovf"], payload, 8)


@pytest.fixture(scope="module")
def mixed() -> tuple[bytes, list[int]]:
    rng = np.random.default_rng(0)
    packets = [
        packet_bytes(SPECIAL, 0, special_payload([1, 2], [2, 3]), 8),
        _pol(PA),
        packet_bytes(FRAME, 0, frame_payload(30, 1, rng), FRAME_EVENT_SIZE),
        packet_bytes(POLARITY, 0, b"", 8),  # empty polarity packet
        packet_bytes(IMU6, 0, imu6_payload(40, 2), IMU6_EVENT_SIZE),
        _pol(PB),
        packet_bytes(IMU6, 1, b"", IMU6_EVENT_SIZE),  # empty non-polarity packet
        _pol(PC),
    ]
    return _layout(packets)


def test_mixed_file_values(mixed):
    data, _ = mixed
    ev = read_aedat3(data, "mixed.aedat")
    specs = (PA, PB, PC)
    x = np.concatenate([s["x"] for s in specs])
    y = np.concatenate([s["y"] for s in specs])
    p = np.concatenate([s["p"] for s in specs])
    np.testing.assert_array_equal(ev.x, x)
    np.testing.assert_array_equal(ev.y, y)
    np.testing.assert_array_equal(ev.p, p)
    assert ev.t.dtype == np.int64
    # PA: plain; PB: overflow 1 with int32 timestamp fields -2 and 5; PC: overflow 3
    assert ev.t.tolist() == [10, 10, 25, 0xFFFFFFFE, (1 << 31) | 5, 7 | (3 << 31)]
    assert ev.packets == 8
    assert ev.skipped_packets == 4  # special, frame, IMU6, empty IMU6 (the empty polarity packet is not skipped)
    assert ev.truncated_bytes == 0


def test_invalid_events_are_kept(mixed):
    data, _ = mixed
    ev = read_aedat3(data, "mixed.aedat")
    assert ev.t.size == 6  # the event with the valid bit cleared (PA[1]) is still there
    assert (int(ev.x[1]), int(ev.y[1]), int(ev.p[1]), int(ev.t[1])) == (127, 0, 0, 10)


def test_negative_int32_timestamp_read_as_uint32():
    ts_field = np.array([-1, -2, -(1 << 31), 0, 12345], dtype=np.int64)
    for ovf in (0, 1, 2):
        t = ts_field + (ovf << 31)  # polarity_payload(overflow=ovf) stores t - (ovf << 31) as int32
        payload = polarity_payload(t, np.arange(5), np.arange(5), [0, 1, 0, 1, 0], overflow=ovf)
        raw = np.frombuffer(payload, dtype=[("data", "<u4"), ("ts", "<i4")])
        np.testing.assert_array_equal(raw["ts"], ts_field)
        ev = read_aedat3(aedat31_bytes([packet_bytes(POLARITY, ovf, payload, 8)]), "neg.aedat")
        np.testing.assert_array_equal(ev.t, _expected_t(ts_field, ovf))
    assert _expected_t(np.array([-1]), 0)[0] == 2**32 - 1  # read as uint32, not sign-extended


def test_overflow_shift_is_31_bits():
    t = np.array([0, 1, (1 << 31) - 1], dtype=np.int64)
    packets = [
        packet_bytes(POLARITY, ovf, polarity_payload(t + (ovf << 31), [1, 2, 3], [4, 5, 6], [1, 1, 0]), 8)
        for ovf in (0, 1, 7)
    ]
    ev = read_aedat3(aedat31_bytes(packets), "ovf.aedat")
    want = np.concatenate([t | (ovf << 31) for ovf in (0, 1, 7)])
    np.testing.assert_array_equal(ev.t, want)
    assert ev.t.max() == (7 << 31) + (1 << 31) - 1


def test_byte_offset(mixed):
    data, offsets = mixed
    ev = read_aedat3(data, "mixed.aedat")
    bodies = [offsets[1] + PH] * 3 + [offsets[5] + PH] * 2 + [offsets[7] + PH]
    slots = [0, 1, 2, 0, 1, 0]
    for i in range(ev.t.size):
        off = ev.byte_offset(i)
        assert off == bodies[i] + 8 * slots[i]
        word, ts = struct.unpack_from("<Ii", data, off)
        assert ((word >> 17) & 0x7FFF, (word >> 2) & 0x7FFF, (word >> 1) & 1) == (ev.x[i], ev.y[i], ev.p[i])
        assert (ts & 0x7FFFFFFF) == int(ev.t[i]) & 0x7FFFFFFF


def test_empty_packets_only():
    packets = [packet_bytes(POLARITY, 0, b"", 8), packet_bytes(SPECIAL, 0, b"", 8), packet_bytes(POLARITY, 2, b"", 8)]
    ev = read_aedat3(aedat31_bytes(packets), "empty.aedat")
    assert ev.t.size == ev.x.size == ev.y.size == ev.p.size == 0
    assert ev.t.dtype == np.int64
    assert ev.packets == 3
    assert ev.skipped_packets == 1


def test_zero_length_body():
    ev = read_aedat3(HEADER, "header_only.aedat")
    assert ev.t.size == 0 and ev.packets == 0 and ev.skipped_packets == 0 and ev.truncated_bytes == 0
    assert header_end(HEADER, "h") == HLEN


def test_capacity_slots_are_read_not_event_number():
    """SpikingJelly reads eventCapacity slots whatever eventNumber / eventValid say."""
    payload = polarity_payload([1, 2, 3], [1, 2, 3], [4, 5, 6], [0, 1, 1])
    data = aedat31_bytes([packet_header(POLARITY, 8, 1, capacity=3, valid=0) + payload])
    ev = read_aedat3(data, "cap.aedat")
    assert ev.t.tolist() == [1, 2, 3]
    assert ev.x.tolist() == [1, 2, 3]


def test_memoryview_and_bytearray_inputs(mixed):
    data, _ = mixed
    a = read_aedat3(data, "a")
    for other in (memoryview(data), bytearray(data)):
        b = read_aedat3(other, "b")
        for c in "txyp":
            np.testing.assert_array_equal(getattr(a, c), getattr(b, c))


# ----------------------------------------------------------------------------------------------- errors


def test_no_end_header():
    header = HEADER.replace(b"#!END-HEADER\r\n", b"#!END-HEADXR\r\n")
    data = header + packet_bytes(POLARITY, 0, polarity_payload([1], [1], [1], [1]), 8)
    with pytest.raises(AedatError, match=rf"^nohdr\.aedat: byte {len(header)}: .*END-HEADER"):
        read_aedat3(data, "nohdr.aedat")
    with pytest.raises(AedatError, match=r"nohdr2\.aedat: byte \d+: .*END-HEADER"):
        read_aedat3(header, "nohdr2.aedat")  # header lines only, no packets


def test_not_aedat3():
    with pytest.raises(AedatError, match=r"^v2\.aedat: byte 0: not an AEDAT 3"):
        read_aedat3(b"#!AER-DAT2.0\r\n" + bytes(16), "v2.aedat")
    with pytest.raises(AedatError, match=r"byte 0"):
        read_aedat3(b"", "empty.aedat")


def _two_packet_file() -> tuple[bytes, int]:
    p1 = packet_bytes(POLARITY, 0, polarity_payload([1, 2], [1, 2], [3, 4], [0, 1]), 8)
    p2 = packet_bytes(POLARITY, 0, polarity_payload(np.arange(10, 20), np.arange(10), np.arange(10), [1] * 10), 8)
    data, offsets = _layout([p1, p2])
    return data, offsets[1]


def test_truncated_payload():
    data, pos2 = _two_packet_file()
    cut = pos2 + PH + 8 * 4 + 3  # 4 whole events of the second packet and 3 bytes of the fifth
    with pytest.raises(AedatError, match=rf"^cut\.aedat: byte {pos2}: .*past the end.*--allow-truncated"):
        read_aedat3(data[:cut], "cut.aedat")
    ev = read_aedat3(data[:cut], "cut.aedat", allow_truncated=True)
    assert ev.t.tolist() == [1, 2, 10, 11, 12, 13]
    assert ev.truncated_bytes == 3
    # a cut exactly at an event boundary drops no partial bytes, but still is a truncated packet
    with pytest.raises(AedatError, match=rf"byte {pos2}"):
        read_aedat3(data[: pos2 + PH + 16], "cut.aedat")
    ev = read_aedat3(data[: pos2 + PH + 16], "cut.aedat", allow_truncated=True)
    assert ev.t.tolist() == [1, 2, 10, 11]
    assert ev.truncated_bytes == 0


def test_truncated_packet_header():
    data, pos2 = _two_packet_file()
    cut = pos2 + 10
    with pytest.raises(AedatError, match=rf"^h\.aedat: byte {pos2}: truncated packet header \(10 of 28"):
        read_aedat3(data[:cut], "h.aedat")
    ev = read_aedat3(data[:cut], "h.aedat", allow_truncated=True)
    assert ev.t.tolist() == [1, 2]
    assert ev.truncated_bytes == 10


def test_truncated_non_polarity_packet():
    rng = np.random.default_rng(1)
    p1 = packet_bytes(POLARITY, 0, polarity_payload([5], [1], [1], [1]), 8)
    p2 = packet_bytes(FRAME, 0, frame_payload(6, 1, rng), FRAME_EVENT_SIZE)
    data, offsets = _layout([p1, p2])
    cut = offsets[1] + PH + 100
    with pytest.raises(AedatError, match=rf"byte {offsets[1]}"):
        read_aedat3(data[:cut], "f.aedat")
    ev = read_aedat3(data[:cut], "f.aedat", allow_truncated=True)
    assert ev.t.tolist() == [5]
    assert ev.truncated_bytes == 100


@pytest.mark.parametrize("size", [4, 16])
def test_polarity_event_size_not_8(size):
    p1 = packet_bytes(POLARITY, 0, polarity_payload([1], [1], [1], [1]), 8)
    bad = packet_header(POLARITY, size, 2) + bytes(2 * size)
    data, offsets = _layout([p1, bad])
    with pytest.raises(AedatError, match=rf"^s\.aedat: byte {offsets[1]}: polarity packet with eventSize {size}"):
        read_aedat3(data, "s.aedat", allow_truncated=True)


def test_negative_capacity():
    bad = packet_header(SPECIAL, 8, 0, capacity=-1)
    with pytest.raises(AedatError, match=rf"byte {HLEN}: bad packet header"):
        read_aedat3(aedat31_bytes([bad]), "neg.aedat")


# ----------------------------------------------------------------------------------------------- generated files


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("aedat3_gen")
    return write_gesture_download(root, n_train=3, n_test=1, events_per_sample=500, seed=11, extracted="only")


def test_generated_recordings(generated):
    for stem, rec in generated.recordings.items():
        data = (generated.root / "DvsGesture" / f"{stem}.aedat").read_bytes()
        ev = read_aedat3(data, f"{stem}.aedat")
        for c in "txyp":
            np.testing.assert_array_equal(getattr(ev, c), rec[c], err_msg=f"{stem} {c}")
        assert ev.packets == len(rec["packets"])
        assert ev.skipped_packets == sum(1 for pk in rec["packets"] if pk[0] != POLARITY)
    over = generated.recordings[generated.roles["overflow"]]
    assert over["t"].max() >= 1 << 31  # the overflow case really is in the data


def test_same_as_spikingjelly_load_aedat_v3(mixed, generated, tmp_path):
    """Value for value with SpikingJelly's reader, on the odd cases and on a generated recording."""
    pytest.importorskip("spikingjelly")
    from tests.sjcompat import import_spikingjelly_datasets

    sjd = import_spikingjelly_datasets()
    path = tmp_path / "mixed.aedat"
    path.write_bytes(mixed[0])
    files = [path, generated.root / "DvsGesture" / f"{generated.roles['overflow']}.aedat"]
    for f in files:
        ref = sjd.utils.load_aedat_v3(f)
        ev = read_aedat3(f.read_bytes(), f.name)
        for c in "txyp":
            np.testing.assert_array_equal(getattr(ev, c), ref[c], err_msg=f"{f.name} {c}")
