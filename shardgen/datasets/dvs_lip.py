"""DVS-Lip (Tan et al. 2022): ``DVS-Lip.zip`` of structured ``.npy`` files, 100 words, train/test.

The zip holds ``DVS-Lip/<train|test>/<word>/<n>.npy``, one sample per file, each a structured
array ``[('t', '<i4'), ('x', 'i1'), ('y', 'i1'), ('p', 'i1')]`` (read without pickle,
:mod:`shardgen.formats.npy`). Events as stored; sensor 128 × 128. Words are numbered in sorted
order (SpikingJelly's ``DatasetFolder`` over each split's folders; the two splits hold the same
100 words). Key ``<word>/<n>``, where SpikingJelly stores the sample; official split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shardgen.datasets.base import DatasetError, DatasetSpec, RecordingTask, Resource, raw_folder
from shardgen.datasets.filelist import FileListSource, cut_items, file_item, member_item, walk_files
from shardgen.datasets.zips import zip_files
from shardgen.formats.events import Events, FormatError
from shardgen.formats.npy import events_from_columns, load_npy

ID = "dvs-lip"
ARCHIVE = "DVS-Lip.zip"
PAGE = "https://sites.google.com/view/event-based-lipreading"
SPLITS = ("train", "test")
WORDS = tuple((
    "accused action allow allowed america american another around attacks banks become being benefit benefits "
    "between billion called capital challenge change chief couple court death described difference different "
    "during economic education election england evening everything exactly general germany giving ground "
    "happen happened having heavy house hundreds immigration judge labour leaders legal little london "
    "majority meeting military million minutes missing needs number numbers paying perhaps point potential "
    "press price question really right russia russian saying security several should significant spend spent "
    "started still support syria syrian taken taking terms these thing think times tomorrow under warning "
    "water welcome words worst years young"
).split())
"""The 100 words (LRW's), sorted: label order on a complete download (also tonic's list)."""

SPEC = DatasetSpec(
    id=ID,
    title="DVS-Lip (Tan et al. 2022)",
    sensor_size=(128, 128),
    classes=WORDS,
    resources=(Resource(ARCHIVE, None, "2dcb959255122d4cdeb6094ca282494b", PAGE),),
    downloadable=False,
    where="DVS-Lip is downloaded by hand from " + PAGE + " (a Google Drive / Baidu link there); put DVS-Lip.zip "
    "(or the extracted DVS-Lip/ folder) in {raw}",
    reader="structured .npy (t, x, y, p) without pickle (shardgen.formats.npy)",
    split_rule="official: DVS-Lip/train / DVS-Lip/test",
    conventions="x, y, p, t as stored; 100 words numbered in sorted order (from the folders found)",
)


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One DVS-Lip sample: the four fields of the structured array."""
    arr = load_npy(data, name)
    if arr.dtype.names is None:
        raise FormatError(name, None, f"expected a structured array with fields t, x, y, p, got dtype {arr.dtype}")
    t, x, y, p = events_from_columns({f: arr[f] for f in arr.dtype.names}, name, 128, 128)
    return Events(t, x, y, p)


def _split_word(parts: tuple[str, ...]) -> tuple[str, str, str] | None:
    if len(parts) < 3 or not parts[-1].lower().endswith(".npy") or parts[-3] not in SPLITS:
        return None
    return parts[-3], parts[-2], parts[-1][:-4]


def open_source(raw: Path | str, check_md5: bool = True, split: dict | None = None) -> FileListSource:
    """Find and list a DVS-Lip download in ``raw``: ``DVS-Lip.zip`` or the extracted folder."""
    raw = raw_folder(raw, SPEC.where, split, fixed=f"{ID} has an official split (train / test)")
    skipped: list[str] = []
    provenance: list[dict[str, str]] = []
    md5_jobs: list[tuple[Path, str]] = []
    found: list[tuple[str, str, str, Any]] = []
    if (raw / ARCHIVE).is_file():
        md5_jobs.append((raw / ARCHIVE, SPEC.resources[0].md5 or ""))
        for parts, info in zip_files(raw / ARCHIVE, ARCHIVE, skipped):
            if got := _split_word(parts):
                found.append((*got, info))
    else:
        for path in walk_files(raw, ".npy", skipped):
            if got := _split_word(path.relative_to(raw).parts):
                found.append((*got, path))
        provenance.append({"file": str(raw), "md5": "extracted folder (no archive md5)"})
    if not found:
        where = SPEC.where.format(raw=raw)
        raise DatasetError(f"{raw}: no 'DVS-Lip/<train|test>/<word>/<n>.npy' files found. " + where)
    words = sorted({w for _, w, _, _ in found})
    per_split = {s: {w for sp, w, _, _ in found if sp == s} for s in SPLITS}
    warnings = []
    if per_split["train"] != per_split["test"] and all(per_split.values()):
        warnings.append("train and test hold different words; labels follow the sorted words of both")
    if set(words) != set(WORDS):
        warnings.append(f"{len(words)} word folders found, not the published 100; labels follow the sorted words found")
    items = []
    for s, word, stem, where in found:
        key, label = f"{word}/{stem}", words.index(word)
        if isinstance(where, Path):
            items.append(file_item(where, key, label, word, s, f"{word}/{where.name}"))
        else:
            items.append(member_item(str(raw / ARCHIVE), where, key, label, word, s, f"{word}/{stem}.npy"))
    return FileListSource(SPEC, items, words, SPLITS, md5_jobs=md5_jobs, check_md5=check_md5,
                          provenance=provenance, skipped=skipped, warnings=warnings, batch_files=256)


def cut(task: RecordingTask, allow_truncated: bool = False) -> Any:
    """Worker: decode one batch of DVS-Lip files."""
    return cut_items(SPEC, read, task, allow_truncated)
