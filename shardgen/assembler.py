"""Writing a conversion's shards: the finished recordings' sample frames, from their part files, in each split's order.

Workers leave each recording's compressed frames in a part file (:mod:`shardgen.convert`); once the split lists are
known and a split's recordings are all done, :class:`Assembler` writes that split's shards, in a seeded permutation
of the dataset's order (or in that order), through :class:`~shardgen.writer.ShardWriter`.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from loader.index import permutation_entry
from shardgen.balance import JobShare
from shardgen.datasets.base import DatasetError
from shardgen.output import ShardSetOutput

if TYPE_CHECKING:
    from shardgen.convert import RecordingResult

SAMPLE_ORDERS = ("shuffled", "dataset")
"""How shards store a split: a seeded permutation (default) or the dataset's own order."""


class Assembler:
    """Writes the finished recordings' samples into their split's shards.

    Once a split's recordings are all done, its samples (the dataset's order: split list, then
    sample order within a recording) are written in a seeded permutation (``sample_order=
    "shuffled"``), recorded in the split's ``permutation``, or as they are (``"dataset"``). Frames
    are views of the mapped part files, so the main process never holds a recording.
    """

    def __init__(self, output: ShardSetOutput, shard_size: int, want: JobShare | None = None,
                 sample_order: str = "shuffled", order_seed: int = 0,
                 sort_key: Callable[[str, int], Any] | None = None):
        if sample_order not in SAMPLE_ORDERS:
            raise DatasetError(f"sample order must be one of {', '.join(SAMPLE_ORDERS)}, got {sample_order!r}")
        self.output = output
        self.shard_size = shard_size
        self.want = want or JobShare(1, 0)
        self.record_order = False
        """Record each split's ``dataset_order`` (a job of several: what ``shardgen merge`` combines)."""
        self.places: dict[str, list[int]] = {}
        """Task → places of its input files in the whole split's order (tasks that batch files of a job)."""
        self._place: dict[str, dict[str, int]] = {}
        self.sample_order = sample_order
        self.order_seed = int(order_seed)
        self.sort_key = sort_key
        self.order: dict[str, list[str]] | None = None
        self._written: dict[str, dict[str, Any]] = {}

    def set_order(self, order: dict[str, list[str]] | None) -> None:
        """Adopt the split lists once known (only the recordings ``want`` selects); refuse duplicates."""
        if self.order is not None or order is None:
            return
        seen: set[str] = set()
        for names in order.values():
            for name in names:
                if name in seen:
                    raise DatasetError(f"recording {name} is listed twice in the split lists")
                seen.add(name)
        self._place = {split: {n: i for i, n in enumerate(names)} for split, names in order.items()}
        self.order = {split: [n for n in names if self.want.owns(n)] for split, names in order.items()}

    def permutation(self, split: str, n: int) -> np.ndarray | None:
        """Stored position ``j`` holds the dataset's sample ``perm[j]`` (``None``: the dataset's order)."""
        if self.sample_order == "dataset":
            return None
        return np.random.default_rng([self.order_seed, zlib.crc32(split.encode("utf-8"))]).permutation(n)

    def write_ready(self, results: dict[str, RecordingResult]) -> None:
        """Write each split whose recordings are all done (while the last recordings of another split are
        still being cut, the main process would otherwise wait idle); :meth:`finish` writes the rest."""
        for split, names in (self.order or {}).items():
            if split not in self._written and all(n in results for n in names):
                self._written[split] = self._write(split, [results[n] for n in names])

    def finish(self, results: dict[str, RecordingResult]) -> dict[str, Any]:
        """Check that every listed recording was found, write every split; return their index entries."""
        assert self.order is not None
        for split, names in self.order.items():
            for name in names:
                if name not in results:
                    raise DatasetError(f"{name}: listed for split {split!r} but not found in the download")
        self.write_ready(results)
        return {split: self._written[split] for split in self.order}

    def _write(self, split: str, recordings: list[RecordingResult]) -> dict[str, Any]:
        frames = PartFrames()
        try:
            return self._write_frames(split, recordings, frames)
        finally:
            frames.close()

    def _write_frames(self, split: str, recordings: list[RecordingResult], frames: PartFrames) -> dict[str, Any]:
        where = [(res, k) for res in recordings for k in range(len(res.sizes))]
        if self.sort_key is not None:  # the source could not list the samples in the dataset's order
            where.sort(key=lambda rk: self.sort_key(rk[0].keys[rk[1]], rk[0].labels[rk[1]]))
        perm = self.permutation(split, len(where))
        writer = self.output.writer(split, self.shard_size)
        for i in perm.tolist() if perm is not None else range(len(where)):
            res, k = where[i]
            with frames.read(res.part, res.offsets[k], res.sizes[k]) as frame:
                writer.add(frame, res.events[k])
        info = writer.close()
        if perm is not None:
            info["permutation"] = permutation_entry(self.order_seed, perm)
        if self.record_order:
            info["dataset_order"] = self._dataset_order(split, recordings)
        return info

    def _dataset_order(self, split: str, recordings: list[RecordingResult]) -> dict[str, list[int]]:
        """Places of this job's input units in the whole split's order, and their samples (``docs/FORMAT.md``)."""
        places: list[int] = []
        counts: list[int] = []
        for res in recordings:
            own = self.places.get(res.name)
            if own is None:  # a task that is one input unit: its place in the split list
                places.append(self._place[split][res.name])
                counts.append(len(res.sizes))
            elif len(own) != len(res.sizes):
                raise DatasetError(f"{res.name}: {len(res.sizes)} samples from {len(own)} input files")
            else:
                places.extend(own)
                counts.extend([1] * len(own))
        return {"places": places, "counts": counts}


class PartFrames:
    """Sample frames out of part files: each file mapped once, frames handed out as views (no copy, no
    system call per frame; the caller releases each, ``with frames.read(…) as frame``); a bounded number of
    files stay mapped."""

    LIMIT = 256

    def __init__(self) -> None:
        self._maps: dict[str, mmap.mmap] = {}

    def read(self, path: str, offset: int, size: int) -> memoryview:
        m = self._maps.get(path)
        if m is None:
            if len(self._maps) >= self.LIMIT:
                self.close()
            with open(path, "rb") as f:
                length = os.fstat(f.fileno()).st_size
                if offset + size > length:
                    raise DatasetError(f"{path}: part file shorter than its samples (byte {offset})")
                m = self._maps[path] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if offset + size > len(m):
            raise DatasetError(f"{path}: part file shorter than its samples (byte {offset})")
        with memoryview(m) as whole:
            return whole[offset : offset + size]

    def close(self) -> None:
        """Unmap the files (every frame handed out must have been released)."""
        for m in self._maps.values():
            m.close()
        self._maps.clear()
