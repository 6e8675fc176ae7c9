"""SSC, the Spiking Speech Commands (Cramer et al. 2020): 1-D spikes of 700 units, 35 spoken words.

``ssc_train.h5`` / ``ssc_valid.h5`` / ``ssc_test.h5`` in the same forms and layout as SHD (see
:mod:`shardgen.datasets.heidelberg`). SpikingJelly 2.0.0's ``SpikingSpeechCommands`` lists SHD's two
files as its resources (a bug: it can never fetch SSC); these are the authors' SSC files, with the md5
sums tonic 1.7.0 publishes.
"""

from __future__ import annotations

from shardgen.datasets.base import DatasetSpec, Resource
from shardgen.datasets.heidelberg import HeidelbergDataset

ID = "ssc"
PAGE = "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/"
BASE = "https://zenkelab.org/datasets/"

SPEC = DatasetSpec(
    id=ID,
    title="SSC, Spiking Speech Commands (Cramer et al. 2020)",
    sensor_size=(700,),
    classes=tuple(str(i) for i in range(35)),
    resources=(
        Resource("ssc_train.h5.zip", BASE + "ssc_train.h5.zip", "d102be95e7144fcc0553d1f45ba94170", PAGE),
        Resource("ssc_valid.h5.zip", BASE + "ssc_valid.h5.zip", "b4eee3516a4a90dd0c71a6ac23a8ae43", PAGE),
        Resource("ssc_test.h5.zip", BASE + "ssc_test.h5.zip", "a35ff1e9cffdd02a20eb850c17c37748", PAGE),
    ),
    downloadable=True,
    where="Download ssc_train.h5.zip, ssc_valid.h5.zip and ssc_test.h5.zip from " + BASE + " (or run: shardgen "
    "download ssc --raw {raw}), or the authors' ssc_*.h5.gz (" + PAGE + "), and put them in {raw}",
    reader="HDF5 spikes/times, spikes/units (shardgen.formats.spikes_h5, h5py)",
    split_rule="official: ssc_train.h5 / ssc_valid.h5 / ssc_test.h5",
    conventions="1-D: t = round(float16 seconds * 1e6) µs, x = unit (0-699); no y, no p; h5 labels kept",
)

DATASET = HeidelbergDataset(spec=SPEC, prefix="ssc", splits=("train", "valid", "test"))
open_source = DATASET.open_source
cut = DATASET.cut
