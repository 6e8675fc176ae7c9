"""N-MNIST (Orchard et al. 2015): ``Train.zip`` / ``Test.zip`` of ATIS 40-bit ``.bin`` files.

Each zip holds ``Train/<digit>/<nnnnn>.bin`` (``Test/…``), one sample per file, 34 × 34 pixels.
The official split is kept. Timestamp-overflow marker events (``y == 240``) are handled the way
the dataset authors' reader does: dropped, and 2**13 µs added to every later time stamp
(SpikingJelly keeps them as events; this only matters for files that have them — the count is in
the conversion summary under ``skipped_words``).
"""

from __future__ import annotations

import os
from typing import Any

from shardgen.datasets.base import CutRecording, CutSample, DatasetSpec, RecordingTask, Resource
from shardgen.datasets.classfolder import ClassFolderDataset, SplitRule, cut_batch, read_member
from shardgen.formats.atis_bin import OVERFLOW_Y, RECORD_SIZE, read_atis_bin
from shardgen.formats.events import Events

ID = "n-mnist"
PAGE = "https://www.garrickorchard.com/datasets/n-mnist"
_MENDELEY = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One N-MNIST recording (authors' overflow rule)."""
    return read_atis_bin(data, name, overflow="authors", allow_truncated=allow_truncated)


SPEC = DatasetSpec(
    id=ID,
    title="N-MNIST (Orchard et al. 2015)",
    sensor_size=(34, 34),
    classes=tuple(str(d) for d in range(10)),
    resources=(
        Resource("Train.zip", _MENDELEY + "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
                 "20959b8e626244a1b502305a9e6e2031", PAGE),
        Resource("Test.zip", _MENDELEY + "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",
                 "69ca8762b2fe404d9b9bad1103e97832", PAGE),
    ),
    downloadable=True,
    where="Download Train.zip and Test.zip from " + PAGE + " (or run: shardgen download n-mnist --raw {raw}) "
    "and put them in {raw}",
    reader="ATIS 40-bit .bin (shardgen.formats.atis_bin)",
    split_rule="official: Train.zip / Test.zip",
    conventions="x, y, p, t as recorded; overflow markers (y == 240) dropped, +2**13 µs after each",
)

DATASET = ClassFolderDataset(
    spec=SPEC,
    extension=".bin",
    archives={"Train.zip": "train", "Test.zip": "test"},
    extracted={"Train": "train", "Test": "test"},
    read=read,
    default_split=SplitRule("official"),
)
open_source = DATASET.open_source


def cut(task: RecordingTask, allow_truncated: bool = False) -> CutRecording:
    """Worker: one batch of files, decoded together (one numpy pass over the batch instead of a dozen calls per
    file: N-MNIST's files hold about 4,000 events each).

    The same samples as :func:`~shardgen.datasets.classfolder.cut_batch`, which takes over for a batch with an
    incomplete record, an overflow marker or a coordinate outside the sensor (it says which file).
    """
    members = task.context["members"]
    datas = [read_member(container, name, entry) for container, name, _, _, _, entry in members]
    if not members or any(len(d) % RECORD_SIZE for d in datas):
        return cut_batch(DATASET, task, allow_truncated)
    joined = b"".join(datas)
    ev = read_atis_bin(joined, task.name, overflow="ignore")
    h, w = SPEC.sensor_size
    assert OVERFLOW_Y >= h  # the check below also sends every overflow marker to cut_batch
    if ev.x.size and (int(ev.x.max()) >= w or int(ev.y.max()) >= h):
        return cut_batch(DATASET, task, allow_truncated)  # outside the sensor, or a marker (y = 240)
    # no markers: the authors' rule read the same events
    split = task.context["split"]
    samples = []
    a = empty = 0
    for (_, name, cls, stem, label, _), data in zip(members, datas, strict=True):
        b = a + len(data) // RECORD_SIZE
        empty += a == b
        meta = {"label": label, "class": cls, "file": f"{cls}/{name.replace(os.sep, '/').rsplit('/', 1)[-1]}",
                "split": split}
        samples.append(CutSample(f"{cls}/{stem}", ev.t[a:b], ev.x[a:b], ev.y[a:b], ev.p[a:b], meta))
        a = b
    return CutRecording(samples=samples, events_read=a, empty_windows=empty, skipped_words={"overflow_markers": 0})
