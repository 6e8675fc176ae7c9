"""Bullying10K (Dong et al. 2023): ten category zips of pickled ``.npy`` recordings from a DAVIS346.

``<category>.zip`` holds ``<category>/<category>_<p>_<p>_<L|R>_<dark|light>/dvSave-<date>.npy``: an
object array of event packets (dv-processing structured arrays ``timestamp, x, y, polarity, …``),
read without executing anything (:mod:`shardgen.formats.safe_pickle`). RAW may hold the zips or the
extracted category folders. Conventions (SpikingJelly's ``Bullying10kClassification``):

- events = the packets concatenated, ``t, x, y, p`` = the first four fields of each record;
  sensor 260 × 346;
- labels from SpikingJelly's ``BULLYING10K_CATEGORY_LABEL`` (handshake 0, slapping 1, punching 2,
  walking 3, fingerguess 4, strangling 5, greeting 6, pushing 7, hairgrabs 8, kicking 9);
- split: every 5th file is test (files 0, 5, 10 …) over the categories sorted by name and, within a
  category, the files sorted by path — SpikingJelly applies the same rule to the file system's
  listing order, which is not defined;
- key ``<category>/<session>/<stem>``, the path below the dataset's root: the real lists repeat 713
  file names across two session folders of one category, and SpikingJelly's ``<label>/<stem>.npz``
  overwrites one of each pair (a bug not copied: every recording is kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shardgen.datasets.base import DatasetError, DatasetSpec, RecordingTask, Resource, raw_folder
from shardgen.datasets.filelist import FileListSource, cut_items, file_item, member_item, walk_files
from shardgen.datasets.zips import zip_files
from shardgen.formats.events import Events, FormatError
from shardgen.formats.npy import events_from_columns
from shardgen.formats.safe_pickle import load_pickled_npy

ID = "bullying10k"
CATEGORIES = ("handshake", "slapping", "punching", "walking", "fingerguess", "strangling", "greeting", "pushing",
              "hairgrabs", "kicking")
_FIGSHARE = {
    "handshake": ("41268834", "681d70f499e736a1e805305284ddc425"),
    "slapping": ("41247021", "84b41d6805958f9f62f425223916ffc2"),
    "punching": ("41263314", "40954f480ab210099d448b7b88fc4719"),
    "walking": ("41247024", "56e4cac9c0814ce701c3b2292c15b6a9"),
    "fingerguess": ("41253057", "f83114e5b4f0ea57cac86fb080c7e4d7"),
    "strangling": ("41261904", "8185ecd6f3147e9b609d22f06270aa86"),
    "greeting": ("41268792", "4a763fad728b04c8356db8544f1121fe"),
    "pushing": ("41268951", "7986c74ade7149a98672120a89b13ba8"),
    "hairgrabs": ("41277855", "a9cf690ed0a3305da4a4b8e110f64db1"),
    "kicking": ("41278008", "6c3218f977de4ac29c84a10b17779c33"),
}
PAGE = "https://github.com/Brain-Cog-Lab/Bullying10K"
TEST_EVERY = 5

SPEC = DatasetSpec(
    id=ID,
    title="Bullying10K (Dong et al. 2023)",
    sensor_size=(260, 346),
    classes=CATEGORIES,
    resources=tuple(Resource(f"{c}.zip", f"https://figshare.com/ndownloader/files/{fid}", md5, PAGE)
                    for c, (fid, md5) in _FIGSHARE.items()),
    downloadable=True,
    where="Download handshake.zip … kicking.zip from " + PAGE + " (or run: shardgen download bullying10k --raw "
    "{raw}) and put them in {raw}",
    reader="pickled .npy of event packets, restricted unpickler (shardgen.formats.safe_pickle)",
    split_rule="every-5th: files 0, 5, 10 … test, categories sorted by name, files by path",
    conventions="t, x, y, p = first four fields of each record; SpikingJelly's category labels; key = path "
    "<category>/<session>/<stem> (SpikingJelly overwrites repeated stems)",
)


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One recording: its packets concatenated, the first four fields as ``t, x, y, p``."""
    arr = load_pickled_npy(data, name)
    packets = list(arr.reshape(-1)) if arr.dtype == np.dtype(object) else [arr]
    cols: dict[str, list[np.ndarray]] = {c: [] for c in "txyp"}
    for k, pk in enumerate(packets):
        try:
            fields = _packet_fields(np.asarray(pk))
        except (KeyError, ValueError, TypeError, IndexError) as exc:  # a damaged dtype state numpy accepted
            raise FormatError(name, None, f"packet {k}: unreadable records ({type(exc).__name__}: {exc})") from None
        if fields is None:
            raise FormatError(name, None, f"packet {k}: dtype {np.asarray(pk).dtype}, shape {np.shape(pk)}: not "
                                          "event records (t, x, y, p, …)")
        for c, v in zip("txyp", fields, strict=True):
            cols[c].append(v)
    try:
        joined = {c: np.concatenate(v) if v else np.zeros(0, np.int64) for c, v in cols.items()}
    except (TypeError, ValueError) as exc:  # packets whose fields have no common type
        raise FormatError(name, None, f"packets of incompatible field types ({exc})") from None
    t, x, y, p = events_from_columns(joined, name, 260, 346)
    return Events(t, x, y, p)


def _packet_fields(pk: np.ndarray) -> list[np.ndarray] | None:
    """The first four fields (structured records) or columns (a 2-D table) of one packet; ``[]`` if empty."""
    if pk.dtype.names is not None and len(pk.dtype.names) >= 4 \
            and all(pk.dtype[f].shape == () for f in pk.dtype.names[:4]):
        return [pk[f].reshape(-1) for f in pk.dtype.names[:4]]
    if pk.ndim == 2 and pk.shape[1] >= 4 and pk.dtype.names is None:
        return [pk[:, i] for i in range(4)]
    if pk.size == 0:
        return [np.zeros(0, np.int64)] * 4
    return None


def _category_of(parts: tuple[str, ...]) -> int | None:
    """Index in ``parts`` of the category folder (the first part that names a category)."""
    return next((i for i, p in enumerate(parts[:-1]) if p in CATEGORIES), None)


def split_every_fifth(keys: list[str]) -> dict[str, str]:
    """The split rule: keys (``<category>/…``) sorted by category name then path; every 5th (0, 5 …) is test."""
    ordered = sorted(keys, key=lambda k: (k.split("/", 1)[0], k))
    return {k: "test" if i % TEST_EVERY == 0 else "train" for i, k in enumerate(ordered)}


def open_source(raw: Path | str, check_md5: bool = True, split: dict | None = None) -> FileListSource:
    """List the category zips (or extracted folders) in ``raw`` and split by the every-5th rule."""
    raw = raw_folder(raw, SPEC.where, split, fixed=f"{ID} has a fixed split (every 5th file test)")
    skipped: list[str] = []
    provenance: list[dict[str, str]] = []
    md5_jobs: list[tuple[Path, str]] = []
    found: dict[str, Any] = {}
    zips = [c for c in CATEGORIES if (raw / f"{c}.zip").is_file()]
    for c in zips:
        md5_jobs.append((raw / f"{c}.zip", _FIGSHARE[c][1]))
        for parts, info in zip_files(raw / f"{c}.zip", f"{c}.zip", skipped):
            i = _category_of(parts)
            if parts[-1].lower().endswith(".npy") and i is not None:
                found["/".join(parts[i:])[:-4]] = (str(raw / f"{c}.zip"), info)
    if not zips:
        for path in walk_files(raw, ".npy", skipped):
            parts = path.relative_to(raw).parts
            i = _category_of(parts)
            if i is not None:
                found["/".join(parts[i:])[:-4]] = path
        provenance.append({"file": str(raw), "md5": "extracted folder (no archive md5)"})
    elif len(zips) < len(CATEGORIES):
        missing = [f"{c}.zip" for c in CATEGORIES if c not in zips]
        skipped.append(f"not in {raw}: {', '.join(missing)} (converting the others)")
    if not found:
        raise DatasetError(f"{raw}: no '<category>/<session>/<name>.npy' recordings found. "
                           + SPEC.where.format(raw=raw))
    split_of = split_every_fifth(list(found))
    items = []
    for key, where in found.items():
        cat = key.split("/", 1)[0]
        label, file = CATEGORIES.index(cat), f"{key}.npy"
        if isinstance(where, Path):
            items.append(file_item(where, key, label, cat, split_of[key], file))
        else:
            items.append(member_item(where[0], where[1], key, label, cat, split_of[key], file))
    rule = {"rule": "every-5th", "test": "files 0, 5, 10 … of the categories sorted by name, files by path"}
    return FileListSource(SPEC, items, list(CATEGORIES), ("train", "test"), rule=rule, md5_jobs=md5_jobs,
                          check_md5=check_md5, provenance=provenance, skipped=skipped, batch_files=32)


def parse_file_list(data: bytes, name: str) -> list[str]:
    """A list of recordings ``<category>/<session>/<stem>[\\t…]`` per line (EFV's train/test lists), checked."""
    out = []
    for row, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        path = line.split("\t")[0].strip()
        parts = path.split("/")
        if len(parts) != 3 or parts[0] not in CATEGORIES or not parts[1].startswith(parts[0] + "_") \
                or not parts[2].startswith("dvSave-"):
            raise DatasetError(f"{name}: row {row}: expected '<category>/<category>_…/dvSave-…', got {line!r}")
        out.append(path)
    return out


def cut(task: RecordingTask, allow_truncated: bool = False) -> Any:
    """Worker: decode one batch of recordings."""
    return cut_items(SPEC, read, task, allow_truncated)
