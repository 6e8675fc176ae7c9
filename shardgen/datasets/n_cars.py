"""N-CARS (Sironi et al. 2018): Prophesee Event2D ``.dat`` samples, cars versus background.

The authors ship ``Prophesee_Dataset_n_cars.zip`` holding ``n-cars_train.zip`` and
``n-cars_test.zip``, which hold ``train/`` and ``test/``, each with ``cars/`` and
``background/`` folders of ``obj_<nnnnnn>_td.dat`` files (100 ms each, cropped from a 304 × 240
ATIS). Accepted in RAW: the outer zip, the two inner zips, or the extracted ``train/`` and ``test/``
folders (at any depth). Neither SpikingJelly nor tonic has N-CARS; conventions here:

- events as recorded by :func:`shardgen.formats.dat.read_dat` (``t`` absolute as stored, µs;
  ``x``, ``y``, ``p`` from the Event2D word);
- classes in sorted folder order: ``background`` = 0, ``cars`` = 1;
- sensor 100 × 120 (H × W), the crop size used by the N-CARS literature;
- key ``<class>/<stem>`` (stems repeat across ``cars/`` and ``background/``); official split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shardgen.datasets.base import DatasetError, DatasetSpec, RecordingTask, Resource, raw_folder
from shardgen.datasets.filelist import FileListSource, Item, cut_items, file_item, member_item, walk_files
from shardgen.datasets.zips import InnerZip, InnerZips, open_zip, safe_member, zip_files
from shardgen.formats.dat import read_dat
from shardgen.formats.events import Events

ID = "n-cars"
PAGE = "https://www.prophesee.ai/2018/03/13/dataset-n-cars/"
OUTER = "Prophesee_Dataset_n_cars.zip"
INNER = {"n-cars_train.zip": "train", "n-cars_test.zip": "test"}
CLASSES = ("background", "cars")
SPLITS = ("train", "test")

SPEC = DatasetSpec(
    id=ID,
    title="N-CARS (Sironi et al. 2018)",
    sensor_size=(100, 120),
    classes=CLASSES,
    resources=(Resource(OUTER, None, None, PAGE),),
    downloadable=False,
    where="N-CARS is downloaded by hand (a form on " + PAGE + "); put Prophesee_Dataset_n_cars.zip (or "
    "n-cars_train.zip and n-cars_test.zip, or the extracted train/ and test/ folders) in {raw}",
    reader="Prophesee DAT Event2D (shardgen.formats.dat)",
    split_rule="official: n-cars_train.zip / n-cars_test.zip",
    conventions="x, y, p, t as recorded (t absolute); background = 0, cars = 1; no md5 published; "
    "not in SpikingJelly or tonic",
)


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One N-CARS sample: every CD event of the ``.dat`` file."""
    return read_dat(data, name, allow_truncated=allow_truncated)


def _item(parts: tuple[str, ...], split: str | None) -> tuple[str, str, str] | None:
    """``(split, class, stem)`` of ``…/<split>/<class>/<stem>.dat``, else ``None``."""
    if len(parts) < 2 or not parts[-1].lower().endswith(".dat") or parts[-2] not in CLASSES:
        return None
    if len(parts) >= 3 and parts[-3] in SPLITS:
        split = parts[-3]
    return (split, parts[-2], parts[-1][:-4]) if split else None


def _from_zip(zipped: InnerZip, split: str, items: list[Item], skipped: list[str]) -> None:
    for parts, info in zipped.members:
        got = _item(parts, split)
        if got is None:
            if parts[-1].lower().endswith(".dat"):
                skipped.append(f"{zipped.label}: member {info.filename!r}: not in a cars/ or background/ folder")
            continue
        s, cls, stem = got
        key = f"{cls}/{stem}"
        items.append(member_item(zipped.container, info, key, CLASSES.index(cls), cls, s, f"{cls}/{parts[-1]}",
                                 zipped.label, zipped.shift))


def open_source(raw: Path | str, check_md5: bool = True, split: dict | None = None) -> FileListSource:
    """Find and list an N-CARS download in ``raw`` (outer zip, inner zips, or extracted folders)."""
    raw = raw_folder(raw, SPEC.where, split, fixed=f"{ID} has an official split (train / test)")
    items: list[Item] = []
    skipped: list[str] = []
    provenance: list[dict[str, str]] = []
    inner = InnerZips()
    if (raw / OUTER).is_file():
        provenance.append({"file": OUTER, "md5": "none published"})
        with open_zip(raw / OUTER) as zf:
            found = [(parts[-1], info) for info in zf.infolist()
                     if (parts := safe_member(OUTER, info, skipped)) and parts[-1] in INNER]
        zips = inner.open_all(raw / OUTER, [info for _, info in found], OUTER, skipped)
        for (name, _), zipped in zip(found, zips, strict=True):
            _from_zip(zipped, INNER[name], items, skipped)
    elif any((raw / n).is_file() for n in INNER):
        for name, s in INNER.items():
            if (raw / name).is_file():
                provenance.append({"file": name, "md5": "none published"})
                _from_zip(InnerZip(name, str(raw / name), 0, zip_files(raw / name, name, skipped)), s, items, skipped)
    else:
        for path in walk_files(raw, ".dat", skipped):
            got = _item(path.relative_to(raw).parts, None)
            if got is None:
                skipped.append(f"{path}: not in a <train|test>/<cars|background>/ folder")
                continue
            s, cls, stem = got
            items.append(file_item(path, f"{cls}/{stem}", CLASSES.index(cls), cls, s, f"{cls}/{path.name}"))
        provenance.append({"file": str(raw), "md5": "extracted folder (no archive md5)"})
    if not items:
        inner.close()
        raise DatasetError(f"{raw}: no N-CARS samples found. " + SPEC.where.format(raw=raw))
    return FileListSource(SPEC, items, list(CLASSES), SPLITS, provenance=provenance, skipped=skipped, inner=inner,
                          batch_files=512)


def cut(task: RecordingTask, allow_truncated: bool = False) -> Any:
    """Worker: decode one batch of N-CARS files."""
    return cut_items(SPEC, read, task, allow_truncated)
