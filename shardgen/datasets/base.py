"""What every dataset module provides, and the small records passed between the conversion stages.

A dataset module (one per dataset, e.g. :mod:`shardgen.datasets.dvs128_gesture`) defines
``SPEC`` (a :class:`DatasetSpec`: what ``shardgen list``/``download`` and the docs say about it),
``open_source(raw, check_md5, split, **options) -> Source`` (runs in the main process: finds and
checks the download, yields one :class:`RecordingTask` per raw recording or batch of files),
``cut(task, allow_truncated) -> CutRecording`` (runs in a worker process: parses and cuts into
samples) and, if it takes options, ``OPTIONS``. :mod:`shardgen.convert` does the rest the same way
for every dataset. The four class-folder datasets share :mod:`shardgen.datasets.classfolder`.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from loader.errors import EventshardError
from shardgen.sharedbuf import SlotRef

Stage = Callable[[BinaryIO, int], "bytes | SlotRef"]
"""How a source hands over a recording read from a stream: ``stage(reader, length)``."""


def read_all(src: BinaryIO, length: int) -> bytes:
    """The default :data:`Stage`: just read the bytes."""
    return src.read(length)


Want = Callable[[str, int], bool]
"""``want(name, size)``: whether this conversion converts the input file (or recording) ``name`` of ``size``
bytes; a job's share with ``--num-jobs`` (:class:`shardgen.balance.JobShare`). A source offers every
input file exactly once, in the same order in every job, before it reads it."""


def want_all(name: str, size: int = 0) -> bool:
    """The default :data:`Want`: every input file."""
    return True


@dataclass(frozen=True)
class Resource:
    """One file of a dataset's download, as its authors publish it.

    ``file`` is its name inside RAW; ``url`` where it can be fetched automatically (``None``: by hand
    only); ``md5`` the published checksum (``None``: none is published); ``page`` where a person gets
    it by hand (a landing page, a mirror, instructions).
    """

    file: str
    url: str | None
    md5: str | None
    page: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """What ``shardgen list``, ``shardgen download`` and the docs say about a dataset.

    ``classes`` are the class names in label order as the dataset is published (class-folder
    datasets number the folders they find in sorted order, which gives this order on a complete
    download); ``where`` says how to get the files by hand (``{raw}`` is replaced by the RAW folder).
    """

    id: str
    title: str
    sensor_size: tuple[int, ...]
    """``(H, W)``; ``(W,)`` for a 1-D sensor (SHD, SSC: units, no y and p)."""
    classes: tuple[str, ...]
    resources: tuple[Resource, ...]
    downloadable: bool
    where: str
    reader: str
    split_rule: str
    conventions: str = ""


def first_outside(x: np.ndarray, y: np.ndarray, height: int, width: int) -> int | None:
    """Index of the first event with ``x >= width`` or ``y >= height`` (``None`` when all lie inside).

    Two reductions in the common case; the offending event is located only when there is one.
    """
    if x.size == 0 or (int(x.max()) < width and int(y.max()) < height):
        return None
    return int(np.flatnonzero((x >= width) | (y >= height))[0])


class DatasetError(EventshardError, ValueError):
    """The raw download is missing, incomplete or malformed; the message names the file."""


@dataclass
class RecordingTask:
    """One raw recording to cut into samples, as handed to a worker process."""

    name: str
    data: bytes | SlotRef | None = None
    path: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    places: list[int] | None = None
    """For a task that batches several input files of one sample each: each file's place in the whole
    split's order (all jobs' files), in the task's order. ``None``: the task is one input unit, placed
    by its name's place in :meth:`Source.order`."""

    def read(self) -> bytes | memoryview | mmap.mmap:
        """The recording's bytes: from memory, a shared slot, or memory-mapped from ``path``."""
        if isinstance(self.data, SlotRef):
            return self.data.view()
        if self.data is not None:
            return self.data
        assert self.path is not None
        with open(self.path, "rb") as f:
            if f.seek(0, 2) == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


@dataclass
class CutSample:
    """One sample: its key, its events (views into the recording) and its label metadata."""

    key: str
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray | None  # None for a 1-D sensor
    p: np.ndarray | None
    meta: dict[str, Any]
    rank: Any = None
    """Place in the dataset's order among the recording's samples (comparable values), when a cut
    yields them in another order (as windows close); ``None``: the order yielded."""


class RestartCut(Exception):
    """Raised by a streaming cut that cannot go on (time stamps that go back): the worker drops what it
    wrote for the recording and calls the dataset's ``cut`` again with ``stream=False``."""


@dataclass
class CutRecording:
    """Samples of one recording plus what the summary reports about it."""

    samples: Iterable[CutSample]
    """The samples; a generator for a streaming cut, which fills the counts below when it ends."""
    events_read: int = 0
    empty_windows: int = 0
    truncated_bytes: int = 0
    skipped_packets: int = 0
    warnings: list[str] = field(default_factory=list)
    skipped_words: dict[str, int] = field(default_factory=dict)
    """Words read but not kept as events, by kind (overflow markers, APS, IMU …)."""


class SourceBase:
    """What a source has unless it says otherwise: an official split, no view splits, nothing to close."""

    sample_sort_key: Callable[[str, int], Any] | None = None
    """``f(key, label)`` that puts a split's samples in the dataset's order, for a source that cannot list
    them in that order (RAR volumes are read in archive order); ``None``: the order the split lists give."""

    sensor_size: tuple[int, int] | None = None
    """The run's sensor size when the dataset has none of its own (``folder``); else ``SPEC.sensor_size``."""

    def split_rule(self) -> dict[str, Any]:
        """How the samples were split, as recorded in ``index.json``."""
        rule = getattr(self, "rule", None)
        return rule.describe() if rule is not None else {"rule": "official"}

    def views(self) -> dict[str, list[str]]:
        """Extra splits listing other splits' shards again (``all`` = train + test)."""
        return {}

    def listing(self) -> list[tuple[str, int]] | None:
        """Every input file ``(name, size)`` the source offers to ``want``, when known before reading
        (jobs are then balanced over the whole listing); ``None`` for a streamed archive."""
        return None

    def close(self) -> None:
        """Release what the source holds (temporary copies of inner archives)."""


class Source(Protocol):
    """A checked raw download, ready to be walked once (see :class:`SourceBase` for the rest)."""

    classes: list[str]
    provenance: list[dict[str, str]]
    skipped: list[str]
    warnings: list[str]
    sensor_size: tuple[int, int] | None

    def split_rule(self) -> dict[str, Any]:
        """How the samples were split."""
        ...

    def views(self) -> dict[str, list[str]]:
        """Extra splits made of others' shards."""
        ...

    def close(self) -> None:
        """Release what the source holds."""
        ...

    def listing(self) -> list[tuple[str, int]] | None:
        """Input files ``(name, size)`` when known up front."""
        ...

    def recordings(self, stage: Stage = read_all, want: Want = want_all) -> Iterator[RecordingTask]:
        """Yield the recordings in the order they are stored (may raise :class:`DatasetError`)."""
        ...

    def order(self) -> dict[str, list[str]]:
        """After :meth:`recordings` is exhausted: split → recording names in shard order."""
        ...


def raw_folder(raw: Path | str, where: str, split: dict[str, Any] | None = None, fixed: str | None = None) -> Path:
    """RAW as a :class:`~pathlib.Path`, checked: it must be a folder (else the error says ``where`` to get the
    files, formatted with ``raw``), and a dataset whose split is ``fixed`` (its description) refuses ``split``."""
    raw = Path(raw)
    if split and fixed is not None:
        raise DatasetError(f"{fixed}; --split-rule does not apply")
    if not raw.is_dir():
        raise DatasetError(f"{raw}: RAW folder does not exist. " + where.format(raw=raw))
    return raw
