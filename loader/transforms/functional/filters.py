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

_TAG_BITS = 3  # Denoise: tag 0 = an event, 1..4 = a neighbour query


def _grid(events: Mapping[str, np.ndarray], who: str, with_y: bool) -> tuple[np.ndarray, int, int]:
    """``(pixel, width, height)``: pixel ``x * height + y`` on tonic's grid ``max(x)+1`` × ``max(y)+1``."""
    x = events["x"].astype(np.int64, copy=False)
    y = events["y"].astype(np.int64, copy=False) if with_y else np.zeros(1, dtype=np.int64)
    if x.min() < 0 or y.min() < 0:
        raise ConfigurationError(f"{who}: negative x or y coordinates")
    width, height = int(x.max()) + 1, int(y.max()) + 1
    return (x * height + y if with_y else x), width, height


def _key_bits(n_pixels: int, n: int, extra: int) -> int:
    """Bits of the event position in a packed key ``pixel << bits | position``; checks the key fits 63 bits."""
    bits = max(1, (n - 1).bit_length())
    if (n_pixels - 1).bit_length() + bits + extra > 63:
        raise ConfigurationError(f"{n} events on {n_pixels} pixels do not fit the 63-bit sort keys")
    return bits


def _memory_plus(t: np.ndarray, offset: float) -> np.ndarray:
    """``t + offset`` as tonic stores it in its float64 ``timestamp_memory``."""
    if isinstance(offset, (int, np.integer)) and t.dtype.kind in "iu":
        return (t.astype(np.int64) + int(offset)).astype(np.float64)
    return t.astype(np.float64) + offset


def denoise(events: Mapping[str, np.ndarray], filter_time: float) -> Events:
    """Keep the events with a recent event at one of the 4 neighbouring pixels (tonic's ``denoise_numpy``).

    An event at ``(x, y, t)`` is kept when, for one of the neighbours ``(x±1, y)``, ``(x, y±1)``
    inside the grid ``max(x) + 1`` × ``max(y) + 1``, ``m + filter_time > t`` where ``m`` is the time
    of the neighbour's latest event earlier in the array, or 0 when it has none.

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
    bits = _key_bits(width * height, n, _TAG_BITS)
    x = events["x"]
    y = events["y"]
    position = np.arange(n, dtype=np.int64)
    parts = [((pixel << bits) | position) << _TAG_BITS]
    for tag, (valid, step) in enumerate(
        ((x > 0, -height), (x < width - 1, height), (y > 0, -1), (y < height - 1, 1)), start=1
    ):
        at = np.flatnonzero(valid)
        parts.append((((pixel[at] + step) << bits) | at) << _TAG_BITS | tag)
    keys = np.sort(np.concatenate(parts))
    is_event = (keys & ((1 << _TAG_BITS) - 1)) == 0
    last = np.where(is_event, np.arange(len(keys)), -1)
    np.maximum.accumulate(last, out=last)
    query = np.flatnonzero(~is_event)
    before = last[query]
    qkey = keys[query] >> _TAG_BITS
    found = before >= 0
    ekey = keys[np.where(found, before, 0)] >> _TAG_BITS
    found &= (ekey >> bits) == (qkey >> bits)  # the latest earlier event is at the queried pixel
    mask = (1 << bits) - 1
    owner = qkey & mask
    t = events["t"]
    memory = np.where(found, _memory_plus(t[ekey & mask], filter_time), float(filter_time))
    keep = np.zeros(n, dtype=bool)
    keep[owner[memory > t[owner].astype(np.float64)]] = True
    return take(events, np.flatnonzero(keep))


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
    bits = _key_bits(width * height, n, 0)
    order = np.sort((pixel << bits) | np.arange(n, dtype=np.int64))
    same = (order[1:] >> bits) == (order[:-1] >> bits)
    order &= (1 << bits) - 1
    t_sorted = events["t"][order].astype(np.float64)
    previous = np.zeros(n, dtype=np.float64) - delta  # tonic: np.zeros(...) - refractory_period
    previous[1:][same] = t_sorted[:-1][same]
    keep = np.empty(n, dtype=bool)
    keep[order] = t_sorted - previous > delta
    return take(events, np.flatnonzero(keep))
