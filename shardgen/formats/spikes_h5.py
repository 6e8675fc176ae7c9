"""The Heidelberg spiking data sets' HDF5 files (SHD, SSC; Cramer et al. 2020), read with h5py.

One file per split (``shd_train.h5``, ``ssc_valid.h5`` …), one sample per row:

- ``spikes/times``: variable-length float16 arrays, spike times in seconds (non-decreasing);
- ``spikes/units``: variable-length uint16 arrays, the unit (channel) of each spike, ``< 700``;
- ``labels``: the class of each sample; ``extra/keys``: the class names in label order;
  ``extra/speaker`` (and more under ``extra/``): per-sample metadata.

Times become µs rounded to the nearest µs (halves up): ``floor(seconds * 1e6 + 0.5)``, exact in
float64 (a float16 times 10**6 needs at most 25 significant bits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shardgen.formats.events import FormatError

H5_EXTRA = "h5"
"""The ``pip install 'eventshard[h5]'`` extra that brings h5py."""


def import_h5py() -> Any:
    """``h5py``, or an ``ImportError`` saying which extra installs it."""
    try:
        import h5py
    except ImportError:
        raise ImportError(f"reading SHD/SSC HDF5 files needs h5py: pip install 'eventshard[{H5_EXTRA}]'") from None
    return h5py


def seconds_to_us(times: np.ndarray) -> np.ndarray:
    """float16 (or any float) seconds as int64 µs, rounded to the nearest µs, halves up."""
    return np.floor(np.asarray(times, dtype=np.float64) * 1e6 + 0.5).astype(np.int64)


@dataclass
class SpikesFileInfo:
    """What the main process learns from one file: sample count, labels, class names, speakers."""

    samples: int
    labels: np.ndarray
    keys: list[str] | None
    speakers: np.ndarray | None


def _open(path: str) -> Any:
    h5py = import_h5py()
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None


def _dataset(f: Any, name: str, path: str) -> Any:
    obj = f.get(name)
    if obj is None or not hasattr(obj, "shape"):
        raise FormatError(f"{path}: no dataset {name!r} (not an SHD/SSC file?)")
    return obj


def read_info(path: str) -> SpikesFileInfo:
    """Sample count, labels, ``extra/keys`` and ``extra/speaker`` of a file (checks the layout)."""
    with _open(path) as f:
        labels = np.asarray(_dataset(f, "labels", path)[()])
        times = _dataset(f, "spikes/times", path)
        units = _dataset(f, "spikes/units", path)
        if labels.ndim != 1 or times.shape != labels.shape or units.shape != labels.shape:
            raise FormatError(f"{path}: labels {labels.shape}, spikes/times {times.shape} and spikes/units "
                              f"{units.shape} differ")
        if labels.size and (labels.dtype.kind not in "ui" or int(labels.min()) < 0):
            raise FormatError(f"{path}: labels must be non-negative integers, got {labels.dtype}")
        keys = None
        if "extra/keys" in f:
            keys = [k.decode("utf-8") if isinstance(k, bytes) else str(k) for k in f["extra/keys"][()]]
        speakers = np.asarray(f["extra/speaker"][()]) if "extra/speaker" in f else None
        if speakers is not None and speakers.shape != labels.shape:
            speakers = None
    return SpikesFileInfo(int(labels.size), labels.astype(np.int64), keys, speakers)


def read_rows(path: str, start: int, stop: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Rows ``[start, stop)``: spike times (float16 s, as stored), units and labels."""
    with _open(path) as f:
        times = list(_dataset(f, "spikes/times", path)[start:stop])
        units = list(_dataset(f, "spikes/units", path)[start:stop])
        labels = np.asarray(_dataset(f, "labels", path)[start:stop]).astype(np.int64)
    for k, (t, u) in enumerate(zip(times, units, strict=True)):
        if t.shape != u.shape or t.ndim != 1:
            raise FormatError(f"{path}: row {start + k}: {t.shape} times but {u.shape} units")
    return times, units, labels
