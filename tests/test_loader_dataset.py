"""EventShardDataset on a small shard set: coverage with workers, order, shuffle, frames, arguments."""

from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from loader import EventShardDataset, pad_sequence_collate, padded_sequence_mask
from loader import frames as F
from loader.format import FormatError
from tests.conftest import CLASSES, SENSOR_SIZE

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

DURATION = 200_000  # µs: gives 1 to ~20 frames on the fixture's samples


def _keys(truth, split="train"):
    return [k for k, v in truth.items() if v["split"] == split]


def _as_np(v):
    return v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def _assert_events_equal(got, want):
    assert set(got) == {"t", "x", "y", "p"}
    for c in "txyp":
        np.testing.assert_array_equal(_as_np(got[c]), want[c], err_msg=c)
    assert _as_np(got["t"]).dtype == np.int64


def _loader_items(ds, num_workers):
    with warnings.catch_warnings():
        # event mode: torch warns once that the decoded uint8 x/y columns are read-only (see test_format)
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return list(DataLoader(ds, num_workers=num_workers, batch_size=None))


# --------------------------------------------------------------------------- coverage and order


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("num_workers", [0, 1, 3, 8])
def test_every_key_exactly_once(small_shard_set, num_workers, shuffle):
    path, truth = small_shard_set
    ds = EventShardDataset(path, split="train", data_type="event", shuffle=shuffle, seed=3, return_key=True)
    items = _loader_items(ds, num_workers)
    keys = [k for _, _, k in items]
    assert len(keys) == len(set(keys)) == len(ds) == 30
    assert set(keys) == set(_keys(truth))
    for events, label, key in items:
        assert int(label) == truth[key]["label"]
        _assert_events_equal(events, truth[key]["events"])
    assert any(len(_as_np(e["t"])) == 0 for e, _, _ in items)  # the empty sample came through


def test_test_split_exactly_once_with_more_workers_than_shards(small_shard_set):
    path, truth = small_shard_set
    ds = EventShardDataset(path, split="test", shuffle=True, return_key=True)
    keys = [k for _, _, k in _loader_items(ds, 4)]
    assert sorted(keys) == sorted(_keys(truth, "test"))
    assert len(ds) == 9


def test_unshuffled_order_is_index_order(small_shard_set):
    path, truth = small_shard_set
    for split in ("train", "test"):
        ds = EventShardDataset(path, split=split, shuffle=False, return_key=True)
        assert [k for _, _, k in ds] == _keys(truth, split)
        assert [k for _, _, k in ds] == _keys(truth, split)  # iterating again gives the same


@pytest.mark.parametrize("world_size", [2, 3, 7])
def test_ranks_partition_the_split(small_shard_set, world_size):
    path, truth = small_shard_set
    seen, padded = [], []
    for rank in range(world_size):
        ds = EventShardDataset(path, shuffle=True, seed=1, return_key=True, rank=rank, world_size=world_size, even=None)
        part = [k for _, _, k in ds]
        assert abs(len(part) - 30 / world_size) < 1  # balanced to within one sample
        seen += part
        ds = EventShardDataset(path, shuffle=True, seed=1, return_key=True, rank=rank, world_size=world_size)
        part = [k for _, _, k in ds]
        assert len(part) == math.ceil(30 / world_size) == ds.samples_per_rank()  # even="pad": equal
        padded += part
    assert sorted(seen) == sorted(_keys(truth))
    assert set(padded) == set(_keys(truth)) and len(padded) == math.ceil(30 / world_size) * world_size


def test_ranks_with_workers_partition_the_split(small_shard_set):
    path, truth = small_shard_set
    seen = []
    for rank in range(2):
        ds = EventShardDataset(path, shuffle=False, return_key=True, rank=rank, world_size=2)
        seen += [k for _, _, k in _loader_items(ds, 2)]
    assert sorted(seen) == sorted(_keys(truth))


# --------------------------------------------------------------------------- shuffle


def _order(path, seed, epoch=None, num_workers=0):
    ds = EventShardDataset(path, shuffle=True, seed=seed, return_key=True)
    if epoch is not None:
        ds.set_epoch(epoch)
    if num_workers:
        return [k for _, _, k in _loader_items(ds, num_workers)]
    return [k for _, _, k in ds]


def test_shuffle_is_deterministic_per_seed_and_epoch(small_shard_set):
    path, truth = small_shard_set
    base = _order(path, seed=0)
    assert sorted(base) == sorted(_keys(truth))
    assert base != _keys(truth)  # actually shuffled
    assert _order(path, seed=0) == base
    assert _order(path, seed=0, epoch=0) == base
    epoch1 = _order(path, seed=0, epoch=1)
    assert epoch1 != base and sorted(epoch1) == sorted(base)
    assert _order(path, seed=0, epoch=1) == epoch1
    other_seed = _order(path, seed=1)
    assert other_seed != base and sorted(other_seed) == sorted(base)


def test_set_epoch_changes_order_of_same_object(small_shard_set):
    path, _ = small_shard_set
    ds = EventShardDataset(path, shuffle=True, seed=5, return_key=True)
    first = [k for _, _, k in ds]
    assert [k for _, _, k in ds] == first
    ds.set_epoch(1)
    second = [k for _, _, k in ds]
    assert second != first and sorted(second) == sorted(first)
    ds.set_epoch(0)
    assert [k for _, _, k in ds] == first


def test_shuffle_is_deterministic_with_workers(small_shard_set):
    path, _ = small_shard_set
    a = _order(path, seed=2, epoch=3, num_workers=2)
    assert a == _order(path, seed=2, epoch=3, num_workers=2)
    assert a != _order(path, seed=2, epoch=4, num_workers=2)


def test_small_shuffle_buffer_still_covers_everything(small_shard_set):
    path, truth = small_shard_set
    ds = EventShardDataset(path, shuffle=True, shuffle_buffer=3, return_key=True)
    keys = [k for _, _, k in ds]
    assert sorted(keys) == sorted(_keys(truth)) and keys != _keys(truth)


# --------------------------------------------------------------------------- index facts and sources


def test_len_classes_sensor_size(small_shard_set):
    path, _ = small_shard_set
    index = json.loads((path / "index.json").read_text())
    train = EventShardDataset(path, split="train")
    test = EventShardDataset(path, split="test")
    assert len(train) == index["splits"]["train"]["samples"] == 30
    assert len(test) == index["splits"]["test"]["samples"] == 9
    assert train.classes == CLASSES == index["classes"]
    assert train.sensor_size == SENSOR_SIZE == tuple(index["sensor_size"])


def test_urls_and_index_path(small_shard_set):
    path, truth = small_shard_set
    want = _keys(truth)
    for root in (path, str(path), f"{path}/", f"file://{path}", path / "index.json", f"file://{path}/index.json"):
        ds = EventShardDataset(root, shuffle=False, return_key=True)
        assert len(ds) == 30
        assert [k for _, _, k in ds] == want, root


def test_relative_path(small_shard_set, monkeypatch):
    path, truth = small_shard_set
    monkeypatch.chdir(path.parent)
    ds = EventShardDataset(path.name, shuffle=False, return_key=True)
    assert [k for _, _, k in ds] == _keys(truth)
    monkeypatch.chdir(path)
    assert len(EventShardDataset("index.json")) == 30


def test_missing_or_broken_shard_set(tmp_path, small_shard_set):
    with pytest.raises(FileNotFoundError):
        EventShardDataset(tmp_path / "nothing-here")
    (tmp_path / "index.json").write_text(json.dumps({"format": "eventshard", "version": 99}))
    with pytest.raises(FormatError):
        EventShardDataset(tmp_path)


# --------------------------------------------------------------------------- frames


@pytest.mark.parametrize("split_by", ["number", "time"])
def test_frames_number(small_shard_set, split_by):
    path, truth = small_shard_set
    ds = EventShardDataset(path, data_type="frame", frames_number=5, split_by=split_by, shuffle=False, return_key=True)
    n = 0
    for x, label, key in ds:
        ev = truth[key]["events"]
        assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (5, 2, 128, 128)
        assert x.sum() == len(ev["t"])
        assert x[:, 1].sum() == ev["p"].sum()
        np.testing.assert_array_equal(x, F.integrate_events_by_fixed_frames_number(ev, split_by, 5, 128, 128))
        assert label == truth[key]["label"]
        n += 1
    assert n == 30


def test_frames_duration(small_shard_set):
    path, truth = small_shard_set
    ds = EventShardDataset(path, data_type="frame", duration=DURATION, shuffle=False, return_key=True)
    lengths = set()
    for x, _, key in ds:
        t = truth[key]["events"]["t"]
        T = max(1, math.ceil((t[-1] - t[0]) / DURATION)) if len(t) else 1
        assert x.dtype == np.float32 and x.shape == (T, 2, 128, 128)
        assert x.sum() == len(t)
        np.testing.assert_array_equal(x, F.integrate_events_by_fixed_duration(truth[key]["events"], DURATION, 128, 128))
        lengths.add(T)
    assert len(lengths) > 3  # the fixture gives varied lengths


def test_frames_through_dataloader_workers(small_shard_set):
    path, truth = small_shard_set
    ds = EventShardDataset(path, data_type="frame", frames_number=4, split_by="time", return_key=True)
    items = list(DataLoader(ds, num_workers=2, batch_size=None))
    assert len(items) == 30
    for x, _, key in items:
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and tuple(x.shape) == (4, 2, 128, 128)
        assert int(x.sum()) == len(truth[key]["events"]["t"])


def test_non_square_sensor_is_h_w(tmp_path, shard_set_writer):
    truth = shard_set_writer(tmp_path, seed=3, splits={"train": (4, 3)}, sensor_size=(20, 30))
    ds = EventShardDataset(tmp_path, data_type="frame", frames_number=2, split_by="number", return_key=True)
    assert ds.sensor_size == (20, 30)
    for x, _, key in ds:
        ev = truth[key]["events"]
        assert x.shape == (2, 2, 20, 30)
        want = np.zeros((2, 20, 30), np.float32)
        np.add.at(want, (ev["p"].astype(np.int64), ev["y"], ev["x"]), 1)
        np.testing.assert_array_equal(x.sum(axis=0), want)  # [c, y, x]


# --------------------------------------------------------------------------- user functions


def pid_integrate(events, H, W):
    """Custom integration that reports where it ran and what it got."""
    return np.array([os.getpid(), len(events["t"]), H, W], dtype=np.int64)


def test_custom_integrate_function_runs_in_worker(small_shard_set):
    path, truth = small_shard_set
    ds = EventShardDataset(path, data_type="frame", custom_integrate_function=pid_integrate, return_key=True)
    items = list(DataLoader(ds, num_workers=2, batch_size=None))
    assert len(items) == 30
    pids = {int(x[0]) for x, _, _ in items}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    for x, _, key in items:
        assert x[1:].tolist() == [len(truth[key]["events"]["t"]), 128, 128]
    # without workers it runs here
    assert {
        int(x[0]) for x, _ in EventShardDataset(path, data_type="frame", custom_integrate_function=pid_integrate)
    } == {os.getpid()}


def mirror_on_only(events):
    """A transform: keep ON events and mirror x (returns new arrays)."""
    keep = events["p"] == 1
    return {"t": events["t"][keep], "x": 127 - events["x"][keep], "y": events["y"][keep], "p": events["p"][keep]}


def test_transform_before_integration(small_shard_set):
    path, truth = small_shard_set
    ds = EventShardDataset(
        path, data_type="frame", frames_number=3, split_by="number", transform=mirror_on_only, return_key=True
    )
    for x, _, key in ds:
        want_events = mirror_on_only(truth[key]["events"])
        np.testing.assert_array_equal(x, F.integrate_events_by_fixed_frames_number(want_events, "number", 3, 128, 128))
        assert x[:, 0].sum() == 0


def test_transform_in_event_mode_and_custom(small_shard_set):
    path, truth = small_shard_set
    ds = EventShardDataset(path, transform=mirror_on_only, shuffle=False, return_key=True)
    for ev, _, key in ds:
        _assert_events_equal(ev, mirror_on_only(truth[key]["events"]))
    seen = []

    def spy(events, H, W):
        seen.append(events["p"].copy())
        return np.zeros(1)

    for _ in EventShardDataset(path, data_type="frame", custom_integrate_function=spy, transform=mirror_on_only):
        pass
    assert len(seen) == 30 and all((p == 1).all() for p in seen)


def mirror_in_place(events):
    """A transform that edits the decoded arrays in place, as user code written for SpikingJelly may."""
    events["x"][:] = 127 - events["x"]
    return events


def test_in_place_transform(small_shard_set):
    path, truth = small_shard_set
    for ev, _, key in EventShardDataset(path, transform=mirror_in_place, shuffle=False, return_key=True):
        np.testing.assert_array_equal(ev["x"], 127 - truth[key]["events"]["x"])


def test_target_transform(small_shard_set):
    path, truth = small_shard_set
    ds = EventShardDataset(path, target_transform=lambda y: ("label", y + 100), shuffle=False, return_key=True)
    for _, label, key in ds:
        assert label == ("label", truth[key]["label"] + 100)


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(data_type="frame", frames_number=10, split_by="number", duration=1000),
        dict(data_type="frame", split_by="number"),
        dict(data_type="frame", split_by="time", duration=1000),
        dict(data_type="frame", frames_number=10),
        dict(data_type="frame", frames_number=10, split_by="space"),
        dict(data_type="frame", frames_number=0, split_by="number"),
        dict(data_type="frame", frames_number=-2, split_by="time"),
        dict(data_type="frame", duration=0),
        dict(data_type="frame", duration=-5),
        dict(data_type="frame"),
        dict(data_type="frame", frames_number=4, split_by="number", custom_integrate_function=pid_integrate),
        dict(data_type="frame", duration=100, custom_integrate_function=pid_integrate),
        dict(data_type="event", frames_number=10, split_by="number"),
        dict(data_type="event", duration=1000),
        dict(data_type="event", custom_integrate_function=pid_integrate),
        dict(data_type="events"),
        dict(data_type="frames", frames_number=10, split_by="number"),
        dict(split="validation"),
        dict(split="Train"),
    ],
    ids=lambda kw: ",".join(f"{k}={getattr(v, '__name__', v)}" for k, v in kw.items()),
)
def test_inconsistent_arguments(small_shard_set, kwargs):
    with pytest.raises(ValueError):
        EventShardDataset(small_shard_set[0], **kwargs)


def test_unknown_split_names_the_available_ones(small_shard_set):
    with pytest.raises(ValueError, match="test.*train|train.*test"):
        EventShardDataset(small_shard_set[0], split="val")


# --------------------------------------------------------------------------- collate


@pytest.mark.parametrize("num_workers", [0, 2])
def test_pad_sequence_collate_duration(small_shard_set, num_workers):
    path, truth = small_shard_set
    ds = EventShardDataset(path, data_type="frame", duration=DURATION, shuffle=True, return_key=True)
    dl = DataLoader(ds, batch_size=4, collate_fn=pad_sequence_collate, num_workers=num_workers)
    seen = []
    for x, labels, lengths, keys in dl:
        N = len(keys)
        assert x.dtype == torch.float32 and x.shape[0] == N and tuple(x.shape[2:]) == (2, 128, 128)
        assert labels.tolist() == [truth[k]["label"] for k in keys]
        assert lengths.dtype == torch.int64 and x.shape[1] == int(lengths.max())
        mask = padded_sequence_mask(lengths)
        assert mask.dtype == torch.bool and tuple(mask.shape) == (x.shape[1], N)
        assert mask.sum(dim=0).tolist() == lengths.tolist()
        for n, key in enumerate(keys):
            L = int(lengths[n])
            want = F.integrate_events_by_fixed_duration(truth[key]["events"], DURATION, 128, 128)
            assert want.shape[0] == L
            np.testing.assert_array_equal(x[n, :L].numpy(), want)
            assert not x[n, L:].any()
            assert mask[:L, n].all() and not mask[L:, n].any()
        seen += keys
    assert sorted(seen) == sorted(_keys(truth))


def test_pad_sequence_collate_without_keys(small_shard_set):
    path, _ = small_shard_set
    ds = EventShardDataset(path, split="test", data_type="frame", duration=DURATION, shuffle=False)
    batches = list(DataLoader(ds, batch_size=5, collate_fn=pad_sequence_collate))
    assert [len(b) for b in batches] == [3, 3]
    assert [b[0].shape[0] for b in batches] == [5, 4]
    x, labels, lengths = batches[0]
    assert labels.dtype == torch.int64 and lengths.shape == (5,)
    assert padded_sequence_mask(lengths, T=x.shape[1] + 2).shape == (x.shape[1] + 2, 5)
