"""Random removal and addition of events: EventDrop's per-event drop, uniform noise events."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from loader.transforms.functional.columns import Events, keep, n_events, require, take, time_order

__all__ = ["drop_event", "uniform_noise"]

_U16 = 1 << 16
_U32 = 1 << 32


def drop_event(events: Mapping[str, np.ndarray], p: float, rng: np.random.Generator) -> Events:
    """Drop each event independently with probability ``p`` (a binomial share is kept).

    One ``uint16`` ``u`` per event: dropped if ``u < a`` with ``a = floor(p * 65536)``; the events
    with ``u == a`` draw a ``uint32`` ``v`` and are dropped if ``v < round((p * 65536 - a) * 2**32)``.
    So ``P(drop) = p`` to within 2**-48, at the cost of 16 random bits per event.
    """
    n = n_events(events)
    scaled = float(p) * _U16
    whole = int(scaled)
    if scaled <= 0:
        return dict(events)
    if whole >= _U16:
        return take(events, np.zeros(0, dtype=np.intp))
    u = rng.integers(0, _U16, size=n, dtype=np.uint16)
    keep_mask = u >= whole
    edge = np.flatnonzero(u == whole)
    part = round((scaled - whole) * _U32)
    if len(edge) and part:
        keep_mask[edge] = rng.integers(0, _U32, size=len(edge), dtype=np.uint32) >= min(part, _U32 - 1)
    return keep(events, keep_mask)


def uniform_noise(
    events: Mapping[str, np.ndarray], n: int, height: int, width: int, rng: np.random.Generator
) -> Events:
    """Add ``n`` events drawn uniformly: ``t`` in ``[min(t), max(t)]``, ``x < width``, ``y < height``, ``p`` in {0, 1}.

    Columns are drawn in the order ``t``, ``x``, ``y``, ``p`` (the ones present). The result is
    sorted by time (stable: an original event comes before a noise event at the same time). No
    events are added to an empty sample.
    """
    require(events, "tx", "UniformNoise")
    if n_events(events) == 0 or n <= 0:
        return dict(events)
    t = events["t"]
    bounds = {"t": (int(t.min()), int(t.max()) + 1), "x": (0, width), "y": (0, height), "p": (0, 2)}
    noise = {}
    for name in ("t", "x", "y", "p"):
        if name in events:
            lo, hi = bounds[name]
            noise[name] = rng.integers(lo, hi, size=n).astype(events[name].dtype)
    merged = {k: np.concatenate([events[k], noise[k]]) for k in events if k in noise}
    return take(merged, time_order(merged["t"]))
