"""Augmentation in EventShardDataset and the façade: every item equals the transforms applied with the
sample's generators for (seed, epoch, key), computed here directly; so it is the same for 0, 1 or 2
workers, for every rank split, and after a StatefulDataLoader resume at any batch; epochs differ.
Also: plain callables and tonic's transforms keep working, and the README recipe runs.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from loader import EventShardDataset
from loader.datasets import CIFAR10DVS
from loader.errors import ConfigurationError
from loader.frames import integrate_events_by_fixed_frames_number
from loader.transforms import (
    Compose,
    Cutout,
    DropEvent,
    FrameCompose,
    RandomCrop,
    RandomFlipLR,
    RandomRoll,
    RandomTemporalDelete,
    SpatialJitter,
    TimeJitter,
    sample_rngs,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning"),
    pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning"),
]

README_AUGMENT = Path(__file__).resolve().parents[1] / "README.md"
README_ROOT = "/data/cifar10-dvs-shards"
SEED = 11
SENSOR = (128, 128)
EVENTS = Compose([DropEvent(0.2), RandomFlipLR(0.5), SpatialJitter(1.0), TimeJitter(100.0), RandomCrop((100, 110))])
FRAMES = FrameCompose([RandomTemporalDelete(3), RandomRoll(3), Cutout(30)])


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory, shard_set_writer):
    path = tmp_path_factory.mktemp("augment31")
    truth = shard_set_writer(path, seed=77, splits={"train": (9, 12, 10), "test": (3,)})
    return path, truth


def _reference(truth, key, epoch, seed=SEED, events_t=EVENTS, frames_t=FRAMES):
    ev_rng, fr_rng = sample_rngs(seed, epoch, key)
    ev = events_t(truth[key]["events"], sensor_size=SENSOR, rng=ev_rng) if events_t else truth[key]["events"]
    h, w = events_t.sensor_size_after(SENSOR) if events_t else SENSOR
    x = integrate_events_by_fixed_frames_number(ev, "number", 4, h, w)
    return frames_t(x, rng=fr_rng) if frames_t else x


def _dataset(path, **kw):
    kw = {"seed": SEED, "shuffle_buffer": 4, "shuffle": True, **kw}
    return EventShardDataset(path, "train", data_type="frame", frames_number=4, split_by="number",
                             transform=EVENTS, frame_transform=FRAMES, return_key=True, **kw)


def _items(batch):
    return batch


def _check(items, truth, epoch):
    for x, label, key in items:
        np.testing.assert_array_equal(x, _reference(truth, key, epoch), err_msg=key)
        assert label == truth[key]["label"]


def _train_keys(truth):
    return sorted(k for k, v in truth.items() if v["split"] == "train")


@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_same_items_for_any_worker_count(shard_set, num_workers):
    path, truth = shard_set
    items = [it for b in DataLoader(_dataset(path), batch_size=3, num_workers=num_workers, collate_fn=_items)
             for it in b]
    assert sorted(k for _, _, k in items) == _train_keys(truth)
    _check(items, truth, epoch=0)


def test_same_items_for_any_rank_split(shard_set):
    path, truth = shard_set
    items = [it for r in range(3) for it in _dataset(path, rank=r, world_size=3, even=None)]
    assert sorted(k for _, _, k in items) == _train_keys(truth)
    _check(items, truth, epoch=0)


@pytest.mark.parametrize("num_workers, epoch, k", [(0, 0, 1), (0, 0, 7), (2, 0, 1), (2, 0, 4), (2, 1, 3)])
def test_same_items_after_a_resume(shard_set, num_workers, epoch, k):
    path, truth = shard_set
    ds = _dataset(path)
    ds.set_epoch(epoch)
    dl = StatefulDataLoader(ds, batch_size=3, num_workers=num_workers, collate_fn=_items)
    it = iter(dl)
    head = [item for _ in range(k) for item in next(it)]
    state = dl.state_dict()
    del it, dl
    dl2 = StatefulDataLoader(_dataset(path), batch_size=3, num_workers=num_workers, collate_fn=_items)
    dl2.load_state_dict(state)
    tail = [item for b in dl2 for item in b]
    assert sorted(key for _, _, key in head + tail) == _train_keys(truth)
    _check(head + tail, truth, epoch)


def test_epochs_differ(shard_set):
    path, truth = shard_set
    ds = _dataset(path, shuffle=False)
    first = {key: x for x, _, key in ds}
    ds.set_epoch(1)
    second = {key: x for x, _, key in ds}
    _check([(x, truth[k]["label"], k) for k, x in second.items()], truth, epoch=1)
    busy = [k for k in first if len(truth[k]["events"]["t"]) >= 20]
    assert len(busy) > 20 and all(not np.array_equal(first[k], second[k]) for k in busy)


def test_plain_callables_tonic_and_structured(shard_set):
    path, truth = shard_set
    tonic = pytest.importorskip("tonic")
    calls = []
    ds = EventShardDataset(path, "test", data_type="event", shuffle=False, return_key=True,
                           transform=lambda ev: calls.append(1) or {**ev, "x": ev["x"] * 0})
    for ev, _, key in ds:
        assert not ev["x"].any() and len(ev["t"]) == len(truth[key]["events"]["t"])
    assert len(calls) == 3
    flip = tonic.transforms.RandomFlipLR(sensor_size=(128, 128, 2), p=1.0)
    for ev, _, key in EventShardDataset(path, "test", data_type="structured", shuffle=False, return_key=True,
                                        transform=flip):
        np.testing.assert_array_equal(ev["x"], 127 - truth[key]["events"]["x"])
    for ev, _, key in EventShardDataset(path, "test", data_type="structured", shuffle=False, return_key=True,
                                        transform=Compose([RandomFlipLR(1.0)])):
        assert ev.dtype == tonic.io.events_struct
        np.testing.assert_array_equal(ev["x"], 127 - truth[key]["events"]["x"])
    with pytest.raises(ConfigurationError, match="frame_transform needs data_type='frame'"):
        EventShardDataset(path, "test", data_type="event", frame_transform=FRAMES)


def _as_cifar10dvs(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    ix = json.loads((dst / "index.json").read_text())
    ix["dataset"] = "cifar10-dvs"
    (dst / "index.json").write_text(json.dumps(ix))
    return dst


def test_facade_passes_the_transforms_with_the_epoch(shard_set, tmp_path):
    path, truth = shard_set
    root = _as_cifar10dvs(path, tmp_path / "c10")
    ds = CIFAR10DVS(root, "frame", 4, "number", transform=EVENTS, frame_transform=FRAMES, train=True,
                    return_key=True, seed=SEED)
    for epoch in (0, 3):
        ds.set_epoch(epoch)
        _check([ds[i] for i in range(0, len(ds), 5)], truth, epoch)
    # a frame transform given as SpikingJelly's `transform` runs on the frames with the frame generator
    only_frames = CIFAR10DVS(root, "frame", 4, "number", transform=FRAMES, train=True, return_key=True, seed=SEED)
    x, _, key = only_frames[2]
    np.testing.assert_array_equal(x, _reference(truth, key, 0, events_t=None))
    doubled = CIFAR10DVS(root, "frame", 4, "number", transform=lambda f: f * 2, train=True)[2][0]
    np.testing.assert_array_equal(doubled, 2 * _reference(truth, key, 0, events_t=None, frames_t=None))
    with pytest.raises(ConfigurationError, match="one place"):
        CIFAR10DVS(root, "frame", 4, "number", transform=FRAMES, frame_transform=FRAMES)


def test_readme_recipe_runs(shard_set, tmp_path, monkeypatch):
    path, _ = shard_set
    root = _as_cifar10dvs(path, tmp_path / "c10")
    text = README_AUGMENT.read_text(encoding="utf-8")
    text = text[text.index("## Augmentation"):]
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks and README_ROOT in blocks[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0].replace(README_ROOT, str(root)), str(README_AUGMENT), "exec"), namespace)
    assert namespace["seen"] == 2 * len(namespace["train_set"])
