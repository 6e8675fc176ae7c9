"""Dataset modules, one per dataset id (see :mod:`shardgen.datasets.base` for what each defines)."""

from __future__ import annotations

import importlib
from types import ModuleType

from loader.errors import ConfigurationError

DATASETS: dict[str, str] = {
    "dvs128-gesture": "shardgen.datasets.dvs128_gesture",
    "cifar10-dvs": "shardgen.datasets.cifar10_dvs",
    "n-mnist": "shardgen.datasets.n_mnist",
    "n-caltech101": "shardgen.datasets.n_caltech101",
    "asl-dvs": "shardgen.datasets.asl_dvs",
    "folder": "shardgen.datasets.folder",
    # datasets2: 2-D datasets of the second wave
    "n-cars": "shardgen.datasets.n_cars",
    "nav-gesture-walk": "shardgen.datasets.nav_gesture_walk",
    "nav-gesture-sit": "shardgen.datasets.nav_gesture_sit",
    "dvs-lip": "shardgen.datasets.dvs_lip",
    "hardvs": "shardgen.datasets.hardvs",
    "es-imagenet": "shardgen.datasets.es_imagenet",
    "bullying10k": "shardgen.datasets.bullying10k",
}


def get_dataset(dataset_id: str) -> ModuleType:
    """The module of ``dataset_id``; ``ValueError`` listing the known ids otherwise."""
    try:
        return importlib.import_module(DATASETS[dataset_id])
    except KeyError:
        raise ConfigurationError(f"unknown dataset {dataset_id!r}; known: {', '.join(sorted(DATASETS))}") from None

# 1-D sensors (issue 14): the Heidelberg spiking data sets, HDF5 files read with h5py
DATASETS.update({
    "shd": "shardgen.datasets.shd",
    "ssc": "shardgen.datasets.ssc",
})
