"""ES-ImageNet 0.18 (Lin et al. 2021): 25 RAR volumes (about 100 GB) of npz samples, 1000 classes.

Inside ``ES-imagenet-0.18/``: ``train/class<N>/class<N>_<k>.npz``, ``val/ILSVRC2012_val_<8 digits>.npz``
and ``vallabel.txt`` (lines ``<name>.npz <N> <h> <w>``). Each npz holds ``pos`` and ``neg``, uint8
``(n, 3)`` rows. RAW may hold the volumes ``ES-imagenet-0.18.part01.rar`` … (read in one pass through
libarchive, :mod:`shardgen.volumes`, never extracted) or the extracted ``ES-imagenet-0.18/`` folder.

Conventions (SpikingJelly's ``ESImageNet``): events = ``pos`` rows with ``p = 1`` then ``neg`` rows with
``p = 0``, ``x`` = column 1, ``y`` = column 0, ``t`` = column 2, sorted by ``t`` — with a **stable**
sort here (SpikingJelly's ``argsort`` is unstable, so its order of events with equal ``t`` is not
defined; ours keeps ``pos`` before ``neg`` and file order among equal times). Sensor 256 × 256.
Labels: SpikingJelly numbers the folders ``class<N>`` in sorted *string* order (``class0``,
``class1``, ``class10``, ``class100`` …); the 1000 names in that order are the classes, so
``int(classes[label][5:])`` is N, ImageNet's sorted-synset index (the authors' ``dirlabel.txt``).
Keys: ``class<N>/<stem>`` — where SpikingJelly stores the sample (validation samples go under
their class from ``vallabel.txt``). Splits: ``train`` and ``test`` (the val set; SpikingJelly's
``train=False``); validation files not in ``vallabel.txt`` are skipped, as SpikingJelly links
only listed ones. The dataset's order is (label, key), from an extracted folder and from the
volumes alike (they are read in archive order; the writer sorts by ``sample_sort_key``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from shardgen.archive import ArchiveError, md5_file
from shardgen.datasets.base import (
    DatasetError,
    DatasetSpec,
    RecordingTask,
    Resource,
    Stage,
    Want,
    raw_folder,
    read_all,
    want_all,
)
from shardgen.datasets.classfolder import MAX_SAMPLE_FILE_BYTES
from shardgen.datasets.filelist import FileListSource, Item, cut_items, file_item, walk_files
from shardgen.formats.events import Events, FormatError
from shardgen.formats.npy import integer_column, load_npz
from shardgen.volumes import iter_volumes

ID = "es-imagenet"
ROOT = "ES-imagenet-0.18"
CLASSES = tuple(sorted(f"class{i}" for i in range(1000)))
LABEL = {c: i for i, c in enumerate(CLASSES)}
SPLITS = ("train", "test")
_TSINGHUA = "https://cloud.tsinghua.edu.cn/d/94873ab4ec2a4eb497b3/files/?p=%2FES-imagenet-0.18.part{:02d}.rar&dl=1"
_MD5 = (
    "900bdd57b5641f7d81cd4620283fef76 5982532009e863a8f4e18e793314c54b 8f408c1f5a1d4604e48d0d062a8289a0 "
    "5c5b5cf0a55954eb639964e3da510097 51feb661b4c9fa87860b63e76b914673 fcd007a2b17b7c13f338734c53f6db31 "
    "d3e74b96d9c5df15714bbc3abcd329fc 65b9cf7fa63e18d2e7d92ff45a42a5e5 241c9a37a83ff9efd305fe46d012211e "
    "ceee96971008e30d0cdc34086c49fd75 4fbfefbe6e48758fbb72427c81f119cf c8cc163be4e5f6451201dccbded4ec24 "
    "08c9dff32f6b42c49ef7cd78e37c728e 43aa157dc5bd5fcea81315a46e0322cf 480a69b050f465ef01efcc44ae29f7df "
    "11abd24d92b93e7f85acd63abd4a18ab 3891486a6862c63a325c5f16cd01fdd1 cf8bb0525b514f411bca9d7c2d681f7c "
    "3766bc35572ccacc03f0f293c571d0ae bf73a5e338644122220e41da7b5630e6 564de4a2609cbb0bb67ffa1bc51f2487 "
    "60a9e52db1acadfccc9a9809073f0b04 373b5484826d40d7ec35f0e1605cb6ea a50612e889b20f99cc7b2725dfd72e9e "
    "0802ccdeb0cff29237faf55164524101"
).split()
VOLUME = re.compile(r"ES-imagenet-0\.18\.part(\d{2})\.rar")
_TRAIN = re.compile(r"class(\d{1,3})")
_VAL = re.compile(r"ILSVRC2012_val_\d{8}")

SPEC = DatasetSpec(
    id=ID,
    title="ES-ImageNet 0.18 (Lin et al. 2021)",
    sensor_size=(256, 256),
    classes=CLASSES,
    resources=tuple(Resource(f"ES-imagenet-0.18.part{i:02d}.rar", _TSINGHUA.format(i), md5,
                             "https://github.com/lyh983012/ES-imagenet-master") for i, md5 in enumerate(_MD5, 1)),
    downloadable=True,
    where="Download ES-imagenet-0.18.part01.rar … part25.rar (about 100 GB; run: shardgen download es-imagenet "
    "--raw {raw}) into {raw}, or put the extracted ES-imagenet-0.18/ folder there",
    reader="npz pos/neg uint8 (n, 3) without pickle; RAR volumes via libarchive (shardgen.volumes)",
    split_rule="official: train/ and val/ (as split 'test', labels from vallabel.txt)",
    conventions="x = col 1, y = col 0, t = col 2, p = 1 (pos) / 0 (neg), stable sort by t; labels in string "
    "order of class<N> (SpikingJelly's)",
)


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One ES-ImageNet sample (module docstring): ``pos`` then ``neg``, stably sorted by time."""
    z = load_npz(data, name)
    parts = []
    for key in ("pos", "neg"):
        if key not in z:
            raise FormatError(name, None, f"no {key!r} array (has {', '.join(z)})")
        a = np.asarray(z[key])
        if a.ndim != 2 or a.shape[1] != 3:
            if a.size == 0:
                a = a.reshape(0, 3)
            else:
                raise FormatError(name, None, f"{key!r} has shape {a.shape}, expected (n, 3)")
        parts.append(a)
    n_pos = len(parts[0])
    # the uint8 rows as stored when both arrays are uint8 (the published files): checked, sorted and cut at 1
    # byte a value (a stable argsort of uint8 is a radix sort); else as int64, checked by integer_column
    if parts[0].dtype != np.uint8 or parts[1].dtype != np.uint8:
        parts = [integer_column(a, name, key).reshape(-1, 3) for a, key in zip(parts, ("pos", "neg"), strict=True)]
    rows = np.concatenate(parts)
    order = np.argsort(rows[:, 2], kind="stable")
    rows = rows[order]
    p = (order < n_pos).view(np.uint8)  # pos first: p = 1 for the rows that came from pos
    if rows.size and int(rows[:, :2].max()) > 255:
        raise FormatError(name, None, f"coordinate {int(rows[:, :2].max())} outside the 256 x 256 sensor")
    return Events(rows[:, 2].astype(np.int64), rows[:, 1].astype(np.uint16), rows[:, 0].astype(np.uint16), p)


def parse_vallabel(data: bytes, name: str) -> dict[str, int]:
    """``vallabel.txt``: ``<stem>`` → N from lines ``ILSVRC2012_val_<8 digits>.npz <N> <h> <w>``."""
    out: dict[str, int] = {}
    for row, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        f = line.split()
        if len(f) != 4 or not f[0].endswith(".npz") or not _VAL.fullmatch(f[0][:-4]) \
                or not all(v.isdigit() for v in f[1:]) or not 0 <= int(f[1]) < 1000:
            want = "'ILSVRC2012_val_NNNNNNNN.npz <0-999> <h> <w>'"
            raise DatasetError(f"{name}: row {row}: expected {want}, got {line!r}")
        if f[0][:-4] in out:
            raise DatasetError(f"{name}: row {row}: {f[0]} listed twice")
        out[f[0][:-4]] = int(f[1])
    return out


def parse_dirlabel(data: bytes, name: str) -> dict[str, int]:
    """The authors' ``dirlabel.txt`` (synset → N of the train folder ``class<N>``): 1000 lines ``<wnid> <N>``."""
    out: dict[str, int] = {}
    for row, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        f = line.split()
        if len(f) != 2 or not re.fullmatch(r"n\d{8}", f[0]) or not f[1].isdigit():
            raise DatasetError(f"{name}: row {row}: expected '<wnid> <N>', got {line!r}")
        out[f[0]] = int(f[1])
    if sorted(out.values()) != list(range(1000)):
        raise DatasetError(f"{name}: the class numbers are not 0..999")
    return out


def classify(parts: tuple[str, ...], val: dict[str, int]) -> tuple[str, str, str] | None | str:
    """``(split, class, stem)`` of a sample path; ``None`` for other files; a reason string to skip it."""
    if not parts or not parts[-1].endswith(".npz"):
        return None
    stem = parts[-1][:-4]
    if len(parts) >= 3 and parts[-3] == "train" and _TRAIN.fullmatch(parts[-2]):
        return ("train", parts[-2], stem) if parts[-2] in LABEL else "class number outside 0..999"
    if len(parts) >= 2 and parts[-2] == "val":
        if stem not in val:
            return "not in vallabel.txt"
        return "test", f"class{val[stem]}", stem
    return None


def _volumes(raw: Path) -> list[Path]:
    found = {int(m.group(1)): p for p in raw.iterdir() if (m := VOLUME.fullmatch(p.name)) and p.is_file()}
    return [found[k] for k in sorted(found)]


class VolumeSource(FileListSource):
    """The RAR volumes, streamed once: tasks carry their files' bytes; the order is known at the end."""

    @staticmethod
    def sample_sort_key(key: str, label: int) -> tuple[int, str]:
        """The dataset's order, (label, key), as from an extracted folder."""
        return label, key

    def __init__(self, raw: Path, volumes: list[Path], val: dict[str, int] | None, check_md5: bool,
                 warnings: list[str], provenance: list[dict[str, str]]):
        md5 = {f"ES-imagenet-0.18.part{i:02d}.rar": m for i, m in enumerate(_MD5, 1)}
        jobs = [(v, md5[v.name]) for v in volumes]
        super().__init__(SPEC, [], list(CLASSES), SPLITS, md5_jobs=jobs, check_md5=check_md5,
                         provenance=provenance, warnings=warnings)
        self.raw, self.volumes, self.val = raw, volumes, val
        self._order: dict[str, list[str]] | None = None
        self.batch_files, self.batch_bytes = 128, 32 << 20

    def listing(self) -> list[tuple[str, int]] | None:
        """Not known before the volumes are read: jobs take the files as the archive yields them."""
        return None

    def _scan_vallabel(self) -> dict[str, int]:
        """First pass, only when RAW has no ``vallabel.txt``: find the one in the archive."""
        for member, _, data in iter_volumes(self.volumes, MAX_SAMPLE_FILE_BYTES):
            if member.name == "vallabel.txt":
                return parse_vallabel(data, f"{self.volumes[0].name}:{member}")
        raise DatasetError(f"{self.volumes[0]}: no vallabel.txt in the archive (nor in {self.raw})")

    def recordings(self, stage: Stage = read_all, want: Want = want_all) -> Iterator[RecordingTask]:
        """Stream the volumes; one task per batch of files of one split, in archive order."""
        try:
            val = self.val if self.val is not None else self._scan_vallabel()
        except ArchiveError as exc:
            raise DatasetError(str(exc)) from None
        order: dict[str, list[str]] = {s: [] for s in SPLITS}
        current: dict[str, list[tuple[int, Item, bytes]]] = {s: [] for s in SPLITS}
        place = dict.fromkeys(SPLITS, 0)  # each file's place in its split, in archive order (all jobs' files)
        size = dict.fromkeys(SPLITS, 0)
        seen: dict[tuple[str, str], str] = {}

        def flush(split: str) -> RecordingTask | None:
            batch, current[split], size[split] = current[split], [], 0
            if not batch:
                return None
            name = f"{split}/{len(order[split]):06d}"
            order[split].append(name)
            return RecordingTask(name=name, context={"split": split, "items": [it for _, it, _ in batch],
                                                     "data": {it.key: d for _, it, d in batch}},
                                 places=[p for p, _, _ in batch])

        try:
            for member, n, data in iter_volumes(self.volumes, MAX_SAMPLE_FILE_BYTES):
                got = classify(PurePosixPath(member).parts, val)
                if isinstance(got, str):
                    self.skipped.append(f"{member}: {got}")
                if not isinstance(got, tuple):
                    continue
                split, cls, stem = got
                key = f"{cls}/{stem}"
                if (split, key) in seen:
                    raise DatasetError(f"{self.volumes[0]}: {str(member)!r} and {seen[(split, key)]!r} give the "
                                       f"same sample key {key!r} in split {split!r}")
                seen[(split, key)] = str(member)
                item = Item(key, LABEL[cls], cls, split, f"{self.volumes[0].name}:{member}", f"{key}.npz", n)
                place[split] += 1
                if not want(f"{split}/{key}", n):  # another job's file (assigned as the archive is read)
                    continue
                if current[split] and (len(current[split]) >= self.batch_files or size[split] + n > self.batch_bytes):
                    if task := flush(split):
                        yield task
                current[split].append((place[split] - 1, item, data))
                size[split] += n
        except ArchiveError as exc:
            raise DatasetError(str(exc)) from None
        for split in SPLITS:
            if task := flush(split):
                yield task
        self._order = order

    def order(self) -> dict[str, list[str]]:
        """Split → batch names in archive order (after the md5 check)."""
        self.finish_md5()
        if self._order is None:
            raise DatasetError(f"{self.volumes[0]}: the archive was not read to its end")
        return self._order


def _vallabel_beside(raw: Path, provenance: list[dict[str, str]]) -> dict[str, int] | None:
    for cand in (raw / "vallabel.txt", raw / ROOT / "vallabel.txt"):
        if cand.is_file():
            provenance.append({"file": str(cand.relative_to(raw)), "md5": md5_file(cand)})
            return parse_vallabel(cand.read_bytes(), str(cand))
    return None


def open_source(raw: Path | str, check_md5: bool = True, split: dict | None = None) -> FileListSource:
    """The RAR volumes in ``raw`` (streamed), or the extracted ``ES-imagenet-0.18/`` folder."""
    raw = raw_folder(raw, SPEC.where, split, fixed=f"{ID} has an official split (train / val)")
    provenance: list[dict[str, str]] = []
    volumes = _volumes(raw)
    if volumes:
        warnings = []
        numbers = [int(VOLUME.fullmatch(v.name).group(1)) for v in volumes]  # type: ignore[union-attr]
        if numbers != list(range(1, len(numbers) + 1)) or len(numbers) != len(_MD5):
            warnings.append(f"{len(volumes)} of the {len(_MD5)} published volumes found (parts {numbers})")
        return VolumeSource(raw, volumes, _vallabel_beside(raw, provenance), check_md5, warnings, provenance)
    base = raw / ROOT if (raw / ROOT).is_dir() else raw
    if not (base / "train").is_dir() and not (base / "val").is_dir():
        raise DatasetError(f"{raw}: neither ES-imagenet-0.18.partNN.rar volumes nor an extracted {ROOT}/ folder. "
                           + SPEC.where.format(raw=raw))
    val = _vallabel_beside(raw, provenance) or {}
    if (base / "val").is_dir() and not val:
        raise DatasetError(f"{base / 'vallabel.txt'}: missing (the labels of the val/ samples)")
    skipped: list[str] = []
    items = []
    for path in walk_files(base, ".npz", skipped):
        got = classify(path.relative_to(base).parts, val)
        if isinstance(got, str):
            skipped.append(f"{path}: {got}")
        if isinstance(got, tuple):
            s, cls, stem = got
            items.append(file_item(path, f"{cls}/{stem}", LABEL[cls], cls, s, f"{cls}/{path.name}"))
    provenance.append({"file": str(raw), "md5": "extracted folder (no archive md5)"})
    if not items:
        raise DatasetError(f"{base}: no ES-ImageNet samples found. " + SPEC.where.format(raw=raw))
    return FileListSource(SPEC, items, list(CLASSES), SPLITS, provenance=provenance, skipped=skipped,
                          batch_files=256)


def cut(task: RecordingTask, allow_truncated: bool = False) -> Any:
    """Worker: decode one batch of ES-ImageNet files (from disk or handed over from the volumes)."""
    return cut_items(SPEC, read, task, allow_truncated)


__all__ = ["ID", "SPEC", "open_source", "cut", "read", "parse_vallabel", "parse_dirlabel", "classify"]
