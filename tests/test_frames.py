"""loader.frames against SpikingJelly 2.0.0 and against a plain per-event reference."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loader import frames as F
from tests.sjcompat import import_spikingjelly_datasets

SJ = import_spikingjelly_datasets().utils
REPO = Path(__file__).resolve().parents[1]

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- helpers


@st.composite
def samples(draw, min_n: int = 0, max_n: int = 150):
    """Sorted events with repeats and big gaps in t, coordinates in typical narrow dtypes."""
    H = draw(st.integers(1, 40))
    W = draw(st.integers(1, 40))
    n = draw(st.integers(min_n, max_n))
    gap = st.one_of(st.just(0), st.integers(0, 3), st.integers(0, 1000), st.integers(0, 10**7))
    gaps = draw(st.lists(gap, min_size=n, max_size=n))
    t0 = draw(st.integers(0, 2**40))
    t = (t0 + np.cumsum(np.asarray(gaps, dtype=np.int64))).astype(np.int64)
    xs = draw(st.lists(st.integers(0, W - 1), min_size=n, max_size=n))
    ys = draw(st.lists(st.integers(0, H - 1), min_size=n, max_size=n))
    ps = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    xy_dtype = draw(st.sampled_from([np.uint8, np.uint16, np.int64]))
    p_dtype = draw(st.sampled_from([np.uint8, np.bool_, np.int64]))
    events = {
        "t": t,
        "x": np.asarray(xs, dtype=np.int64).astype(xy_dtype),
        "y": np.asarray(ys, dtype=np.int64).astype(xy_dtype),
        "p": np.asarray(ps, dtype=np.int64).astype(p_dtype),
    }
    return events, H, W


def naive_frames(events: dict, frame_of_event: np.ndarray, T: int, H: int, W: int) -> np.ndarray:
    """Count each event into frame ``frame_of_event[i]`` one by one (independent reference)."""
    out = np.zeros((T, 2, H, W), dtype=np.float64)
    for i in range(len(events["t"])):
        c = 1 if events["p"][i] != 0 else 0
        out[frame_of_event[i], c, int(events["y"][i]), int(events["x"][i])] += 1
    return out


def naive_time_frames(events: dict, T: int, H: int, W: int) -> np.ndarray:
    """DESIGN §3 'time': t0 + j*dt <= t < t0 + (j+1)*dt, the last frame takes everything later."""
    t = [int(v) for v in events["t"]]
    if not t:
        return np.zeros((T, 2, H, W))
    dt = (t[-1] - t[0]) // T
    frame = []
    for v in t:
        j = T - 1
        for k in range(T - 1):
            if t[0] + k * dt <= v < t[0] + (k + 1) * dt:
                j = k
                break
        frame.append(j)
    return naive_frames(events, np.asarray(frame, dtype=np.int64), T, H, W)


def naive_duration_frames(events: dict, D: int, H: int, W: int) -> np.ndarray:
    """DESIGN §3 duration: T = max(1, ceil(t'[-1] / D)), frame = min(t' // D, T - 1)."""
    t = [int(v) for v in events["t"]]
    if not t:
        return np.zeros((1, 2, H, W))
    tp = [v - t[0] for v in t]
    T = max(1, -(-tp[-1] // D))
    frame = np.asarray([min(v // D, T - 1) for v in tp], dtype=np.int64)
    return naive_frames(events, frame, T, H, W)


def check_frames(ours: np.ndarray, expected: np.ndarray) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


def sj_events(events: dict) -> dict:
    """SpikingJelly reads int columns from its npz files."""
    return {k: v.astype(np.int64) for k, v in events.items()}


# --------------------------------------------------------------------------- vs SpikingJelly


@SETTINGS
@given(samples(min_n=1), st.integers(1, 12))
def test_fixed_frames_number_split_by_number_equals_spikingjelly(sample, T):
    events, H, W = sample
    ours = F.integrate_events_by_fixed_frames_number(events, "number", T, H, W)
    check_frames(ours, SJ.integrate_events_by_fixed_frames_number(sj_events(events), "number", T, H, W))
    j_l, j_r = F.cal_fixed_frames_number_segment_index(events["t"], "number", T)
    sj_l, sj_r = SJ.cal_fixed_frames_number_segment_index(events["t"], "number", T)
    np.testing.assert_array_equal(j_l, sj_l)
    np.testing.assert_array_equal(j_r, sj_r)


@SETTINGS
@given(samples(), st.integers(1, 12))
def test_fixed_frames_number_split_by_time_equals_spikingjelly(sample, T):
    events, H, W = sample
    ours = F.integrate_events_by_fixed_frames_number(events, "time", T, H, W)
    check_frames(ours, naive_time_frames(events, T, H, W))
    j_l, j_r = F.cal_fixed_frames_number_segment_index(events["t"], "time", T)
    assert j_l[0] == 0 and j_r[-1] == len(events["t"])
    np.testing.assert_array_equal(j_r[:-1], j_l[1:])
    try:
        expected = SJ.integrate_events_by_fixed_frames_number(sj_events(events), "time", T, H, W)
        sj_l, sj_r = SJ.cal_fixed_frames_number_segment_index(events["t"], "time", T)
    except IndexError:
        # SpikingJelly cannot integrate an empty window; ours gave it an empty frame, checked above.
        event("SpikingJelly raised IndexError")
        t = events["t"]
        if len(t):
            dt = (t[-1] - t[0]) // T
            starts = t[0] + dt * np.arange(T)
            assert any(not np.any((t >= s) & (t < s + dt)) for s in starts)
        return
    check_frames(ours, expected)
    np.testing.assert_array_equal(j_l, sj_l)
    np.testing.assert_array_equal(j_r, sj_r)


def span_of(events: dict) -> int:
    t = events["t"]
    return int(t[-1] - t[0]) if len(t) else 0


@SETTINGS
@given(samples(), st.integers(1, 40), st.sampled_from([0, 0, 1, 7]))
def test_fixed_duration_equals_spikingjelly(sample, k, extra):
    events, H, W = sample
    D = span_of(events) // k + extra or 1  # about k frames; extra = 0 hits exact multiples
    ours = F.integrate_events_by_fixed_duration(events, D, H, W)
    check_frames(ours, naive_duration_frames(events, D, H, W))
    t = events["t"]
    if len(t) and t[-1] > t[0]:
        event("compared with SpikingJelly")
        check_frames(ours, SJ.integrate_events_by_fixed_duration(sj_events(events), D, H, W))
    else:
        # SpikingJelly makes T = 0 frames and fails; ours is one frame with every event.
        assert ours.shape == (1, 2, H, W)
        assert ours.sum() == len(t)


@SETTINGS
@given(samples(min_n=1), st.floats(0.7, 40.0, allow_nan=False))
def test_fixed_duration_float_duration_equals_spikingjelly(sample, k):
    events, H, W = sample
    D = max(span_of(events) / k, 0.5)  # about k frames, a fractional duration
    t = events["t"]
    ours = F.integrate_events_by_fixed_duration(events, D, H, W)
    assert ours.dtype == np.float32
    assert ours.sum() == len(t)
    if t[-1] > t[0]:
        check_frames(ours, SJ.integrate_events_by_fixed_duration(sj_events(events), D, H, W))


@SETTINGS
@given(samples(), st.integers(-200, 200) | st.none(), st.integers(-200, 200) | st.none())
def test_segment_to_frame_equals_spikingjelly(sample, j_l, j_r):
    events, H, W = sample
    x, y, p = events["x"], events["y"], events["p"]
    if j_l is None:
        ours = F.integrate_events_segment_to_frame(x, y, p, H, W, j_r=j_r)
        expected = SJ.integrate_events_segment_to_frame(x, y, p, H, W, j_r=j_r)
    else:
        ours = F.integrate_events_segment_to_frame(x, y, p, H, W, j_l, j_r)
        expected = SJ.integrate_events_segment_to_frame(x, y, p, H, W, j_l, j_r)
    check_frames(ours, expected)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(0, 5000),
    st.sampled_from([(128, 128), (260, 346), (1, 1), (7, 300)]),
    st.integers(1, 12),
)
def test_larger_samples_all_modes_equal_spikingjelly(seed, n, hw, T):
    H, W = hw
    rng = np.random.default_rng(seed)
    span = int(rng.choice([1, 10, 10**3, 10**6, 6 * 10**6]))
    t = np.sort(rng.integers(0, span, n)).astype(np.int64) + 10**9
    events = {
        "t": t,
        "x": rng.integers(0, W, n).astype(np.uint16),
        "y": rng.integers(0, H, n).astype(np.uint16),
        "p": rng.integers(0, 2, n).astype(np.uint8),
    }
    sje = sj_events(events)
    if n:
        check_frames(
            F.integrate_events_by_fixed_frames_number(events, "number", T, H, W),
            SJ.integrate_events_by_fixed_frames_number(sje, "number", T, H, W),
        )
    try:
        expected = SJ.integrate_events_by_fixed_frames_number(sje, "time", T, H, W)
    except IndexError:
        expected = naive_time_frames(events, T, H, W)
    check_frames(F.integrate_events_by_fixed_frames_number(events, "time", T, H, W), expected)
    D = max(1, span // int(rng.integers(1, 30)))
    if n and t[-1] > t[0]:
        check_frames(
            F.integrate_events_by_fixed_duration(events, D, H, W),
            SJ.integrate_events_by_fixed_duration(sje, D, H, W),
        )


# --------------------------------------------------------------------------- fixed cases


def make_events(t, x, y, p, xy_dtype=np.uint16, p_dtype=np.uint8) -> dict:
    return {
        "t": np.asarray(t, dtype=np.int64),
        "x": np.asarray(x, dtype=xy_dtype),
        "y": np.asarray(y, dtype=xy_dtype),
        "p": np.asarray(p, dtype=p_dtype),
    }


def test_channels_and_indexing():
    # p == 0 -> channel 0, p != 0 -> channel 1; frames are indexed [c, y, x].
    ev = make_events([0, 1, 2, 3], x=[4, 4, 0, 4], y=[1, 1, 2, 1], p=[0, 1, 1, 0])
    fr = F.integrate_events_segment_to_frame(ev["x"], ev["y"], ev["p"], H=3, W=5)
    assert fr.shape == (2, 3, 5) and fr.dtype == np.float32
    assert fr[0, 1, 4] == 2 and fr[1, 1, 4] == 1 and fr[1, 2, 0] == 1 and fr.sum() == 4


def test_nonbinary_polarity_counts_as_channel_1():
    ev = make_events([0, 1, 2], x=[0, 0, 0], y=[0, 0, 0], p=[-1, 5, 0], p_dtype=np.int8)
    fr = F.integrate_events_by_fixed_frames_number(ev, "number", 1, 1, 1)
    np.testing.assert_array_equal(fr[0, :, 0, 0], [1, 2])


def test_time_split_with_empty_window_gives_empty_frame():
    ev = make_events([0, 0, 0, 100], x=[0, 1, 2, 3], y=[0, 0, 0, 0], p=[1, 1, 0, 0])
    with pytest.raises(IndexError):
        SJ.integrate_events_by_fixed_frames_number(sj_events(ev), "time", 4, 1, 4)
    j_l, j_r = F.cal_fixed_frames_number_segment_index(ev["t"], "time", 4)
    np.testing.assert_array_equal(j_l, [0, 3, 3, 3])
    np.testing.assert_array_equal(j_r, [3, 3, 3, 4])
    fr = F.integrate_events_by_fixed_frames_number(ev, "time", 4, 1, 4)
    assert fr.shape == (4, 2, 1, 4) and fr.dtype == np.float32
    np.testing.assert_array_equal(fr[0, 1, 0], [1, 1, 0, 0])
    np.testing.assert_array_equal(fr[0, 0, 0], [0, 0, 1, 0])
    assert not fr[1].any() and not fr[2].any()
    np.testing.assert_array_equal(fr[3, 0, 0], [0, 0, 0, 1])


def test_time_split_all_events_at_one_time_go_to_last_frame():
    ev = make_events([7, 7, 7], x=[0, 1, 1], y=[0, 0, 0], p=[0, 0, 1])
    fr = F.integrate_events_by_fixed_frames_number(ev, "time", 3, 1, 2)
    assert not fr[:2].any()
    np.testing.assert_array_equal(fr[2, :, 0], [[1, 1], [0, 1]])


def test_time_split_last_frame_takes_the_tail():
    # dt = 10 // 3 = 3: windows [0,3) [3,6) and the last from 6 on, so t=9 and t=10 go to frame 2.
    ev = make_events([0, 3, 6, 9, 10], x=[0, 1, 2, 3, 4], y=[0] * 5, p=[0] * 5)
    j_l, j_r = F.cal_fixed_frames_number_segment_index(ev["t"], "time", 3)
    np.testing.assert_array_equal(j_l, [0, 1, 2])
    np.testing.assert_array_equal(j_r, [1, 2, 5])


def test_number_split_with_fewer_events_than_frames():
    ev = make_events([0, 1], x=[0, 1], y=[0, 0], p=[0, 1])
    fr = F.integrate_events_by_fixed_frames_number(ev, "number", 5, 1, 2)
    assert not fr[:4].any() and fr[4].sum() == 2
    check_frames(fr, SJ.integrate_events_by_fixed_frames_number(sj_events(ev), "number", 5, 1, 2))


@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("T", [1, 3, 20])
def test_zero_events_fixed_frames_number(split_by, T):
    ev = make_events([], [], [], [])
    fr = F.integrate_events_by_fixed_frames_number(ev, split_by, T, 4, 6)
    assert fr.shape == (T, 2, 4, 6) and fr.dtype == np.float32 and not fr.any()
    j_l, j_r = F.cal_fixed_frames_number_segment_index(ev["t"], split_by, T)
    assert not j_l.any() and not j_r.any()


def test_zero_events_fixed_duration_gives_one_zero_frame():
    fr = F.integrate_events_by_fixed_duration(make_events([], [], [], []), 1000, 4, 6)
    assert fr.shape == (1, 2, 4, 6) and fr.dtype == np.float32 and not fr.any()


def test_duration_single_timestamp_gives_one_frame():
    ev = make_events([5, 5, 5], x=[0, 0, 1], y=[0, 0, 0], p=[1, 1, 0])
    fr = F.integrate_events_by_fixed_duration(ev, 10, 1, 2)
    np.testing.assert_array_equal(fr, [[[[0, 1]], [[2, 0]]]])


def test_duration_boundaries():
    # D = 10, t' = 0, 9, 10, 19, 20 -> T = 2; frame 1 holds [10, 20] (the last one takes t' = T*D).
    ev = make_events(np.array([0, 9, 10, 19, 20]) + 1000, x=[0, 1, 2, 3, 4], y=[0] * 5, p=[1] * 5)
    fr = F.integrate_events_by_fixed_duration(ev, 10, 1, 5)
    assert fr.shape == (2, 2, 1, 5)
    np.testing.assert_array_equal(fr[:, 1, 0], [[1, 1, 0, 0, 0], [0, 0, 1, 1, 1]])
    assert math.ceil(20 / 10) == 2
    check_frames(fr, SJ.integrate_events_by_fixed_duration(sj_events(ev), 10, 1, 5))
    np.testing.assert_array_equal(F.cal_fixed_duration_segment_index(ev["t"], 10)[0], [0, 2])


def test_large_counts_do_not_wrap():
    n = 70_000  # beyond int16 and uint16
    ev = make_events(np.arange(n), x=np.full(n, 3), y=np.full(n, 2), p=np.ones(n), xy_dtype=np.uint8)
    fr = F.integrate_events_by_fixed_frames_number(ev, "number", 1, 4, 4)
    assert fr.dtype == np.float32 and fr[0, 1, 2, 3] == 70_000.0 and fr.sum() == 70_000.0
    fr = F.integrate_events_segment_to_frame(ev["x"], ev["y"], ev["p"], 4, 4, 0, 40_000)
    assert fr[1, 2, 3] == 40_000.0


def test_output_shapes_and_dtypes():
    rng = np.random.default_rng(1)
    n, H, W = 1000, 34, 34
    ev = make_events(
        np.sort(rng.integers(0, 10**6, n)), rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n)
    )
    for split_by in F.SPLIT_BY:
        fr = F.integrate_events_by_fixed_frames_number(ev, split_by, 7, H, W)
        assert fr.shape == (7, 2, H, W) and fr.dtype == np.float32 and fr.sum() == n
    fr = F.integrate_events_by_fixed_duration(ev, 10**5, H, W)
    T = math.ceil((ev["t"][-1] - ev["t"][0]) / 10**5)
    assert fr.shape == (T, 2, H, W) and fr.dtype == np.float32 and fr.sum() == n
    j_l, j_r = F.cal_fixed_frames_number_segment_index(ev["t"], "time", 7)
    assert j_l.dtype == np.int64 and j_r.dtype == np.int64 and j_l.shape == (7,)


def test_segments_with_gaps_skip_events():
    x = np.arange(6, dtype=np.uint8)
    y = np.zeros(6, dtype=np.uint8)
    p = np.zeros(6, dtype=np.uint8)
    fr = F.integrate_events_segments_to_frames(x, y, p, 1, 6, [1, 4], [3, 5])
    np.testing.assert_array_equal(fr[:, 0, 0], [[0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]])
    assert F.integrate_events_segments_to_frames(x, y, p, 1, 6, [], []).shape == (0, 2, 1, 6)


def test_index_dtype_switches_to_int64_for_huge_frames(monkeypatch):
    assert F._index_dtype(2**31) is np.int32
    assert F._index_dtype(2**31 + 1) is np.int64
    # The int64 path gives the same frames (forced here on a small sample).
    rng = np.random.default_rng(3)
    n, H, W = 3000, 20, 30
    ev = make_events(
        np.sort(rng.integers(0, 10**6, n)), rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n)
    )
    narrow = F.integrate_events_by_fixed_frames_number(ev, "time", 9, H, W)
    monkeypatch.setattr(F, "_INT32_BINS", 0)
    assert F._index_dtype(1) is np.int64
    check_frames(F.integrate_events_by_fixed_frames_number(ev, "time", 9, H, W), narrow)
    check_frames(narrow, naive_time_frames(ev, 9, H, W))


@pytest.mark.parametrize(
    "call",
    [
        lambda ev: F.integrate_events_by_fixed_frames_number(ev, "frames", 3, 4, 4),
        lambda ev: F.cal_fixed_frames_number_segment_index(ev["t"], "Time", 3),
    ],
)
def test_unknown_split_by_names_allowed_values(call):
    ev = make_events([0, 1], [0, 1], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="number.*time"):
        call(ev)


@pytest.mark.parametrize(
    "call",
    [
        lambda ev: F.integrate_events_by_fixed_frames_number(ev, "number", 0, 4, 4),
        lambda ev: F.integrate_events_by_fixed_duration(ev, 0, 4, 4),
        lambda ev: F.integrate_events_by_fixed_duration(ev, -5, 4, 4),
        lambda ev: F.integrate_events_by_fixed_duration(ev, float("nan"), 4, 4),
        lambda ev: F.integrate_events_by_fixed_frames_number(ev, "number", 1, 4, 1),  # x = 1 >= W
        lambda ev: F.integrate_events_by_fixed_frames_number(ev, "number", 1, 1, 4),  # y = 1 >= H
        lambda ev: F.integrate_events_segments_to_frames(ev["x"], ev["y"], ev["p"], 4, 4, [0, 0], [2, 2]),
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call(make_events([0, 1], [0, 1], [0, 1], [0, 1]))


def test_negative_coordinates_raise():
    ev = make_events([0, 1], [0, -1], [0, 0], [0, 1], xy_dtype=np.int16)
    with pytest.raises(ValueError, match="x"):
        F.integrate_events_by_fixed_frames_number(ev, "number", 1, 4, 4)


def test_frames_module_does_not_import_torch():
    code = "import sys, loader.frames; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_read_only_and_strided_inputs():
    # Decoded shards may hand over read-only arrays, tonic-style samples strided fields.
    rng = np.random.default_rng(5)
    n, H, W = 500, 16, 24
    rec = np.zeros(n, dtype=[("x", np.uint16), ("y", np.uint16), ("p", np.uint8), ("t", np.int64)])
    rec["x"], rec["y"], rec["p"] = rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n)
    rec["t"] = np.sort(rng.integers(0, 10**5, n))
    rec.flags.writeable = False
    ev = {k: rec[k] for k in "txyp"}
    expected = F.integrate_events_by_fixed_frames_number({k: np.array(v) for k, v in ev.items()}, "time", 6, H, W)
    check_frames(F.integrate_events_by_fixed_frames_number(ev, "time", 6, H, W), expected)
    check_frames(expected, naive_time_frames(ev, 6, H, W))
