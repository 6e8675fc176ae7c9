"""Temporal event operations: jitter, skew, dropping a time window."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from loader.transforms.functional.columns import Events, drop, keep, n_events, require, take, time_order
from loader.transforms.functional.gaussian import rounded_normal

__all__ = ["drop_time_window", "time_jitter", "time_skew"]


def time_jitter(
    events: Mapping[str, np.ndarray],
    std: float,
    rng: np.random.Generator,
    clip_negative: bool = True,
    sort: bool = True,
) -> Events:
    """``t → t + round(N(0, std))`` per event (:func:`~loader.transforms.functional.gaussian.rounded_normal`).

    Parameters
    ----------
    clip_negative : bool
        Drop events whose new time is negative.
    sort : bool
        Reorder the events by their new times (stable), as frame integration needs.
    """
    require(events, "t", "TimeJitter")
    t = events["t"]
    shifted = (t + rounded_normal(rng, n_events(events), std)).astype(t.dtype, copy=False)
    out = {**events, "t": shifted}
    if clip_negative and len(shifted) and shifted.min() < 0:
        out = drop(out, np.flatnonzero(shifted < 0))
    if sort:
        out = take(out, time_order(out["t"]))
    return out


def time_skew(events: Mapping[str, np.ndarray], coefficient: float, offset: float = 0.0) -> Events:
    """``t → trunc(t * coefficient + offset)`` in the column's type (tonic's ``time_skew_numpy``)."""
    require(events, "t", "TimeSkew")
    t = events["t"]
    return {**events, "t": (t * float(coefficient) + float(offset)).astype(t.dtype)}


def drop_time_window(events: Mapping[str, np.ndarray], start: float, stop: float) -> Events:
    """Drop the events with ``start <= t <= stop`` (both ends included, as tonic)."""
    require(events, "t", "DropByTime")
    t = events["t"]
    return keep(events, (t < start) | (t > stop))
