"""NAVGesture (Maro et al. 2020), shared by ``nav-gesture-walk`` and ``nav-gesture-sit``.

The authors ship ``navgesture-<walk|sit>.zip`` holding one zip per user, each holding
``userNN/userNN_<gesture>_<k>….dat`` ATIS TD recordings (:mod:`shardgen.formats.atis_td`), one
sample per file. The gesture is the second ``_`` token of the file name: ``do``, ``ho``, ``le``,
``ri``, ``se``, ``up`` (down, home, left, right, select, up), numbered in that sorted order as
SpikingJelly's folders are. Key ``<gesture>/<file stem>``, where SpikingJelly stores the sample.

Events follow SpikingJelly's reader (``nav_gesture._readATIS_tddat`` + ``y = 239 − y``), computed
here without per-event loops:

1. While reading, an event whose time stamp is below the previous *stored* one is not stored (its
   slot stays zero), and the arrays are then cut to the number of stored events — so the last
   ``dropped`` events of the file are lost and zero slots remain (a quirk copied for parity).
2. ``t −= t[0]`` (times start at 0).
3. Events are deleted pass after pass until no time stamp decreases; the fixed point is exactly
   "keep the events with ``t ≥`` the maximum of all earlier ``t``" (an event at a running maximum
   is never deleted; any other one is, since the running-maximum event before it survives).
4. ``x`` as stored, ``y = 239 − y``; sensor 240 × 304 (H × W, SpikingJelly's: x reaches 303).

An empty file gives an empty sample (SpikingJelly raises ``IndexError`` on ``t[0]``). There is no
official split: default seeded 90 % / 10 % per gesture (``--train-ratio``, ``--split-seed``) and an
``all`` split with every sample (what SpikingJelly's classes load).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shardgen.datasets.base import DatasetError, DatasetSpec, Resource
from shardgen.datasets.classfolder import SplitRule, make_split_rule
from shardgen.datasets.filelist import FileListSource, Item, Unit, file_item, member_item, split_units, walk_files
from shardgen.datasets.zips import InnerZips, open_zip, safe_member
from shardgen.formats.atis_td import read_atis_td
from shardgen.formats.events import Events, FormatError

GESTURES = ("do", "ho", "le", "ri", "se", "up")
SENSOR_SIZE = (240, 304)
ISSUE = "https://github.com/fangwei123456/spikingjelly/issues/423"
PAGE = "https://www.neuromorphic-vision.com/public/downloads/navgesture/"
DEFAULT_SPLIT = SplitRule("ratio", train_ratio=0.9, seed=0)


def spikingjelly_order(t: np.ndarray) -> np.ndarray:
    """Indices of the events SpikingJelly's NAVGesture reader keeps, in order, and -1 for its zero slots.

    Step 1 of the module docstring: event ``i`` is not stored when ``t[i] < t[i-1]`` and event
    ``i-1`` was stored (a zero slot compares as time 0, so the next event is always stored):
    within a run of decreasing steps every other event, starting with the first, is dropped.
    """
    n = t.size
    dec = np.zeros(n, dtype=bool)
    dec[1:] = t[1:] < t[:-1]
    idx = np.arange(n)
    run_start = np.maximum.accumulate(np.where(dec & ~np.r_[False, dec[:-1]], idx, 0))
    dropped = dec & ((idx - run_start) % 2 == 0)
    slots = np.where(dropped, -1, idx)
    return slots[: n - int(dropped.sum())]


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One NAVGesture recording with SpikingJelly's reader semantics (module docstring)."""
    ev = read_atis_td(data, name, allow_truncated)
    slots = spikingjelly_order(ev.t)
    stored = slots >= 0
    src = np.where(stored, slots, 0)
    t = np.where(stored, ev.t[src], 0)
    if t.size:
        t = t - t[0]
    keep = t >= np.maximum.accumulate(t) if t.size else np.zeros(0, dtype=bool)
    take = src[keep]  # zero slots never survive step 3: their time is at most -t[0] and below an earlier one
    x, y, p = ev.x[take], ev.y[take], ev.p[take]
    if y.size and int(y.max()) > 239:
        i = int(np.flatnonzero(y > 239)[0])
        raise FormatError(name, None, f"event {i} at y={int(y[i])}: outside the 240-row NAVGesture sensor")
    return Events(t[keep], x, (239 - y).astype(np.uint16), p, skipped={"dropped_by_reader": int(ev.t.size - take.size)},
                  truncated_bytes=ev.truncated_bytes)


def make_spec(which: str, md5: str) -> DatasetSpec:
    """The declaration of ``nav-gesture-<which>``."""
    archive = f"navgesture-{which}.zip"
    return DatasetSpec(
        id=f"nav-gesture-{which}",
        title=f"NAVGesture-{which} (Maro et al. 2020)",
        sensor_size=SENSOR_SIZE,
        classes=GESTURES,
        resources=(Resource(archive, None, md5, f"the authors: {PAGE}{archive} is gone ({ISSUE}), no mirror known"),),
        downloadable=False,
        where=f"NAVGesture is downloaded by hand: its host {PAGE} is gone ({ISSUE}) and no working mirror is "
        f"confirmed; ask the authors (Maro, Ieng, Benosman; Sorbonne / Institut de la Vision) for {archive} "
        "and put it in {raw}",
        reader="ATIS TD .dat (shardgen.formats.atis_td)",
        split_rule="ratio: seeded 90 % train per gesture (--train-ratio, --split-seed); 'all' = every sample",
        conventions="SpikingJelly's reader: decreasing time stamps dropped, t - t[0], x, y = 239 - y",
    )


def _units_of(name: str, skipped: list[str], where: str) -> tuple[str, str] | None:
    """``(gesture, stem)`` of a ``…/userNN_<gesture>_….dat`` name, else ``None`` (reported)."""
    base = name.rsplit("/", 1)[-1]
    if not base.lower().endswith(".dat"):
        return None
    stem = base[:-4]
    parts = stem.split("_")
    if len(parts) < 2 or parts[1] not in GESTURES:
        skipped.append(f"{where}: {name!r}: no gesture ({'/'.join(GESTURES)}) as the second '_' token of the name")
        return None
    return parts[1], stem


def open_nav_source(spec: DatasetSpec, raw: Path | str, check_md5: bool, split: dict | None) -> FileListSource:
    """Find and list a NAVGesture download in ``raw``: the published zip of user zips, or extracted ``.dat`` files."""
    raw = Path(raw)
    rule = make_split_rule(split, DEFAULT_SPLIT, spec.id, has_official=False)
    if not raw.is_dir():
        raise DatasetError(f"{raw}: RAW folder does not exist. " + spec.where.format(raw=raw))
    archive = spec.resources[0]
    found: list[tuple[Unit, Any]] = []
    skipped: list[str] = []
    provenance: list[dict[str, str]] = []
    md5_jobs: list[tuple[Path, str]] = []
    inner = InnerZips()
    if (raw / archive.file).is_file():
        md5_jobs.append((raw / archive.file, archive.md5 or ""))
        with open_zip(raw / archive.file) as zf:
            users = [info for info in zf.infolist()
                     if (parts := safe_member(archive.file, info, skipped)) and parts[-1].lower().endswith(".zip")]
        zips = inner.open_all(raw / archive.file, users, archive.file, skipped)
        for iz in zips:
            for _, m in iz.members:
                if got := _units_of(m.filename, skipped, iz.label):
                    found.append((Unit(got[0], got[1], f"{iz.label}:{m.filename}"), (iz, m)))
    else:
        for path in walk_files(raw, ".dat", skipped):
            if got := _units_of(path.name, skipped, str(path.parent)):
                found.append((Unit(got[0], got[1], str(path)), path))
        provenance.append({"file": str(raw), "md5": "extracted folder (no archive md5)"})
    if not found:
        inner.close()
        raise DatasetError(f"{raw}: no NAVGesture recordings found. " + spec.where.format(raw=raw))
    split_of = split_units([u for u, _ in found], rule)
    items: list[Item] = []
    for u, where in found:
        key, label, s = f"{u.cls}/{u.stem}", GESTURES.index(u.cls), split_of[u]
        if isinstance(where, Path):
            items.append(file_item(where, key, label, u.cls, s, f"{u.cls}/{where.name}"))
        else:
            iz, info = where
            items.append(member_item(iz.container, info, key, label, u.cls, s, f"{u.cls}/{u.stem}.dat", iz.label,
                                     iz.shift))
    return FileListSource(spec, items, list(GESTURES), ("train", "test"), rule=rule.describe(),
                          view_splits={"all": ["train", "test"]}, md5_jobs=md5_jobs, check_md5=check_md5,
                          provenance=provenance, skipped=skipped, inner=inner, batch_files=32)
