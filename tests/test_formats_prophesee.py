"""Prophesee EVT 2.0, EVT 3.0 and DAT readers: real files against expelliarmus (and, for EVT 3.0 time, a slow
per-word reference decoder written here from ``shared/FORMATS.md`` §6 / openeb), generated edge cases, damaged
files and fuzzing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardgen.formats.dat import iter_dat, read_dat
from shardgen.formats.events import FormatError
from shardgen.formats.evt2 import iter_evt2, read_evt2
from shardgen.formats.evt3 import iter_evt3, read_evt3
from tests.gen_eventfiles import (
    RAW_HEADER_EVT2,
    RAW_HEADER_EVT3,
    Evt3Encoder,
    encode_dat,
    encode_evt2,
    encode_evt3_random,
    evt2_cd,
    evt2_time_high,
    evt2_word,
    evt3_addr_x,
    evt3_addr_y,
    evt3_base_x,
    evt3_time_high,
    evt3_time_low,
    evt3_vect8,
    evt3_vect12,
    evt3_word,
    random_events,
    raw_header,
)
from tests.realdata import real_file

FIELDS = "txyp"


def assert_events(ev, expected: dict, fields: str = FIELDS) -> None:
    for k in fields:
        got = getattr(ev, k)
        assert got.dtype == {"t": np.int64, "x": np.uint16, "y": np.uint16, "p": np.uint8}[k], k
        np.testing.assert_array_equal(got, np.asarray(expected[k]).astype(got.dtype), err_msg=k)


def assert_chunks_equal(chunks: list, whole) -> None:
    assert chunks, "an iterator yields at least one chunk"
    for k in FIELDS:
        np.testing.assert_array_equal(np.concatenate([getattr(c, k) for c in chunks]), getattr(whole, k), err_msg=k)
    total: dict[str, int] = {}
    for c in chunks:
        for key, v in c.skipped.items():
            total[key] = total.get(key, 0) + v
    assert {k: v for k, v in total.items() if v} == {k: v for k, v in whole.skipped.items() if v}
    assert sum(c.truncated_bytes for c in chunks) == whole.truncated_bytes
    assert all((c.width, c.height, c.camera) == (whole.width, whole.height, whole.camera) for c in chunks)


def expelliarmus_read(path, encoding: str, tmp_path, header: bytes = b""):
    """expelliarmus needs a .raw/.dat suffix (and a header for .raw): copy the file accordingly."""
    wizard = pytest.importorskip("expelliarmus").Wizard
    suffix = ".dat" if encoding == "dat" else ".raw"
    dst = tmp_path / f"copy{suffix}"
    if header:
        dst.write_bytes(header + path.read_bytes())
    else:
        shutil.copyfile(path, dst)
    return wizard(encoding=encoding).read(dst)


def ref_evt2(words: np.ndarray) -> dict[str, np.ndarray]:
    """Slow, per-word EVT 2.0 decoder following openeb's rules (FORMATS.md §5)."""
    out = []
    base = None
    loop = 0
    for w in words.tolist():
        typ = w >> 28
        if typ == 0x8:
            new = (w & 0x0FFFFFFF) << 6
            if base is not None and base - new >= ((1 << 28) - 1) * 64 - 10000:
                loop += 1
            base = new
        elif typ <= 1 and base is not None:
            out.append(((loop << 34) + base + (w >> 22 & 0x3F), w >> 11 & 0x7FF, w & 0x7FF, typ))
    ev = np.asarray(out, dtype=np.int64).reshape(-1, 4)
    return {"t": ev[:, 0], "x": ev[:, 1], "y": ev[:, 2], "p": ev[:, 3]}


def ref_evt3(words: np.ndarray) -> dict[str, np.ndarray]:
    """Slow, per-word EVT 3.0 decoder following openeb's rules (FORMATS.md §6), for checking ``t``."""
    out = []
    started = False
    y = None
    base = pol = 0
    high = low = loop = 0
    for w in words.tolist():
        typ, pay = w >> 12, w & 0xFFF
        if not started:
            if typ != 0x8:
                continue
            started, high, low = True, pay, 0
            continue
        if typ == 0x8:
            if high >= pay + 2048:
                loop += 1
            if pay != high:
                low = 0
            high = pay
        elif typ == 0x6:
            low = pay
        elif typ == 0x0:
            y = pay & 0x7FF
        elif typ == 0x3:
            base, pol = pay & 0x7FF, pay >> 11 & 1
        t = (loop << 24) + (high << 12) + low
        if typ == 0x2 and y is not None:
            out.append((t, pay & 0x7FF, y, pay >> 11 & 1))
        elif typ in (0x4, 0x5):
            width = 12 if typ == 0x4 else 8
            for k in range(width):
                if pay >> k & 1 and y is not None:
                    out.append((t, base + k, y, pol))
            base += width
    ev = np.asarray(out, dtype=np.int64).reshape(-1, 4)
    return {"t": ev[:, 0], "x": ev[:, 1], "y": ev[:, 2], "p": ev[:, 3]}


# ============================================================================================== EVT 2.0


def test_evt2_real_equals_expelliarmus(tmp_path):
    path = real_file("prophesee_evt2", "evt2_sample.raw")
    ev = read_evt2(path.read_bytes(), path.name)
    ref = expelliarmus_read(path, "evt2", tmp_path)
    assert len(ev) == 539481
    assert_events(ev, ref)
    assert (ev.width, ev.height, ev.camera) == (None, None, "hal_plugin_gen3_fx3")
    assert ev.skipped == {"trigger": 0, "imu": 0, "other": 0, "before_first_time_high": 0}
    assert ev.t[0] == 1317888  # absolute, not zero-based
    for chunk in (4099, 1 << 20):
        assert_chunks_equal(list(iter_evt2(path, chunk)), ev)


def test_evt2_headerless_real_equals_expelliarmus_with_header(tmp_path):
    path = real_file("prophesee_evt2_headerless", "left2.bin")
    ev = read_evt2(path.read_bytes(), path.name)
    ref = expelliarmus_read(path, "evt2", tmp_path, header=b"% evt 2.0\n")
    assert len(ev) == 119317
    assert_events(ev, ref)
    assert ev.camera is None
    assert_chunks_equal(list(iter_evt2(path, 1001)), ev)


def _evt2_file(rng, n=400, **kw):
    ev = random_events(rng, n, 640, 480, t0=int(rng.integers(0, 1 << 30)), max_gap=150)
    words, extra = encode_evt2(ev["t"], ev["x"], ev["y"], ev["p"], rng=rng, **kw)
    return ev, words, extra


def test_evt2_generated_words_of_every_kind(tmp_path):
    rng = np.random.default_rng(2)
    ev, words, extra = _evt2_file(rng, extra_every=5, repeat_time_high=True)
    assert min(extra.values()) > 0
    head = raw_header(RAW_HEADER_EVT2 + ["% geometry 640x480"], end=True)
    data = head + words.tobytes()
    got = read_evt2(data, "gen.raw")
    assert_events(got, ev)
    assert got.skipped == {**extra, "before_first_time_high": 0}
    assert (got.width, got.height) == (640, 480)
    path = tmp_path / "gen.raw"
    path.write_bytes(data)
    for chunk in (1, 2, 3, 5, 64):
        assert_chunks_equal(list(iter_evt2(path, chunk)), got)


def test_evt2_generated_equals_expelliarmus(tmp_path):
    rng = np.random.default_rng(3)
    ev, words, _ = _evt2_file(rng, n=2000)
    path = tmp_path / "g.raw"
    path.write_bytes(raw_header(["% evt 2.0"]) + words.tobytes())
    ref = expelliarmus_read(path, "evt2", tmp_path)
    assert_events(read_evt2(path.read_bytes(), "g.raw"), ref)
    assert_events(read_evt2(path.read_bytes(), "g.raw"), ev)


def test_evt2_words_before_first_time_high_are_skipped():
    cd_before = [evt2_cd(5, 1, 2, 1), evt2_word(0xE, 7), evt2_cd(6, 3, 4, 0)]
    body = cd_before + [evt2_time_high(100), evt2_cd(9, 10, 11, 1), evt2_word(0xA, 1), evt2_cd(63, 12, 13, 0)]
    ev = read_evt2(np.asarray(body, "<u4").tobytes(), "x.bin")
    assert_events(ev, {"t": [100 * 64 + 9, 100 * 64 + 63], "x": [10, 12], "y": [11, 13], "p": [1, 0]})
    assert ev.skipped == {"trigger": 1, "imu": 0, "other": 1, "before_first_time_high": 2}


def test_evt2_34bit_rollover_follows_openeb():
    top = (1 << 28) - 1
    body = [evt2_time_high(top - 1), evt2_cd(1, 0, 0, 1), evt2_time_high(top), evt2_cd(2, 0, 0, 1),
            evt2_time_high(0), evt2_cd(3, 0, 0, 1), evt2_time_high(5), evt2_cd(4, 0, 0, 1),
            evt2_time_high(3), evt2_cd(5, 0, 0, 1)]  # a small step back is not a rollover
    ev = read_evt2(np.asarray(body, "<u4").tobytes(), "x")
    loop = 1 << 34
    expected = [((top - 1) << 6) + 1, (top << 6) + 2, loop + 3, loop + (5 << 6) + 4, loop + (3 << 6) + 5]
    np.testing.assert_array_equal(ev.t, expected)


def test_evt2_header_variants():
    words = np.asarray([evt2_time_high(1), evt2_cd(0, 1, 1, 1)], "<u4").tobytes()
    ev = read_evt2(raw_header(["% format EVT2;height=320;width=320", "% sensor_name GenX320"]) + words, "a")
    assert (ev.width, ev.height, ev.camera, len(ev)) == (320, 320, "GenX320", 1)
    with pytest.raises(FormatError, match=r"a: byte 0: .*evt3"):
        read_evt2(raw_header(["% evt 3.0"]) + words, "a")
    with pytest.raises(FormatError, match=r"byte 0: .*evt21"):
        read_evt2(raw_header(["% format EVT21"]) + words, "a")


def test_evt2_damaged():
    head = raw_header(RAW_HEADER_EVT2)
    words = np.asarray([evt2_time_high(1), evt2_cd(0, 1, 1, 1), evt2_cd(1, 2, 2, 0)], "<u4").tobytes()
    data = head + words[:-2]
    with pytest.raises(FormatError, match=rf"cut\.raw: byte {len(head) + 8}: incomplete 32-bit word"):
        read_evt2(data, "cut.raw")
    ev = read_evt2(data, "cut.raw", allow_truncated=True)
    assert len(ev) == 1 and ev.truncated_bytes == 2
    bad = np.asarray([evt2_time_high(1), evt2_word(0x3, 0), evt2_cd(0, 1, 1, 1)], "<u4").tobytes()
    with pytest.raises(FormatError, match=rf"bad: byte {len(head) + 4}: reserved EVT 2.0 word type 0x3"):
        read_evt2(head + bad, "bad")


def test_iter_evt2_reports_truncation_before_first_chunk(tmp_path):
    path = tmp_path / "t.raw"
    path.write_bytes(raw_header(["% evt 2.0"]) + np.asarray([evt2_time_high(1)] * 3, "<u4").tobytes() + b"\x01")
    with pytest.raises(FormatError, match=r"t\.raw: byte 22: "):
        next(iter_evt2(path, 2))
    chunks = list(iter_evt2(path, 2, allow_truncated=True))
    assert chunks[-1].truncated_bytes == 1 and sum(len(c) for c in chunks) == 0


# ============================================================================================== EVT 3.0


def test_evt3_real_xyp_equal_expelliarmus_and_npy_t_follows_openeb(tmp_path):
    path = real_file("prophesee_evt3", "evt3_sample.raw")
    npy = np.load(real_file("prophesee_evt3", "evt3_sample.npy"), allow_pickle=False)
    data = path.read_bytes()
    ev = read_evt3(data, path.name)
    assert len(ev) == npy.size == 219596
    assert_events(ev, npy, "xyp")
    assert_events(ev, expelliarmus_read(path, "evt3", tmp_path), "xyp")
    start = data.index(b"% system_ID 48\n") + len(b"% system_ID 48\n")  # the last header line
    ref = ref_evt3(np.frombuffer(data[start:], "<u2"))
    assert_events(ev, ref)
    assert ev.t[-1] - ev.t[0] == 8801 and np.all(np.diff(ev.t) >= 0)
    assert npy["t"][-1] - npy["t"][0] == 53857  # the expelliarmus double count the openeb rule fixes
    assert (ev.width, ev.height, ev.camera) == (None, None, "hal_plugin_gen41_evk3")
    for chunk in (97, 4096):
        assert_chunks_equal(list(iter_evt3(path, chunk)), ev)


def test_evt3_expelliarmus_time_rule_reproduces_npy():
    path = real_file("prophesee_evt3", "evt3_sample.raw")
    npy = np.load(real_file("prophesee_evt3", "evt3_sample.npy"), allow_pickle=False)
    ev = read_evt3(path.read_bytes(), path.name, time_rule="expelliarmus")
    assert_events(ev, npy)
    assert_chunks_equal(list(iter_evt3(path, 1000, time_rule="expelliarmus")), ev)


@pytest.mark.parametrize("seed", [0, 1])
def test_evt3_generated_vectors_wraps_extras(tmp_path, seed):
    rng = np.random.default_rng(seed)
    words, truth, extra = encode_evt3_random(rng, 250, t0=16_000_000, big_gaps=6)
    assert truth["t"][-1] > 2 << 24  # crossed the 24-bit wrap at least twice
    data = raw_header(RAW_HEADER_EVT3 + ["% format EVT3;height=720;width=1280"], end=True) + words.tobytes()
    ev = read_evt3(data, "gen.raw")
    assert_events(ev, truth)
    assert_events(ev, ref_evt3(words))
    assert ev.skipped == {**extra, "before_first_time_high": 0, "before_first_addr_y": 0}
    assert (ev.width, ev.height) == (1280, 720)
    path = tmp_path / "gen.raw"
    path.write_bytes(data)
    for chunk in (1, 3, 50):
        assert_chunks_equal(list(iter_evt3(path, chunk)), ev)
    assert_chunks_equal(list(iter_evt3(path, 2, time_rule="expelliarmus")),
                        read_evt3(data, "gen.raw", time_rule="expelliarmus"))


def test_evt3_generated_equals_expelliarmus_rule_and_xyp(tmp_path):
    rng = np.random.default_rng(5)
    words, truth, _ = encode_evt3_random(rng, 300, extras=False)
    path = tmp_path / "g.raw"
    path.write_bytes(raw_header(["% evt 3.0"]) + words.tobytes())
    ref = expelliarmus_read(path, "evt3", tmp_path)
    assert_events(read_evt3(path.read_bytes(), "g"), ref, "xyp")
    assert_events(read_evt3(path.read_bytes(), "g", time_rule="expelliarmus"), ref)


def test_evt3_time_low_reset_and_repeated_time_high():
    enc = Evt3Encoder()
    enc.time(0x5123)
    enc.row(7)
    enc.single(1, 1)
    words = enc.words + [evt3_time_high(0x5123), evt3_addr_x(2, 0),  # same high: low kept
                         evt3_time_high(0x6000 + 0x123), evt3_addr_x(3, 1),  # new high, no TIME_LOW yet: low = 0
                         evt3_time_low(0x6007), evt3_addr_x(4, 0),
                         evt3_time_high(0x5000), evt3_addr_x(5, 0),  # a small step back is not a 24-bit wrap
                         evt3_time_high(0xFFF000), evt3_time_low(0x11), evt3_addr_x(6, 0),
                         evt3_time_high(0x800000), evt3_addr_x(7, 0),  # high 2047 below: still no wrap
                         evt3_time_high(0xFFF000), evt3_addr_x(8, 0),
                         evt3_time_high(0x7FF000), evt3_addr_x(9, 0)]  # high 2048 below: a 24-bit wrap
    ev = read_evt3(np.asarray(words, "<u2").tobytes(), "x")
    expected_t = [0x5123, 0x5123, 0x6000, 0x6007, 0x5000, 0xFFF011, 0x800000, 0xFFF000, (1 << 24) + 0x7FF000]
    np.testing.assert_array_equal(ev.t, expected_t)
    np.testing.assert_array_equal(ev.x, [1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert_events(ev, ref_evt3(np.asarray(words)))
    for size in (1, 2, 3):  # the same across every chunk boundary
        chunks = [c for c in iter_evt3_bytes(np.asarray(words, "<u2").tobytes(), size)]
        np.testing.assert_array_equal(np.concatenate([c.t for c in chunks]), ev.t)


def iter_evt3_bytes(data: bytes, size: int):
    """``iter_evt3`` on bytes (through a temporary file)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.raw"
        path.write_bytes(data)
        yield from iter_evt3(path, size)


def test_evt3_before_first_time_high_and_addr_y_are_skipped():
    words = [evt3_addr_y(3), evt3_addr_x(1, 1), evt3_base_x(0, 1), evt3_vect12(0xFFF),  # before any TIME_HIGH
             evt3_time_high(1 << 12), evt3_addr_x(5, 1), evt3_base_x(8, 0), evt3_vect8(0b101),  # no ADDR_Y yet
             evt3_addr_y(9), evt3_addr_x(6, 0), evt3_word(0xA, 0), evt3_word(0xD, 0), evt3_word(0x7, 0)]
    ev = read_evt3(np.asarray(words, "<u2").tobytes(), "x")
    assert_events(ev, {"t": [4096], "x": [6], "y": [9], "p": [0]})
    assert ev.skipped == {"trigger": 1, "imu": 1, "other": 1, "before_first_time_high": 2, "before_first_addr_y": 3}


def test_evt3_damaged():
    head = raw_header(RAW_HEADER_EVT3)
    words = np.asarray([evt3_time_high(0), evt3_addr_y(1), evt3_addr_x(2, 1)], "<u2").tobytes()
    with pytest.raises(FormatError, match=rf"c\.raw: byte {len(head) + 4}: incomplete 16-bit word"):
        read_evt3(head + words[:-1], "c.raw")
    ev = read_evt3(head + words[:-1], "c.raw", allow_truncated=True)
    assert len(ev) == 0 and ev.truncated_bytes == 1
    bad = np.asarray([evt3_time_high(0), evt3_word(0xB, 0)], "<u2").tobytes()
    with pytest.raises(FormatError, match=rf"b: byte {len(head) + 2}: reserved EVT 3.0 word type 0xB"):
        read_evt3(head + bad, "b")
    with pytest.raises(FormatError, match=r"byte 0: .*evt2"):
        read_evt3(raw_header(["% evt 2.0"]) + words, "b")
    with pytest.raises(ValueError, match="time_rule"):
        read_evt3(words, "b", time_rule="spec")


# ================================================================================================== DAT


@pytest.mark.parametrize("name", ["sample_ncars.dat", "NCARS_obj_004397_td.dat"])
def test_dat_real_equals_expelliarmus(tmp_path, name):
    path = real_file("ncars", name)
    ev = read_dat(path.read_bytes(), name)
    ref = expelliarmus_read(path, "dat", tmp_path)
    assert_events(ev, ref)
    assert_events(read_dat(path.read_bytes(), name, time_rule="expelliarmus"), ref)
    assert (ev.width, ev.height, ev.camera) == (None, None, None)
    assert ev.t[0] == 0
    for chunk in (1, 3, 500):
        assert_chunks_equal(list(iter_dat(path, chunk)), ev)


def test_dat_generated_header_size_wraps(tmp_path):
    rng = np.random.default_rng(7)
    ev = random_events(rng, 300, 304, 240, t0=(1 << 32) - 20_000, max_gap=400)
    data = encode_dat(ev["t"], ev["x"], ev["y"], ev["p"], width=304, height=240, event_type=12, p_high_bits=0)
    got = read_dat(data, "w.dat")
    assert ev["t"][-1] > 1 << 32
    assert_events(got, ev)
    assert (got.width, got.height) == (304, 240)
    path = tmp_path / "w.dat"
    path.write_bytes(data)
    assert_events(read_dat(data, "w.dat", time_rule="expelliarmus"), expelliarmus_read(path, "dat", tmp_path))
    for chunk in (1, 2, 7):
        assert_chunks_equal(list(iter_dat(path, chunk)), got)


def test_dat_headerless_and_polarity_bit_28_only():
    data = encode_dat([5, 6], [1, 2], [3, 4], [1, 0], header=False, p_high_bits=7)
    ev = read_dat(data, "h.dat")
    assert_events(ev, {"t": [5, 6], "x": [1, 2], "y": [3, 4], "p": [1, 0]})


def test_dat_time_rules_differ_on_a_backward_step(tmp_path):
    data = encode_dat([10, 20, 15, 30], [0] * 4, [0] * 4, [1] * 4)
    np.testing.assert_array_equal(read_dat(data, "b.dat").t, [10, 20, 15, 30])
    exp = read_dat(data, "b.dat", time_rule="expelliarmus")
    np.testing.assert_array_equal(exp.t, [10, 20, 15 + (1 << 32), 30 + (1 << 32)])
    path = tmp_path / "b.dat"
    path.write_bytes(data)
    np.testing.assert_array_equal(exp.t, expelliarmus_read(path, "dat", tmp_path)["t"])


def test_dat_damaged():
    good = encode_dat([1, 2], [1, 2], [1, 2], [0, 1])
    hlen = len(good) - 16
    with pytest.raises(FormatError, match=rf"d\.dat: byte {hlen + 8}: incomplete 8-byte event"):
        read_dat(good[:-3], "d.dat")
    assert read_dat(good[:-3], "d.dat", allow_truncated=True).truncated_bytes == 5
    with pytest.raises(FormatError, match=rf"byte {hlen - 2}: event type 14"):
        read_dat(encode_dat([1], [1], [1], [1], event_type=14), "d.dat")
    with pytest.raises(FormatError, match=rf"byte {hlen - 1}: event size 16"):
        read_dat(encode_dat([1], [1], [1], [1], event_size=16), "d.dat")
    with pytest.raises(FormatError, match=r"byte \d+: file ends after the header"):
        read_dat(good[: hlen - 2], "d.dat")


# ============================================================================================== fuzzing

_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _fuzz(read, head: bytes, body: bytes):
    try:
        ev = read(head + body, "fuzz")
    except FormatError as exc:
        assert str(exc).startswith("fuzz: ")
        return None
    assert ev.t.dtype == np.int64 and ev.x.dtype == np.uint16 and ev.p.dtype == np.uint8
    assert len(ev.t) == len(ev.x) == len(ev.y) == len(ev.p)
    return ev


@_FUZZ
@given(body=st.binary(max_size=600))
def test_fuzz_evt2(body):
    _fuzz(read_evt2, raw_header(["% evt 2.0"]), body)
    # words of known types only: must decode, and equal the per-word reference
    words = np.frombuffer(body[: len(body) // 4 * 4], "<u4")
    known = np.array([0x0, 0x1, 0x8, 0x8, 0xA, 0xD, 0xE, 0xF], np.uint32)
    words = (words & 0x0FFFFFFF) | (known[(words >> 28) % known.size] << 28)
    ev = _fuzz(read_evt2, raw_header(["% evt 2.0"], end=True), words.tobytes())  # '% end': words may start with '%'
    assert ev is not None
    assert_events(ev, ref_evt2(words))


@_FUZZ
@given(body=st.binary(max_size=600))
def test_fuzz_evt3(body):
    _fuzz(read_evt3, raw_header(["% evt 3.0"]), body)
    words = np.frombuffer(body[: len(body) // 2 * 2], "<u2")
    known = np.array([0, 2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15], np.uint16)
    words = (words & 0x0FFF) | (known[(words >> 12) % known.size] << 12)
    ev = _fuzz(read_evt3, raw_header(["% evt 3.0"], end=True), words.tobytes())
    assert ev is not None
    assert_events(ev, ref_evt3(words))


@_FUZZ
@given(body=st.binary(max_size=600), ev_type=st.sampled_from([0, 12, 14, 3]))
def test_fuzz_dat(body, ev_type):
    head = encode_dat([], [], [], [], event_type=ev_type)
    _fuzz(read_dat, head, body)
    _fuzz(read_dat, b"", body)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400), chunk=st.integers(1, 9))
def test_fuzz_evt3_chunks_equal_whole(tmp_path_factory, body, chunk):
    words = np.frombuffer(body[: len(body) // 2 * 2], "<u2")
    known = np.array([0, 2, 3, 4, 5, 6, 8, 8, 8, 6, 6, 14], np.uint16)
    words = (words & 0x0FFF) | (known[(words >> 12) % known.size] << 12)
    data = raw_header(["% evt 3.0"], end=True) + words.tobytes()
    path = tmp_path_factory.mktemp("evt3") / "f.raw"
    path.write_bytes(data)
    for rule in ("openeb", "expelliarmus"):
        assert_chunks_equal(list(iter_evt3(path, chunk, time_rule=rule)), read_evt3(data, "f", time_rule=rule))

