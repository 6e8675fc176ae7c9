"""The Heidelberg spiking data sets (SHD, SSC): one HDF5 file per split, 1-D events (time, unit).

A dataset module (:mod:`shardgen.datasets.shd`, :mod:`shardgen.datasets.ssc`) declares one
:class:`HeidelbergDataset`: its spec and split names. This module does the rest:

1. **Find** each split's file in RAW, in whichever form it is there: ``<name>.h5.zip`` (what
   SpikingJelly and tonic fetch from zenkelab.org, md5-checked), ``<name>.h5.gz`` (the authors'
   gzip files, with their ``md5sums.txt``) or the extracted ``<name>.h5``. A compressed file is
   inflated once into a private temporary folder (HDF5 needs random access), hashing it on the way.
2. **List** the samples: every row of the file, in file order (SpikingJelly's event order, so
   ``ds[i]`` of the façade is row ``i``). Labels are the file's own ``labels``; class names come
   from ``extra/keys``.
3. **Hand out** blocks of rows; a worker reads its rows with h5py and turns the float16 seconds
   into µs (:func:`shardgen.formats.spikes_h5.seconds_to_us`).

Keys are ``<label>/<row>``: where SpikingJelly's frame builders store the same sample
(``frames_…/<split>/<label>/<row>.npz``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shardgen.archive import HashingReader, md5_file
from shardgen.archive import _gzip as igzip
from shardgen.datasets.base import (
    CutRecording,
    CutSample,
    DatasetError,
    DatasetSpec,
    RecordingTask,
    SourceBase,
    Stage,
    Want,
    read_all,
    want_all,
)
from shardgen.datasets.md5check import md5_mismatch
from shardgen.formats import spikes_h5

ROWS_PER_TASK = 512
"""Samples per worker task (SHD samples hold a few thousand spikes each)."""


@dataclass(frozen=True)
class HeidelbergDataset:
    """The declaration of one Heidelberg data set: ``spec``, file prefix (``shd``) and split names."""

    spec: DatasetSpec
    prefix: str
    splits: tuple[str, ...]

    def open_source(self, raw: Path | str, check_md5: bool = True, split: dict[str, Any] | None = None
                    ) -> HeidelbergSource:
        """Find every split's file in ``raw`` (see :class:`HeidelbergSource`)."""
        if split:
            raise DatasetError(f"{self.spec.id} has its authors' split ({', '.join(self.splits)}); "
                               "it takes no --split-* option")
        return HeidelbergSource(self, Path(raw), check_md5)

    def cut(self, task: RecordingTask, allow_truncated: bool = False) -> CutRecording:
        """Worker: read one block of rows; each row is one sample."""
        return cut_rows(self, task)


class HeidelbergSource(SourceBase):
    """Each split's h5 file located (and inflated when compressed), its rows split into tasks."""

    def __init__(self, ds: HeidelbergDataset, raw: Path, check_md5: bool):
        self.ds = ds
        self.raw = raw
        self.skipped: list[str] = []
        self.warnings: list[str] = []
        self.provenance: list[dict[str, str]] = []
        self._tmp: str | None = None
        if not raw.is_dir():
            raise DatasetError(f"{raw}: RAW folder does not exist. " + ds.spec.where.format(raw=raw))
        md5s = {r.file: r.md5 for r in ds.spec.resources}
        self.files: dict[str, str] = {}
        self.infos: dict[str, spikes_h5.SpikesFileInfo] = {}
        try:
            for split in ds.splits:
                self.files[split] = self._locate(f"{ds.prefix}_{split}.h5", md5s, check_md5)
            for split, path in self.files.items():
                self.infos[split] = spikes_h5.read_info(path)
        except BaseException:
            self.close()
            raise
        self.classes = self._classes()

    # ------------------------------------------------------------------ locate
    def _locate(self, name: str, md5s: dict[str, str | None], check_md5: bool) -> str:
        raw = self.raw
        for form in (name + ".zip", name + ".gz", name):
            path = raw / form
            if path.is_file():
                break
        else:
            raise DatasetError(f"{raw}: none of {name}.zip, {name}.gz, {name} found. "
                               + self.ds.spec.where.format(raw=raw))
        expected = md5s.get(path.name) if check_md5 else None
        if path.name == name:
            self.provenance.append({"file": name, "md5": "extracted file (no published md5)"})
            return str(path)
        self._tmp = self._tmp or tempfile.mkdtemp(prefix="eventshard-h5-")
        dest = os.path.join(self._tmp, name)
        try:
            if path.suffix == ".gz":  # hashed while inflating: one pass over the file
                with open(path, "rb") as fh:
                    hashing = HashingReader(fh)
                    with igzip.open(hashing, "rb") as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 4 << 20)
                    while hashing.read(1 << 22):  # hash what the inflater did not need
                        pass
                md5 = hashing.md5.hexdigest()
            else:  # a zip is read from its end: hash it first
                md5 = md5_file(path) if check_md5 else ""
                self._unzip(path, name, dest)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{path}: cannot be inflated ({exc})") from None
        self.provenance.append({"file": path.name, "md5": md5 if check_md5 else "not checked"})
        if expected and md5 != expected:
            raise md5_mismatch(path, md5, expected)
        return dest

    @staticmethod
    def _unzip(path: Path, name: str, dest: str) -> None:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir() and i.filename.rsplit("/", 1)[-1] == name]
            if not members:
                raise DatasetError(f"{path}: holds no {name}")
            with zf.open(members[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 4 << 20)

    # ------------------------------------------------------------------ classes
    def _classes(self) -> list[str]:
        """Class names in label order: the files' ``extra/keys`` (the same in every file), else the spec's."""
        names: list[str] | None = None
        for split, info in self.infos.items():
            if info.keys is None:
                continue
            if names is not None and info.keys != names:
                raise DatasetError(f"{self.files[split]}: extra/keys differ from the other split's")
            names = info.keys
        if names is None:
            names = list(self.ds.spec.classes)
            self.warnings.append("no extra/keys in the files: classes are named by their label")
        for split, info in self.infos.items():
            if info.samples and int(info.labels.max()) >= len(names):
                row = int(np.argmax(info.labels >= len(names)))
                raise DatasetError(f"{self.files[split]}: row {row}: label {int(info.labels[row])} but only "
                                   f"{len(names)} classes")
        return names

    # ------------------------------------------------------------------ the Source protocol
    def _tasks(self) -> dict[str, list[tuple[str, int, int]]]:
        out: dict[str, list[tuple[str, int, int]]] = {}
        for split, info in self.infos.items():
            out[split] = [(f"{split}/{k:06d}", start, min(start + ROWS_PER_TASK, info.samples))
                          for k, start in enumerate(range(0, info.samples, ROWS_PER_TASK))]
        return out

    def recordings(self, stage: Stage = read_all, want: Want = want_all) -> Iterator[RecordingTask]:
        """One task per block of rows, in file order; workers read the rows themselves."""
        for split, tasks in self._tasks().items():
            speakers = self.infos[split].speakers
            for name, start, stop in tasks:
                if want(name, stop - start):  # rows: a block's share of the file
                    context = {"split": split, "path": self.files[split], "start": start, "stop": stop,
                               "classes": self.classes, "file": f"{self.ds.prefix}_{split}.h5",
                               "speakers": None if speakers is None else speakers[start:stop].tolist()}
                    yield RecordingTask(name=name, context=context)

    def order(self) -> dict[str, list[str]]:
        """Split → task names in shard order (known from the start)."""
        return {split: [name for name, _, _ in tasks] for split, tasks in self._tasks().items()}

    def close(self) -> None:
        """Remove the inflated copies."""
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


_US_OF_FLOAT16: np.ndarray | None = None
"""µs of every float16 bit pattern (:func:`spikes_h5.seconds_to_us` of all 65,536): one gather per block."""


def _to_us(times: np.ndarray) -> np.ndarray:
    """:func:`spikes_h5.seconds_to_us`, by table lookup for float16 (the files' type), else computed."""
    global _US_OF_FLOAT16
    if times.dtype != np.float16:
        return spikes_h5.seconds_to_us(times)
    if _US_OF_FLOAT16 is None:
        with np.errstate(invalid="ignore"):  # NaN / inf patterns: the same values the computation gives
            _US_OF_FLOAT16 = spikes_h5.seconds_to_us(np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
                                                     .view(np.float16))
    return _US_OF_FLOAT16[times.view(np.uint16)]


def cut_rows(ds: HeidelbergDataset, task: RecordingTask) -> CutRecording:
    """Read rows ``[start, stop)`` of one split's file; one :class:`CutSample` per row."""
    ctx = task.context
    (w,) = ds.spec.sensor_size
    path, start, split, classes = ctx["path"], ctx["start"], ctx["split"], ctx["classes"]
    times, units, labels = spikes_h5.read_rows(path, start, ctx["stop"])
    # the whole block at once: one conversion, one range check, one order check; rows are views into it
    sizes = np.fromiter((t.size for t in times), np.int64, len(times))
    bounds = np.zeros(len(times) + 1, np.int64)
    np.cumsum(sizes, out=bounds[1:])
    t_all = _to_us(np.concatenate(times) if times else np.zeros(0, np.float16))
    u_all = (np.concatenate(units) if units else np.zeros(0, np.uint16)).astype(np.uint16, copy=False)
    outside = np.flatnonzero(u_all >= w)
    if outside.size:
        k = int(np.searchsorted(bounds, outside[0], side="right")) - 1
        i = int(outside[0] - bounds[k])
        raise DatasetError(f"{ctx['file']}: row {start + k}: spike {i} has unit {int(u_all[outside[0]])}, outside "
                           f"the {w} units of {ds.spec.id}")
    falls = np.flatnonzero(t_all[1:] < t_all[:-1]) + 1  # a decrease not at a row's first spike is in a row
    unsorted = np.unique(np.searchsorted(bounds, falls[~np.isin(falls, bounds)], side="right") - 1).size
    samples: list[CutSample] = []
    speakers = ctx["speakers"]
    for k, label in enumerate(labels.tolist()):
        row = start + k
        lo, hi = bounds[k], bounds[k + 1]
        meta: dict[str, Any] = {"label": label, "class": classes[label], "file": ctx["file"], "row": row,
                                "split": split}
        if speakers is not None:
            meta["speaker"] = int(speakers[k])
        samples.append(CutSample(f"{label}/{row}", t_all[lo:hi], u_all[lo:hi], None, None, meta))
    events, empty = int(t_all.size), int(np.count_nonzero(sizes == 0))
    warnings = [f"{ctx['file']}: {unsorted} samples of rows {start}-{ctx['stop'] - 1} have decreasing spike "
                "times (kept as recorded; frames need non-decreasing times)"] if unsorted else []
    return CutRecording(samples=samples, events_read=events, empty_windows=empty, warnings=warnings)
