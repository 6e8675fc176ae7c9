"""Datasets whose samples are files listed up front: one :class:`Item` per sample file, any split names.

The class-folder datasets (:mod:`shardgen.datasets.classfolder`) derive everything from
``<class>/<stem>`` paths. The datasets of the second wave (N-CARS, NAVGesture, DVS-Lip, HARDVS,
ES-ImageNet, Bullying10K) differ in where the label comes from (a folder, a token of the file
name, a label list), how many splits they have (HARDVS: train/val/test) and what the key is; so
each dataset module lists its files itself and hands this module finished :class:`Item` records
(key, label, split, where the bytes are). This module then

1. refuses duplicate keys within a split (the message names both files),
2. batches the items in shard order (split, label, key) into worker tasks,
3. runs the background md5 check of the archives (:class:`shardgen.datasets.md5check.Md5Check`),
4. reads each item in a worker (zip member by ``pread``, or a plain file, or bytes handed over by a
   streaming source) and decodes it with the dataset's reader.

Zip listing (safe member names, zips inside a zip) is in :mod:`shardgen.datasets.zips`.
"""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardgen.archive import zip_entry
from shardgen.datasets.base import (
    CutRecording,
    CutSample,
    DatasetError,
    DatasetSpec,
    RecordingTask,
    SourceBase,
    Stage,
    Want,
    first_outside,
    read_all,
    want_all,
)
from shardgen.datasets.classfolder import Reader, SplitRule, read_member, split_by_class
from shardgen.datasets.md5check import Md5Check
from shardgen.datasets.zips import InnerZips


@dataclass(frozen=True)
class Item:
    """One sample file: its key, label and split, and where its bytes are.

    ``container`` is the zip holding it (``None``: a plain file at ``name``, or bytes in ``data``
    for a streamed archive); ``entry`` its :func:`shardgen.archive.zip_entry`; ``file`` the name
    recorded in the sample's metadata.
    """

    key: str
    label: int
    cls: str
    split: str
    name: str
    file: str
    size: int = 0
    container: str | None = None
    entry: tuple[int, int, int, int, int, int] | None = None
    where: str | None = None
    """How errors name the file (an inner zip's copy has a generated name: errors name the original)."""


@dataclass(frozen=True)
class Unit:
    """A sample before its split is known: what :func:`shardgen.datasets.classfolder.split_by_class` needs."""

    cls: str
    stem: str
    name: str
    split: str | None = None


def split_units(units: list[Unit], rule: SplitRule) -> dict[Unit, str]:
    """Each unit's split by a class-folder :class:`SplitRule` (``ratio``, ``ordered``, ``first-k``, ``official``)."""
    return split_by_class(units, rule)


# ------------------------------------------------------------------------------------------ listing helpers


def member_item(container: str, info: zipfile.ZipInfo, key: str, label: int, cls: str, split: str, file: str,
                archive: str | None = None, shift: int = 0) -> Item:
    """An :class:`Item` for a zip member; ``archive`` names the zip in errors (default: the container's name);
    ``shift``: where the zip starts in ``container`` (:class:`InnerZip`)."""
    where = f"{archive or os.path.basename(container)}:{info.filename}"
    entry = zip_entry(info)
    if shift:
        entry = (entry[0] + shift, *entry[1:])
    return Item(key, label, cls, split, info.filename, file, info.file_size, container, entry, where)


def file_item(path: Path, key: str, label: int, cls: str, split: str, file: str) -> Item:
    """An :class:`Item` for a plain file (links are refused by the caller's listing)."""
    return Item(key, label, cls, split, str(path), file, path.stat().st_size)


def walk_files(root: Path, suffix: str, skipped: list[str]) -> Iterator[Path]:
    """Regular files below ``root`` ending in ``suffix`` (case-insensitive), sorted by path; links reported."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for d in list(dirnames):
            if (base / d).is_symlink():
                skipped.append(f"{base / d}: a symbolic link (not followed)")
                dirnames.remove(d)
        for f in sorted(filenames):
            p = base / f
            if not f.lower().endswith(suffix) or f.startswith("._"):
                continue
            if p.is_symlink():
                skipped.append(f"{p}: a symbolic link (not followed)")
            elif p.is_file():
                yield p


# ------------------------------------------------------------------------------------------ the source


@dataclass
class FileListSource(SourceBase):
    """A listed download: items split and batched in shard order (split, label, key).

    ``md5_jobs`` are ``(path, published md5)`` pairs checked in a background thread;
    ``rule`` is what ``index.json`` records as the split rule; ``view_splits`` the extra splits
    made of others' shards (``{"all": ["train", "test"]}``); ``inner`` temporary inner-zip copies
    removed by :meth:`close`.
    """

    spec: DatasetSpec
    items: list[Item]
    classes: list[str]
    split_names: tuple[str, ...] = ("train", "test")
    rule: dict[str, Any] = field(default_factory=lambda: {"rule": "official"})
    view_splits: dict[str, list[str]] = field(default_factory=dict)
    md5_jobs: list[tuple[Path, str]] = field(default_factory=list)
    check_md5: bool = True
    provenance: list[dict[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    inner: InnerZips | None = None
    batch_files: int = 256
    batch_bytes: int = 48 << 20

    def __post_init__(self) -> None:
        self._md5: Md5Check | None = None
        if self.md5_jobs and self.check_md5:
            self._md5 = Md5Check(list(self.md5_jobs))
        elif self.md5_jobs:
            self.provenance.extend({"file": p.name, "md5": "not checked"} for p, _ in self.md5_jobs)
        self.ordered = order_items(self.items, self.split_names)
        self._names: dict[str, list[str]] | None = None

    def split_rule(self) -> dict[str, Any]:
        """How the samples were split, as recorded in ``index.json``."""
        return dict(self.rule)

    def views(self) -> dict[str, list[str]]:
        """Extra splits made of others' shards."""
        return dict(self.view_splits)

    def listing(self) -> list[tuple[str, int]] | None:
        """Every sample file ``(<split>/<key>, size)``: jobs balance over the files, not the batches."""
        return [(f"{split}/{it.key}", it.size) for split, items in self.ordered.items() for it in items]

    def recordings(self, stage: Stage = read_all, want: Want = want_all) -> Iterator[RecordingTask]:
        """One task per batch of the wanted files, in shard order; workers read the files themselves."""
        names: dict[str, list[str]] = {}
        for split, items in self.ordered.items():
            names[split] = []
            mine = [(p, it) for p, it in enumerate(items) if want(f"{split}/{it.key}", it.size)]
            for name, batch in batch_items(split, mine, self.batch_files, self.batch_bytes):
                names[split].append(name)
                yield RecordingTask(name=name, context={"split": split, "items": [it for _, it in batch]},
                                    places=[p for p, _ in batch])
        self._names = names

    def order(self) -> dict[str, list[str]]:
        """Split → this run's batch names in shard order, after the md5 check (:class:`DatasetError` on a
        mismatch)."""
        self.finish_md5()
        return self._names or {}

    def finish_md5(self) -> None:
        """Wait for the background md5 check; record it; :class:`DatasetError` on a mismatch."""
        if self._md5 is None:
            return
        check, self._md5 = self._md5, None
        check.finish(self.provenance)

    def close(self) -> None:
        """Remove temporary inner-zip copies."""
        if self.inner is not None:
            self.inner.close()


def order_items(items: list[Item], split_names: tuple[str, ...]) -> dict[str, list[Item]]:
    """Split → items sorted by (label, key), the shard order; a duplicate key in a split is an error."""
    out: dict[str, list[Item]] = {s: [] for s in split_names}
    seen: dict[tuple[str, str], Item] = {}
    for it in items:
        if it.split not in out:
            raise DatasetError(f"{it.container or it.name}: {it.name!r}: split {it.split!r} is not one of "
                               f"{', '.join(split_names)}")
        other = seen.get((it.split, it.key))
        if other is not None:
            raise DatasetError(f"{it.container or it.name}: {it.name!r} and {other.name!r} give the same sample key "
                               f"{it.key!r} in split {it.split!r}")
        seen[(it.split, it.key)] = it
        out[it.split].append(it)
    return {split: sorted(its, key=lambda i: (i.label, i.key)) for split, its in out.items()}


def batch_items(split: str, items: list[tuple[int, Item]], batch_files: int, batch_bytes: int
                ) -> list[tuple[str, list[tuple[int, Item]]]]:
    """Batches ``(name, [(place, item)])`` of one split's items, in their order, bounded by files and bytes.

    A batch may span classes (ES-ImageNet has 1000, often a few samples each): one task per batch, not per class.
    """
    out: list[tuple[str, list[tuple[int, Item]]]] = []
    current: list[tuple[int, Item]] = []
    size = 0
    for pi in items:
        if current and (len(current) >= batch_files or size + pi[1].size > batch_bytes):
            out.append((f"{split}/{len(out):06d}", current))
            current, size = [], 0
        current.append(pi)
        size += pi[1].size
    if current:
        out.append((f"{split}/{len(out):06d}", current))
    return out


def cut_items(spec: DatasetSpec, read: Reader, task: RecordingTask, allow_truncated: bool) -> CutRecording:
    """Worker: read and check every item of a batch; one :class:`CutSample` per item.

    An item's bytes come from ``task.context["data"]`` (a streaming source hands them over, by key),
    else from its zip member or plain file.
    """
    h, w = spec.sensor_size
    split = task.context["split"]
    handed: dict[str, bytes] = task.context.get("data") or {}
    samples: list[CutSample] = []
    skipped: Counter[str] = Counter()
    warnings: list[str] = []
    events_read = empty = truncated = 0
    for it in task.context["items"]:
        where = it.where or (f"{os.path.basename(it.container)}:{it.name}" if it.container else it.name)
        data = handed[it.key] if it.key in handed else read_member(it.container, it.name, it.entry)
        ev = read(data, where, allow_truncated)
        n = len(ev)
        i = first_outside(ev.x, ev.y, h, w)
        if i is not None:
            raise DatasetError(
                f"{where}: event {i} at x={int(ev.x[i])}, y={int(ev.y[i])} lies outside the {w}x{h} sensor "
                f"of {spec.id}"
            )
        skipped.update(ev.skipped)
        if ev.truncated_bytes:
            truncated += ev.truncated_bytes
            warnings.append(f"{where}: truncated; dropped the last {ev.truncated_bytes} bytes")
        events_read += n
        empty += n == 0
        meta = {"label": it.label, "class": it.cls, "file": it.file, "split": split}
        samples.append(CutSample(it.key, ev.t, ev.x, ev.y, ev.p, meta))
    return CutRecording(samples=samples, events_read=events_read, empty_windows=empty, truncated_bytes=truncated,
                        warnings=warnings, skipped_words=dict(skipped))
