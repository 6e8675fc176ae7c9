"""Integrate event streams into two-channel count frames (SpikingJelly 2.0.0 semantics).

Every function here gives the same values as the function of the same name in
``spikingjelly.datasets.utils`` (2.0.0), as ``float32`` instead of ``float64``. Frames are
``[T, 2, H, W]``: channel 0 counts events with ``p == 0``, channel 1 those with ``p != 0``,
indexed ``[c, y, x]``.

The event times ``t`` of one sample must be non-decreasing (as recorded). A sample is integrated
in one vectorised pass: the frame of every event follows from the segment boundaries
(``np.repeat`` of the segment lengths) and a single ``np.bincount`` over the flat index
``((frame * 2 + polarity) * H + y) * W + x`` counts all frames at once.

Differences from SpikingJelly, only for input it rejects or mishandles:

* ``split_by='time'`` with an empty time window (or no events at all) gives an empty segment
  (``j_l == j_r``) and so an all-zero frame, where SpikingJelly raises ``IndexError``.
* ``integrate_events_by_fixed_duration`` gives at least one frame: a sample whose events all
  share one time stamp (or that has no events) gives ``T = 1``.
* Unknown ``split_by`` raises ``ValueError`` (SpikingJelly: ``NotImplementedError``); coordinates
  outside the sensor raise ``ValueError`` instead of landing in a neighbouring pixel or frame.

This module uses numpy only (no torch), so it can run in any worker or tool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = [
    "SPLIT_BY",
    "cal_fixed_duration_segment_index",
    "cal_fixed_frames_number_segment_index",
    "integrate_events_by_fixed_duration",
    "integrate_events_by_fixed_frames_number",
    "integrate_events_segment_to_frame",
    "integrate_events_segments_to_frames",
]

#: The values ``split_by`` accepts.
SPLIT_BY = ("number", "time")

_INT32_BINS = 2**31  # int32 holds the flat indices 0 .. 2**31 - 1


def _index_dtype(n_bins: int) -> type[np.signedinteger]:
    """Narrowest integer type that holds every flat index below ``n_bins``."""
    return np.int32 if n_bins <= _INT32_BINS else np.int64


def _check_size(H: int, W: int) -> tuple[int, int]:
    H, W = int(H), int(W)
    if H < 1 or W < 1:
        raise ValueError(f"frame size must be positive, got H={H}, W={W}")
    return H, W


def _check_range(name: str, v: np.ndarray, upper: int) -> None:
    """Raise ``ValueError`` unless every value of ``v`` lies in ``[0, upper)``."""
    hi = v.max()
    lo = v.min() if v.dtype.kind != "u" else 0
    if lo < 0 or hi >= upper:
        raise ValueError(f"event {name} coordinates must lie in [0, {upper}), found [{lo}, {hi}]")


def integrate_events_segments_to_frames(
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    H: int,
    W: int,
    j_l: np.ndarray,
    j_r: np.ndarray,
) -> np.ndarray:
    """Integrate consecutive index segments of one event stream into frames, in one pass.

    Frame ``i`` counts the events with indices in ``[j_l[i], j_r[i])``. Segments must be in order
    and must not overlap (``j_l[i] <= j_r[i] <= j_l[i + 1]``); events between two segments are
    counted in no frame.

    Parameters
    ----------
    x, y : numpy.ndarray
        Event coordinates, any integer type (``uint8``/``uint16`` are fastest), ``0 <= x < W``,
        ``0 <= y < H``.
    p : numpy.ndarray
        Event polarities; ``p == 0`` goes to channel 0, anything else to channel 1.
    H, W : int
        Frame height and width.
    j_l, j_r : numpy.ndarray
        Start (inclusive) and end (exclusive) event index of each frame, shape ``[T]``.

    Returns
    -------
    numpy.ndarray
        ``float32`` frames of shape ``[T, 2, H, W]``.

    Raises
    ------
    ValueError
        If the segments are out of order, overlap or leave ``[0, N]``, or a coordinate lies
        outside the frame.
    """
    H, W = _check_size(H, W)
    x, y, p = np.asarray(x), np.asarray(y), np.asarray(p)
    j_l = np.asarray(j_l, dtype=np.int64).reshape(-1)
    j_r = np.asarray(j_r, dtype=np.int64).reshape(-1)
    T = j_l.size
    N = len(x)
    if j_r.size != T:
        raise ValueError(f"j_l and j_r differ in length: {T} != {j_r.size}")
    if not (len(y) == len(p) == N):
        raise ValueError(f"x, y and p differ in length: {N}, {len(y)}, {len(p)}")
    hw = H * W
    total = T * 2 * hw
    if T == 0:
        return np.zeros((0, 2, H, W), dtype=np.float32)
    if j_l[0] < 0 or j_r[-1] > N or np.any(j_l > j_r) or np.any(j_r[:-1] > j_l[1:]):
        raise ValueError("segments must satisfy 0 <= j_l[i] <= j_r[i] <= j_l[i+1] and j_r[-1] <= len(x)")
    lo, hi = int(j_l[0]), int(j_r[-1])
    if lo == hi:
        return np.zeros((T, 2, H, W), dtype=np.float32)
    x, y, p = x[lo:hi], y[lo:hi], p[lo:hi]
    _check_range("x", x, W)
    _check_range("y", y, H)

    # Horner form of ((frame * 2 + polarity) * H + y) * W + x, built in place on one array:
    # every event of segment i starts as 2*i, every event in a gap between segments as 2*T,
    # whose flat indices land beyond ``total`` and are cut off after counting.
    dt = _index_dtype(total + 2 * hw)
    lengths = np.empty(2 * T - 1, dtype=np.int64)
    lengths[0::2] = j_r - j_l
    lengths[1::2] = j_l[1:] - j_r[:-1]
    first = np.full(2 * T - 1, 2 * T, dtype=dt)
    first[0::2] = np.arange(0, 2 * T, 2, dtype=dt)
    index = np.repeat(first, lengths)
    index += p if p.dtype == np.bool_ else p != 0
    index *= H
    np.add(index, y, out=index, dtype=dt, casting="unsafe")
    index *= W
    np.add(index, x, out=index, dtype=dt, casting="unsafe")
    counts = np.bincount(index, minlength=total)
    del index
    return counts[:total].reshape(T, 2, H, W).astype(np.float32)


def integrate_events_segment_to_frame(
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    H: int,
    W: int,
    j_l: int = 0,
    j_r: int | None = None,
) -> np.ndarray:
    """Integrate the events with indices in ``[j_l, j_r)`` into one two-channel frame.

    Parameters
    ----------
    x, y : numpy.ndarray
        Event coordinates, ``0 <= x < W``, ``0 <= y < H``.
    p : numpy.ndarray
        Event polarities; ``p == 0`` goes to channel 0, anything else to channel 1.
    H, W : int
        Frame height and width.
    j_l : int, optional
        First event index (inclusive), default 0. Python slice semantics (negative counts from
        the end).
    j_r : int or None, optional
        End event index (exclusive); ``None`` (default) means all events to the end.

    Returns
    -------
    numpy.ndarray
        ``float32`` frame of shape ``[2, H, W]``, indexed ``[c, y, x]``.
    """
    start, stop, _ = slice(j_l, j_r).indices(len(x))
    stop = max(start, stop)
    return integrate_events_segments_to_frames(x, y, p, H, W, [start], [stop])[0]


def cal_fixed_frames_number_segment_index(
    events_t: np.ndarray, split_by: str, frames_num: int
) -> tuple[np.ndarray, np.ndarray]:
    """Event index segments ``[j_l[i], j_r[i])`` that split a sample into ``frames_num`` frames.

    With ``N`` events and ``T = frames_num``:

    * ``'number'``: ``d = N // T``; frame ``i`` is ``[i*d, (i+1)*d)``, the last frame ends at ``N``.
    * ``'time'``: ``dt = (t[N-1] - t[0]) // T``; frame ``i`` holds the events with
      ``t[0] + i*dt <= t < t[0] + (i+1)*dt``, and the last frame also every later event
      (``j_r[-1] = N``). An empty window gives an empty segment (``j_l[i] == j_r[i]``), where
      SpikingJelly raises ``IndexError``.

    Parameters
    ----------
    events_t : numpy.ndarray
        Event time stamps, non-decreasing.
    split_by : {'number', 'time'}
        How to split.
    frames_num : int
        Number of frames ``T >= 1``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(j_l, j_r)``, each ``int64`` of shape ``[T]``.

    Raises
    ------
    ValueError
        If ``split_by`` is not one of ``'number'``, ``'time'`` or ``frames_num < 1``.
    """
    T = int(frames_num)
    if T < 1:
        raise ValueError(f"frames_num must be >= 1, got {frames_num}")
    t = np.asarray(events_t)
    N = t.size
    if split_by == "number":
        j_l = np.arange(T, dtype=np.int64) * (N // T)
        j_r = j_l + N // T
    elif split_by == "time":
        if N == 0:
            return np.zeros(T, dtype=np.int64), np.zeros(T, dtype=np.int64)
        if t.dtype.kind in "ub":
            t = t.astype(np.int64)
        step = (t[-1] - t[0]) // T
        j_l = np.searchsorted(t, t[0] + np.arange(T) * step, side="left").astype(np.int64)
        j_r = np.empty_like(j_l)
        j_r[:-1] = j_l[1:]
    else:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
    j_r[-1] = N
    return j_l, j_r


def cal_fixed_duration_segment_index(events_t: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Event index segments for frames of fixed ``duration`` (the ``T`` of a sample follows).

    With ``t' = t - t[0]``: ``T = ceil(t'[N-1] / duration)``, at least 1; frame ``i`` holds the
    events with ``i*duration <= t' < (i+1)*duration``, and the last frame everything from its
    start (so also ``t' = T*duration``).

    Parameters
    ----------
    events_t : numpy.ndarray
        Event time stamps, non-decreasing.
    duration : int or float
        Time span of one frame, ``> 0``, in the unit of ``events_t``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(j_l, j_r)``, each ``int64`` of shape ``[T]``. No events give ``T = 1`` and ``[0, 0)``.

    Raises
    ------
    ValueError
        If ``duration`` is not a positive finite number.
    """
    if not (isinstance(duration, (int, float, np.integer, np.floating)) and 0 < duration < math.inf):
        raise ValueError(f"duration must be a positive finite number, got {duration!r}")
    t = np.asarray(events_t)
    N = t.size
    if N == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    if t.dtype.kind in "ub":
        t = t.astype(np.int64)
    span = t[-1] - t[0]
    T = max(1, math.ceil(span / duration))  # same float expression as SpikingJelly
    k = np.arange(1, T, dtype=np.int64)
    if T == 1:
        bounds = k
    elif t.dtype.kind == "i" and float(duration).is_integer():
        # Integer times and duration: t' // D < k  <=>  t < t[0] + k*D, exactly.
        bounds = np.searchsorted(t, t[0] + k * int(duration), side="left")
    else:
        bounds = np.searchsorted((t - t[0]) // duration, k, side="left")
    j_l = np.zeros(T, dtype=np.int64)
    j_r = np.full(T, N, dtype=np.int64)
    j_l[1:] = bounds
    j_r[:-1] = bounds
    return j_l, j_r


def _columns(events: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(events[k]) for k in ("t", "x", "y", "p"))


def integrate_events_by_fixed_frames_number(
    events: Mapping[str, np.ndarray], split_by: str, frames_num: int, H: int, W: int
) -> np.ndarray:
    """Integrate one sample's events into a fixed number of frames.

    See :func:`cal_fixed_frames_number_segment_index` for how events are split.

    Parameters
    ----------
    events : dict
        Columns ``'t'``, ``'x'``, ``'y'``, ``'p'`` (numpy arrays of equal length, ``t``
        non-decreasing).
    split_by : {'number', 'time'}
        Split by event count or by time.
    frames_num : int
        Number of frames ``T >= 1``.
    H, W : int
        Frame height and width.

    Returns
    -------
    numpy.ndarray
        ``float32`` frames of shape ``[T, 2, H, W]`` (all zero for a sample with no events).
    """
    if split_by == "number" and "t" not in events:  # splitting by count needs only the length
        x, y, p = (np.asarray(events[k]) for k in ("x", "y", "p"))
        t = np.broadcast_to(np.int64(0), x.shape)
    else:
        t, x, y, p = _columns(events)
    j_l, j_r = cal_fixed_frames_number_segment_index(t, split_by, frames_num)
    return integrate_events_segments_to_frames(x, y, p, H, W, j_l, j_r)


def integrate_events_by_fixed_duration(events: Mapping[str, np.ndarray], duration: float, H: int, W: int) -> np.ndarray:
    """Integrate one sample's events into frames of fixed duration (variable frame count).

    See :func:`cal_fixed_duration_segment_index` for how events are split.

    Parameters
    ----------
    events : dict
        Columns ``'t'``, ``'x'``, ``'y'``, ``'p'`` (numpy arrays of equal length, ``t``
        non-decreasing).
    duration : int or float
        Time span of one frame, ``> 0``, in the unit of ``t`` (µs).
    H, W : int
        Frame height and width.

    Returns
    -------
    numpy.ndarray
        ``float32`` frames of shape ``[T, 2, H, W]``, ``T = max(1, ceil((t[-1] - t[0]) / duration))``
        (one zero frame for a sample with no events).
    """
    t, x, y, p = _columns(events)
    j_l, j_r = cal_fixed_duration_segment_index(t, duration)
    return integrate_events_segments_to_frames(x, y, p, H, W, j_l, j_r)
