"""Frames built on a device (loader.gpu) equal the frames the workers build, on the CPU device (and CUDA where present).

The reference is EventShardDataset's own CPU frames of the same samples in the same order (themselves checked
against SpikingJelly in tests/test_frames.py and tests/test_pixels.py), batched by pad_sequence_collate.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loader import EventShardDataset
from loader.collate import pad_sequence_collate
from loader.errors import ConfigurationError
from loader.gpu import DeviceFrames, PackedSample
from loader.transforms import RandomFlipLR
from tests.conftest import write_shard_set

SETTINGS = [dict(frames_number=6, split_by="number"), dict(frames_number=5, split_by="time"), dict(duration=150_000)]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def shard_sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("gpu")
    write_shard_set(base / "v3", seed=9, splits={"train": (7, 6)})
    write_shard_set(base / "v1", seed=9, splits={"train": (7, 6)}, version=1)
    return base


def _reference(root, kw, batch_size, transform=None):
    ds = EventShardDataset(root, data_type="frame", shuffle=False, return_key=True, transform=transform, **kw)
    items = list(ds)
    return [pad_sequence_collate(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("version", ["v3", "v1"])
@pytest.mark.parametrize("kw", SETTINGS, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
def test_device_frames_equal_worker_frames(shard_sets, kw, version, device):
    root = shard_sets / version
    ds = EventShardDataset(root, data_type="frame", shuffle=False, return_key=True, device=device, **kw)
    got = list(DeviceFrames(ds, batch_size=4, return_lengths=True))
    want = _reference(root, kw, 4)
    assert len(got) == len(want)
    for (frames, labels, lengths, keys), (w_frames, w_labels, w_lengths, w_keys) in zip(got, want, strict=True):
        assert frames.device.type == device and frames.dtype == torch.float32
        assert keys == w_keys and torch.equal(labels.cpu(), w_labels) and torch.equal(lengths.cpu(), w_lengths)
        assert frames.shape == w_frames.shape and torch.equal(frames.cpu(), w_frames)
    assert sum(float(f.sum()) for f, *_ in got) > 0


def test_device_frames_through_worker_processes_and_a_transform(shard_sets):
    """Packed samples cross the DataLoader's worker processes; a transform's events are packed after it."""
    root, kw = shard_sets / "v3", SETTINGS[0]
    flip = RandomFlipLR(p=0.5)
    ds = EventShardDataset(root, data_type="frame", shuffle=False, return_key=True, device="cpu", transform=flip, **kw)
    it = DeviceFrames(ds, batch_size=5, num_workers=1)
    got = list(it)
    want = _reference(root, kw, 5, transform=flip)
    for (frames, _, keys), (w_frames, _, _, w_keys) in zip(got, want, strict=True):
        assert keys == w_keys and torch.equal(frames, w_frames)
    shipped_float32 = sum(w.numel() * 4 for w, *_ in want)
    assert 0 < it.bytes_to_device < shipped_float32 / 4  # 2 bytes per event instead of T·2·H·W float32


def test_packed_items_and_refusals(shard_sets):
    ds = EventShardDataset(shard_sets / "v3", data_type="frame", frames_number=3, split_by="number", device="cpu",
                           shuffle=False)
    x, _ = next(iter(ds))
    assert isinstance(x, PackedSample) and x.pix.dtype == np.uint16 and x.counts.sum() == len(x.pix)
    with pytest.raises(ConfigurationError, match="device="):
        EventShardDataset(shard_sets / "v3", data_type="event", device="cpu")
    with pytest.raises(ConfigurationError, match="device="):
        EventShardDataset(shard_sets / "v3", data_type="frame", custom_integrate_function=lambda e, h, w: 0,
                          device="cpu")
