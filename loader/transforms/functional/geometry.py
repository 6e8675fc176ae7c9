"""Spatial event operations with their formulas (``docs/AUGMENT.md``): flips, crops, boxes, scaling, jitter."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from loader.errors import ConfigurationError
from loader.transforms.functional.columns import Events, coord_dtype_for, keep, n_events, require
from loader.transforms.functional.gaussian import rounded_normal

__all__ = ["crop", "downsample", "drop_box", "flip_lr", "flip_polarity", "flip_ud", "spatial_jitter"]


def _check_below(v: np.ndarray, extent: int, name: str, who: str) -> None:
    if len(v) and int(v.max()) >= extent:
        raise ConfigurationError(f"{who}: {name} = {int(v.max())} is outside the sensor ({name} < {extent})")


def _mirror(v: np.ndarray, extent: int, name: str, who: str) -> np.ndarray:
    _check_below(v, extent, name, who)
    return np.subtract(np.asarray(extent - 1, dtype=v.dtype), v)


def flip_lr(events: Mapping[str, np.ndarray], width: int) -> Events:
    """``x → width - 1 - x``."""
    require(events, "x", "RandomFlipLR")
    return {**events, "x": _mirror(events["x"], int(width), "x", "RandomFlipLR")}


def flip_ud(events: Mapping[str, np.ndarray], height: int) -> Events:
    """``y → height - 1 - y``."""
    require(events, "y", "RandomFlipUD")
    return {**events, "y": _mirror(events["y"], int(height), "y", "RandomFlipUD")}


def flip_polarity(events: Mapping[str, np.ndarray]) -> Events:
    """``p → 1`` where ``p == 0``, else ``0`` (the frames' channel 1 is ``p != 0``)."""
    require(events, "p", "RandomFlipPolarity")
    p = events["p"]
    return {**events, "p": (p == 0).astype(p.dtype)}


def _between(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``lo <= v < hi`` for an integer column, with bounds outside its type's range allowed."""
    if v.dtype.kind in "ui":
        info = np.iinfo(v.dtype)
        lo, hi = max(lo, int(info.min)), min(hi, int(info.max) + 1)
        if lo >= hi:
            return np.zeros(len(v), dtype=bool)
        below = v < hi if hi <= info.max else np.ones(len(v), dtype=bool)
        return (v >= lo) & below if lo > info.min else below
    return (v >= lo) & (v < hi)


def _shift(v: np.ndarray, offset: int, extent: int) -> np.ndarray:
    """``v - offset`` in a type that holds ``0 … extent - 1``."""
    v = v.astype(coord_dtype_for(v.dtype, 0, extent - 1), copy=False)
    return v - offset if offset >= 0 else v + (-offset)


def crop(events: Mapping[str, np.ndarray], top: int, left: int, height: int, width: int) -> Events:
    """Keep the events in the box ``top <= y < top + height``, ``left <= x < left + width``; shift it to 0.

    ``x → x - left``, ``y → y - top``. ``top``/``left`` may be negative (a box larger than the sensor:
    the events move right/down, as tonic's ``CenterCrop`` pads).
    """
    require(events, "xy", "crop")
    inside = _between(events["x"], left, left + width) & _between(events["y"], top, top + height)
    out = keep(events, inside)
    out["x"] = _shift(out["x"], left, width)
    out["y"] = _shift(out["y"], top, height)
    return out


def drop_box(events: Mapping[str, np.ndarray], top: int, left: int, height: int, width: int) -> Events:
    """Drop the events in the box ``top <= y < top + height``, ``left <= x < left + width``."""
    require(events, "xy", "DropByArea")
    inside = _between(events["x"], left, left + width) & _between(events["y"], top, top + height)
    return keep(events, ~inside)


def downsample(
    events: Mapping[str, np.ndarray], factor_y: float, factor_x: float, time_factor: float = 1.0
) -> Events:
    """``x → trunc(x * factor_x)``, ``y → trunc(y * factor_y)``, ``t → trunc(t * time_factor)`` (tonic's casts).

    A factor of exactly 1 leaves its column as it is; 1-D events (no ``y``) scale ``x`` and ``t``.
    """
    require(events, "x", "Downsample")
    out = dict(events)
    for name, factor in (("x", factor_x), ("y", factor_y)):
        if name in events and factor != 1:
            v = events[name]
            out[name] = (v * float(factor)).astype(v.dtype)
    if "t" in events and time_factor != 1:
        t = events["t"]
        out["t"] = (t * float(time_factor)).astype(t.dtype)
    return out


def spatial_jitter(
    events: Mapping[str, np.ndarray], sigma: float, height: int, width: int, rng: np.random.Generator
) -> Events:
    """Add ``round(N(0, sigma))`` to ``x`` and to ``y`` of each event; drop those that leave the sensor.

    The integer noise comes from :func:`loader.transforms.functional.gaussian.rounded_normal`
    (``x`` first, then ``y``).
    """
    require(events, "xy", "SpatialJitter")
    n = n_events(events)
    x, y = events["x"], events["y"]
    nx = rounded_normal(rng, n, sigma) + x
    ny = rounded_normal(rng, n, sigma) + y
    inside = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
    at = np.flatnonzero(inside)
    out = {k: v[at] for k, v in events.items() if k not in ("x", "y")}
    out["x"] = nx[at].astype(coord_dtype_for(x.dtype, 0, width - 1))
    out["y"] = ny[at].astype(coord_dtype_for(y.dtype, 0, height - 1))
    return {k: out[k] for k in events}
