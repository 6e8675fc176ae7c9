"""Streaming side of eventshard: read shard sets and turn samples into training tensors.

Names are imported lazily so that ``import loader.format`` (used by ``shardgen``) does not pull
in torch. SpikingJelly-style map-style classes: :mod:`loader.datasets` (``DVS128Gesture``, …);
pictures: :func:`loader.play_frame` and :mod:`loader.preview`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EventShardDataset": "loader.dataset",
    "pad_sequence_collate": "loader.collate",
    "padded_sequence_mask": "loader.collate",
    "integrate_events_segment_to_frame": "loader.frames",
    "cal_fixed_frames_number_segment_index": "loader.frames",
    "integrate_events_by_fixed_frames_number": "loader.frames",
    "integrate_events_by_fixed_duration": "loader.frames",
    "play_frame": "loader.preview",
    "save_frames_png": "loader.preview",
    "save_frames_gif": "loader.preview",
    "STRUCTURED_DTYPE": "loader.settings",
    "events_to_structured": "loader.settings",
    "FrameSetting": "loader.settings",
}
_SUBMODULES = ("datasets", "preview", "format", "frames", "collate", "shards", "dataset", "order", "settings", "errors")

__all__ = sorted(_EXPORTS) + ["datasets"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:  # `import loader; loader.datasets.DVS128Gesture(...)`
        return importlib.import_module(f"loader.{name}")
    raise AttributeError(f"module 'loader' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
