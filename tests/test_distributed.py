"""Rank x worker split: plan() for many shapes, ranks and workers in-process, and a real torchrun.

The contract (issue #5): every rank yields the same number of samples per epoch (``even="pad"``:
the epoch's global sequence extended by its first samples, like ``DistributedSampler``;
``"drop"``: cut), the union over ranks is the whole split and only the padding repeats, and the
order is a function of ``(seed, epoch)`` (and world size / worker count) only.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from loader import EventShardDataset
from loader.order import padded_length, plan, rank_range

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

ROOT = Path(__file__).resolve().parents[1]
SHARDS_31 = (9, 12, 10)  # 31 samples: not divisible by 2, 3 or 4


@pytest.fixture(scope="module")
def set31(tmp_path_factory, shard_set_writer):
    """A 31-sample train split in shards of 9, 12, 10; returns ``(path, keys in index order)``."""
    path = tmp_path_factory.mktemp("set31")
    truth = shard_set_writer(path, seed=31, splits={"train": SHARDS_31})
    return path, list(truth)


def _global_sequence(shard_samples, shuffle, seed, epoch):
    """(shard, sample) of the epoch's global sequence, written out independently of plan()."""
    order = [s for s in range(len(shard_samples)) if shard_samples[s]]  # an empty shard is no unit of the order
    if shuffle:
        order = [order[i] for i in np.random.default_rng([seed, epoch]).permutation(len(order)).tolist()]
    return [(s, i) for s in order for i in range(shard_samples[s])]


def _expand(runs):
    return [(s, i) for s, a, b in runs for i in range(a, b)]


def keys_only(batch):
    """Collate ``(x, label, key)`` items into their keys."""
    return [item[2] for item in batch]


def _keys(ds, num_workers, batch_size=None):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        if batch_size is None:
            return [item[2] for item in DataLoader(ds, batch_size=None, num_workers=num_workers)]
        dl = DataLoader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=keys_only)
        return [k for batch in dl for k in batch]


# --------------------------------------------------------------------------- plan(): pure


SHAPES = [(), (0,), (1,), (5,), (3, 0, 4), (10, 7, 13), (9, 12, 10), (1, 1, 1, 1, 1, 1, 1), (40, 2)]


@pytest.mark.parametrize("shard_samples", SHAPES, ids=str)
@pytest.mark.parametrize("even", ["pad", "drop", None])
def test_plan_ranks_times_workers(shard_samples, even):
    shard_samples = list(shard_samples)
    n = sum(shard_samples)
    for world in (1, 2, 3, 4, 7, 16):
        for workers in (1, 2, 3, 5):
            for shuffle, epoch in ((False, 0), (True, 0), (True, 3)):
                seq = _global_sequence(shard_samples, shuffle, 11, epoch)
                total = padded_length(n, world, even)
                want = (seq * (total // n + 1))[:total] if n else []
                got, per_rank = [], []
                for rank in range(world):
                    mine = []
                    sizes = []
                    for w in range(workers):
                        runs = plan(
                            shard_samples, rank * workers + w, world * workers, shuffle, 11, epoch,
                            world_size=world, even=even,
                        )  # fmt: skip
                        assert all(0 <= a < b <= shard_samples[s] for s, a, b in runs)
                        part = _expand(runs)
                        sizes.append(len(part))
                        mine += part
                    assert max(sizes) - min(sizes) <= 1  # workers of one rank: within one sample
                    lo, hi = rank_range(n, rank, world, even)
                    assert len(mine) == hi - lo
                    per_rank.append(len(mine))
                    got += mine
                # ranks in order, workers in order: exactly the (padded / cut) global sequence
                assert got == want, (world, workers, shuffle, epoch)
                if even == "pad":
                    assert set(per_rank) == {math.ceil(n / world)}
                    dup = sum(c - 1 for c in Counter(got).values())
                    assert dup == total - n and set(got) == set(seq)
                elif even == "drop":
                    assert set(per_rank) == {n // world} and len(set(got)) == len(got) == n - n % world
                else:
                    assert max(per_rank) - min(per_rank) <= 1 and sorted(got) == sorted(seq)


def test_plan_defaults_are_the_old_flat_split():
    counts = [10, 7, 13]
    for consumers in (1, 2, 3, 4, 8, 31, 40):
        pieces = [_expand(plan(counts, c, consumers, True, 2, 5)) for c in range(consumers)]
        assert [len(p) for p in pieces] == [30 * (c + 1) // consumers - 30 * c // consumers for c in range(consumers)]
        assert sum(pieces, []) == _global_sequence(counts, True, 2, 5)


def test_plan_epoch_and_seed_change_the_shard_order():
    counts = [3] * 12
    base = _expand(plan(counts, 0, 1, True, 0, 0))
    assert base == _expand(plan(counts, 0, 1, True, 0, 0))
    assert base != _expand(plan(counts, 0, 1, True, 0, 1))
    assert base != _expand(plan(counts, 0, 1, True, 1, 0))
    assert _expand(plan(counts, 0, 1, False, 0, 0)) == [(s, i) for s in range(12) for i in range(3)]


@pytest.mark.parametrize(
    "kwargs",
    [dict(consumer=2, consumers=2), dict(consumer=-1, consumers=2), dict(consumer=0, consumers=3, world_size=2)],
)
def test_plan_rejects_bad_consumers(kwargs):
    with pytest.raises(ValueError):
        plan([3, 4], **kwargs)
    with pytest.raises(ValueError):
        plan([3, 4], 0, 2, world_size=2, even="even")


# --------------------------------------------------------------------------- the dataset, in-process


@pytest.mark.parametrize(
    "world,num_workers,even",
    [(2, 2, "pad"), (2, 2, "drop"), (2, 0, None), (3, 0, "pad"), (3, 3, "pad"), (4, 2, "drop"), (5, 0, "pad")],
)
def test_dataset_ranks_times_workers(set31, world, num_workers, even):
    path, keys = set31
    n = len(keys)
    got, counts = [], []
    for rank in range(world):
        ds = EventShardDataset(path, shuffle=True, seed=4, return_key=True, rank=rank, world_size=world, even=even)
        part = _keys(ds, num_workers, batch_size=3 if num_workers else None)
        assert len(part) == ds.samples_per_rank() == len(ds)  # __len__ is this rank's samples per epoch
        assert ds.split_samples == n
        if num_workers:  # len(DataLoader) is this rank's number of steps
            assert len(DataLoader(ds, batch_size=3, num_workers=num_workers)) == -(-len(part) // 3)
        counts.append(len(part))
        got += part
    seen = Counter(got)
    if even == "pad":
        assert set(counts) == {math.ceil(n / world)}
        assert set(seen) == set(keys) and sum(seen.values()) - n == math.ceil(n / world) * world - n
    elif even == "drop":
        assert set(counts) == {n // world} and len(seen) == len(got) == n - n % world
    else:
        assert max(counts) - min(counts) == 1 and sorted(got) == sorted(keys)


def test_padding_repeats_the_first_samples_of_the_global_sequence(set31):
    path, keys = set31
    for world in (2, 3, 4):
        got = []
        for rank in range(world):
            ds = EventShardDataset(path, shuffle=False, return_key=True, rank=rank, world_size=world)
            got += _keys(ds, 0)
            part = _keys(ds, 2)  # the DataLoader interleaves its two workers' contiguous pieces
            assert sorted(part) == sorted(got[-len(part) :]) and part != got[-len(part) :]
        pad = math.ceil(31 / world) * world - 31
        assert got == keys + keys[:pad]  # unshuffled: index order, ranks contiguous, padding at the end


def test_order_depends_on_worker_count_and_epoch_not_on_timing(set31):
    path, keys = set31

    def run(num_workers, epoch=0):
        ds = EventShardDataset(path, seed=9, return_key=True, rank=1, world_size=2, shuffle_buffer=4)
        ds.set_epoch(epoch)
        return _keys(ds, num_workers, batch_size=2 if num_workers else None)

    a = run(2)
    assert a == run(2) and len(a) == 16
    assert run(2, epoch=1) != a
    assert run(0) == run(0) and sorted(run(0)) == sorted(a)  # same rank share, split into other workers


def test_env_fallback(set31, monkeypatch):
    path, _ = set31
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    ds = EventShardDataset(path, seed=1, return_key=True)
    explicit = EventShardDataset(path, seed=1, return_key=True, rank=1, world_size=3)
    from_env = [k for _, _, k in ds]
    assert from_env == [k for _, _, k in explicit] and len(from_env) == ds.samples_per_rank() == 11
    assert ds.state_dict()["rank"] == 1 and ds.state_dict()["world_size"] == 3
    # explicit arguments override the environment, each on its own
    assert [k for _, _, k in EventShardDataset(path, seed=1, return_key=True, rank=0)] == [
        k for _, _, k in EventShardDataset(path, seed=1, return_key=True, rank=0, world_size=3)
    ]
    with pytest.raises(ValueError):
        EventShardDataset(path, world_size=1).samples_per_rank()  # RANK=1 from the environment, world 1
    # the environment reaches DataLoader workers too
    assert sorted(_keys(ds, 2)) == sorted(from_env)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert EventShardDataset(path).samples_per_rank() == 31
    monkeypatch.setenv("RANK", "zero")
    with pytest.raises(ValueError, match="RANK"):
        EventShardDataset(path).samples_per_rank()


@pytest.mark.parametrize(
    "kwargs",
    [dict(even="even"), dict(even="Pad"), dict(on_error="ignore"), dict(rank=2, world_size=2), dict(world_size=0)],
)
def test_bad_split_arguments(set31, kwargs):
    with pytest.raises(ValueError):
        EventShardDataset(set31[0], **kwargs)


# --------------------------------------------------------------------------- torchrun


def _torchrun(root: Path, out: Path, runs: str) -> dict[int, dict]:
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    cmd = [  # --standalone: torchrun binds its own free rendezvous port (no window for another process to take it)
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--max-restarts=0",
        str(ROOT / "tests" / "dist_run.py"), str(root), str(out), "--runs", runs,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {r: json.loads((out / f"rank{r}.json").read_text()) for r in range(2)}


def test_torchrun_two_ranks_two_workers(set31, tmp_path):
    path, keys = set31
    first = _torchrun(path, tmp_path / "first", "pad0,pad0_again,pad1,drop0,none0")
    assert [first[r]["rank"] for r in range(2)] == [0, 1] and first[0]["world_size"] == 2

    def run(name, results=first):
        return [results[r]["runs"][name]["keys"] for r in range(2)]

    # pad: equal counts (also as exchanged over the process group), all keys, one duplicate (32 - 31)
    pad = run("pad0")
    assert [len(k) for k in pad] == [16, 16] == [first[r]["runs"]["pad0"]["samples_per_rank"] for r in range(2)]
    assert first[0]["all_counts"]["pad0"] == [16, 16]
    together = Counter(pad[0] + pad[1])
    assert set(together) == set(keys) and sum(c - 1 for c in together.values()) == 1
    # drop: 15 each, no duplicates, 30 of 31 keys
    drop = run("drop0")
    assert [len(k) for k in drop] == [15, 15] and len(set(drop[0] + drop[1])) == 30
    # None: the uneven split, everything once
    none = run("none0")
    assert sorted(len(k) for k in none) == [15, 16] and sorted(none[0] + none[1]) == sorted(keys)
    # same seed and epoch: same order per rank; another epoch: another order
    assert run("pad0_again") == pad
    pad1 = run("pad1")
    assert pad1 != pad and [len(k) for k in pad1] == [16, 16] and set(pad1[0] + pad1[1]) == set(keys)
    # a second torchrun (new processes, other timing) gives the same order
    second = _torchrun(path, tmp_path / "second", "pad0")
    assert run("pad0", second) == pad
