"""The calling convention of eventshard's transforms and the functions the dataset calls.

* An :class:`EventTransform` is called ``t(events, *, sensor_size, rng)`` → a new events dict, and
  reports :meth:`EventTransform.sensor_size_after` (crops and downsampling change it).
* A :class:`FrameTransform` is called ``t(frames, *, rng)`` on ``[T, C, H, W]`` frames.
* :func:`apply_event_transform` / :func:`apply_frame_transform` call such an object with the
  sample's generator, and anything else (tonic's transforms, a lambda) as ``t(x)``.

Semantics and the seeding rule: ``docs/AUGMENT.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from loader.errors import ConfigurationError

__all__ = [
    "Compose",
    "EventTransform",
    "FrameTransform",
    "RandomApply",
    "RandomChoice",
    "apply_event_transform",
    "apply_frame_transform",
    "check_probability",
    "draw",
    "sensor_size_after",
]

SensorSize = tuple[int, ...]


class EventTransform:
    """Base of the event transforms: ``t(events, *, sensor_size, rng) -> dict``.

    ``events`` is a dict of equal-length numpy columns (``t``, ``x``, ``y``, ``p``; 1-D sets ``t``,
    ``x``), ``sensor_size`` the ``(H, W)`` the events live on (after the previous transforms), ``rng``
    the sample's ``numpy.random.Generator``. A transform never writes into its input arrays.
    """

    def __call__(
        self, events: Mapping[str, np.ndarray], *, sensor_size: Sequence[int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def sensor_size_after(self, sensor_size: Sequence[int]) -> SensorSize:
        """``(H, W)`` of the events it returns, given the ``sensor_size`` it gets (default: the same)."""
        return tuple(int(s) for s in sensor_size)


class FrameTransform:
    """Base of the frame transforms: ``t(frames, *, rng)`` on a ``[T, C, H, W]`` tensor (or numpy array).

    Parameters are drawn from ``rng`` (numpy); the work is done by torch on the frames' device, so the
    same object runs in a DataLoader worker or on the GPU.
    """

    def __call__(self, frames: Any, *, rng: np.random.Generator) -> Any:
        raise NotImplementedError


def check_probability(p: float, who: str) -> None:
    """Raise :class:`ConfigurationError` unless ``0 <= p <= 1``."""
    if not 0.0 <= float(p) <= 1.0:
        raise ConfigurationError(f"{who}: p must be in [0, 1], got {p!r}")


def draw(value: float | tuple[float, float], rng: np.random.Generator) -> float:
    """``value`` itself, or for a pair ``(lo, hi)`` a uniform draw in ``[lo, hi)``."""
    if isinstance(value, (tuple, list)):
        lo, hi = value
        return float(rng.uniform(lo, hi))
    return float(value)


def sensor_size_after(transform: Any, sensor_size: Sequence[int]) -> SensorSize:
    """Sensor size after ``transform``: its ``sensor_size_after``, unchanged for a plain callable."""
    if isinstance(transform, EventTransform):
        return transform.sensor_size_after(sensor_size)
    return tuple(int(s) for s in sensor_size)


def apply_event_transform(
    transform: Callable[..., Any], events: Any, sensor_size: Sequence[int], rng: np.random.Generator
) -> Any:
    """``transform(events, sensor_size=..., rng=rng)`` for an :class:`EventTransform`, else ``transform(events)``."""
    if isinstance(transform, EventTransform):
        return transform(events, sensor_size=tuple(sensor_size), rng=rng)
    return transform(events)


def apply_frame_transform(transform: Callable[..., Any], frames: Any, rng: np.random.Generator) -> Any:
    """``transform(frames, rng=rng)`` for a :class:`FrameTransform`, else ``transform(frames)``."""
    if isinstance(transform, FrameTransform):
        return transform(frames, rng=rng)
    return transform(frames)


@dataclasses.dataclass(frozen=True)
class Compose(EventTransform):
    """Apply event transforms in order; each sees the sensor size after the previous ones.

    Plain callables may be mixed in (called as ``t(events)``, sensor size unchanged). All draw, in
    turn, from the one generator of the sample.
    """

    transforms: Sequence[Callable[..., Any]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", tuple(self.transforms))

    def __call__(self, events, *, sensor_size, rng):
        size = tuple(sensor_size)
        for t in self.transforms:
            events = apply_event_transform(t, events, size, rng)
            size = sensor_size_after(t, size)
        return events

    def sensor_size_after(self, sensor_size):
        size = tuple(int(s) for s in sensor_size)
        for t in self.transforms:
            size = sensor_size_after(t, size)
        return size


@dataclasses.dataclass(frozen=True)
class RandomApply(EventTransform):
    """Apply ``transform`` with probability ``p`` (one draw per sample), else return the events unchanged.

    ``transform`` must keep the sensor size (a random crop inside would make the size random).
    """

    transform: Callable[..., Any]
    p: float = 0.5

    def __post_init__(self) -> None:
        check_probability(self.p, "RandomApply")

    def __call__(self, events, *, sensor_size, rng):
        if rng.random() < self.p:
            return apply_event_transform(self.transform, events, sensor_size, rng)
        return dict(events)

    def sensor_size_after(self, sensor_size):
        size = tuple(int(s) for s in sensor_size)
        if sensor_size_after(self.transform, size) != size:
            raise ConfigurationError(f"RandomApply cannot wrap {self.transform!r}: it changes the sensor size")
        return size


@dataclasses.dataclass(frozen=True)
class RandomChoice(EventTransform):
    """Apply one of ``transforms``, chosen uniformly per sample (EventDrop picks one of its drops this way).

    Every choice must keep the sensor size.
    """

    transforms: Sequence[Callable[..., Any]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", tuple(self.transforms))
        if not self.transforms:
            raise ConfigurationError("RandomChoice needs at least one transform")

    def __call__(self, events, *, sensor_size, rng):
        return apply_event_transform(self.transforms[int(rng.integers(0, len(self.transforms)))], events,
                                     sensor_size, rng)

    def sensor_size_after(self, sensor_size):
        size = tuple(int(s) for s in sensor_size)
        for t in self.transforms:
            if sensor_size_after(t, size) != size:
                raise ConfigurationError(f"RandomChoice cannot hold {t!r}: it changes the sensor size")
        return size
