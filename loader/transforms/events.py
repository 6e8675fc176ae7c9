"""Event transforms: frozen dataclasses holding parameters; ``__call__`` draws and delegates to :mod:`.functional`.

Each is called ``t(events, *, sensor_size, rng)`` with ``sensor_size`` ``(H, W)`` and returns a new
dict (see :class:`~loader.transforms.base.EventTransform`). Their semantics, formulas and
differences from tonic are stated once in ``docs/AUGMENT.md``. Transforms that make sense on 1-D
events (``t``, ``x`` only: SHD, SSC) accept them: ``DropEvent``, ``DropByTime``, ``TimeJitter``,
``TimeSkew``, ``Downsample``, ``UniformNoise``, ``RefractoryPeriod``, ``RandomFlipLR``; the others raise
:class:`~loader.errors.ConfigurationError`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from loader.errors import ConfigurationError
from loader.transforms import functional as F
from loader.transforms.base import EventTransform, check_probability, draw
from loader.transforms.functional.columns import hw, n_events, require

__all__ = [
    "CenterCrop",
    "Denoise",
    "Downsample",
    "DropByArea",
    "DropByTime",
    "DropEvent",
    "RandomCrop",
    "RandomFlipLR",
    "RandomFlipPolarity",
    "RandomFlipUD",
    "RefractoryPeriod",
    "SpatialJitter",
    "TimeJitter",
    "TimeSkew",
    "UniformNoise",
]

Range = float | tuple[float, float]


def _check_ratio(value: Range, who: str) -> None:
    values = value if isinstance(value, (tuple, list)) else (value,)
    if len(values) not in (1, 2) or not all(0.0 <= float(v) < 1.0 for v in values):
        raise ConfigurationError(f"{who}: ratio must be in [0, 1) or a pair of such, got {value!r}")


def _pair(size: int | tuple[int, int], who: str) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ConfigurationError(f"{who}: size must be positive, got {size!r}")
    return int(h), int(w)


@dataclasses.dataclass(frozen=True)
class RandomFlipLR(EventTransform):
    """With probability ``p`` (one draw per sample): ``x → W - 1 - x``."""

    p: float = 0.5

    def __post_init__(self):
        check_probability(self.p, "RandomFlipLR")

    def __call__(self, events, *, sensor_size, rng):
        if rng.random() < self.p:
            return F.flip_lr(events, hw(sensor_size)[1])
        return dict(events)


@dataclasses.dataclass(frozen=True)
class RandomFlipUD(EventTransform):
    """With probability ``p`` (one draw per sample): ``y → H - 1 - y``."""

    p: float = 0.5

    def __post_init__(self):
        check_probability(self.p, "RandomFlipUD")

    def __call__(self, events, *, sensor_size, rng):
        require(events, "y", "RandomFlipUD")
        if rng.random() < self.p:
            return F.flip_ud(events, hw(sensor_size)[0])
        return dict(events)


@dataclasses.dataclass(frozen=True)
class RandomFlipPolarity(EventTransform):
    """With probability ``p`` (one draw per sample): every polarity flips (``0 ↔ 1``), as tonic's code does."""

    p: float = 0.5

    def __post_init__(self):
        check_probability(self.p, "RandomFlipPolarity")

    def __call__(self, events, *, sensor_size, rng):
        require(events, "p", "RandomFlipPolarity")
        if rng.random() < self.p:
            return F.flip_polarity(events)
        return dict(events)


@dataclasses.dataclass(frozen=True)
class DropEvent(EventTransform):
    """Drop each event independently with probability ``p`` (or ``p`` drawn from ``[lo, hi)`` per sample)."""

    p: Range = 0.1

    def __post_init__(self):
        for v in self.p if isinstance(self.p, (tuple, list)) else (self.p,):
            check_probability(v, "DropEvent")

    def __call__(self, events, *, sensor_size, rng):
        return F.drop_event(events, draw(self.p, rng), rng)


@dataclasses.dataclass(frozen=True)
class DropByTime(EventTransform):
    """Drop the events of a random time window of ``duration_ratio`` × the sample's own span (EventDrop).

    The window ``[s, s + d]`` has ``d = (max(t) - min(t)) * ratio`` and ``s`` uniform in
    ``[min(t), max(t) - d)``; tonic places it from ``t = 0`` instead.
    """

    duration_ratio: Range = 0.2

    def __post_init__(self):
        _check_ratio(self.duration_ratio, "DropByTime")

    def __call__(self, events, *, sensor_size, rng):
        require(events, "t", "DropByTime")
        if n_events(events) == 0:
            return dict(events)
        ratio = draw(self.duration_ratio, rng)
        t = events["t"]
        lo, hi = float(t.min()), float(t.max())
        length = (hi - lo) * ratio
        start = float(rng.uniform(lo, hi - length)) if hi - length > lo else lo
        return F.drop_time_window(events, start, start + length)


@dataclasses.dataclass(frozen=True)
class DropByArea(EventTransform):
    """Drop the events in a random box of ``floor(H * ratio)`` × ``floor(W * ratio)`` pixels (EventDrop).

    Its corner is uniform over the positions that keep the box inside the sensor.
    """

    area_ratio: Range = 0.2

    def __post_init__(self):
        _check_ratio(self.area_ratio, "DropByArea")

    def __call__(self, events, *, sensor_size, rng):
        require(events, "xy", "DropByArea")
        h, w = hw(sensor_size)
        ratio = draw(self.area_ratio, rng)
        bh, bw = int(h * ratio), int(w * ratio)
        top = int(rng.integers(0, h - bh + 1))
        left = int(rng.integers(0, w - bw + 1))
        return F.drop_box(events, top, left, bh, bw)


@dataclasses.dataclass(frozen=True)
class SpatialJitter(EventTransform):
    """Add rounded Gaussian noise of standard deviation ``sigma`` pixels to ``x`` and ``y``; drop events that leave."""

    sigma: float = 1.0

    def __post_init__(self):
        if not float(self.sigma) >= 0:
            raise ConfigurationError(f"SpatialJitter: sigma must be >= 0, got {self.sigma!r}")

    def __call__(self, events, *, sensor_size, rng):
        h, w = hw(sensor_size)
        return F.spatial_jitter(events, self.sigma, h, w, rng)


@dataclasses.dataclass(frozen=True)
class TimeJitter(EventTransform):
    """Add rounded Gaussian noise of standard deviation ``std`` (µs) to each time; drop negative times; re-sort."""

    std: float = 1.0
    clip_negative: bool = True
    sort: bool = True

    def __post_init__(self):
        if not float(self.std) >= 0:
            raise ConfigurationError(f"TimeJitter: std must be >= 0, got {self.std!r}")

    def __call__(self, events, *, sensor_size, rng):
        return F.time_jitter(events, self.std, rng, self.clip_negative, self.sort)


@dataclasses.dataclass(frozen=True)
class TimeSkew(EventTransform):
    """``t → trunc(t * coefficient + offset)``; each may be a pair ``(lo, hi)`` drawn per sample."""

    coefficient: Range = 1.0
    offset: Range = 0.0

    def __call__(self, events, *, sensor_size, rng):
        coefficient = draw(self.coefficient, rng)
        return F.time_skew(events, coefficient, draw(self.offset, rng))


@dataclasses.dataclass(frozen=True)
class RandomCrop(EventTransform):
    """Keep a random ``size`` window (``int`` or ``(h, w)``) of the sensor, moved to the origin.

    The corner is uniform over all ``(H - h + 1) × (W - w + 1)`` positions; the sensor size after is ``(h, w)``.
    """

    size: int | tuple[int, int]

    def __post_init__(self):
        _pair(self.size, "RandomCrop")

    def __call__(self, events, *, sensor_size, rng):
        require(events, "xy", "RandomCrop")
        (h, w), (ch, cw) = hw(sensor_size), _pair(self.size, "RandomCrop")
        if ch > h or cw > w:
            raise ConfigurationError(f"RandomCrop: size {(ch, cw)} is larger than the sensor {(h, w)}")
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        return F.crop(events, top, left, ch, cw)

    def sensor_size_after(self, sensor_size):
        return _pair(self.size, "RandomCrop")


@dataclasses.dataclass(frozen=True)
class CenterCrop(EventTransform):
    """Keep the central ``size`` window: offsets ``floor((H - h) / 2)``, ``floor((W - w) / 2)``.

    A window larger than the sensor pads (negative offsets move the events), as tonic's ``CenterCrop``.
    """

    size: int | tuple[int, int]

    def __post_init__(self):
        _pair(self.size, "CenterCrop")

    def __call__(self, events, *, sensor_size, rng):
        require(events, "xy", "CenterCrop")
        (h, w), (ch, cw) = hw(sensor_size), _pair(self.size, "CenterCrop")
        return F.crop(events, (h - ch) // 2, (w - cw) // 2, ch, cw)

    def sensor_size_after(self, sensor_size):
        return _pair(self.size, "CenterCrop")


@dataclasses.dataclass(frozen=True)
class Downsample(EventTransform):
    """``x → trunc(x * fx)``, ``y → trunc(y * fy)``, ``t → trunc(t * time_factor)``.

    ``spatial_factor`` is one factor or ``(fy, fx)`` (the order of ``sensor_size``, ``(H, W)``; tonic's
    pair is ``(x, y)``). The sensor size after is ``(floor((H - 1) * fy) + 1, floor((W - 1) * fx) + 1)``.
    """

    spatial_factor: float | tuple[float, float] = 1.0
    time_factor: float = 1.0

    def _factors(self) -> tuple[float, float]:
        f = self.spatial_factor
        fy, fx = (f, f) if not isinstance(f, (tuple, list)) else f
        return float(fy), float(fx)

    def __post_init__(self):
        if min(self._factors()) <= 0 or not self.time_factor > 0:
            raise ConfigurationError(f"Downsample: factors must be positive, got {self.spatial_factor!r}, "
                                     f"{self.time_factor!r}")

    def __call__(self, events, *, sensor_size, rng):
        fy, fx = self._factors()
        return F.downsample(events, fy, fx, self.time_factor)

    def sensor_size_after(self, sensor_size):
        fy, fx = self._factors()
        size = tuple(int(s) for s in sensor_size)
        if len(size) == 1:
            return (math.floor((size[0] - 1) * fx) + 1,)
        return math.floor((size[0] - 1) * fy) + 1, math.floor((size[1] - 1) * fx) + 1


@dataclasses.dataclass(frozen=True)
class Denoise(EventTransform):
    """tonic's ``Denoise``: keep events with a 4-neighbour event less than ``filter_time`` µs before (see docs)."""

    filter_time: float = 10_000

    def __call__(self, events, *, sensor_size, rng):
        return F.denoise(events, self.filter_time)


@dataclasses.dataclass(frozen=True)
class RefractoryPeriod(EventTransform):
    """tonic's ``RefractoryPeriod``: keep an event iff ``delta`` µs have passed since its pixel's last event."""

    delta: float = 1_000

    def __call__(self, events, *, sensor_size, rng):
        return F.refractory_period(events, self.delta)


@dataclasses.dataclass(frozen=True)
class UniformNoise(EventTransform):
    """Add ``n`` uniform noise events (``n`` may be a pair ``(lo, hi)``: an integer drawn in ``[lo, hi)``)."""

    n: int | tuple[int, int] = 1000

    def __call__(self, events, *, sensor_size, rng):
        n = self.n
        count = int(rng.integers(n[0], n[1])) if isinstance(n, (tuple, list)) else int(n)
        h, w = hw(sensor_size)
        return F.uniform_noise(events, count, h, w, rng)
