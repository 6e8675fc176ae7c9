"""Helpers on event dicts (columns ``t``, ``x``, ``y``, ``p`` of equal length; 1-D sets have ``t``, ``x``).

Transforms never write into the arrays they are given: a result is a new dict whose changed
columns are new arrays and whose unchanged columns may be the input's own arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from loader.errors import ConfigurationError

Events = dict[str, np.ndarray]

__all__ = ["Events", "coord_dtype_for", "drop", "hw", "keep", "n_events", "require", "take", "time_order"]


def n_events(events: Mapping[str, np.ndarray]) -> int:
    """Number of events (length of ``t``, else of ``x``)."""
    col = events["t"] if "t" in events else events["x"]
    return int(len(col))


def require(events: Mapping[str, np.ndarray], columns: str, who: str) -> None:
    """Raise :class:`ConfigurationError` naming ``who`` when a column in ``columns`` (e.g. ``"xy"``) is missing."""
    missing = [c for c in columns if c not in events]
    if missing:
        have = ", ".join(events) or "none"
        raise ConfigurationError(
            f"{who} needs the event column(s) {', '.join(missing)}; these events have {have} "
            "(a 2-D transform on 1-D events?)"
        )


def take(events: Mapping[str, np.ndarray], index: np.ndarray) -> Events:
    """Events at the integer positions ``index``, in that order, every column."""
    return {k: v[index] for k, v in events.items()}


def keep(events: Mapping[str, np.ndarray], mask: np.ndarray) -> Events:
    """Events where the boolean ``mask`` is true, in their order (one ``flatnonzero``, then a take per column)."""
    return take(events, np.flatnonzero(mask))


def drop(events: Mapping[str, np.ndarray], index: np.ndarray) -> Events:
    """Events without those at the ascending positions ``index``; a few are cut out by copying the runs between them."""
    if len(index) == 0:
        return dict(events)
    if len(index) > 256:
        mask = np.ones(n_events(events), dtype=bool)
        mask[index] = False
        return keep(events, mask)
    starts = np.concatenate([[0], index + 1]).tolist()
    stops = index.tolist() + [n_events(events)]
    return {k: np.concatenate([v[a:b] for a, b in zip(starts, stops, strict=True)]) for k, v in events.items()}


def hw(sensor_size: Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` of a sensor size ``(H, W)``; a 1-D size ``(W,)`` gives ``(1, W)``."""
    size = tuple(int(s) for s in sensor_size)
    if len(size) == 1:
        return 1, size[0]
    if len(size) != 2 or min(size) < 1:
        raise ConfigurationError(f"sensor_size must be (H, W) with positive sizes, got {tuple(sensor_size)}")
    return size[0], size[1]


def coord_dtype_for(dtype: np.dtype, low: int, high: int) -> np.dtype:
    """``dtype`` if it holds ``[low, high]``, else the smallest integer type that holds it and ``dtype``'s range."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return dtype
    return np.result_type(dtype, np.min_scalar_type(low), np.min_scalar_type(high))


def time_order(t: np.ndarray) -> np.ndarray:
    """Stable order of the time stamps ``t``: equal times keep their array order.

    Packs ``(t - min(t), position)`` into one int64 key and sorts the values (numpy's SIMD sort,
    several times faster than a stable ``argsort``); falls back to ``argsort(kind="stable")`` when
    the key does not fit 63 bits or ``t`` is not an integer column.
    """
    n = len(t)
    if n < 2:
        return np.arange(n)
    if t.dtype.kind in "iu":
        lo, hi = int(t.min()), int(t.max())
        bits = (n - 1).bit_length()
        if (hi - lo).bit_length() + bits <= 63:
            key = (t.astype(np.int64) - lo) << bits
            key |= np.arange(n, dtype=np.int64)
            key.sort()
            return key & ((1 << bits) - 1)
    return np.argsort(t, kind="stable")
