"""What a training run sees: batches that mix the classes of a class-sorted download, a new order every
epoch (also with persistent workers), and reads that hold up under threads and processes."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from loader import EventShardDataset
from loader.datasets import NMNIST
from shardgen.convert import convert
from tests.gen_classfolders import write_nmnist

pytestmark = pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")

CLASSES = tuple("0123456789")
BATCH = 32


@pytest.fixture(scope="module")
def sorted_download(tmp_path_factory) -> Path:
    """An N-MNIST layout download whose zips list the classes one after the other (48 samples each)."""
    root = tmp_path_factory.mktemp("nmnist_raw")
    write_nmnist(root, per_class=48, classes=CLASSES, seed=5, max_events=30)
    return root


@pytest.fixture(scope="module", params=["default", "small"])
def converted(request, sorted_download, tmp_path_factory) -> Path:
    """The download converted with the default shard size (one shard) and with small shards (~8 per split)."""
    out = tmp_path_factory.mktemp(f"nmnist_{request.param}")
    kw = {} if request.param == "default" else {"shard_size": 4096}
    convert("n-mnist", sorted_download, out, workers=2, check_md5=False, progress=False, **kw)
    return out


def _keys_only(batch):
    return [(int(label), key) for _, label, key in batch]


def _batches(ds, num_workers=2, **kw):
    dl = DataLoader(ds, batch_size=BATCH, num_workers=num_workers, collate_fn=_keys_only, **kw)
    return list(dl)


def _mixing(label_batches: list[list[int]]) -> tuple[float, float]:
    """Mean distinct classes per full batch and mean share of its most common class."""
    full = [b for b in label_batches if len(b) == BATCH]
    distinct = np.mean([len(set(b)) for b in full])
    majority = np.mean([Counter(b).most_common(1)[0][1] / len(b) for b in full])
    return float(distinct), float(majority)


def _uniform(labels: list[int], rounds: int = 300) -> tuple[float, float]:
    """The same figures for a uniform shuffle of the same labels (averaged over ``rounds`` shuffles)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(rounds):
        perm = rng.permutation(labels).tolist()
        out.append(_mixing([perm[i : i + BATCH] for i in range(0, len(perm), BATCH)]))
    return float(np.mean([d for d, _ in out])), float(np.mean([m for _, m in out]))


def test_class_sorted_download_gives_mixed_batches(converted):
    ds = EventShardDataset(converted, split="train", return_key=True)  # the defaults
    batches = _batches(ds)
    items = [item for b in batches for item in b]
    keys = [k for _, k in items]
    assert len(keys) == len(set(keys)) == len(ds) == ds.split_samples > 470  # every sample exactly once
    distinct, majority = _mixing([[label for label, _ in b] for b in batches])
    u_distinct, u_majority = _uniform([label for label, _ in items])
    assert distinct >= 0.8 * u_distinct, (distinct, u_distinct)
    assert majority <= 2 * u_majority, (majority, u_majority)


def test_stored_order_is_a_recorded_permutation(converted):
    """shuffle=False reads the stored order: mixed already; the façade keeps SpikingJelly's class-sorted order."""
    stored = [label for b in _batches(EventShardDataset(converted, split="train", shuffle=False, return_key=True), 0)
              for label, _ in b]
    assert sorted(stored) != stored
    facade = NMNIST(converted, train=True)
    labels = [facade[i][1] for i in range(len(facade))]
    assert labels == sorted(labels)


def _epoch_orders(ds, epochs, **kw):
    dl = DataLoader(ds, batch_size=BATCH, num_workers=2, collate_fn=_keys_only, **kw)
    out = []
    for epoch in epochs:
        ds.set_epoch(epoch)
        out.append([k for b in dl for _, k in b])
    return out


def test_set_epoch_reaches_persistent_workers(converted):
    persistent = _epoch_orders(EventShardDataset(converted, return_key=True, seed=7), [0, 1, 2],
                               persistent_workers=True)
    assert len({tuple(o) for o in persistent}) == 3  # a new order every epoch
    assert all(sorted(o) == sorted(persistent[0]) for o in persistent)
    fresh = [_epoch_orders(EventShardDataset(converted, return_key=True, seed=7), [e])[0] for e in (2, 0)]
    assert fresh == [persistent[2], persistent[0]]  # the order is a function of (seed, epoch)


def test_set_epoch_reaches_spawned_persistent_workers(converted):
    ds = EventShardDataset(converted, return_key=True, seed=7)
    dl = DataLoader(ds, batch_size=BATCH, num_workers=1, collate_fn=_keys_only, persistent_workers=True,
                    multiprocessing_context="spawn")
    orders = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        orders.append([k for b in dl for _, k in b])
    want = [[k for b in DataLoader(EventShardDataset(converted, return_key=True, seed=7), batch_size=BATCH,
                                   num_workers=1, collate_fn=_keys_only) for _, k in b]]
    ds2 = EventShardDataset(converted, return_key=True, seed=7)
    ds2.set_epoch(1)
    want.append([k for b in DataLoader(ds2, batch_size=BATCH, num_workers=1, collate_fn=_keys_only) for _, k in b])
    assert orders == want and orders[0] != orders[1]


def test_len_is_this_ranks_steps(converted):
    n = EventShardDataset(converted).split_samples
    for world in (1, 3, 4):
        for rank in range(world):
            ds = EventShardDataset(converted, rank=rank, world_size=world, return_key=True)
            got = [k for b in _batches(ds) for _, k in b]
            assert len(ds) == len(got) == -(-n // world)
            assert len(DataLoader(ds, batch_size=BATCH)) == -(-len(got) // BATCH)


# --------------------------------------------------------------------------- threads


def test_facade_reads_from_many_threads(converted):
    facade = NMNIST(converted, train=True, data_type="frame", frames_number=3, split_by="number", return_key=True)
    want = {i: facade[i] for i in range(len(facade))}
    picks = [random.Random(t).choices(range(len(facade)), k=200) for t in range(16)]
    errors: list[BaseException] = []
    wrong: list[int] = []

    def work(indices):
        try:
            for i in indices:
                x, label, key = facade[i]
                if key != want[i][2] or label != want[i][1] or not np.array_equal(x, want[i][0]):
                    wrong.append(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in picks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not wrong


def test_iterations_from_many_threads(converted):
    ds = EventShardDataset(converted, split="test", shuffle=True, seed=2, return_key=True)
    want = [k for _, _, k in ds]
    got: dict[int, list[str]] = {}

    def work(t):
        got[t] = [k for _, _, k in ds]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[t] == want for t in range(8))

