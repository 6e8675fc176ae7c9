"""Pure numpy event operations, one job per function, as ``tonic.functional`` (no torch).

Randomness comes only from the ``numpy.random.Generator`` a function is given. Modules:
:mod:`~loader.transforms.functional.geometry` (flips, crops, boxes, scaling, spatial jitter),
:mod:`~loader.transforms.functional.timing` (time jitter, skew, windows),
:mod:`~loader.transforms.functional.noise` (drop events, add noise),
:mod:`~loader.transforms.functional.filters` (denoise, refractory period),
:mod:`~loader.transforms.functional.gaussian` (integer Gaussian noise),
:mod:`~loader.transforms.functional.columns` (helpers on event dicts).
"""

from loader.transforms.functional.filters import denoise, refractory_period
from loader.transforms.functional.geometry import (
    crop,
    downsample,
    drop_box,
    flip_lr,
    flip_polarity,
    flip_ud,
    spatial_jitter,
)
from loader.transforms.functional.noise import drop_event, uniform_noise
from loader.transforms.functional.timing import drop_time_window, time_jitter, time_skew

__all__ = [
    "crop",
    "denoise",
    "downsample",
    "drop_box",
    "drop_event",
    "drop_time_window",
    "flip_lr",
    "flip_polarity",
    "flip_ud",
    "refractory_period",
    "spatial_jitter",
    "time_jitter",
    "time_skew",
    "uniform_noise",
]
