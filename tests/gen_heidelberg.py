"""Generated SHD / SSC downloads in the authors' layout, written with h5py from the published description.

Each split is one HDF5 file ``<prefix>_<split>.h5``: ``spikes/times`` (variable-length float16
seconds, non-decreasing per sample), ``spikes/units`` (variable-length uint16), ``labels``
(uint16), ``extra/keys`` (class names, bytes) and ``extra/speaker``. The file is then shipped as
the authors do: gzip-compressed (``.h5.gz``) or zipped (``.h5.zip``, as zenkelab.org serves it to
SpikingJelly and tonic). Every split holds an empty sample (row 0) and a one-spike sample (row 1).
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS = {"shd": ("train", "test"), "ssc": ("train", "valid", "test")}
N_CLASSES = {"shd": 20, "ssc": 35}
TINY = 2.0**-9  # float16 seconds from here on survive the µs rounding exactly


@dataclass
class Sample:
    times: np.ndarray  # float16 seconds, as written
    units: np.ndarray  # uint16
    label: int


@dataclass
class HeidelbergDownload:
    root: Path
    prefix: str
    splits: dict[str, list[Sample]]
    classes: list[str]
    md5: dict[str, str] = field(default_factory=dict)


def _sample(rng: np.random.Generator, label: int, n: int, lo: float = TINY, hi: float = 1.4) -> Sample:
    times = np.sort(rng.uniform(lo, hi, n)).astype(np.float16)
    return Sample(times, rng.integers(0, 700, n).astype(np.uint16), label)


def make_samples(rng: np.random.Generator, count: int, n_classes: int, tiny_row: int | None = None) -> list[Sample]:
    """``count`` samples: row 0 empty, row 1 one spike, the rest 2-600 spikes; optionally one sub-ms sample."""
    out = [Sample(np.zeros(0, np.float16), np.zeros(0, np.uint16), int(rng.integers(n_classes))),
           _sample(rng, int(rng.integers(n_classes)), 1)]
    for i in range(2, count):
        label = i % n_classes  # every class appears
        s = _sample(rng, label, int(rng.integers(2, 600)))
        if i % 9 == 0:  # repeated time stamps (SHD has many)
            s.times[: len(s.times) // 2] = s.times[0]
        out.append(s)
    if tiny_row is not None:
        out[tiny_row] = _sample(rng, out[tiny_row].label, 50, 0.0, 0.004)
    return out


def write_h5(path: Path, samples: list[Sample], classes: list[str]) -> None:
    """One split's HDF5 file in the authors' layout."""
    import h5py

    with h5py.File(path, "w") as f:
        spikes = f.create_group("spikes")
        times = spikes.create_dataset("times", (len(samples),), dtype=h5py.vlen_dtype(np.dtype("float16")))
        units = spikes.create_dataset("units", (len(samples),), dtype=h5py.vlen_dtype(np.dtype("uint16")))
        for i, s in enumerate(samples):
            times[i] = s.times
            units[i] = s.units
        f.create_dataset("labels", data=np.array([s.label for s in samples], dtype=np.uint16))
        extra = f.create_group("extra")
        extra.create_dataset("keys", data=np.array([c.encode() for c in classes]))
        extra.create_dataset("speaker", data=np.arange(len(samples), dtype=np.uint16) % 12)


def write_heidelberg(root: Path, prefix: str, counts: dict[str, int], form: str = "gz", seed: int = 0,
                     tiny: bool = False) -> HeidelbergDownload:
    """Write ``<prefix>_<split>.h5`` as ``.h5.gz`` (``form="gz"``), ``.h5.zip`` or plain ``.h5`` into ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    classes = [f"word-{i}" for i in range(N_CLASSES[prefix])]
    dl = HeidelbergDownload(root, prefix, {}, classes)
    for k, split in enumerate(SPLITS[prefix]):
        samples = make_samples(rng, counts[split], len(classes), tiny_row=3 if tiny and k == 0 else None)
        dl.splits[split] = samples
        name = f"{prefix}_{split}.h5"
        h5 = root / name
        write_h5(h5, samples, classes)
        if form == "gz":
            (root / (name + ".gz")).write_bytes(gzip.compress(h5.read_bytes(), mtime=0))
            h5.unlink()
        elif form == "zip":
            with zipfile.ZipFile(root / (name + ".zip"), "w", zipfile.ZIP_DEFLATED) as zf:
                zf.write(h5, name)
            h5.unlink()
    for path in sorted(root.iterdir()):
        dl.md5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    return dl


def us(times: np.ndarray) -> np.ndarray:
    """µs from float16 seconds: nearest, halves up (the issue's rule), computed here on its own."""
    return np.array([int(np.floor(float(v) * 1_000_000 + 0.5)) for v in times], dtype=np.int64)
