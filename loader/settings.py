"""What one item looks like: the frame setting (SpikingJelly's arguments) and tonic's structured events.

:class:`FrameSetting` checks the arguments once and turns one sample's events into the item
(events, a tonic structured array, or frames); both :class:`loader.dataset.EventShardDataset` and
the map-style classes of :mod:`loader.datasets` hold one. Frame semantics: ``docs/SEMANTICS.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from loader import frames as _frames
from loader import pixels as _pixels
from loader.errors import ConfigurationError
from loader.format import EVENT_COLUMNS

DATA_TYPES = ("event", "frame", "structured")
SPLIT_BY = ("number", "time")

#: tonic 1.7.0's event dtype (``tonic.io.events_struct``, also ``tonic.datasets.DVSGesture.dtype``):
#: what ``data_type="structured"`` yields, so tonic's transforms run on it unchanged.
STRUCTURED_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])


def events_to_structured(events: dict[str, np.ndarray], dtype: np.dtype = STRUCTURED_DTYPE) -> np.ndarray:
    """One sample's event columns as a new tonic-style structured array of ``dtype``.

    Parameters
    ----------
    events : dict
        Columns ``t``, ``x``, ``y``, ``p`` of equal length.
    dtype : numpy.dtype
        Record type with (a subset of) the fields ``t``, ``x``, ``y``, ``p``; default
        :data:`STRUCTURED_DTYPE` (``x``, ``y`` int16, ``t`` int64 µs, ``p`` bool).
    """
    out = np.empty(len(events["x"]), dtype=dtype)
    for name in dtype.names:
        out[name] = events[name]
    return out


@dataclass(frozen=True)
class FrameSetting:
    """``data_type`` plus SpikingJelly's frame arguments, checked when made.

    Raises
    ------
    ConfigurationError
        (A ``ValueError``.) The arguments do not fit together; the message says what to pass.
    """

    data_type: str = "event"
    frames_number: int | None = None
    split_by: str | None = None
    duration: int | None = None
    custom_integrate_function: Callable[[dict[str, np.ndarray], int, int], Any] | None = None

    def __post_init__(self) -> None:
        data_type, frames_number, split_by = self.data_type, self.frames_number, self.split_by
        duration, custom = self.duration, self.custom_integrate_function
        if data_type not in DATA_TYPES:
            raise ConfigurationError(f"data_type must be 'event', 'frame' or 'structured', got {data_type!r}")
        if split_by is not None and split_by not in SPLIT_BY:
            raise ConfigurationError(f"split_by must be 'number' or 'time', got {split_by!r}")
        if split_by is not None and frames_number is None:
            raise ConfigurationError("split_by needs frames_number: pass frames_number=T (or drop split_by)")
        if frames_number is not None and duration is not None:
            raise ConfigurationError("pass either frames_number (with split_by) or duration, not both")
        if custom is not None and (frames_number is not None or duration is not None):
            raise ConfigurationError(
                "custom_integrate_function replaces frames_number/duration: pass only one of them"
            )
        if data_type in ("event", "structured"):
            if frames_number is not None or duration is not None or custom is not None:
                raise ConfigurationError(
                    "frames_number, duration and custom_integrate_function need data_type='frame'"
                )
            return
        if frames_number is not None:
            if split_by is None:
                raise ConfigurationError("frames_number needs split_by='number' or split_by='time'")
            if int(frames_number) <= 0:
                raise ConfigurationError(f"frames_number must be positive, got {frames_number}")
        elif duration is not None:
            if duration <= 0:
                raise ConfigurationError(f"duration must be positive (µs), got {duration}")
        elif custom is None:
            raise ConfigurationError(
                "data_type='frame' needs frames_number=T with split_by='number'|'time', duration=D (µs), "
                "or custom_integrate_function"
            )

    def columns(self, transformed: bool, two_d: bool = True) -> tuple[str, ...]:
        """Event columns the item needs. Frames of a 2-D sensor (no event transform, no custom function)
        need only the packed pixel index and, unless split by number, the time deltas
        (:mod:`loader.pixels`); anything that sees the events gets ``t``, ``x``, ``y``, ``p``."""
        if self.data_type != "frame" or transformed or self.custom_integrate_function is not None:
            return EVENT_COLUMNS
        if two_d:
            return ("pix",) if self.split_by == "number" and self.duration is None else ("dt", "pix")
        return ("x",) if self.split_by == "number" else ("t", "x")

    def packed(self, events: dict[str, np.ndarray], sensor_size: tuple[int, int]) -> dict[str, np.ndarray]:
        """``{"pix"[, "dt"]}`` of one sample: as decoded, or packed from ``t``, ``x``, ``y``, ``p`` (after a
        transform)."""
        if "pix" in events:
            return events
        h, w = sensor_size
        if len(events["x"]):
            _frames._check_range("x", np.asarray(events["x"]), w)
            _frames._check_range("y", np.asarray(events["y"]), h)
        out = {"pix": _pixels.pack_pixels(events["x"], events["y"], events["p"], h, w)}
        if self.split_by != "number" or self.duration is not None:
            out["dt"] = np.diff(np.asarray(events["t"], dtype=np.int64))
        return out

    def integrate(self, events: dict[str, np.ndarray], sensor_size: tuple[int, int]) -> Any:
        """The frames of one sample's events (``data_type="frame"``), as set."""
        h, w = sensor_size
        if self.custom_integrate_function is not None:
            return self.custom_integrate_function(events, h, w)
        if "pix" in events:  # the packed column (columns(two_d=True)): one count per frame
            return _pixels.integrate_packed(events, h, w, self.split_by, self.frames_number, self.duration)
        if self.duration is not None:
            return _frames.integrate_events_by_fixed_duration(events, self.duration, h, w)
        return _frames.integrate_events_by_fixed_frames_number(events, self.split_by, self.frames_number, h, w)
