"""CIFAR10-DVS (Li et al. 2017): ten class zips of jAER AEDAT 2.0 recordings from a DVS128.

``airplane.zip`` … ``truck.zip`` each hold ``<class>/cifar10_<class>_<n>.aedat`` (n = 0 … 999), one
sample per file. Coordinates follow SpikingJelly's CIFAR10-DVS reader, so results stay comparable:
``x = 127 − y_raw``, ``y = 127 − x_raw``, ``p = 1 − p_raw`` (a swap, a mirror and a polarity inversion
of the DVS128 address fields); ``t`` is the recorded 32-bit time stamp in µs. There is no official
split: the default is the TEBN rule (files 0–99 of each class test, the rest train, as SpikingJelly's
``CIFAR10DVSTEBNSplit``), and an ``all`` split lists every sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shardgen.datasets.base import DatasetSpec, Resource
from shardgen.datasets.classfolder import ClassFolderDataset, SplitRule
from shardgen.formats.aedat2 import read_aedat2
from shardgen.formats.events import Events

ID = "cifar10-dvs"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FIGSHARE = {
    "airplane": ("7712788", "0afd5c4bf9ae06af762a77b180354fdd"),
    "automobile": ("7712791", "8438dfeba3bc970c94962d995b1b9bdd"),
    "bird": ("7712794", "a9c207c91c55b9dc2002dc21c684d785"),
    "cat": ("7712812", "52c63c677c2b15fa5146a8daf4d56687"),
    "deer": ("7712815", "b6bf21f6c04d21ba4e23fc3e36c8a4a3"),
    "dog": ("7712818", "f379ebdf6703d16e0a690782e62639c3"),
    "frog": ("7712842", "cad6ed91214b1c7388a5f6ee56d08803"),
    "horse": ("7712851", "e7cbbf77bec584ffbf913f00e682782a"),
    "ship": ("7712836", "41c7bd7d6b251be82557c6cce9a7d5c9"),
    "truck": ("7712839", "89f3922fd147d9aeff89e76a2b0b70a7"),
}
PAGE = "https://figshare.com/s/d03a91081824536f12a8"


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One CIFAR10-DVS recording with SpikingJelly's coordinate convention (see the module docstring)."""
    ev = read_aedat2(data, name, layout="dvs128", allow_truncated=allow_truncated)
    # exact in unsigned arithmetic: the DVS128 fields are 7-bit and p is 0 or 1
    x = (127 - ev.y).astype(np.uint16)
    y = (127 - ev.x).astype(np.uint16)
    p = (1 - ev.p).astype(np.uint8)
    return Events(ev.t, x, y, p, 128, 128, ev.camera, ev.skipped, ev.truncated_bytes)


SPEC = DatasetSpec(
    id=ID,
    title="CIFAR10-DVS (Li et al. 2017)",
    sensor_size=(128, 128),
    classes=CLASSES,
    resources=tuple(
        Resource(f"{c}.zip", f"https://ndownloader.figshare.com/files/{fid}", md5, PAGE)
        for c, (fid, md5) in _FIGSHARE.items()
    ),
    downloadable=True,
    where="Download airplane.zip … truck.zip from " + PAGE + " (or run: shardgen download cifar10-dvs --raw {raw}) "
    "and put them in {raw}",
    reader="AEDAT 2.0, DVS128 address (shardgen.formats.aedat2)",
    split_rule="first-k: files 0-99 of each class test, 100-999 train (TEBN); 'all' = every sample",
    conventions="x = 127 - y_raw, y = 127 - x_raw, p = 1 - p_raw (SpikingJelly's CIFAR10-DVS reader)",
)

DATASET = ClassFolderDataset(
    spec=SPEC,
    extension=".aedat",
    archives={f"{c}.zip": None for c in CLASSES},
    extracted={".": None},
    read=read,
    default_split=SplitRule("first-k", test_per_class=100),
    batch_files=64,
)
open_source = DATASET.open_source
cut = DATASET.cut
