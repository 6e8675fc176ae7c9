"""SHD, the Spiking Heidelberg Digits (Cramer et al. 2020): 1-D spikes of 700 cochlea units, 20 spoken digits.

``shd_train.h5`` / ``shd_test.h5`` (as ``.h5.zip`` from zenkelab.org, as SpikingJelly and tonic fetch
them, as the authors' ``.h5.gz``, or extracted); see :mod:`shardgen.datasets.heidelberg`. Events are
``t`` (µs, the float16 seconds rounded to the nearest µs) and ``x`` (the unit); labels are the
file's own (0-9 English, 10-19 German digits), class names its ``extra/keys``.
"""

from __future__ import annotations

from shardgen.datasets.base import DatasetSpec, Resource
from shardgen.datasets.heidelberg import HeidelbergDataset

ID = "shd"
PAGE = "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/"
BASE = "https://zenkelab.org/datasets/"

SPEC = DatasetSpec(
    id=ID,
    title="SHD, Spiking Heidelberg Digits (Cramer et al. 2020)",
    sensor_size=(700,),
    classes=tuple(str(i) for i in range(20)),
    resources=(  # SpikingJelly 2.0.0 and tonic 1.7.0 publish the same md5 sums
        Resource("shd_train.h5.zip", BASE + "shd_train.h5.zip", "f3252aeb598ac776c1b526422d90eecb", PAGE),
        Resource("shd_test.h5.zip", BASE + "shd_test.h5.zip", "1503a5064faa34311c398fb0a1ed0a6f", PAGE),
    ),
    downloadable=True,
    where="Download shd_train.h5.zip and shd_test.h5.zip from " + BASE + " (or run: shardgen download shd --raw "
    "{raw}), or the authors' shd_train.h5.gz and shd_test.h5.gz (" + PAGE + "), and put them in {raw}",
    reader="HDF5 spikes/times, spikes/units (shardgen.formats.spikes_h5, h5py)",
    split_rule="official: shd_train.h5 / shd_test.h5",
    conventions="1-D: t = round(float16 seconds * 1e6) µs, x = unit (0-699); no y, no p; h5 labels kept",
)

DATASET = HeidelbergDataset(spec=SPEC, prefix="shd", splits=("train", "test"))
open_source = DATASET.open_source
cut = DATASET.cut
