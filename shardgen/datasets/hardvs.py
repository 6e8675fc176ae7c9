"""HARDVS (Wang et al. 2022), SpikingJelly's MINI release: npz samples, 300 actions, train/val/test lists.

The download is ``MINI_HARDVS_files.zip`` (holding ``MINI_HARDVS_files/action_NNN.zip``, each of
``<sample>.npz`` files with ``t``, ``x``, ``y``, ``p`` arrays) and the lists ``train_label.txt``,
``val_label.txt``, ``test_label.txt`` whose lines start with ``action_NNN/<sample>`` (then a space
and the class number). Only listed samples are converted, into the split whose list names them
(SpikingJelly's rule); unlisted files are reported as skipped, a listed file that is missing is an
error. RAW may also hold the extracted ``action_NNN/`` folders (at any depth) next to the lists.

Conventions: events as stored (read without pickle, :mod:`shardgen.formats.npy`); sensor
260 × 346; label = NNN − 1 (SpikingJelly creates all 300 ``action_NNN`` folders, so its sorted
folder index is NNN − 1); key ``action_NNN/<sample>``, where SpikingJelly stores the sample;
splits ``train``, ``val``, ``test``; CRLF lists are accepted.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from shardgen.datasets.base import DatasetError, DatasetSpec, RecordingTask, Resource, raw_folder
from shardgen.datasets.filelist import FileListSource, cut_items, file_item, member_item, walk_files
from shardgen.datasets.md5check import md5_mismatch
from shardgen.datasets.zips import InnerZips, open_zip, safe_member
from shardgen.formats.events import Events
from shardgen.formats.npy import events_from_columns, load_npz

ID = "hardvs"
ARCHIVE = "MINI_HARDVS_files.zip"
PAGE = "https://github.com/Event-AHU/HARDVS"
SPLITS = ("train", "val", "test")
LISTS = {s: f"{s}_label.txt" for s in SPLITS}
CLASSES = tuple(f"action_{i:03d}" for i in range(1, 301))
_CLASS = re.compile(r"action_(\d{3})")
_MD5 = {ARCHIVE: "9c4cc0d9ba043faa17f6f1a9e9aff982", "test_label.txt": "5b664af5843f9b476a9c22626f7f5a59",
        "train_label.txt": "0d642b6e6871034f151b2649a89d8d3c", "val_label.txt": "cd2cebcba80e4552102bbacf2b5df812"}

SPEC = DatasetSpec(
    id=ID,
    title="HARDVS MINI (Wang et al. 2022)",
    sensor_size=(260, 346),
    classes=CLASSES,
    resources=tuple(Resource(name, None, md5, PAGE) for name, md5 in _MD5.items()),
    downloadable=False,
    where="HARDVS is downloaded by hand: follow " + PAGE + " (its Baidu and Dropbox links are reported dead in "
    "SpikingJelly's issues; no working mirror is confirmed) and put MINI_HARDVS_files.zip, train_label.txt, "
    "val_label.txt and test_label.txt in {raw}",
    reader="npz (t, x, y, p) without pickle (shardgen.formats.npy)",
    split_rule="official: train_label.txt / val_label.txt / test_label.txt",
    conventions="x, y, p, t as stored; label = NNN - 1 of action_NNN",
)


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One HARDVS sample: the ``t``, ``x``, ``y``, ``p`` arrays of the npz."""
    t, x, y, p = events_from_columns(load_npz(data, name), name, 260, 346)
    return Events(t, x, y, p)


def parse_list(data: bytes, name: str) -> list[tuple[str, str]]:
    """``(action_NNN, sample)`` of every line of a label list (blank lines skipped; LF or CRLF)."""
    out = []
    for row, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        first = line.split()[0]
        parts = first.split("/")
        if len(parts) != 2 or not _CLASS.fullmatch(parts[0]) or not 1 <= int(parts[0][7:]) <= 300 \
                or not parts[1] or parts[1].startswith("."):
            raise DatasetError(f"{name}: row {row}: expected 'action_NNN/<sample> <class>', got {line!r}")
        out.append((parts[0], parts[1]))
    return out


def parse_class_list(data: bytes, name: str) -> list[str]:
    """The authors' ``HARDVS_300_class.txt``: 300 lines ``ActionNNN<sep><name>``, NNN = 1 … 300 in order."""
    names = []
    for row, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        m = re.match(r"Action(\d{3})[- ]?(.*)", line.strip())
        if not m or int(m.group(1)) != row:
            raise DatasetError(f"{name}: row {row}: expected 'Action{row:03d} <name>', got {line!r}")
        names.append(m.group(2).strip())
    if len(names) != 300:
        raise DatasetError(f"{name}: {len(names)} classes, expected 300")
    return names


def _check_lists(raw: Path, check_md5: bool, provenance: list[dict[str, str]]) -> dict[str, list[tuple[str, str]]]:
    from shardgen.archive import md5_file

    lists = {}
    for split, fname in LISTS.items():
        path = raw / fname
        if not path.is_file():
            raise DatasetError(f"{path}: missing (HARDVS's {split} list). " + SPEC.where.format(raw=raw))
        md5 = md5_file(path)
        provenance.append({"file": fname, "md5": md5})
        if check_md5 and md5 != _MD5[fname]:
            raise md5_mismatch(path, md5, _MD5[fname])
        lists[split] = parse_list(path.read_bytes(), str(path))
    return lists


def open_source(raw: Path | str, check_md5: bool = True, split: dict | None = None) -> FileListSource:
    """Find the lists and the samples (``MINI_HARDVS_files.zip`` or extracted ``action_NNN/`` folders) in ``raw``."""
    raw = raw_folder(raw, SPEC.where, split, fixed=f"{ID} has an official split (train/val/test lists)")
    skipped: list[str] = []
    provenance: list[dict[str, str]] = []
    lists = _check_lists(raw, check_md5, provenance)
    files: dict[tuple[str, str], Any] = {}
    inner = InnerZips()
    md5_jobs: list[tuple[Path, str]] = []
    if (raw / ARCHIVE).is_file():
        md5_jobs.append((raw / ARCHIVE, _MD5[ARCHIVE]))
        actions: list[tuple[str, zipfile.ZipInfo]] = []
        with open_zip(raw / ARCHIVE) as zf:
            for info in zf.infolist():
                parts = safe_member(ARCHIVE, info, skipped)
                if parts and (m := re.fullmatch(r"(action_\d{3})\.zip", parts[-1])):
                    actions.append((m.group(1), info))
        zips = inner.open_all(raw / ARCHIVE, [info for _, info in actions], ARCHIVE, skipped)
        for (cls, _), iz in zip(actions, zips, strict=True):
            for p, i in iz.members:
                if p[-1].lower().endswith(".npz"):
                    files[(cls, p[-1][:-4])] = (iz, i)
    else:
        for path in walk_files(raw, ".npz", skipped):
            cls = next((d for d in reversed(path.relative_to(raw).parts[:-1]) if _CLASS.fullmatch(d)), None)
            if cls is not None:
                files[(cls, path.name[:-4])] = path
        provenance.append({"file": str(raw), "md5": "extracted folder (no archive md5)"})
    items = []
    listed = set()
    for split_name, entries in lists.items():
        for cls, sample in entries:
            where = files.get((cls, sample))
            if where is None:
                inner.close()
                raise DatasetError(f"{raw / LISTS[split_name]}: lists {cls}/{sample}, which is not in the download")
            listed.add((cls, sample))
            key, label = f"{cls}/{sample}", int(cls[7:]) - 1
            if isinstance(where, Path):
                items.append(file_item(where, key, label, cls, split_name, f"{key}.npz"))
            else:
                iz, info = where
                items.append(member_item(iz.container, info, key, label, cls, split_name, f"{key}.npz", iz.label,
                                         iz.shift))
    skipped.extend(f"{cls}/{sample}.npz: not in any label list" for cls, sample in sorted(set(files) - listed))
    return FileListSource(SPEC, items, list(CLASSES), SPLITS, md5_jobs=md5_jobs, check_md5=check_md5,
                          provenance=provenance, skipped=skipped, inner=inner, batch_files=64)


def cut(task: RecordingTask, allow_truncated: bool = False) -> Any:
    """Worker: decode one batch of HARDVS files."""
    return cut_items(SPEC, read, task, allow_truncated)
