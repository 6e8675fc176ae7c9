"""Datasets shipped as class folders of one-sample files inside zip archives.

CIFAR10-DVS, N-MNIST, N-Caltech101 and ASL-DVS all look alike once unpacked: ``<class>/<stem>.<ext>``,
one recording per file, one sample per recording. A dataset module declares the differences in
one :class:`ClassFolderDataset` (resources, archives and the split each holds, file extension,
reader with the dataset's coordinate convention, split rule); this module does the rest:

1. **Find** the download in RAW: the archives as published (zips, possibly nested zips, checked
   against their md5 in a background thread while the conversion runs), or the folder they extract to.
2. **List** every member ``…/<class>/<stem><ext>`` (unsafe names and links are skipped and reported,
   never followed); classes are numbered in the sorted order of the folder names (SpikingJelly's
   ``DatasetFolder`` rule), files within a class in sorted name order.
3. **Split** by the rule: the archive's own split (N-MNIST), the first ``k`` files of each class as
   test (CIFAR10-DVS, the TEBN rule), or a seeded per-class ratio.
4. **Hand out** batches of files (one worker task each; small files would otherwise cost more in
   task overhead than in decoding); a worker reads its members straight from the zip.

Keys are ``<class folder>/<file stem>``, which is where SpikingJelly stores the same sample.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TypeVar

import numpy as np

from shardgen.archive import ArchiveError, read_zip_entry, zip_entry
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
from shardgen.datasets.md5check import Md5Check
from shardgen.formats.events import Events

Reader = Callable[[Any, str, bool], Events]
"""``read(data, name, allow_truncated) -> Events`` with the dataset's coordinate convention applied."""

SPLIT_RULES = ("official", "first-k", "ratio", "ordered")
MAX_SAMPLE_FILE_BYTES = 1 << 30
"""Largest sample file read from an archive (the published ones are far smaller)."""
ALL_SPLIT = "all"


@dataclass(frozen=True)
class SplitRule:
    """How samples are divided into ``train`` and ``test``.

    ``official``: the split each archive holds (N-MNIST's ``Train.zip`` / ``Test.zip``).
    ``first-k``: in every class the ``test_per_class`` files with the lowest number in their name
    are test, the rest train (CIFAR10-DVS files 0–99, the TEBN rule of SpikingJelly's
    ``CIFAR10DVSTEBNSplit``). ``ratio``: in every class a seeded random ``train_ratio`` of the files
    is train (the permutation is seeded by ``seed`` and the class name, so adding a class does not
    change the others). ``ordered``: in every class the first ``train_ratio`` of the files in name
    order are train, exactly SpikingJelly's ``split_to_train_test_set(train_ratio, dataset, n)``
    with ``random_split=False``. Both ratio rules put ``ceil(train_ratio * n)`` files of a class of
    ``n`` in train, as SpikingJelly does.
    """

    kind: str
    test_per_class: int = 100
    train_ratio: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SPLIT_RULES:
            raise DatasetError(f"split rule {self.kind!r}: expected one of {', '.join(SPLIT_RULES)}")
        if self.kind in ("ratio", "ordered") and not 0.0 <= self.train_ratio <= 1.0:
            raise DatasetError(f"--train-ratio {self.train_ratio}: must lie in [0, 1]")
        if self.kind == "first-k" and self.test_per_class < 0:
            raise DatasetError(f"--test-per-class {self.test_per_class}: must be >= 0")

    def describe(self) -> dict[str, Any]:
        """The rule as recorded in ``index.json``."""
        if self.kind == "first-k":
            return {"rule": "first-k", "test_per_class": self.test_per_class, "order": "number in the file name"}
        if self.kind == "ratio":
            return {"rule": "ratio", "train_ratio": self.train_ratio, "seed": self.seed}
        if self.kind == "ordered":
            return {"rule": "ordered", "train_ratio": self.train_ratio, "order": "file name"}
        return {"rule": "official"}


def make_split_rule(split: dict[str, Any] | None, default: SplitRule, dataset_id: str, has_official: bool
                    ) -> SplitRule:
    """``default`` updated by the user's ``rule``, ``train_ratio``, ``seed``, ``test_per_class``.

    Parameters
    ----------
    split : dict or None
        ``convert(split=…)``: any of ``rule``, ``train_ratio``, ``seed``, ``test_per_class``.
    default : SplitRule
        The dataset's own rule (returned as is when ``split`` is empty).
    dataset_id : str
        Named in the error.
    has_official : bool
        Whether the download holds a split of its own (``rule="official"`` is refused otherwise).

    Returns
    -------
    SplitRule
    """
    if not split:
        return default
    kind = split.get("rule") or default.kind
    if kind == "official" and not has_official:
        raise DatasetError(f"{dataset_id} has no official split; use --split-rule ratio or first-k")
    return SplitRule(
        kind=kind,
        test_per_class=int(split.get("test_per_class") or default.test_per_class),
        train_ratio=float(split["train_ratio"] if split.get("train_ratio") is not None else default.train_ratio),
        seed=int(split["seed"] if split.get("seed") is not None else default.seed),
    )


class Splittable(Protocol):
    """What :func:`split_by_class` needs of a sample unit (a file, a labels-csv row …); hashable."""

    @property
    def cls(self) -> str:
        """Class name (the rule is applied within each class)."""
        ...

    @property
    def stem(self) -> str:
        """Name used for ordering (and, for ``first-k``, the number in it)."""
        ...

    @property
    def name(self) -> str:
        """Unique name: breaks ties in the ``ratio``/``ordered`` ordering."""
        ...

    @property
    def split(self) -> str | None:
        """The unit's official split, if it has one."""
        ...


S = TypeVar("S", bound=Splittable)


def split_by_class(units: Iterable[S], rule: SplitRule, where: Callable[[S], str] = lambda u: u.name) -> dict[S, str]:
    """Assign every unit to ``train`` or ``test`` by ``rule``, class by class (see :class:`SplitRule`).

    Parameters
    ----------
    units : iterable of Splittable
        In a deterministic order (``first-k`` keeps it among equal numbers).
    rule : SplitRule
        ``official`` takes each unit's own ``split``; ``first-k``, ``ratio`` and ``ordered`` as documented there.
    where : callable
        Names a unit in the error raised when ``official`` meets a unit without a split.

    Returns
    -------
    dict
        Unit → split name.
    """
    by_class: dict[str, list[S]] = {}
    for m in units:
        by_class.setdefault(m.cls, []).append(m)
    split_of: dict[S, str] = {}
    for cls, ms in by_class.items():
        if rule.kind == "official":
            for m in ms:
                if m.split is None:
                    raise DatasetError(f"{where(m)}: holds no official split")
                split_of[m] = m.split
        elif rule.kind == "first-k":
            ranked = sorted(ms, key=lambda m: _natural_number(m.stem))
            for i, m in enumerate(ranked):
                split_of[m] = "test" if i < rule.test_per_class else "train"
        else:
            ordered = sorted(ms, key=lambda m: (m.stem, m.name))
            n_train = math.ceil(rule.train_ratio * len(ordered))
            if rule.kind == "ordered":
                perm = np.arange(len(ordered))
            else:
                perm = np.random.default_rng([rule.seed, zlib.crc32(cls.encode())]).permutation(len(ordered))
            for rank, i in enumerate(perm.tolist()):
                split_of[ordered[i]] = "train" if rank < n_train else "test"
    return split_of


@dataclass(frozen=True)
class ClassFolderDataset:
    """The declaration of one class-folder dataset (see the module docstring).

    ``archives`` maps each zip in RAW to the split it holds (``None``: no split of its own);
    ``extracted`` maps a folder (relative to RAW, ``"."`` for RAW itself) that an extracted
    download has to the split it holds; ``nested``: the archive holds one zip per class.
    """

    spec: DatasetSpec
    extension: str
    archives: dict[str, str | None]
    extracted: dict[str, str | None]
    read: Reader
    default_split: SplitRule
    nested: bool = False
    batch_files: int = 512
    batch_bytes: int = 48 << 20

    def split_rule(self, split: dict[str, Any] | None) -> SplitRule:
        """The default rule updated by the user's ``rule``, ``train_ratio``, ``seed``, ``test_per_class``."""
        has_official = any(v is not None for v in self.archives.values())
        return make_split_rule(split, self.default_split, self.spec.id, has_official)

    def open_source(self, raw: Path | str, check_md5: bool = True, split: dict[str, Any] | None = None
                    ) -> ClassFolderSource:
        """Find and list the download in ``raw`` (see :class:`ClassFolderSource`)."""
        return ClassFolderSource(self, Path(raw), check_md5, self.split_rule(split))

    def cut(self, task: RecordingTask, allow_truncated: bool = False) -> CutRecording:
        """Worker: read every file of one batch; each file is one sample."""
        return cut_batch(self, task, allow_truncated)


@dataclass(frozen=True)
class Member:
    """One sample file: where it is (zip ``container`` or ``None`` for a plain file) and what it is."""

    container: str | None
    name: str
    size: int
    cls: str
    stem: str
    split: str | None
    entry: tuple[int, int, int, int, int, int] | None = None
    """Where the member lies in its zip (:func:`shardgen.archive.zip_entry`)."""


def _natural_number(stem: str) -> tuple[int, str]:
    """Sort key of the ``first-k`` rule: the last number in the name (``cifar10_cat_17`` → 17)."""
    nums = re.findall(r"\d+", stem)
    return (int(nums[-1]) if nums else -1, stem)


def _parts(name: str) -> tuple[str, ...]:
    """``PurePosixPath(name).parts`` for a relative member name, by plain string splitting (listing hot path)."""
    return tuple(p for p in name.split("/") if p and p != ".")


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


class ClassFolderSource(SourceBase):
    """A located, listed and split class-folder download, walked once by :func:`shardgen.convert.convert`."""

    def __init__(self, ds: ClassFolderDataset, raw: Path, check_md5: bool, rule: SplitRule):
        self.ds = ds
        self.raw = raw
        self.rule = rule
        self.check_md5 = check_md5
        self.skipped: list[str] = []
        self.warnings: list[str] = []
        self.provenance: list[dict[str, str]] = []
        self._tmp: str | None = None
        self._md5: Md5Check | None = None
        spec = ds.spec
        if not raw.is_dir():
            raise DatasetError(f"{raw}: RAW folder does not exist. " + spec.where.format(raw=raw))
        members = self._locate()
        self.classes = sorted({m.cls for m in members})
        if not self.classes:
            raise DatasetError(f"{raw}: no '<class>/<name>{ds.extension}' files found. " + spec.where.format(raw=raw))
        expected = set(spec.classes)
        if expected and set(self.classes) != expected:
            extra = sorted(set(self.classes) - expected)
            missing = sorted(expected - set(self.classes))
            self.warnings.append(
                f"class folders differ from the published {len(expected)}: "
                f"{len(missing)} missing {missing[:5]}, {len(extra)} unexpected {extra[:5]}; "
                "labels follow the sorted folders found"
            )
        self.split_of = self._split(members)
        self.ordered = self._order(members)
        self._names: dict[str, list[str]] | None = None

    # ------------------------------------------------------------------ locate and list
    def _locate(self) -> list[Member]:
        ds, raw = self.ds, self.raw
        zips = {name: split for name, split in ds.archives.items() if (raw / name).is_file()}
        if zips:
            missing = sorted(set(ds.archives) - set(zips))
            if missing and not ds.nested:
                self.warnings.append(f"{', '.join(missing)} not in {raw}: converting the others only")
            md5s = {r.file: r.md5 for r in ds.spec.resources}
            jobs = [(raw / name, md5s[name]) for name in sorted(zips) if md5s.get(name)]
            for name in sorted(zips):
                if not md5s.get(name):
                    self.provenance.append({"file": name, "md5": "none published"})
            if self.check_md5 and jobs:
                self._md5 = Md5Check(jobs)
            elif jobs:
                self.provenance.extend({"file": p.name, "md5": "not checked"} for p, _ in jobs)
            members: list[Member] = []
            for name in sorted(zips):
                members.extend(self._list_zip(raw / name, zips[name]))
            return members
        for folder in ds.extracted:
            root = raw / folder
            if root.is_dir() and any(root.rglob(f"*{ds.extension}")):
                return self._list_folders(ds.extracted)
        raise DatasetError(
            f"{raw}: none of {', '.join(ds.archives)} found (nor an extracted folder). " + ds.spec.where.format(raw=raw)
        )

    def _list_zip(self, path: Path, split: str | None) -> list[Member]:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{path}: not a readable zip archive ({exc})") from None
        with zf:
            infos = zf.infolist()
            if self.ds.nested:
                return self._list_nested(path, zf, infos)
            return self._members_of(str(path), path.name, infos, split)

    def _list_nested(self, path: Path, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> list[Member]:
        """Copy each inner zip to a private temporary folder (under a generated name) and list it."""
        self._tmp = self._tmp or tempfile.mkdtemp(prefix="eventshard-inner-")
        members: list[Member] = []
        inner = [i for i in infos if i.filename.lower().endswith(".zip") and not i.is_dir()]
        if not inner:
            raise DatasetError(f"{path}: holds no inner .zip archives")
        for k, info in enumerate(inner):
            if not self._safe(path.name, info):
                continue
            dest = Path(self._tmp) / f"{k:04d}.zip"
            try:
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 4 << 20)
                with zipfile.ZipFile(dest) as izf:
                    label = f"{path.name}:{info.filename}"
                    members.extend(self._members_of(str(dest), label, izf.infolist(), None))
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                raise DatasetError(f"{path}: member {info.filename!r}: not a readable zip ({exc})") from None
        return members

    def _safe(self, archive: str, info: zipfile.ZipInfo) -> bool:
        name = info.filename
        parts = _parts(name)
        if name.startswith(("/", "\\")) or "\\" in name or ".." in parts or (parts and ":" in parts[0]):
            self.skipped.append(f"{archive}: member {name!r}: points outside the archive's folder (not read)")
            return False
        if _is_link(info):
            self.skipped.append(f"{archive}: member {name!r}: a symbolic link (not followed)")
            return False
        return True

    def _members_of(self, container: str, label: str, infos: list[zipfile.ZipInfo], split: str | None
                    ) -> list[Member]:
        ext = self.ds.extension.lower()
        out = []
        for info in infos:
            if info.is_dir() or not self._safe(label, info):
                continue
            parts = _parts(info.filename)
            if not parts or not parts[-1].lower().endswith(ext) or parts[-1].startswith("._") or "__MACOSX" in parts:
                continue
            if len(parts) < 2:
                self.skipped.append(f"{label}: member {info.filename!r}: not inside a class folder")
                continue
            if info.file_size > MAX_SAMPLE_FILE_BYTES:  # a zip bomb must not be inflated into memory
                raise DatasetError(f"{label}: member {info.filename!r}: {info.file_size:,} bytes, more than one "
                                   f"sample file may hold (limit {MAX_SAMPLE_FILE_BYTES:,})")
            stem = parts[-1][: -len(ext)]
            out.append(Member(container, info.filename, info.file_size, parts[-2], stem, split, zip_entry(info)))
        return out

    def _list_folders(self, extracted: dict[str, str | None]) -> list[Member]:
        ext = self.ds.extension.lower()
        members: list[Member] = []
        for folder, split in extracted.items():
            root = self.raw / folder
            if not root.is_dir():
                continue
            for cls_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
                for f in sorted(cls_dir.iterdir()):
                    if f.is_symlink():
                        self.skipped.append(f"{f}: a symbolic link (not followed)")
                    elif f.is_file() and f.name.lower().endswith(ext) and not f.name.startswith("._"):
                        members.append(Member(None, str(f), f.stat().st_size, cls_dir.name,
                                              f.name[: -len(ext)], split))
        self.provenance.append({"file": str(self.raw), "md5": "extracted folder (no archive md5)"})
        return members

    # ------------------------------------------------------------------ split and batch
    def _split(self, members: list[Member]) -> dict[Member, str]:
        return split_by_class(members, self.rule, lambda m: m.container or m.name)

    def _order(self, members: list[Member]) -> dict[str, list[Member]]:
        """Split → members in shard order (class label, then file name); a duplicate sample key is an error."""
        label = {c: i for i, c in enumerate(self.classes)}
        out: dict[str, list[Member]] = {"train": [], "test": []}
        keys: dict[str, dict[str, Member]] = {"train": {}, "test": {}}
        for m in sorted(members, key=lambda m: (label[m.cls], m.stem, m.name)):
            split = self.split_of[m]
            key = f"{m.cls}/{m.stem}"
            if key in keys[split]:
                other = keys[split][key]
                raise DatasetError(
                    f"{m.container or m.name}: {m.name!r} and {other.name!r} give the same sample key {key!r} "
                    f"in split {split!r}"
                )
            keys[split][key] = m
            out[split].append(m)
        return out

    def _batch(self, split: str, members: list[tuple[int, Member]]) -> list[tuple[str, list[tuple[int, Member]]]]:
        """Batches ``(name, [(place, member)])`` of one split's (wanted) members: one class each, bounded."""
        out: list[tuple[str, list[tuple[int, Member]]]] = []
        current: list[tuple[int, Member]] = []
        size = 0
        for pm in members:
            m = pm[1]
            if current and (current[-1][1].cls != m.cls or len(current) >= self.ds.batch_files
                            or size + m.size > self.ds.batch_bytes):
                out.append((f"{split}/{len(out):06d}", current))
                current, size = [], 0
            current.append(pm)
            size += m.size
        if current:
            out.append((f"{split}/{len(out):06d}", current))
        return out

    # ------------------------------------------------------------------ the Source protocol
    def listing(self) -> list[tuple[str, int]] | None:
        """Every sample file ``(<split>/<key>, size)``: jobs balance over the files, not the batches."""
        return [(f"{split}/{m.cls}/{m.stem}", m.size) for split, ms in self.ordered.items() for m in ms]

    def recordings(self, stage: Stage = read_all, want: Want = want_all) -> Iterator[RecordingTask]:
        """One task per batch of the wanted files, in shard order; workers read the files themselves."""
        label = {c: i for i, c in enumerate(self.classes)}
        names: dict[str, list[str]] = {}
        for split, ms in self.ordered.items():
            names[split] = []
            mine = [(p, m) for p, m in enumerate(ms) if want(f"{split}/{m.cls}/{m.stem}", m.size)]
            for name, batch in self._batch(split, mine):
                names[split].append(name)
                yield RecordingTask(
                    name=name,
                    context={
                        "split": split,
                        "members": [(m.container, m.name, m.cls, m.stem, label[m.cls], m.entry) for _, m in batch],
                    },
                    places=[p for p, _ in batch],
                )
        self._names = names

    def order(self) -> dict[str, list[str]]:
        """Split → this run's batch names in shard order; also waits for the md5 check and raises on a mismatch."""
        self.finish_md5()
        return self._names or {}

    def finish_md5(self) -> None:
        """Wait for the background md5 check; record it; :class:`DatasetError` on a mismatch."""
        if self._md5 is None:
            return
        check, self._md5 = self._md5, None
        check.finish(self.provenance)

    def views(self) -> dict[str, list[str]]:
        """Extra splits made of others' shards: ``all`` = train + test when the split is not official."""
        return {} if self.rule.kind == "official" else {ALL_SPLIT: ["train", "test"]}

    def close(self) -> None:
        """Remove the temporary copies of inner archives."""
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def read_member(container: str | None, name: str, entry: tuple[int, int, int, int, int, int] | None) -> bytes:
    """The bytes of one sample file, from its zip or from disk (``DatasetError`` naming it on failure)."""
    try:
        if container is None or entry is None:
            with open(name, "rb") as f:
                return f.read()
        return read_zip_entry(container, name, entry)
    except ArchiveError as exc:
        raise DatasetError(str(exc)) from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, KeyError) as exc:
        where = f"{container}: member {name!r}" if container else name
        raise DatasetError(f"{where}: cannot be read ({exc})") from None


def cut_batch(ds: ClassFolderDataset, task: RecordingTask, allow_truncated: bool) -> CutRecording:
    """Read and check every file of a batch; one :class:`CutSample` per file."""
    h, w = ds.spec.sensor_size
    split = task.context["split"]
    samples: list[CutSample] = []
    skipped: Counter[str] = Counter()
    warnings: list[str] = []
    events_read = empty = truncated = 0
    for container, name, cls, stem, label, entry in task.context["members"]:
        where = f"{os.path.basename(container)}:{name}" if container else name
        ev = ds.read(read_member(container, name, entry), where, allow_truncated)
        n = len(ev)
        i = first_outside(ev.x, ev.y, h, w)
        if i is not None:
            raise DatasetError(
                f"{where}: event {i} at x={int(ev.x[i])}, y={int(ev.y[i])} lies outside the {w}x{h} sensor "
                f"of {ds.spec.id}"
            )
        skipped.update(ev.skipped)
        if ev.truncated_bytes:
            truncated += ev.truncated_bytes
            warnings.append(f"{where}: truncated; dropped the last {ev.truncated_bytes} bytes")
        events_read += n
        empty += n == 0
        # "<class>/<file name>" whether read from a zip or an extracted folder: the shards are the same either way
        file = f"{cls}/{PurePosixPath(name.replace(os.sep, '/')).name}"
        meta = {"label": label, "class": cls, "file": file, "split": split}
        samples.append(CutSample(f"{cls}/{stem}", ev.t, ev.x, ev.y, ev.p, meta))
    return CutRecording(
        samples=samples,
        events_read=events_read,
        empty_windows=empty,
        truncated_bytes=truncated,
        warnings=warnings,
        skipped_words=dict(skipped),
    )
