"""The second-wave façades take SpikingJelly 2.0.0's arguments, in SpikingJelly's order, and refuse other shard sets."""

from __future__ import annotations

import inspect

import pytest

import loader.datasets as facades
from shardgen.convert import convert
from shardgen.datasets import DATASETS
from tests.gen_datasets2 import write_ncars

PAIRS = {  # façade → (SpikingJelly module, class), dataset id
    "NAVGestureWalk": ("nav_gesture", "NAVGestureWalk", "nav-gesture-walk"),
    "NAVGestureSit": ("nav_gesture", "NAVGestureWalk", "nav-gesture-sit"),  # SJ's Sit cannot be built: Walk's
    "DVSLip": ("dvs_lip", "DVSLip", "dvs-lip"),
    "HARDVS": ("hardvs", "HARDVS", "hardvs"),
    "ESImageNet": ("es_imagenet", "ESImageNet", "es-imagenet"),
    "Bullying10kClassification": ("bullying10k", "Bullying10kClassification", "bullying10k"),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_signature_is_spikingjellys(name):
    pytest.importorskip("spikingjelly")
    import importlib

    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    module, cls, dataset_id = PAIRS[name]
    sj = getattr(importlib.import_module(f"spikingjelly.datasets.{module}"), cls)
    ours = getattr(facades, name)
    want = [p for p in inspect.signature(sj.__init__).parameters if p != "self"]
    got = [p.name for p in inspect.signature(ours.__init__).parameters.values()
           if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    assert got[: len(want)] == want
    assert ours.dataset_id == dataset_id and dataset_id in DATASETS
    assert name in facades.__all__


def test_ncars_facade_refuses_another_dataset(tmp_path):
    gen = write_ncars(tmp_path / "raw", per_class=2)
    convert("n-cars", gen.root, tmp_path / "out", workers=1, progress=False)
    with pytest.raises(Exception, match="a shard set of 'n-cars', not 'dvs-lip'"):
        facades.DVSLip(str(tmp_path / "out"))
    assert "NCARS" in facades.__all__
