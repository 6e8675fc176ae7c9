"""Generated downloads of the class-folder datasets, laid out as their authors ship them.

- CIFAR10-DVS: ``<class>.zip`` per class holding ``<class>/cifar10_<class>_<n>.aedat`` (AEDAT 2.0, DVS128).
- N-MNIST: ``Train.zip`` / ``Test.zip`` holding ``Train/<digit>/<nnnnn>.bin`` (ATIS 40-bit).
- N-Caltech101: ``Caltech101.zip`` holding ``Caltech101/<class>/image_<nnnn>.bin``.
- ASL-DVS: ``ICCV2019_DVS_dataset.zip`` holding one ``<letter>.zip`` per class, each holding
  ``<letter>/<letter>_<nnnn>.mat`` (MAT v5: ts, x, y, pol).

The bytes come from :mod:`tests.gen_rawfiles` (written from the format documentation, not from the
parsers); zips are written with fixed member times so the same seed gives the same bytes. Every
generator returns the raw events it wrote per sample key (``<class>/<stem>``), before any dataset
convention, so tests can apply the convention themselves.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.gen_rawfiles import aedat2_bytes, asl_mat_bytes, atis_bin_bytes, dvs128_address

_DATE = (2017, 1, 1, 0, 0, 0)


@dataclass
class GeneratedSample:
    """One generated sample file: where it sits and the raw events it holds."""

    cls: str
    stem: str
    member: str
    split: str | None
    events: dict[str, np.ndarray]


@dataclass
class GeneratedDownload:
    """A generated download: the RAW folder, its files' md5 and every sample by ``(split, key)``."""

    root: Path
    md5: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str | None, str], GeneratedSample] = field(default_factory=dict)

    def add(self, s: GeneratedSample) -> None:
        self.samples[(s.split, f"{s.cls}/{s.stem}")] = s


def _zip_bytes(members: dict[str, bytes], dirs: bool = True) -> bytes:
    """A deflated zip with the given members (and their folders as entries, like zip tools write them)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        seen: set[str] = set()
        for name, data in members.items():
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i]) + "/"
                if dirs and d not in seen:
                    seen.add(d)
                    zf.writestr(zipfile.ZipInfo(d, _DATE), b"")
            zf.writestr(zipfile.ZipInfo(name, _DATE), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _write(gen: GeneratedDownload, name: str, data: bytes) -> None:
    path = gen.root / name
    path.write_bytes(data)
    gen.md5[name] = hashlib.md5(data).hexdigest()


def _counts(rng: np.random.Generator, n: int, max_events: int, empty: bool = False) -> list[int]:
    """Event counts per sample: the first is empty when ``empty``, the second has a single event."""
    counts = [int(c) for c in rng.integers(2, max_events + 1, size=n)]
    if n > 1:
        counts[1] = 1
    if empty and n:
        counts[0] = 0
    return counts


def _times(rng: np.random.Generator, n: int, start: int, limit: int) -> np.ndarray:
    """``n`` non-decreasing time stamps from ``start`` below ``limit`` (with repeats)."""
    t = start + np.sort(rng.integers(0, max(1, limit - start), size=n))
    return t.astype(np.int64)


def write_nmnist(root: Path, per_class: int = 3, classes: tuple[str, ...] = ("0", "3", "7"), seed: int = 0,
                 max_events: int = 400, markers: int = 0, span_us: int = 320_000) -> GeneratedDownload:
    """``Train.zip`` and ``Test.zip``; ``markers`` overflow-marker records (y = 240) go into the first file.

    Time stamps span up to ``span_us`` (real N-MNIST samples last about 310 ms).
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    gen = GeneratedDownload(root)
    for folder, split in (("Train", "train"), ("Test", "test")):
        members = {}
        for ci, cls in enumerate(classes):
            counts = _counts(rng, per_class, max_events, empty=ci == 0 and split == "train")
            for k, n in enumerate(counts):
                stem = f"{int(rng.integers(0, 60000)):05d}" if k else f"{k:05d}"
                ev = {"t": _times(rng, n, 0, span_us), "x": rng.integers(0, 34, n), "y": rng.integers(0, 34, n),
                      "p": rng.integers(0, 2, n)}
                if markers and ci == 0 and k == 2 and split == "train":
                    at = np.sort(rng.integers(0, n + 1, size=markers))
                    for key, val in (("x", 0), ("y", 240), ("p", 0)):
                        ev[key] = np.insert(ev[key], at, val)
                    ev["t"] = np.insert(ev["t"], at, ev["t"][np.minimum(at, n - 1)] if n else 0)
                member = f"{folder}/{cls}/{stem}.bin"
                if member in members:
                    continue
                members[member] = atis_bin_bytes(ev["x"], ev["y"], ev["p"], ev["t"])
                gen.add(GeneratedSample(cls, stem, member, split, ev))
        _write(gen, f"{folder}.zip", _zip_bytes(members))
    return gen


def write_ncaltech101(root: Path, per_class: int = 4, seed: int = 1, max_events: int = 600,
                      classes: tuple[str, ...] = ("BACKGROUND_Google", "Faces_easy", "accordion", "yin_yang"),
                      ) -> GeneratedDownload:
    """``Caltech101.zip`` with ``Caltech101/<class>/image_<nnnn>.bin`` files."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    gen = GeneratedDownload(root)
    members = {}
    for ci, cls in enumerate(classes):
        for k, n in enumerate(_counts(rng, per_class, max_events, empty=ci == 0)):
            stem = f"image_{k + 1:04d}"
            ev = {"t": _times(rng, n, 0, 2**23), "x": rng.integers(0, 240, n), "y": rng.integers(0, 180, n),
                  "p": rng.integers(0, 2, n)}
            member = f"Caltech101/{cls}/{stem}.bin"
            members[member] = atis_bin_bytes(ev["x"], ev["y"], ev["p"], ev["t"])
            gen.add(GeneratedSample(cls, stem, member, None, ev))
    _write(gen, "Caltech101.zip", _zip_bytes(members))
    return gen


def write_cifar10dvs(root: Path, per_class: int = 5, seed: int = 2, max_events: int = 800,
                     classes: tuple[str, ...] = ("airplane", "cat", "truck")) -> GeneratedDownload:
    """``<class>.zip`` per class with jAER AEDAT 2.0 DVS128 recordings ``cifar10_<class>_<n>.aedat``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    gen = GeneratedDownload(root)
    for ci, cls in enumerate(classes):
        members = {}
        for k, n in enumerate(_counts(rng, per_class, max_events, empty=ci == 0)):
            stem = f"cifar10_{cls}_{k}"
            start = int(rng.integers(0, 2**31))
            ev = {"t": _times(rng, n, start, start + 2_000_000), "x": rng.integers(0, 128, n),
                  "y": rng.integers(0, 128, n), "p": rng.integers(0, 2, n)}
            member = f"{cls}/{stem}.aedat"
            members[member] = aedat2_bytes(dvs128_address(ev["x"], ev["y"], ev["p"]), ev["t"])
            gen.add(GeneratedSample(cls, stem, member, None, ev))
        _write(gen, f"{cls}.zip", _zip_bytes(members))
    return gen


def write_asldvs(root: Path, per_class: int = 4, seed: int = 3, max_events: int = 500,
                 classes: tuple[str, ...] = ("a", "k", "y")) -> GeneratedDownload:
    """``ICCV2019_DVS_dataset.zip`` holding ``<letter>.zip`` files of ``<letter>/<letter>_<nnnn>.mat``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    gen = GeneratedDownload(root)
    inner = {}
    for ci, cls in enumerate(classes):
        members = {}
        for k, n in enumerate(_counts(rng, per_class, max_events, empty=ci == 0)):
            stem = f"{cls}_{k + 1:04d}"
            ev = {"t": _times(rng, n, 0, 5_000_000).astype(np.uint32), "x": rng.integers(0, 240, n).astype(np.uint8),
                  "y": rng.integers(0, 180, n).astype(np.uint8), "p": rng.integers(0, 2, n).astype(np.uint8)}
            member = f"{cls}/{stem}.mat"
            members[member] = asl_mat_bytes(ev["t"], ev["x"], ev["y"], ev["p"])
            gen.add(GeneratedSample(cls, stem, member, None, ev))
        inner[f"{cls}.zip"] = _zip_bytes(members)
    _write(gen, "ICCV2019_DVS_dataset.zip", _zip_bytes(inner, dirs=False))
    return gen
