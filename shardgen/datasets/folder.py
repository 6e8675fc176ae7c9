"""Your own recordings: a folder of raw event files → shards (dataset id ``folder``).

``shardgen convert folder --raw DIR --out OUT [--labels CSV] [--window-us W [--stride-us S]] [--sensor HxW]
[--format FMT] [--train-ratio R] [--split-seed N] [--split-rule ratio|ordered|first-k]``

Recordings
    Every file under DIR (recursively, in sorted order) whose extension is one of :data:`EXTENSIONS`
    (``.aedat .aedat4 .raw .dat .es .bin .bs2``, any case) is a recording, read with
    :func:`shardgen.formats.read_events` (format detected from the header, or ``--format`` for all files).
    Other files, hidden files (``.name``), and symbolic links to folders are not read and are listed in
    the summary's ``skipped`` (hidden folders such as ``.git`` are passed over silently). Symbolic links to
    files are read. One worker task per recording (recordings are large), named by its path relative to DIR.

Labels, three ways
    1. **Class folders** (no ``--labels``): ``DIR/<class>/**/<file>``; the class is the first-level folder,
       classes are numbered in the sorted order of the folder names (SpikingJelly's rule) and listed in
       ``index.json``. Recordings directly in DIR are skipped when class folders exist; when there are *only*
       such files (unlabelled recordings), they form the single class ``"unlabelled"`` (label 0).
    2. **Labels CSV** (``--labels CSV``; a relative path not found from the working folder is looked up in
       DIR): rows ``file,label[,start_us,end_us]``. An optional first row naming the columns (any order, from
       ``file, label, start_us, end_us, split``) is a header; without one a row has 2 or 4 columns, and a
       ``split`` column needs the header. Blank rows and rows starting with ``#`` are ignored; UTF-8 (a BOM is
       fine). ``file`` is the recording's path relative to DIR (``/`` or ``\\``). A row with ``start_us,end_us``
       is one sample: the events with ``start_us <= t < end_us`` — times in the recording's own time base,
       exactly the ``t`` that ``read_events`` returns (as DVS128 Gesture's label files); a row without them
       (empty cells) is the whole recording. Rows may overlap; both keep their events. Class names: when
       every label is a non-negative integer, the label *is* the class index and the classes are
       ``"0" … str(max)`` (a number with no rows is a class without samples); otherwise the sorted unique
       label strings. Recordings in DIR that the CSV does not name are skipped (listed).
    3. **Fixed windows** (``--window-us W [--stride-us S]``, ``S`` defaults to ``W``): each recording — or
       each timed CSV row — is cut into windows ``[s_k, s_k + W)`` with ``s_k = a + k·S``, kept while
       ``s_k + W <= b``, where ``[a, b)`` is the row's ``[start_us, end_us)``, or ``[t0, t_last + 1)`` for a
       whole recording (``t0``/``t_last``: its first and last time stamps; smallest and largest if they go
       back). So every window lies inside ``[t0, t_last]``; a **partial last window is dropped** (its events
       belong to no sample) and a recording shorter than ``W`` gives no sample (a warning says so). The
       number of windows is known when the recording is written, so the index counts are exact.

    A window or row with no events inside the recording (a pause) is kept as an empty sample and counted in
    the summary's ``empty_windows``. A timed row that lies wholly outside ``[t0, t_last]`` is an error
    naming the CSV, the row and the recording's time range (usually relative times or ms instead of µs);
    one that overlaps it in part keeps the events of the overlap.

Sample keys (unique within a split; ``loader.format.check_key`` safe)
    ``<stem>`` for a whole recording, ``<stem>_<k>`` for windows, where ``<stem>`` is the path relative to
    DIR without its extension (class folders: ``left/sub/rec``; unlabelled: ``rec``) and, with a labels CSV,
    prefixed by the class: ``<class>/<stem>[_<k>]``. ``k`` counts the samples of that class cut from that
    recording in CSV-row order, then time order (DVS128 Gesture's rule), over all splits. Characters
    outside ``A-Z a-z 0-9 _ . -`` become ``_`` (and a leading ``.``); two files that give the same stem
    (``rec.raw`` and ``rec.dat``), or any other clash, are an error naming both.

Time stamps and events
    Samples keep the recording's absolute µs (as the public datasets do); ``x``, ``y``, ``p`` as the
    reader returns them (no mirroring). Events are selected with ``searchsorted`` on the time stamps (views,
    no copy); when they go back somewhere (a reset) with a stable argsort instead, keeping file order (a
    warning says so). Label metadata per sample: ``label``, ``class``, ``recording`` (relative path),
    ``split``, and for windows ``start``/``end`` (µs), for CSV rows ``row`` (the CSV line).

Sensor size
    ``--sensor HxW`` for the whole run, else from the headers: every recording's header must state its size
    and all must agree; otherwise an error names the file without one, or two files that differ and the
    ``--sensor`` that would hold them all (the max). With ``--sensor``, a header larger than it is an error.
    Either way, an event outside the sensor is an error naming the recording, the event and its
    coordinates. The source exposes ``sensor_size`` and puts it into every task's context
    (:mod:`shardgen.convert` prefers both over ``SPEC.sensor_size``, which is ``(0, 0)`` here: per run).
    Headers are probed in the main process by decoding the first events with
    :func:`shardgen.formats.iter_events` (cheap: no file is read whole there).

Split (deterministic)
    Default: ``ratio`` 0.9, seed 0 per class (:class:`~shardgen.datasets.classfolder.SplitRule`;
    ``--train-ratio``, ``--split-seed``, ``--split-rule ordered|first-k``), applied to *recordings* with class
    folders (windows of one recording stay together: no leakage between neighbouring windows) and to CSV
    *rows* with a labels CSV. A ``split`` column in the CSV (lowercase names of ``a-z 0-9 _ -``, e.g.
    ``train``/``test``/``val``) decides instead; ``--split-*`` options then are an error. A recording whose
    rows lie in several splits is read once per split (task ``<split>:<relative path>``). Ratio rules add
    the view split ``all`` = train + test. Shard order: class label then path (class folders), path (CSV);
    within a recording, row then time order.

Big files
    Windows are cut while the recording is read in chunks (:mod:`shardgen.datasets.windows`), and each
    sample is written as its window closes, so a worker holds the open windows' events, not the recording;
    the main process reads the samples back one at a time. A recording whose samples are whole files, or
    whose time stamps go back, is read whole with ``read_events``.

``check_md5`` has nothing to check (no published sums); provenance lists each recording with its size and
format, and the labels CSV with its md5.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from loader.format import FormatError as KeyFormatError
from loader.format import check_key
from shardgen.datasets import windows
from shardgen.datasets.base import (
    CutRecording,
    DatasetError,
    DatasetSpec,
    RecordingTask,
    SourceBase,
    Stage,
    Want,
    read_all,
    want_all,
)
from shardgen.datasets.classfolder import ALL_SPLIT, SplitRule, make_split_rule, split_by_class
from shardgen.datasets.labels_csv import (
    LabelRow,
    key_part,
    parse_labels_csv,
    parse_sensor,
    stem_of,
    window_option,
)
from shardgen.datasets.windows import window_starts
from shardgen.formats import FORMATS, FormatError, detect_format, iter_events

ID = "folder"
EXTENSIONS = (".aedat", ".aedat4", ".raw", ".dat", ".es", ".bin", ".bs2")
OPTIONS = ("labels", "window_us", "stride_us", "sensor", "format")
UNLABELLED = "unlabelled"
DEFAULT_SPLIT = SplitRule("ratio", train_ratio=0.9, seed=0)
MAX_INT_CLASSES = 1 << 16
WHERE = (
    "Put your recordings into {raw}: one sub-folder per class, or any layout plus a labels CSV "
    "(--labels file,label[,start_us,end_us[,split]]); see shardgen/datasets/folder.py"
)

SPEC = DatasetSpec(
    id=ID,
    title="Your own recordings (a folder of raw event files)",
    sensor_size=(0, 0),
    classes=(),
    resources=(),
    downloadable=False,
    where=WHERE,
    reader="shardgen.formats.read_events (AEDAT 2/3.1/4, EVT2/EVT3 .raw, .dat, .es, ATIS .bin; detected)",
    split_rule="ratio: seeded 90 % train per class (--train-ratio, --split-seed), or the labels CSV's split column",
    conventions="x, y, p as read; absolute µs; sensor size per run (headers or --sensor); class = folder or CSV label",
)

_LABELINT_RE = re.compile(r"^[0-9]+$")
_WINDOW_KEY_RE = re.compile(r"^(.*)_[0-9]+$")


def _walk(raw: Path, exclude: Path | None) -> tuple[list[str], list[str]]:
    """Recording files under ``raw`` (relative POSIX paths, sorted) and what was skipped."""
    found: list[str] = []
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(raw):
        here = Path(dirpath)
        rel_dir = here.relative_to(raw)
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if (here / d).is_symlink():
                skipped.append(f"{(rel_dir / d).as_posix()}: a symbolic link to a folder (not followed)")
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            path, rel = here / f, (rel_dir / f).as_posix()
            ext = PurePosixPath(f).suffix.lower()
            if exclude is not None and path.resolve() == exclude:
                continue
            if f.startswith("."):
                if ext in EXTENSIONS:
                    skipped.append(f"{rel}: a hidden file (not read)")
            elif ext not in EXTENSIONS:
                skipped.append(f"{rel}: not a recording ({ext or 'no extension'}; read: {' '.join(EXTENSIONS)})")
            elif not path.is_file():
                skipped.append(f"{rel}: not a regular file (a broken link?)")
            else:
                found.append(rel)
    return sorted(found), skipped


# ------------------------------------------------------------------------------------------------ the source


@dataclass(frozen=True)
class Unit:
    """What the split rule divides: one recording (class folders) or one labels-CSV row."""

    cls: str
    stem: str
    name: str
    split: str | None
    file: str
    label: int
    row: int | None = None
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class ColumnSplit:
    """The split named per row by the labels CSV's ``split`` column."""

    labels: str
    splits: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        """The rule as recorded in ``index.json``."""
        return {"rule": "column", "labels": self.labels, "splits": list(self.splits)}


class FolderSource(SourceBase):
    """A folder of recordings, listed, labelled, split and probed for its sensor size (see the module docstring).

    Attributes
    ----------
    classes : list of str
        Class names, index = label.
    sensor_size : (H, W)
        The run's sensor size.
    rule : SplitRule or ColumnSplit
        What ``index.json`` records as ``split_rule``.
    skipped, warnings, provenance : list
        For the summary and the index.
    """

    def __init__(
        self,
        raw: Path,
        split: dict[str, Any] | None = None,
        labels: str | os.PathLike[str] | None = None,
        window_us: int | None = None,
        stride_us: int | None = None,
        sensor: Any = None,
        format: str | None = None,
    ):
        self.raw = Path(raw)
        self.skipped: list[str] = []
        self.warnings: list[str] = []
        self.provenance: list[dict[str, str]] = []
        if not self.raw.is_dir():
            raise DatasetError(f"{self.raw}: RAW folder does not exist. " + WHERE.format(raw=self.raw))
        self.window = window_option(window_us, stride_us)
        if format is not None and format.lower() not in FORMATS:
            raise DatasetError(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
        self.format = format.lower() if format is not None else None
        given = parse_sensor(sensor) if sensor is not None else None
        labels_path = self._labels_path(labels)
        self._labels_name = str(labels_path) if labels_path is not None else None
        files, skipped = _walk(self.raw, labels_path.resolve() if labels_path else None)
        self.skipped.extend(skipped)
        if labels_path is not None:
            units = self._units_from_csv(labels_path, files)
            self._prefix = True
        else:
            units = self._units_from_folders(files)
            self._prefix = False
        column = [u.split for u in units if u.split is not None]
        if column:
            if split and (split.get("rule") not in (None, "official")
                          or any(split.get(k) is not None for k in ("train_ratio", "seed", "test_per_class"))):
                raise DatasetError(f"{labels_path}: has a split column; --split-rule, --train-ratio, --split-seed "
                                   "and --test-per-class do not apply")
            split_rule = SplitRule("official")
            self.rule: SplitRule | ColumnSplit = ColumnSplit(labels_path.name if labels_path else "",
                                                             tuple(sorted(set(column))))
        else:
            split_rule = make_split_rule(split, DEFAULT_SPLIT, ID, has_official=False)
            self.rule = split_rule
        self._split_of = split_by_class(units, split_rule)
        self._check_keys(units)
        self._formats: dict[str, str] = {}
        self.sensor_size = self._sensor_size(sorted({u.file for u in units}), given)
        self._tasks = self._plan(units)

    # ------------------------------------------------------------------ listing and labels
    def _labels_path(self, labels: str | os.PathLike[str] | None) -> Path | None:
        if labels is None:
            return None
        path = Path(labels)
        if not path.is_file() and not path.is_absolute() and (self.raw / path).is_file():
            path = self.raw / path
        if not path.is_file():
            raise DatasetError(f"{labels}: labels CSV not found (nor in {self.raw})")
        return path

    def _units_from_folders(self, files: list[str]) -> list[Unit]:
        nested = [f for f in files if "/" in f]
        top = [f for f in files if "/" not in f]
        if not files:
            raise DatasetError(f"{self.raw}: no recordings ({' '.join(EXTENSIONS)}) found. "
                               + WHERE.format(raw=self.raw))
        if nested:
            self.skipped.extend(f"{f}: not inside a class folder" for f in top)
            self.classes = sorted({f.split("/", 1)[0] for f in nested})
            label = {c: i for i, c in enumerate(self.classes)}
            return [Unit(f.split("/", 1)[0], stem_of(f), f, None, f, label[f.split("/", 1)[0]]) for f in nested]
        self.classes = [UNLABELLED]
        return [Unit(UNLABELLED, stem_of(f), f, None, f, 0) for f in top]

    def _units_from_csv(self, path: Path, files: list[str]) -> list[Unit]:
        data = path.read_bytes()
        name = str(path)
        rows = parse_labels_csv(data, name)
        self.provenance.append({"file": path.name, "md5": hashlib.md5(data).hexdigest()})
        for r in rows:
            if not (self.raw / r.file).is_file():
                raise DatasetError(f"{name}: row {r.row}: unknown file {r.file!r} (no such file in {self.raw})")
        listed = {r.file for r in rows}
        self.skipped.extend(f"{f}: not in {path.name}" for f in files if f not in listed)
        if all(_LABELINT_RE.match(r.label) for r in rows):
            top = max(int(r.label) for r in rows)
            if top >= MAX_INT_CLASSES:
                row = next(r for r in rows if int(r.label) == top)
                raise DatasetError(f"{name}: row {row.row}: label {top} is too large for a class index "
                                   f"(< {MAX_INT_CLASSES}); use class names")
            self.classes = [str(i) for i in range(top + 1)]
            cls_of = {r.label: str(int(r.label)) for r in rows}
        else:
            self.classes = sorted({r.label for r in rows})
            cls_of = {c: c for c in self.classes}
        with_split = [r for r in rows if r.split is not None]
        if with_split and len(with_split) != len(rows):  # pragma: no cover - the parser gives all or none
            raise DatasetError(f"{name}: every row needs a split")
        label = {c: i for i, c in enumerate(self.classes)}
        return [
            Unit(cls_of[r.label], stem_of(r.file), f"{r.file}#{r.row:09d}", r.split, r.file, label[cls_of[r.label]],
                 r.row, r.start, r.end)
            for r in rows
        ]

    def _prefix_of(self, unit: Unit) -> str:
        return key_part(unit.cls) + "/" if self._prefix else ""

    def _windowed(self, unit: Unit) -> bool:
        return self.window is not None or unit.start is not None

    def _where(self, unit: Unit) -> str:
        return f"{self.raw / unit.file}" + (f" (labels row {unit.row})" if unit.row is not None else "")

    def _check_keys(self, units: list[Unit]) -> None:
        """Refuse anything that would give two samples of a split the same key, or an unsafe key."""
        by_stem: dict[str, str] = {}
        for u in units:
            other = by_stem.setdefault(u.stem, u.file)
            if other != u.file:
                raise DatasetError(f"{self.raw}: {other!r} and {u.file!r} give the same sample key stem {u.stem!r}; "
                                   "rename one")
        if self._prefix:
            by_prefix: dict[str, str] = {}
            for c in self.classes:
                other = by_prefix.setdefault(key_part(c), c)
                if other != c:
                    raise DatasetError(f"classes {other!r} and {c!r} give the same sample key prefix {key_part(c)!r}")
        windowed = {self._prefix_of(u) + u.stem for u in units if self._windowed(u)}
        whole: dict[str, Unit] = {}
        for u in units:
            base = self._prefix_of(u) + u.stem
            try:
                check_key(base + "_" + "0" * 10 if self._windowed(u) else base)
            except KeyFormatError:
                raise DatasetError(f"{self._where(u)}: gives no valid sample key from {base!r} "
                                   "(at most 190 characters)") from None
            if self._windowed(u):
                continue
            if base in whole:
                raise DatasetError(f"{self._where(whole[base])} and {self._where(u)} give the same sample key "
                                   f"{base!r}")
            whole[base] = u
            m = _WINDOW_KEY_RE.match(base)
            if m and m.group(1) in windowed:
                raise DatasetError(f"{self._where(u)}: its sample key {base!r} clashes with a window of "
                                   f"{m.group(1)!r}; rename the file")

    # ------------------------------------------------------------------ sensor size
    def _sensor_size(self, files: list[str], given: tuple[int, int] | None) -> tuple[int, int]:
        sizes: dict[str, tuple[int, int] | None] = {}
        for f in files:
            fmt, size = self._probe(self.raw / f)
            self._formats[f] = fmt
            sizes[f] = size
            self.provenance.append({"file": f, "size": str((self.raw / f).stat().st_size), "format": fmt})
        if given is not None:
            for f, size in sizes.items():
                if size is not None and (size[0] > given[0] or size[1] > given[1]):
                    raise DatasetError(f"{self.raw / f}: its header states a {size[0]}x{size[1]} (HxW) sensor, "
                                       f"larger than --sensor {given[0]}x{given[1]}")
            return given
        for f, size in sizes.items():
            if size is None:
                raise DatasetError(f"{self.raw / f}: its header states no sensor size ({self._formats[f]}); "
                                   "pass --sensor HxW")
        known = {f: s for f, s in sizes.items() if s is not None}
        distinct = sorted(set(known.values()))
        if len(distinct) > 1:
            a = next(f for f, s in known.items() if s == distinct[0])
            b = next(f for f, s in known.items() if s == distinct[-1])
            h = max(s[0] for s in distinct)
            w = max(s[1] for s in distinct)
            raise DatasetError(
                f"{self.raw}: mixed sensor sizes: {a} is {distinct[0][0]}x{distinct[0][1]}, {b} is "
                f"{distinct[-1][0]}x{distinct[-1][1]} (HxW); pass --sensor {h}x{w} to hold them all"
            )
        return distinct[0]

    def _probe(self, path: Path) -> tuple[str, tuple[int, int] | None]:
        """Format and header sensor size ``(H, W)`` of one recording, from its first events only."""
        try:
            fmt = self.format or detect_format(path)
            chunks = iter_events(path, format=fmt, chunk_events=1, allow_truncated=True)
            try:
                first = next(chunks, None)
            finally:
                chunks.close()
        except FormatError as exc:
            raise DatasetError(str(exc)) from None
        if first is None or first.width is None or first.height is None:
            return fmt, None
        return fmt, (int(first.height), int(first.width))

    # ------------------------------------------------------------------ tasks
    def _plan(self, units: list[Unit]) -> dict[str, list[RecordingTask]]:
        by_file: dict[str, list[Unit]] = {}
        for u in units:
            by_file.setdefault(u.file, []).append(u)
        splits = set(self._split_of.values())
        if isinstance(self.rule, SplitRule):
            splits |= {"train", "test"}
        planned: dict[str, list[tuple[tuple[int, str], RecordingTask]]] = {s: [] for s in sorted(splits)}
        for file, us in by_file.items():
            here = sorted({self._split_of[u] for u in us})
            segments = [
                (u.label, u.cls, self._prefix_of(u), u.start, u.end, u.row, self._split_of[u]) for u in us
            ]
            for split in here:
                context = {
                    "path": str(self.raw / file),
                    "file": file,
                    "stem": us[0].stem,
                    "format": self._formats[file],
                    "sensor_size": self.sensor_size,
                    "window": self.window,
                    "segments": segments,
                    "split": split,
                    "first": split == here[0],
                    "labels_name": self._labels_name,
                }
                name = file if len(here) == 1 else f"{split}:{file}"
                order = (us[0].label if not self._prefix else 0, file)
                planned[split].append((order, RecordingTask(name=name, path=str(self.raw / file), context=context)))
        return {split: [t for _, t in sorted(items, key=lambda it: it[0])] for split, items in planned.items()}

    # ------------------------------------------------------------------ the Source protocol
    def recordings(self, stage: Stage = read_all, want: Want = want_all) -> Iterator[RecordingTask]:
        """One task per recording (and split), in shard order; workers read the files themselves."""
        for tasks in self._tasks.values():
            for task in tasks:
                if want(task.name, os.path.getsize(task.path) if task.path else 0):
                    yield task

    def listing(self) -> list[tuple[str, int]] | None:
        """Every task (a recording, or its part in one split) with its file's size: jobs balance over these."""
        return [(t.name, os.path.getsize(t.path) if t.path else 0) for tasks in self._tasks.values() for t in tasks]

    def order(self) -> dict[str, list[str]]:
        """Split → task names in shard order (known from the start)."""
        return {split: [t.name for t in tasks] for split, tasks in self._tasks.items()}

    def views(self) -> dict[str, list[str]]:
        """``all`` = train + test under a ratio rule; none for a CSV split column."""
        return {ALL_SPLIT: ["train", "test"]} if isinstance(self.rule, SplitRule) else {}

    def close(self) -> None:
        """Nothing to release."""


def open_source(
    raw: Path | str,
    check_md5: bool = True,
    split: dict[str, Any] | None = None,
    labels: str | os.PathLike[str] | None = None,
    window_us: int | None = None,
    stride_us: int | None = None,
    sensor: Any = None,
    format: str | None = None,
) -> FolderSource:
    """List, label, split and probe the recordings in ``raw`` (see the module docstring).

    Parameters
    ----------
    raw : path
        The folder of recordings.
    check_md5 : bool
        Unused: own recordings have no published md5.
    split : dict, optional
        ``rule`` (``ratio``, ``ordered``, ``first-k``), ``train_ratio``, ``seed``, ``test_per_class``.
    labels : path, optional
        Labels CSV ``file,label[,start_us,end_us][,split]``.
    window_us, stride_us : int, optional
        Fixed windows of ``window_us`` µs every ``stride_us`` µs (default: ``window_us``).
    sensor : (H, W) or "HxW", optional
        The sensor size of the run (else from the headers).
    format : str, optional
        One of :data:`shardgen.formats.FORMATS` for every file (else detected per file).

    Returns
    -------
    FolderSource

    Raises
    ------
    DatasetError
        Naming the file (and CSV row) of the problem.
    """
    return FolderSource(Path(raw), split, labels, window_us, stride_us, sensor, format)


# ------------------------------------------------------------------------------------------------ the worker


def cut(task: RecordingTask, allow_truncated: bool = False, stream: bool = True) -> CutRecording:
    """Cut one recording into its samples of the task's split (runs in a worker).

    Windows known up front, and fixed windows over a whole recording, are cut while the file is read
    in chunks (:mod:`shardgen.datasets.windows`: memory bounded by the open windows); other samples
    (whole recordings) come from one read of the file.

    Parameters
    ----------
    task : RecordingTask
        From :meth:`FolderSource.recordings`.
    allow_truncated : bool
        Keep the events before a damaged tail.
    stream : bool
        Cut while reading where the samples allow it; ``False``: from one whole read (what the worker
        asks for after a streaming cut met time stamps that go back).

    Returns
    -------
    CutRecording
        The samples in row, then time order (a streaming cut yields them as their windows close, each
        with its rank in that order).

    Raises
    ------
    DatasetError
        An unreadable file, an event outside the sensor, a labelled window outside the recording.
    """
    ctx = task.context
    if stream and windows.streams(ctx):
        result = CutRecording(samples=[])
        result.samples = windows.cut_streaming(ctx, allow_truncated, result)
        return result
    return windows.cut_whole(ctx, allow_truncated)


__all__ = [
    "ID", "SPEC", "OPTIONS", "EXTENSIONS", "FolderSource", "LabelRow", "open_source", "cut", "parse_labels_csv",
    "parse_sensor", "window_starts", "key_part",
]
