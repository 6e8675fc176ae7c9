"""``shardgen.formats``: format detection, ``read_events`` dispatch, exact-size chunking with ``iter_events``, and
the AEDAT 3.1 adaptation (``iter_aedat3``)."""

from __future__ import annotations

import numpy as np
import pytest

from shardgen.formats import FORMATS, detect_format, iter_events, read_events
from shardgen.formats.dat import read_dat
from shardgen.formats.es import read_es
from shardgen.formats.events import Events, FormatError
from shardgen.formats.evt2 import read_evt2
from shardgen.formats.evt3 import read_evt3
from tests.gen_dvsgesture import (
    FRAME,
    POLARITY,
    aedat31_bytes,
    aedat31_header,
    frame_payload,
    packet_bytes,
    polarity_payload,
)
from tests.gen_eventfiles import (
    encode_dat,
    encode_es,
    encode_evt2,
    encode_evt3_random,
    evt2_time_high,
    evt2_word,
    random_events,
    raw_header,
)
from tests.realdata import real_file
from tests.test_formats_prophesee import assert_chunks_equal, assert_events

REAL = [
    ("aedat2_dvs128", "1-1.aedat", "aedat2"),
    ("aedat2_davis", "IMU_translBoxes.aedat", "aedat2"),
    ("aedat4", "davis.aedat4", "aedat4"),
    ("prophesee_evt2", "evt2_sample.raw", "evt2"),
    ("prophesee_evt2_headerless", "left2.bin", "evt2"),
    ("prophesee_evt3", "evt3_sample.raw", "evt3"),
    ("ncars", "sample_ncars.dat", "dat"),
    ("eventstream_es", "trcl0.es", "es"),
    ("nmnist", "sample_nmnist.bin", "atis_bin"),
    ("dvsgesture_slayer_bs2", "1.bs2", "atis_bin"),
]


def check_chunking(path, whole: Events, sizes, fmt=None, **kw) -> None:
    for size in sizes:
        chunks = list(iter_events(path, format=fmt, chunk_events=size, **kw))
        assert_chunks_equal(chunks, whole)
        assert all(len(c) == size for c in chunks[:-1]), size
        assert 0 < len(chunks[-1]) <= size or (len(whole) == 0 and len(chunks) == 1)


@pytest.mark.parametrize("folder,name,fmt", REAL)
def test_detect_and_read_real_files(folder, name, fmt):
    path = real_file(folder, name)
    if fmt == "aedat4":
        pytest.importorskip("aedat")
    assert detect_format(path) == fmt
    ev = read_events(path)
    assert len(ev) > 1000 and ev.t.dtype == np.int64 and ev.x.dtype == np.uint16 and ev.p.dtype == np.uint8
    assert set(np.unique(ev.p).tolist()) <= {0, 1}
    explicit = read_events(path, format=fmt)
    assert_events(explicit, {k: getattr(ev, k) for k in "txyp"})
    check_chunking(path, ev, (4096, 100_003))


def test_dispatch_matches_module_readers():
    for folder, name, reader in [("prophesee_evt2", "evt2_sample.raw", read_evt2),
                                 ("prophesee_evt3", "evt3_sample.raw", read_evt3),
                                 ("ncars", "NCARS_obj_004397_td.dat", read_dat),
                                 ("eventstream_es", "test.es", read_es)]:
        path = real_file(folder, name)
        direct = reader(path.read_bytes(), str(path))
        ev = read_events(path)
        assert_events(ev, {k: getattr(direct, k) for k in "txyp"})
        assert (ev.width, ev.height, ev.camera, ev.skipped) == (direct.width, direct.height, direct.camera,
                                                                direct.skipped)
    ev = read_events(real_file("prophesee_evt3", "evt3_sample.raw"), time_rule="expelliarmus")
    npy = np.load(real_file("prophesee_evt3", "evt3_sample.npy"), allow_pickle=False)
    np.testing.assert_array_equal(ev.t, npy["t"])


@pytest.mark.parametrize(
    "head,fmt",
    [
        (b"#!AER-DAT2.0\r\n# AEChip: x\r\n", "aedat2"),
        (b"#!AER-DAT3.1\r\n#!END-HEADER\r\n", "aedat3"),
        (b"#!AER-DAT4.0\r\n\x00\x00", "aedat4"),
        (b"Event Stream\x02\x00\x00\x01", "es"),
        (b"% Date 2020\n% evt 3.0\n\x00\x80", "evt3"),
        (b"% format EVT2;height=320;width=320\n% end\n", "evt2"),
        (b"% Data file containing N9Chronocam7Event2dE events.\n% Version 2\n\x00\x08", "dat"),
    ],
)
def test_detect_format_from_bytes(head, fmt):
    assert detect_format(head) == fmt


@pytest.mark.parametrize(
    "head,match",
    [
        (b"MATLAB 5.0 MAT-file, Platform", "MATLAB"),
        (b"#!AER-DAT1.0\r\n", "unsupported AEDAT version"),
        (b"% evt 2.1\n", "'evt21' is not supported"),
        (b"% Date 2020\n\x00\x00", r"pass --format evt2\|evt3"),
        (b"hello world, this is text\n" * 10, "cannot tell the format"),
    ],
)
def test_detect_format_refuses(head, match):
    with pytest.raises(FormatError, match=match):
        detect_format(head)


def test_detect_headerless_content(tmp_path):
    rng = np.random.default_rng(11)
    ev = random_events(rng, 2000, 320, 320, t0=10**6, max_gap=50)
    words, _ = encode_evt2(ev["t"], ev["x"], ev["y"], ev["p"])
    for suffix in (".bin", ".evt", ""):
        path = tmp_path / f"dump{suffix}"
        path.write_bytes(words.tobytes()[: len(words) // 5 * 20])  # size a multiple of 4 and of 5
        assert detect_format(path) == "evt2"
    atis = tmp_path / "n.bin"
    atis.write_bytes(real_file("nmnist", "sample_nmnist.bin").read_bytes())
    assert detect_format(atis) == "atis_bin"
    renamed = tmp_path / "n.xyz"
    renamed.write_bytes(atis.read_bytes())
    with pytest.raises(FormatError, match="format="):
        detect_format(renamed)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(FormatError, match=r"noise\.bin: byte 0: cannot tell"):
        read_events(noise)
    headerless_dat = tmp_path / "h.dat"
    headerless_dat.write_bytes(encode_dat([1, 2], [3, 4], [5, 6], [1, 0], header=False))
    assert detect_format(headerless_dat) == "dat"
    assert_events(read_events(headerless_dat), {"t": [1, 2], "x": [3, 4], "y": [5, 6], "p": [1, 0]})


def test_generated_files_through_dispatcher(tmp_path):
    rng = np.random.default_rng(12)
    words, truth, _ = encode_evt3_random(rng, 120)
    files = {"a.raw": (raw_header(["% evt 3.0"]) + words.tobytes(), truth)}
    ev = random_events(rng, 500, 640, 480, t0=123456, max_gap=80)
    w2, _ = encode_evt2(ev["t"], ev["x"], ev["y"], ev["p"], rng=rng, extra_every=4)
    w2 = np.concatenate([np.asarray([evt2_word(0x1, 5)], "<u4"), w2])  # a CD word before the first TIME_HIGH
    files["b.raw"] = (raw_header(["% evt 2.0"]) + w2.tobytes(), ev)
    files["c.dat"] = (encode_dat(ev["t"], ev["x"], ev["y"], ev["p"], width=640, height=480), ev)
    es = random_events(rng, 500, 300, 300, t0=0, max_gap=300)
    files["d.es"] = (encode_es(es["t"], es["x"], es["y"], es["p"], 300, 300), es)
    for name, (data, expected) in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        got = read_events(path)
        assert_events(got, expected)
        check_chunking(path, got, (1, 2, 7, 1000))
    assert read_events(tmp_path / "b.raw").skipped["before_first_time_high"] == 1


def test_iter_events_edge_cases(tmp_path):
    empty = tmp_path / "empty.raw"
    empty.write_bytes(raw_header(["% evt 2.0"]) + np.asarray([evt2_time_high(3), evt2_word(0xE, 1)], "<u4").tobytes())
    chunks = list(iter_events(empty, chunk_events=4))
    assert len(chunks) == 1 and len(chunks[0]) == 0 and chunks[0].skipped["other"] == 1
    exact = tmp_path / "exact.dat"
    exact.write_bytes(encode_dat(np.arange(8), np.arange(8), np.arange(8), np.ones(8)))
    chunks = list(iter_events(exact, chunk_events=4))
    assert [len(c) for c in chunks] == [4, 4]
    with pytest.raises(ValueError, match="chunk_events"):
        next(iter_events(exact, chunk_events=0))
    with pytest.raises(ValueError, match="unknown format"):
        read_events(exact, format="mp4")
    assert FORMATS == ("aedat2", "aedat3", "aedat4", "evt2", "evt3", "dat", "es", "atis_bin")


def test_truncated_file_errors_name_file_and_offset(tmp_path):
    data = encode_dat([1, 2, 3], [1, 2, 3], [1, 2, 3], [0, 1, 0])
    path = tmp_path / "cut.dat"
    path.write_bytes(data[:-5])
    offset = len(data) - 8
    with pytest.raises(FormatError, match=rf"cut\.dat: byte {offset}: "):
        read_events(path)
    with pytest.raises(FormatError, match=rf"cut\.dat: byte {offset}: "):
        list(iter_events(path, chunk_events=1))
    ev = read_events(path, allow_truncated=True)
    assert len(ev) == 2 and ev.truncated_bytes == 3
    assert sum(c.truncated_bytes for c in iter_events(path, chunk_events=1, allow_truncated=True)) == 3


# ============================================================================================ AEDAT 3.1


def _aedat3_file(rng, source="DVS128"):
    packets, expected = [], {k: [] for k in "txyp"}
    t = 1000
    for i in range(12):
        n = int(rng.integers(0, 40))
        ts = t + np.cumsum(rng.integers(0, 50, n))
        t = int(ts[-1]) if n else t
        x, y, p = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
        packets.append(packet_bytes(POLARITY, 0, polarity_payload(ts, x, y, p), 8))
        for k, v in zip("txyp", (ts, x, y, p), strict=True):
            expected[k].append(v)
        if i % 3 == 1:
            packets.append(packet_bytes(FRAME, 0, frame_payload(t, 1, rng), len(frame_payload(t, 1, rng))))
    return aedat31_bytes(packets, aedat31_header(source)), {k: np.concatenate(v) for k, v in expected.items()}


def test_aedat3_through_dispatcher_and_iter_aedat3(tmp_path):
    from shardgen.formats.aedat3 import iter_aedat3, read_aedat3

    rng = np.random.default_rng(13)
    data, expected = _aedat3_file(rng)
    path = tmp_path / "g.aedat"
    path.write_bytes(data)
    assert detect_format(path) == "aedat3"
    ev = read_events(path)
    assert_events(ev, expected)
    assert (ev.width, ev.height, ev.camera) == (128, 128, "DVS128")
    assert ev.skipped == {"other_packets": 4}
    check_chunking(path, ev, (1, 5, 64))
    whole = read_aedat3(data, "g")
    for size in (1, 17, 10**6):
        parts = list(iter_aedat3(path, size))
        assert sum(p.packets for p in parts) == whole.packets
        assert sum(p.skipped_packets for p in parts) == whole.skipped_packets
        np.testing.assert_array_equal(np.concatenate([p.t for p in parts]), whole.t)
        np.testing.assert_array_equal(np.concatenate([p.event_starts for p in parts]), whole.event_starts)
    other = tmp_path / "o.aedat"
    other.write_bytes(_aedat3_file(rng, source="DAVIS240C")[0])
    ev = read_events(other)
    assert (ev.width, ev.height, ev.camera) == (None, None, "DAVIS240C")


def test_aedat3_damaged_becomes_format_error(tmp_path):
    rng = np.random.default_rng(14)
    data, expected = _aedat3_file(rng)
    path = tmp_path / "t.aedat"
    path.write_bytes(data[:-5])
    with pytest.raises(FormatError, match=r"t\.aedat: byte \d+: packet of \d+x8 bytes runs 5 bytes past") as info:
        read_events(path)
    assert isinstance(info.value.offset, int)
    with pytest.raises(FormatError, match=r"t\.aedat: byte \d+: packet of"):
        list(iter_events(path, chunk_events=3))
    ev = read_events(path, allow_truncated=True)
    assert len(ev) == len(expected["t"]) - 1 and ev.truncated_bytes == 3
    assert_chunks_equal(list(iter_events(path, chunk_events=3, allow_truncated=True)), ev)
