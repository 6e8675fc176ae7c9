"""Event and frame augmentations, seeded per sample by ``(seed, epoch, key)``.

Event transforms (numpy, no torch): :mod:`loader.transforms.events`, composed with :class:`Compose`
and :class:`RandomApply`; frame transforms (torch, ``[T, C, H, W]``): :mod:`loader.transforms.frames`,
imported on first use; the generators: :mod:`loader.transforms.seeding`. Semantics:
``docs/AUGMENT.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

from loader.transforms.base import (
    Compose,
    EventTransform,
    FrameTransform,
    RandomApply,
    RandomChoice,
    apply_event_transform,
    apply_frame_transform,
    sensor_size_after,
)
from loader.transforms.events import (
    CenterCrop,
    Denoise,
    Downsample,
    DropByArea,
    DropByTime,
    DropEvent,
    RandomCrop,
    RandomFlipLR,
    RandomFlipPolarity,
    RandomFlipUD,
    RefractoryPeriod,
    SpatialJitter,
    TimeJitter,
    TimeSkew,
    UniformNoise,
)
from loader.transforms.seeding import EVENT_STREAM, FRAME_STREAM, sample_rng, sample_rngs

_FRAME_NAMES = (
    "Cutout",
    "FrameCompose",
    "FrameRandomApply",
    "FrameRandomChoice",
    "RandomResizedCrop",
    "RandomRoll",
    "RandomRotate",
    "RandomShear",
    "RandomTemporalDelete",
)

__all__ = [
    "EVENT_STREAM",
    "FRAME_STREAM",
    "CenterCrop",
    "Compose",
    "Denoise",
    "Downsample",
    "DropByArea",
    "DropByTime",
    "DropEvent",
    "EventTransform",
    "FrameTransform",
    "RandomApply",
    "RandomChoice",
    "RandomCrop",
    "RandomFlipLR",
    "RandomFlipPolarity",
    "RandomFlipUD",
    "RefractoryPeriod",
    "SpatialJitter",
    "TimeJitter",
    "TimeSkew",
    "UniformNoise",
    "apply_event_transform",
    "apply_frame_transform",
    "sample_rng",
    "sample_rngs",
    "sensor_size_after",
    *_FRAME_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _FRAME_NAMES:  # torch is imported only when a frame transform is asked for
        return getattr(importlib.import_module("loader.transforms.frames"), name)
    raise AttributeError(f"module 'loader.transforms' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
