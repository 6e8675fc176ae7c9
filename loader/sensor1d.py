"""1-D sensors (SHD, SSC): frames ``[T, W]`` as SpikingJelly 2.0.0's SHD builders make them, and the dataset item.

A 1-D sample has events ``t`` (µs, int64, non-decreasing) and ``x`` (the unit, ``0 <= x < W``);
no ``y`` and no ``p``. The three frame settings give, value for value, what
``spikingjelly.datasets.shd`` gives for the same sample (as ``float32`` instead of ``float64``),
including its float16 arithmetic. The h5 files store times as float16 seconds; the shards store
``round(seconds * 1e6)`` µs, from which every float16 time of 2**-9 s (1.95 ms) and later is
recovered exactly (``float16(t / 1e6)``), and earlier ones to within one float16 step.

* ``split_by='number'``: ``d = N // T``; frame ``i`` counts events ``[i*d, (i+1)*d)``, the last
  one ``[(T-1)*d, N)``.
* ``split_by='time'``: with ``f`` the float16 seconds, ``dt = (f[-1] - f[0]) / T`` and window
  ``i`` is ``[f[0] + i*dt, f[0] + i*dt + dt)``, every step rounded to float16 as SpikingJelly's
  code does; frame ``i`` counts the events from the first to the last inside window ``i``, the
  last frame everything from the first event of its window on. Rounding can make two windows
  share or skip an event, exactly as there. An empty window gives an empty frame where
  SpikingJelly raises ``IndexError``.
* ``duration=D`` (µs): SpikingJelly's SHD duration is in ms, so ``D / 1000`` ms here (the
  façade classes take SpikingJelly's ms). ``m = float16(1000 * f)``, ``m -= m[0]``,
  ``T = ceil(m[-1] / (D/1000))`` in float16, at least 1 (SpikingJelly raises for ``T = 0``: one
  event, or all at one time); frame ``i < T-1`` counts the events with
  ``i <= m // (D/1000) < i + 1``, the last frame every event from there on.

Everything here is numpy only (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "STRUCTURED_DTYPE_1D",
    "integrate_1d",
    "integrate_1d_by_fixed_duration",
    "integrate_1d_by_fixed_frames_number",
    "make_item_1d",
    "seconds_float16",
    "segments_to_frames_1d",
    "time_segment_index_1d",
]

#: What ``data_type="structured"`` yields for a 1-D set: tonic 1.7.0's ``SHD``/``SSC`` record
#: (``t``, ``x``, ``p`` as int64, ``p`` always 1); ``t`` is our µs (tonic truncates, we round).
STRUCTURED_DTYPE_1D = np.dtype([("t", "<i8"), ("x", "<i8"), ("p", "<i8")])


def seconds_float16(t_us: np.ndarray) -> np.ndarray:
    """µs time stamps as the float16 seconds of the h5 files (exact from 1.95 ms on)."""
    return (np.asarray(t_us, dtype=np.float64) / 1e6).astype(np.float16)


def _check_units(x: np.ndarray, W: int) -> None:
    if x.size and ((x.dtype.kind != "u" and int(x.min()) < 0) or int(x.max()) >= W):
        raise ValueError(f"event units must lie in [0, {W}), found [{int(x.min())}, {int(x.max())}]")


def segments_to_frames_1d(x: np.ndarray, W: int, j_l: np.ndarray, j_r: np.ndarray) -> np.ndarray:
    """Frame ``i`` counts the units of events ``[j_l[i], j_r[i])`` (segments may overlap or leave gaps).

    Parameters
    ----------
    x : numpy.ndarray
        Event units, ``0 <= x < W``.
    W : int
        Number of units.
    j_l, j_r : numpy.ndarray
        Start (inclusive) and end (exclusive) event index of each frame, ``[T]``; an end before its
        start is an empty frame (as a Python slice).

    Returns
    -------
    numpy.ndarray
        ``float32`` ``[T, W]``.
    """
    x = np.asarray(x)
    j_l = np.asarray(j_l, dtype=np.int64).reshape(-1)
    j_r = np.asarray(j_r, dtype=np.int64).reshape(-1)
    T = j_l.size
    if j_r.size != T:
        raise ValueError(f"j_l and j_r differ in length: {T} != {j_r.size}")
    if T and (j_l.min() < 0 or j_r.max() > x.size):
        raise ValueError(f"segments must lie in [0, {x.size}]")
    lengths = np.maximum(j_r - j_l, 0)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros((T, W), dtype=np.float32)
    frame = np.repeat(np.arange(T, dtype=np.int64), lengths)
    if total == x.size and np.array_equal(j_l[1:], j_r[:-1]) and j_l[0] == 0:  # one contiguous run: no gather
        units = x
    else:
        starts = np.repeat(j_l - (np.cumsum(lengths) - lengths), lengths)
        units = x[np.arange(total, dtype=np.int64) + starts]
    _check_units(units, W)
    frame *= W
    frame += units
    return np.bincount(frame, minlength=T * W).reshape(T, W).astype(np.float32)


def time_segment_index_1d(t_us: np.ndarray, frames_num: int) -> tuple[np.ndarray, np.ndarray]:
    """``(j_l, j_r)`` of SpikingJelly's SHD ``split_by='time'`` (float16 windows; see the module docstring)."""
    T = int(frames_num)
    n = len(t_us)
    if n == 0:
        return np.zeros(T, np.int64), np.zeros(T, np.int64)
    f = seconds_float16(t_us)
    dt = (f[-1] - f[0]) / T  # float16, as SpikingJelly computes it
    t_l = np.arange(T, dtype=np.float16) * dt + f[0]  # float16 steps: dt * i + t[0]
    t_r = t_l + dt
    j_l = np.searchsorted(f, t_l, side="left").astype(np.int64)
    j_r = np.searchsorted(f, t_r, side="left").astype(np.int64)
    j_r[-1] = n
    return j_l, j_r


def duration_segment_index_1d(t_us: np.ndarray, duration_us: float) -> tuple[np.ndarray, np.ndarray]:
    """``(j_l, j_r)`` of SpikingJelly's SHD fixed-duration frames (float16 ms; see the module docstring)."""
    if not (isinstance(duration_us, (int, float, np.integer, np.floating)) and 0 < duration_us < math.inf):
        raise ValueError(f"duration must be a positive finite number (µs), got {duration_us!r}")
    n = len(t_us)
    if n == 0:
        return np.zeros(1, np.int64), np.zeros(1, np.int64)
    d_ms: float | int = int(duration_us) // 1000 if float(duration_us) % 1000 == 0 else float(duration_us) / 1000
    m = 1000 * seconds_float16(t_us)  # float16 ms, as SpikingJelly computes them
    m = m - m[0]
    last = m[-1] / d_ms
    if not np.isfinite(last):
        raise ValueError(f"duration {duration_us} µs is too short: the float16 frame count overflows")
    T = max(1, math.ceil(last))
    index = m // d_ms
    bounds = np.searchsorted(index, np.arange(1, T, dtype=np.float64), side="left").astype(np.int64)
    j_l = np.zeros(T, np.int64)
    j_r = np.full(T, n, np.int64)
    j_l[1:] = bounds
    j_r[:-1] = bounds
    return j_l, j_r


def integrate_1d_by_fixed_frames_number(
    events: Mapping[str, np.ndarray], split_by: str, frames_num: int, W: int
) -> np.ndarray:
    """``[T, W]`` frames of one 1-D sample split by ``'number'`` or ``'time'`` (SpikingJelly's SHD builder).

    Parameters
    ----------
    events : dict
        ``'t'`` (µs, non-decreasing; not needed for ``'number'``) and ``'x'`` (units).
    split_by : {'number', 'time'}
    frames_num : int
        ``T >= 1``.
    W : int
        Number of units (700 for SHD and SSC).

    Returns
    -------
    numpy.ndarray
        ``float32`` ``[T, W]``.
    """
    T = int(frames_num)
    if T < 1:
        raise ValueError(f"frames_num must be >= 1, got {frames_num}")
    x = np.asarray(events["x"])
    n = x.size
    if split_by == "number":
        j_l = np.arange(T, dtype=np.int64) * (n // T)
        j_r = j_l + n // T
        j_r[-1] = n
    elif split_by == "time":
        j_l, j_r = time_segment_index_1d(np.asarray(events["t"]), T)
    else:
        raise ValueError(f"split_by must be 'number' or 'time', got {split_by!r}")
    return segments_to_frames_1d(x, W, j_l, j_r)


def integrate_1d_by_fixed_duration(events: Mapping[str, np.ndarray], duration: float, W: int) -> np.ndarray:
    """``[T, W]`` frames of ``duration`` µs each (SpikingJelly's SHD builder with ``duration / 1000`` ms).

    Parameters
    ----------
    events : dict
        ``'t'`` (µs, non-decreasing) and ``'x'`` (units).
    duration : int or float
        Frame length in µs, ``> 0``.
    W : int
        Number of units.

    Returns
    -------
    numpy.ndarray
        ``float32`` ``[T, W]``, ``T >= 1``.
    """
    j_l, j_r = duration_segment_index_1d(np.asarray(events["t"]), duration)
    return segments_to_frames_1d(np.asarray(events["x"]), W, j_l, j_r)


def integrate_1d(
    events: Mapping[str, np.ndarray],
    W: int,
    frames_number: int | None = None,
    split_by: str | None = None,
    duration: float | None = None,
    custom_integrate_function: Callable[..., Any] | None = None,
) -> Any:
    """Frames of one 1-D sample by whichever setting is given (the dispatch the loader calls).

    ``custom_integrate_function(events, None, W)`` (no height: SpikingJelly's ``get_H_W()`` of
    SHD is ``(None, 700)``) wins over ``duration``, which wins over ``frames_number``/``split_by``.
    """
    if custom_integrate_function is not None:
        return custom_integrate_function(events, None, W)
    if duration is not None:
        return integrate_1d_by_fixed_duration(events, duration, W)
    if frames_number is None or split_by is None:
        raise ValueError("frames need frames_number and split_by, duration, or a custom_integrate_function")
    return integrate_1d_by_fixed_frames_number(events, split_by, frames_number, W)


def make_item_1d(
    events: dict[str, np.ndarray],
    W: int,
    data_type: str,
    transform: Callable[..., Any] | None = None,
    frames_number: int | None = None,
    split_by: str | None = None,
    duration: float | None = None,
    custom_integrate_function: Callable[..., Any] | None = None,
) -> Any:
    """What ``EventShardDataset`` yields as ``x`` for a 1-D sample: events, tonic records or frames.

    ``"event"``: ``{"t", "x"}`` after ``transform``; ``"structured"``: :data:`STRUCTURED_DTYPE_1D`
    records, then ``transform``; ``"frame"``: ``transform`` on the events, then :func:`integrate_1d`.
    """
    if data_type == "structured":
        rec = np.empty(len(events["x"]), dtype=STRUCTURED_DTYPE_1D)
        rec["t"], rec["x"], rec["p"] = events["t"], events["x"], 1
        return transform(rec) if transform is not None else rec
    if transform is not None:
        events = transform(events)
    if data_type == "event":
        return events
    return integrate_1d(events, W, frames_number, split_by, duration, custom_integrate_function)
