"""Denoise and refractory period: tonic 1.7.0's ``denoise_numpy`` / ``refractory_period_numpy``, vectorised.

Both give exactly tonic's result, quirks included (``docs/AUGMENT.md`` states them): times in the
time stamps' unit, arithmetic in float64 as tonic's ``timestamp_memory`` does it, events taken in
array order, pixels on a grid of ``max(x) + 1`` × ``max(y) + 1``. Instead of tonic's loop over
events, one sort of ``(pixel, position)`` keys finds, for each event, the previous event of a pixel.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from loader.errors import ConfigurationError
from loader.transforms.functional.columns import Events, n_events, require, take

__all__ = ["denoise", "refractory_period"]

def _grid(events: Mapping[str, np.ndarray], who: str, with_y: bool) -> tuple[np.ndarray, int, int]:
    """``(pixel, width, height)``: pixel ``x * height + y`` on tonic's grid ``max(x)+1`` × ``max(y)+1``."""
    x, y = events["x"], events["y"] if with_y else np.zeros(1, dtype=np.int64)
    if int(x.min()) < 0 or int(y.min()) < 0:
        raise ConfigurationError(f"{who}: negative x or y coordinates")
    width, height = int(x.max()) + 1, int(y.max()) + 1
    pixel = x.astype(np.int64)
    if with_y:
        pixel *= height
        pixel += y
    return pixel, width, height


def _key_bits(n_pixels: int, n: int, extra: int) -> int:
    """Bits of the event position in a packed key ``pixel << bits | position``; checks the key fits 63 bits."""
    bits = max(1, (n - 1).bit_length())
    if (n_pixels - 1).bit_length() + bits + extra > 63:
        raise ConfigurationError(f"{n} events on {n_pixels} pixels do not fit the 63-bit sort keys")
    return bits


def _sorted_keys(pixel: np.ndarray, n_pixels: int, n: int, extra: int) -> tuple[np.ndarray, int]:
    """Keys ``pixel << bits | position``, sorted (events by pixel, then in array order), and ``bits``."""
    bits = _key_bits(n_pixels, n, extra)
    keys = (pixel << bits) | np.arange(n, dtype=np.int64)
    keys.sort()
    return keys, bits


def _memory_plus(t: np.ndarray, offset: float) -> np.ndarray:
    """``t + offset`` as tonic stores it in its float64 ``timestamp_memory``."""
    if isinstance(offset, (int, np.integer)) and t.dtype.kind in "iu":
        return (t.astype(np.int64) + int(offset)).astype(np.float64)
    return t.astype(np.float64) + offset


def _exact_in_int64(t: np.ndarray, offset: float) -> bool:
    """Whether tonic's float64 arithmetic on ``t`` and ``t + offset`` equals int64 arithmetic (all below 2**53)."""
    if not isinstance(offset, (int, np.integer)) or t.dtype.kind not in "iu" or len(t) == 0:
        return False
    return max(abs(int(t.min())), abs(int(t.max()))) + abs(int(offset)) < 2**53


def denoise(events: Mapping[str, np.ndarray], filter_time: float) -> Events:
    """Keep the events with a recent event at one of the 4 neighbouring pixels (tonic's ``denoise_numpy``).

    An event at ``(x, y, t)`` is kept when, for one of the neighbours ``(x±1, y)``, ``(x, y±1)``
    inside the grid ``max(x) + 1`` × ``max(y) + 1``, ``m + filter_time > t`` where ``m`` is the time
    of the neighbour's latest event earlier in the array, or 0 when it has none.

    How: events sorted by ``(pixel, position)``; for each axis, one merge of that order with itself
    shifted by one pixel along the axis finds, for every event, the latest earlier event of the
    pixel after it (``x + 1`` or ``y + 1``) and, for the shifted copy, of the pixel before it.

    Parameters
    ----------
    events : dict
        Columns ``t``, ``x``, ``y`` (and any others).
    filter_time : float
        In the time stamps' unit (µs).

    Returns
    -------
    dict
        The kept events in their order.
    """
    require(events, "txy", "Denoise")
    n = n_events(events)
    if n == 0:
        return take(events, np.zeros(0, dtype=np.intp))
    pixel, width, height = _grid(events, "Denoise", with_y=True)
    keys, bits = _sorted_keys(pixel, width * height + height, n, 1)  # "sorted order" below
    order = keys & ((1 << bits) - 1)
    pix = keys >> bits
    t = events["t"][order]
    if _exact_in_int64(t, filter_time):  # the same comparisons as tonic's float64 ones, without conversions
        t = t.astype(np.int64, copy=False)
        threshold = t - int(filter_time)  # neighbour memory m + ft > t  <=>  m > t - ft (exact in int64)
    else:
        t = t.astype(np.float64)
        threshold = None
    keep = np.zeros(n, dtype=bool)
    rank = np.arange(n)
    x_pos, y_pos = events["x"][order], events["y"][order]
    doubled = keys << 1  # key * 2 + 0: an event; (key - step) * 2 + 1: the same event seen one pixel back
    merged = np.empty(2 * n, dtype=np.int64)
    for step, after_ok, before_ok in (
        (height, x_pos < width - 1, x_pos > 0),
        (1, y_pos < height - 1, y_pos > 0),
    ):
        merged[:n] = doubled
        np.subtract(doubled, (step << (bits + 1)) - 1, out=merged[n:])
        merged.sort(kind="stable")  # two sorted runs: timsort merges them in one pass
        odd = (merged & 1).astype(bool)
        for at, want, ok in (
            # an event: the latest shifted element before it = the latest earlier event at pixel + step
            (np.flatnonzero(~odd), pix + step, after_ok),
            # a shifted element (an event at pixel, seen at pixel - step): latest earlier event at pixel - step
            (np.flatnonzero(odd), pix - step, before_ok),
        ):
            at -= rank  # elements of the other kind before it = sorted-order number of that event + 1
            at -= 1
            first = int(np.searchsorted(at, 0))  # `at` never decreases: only a head has none before it
            at[:first] = 0
            same = pix[at] == want
            same[:first] = False
            # a neighbour that never fired has memory 0 + filter_time (tonic's initial grid)
            memory = t[at]
            memory *= same
            recent = memory > threshold if threshold is not None else _memory_plus(memory, filter_time) > t
            recent &= ok
            keep |= recent
    kept = np.zeros(n, dtype=bool)
    kept[order] = keep
    return take(events, np.flatnonzero(kept))


def refractory_period(events: Mapping[str, np.ndarray], delta: float) -> Events:
    """Drop events within ``delta`` of their pixel's previous event (tonic's ``refractory_period_numpy``).

    An event is kept iff ``float(t) - m > delta``, where ``m`` is the time of the previous event of
    the same pixel in array order, kept or dropped, or ``-delta`` when there is none (so an event
    at ``t = 0`` with no predecessor is dropped). 1-D events (no ``y``) use ``x`` as the pixel.

    Parameters
    ----------
    events : dict
        Columns ``t``, ``x`` and, for 2-D events, ``y``.
    delta : float
        Refractory period in the time stamps' unit (µs).

    Returns
    -------
    dict
        The kept events in their order.
    """
    require(events, "tx", "RefractoryPeriod")
    n = n_events(events)
    if n == 0:
        return take(events, np.zeros(0, dtype=np.intp))
    pixel, width, height = _grid(events, "RefractoryPeriod", with_y="y" in events)
    order, bits = _sorted_keys(pixel, width * height, n, 0)
    same = (order[1:] >> bits) == (order[:-1] >> bits)
    order &= (1 << bits) - 1
    t_sorted = events["t"][order].astype(np.float64)
    previous = np.zeros(n, dtype=np.float64) - delta  # tonic: np.zeros(...) - refractory_period
    previous[1:][same] = t_sorted[:-1][same]
    keep = np.empty(n, dtype=bool)
    keep[order] = t_sorted - previous > delta
    return take(events, np.flatnonzero(keep))
