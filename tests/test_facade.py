"""The SpikingJelly-style façade (``loader.datasets``) and tonic-style structured events.

Parity: ``loader.datasets.DVS128Gesture`` on a converted generated download gives the same
``(x, label)`` items as SpikingJelly 2.0.0's ``DVS128Gesture`` on the same raw files, frames value
for value, with the true class as label (SpikingJelly's string-sorted folder index mapped back).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from loader import EventShardDataset
from loader.datasets import ASLDVS, CIFAR10DVS, NMNIST, DVS128Gesture, NCaltech101
from loader.shards import ShardSet
from shardgen.convert import convert
from tests.conftest import canonical_of, in_dataset_order, read_index_json
from tests.gen_dvsgesture import write_gesture_download

T = 8
GEN = {"n_train": 3, "n_test": 1, "events_per_sample": 700, "seed": 11}


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def gesture(tmp_path_factory):
    """A generated download (SpikingJelly's layout: ``<root>/download``) and its conversion ``OUT``."""
    root = tmp_path_factory.mktemp("facade")
    gen = write_gesture_download(root / "download", **GEN)
    out = root / "shards"
    convert("dvs128-gesture", gen.root, out, workers=1, check_md5=False, progress=False, shard_size=1 << 15)
    return gen, out


@pytest.fixture(scope="module")
def spikingjelly(gesture):
    """``(split, data_type) -> {key: (x, true label)}`` from SpikingJelly 2.0.0 on the same download."""
    pytest.importorskip("spikingjelly")
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.dvs128_gesture import DVS128Gesture as SJGesture

    gen, _ = gesture
    md5 = dict(gen.md5)

    class GeneratedGesture(SJGesture):
        @classmethod
        def resource_url_md5(cls) -> list:
            return [(name, "generated://", digest) for name, digest in md5.items()]

    root = gen.root.parent
    result = {}
    for split in ("train", "test"):
        for data_type, kw in (("event", {}), ("frame", {"frames_number": T, "split_by": "number"})):
            ds = GeneratedGesture(str(root), train=split == "train", data_type=data_type, **kw)
            items = {}
            for j in range(len(ds)):
                path = Path(ds.samples[j][0])
                x, target = ds[j]
                folder = path.parent.name
                assert ds.classes[target] == folder  # SpikingJelly's label: index of the folder name
                items[f"{folder}/{path.stem}"] = (x, int(folder))  # the folder name is the true class
            result[split, data_type] = items
    return result


def _with_dataset_id(src: Path, dst: Path, dataset: str, all_split: bool = True) -> Path:
    """A copy of a shard set whose index claims ``dataset`` and has an ``all`` split (train + test shards)."""
    shutil.copytree(src, dst)
    ix = read_index_json(dst)
    ix["dataset"] = dataset
    if all_split:
        shards = ix["splits"]["train"]["shards"] + ix["splits"]["test"]["shards"]
        ix["splits"]["all"] = {
            "samples": sum(s["samples"] for s in shards),
            "events": sum(s["events"] for s in shards),
            "bytes": sum(s["bytes"] for s in shards),
            "shards": shards,
        }
    (dst / "index.json").write_text(json.dumps(ix, indent=1, sort_keys=True))
    return dst


# ----------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("split", ["train", "test"])
def test_frames_equal_spikingjelly(split, gesture, spikingjelly):
    _, out = gesture
    sj = spikingjelly[split, "frame"]
    ds = DVS128Gesture(out, train=split == "train", data_type="frame", frames_number=T, split_by="number")
    keyed = DVS128Gesture(out, train=split == "train", data_type="frame", frames_number=T, split_by="number",
                          return_key=True)
    assert len(ds) == len(sj) > 0
    seen = set()
    for i in range(len(ds)):
        x, label = ds[i]
        _, label2, key = keyed[i]
        assert label2 == label
        want_x, want_label = sj[key]
        assert x.dtype == np.float32 and x.shape == (T, 2, 128, 128)
        np.testing.assert_array_equal(x, want_x, err_msg=key)  # value for value (SpikingJelly: float64)
        assert label == want_label == int(key.split("/")[0])  # the true class
        seen.add(key)
    assert seen == set(sj)
    if split == "train":  # the comparison covers labels >= 10, where SpikingJelly's folder index differs
        assert any(int(k.split("/")[0]) == 10 for k in seen)


@pytest.mark.parametrize("split", ["train", "test"])
def test_events_equal_spikingjelly(split, gesture, spikingjelly):
    _, out = gesture
    sj = spikingjelly[split, "event"]
    ds = DVS128Gesture(out, train=split == "train", data_type="event", return_key=True)
    assert len(ds) == len(sj)
    for ev, label, key in (ds[i] for i in range(len(ds))):
        want, want_label = sj[key]
        assert label == want_label
        for c in "txyp":
            np.testing.assert_array_equal(ev[c].astype(np.int64), np.asarray(want[c]).astype(np.int64), err_msg=key)


def test_items_equal_streaming_dataset(gesture):
    """``ds[i]`` is the unshuffled stream's item at the stored position the index's permutation gives."""
    _, out = gesture
    facade = DVS128Gesture(out, train=True, data_type="frame", frames_number=4, split_by="time", return_key=True)
    stream = EventShardDataset(out, "train", data_type="frame", frames_number=4, split_by="time", shuffle=False,
                               return_key=True)
    items = list(stream)
    assert len(items) == len(facade)
    ordered = in_dataset_order(items, read_index_json(out)["splits"]["train"])
    assert [k for _, _, k in ordered] != [k for _, _, k in items]  # the shards hold a permutation
    for i, (x, label, key) in enumerate(ordered):
        fx, flabel, fkey = facade[i]
        assert (fkey, flabel) == (key, label)
        np.testing.assert_array_equal(fx, x)
    assert facade[-1][2] == ordered[-1][2]


# ----------------------------------------------------------------------------------------------- map-style


def test_getitem_reads_one_byte_range(gesture, monkeypatch):
    _, out = gesture
    ds = DVS128Gesture(out, train=True, data_type="frame", frames_number=T, split_by="number")
    reads = []
    real = ShardSet.read_bytes

    def spy(self, shard, lo, hi, stats=None):
        reads.append((shard["file"], lo, hi))
        return real(self, shard, lo, hi, stats)

    monkeypatch.setattr(ShardSet, "read_bytes", spy)
    index = read_index_json(out)
    shards = index["splits"]["train"]["shards"]
    assert len(shards) > 2
    stored = shards[0]["samples"] + shards[1]["samples"] + 1  # sample 1 of the third shard
    ds[canonical_of(index["splits"]["train"])[stored]]  # the dataset's sample stored there
    offs = shards[2]["offsets"]
    assert reads == [(shards[2]["file"], offs[1], offs[2])]


def test_root_is_a_url(gesture):
    """``root`` may be an ``http://`` URL: ``ds[i]`` is then one HTTP Range request."""
    from tests.servers import RangeHTTPServer

    _, out = gesture
    local = DVS128Gesture(out, train=False, data_type="frame", frames_number=T, split_by="number", return_key=True)
    with RangeHTTPServer(out) as server:
        remote = DVS128Gesture(server.url(), train=False, data_type="frame", frames_number=T, split_by="number",
                               return_key=True)
        assert len(remote) == len(local)
        for i in (0, len(local) - 1, 3):
            (x, y, k), (x2, y2, k2) = remote[i], local[i]
            assert (k, y) == (k2, y2)
            np.testing.assert_array_equal(x, x2)


def test_len_index_errors_and_repr(gesture):
    _, out = gesture
    ds = DVS128Gesture(out, train=False)
    n = read_index_json(out)["splits"]["test"]["samples"]
    assert len(ds) == n
    with pytest.raises(IndexError):
        ds[n]
    with pytest.raises(IndexError):
        ds[-n - 1]
    assert ds[-1][1] == ds[n - 1][1]
    assert sum(1 for _ in ds) == n  # the old sequence protocol ends at IndexError
    assert "split='test'" in repr(ds)
    assert ds.get_H_W() == (128, 128) and ds.sensor_size == (128, 128)
    assert ds.classes[0] == "hand_clapping" and ds.class_to_idx["other_gestures"] == 10


def test_dataloader_shuffle_and_workers(gesture):
    """Like SpikingJelly's classes: DataLoader(shuffle=True, num_workers=k) sees every sample once."""
    _, out = gesture
    ds = DVS128Gesture(out, train=True, data_type="frame", frames_number=T, split_by="number", return_key=True)
    torch.manual_seed(0)
    keys, labels = [], []
    for x, y, k in DataLoader(ds, batch_size=5, shuffle=True, num_workers=2):
        assert x.dtype == torch.float32 and tuple(x.shape[1:]) == (T, 2, 128, 128)
        keys += list(k)
        labels += y.tolist()
    assert sorted(keys) == sorted(ds[i][2] for i in range(len(ds)))
    assert keys != [ds[i][2] for i in range(len(ds))]  # shuffled
    assert labels == [int(k.split("/")[0]) for k in keys]


def test_transform_applies_to_frames_like_spikingjelly(gesture):
    _, out = gesture
    seen = []

    def transform(x):
        seen.append(x.shape)
        return torch.from_numpy(x).sum(dim=1)

    ds = DVS128Gesture(out, train=False, data_type="frame", frames_number=3, split_by="number", transform=transform,
                       target_transform=lambda y: y + 100)
    x, y = ds[0]
    assert seen == [(3, 2, 128, 128)] and tuple(x.shape) == (3, 128, 128) and y >= 100
    ev, _ = DVS128Gesture(out, train=False, transform=lambda e: {**e, "n": len(e["t"])})[0]
    assert ev["n"] == len(ev["x"])


def test_arguments(gesture, small_shard_set, tmp_path):
    _, out = gesture
    with pytest.raises(ValueError, match="dvs128-gesture"):
        NMNIST(out)
    with pytest.raises(ValueError, match="synthetic-test"):
        DVS128Gesture(small_shard_set[0])
    with pytest.raises(ValueError, match="no split 'all'"):
        DVS128Gesture(out, train=None)
    with pytest.raises(ValueError, match="data_type"):
        DVS128Gesture(out, data_type="structured")
    with pytest.raises(ValueError, match="frames_number"):
        DVS128Gesture(out, data_type="frame")
    # SpikingJelly's custom_integrated_frames_dir_name is accepted and changes nothing
    a = DVS128Gesture(out, False, "frame", 2, "number", None, None, "my_frames")[0][0]
    b = DVS128Gesture(out, train=False, data_type="frame", frames_number=2, split_by="number", split="test")[0][0]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls, dataset", [(CIFAR10DVS, "cifar10-dvs"), (NCaltech101, "n-caltech101"),
                                          (ASLDVS, "asl-dvs")])
def test_whole_datasets_default_to_all(cls, dataset, small_shard_set, tmp_path):
    """CIFAR10DVS/NCaltech101/ASLDVS have no ``train`` in SpikingJelly: default split "all", keyword train."""
    root, truth = small_shard_set
    out = _with_dataset_id(root, tmp_path / "set", dataset)
    ds = cls(out)  # SpikingJelly's positional order: root, data_type, frames_number, split_by, …
    assert ds.split == "all" and len(ds) == len(truth)
    frames = cls(out, "frame", 4, "number", return_key=True)
    x, label, key = frames[len(truth) - 1]
    assert x.shape == (4, 2, 128, 128) and label == truth[key]["label"] and truth[key]["split"] == "test"
    assert len(cls(out, train=True)) == sum(v["split"] == "train" for v in truth.values())
    assert len(cls(out, train=False)) == sum(v["split"] == "test" for v in truth.values())


def test_nmnist_train_flag(small_shard_set, tmp_path):
    root, truth = small_shard_set
    out = _with_dataset_id(root, tmp_path / "set", "n-mnist", all_split=False)
    assert len(NMNIST(out)) == sum(v["split"] == "train" for v in truth.values())
    ev, label, key = NMNIST(out, train=False, return_key=True)[0]
    np.testing.assert_array_equal(ev["t"], truth[key]["events"]["t"])


# ----------------------------------------------------------------------------------------------- tonic


def test_structured_matches_tonic_dtype(small_shard_set):
    tonic = pytest.importorskip("tonic")
    root, truth = small_shard_set
    ds = EventShardDataset(root, "test", data_type="structured", shuffle=False, return_key=True)
    n = 0
    for ev, label, key in ds:
        assert ev.dtype == tonic.io.events_struct
        want = truth[key]["events"]
        for c in "txy":
            np.testing.assert_array_equal(ev[c], want[c])
        np.testing.assert_array_equal(ev["p"], want["p"].astype(bool))
        assert label == truth[key]["label"]
        n += 1
    assert n == len(ds)
    with pytest.raises(ValueError, match="data_type='frame'"):
        EventShardDataset(root, "test", data_type="structured", frames_number=3, split_by="number")


def test_tonic_transforms_in_workers(small_shard_set):
    """tonic's Denoise + ToFrame as ``transform=``, run inside two DataLoader workers, unchanged."""
    tonic = pytest.importorskip("tonic")
    import tonic.transforms as tt

    root, truth = small_shard_set
    sensor = (128, 128, 2)  # tonic's order: (W, H, P)
    transform = tt.Compose([tt.Denoise(filter_time=10_000), tt.ToFrame(sensor_size=sensor, n_event_bins=3)])
    ds = EventShardDataset(root, "train", data_type="structured", transform=transform, return_key=True)
    got = {}
    # tonic's ToFrame returns an empty structured array when Denoise left no event: keep items as they are
    for x, label, key in DataLoader(ds, batch_size=None, num_workers=2, collate_fn=_as_is):
        got[key] = (x, label)
    assert len(got) == len(ds)
    frames = 0
    for key, (x, label) in got.items():
        ev = truth[key]["events"]
        want = transform(tonic.io.make_structured_array(ev["x"], ev["y"], ev["t"], ev["p"]))
        assert x.dtype == want.dtype and x.shape == want.shape
        np.testing.assert_array_equal(x, want, err_msg=key)
        assert label == truth[key]["label"]
        frames += x.dtype == np.int16
    assert frames > 10


def _as_is(item):
    return item
