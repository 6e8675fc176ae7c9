"""IBM DVS128 Gesture: the download folder (or the extracted ``DvsGesture/``) → samples.

One sample per row of ``<stem>_labels.csv``: the events with ``start <= t < end`` of the whole
recording (rows may overlap; both keep their events); label = csv class − 1 (the true class);
key ``<label>/<stem>_<k>`` with ``k`` counting that class within the recording, which is where
SpikingJelly stores the same sample under ``events_np/<split>/``. Split from
``trials_to_train.txt`` / ``trials_to_test.txt``, shard order = the order of those lists.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from shardgen.archive import ArchiveError, TarGzStream, md5_file
from shardgen.datasets.base import (
    CutRecording,
    CutSample,
    DatasetError,
    DatasetSpec,
    RecordingTask,
    Resource,
    SourceBase,
    Stage,
    Want,
    first_outside,
    read_all,
    want_all,
)
from shardgen.datasets.md5check import md5_mismatch
from shardgen.formats.aedat3 import read_aedat3
from shardgen.sharedbuf import SlotRef

ID = "dvs128-gesture"
SENSOR_SIZE = (128, 128)
ARCHIVE = "DvsGesture.tar.gz"
MAPPING = "gesture_mapping.csv"
RESOURCES = {
    ARCHIVE: "8a5c71fb11e24e5ca5b11866ca6c00a1",
    MAPPING: "109b2ae64a0e1f3ef535b18ad7367fd1",
    "LICENSE.txt": "065e10099753156f18f51941e6e44b66",
    "README.txt": "a0663d3b1d8307c329a43d949ee32d19",
}
SPLIT_LISTS = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}
MAX_RECORDING_BYTES = 1 << 30
"""Largest ``.aedat`` member read from the archive (the published recordings are far smaller)."""
DOWNLOADABLE = False
WHERE = (
    "DVS128 Gesture cannot be downloaded automatically (the IBM host needs a login). Get "
    "DvsGesture.tar.gz, gesture_mapping.csv, LICENSE.txt and README.txt from "
    "https://research.ibm.com/interactive/dvsgesture/ (IBM Box folder "
    "https://ibm.ent.box.com/s/3hiq58ww1pbbjrinh367ykfdf60xsfm8/folder/50167556794) "
    "and put them in {raw}"
)
DEFAULT_CLASSES = [
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
]


SPEC = DatasetSpec(
    id=ID,
    title="IBM DVS128 Gesture (Amir et al. 2017)",
    sensor_size=SENSOR_SIZE,
    classes=tuple(DEFAULT_CLASSES),
    resources=tuple(
        Resource(name, None, md5, "https://research.ibm.com/interactive/dvsgesture/") for name, md5 in RESOURCES.items()
    ),
    downloadable=DOWNLOADABLE,
    where=WHERE,
    reader="AEDAT 3.1 polarity packets (shardgen.formats.aedat3)",
    split_rule="official: trials_to_train.txt / trials_to_test.txt",
    conventions="x, y, p as recorded; one sample per labels-csv row; label = csv class - 1 (the true class)",
)


def parse_mapping(data: bytes, name: str) -> list[str]:
    """Class names from ``gesture_mapping.csv`` (``action,label`` rows), indexed by label − 1."""
    names: dict[int, str] = {}
    for row, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if row == 1 or not line.strip():
            continue
        parts = line.rsplit(",", 1)
        try:
            names[int(parts[1])] = parts[0].strip()
        except (IndexError, ValueError):
            raise DatasetError(f"{name}: row {row}: expected 'action,label', got {line!r}") from None
    if sorted(names) != list(range(1, len(names) + 1)) or not names:
        raise DatasetError(f"{name}: labels must be 1..N, got {sorted(names)}")
    return [names[i] for i in range(1, len(names) + 1)]


def parse_labels(data: bytes, name: str, n_classes: int) -> np.ndarray:
    """Rows of ``<stem>_labels.csv`` as an int64 array ``[rows, 3]`` of (class, start, end).

    The first line is a header; blank lines are skipped. Values must be integers, the class in
    ``1..n_classes`` and the times in ``[0, 2**32)`` (SpikingJelly reads them as uint32).
    """
    rows = []
    for row, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if row == 1 or not line.strip():
            continue
        try:
            values = [int(v) for v in line.split(",")]
        except ValueError:
            values = []
        if len(values) != 3:
            raise DatasetError(f"{name}: row {row}: expected 'class,startTime_usec,endTime_usec', got {line!r}")
        cls, start, end = values
        if not 1 <= cls <= n_classes:
            raise DatasetError(f"{name}: row {row}: class {cls} outside 1..{n_classes}")
        if not (0 <= start < 2**32 and 0 <= end < 2**32):
            raise DatasetError(f"{name}: row {row}: times must lie in [0, 2**32) µs, got {start}, {end}")
        rows.append(values)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def _parse_trials(data: bytes, name: str) -> list[str]:
    stems = []
    for row, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        if not entry.endswith(".aedat") or "/" in entry or "\\" in entry or entry.startswith("."):
            raise DatasetError(f"{name}: row {row}: expected a '<name>.aedat' file name, got {entry!r}")
        stems.append(entry[: -len(".aedat")])
    return stems


class GestureSource(SourceBase):
    """A checked DVS128 Gesture download: the archive streamed, or an extracted ``DvsGesture/`` folder."""

    def __init__(self, raw: Path, check_md5: bool = True):
        self.raw = Path(raw)
        self.check_md5 = check_md5
        self.skipped: list[str] = []
        self.warnings: list[str] = []
        self.provenance: list[dict[str, str]] = []
        self._trials: dict[str, list[str]] = {}
        self.archive: Path | None = None
        self.folder: Path | None = None
        if not self.raw.is_dir():
            raise DatasetError(f"{self.raw}: RAW folder does not exist. " + WHERE.format(raw=self.raw))
        if (self.raw / ARCHIVE).is_file():
            self.archive = self.raw / ARCHIVE
        elif (self.raw / "DvsGesture" / SPLIT_LISTS["train"]).is_file():
            self.folder = self.raw / "DvsGesture"
        elif (self.raw / SPLIT_LISTS["train"]).is_file():
            self.folder = self.raw
        else:
            raise DatasetError(f"{self.raw / ARCHIVE}: missing. " + WHERE.format(raw=self.raw))
        mapping = self._find_mapping()
        self._check_small_resources()
        self.classes = parse_mapping(mapping.read_bytes(), str(mapping)) if mapping else list(DEFAULT_CLASSES)

    def _find_mapping(self) -> Path | None:
        for cand in (self.raw / MAPPING, self.raw.parent / MAPPING):
            if cand.is_file():
                return cand
        if self.archive is not None:
            raise DatasetError(f"{self.raw / MAPPING}: missing. " + WHERE.format(raw=self.raw))
        self.warnings.append(f"{MAPPING} not found; using the class names of IBM's mapping")
        return None

    def _check_small_resources(self) -> None:
        if self.archive is None:
            return
        for fname, expected in RESOURCES.items():
            path = self.raw / fname
            if fname == ARCHIVE:
                continue  # hashed while it is streamed
            if not path.is_file():
                raise DatasetError(f"{path}: missing. " + WHERE.format(raw=self.raw))
            got = md5_file(path)
            self.provenance.append({"file": fname, "md5": got})
            if self.check_md5 and got != expected:
                raise md5_mismatch(path, got, expected)

    def recordings(self, stage: Stage = read_all, want: Want = want_all) -> Iterator[RecordingTask]:
        """Yield one task per recording that has a labels csv, in stored order.

        ``stage(reader, length)`` takes each archived recording off the stream (the converter
        passes one that fills shared memory, so workers need no copy). Recordings for which
        ``want(name)`` is false are passed over without being read (a job's share, see ``--num-jobs``).
        """
        if self.archive is not None:
            yield from self._from_archive(self.archive, stage, want)
        else:
            yield from self._from_folder(self.folder, want)

    def _task(self, stem: str, data: bytes | SlotRef | None, path: str | None, labels: bytes) -> RecordingTask:
        return RecordingTask(
            name=stem,
            data=data,
            path=path,
            context={"labels": labels, "labels_name": f"{stem}_labels.csv", "classes": self.classes},
        )

    def _from_archive(self, archive: Path, stage: Stage, want: Want) -> Iterator[RecordingTask]:
        stream = TarGzStream(archive, hash_md5=self.check_md5)
        pending: dict[str, bytes | SlotRef] = {}  # recordings whose labels csv comes later
        labels: dict[str, bytes] = {}
        try:
            for member, size, reader in stream:
                base = member.name
                if base in SPLIT_LISTS.values():
                    split = next(k for k, v in SPLIT_LISTS.items() if v == base)
                    self._trials[split] = _parse_trials(reader.read(), f"{archive.name}:{member}")
                elif base.endswith("_labels.csv"):
                    stem = base[: -len("_labels.csv")]
                    labels[stem] = reader.read()
                    if stem in pending:
                        yield self._task(stem, pending.pop(stem), None, labels[stem])
                elif base.endswith(".aedat"):
                    stem = base[: -len(".aedat")]
                    if not want(stem, size):
                        continue
                    if size > MAX_RECORDING_BYTES:  # a gzip bomb must not be read into memory
                        raise DatasetError(
                            f"{archive.name}: member {member}: {size:,} bytes, more than any DVS128 Gesture "
                            f"recording (limit {MAX_RECORDING_BYTES:,})"
                        )
                    data = stage(reader, size)
                    if stem in labels:
                        yield self._task(stem, data, None, labels[stem])
                    else:
                        pending[stem] = data
        except ArchiveError as exc:
            raise DatasetError(str(exc)) from None
        self.skipped.extend(stream.skipped)
        self.skipped.extend(f"{stem}.aedat: no {stem}_labels.csv in the archive" for stem in sorted(pending))
        if not self.check_md5:
            self.provenance.insert(0, {"file": ARCHIVE, "md5": "not checked"})
            return
        got = stream.md5 or ""
        self.provenance.insert(0, {"file": ARCHIVE, "md5": got})
        if got != RESOURCES[ARCHIVE]:
            raise md5_mismatch(archive, got, RESOURCES[ARCHIVE])

    def _from_folder(self, folder: Path, want: Want) -> Iterator[RecordingTask]:
        for split, fname in SPLIT_LISTS.items():
            path = folder / fname
            if not path.is_file():
                raise DatasetError(f"{path}: missing (the split list of DVS128 Gesture)")
            self._trials[split] = _parse_trials(path.read_bytes(), str(path))
        listed = {s for stems in self._trials.values() for s in stems}
        for stem in (s for split in SPLIT_LISTS for s in self._trials[split]):
            aedat, csv = folder / f"{stem}.aedat", folder / f"{stem}_labels.csv"
            for need in (aedat, csv):
                if not need.is_file():
                    raise DatasetError(f"{need}: missing (listed in the split lists)")
            if not want(stem, aedat.stat().st_size):
                continue
            self.provenance.append({"file": f"DvsGesture/{stem}.aedat", "size": str(aedat.stat().st_size)})
            yield self._task(stem, None, str(aedat), csv.read_bytes())
        self.skipped.extend(
            f"{p.name}: not in {' or '.join(SPLIT_LISTS.values())}"
            for p in sorted(folder.glob("*.aedat"))
            if p.stem not in listed
        )

    def order(self) -> dict[str, list[str]]:
        """Split → recording stems in the order of the trials lists (an error if one was not found)."""
        missing = [fname for split, fname in SPLIT_LISTS.items() if split not in self._trials]
        if missing:
            raise DatasetError(f"{self.archive or self.folder}: no {missing[0]} found")
        return {split: list(self._trials[split]) for split in SPLIT_LISTS}


def open_source(raw: Path | str, check_md5: bool = True, split: dict | None = None) -> GestureSource:
    """Find and check a DVS128 Gesture download in ``raw`` (see :class:`GestureSource`).

    DVS128 Gesture has an official split; asking for another one (``split``) is an error.
    """
    if split:
        raise DatasetError(f"{ID} has an official split (trials_to_train.txt / trials_to_test.txt); "
                           "--split-rule, --train-ratio and --split-seed do not apply")
    return GestureSource(Path(raw), check_md5)


def cut(task: RecordingTask, allow_truncated: bool = False) -> CutRecording:
    """Parse one ``.aedat`` recording and cut one sample per labels-csv row (runs in a worker)."""
    name = f"{task.name}.aedat"
    classes: list[str] = task.context["classes"]
    rows = parse_labels(task.context["labels"], task.context["labels_name"], len(classes))
    ev = read_aedat3(task.read(), name, allow_truncated=allow_truncated)
    h, w = SENSOR_SIZE
    i = first_outside(ev.x, ev.y, h, w)
    if i is not None:
        raise DatasetError(
            f"{name}: byte {ev.byte_offset(i)}: event {i} at x={int(ev.x[i])}, y={int(ev.y[i])} "
            f"lies outside the {w}x{h} DVS128 sensor"
        )
    t = ev.t
    ordered = bool(np.all(t[1:] >= t[:-1])) if t.size > 1 else True
    if ordered:
        lo = np.searchsorted(t, rows[:, 1], side="left")
        hi = np.maximum(np.searchsorted(t, rows[:, 2], side="left"), lo)
    samples: list[CutSample] = []
    seen = [0] * len(classes)
    empty = 0
    for i, (cls, start, end) in enumerate(rows.tolist()):
        label = cls - 1
        key = f"{label}/{task.name}_{seen[label]}"
        seen[label] += 1
        if ordered:
            sl = slice(int(lo[i]), int(hi[i]))
            cols = (t[sl], ev.x[sl], ev.y[sl], ev.p[sl])
        else:  # time stamps went back (a reset): select like SpikingJelly, by mask
            m = (t >= start) & (t < end)
            cols = (t[m], ev.x[m], ev.y[m], ev.p[m])
        empty += cols[0].size == 0
        meta = {
            "label": label,
            "class": classes[label],
            "recording": task.name,
            "start": start,
            "end": end,
            "row": i + 2,
        }
        samples.append(CutSample(key, *cols, meta=meta))
    warnings = []
    if ev.truncated_bytes:
        warnings.append(f"{name}: truncated; dropped the last {ev.truncated_bytes} bytes")
    if not ordered:
        warnings.append(f"{name}: time stamps are not monotonic; windows selected by mask")
    return CutRecording(
        samples=samples,
        events_read=int(t.size),
        empty_windows=int(empty),
        truncated_bytes=ev.truncated_bytes,
        skipped_packets=ev.skipped_packets,
        warnings=warnings,
    )


__all__ = [
    "ID", "SPEC", "SENSOR_SIZE", "RESOURCES", "open_source", "cut", "parse_labels", "parse_mapping", "GestureSource"
]
