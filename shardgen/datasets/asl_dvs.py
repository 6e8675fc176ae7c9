"""ASL-DVS (Bi et al. 2019): ``ICCV2019_DVS_dataset.zip`` holding one zip per letter of ``.mat`` files.

Each inner zip holds ``<letter>/<name>.mat`` with the variables ``ts``, ``x``, ``y``, ``pol``
(DAVIS240c, 24 letters a–y without j), one sample per file. Coordinates follow SpikingJelly's
ASL-DVS reader, a mirror of both axes: ``x = 239 − x``, ``y = 179 − y``, ``p = pol``; sensor 180 × 240.
No md5 is published (SpikingJelly disables the check: the Dropbox-packed zip changes). No official
split: the default is a seeded 90 % / 10 % split per class, and an ``all`` split lists every sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shardgen.datasets.base import DatasetSpec, Resource, first_outside
from shardgen.datasets.classfolder import ClassFolderDataset, SplitRule
from shardgen.formats.events import Events, FormatError
from shardgen.formats.mat import read_asl_mat

ID = "asl-dvs"
CLASSES = tuple("abcdefghiklmnopqrstuvwxy")
PAGE = "https://github.com/PIX2NVS/NVS2Graph"


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One ASL-DVS recording with SpikingJelly's mirror of both axes (``allow_truncated`` does not apply)."""
    ev = read_asl_mat(bytes(data), name)
    i = first_outside(ev.x, ev.y, 180, 240)
    if i is not None:  # checked before mirroring: 239 - x must not wrap
        raise FormatError(name, None, f"event {i} at x={int(ev.x[i])}, y={int(ev.y[i])} lies outside 240x180")
    x = (239 - ev.x).astype(np.uint16)  # exact in unsigned arithmetic after the check
    y = (179 - ev.y).astype(np.uint16)
    return Events(ev.t, x, y, ev.p, 240, 180, ev.camera, ev.skipped, ev.truncated_bytes)


SPEC = DatasetSpec(
    id=ID,
    title="ASL-DVS (Bi et al. 2019)",
    sensor_size=(180, 240),
    classes=CLASSES,
    resources=(Resource("ICCV2019_DVS_dataset.zip", None, None, PAGE),),
    downloadable=False,
    where="ASL-DVS is downloaded by hand: the Dropbox link of " + PAGE + " has expired; get ASLDVS from the OpenI "
    "mirror ('pip install openi; openi dataset download OpenI/ASLDVS --local_dir ASLDVS'), unzip ASLDVS.zip and "
    "put ICCV2019_DVS_dataset.zip in {raw}",
    reader="MAT v5 via scipy.io.loadmat (shardgen.formats.mat)",
    split_rule="ratio: seeded 90 % train per class (--train-ratio, --split-seed); 'all' = every sample",
    conventions="x = 239 - x, y = 179 - y, p = pol (SpikingJelly's ASL-DVS reader); no md5 published",
)

DATASET = ClassFolderDataset(
    spec=SPEC,
    extension=".mat",
    archives={"ICCV2019_DVS_dataset.zip": None},
    extracted={".": None},
    read=read,
    default_split=SplitRule("ratio", train_ratio=0.9, seed=0),
    nested=True,
    batch_files=256,
)
open_source = DATASET.open_source
cut = DATASET.cut
