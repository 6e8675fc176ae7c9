"""N-Caltech101 (Orchard et al. 2015): ``Caltech101.zip`` of ATIS 40-bit ``.bin`` files.

The zip holds ``Caltech101/<class>/image_<nnnn>.bin``, one sample per file. The
``BACKGROUND_Google`` folder is kept as a class, as SpikingJelly does (it is the first class in
sorted order, label 0). Sensor 180 × 240 (H × W) as SpikingJelly; coordinates as recorded; overflow
markers as in N-MNIST. No official split: the default is a seeded 90 % / 10 % split per class
(``--train-ratio``, ``--split-seed``), and an ``all`` split lists every sample.
"""

from __future__ import annotations

from typing import Any

from shardgen.datasets.base import DatasetSpec, Resource
from shardgen.datasets.classfolder import ClassFolderDataset, SplitRule
from shardgen.formats.atis_bin import read_atis_bin
from shardgen.formats.events import Events

ID = "n-caltech101"
PAGE = "https://www.garrickorchard.com/datasets/n-caltech101"
_OBJECTS = (
    "Faces_easy Leopards Motorbikes accordion airplanes anchor ant barrel bass beaver binocular bonsai brain "
    "brontosaurus buddha butterfly camera cannon car_side ceiling_fan cellphone chair chandelier cougar_body "
    "cougar_face crab crayfish crocodile crocodile_head cup dalmatian dollar_bill dolphin dragonfly electric_guitar "
    "elephant emu euphonium ewer ferry flamingo flamingo_head garfield gerenuk gramophone grand_piano hawksbill "
    "headphone hedgehog helicopter ibis inline_skate joshua_tree kangaroo ketch lamp laptop llama lobster lotus "
    "mandolin mayfly menorah metronome minaret nautilus octopus okapi pagoda panda pigeon pizza platypus pyramid "
    "revolver rhino rooster saxophone schooner scissors scorpion sea_horse snoopy soccer_ball stapler starfish "
    "stegosaurus stop_sign strawberry sunflower tick trilobite umbrella watch water_lilly wheelchair wild_cat "
    "windsor_chair wrench yin_yang"
).split()
CLASSES = tuple(sorted(["BACKGROUND_Google", *_OBJECTS]))


def read(data: Any, name: str, allow_truncated: bool = False) -> Events:
    """One N-Caltech101 recording (authors' overflow rule)."""
    return read_atis_bin(data, name, overflow="authors", allow_truncated=allow_truncated)


SPEC = DatasetSpec(
    id=ID,
    title="N-Caltech101 (Orchard et al. 2015)",
    sensor_size=(180, 240),
    classes=CLASSES,
    resources=(
        Resource("Caltech101.zip", None, "66201824eabb0239c7ab992480b50ba3", PAGE),
        Resource("Caltech101_annotations.zip", None, "25e64cea645291e368db1e70f214988e", PAGE),
        Resource("ReadMe(Caltech101)-SINAPSE-G.txt", None, "d464b81684e0af3b5773555eb1d5b95c", PAGE),
        Resource("ReadMe(Caltech101).txt", None, "33632a7a5c46074c70509f960d0dd5e5", PAGE),
    ),
    downloadable=False,
    where="N-Caltech101 is downloaded by hand: get Caltech101.zip from " + PAGE + " (also on Mendeley Data, "
    "https://data.mendeley.com/datasets/cy6cvx3ryv, inside N-Caltech101-archive.zip) and put it in {raw}",
    reader="ATIS 40-bit .bin (shardgen.formats.atis_bin)",
    split_rule="ratio: seeded 90 % train per class (--train-ratio, --split-seed); 'all' = every sample",
    conventions="x, y, p, t as recorded; BACKGROUND_Google kept as a class; sensor 180 x 240 (SpikingJelly)",
)

DATASET = ClassFolderDataset(
    spec=SPEC,
    extension=".bin",
    archives={"Caltech101.zip": None},
    extracted={"Caltech101": None},
    read=read,
    default_split=SplitRule("ratio", train_ratio=0.9, seed=0),
    batch_files=128,
)
open_source = DATASET.open_source
cut = DATASET.cut
