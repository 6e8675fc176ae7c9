"""Resume with torchdata's StatefulDataLoader: the rest of an interrupted epoch is exactly the rest.

An uninterrupted run gives the reference sequence of keys; a run stopped after ``k`` batches hands
its ``state_dict()`` to a new dataset and loader, and what that one yields must complete the
reference in the same order: for ``num_workers`` 0 and 2, for ``k`` at the start, inside the
shuffle buffer's filling, in the middle, in the buffer's final drain and at the end, and in a later
epoch. Skipped samples are neither decoded nor read again.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
from torchdata.stateful_dataloader import StatefulDataLoader

from loader import EventShardDataset
from loader.format import FormatError
from loader.shards import ReadStats
from tests.conftest import read_index_json

pytestmark = [
    pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning"),
    # torchdata 0.11's StatefulDataLoader calls torch.set_vital, which torch 2.13 deprecates
    pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning"),
]

SHARDS_31 = (9, 12, 10)
BUFFER = 4
BATCH = 3


@pytest.fixture(scope="module")
def set31(tmp_path_factory, shard_set_writer):
    """A 31-sample train split in shards of 9, 12, 10; returns ``(path, keys in index order)``."""
    path = tmp_path_factory.mktemp("resume31")
    truth = shard_set_writer(path, seed=77, splits={"train": SHARDS_31})
    return path, list(truth)


def keys_only(batch):
    """Collate ``(events, label, key)`` items into their keys (event dicts vary in length)."""
    return [item[2] for item in batch]


def _loader(path, num_workers, epoch=None, **kw):
    kw = {"seed": 3, "shuffle_buffer": BUFFER, **kw}
    ds = EventShardDataset(path, data_type="event", shuffle=True, return_key=True, **kw)
    if epoch is not None:
        ds.set_epoch(epoch)
    return ds, StatefulDataLoader(ds, batch_size=BATCH, num_workers=num_workers, collate_fn=keys_only)


def _batches(dl, stop=None):
    """Up to ``stop`` batches of keys from a fresh iterator over ``dl``, and the state after them."""
    out = []
    it = iter(dl)
    for batch in it:
        if stop is not None and len(out) == stop:
            break
        out.append(batch)
    if stop is not None and len(out) < stop:
        raise AssertionError(f"only {len(out)} batches")
    return out, dl.state_dict()


def _stop_and_resume(path, num_workers, k, epoch=None, resume_epoch=None, **kw):
    """Keys of the first ``k`` batches, then of a new dataset + loader resumed from the state after them."""
    _, dl = _loader(path, num_workers, epoch, **kw)
    head = []
    it = iter(dl)
    for _ in range(k):
        head.append(next(it))
    state = dl.state_dict()
    del it, dl
    ds2, dl2 = _loader(path, num_workers, resume_epoch, **kw)
    dl2.load_state_dict(state)
    tail = [b for b in dl2]
    return head, tail, ds2


def _flat(batches):
    return [k for b in batches for k in b]


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize(
    "num_workers,ks",
    [
        # 31 samples, one consumer: 11 batches; the buffer of 4 fills with the first 4, drains in the last 4
        (0, [0, 1, 2, 5, 9, 10, 11]),
        # two workers: 16 + 15 samples, batches alternate between them (6 + 5 batches)
        (2, [0, 1, 2, 3, 6, 9, 10, 11]),
    ],
)
def test_resume_completes_the_epoch_exactly(set31, num_workers, ks):
    path, keys = set31
    _, dl = _loader(path, num_workers)
    full, _ = _batches(dl)
    flat = _flat(full)
    assert sorted(flat) == sorted(keys) and flat != keys  # every key once, shuffled
    assert _batches(_loader(path, num_workers)[1])[0] == full  # deterministic
    for k in ks:
        head, tail, _ = _stop_and_resume(path, num_workers, k)
        assert head == full[:k]
        assert _flat(head) + _flat(tail) == flat, f"k={k}"
        if num_workers == 0:
            assert head + tail == full  # same batches too


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_in_a_later_epoch(set31, num_workers):
    path, _ = set31
    ds, dl = _loader(path, num_workers)
    epoch0 = _flat(_batches(dl)[0])
    ds.set_epoch(1)
    full1 = _flat(_batches(dl)[0])
    assert full1 != epoch0 and sorted(full1) == sorted(epoch0)
    for k in (1, 4):
        # resumed by a loop that sets the epoch first, and by one that does not: the state's epoch wins
        for resume_epoch in (1, None):
            head, tail, _ = _stop_and_resume(path, num_workers, k, epoch=1, resume_epoch=resume_epoch)
            assert _flat(head) + _flat(tail) == full1, (k, resume_epoch)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_state_of_a_finished_epoch_starts_the_next(set31, num_workers):
    path, _ = set31
    ds, dl = _loader(path, num_workers)
    _, state = _batches(dl)  # the whole of epoch 0
    ds.set_epoch(1)
    want = _flat(_batches(dl)[0])
    ds2, dl2 = _loader(path, num_workers, epoch=1)
    dl2.load_state_dict(state)
    assert _flat(_batches(dl2)[0]) == want  # nothing of epoch 0 is repeated, epoch 1 runs whole


def test_skipped_samples_are_not_decoded_or_read(set31, monkeypatch):
    path, _ = set31
    ds, dl = _loader(path, 0)
    full = _flat(_batches(dl)[0])
    full_bytes = ds.stats()["bytes_read"]
    assert full_bytes > 0
    decoded = []
    real_decode = EventShardDataset.decode

    def counting_decode(self, frame, epoch=None):
        item = real_decode(self, frame, epoch)
        decoded.append(item[2])
        return item

    monkeypatch.setattr(EventShardDataset, "decode", counting_decode)
    head, tail, ds2 = _stop_and_resume(path, 0, 8)
    assert _flat(head) + _flat(tail) == full
    assert decoded[len(_flat(head)) :] == _flat(tail)  # the resumed run decoded only what it yielded
    assert 0 < ds2.stats()["bytes_read"] < full_bytes / 2  # and read little more than the last 7 samples


def test_resume_with_ranks(set31):
    path, keys = set31
    full = _flat(_batches(_loader(path, 2, rank=1, world_size=2)[1])[0])
    assert len(full) == 16 and set(full) <= set(keys)
    head, tail, _ = _stop_and_resume(path, 2, 3, rank=1, world_size=2)
    assert _flat(head) + _flat(tail) == full


# --------------------------------------------------------------------------- state contents and checks


def test_state_dict_protocol(set31):
    path, _ = set31
    ds = EventShardDataset(path, return_key=True, seed=5, rank=1, world_size=3)
    ds.set_epoch(2)
    state = ds.state_dict()
    assert state["epoch"] == 2 and state["yielded"] == 0 and state["seed"] == 5
    assert (state["rank"], state["world_size"], state["worker"], state["num_workers"]) == (1, 3, 0, 1)
    it = iter(ds)
    first = [next(it) for _ in range(4)]
    assert ds.state_dict()["yielded"] == 4
    resumed = EventShardDataset(path, return_key=True, seed=5, rank=1, world_size=3)
    resumed.load_state_dict(ds.state_dict())
    assert resumed.state_dict()["yielded"] == 4  # a loaded state reads back before iterating
    rest = [k for _, _, k in resumed]
    assert rest == [k for _, _, k in it]  # what the interrupted iterator still had to give
    assert [k for _, _, k in first] + rest == [k for _, _, k in ds]
    assert resumed.epoch == 0  # load_state_dict resumed epoch 2 once; it did not call set_epoch
    assert len(rest) + 4 == 11
    # a finished iteration: while the epoch stays, the state says "finished"; for another epoch, its start
    assert (resumed.state_dict()["epoch"], resumed.state_dict()["yielded"]) == (0, 0)
    resumed.set_epoch(2)
    assert (resumed.state_dict()["epoch"], resumed.state_dict()["yielded"]) == (2, 11)
    resumed.set_epoch(3)
    assert (resumed.state_dict()["epoch"], resumed.state_dict()["yielded"]) == (3, 0)
    again = EventShardDataset(path, return_key=True, seed=5, rank=1, world_size=3)
    again.load_state_dict(resumed.state_dict())
    ds.set_epoch(3)
    assert [k for _, _, k in again] == [k for _, _, k in ds]


@pytest.mark.parametrize(
    "change",
    [dict(seed=6), dict(shuffle=False), dict(shuffle_buffer=8), dict(even="drop"), dict(split="test")],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_incompatible_state_is_refused(set31, change, tmp_path, shard_set_writer):
    path, _ = set31
    state = EventShardDataset(path, seed=5, world_size=2, rank=0).state_dict()
    if "split" in change:
        shard_set_writer(tmp_path, seed=1, splits={"train": (3,), "test": SHARDS_31})
        path = tmp_path
    ds = EventShardDataset(path, **{"seed": 5, "world_size": 2, "rank": 0, **change})
    with pytest.raises(ValueError, match="cannot resume"):
        ds.load_state_dict(state)


def test_state_of_another_consumer_is_refused(set31):
    path, _ = set31
    state = EventShardDataset(path, world_size=2, rank=0).state_dict()
    ds = EventShardDataset(path, world_size=2, rank=1)
    ds.load_state_dict(state)
    with pytest.raises(ValueError, match="rank"):
        iter(ds)
    with pytest.raises(ValueError, match="version"):
        ds.load_state_dict({"epoch": 0})


# --------------------------------------------------------------------------- reading options: on_error, cache, stats


def test_skipped_shard_keeps_the_order_of_the_rest(set31, tmp_path):
    path, keys = set31
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "train-000001.tar.zst").unlink()  # the 12 samples of the middle shard
    lost = set(keys[9:21])
    _, dl = _loader(path, 0)
    want = [k for k in _flat(_batches(dl)[0]) if k not in lost]

    with pytest.warns(UserWarning, match="train-000001.tar.zst"):
        ds, dl = _loader(broken, 0, on_error="skip")
        got = _flat(_batches(dl)[0])
    assert got == want  # the other samples come in the order they would have come in
    stats = ds.stats()
    assert set(stats) >= {f.name for f in ReadStats.__dataclass_fields__.values()}
    assert stats["skipped_shards"] == [f"{broken}/train-000001.tar.zst"] and stats["skipped_samples"] == 12

    with pytest.raises(FileNotFoundError):
        _batches(_loader(broken, 0)[1])  # on_error="raise" (the default)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        head, tail, _ = _stop_and_resume(broken, 0, 2, on_error="skip")
    assert _flat(head) + _flat(tail) == want


def test_cache_arguments_reach_the_shard_set(set31, tmp_path):
    path, _ = set31
    want = _flat(_batches(_loader(path, 0)[1])[0])
    ds, dl = _loader(path, 0, cache_dir=tmp_path / "cache", cache_bytes=1 << 30)
    assert _flat(_batches(dl)[0]) == want
    assert ds.stats()["cache_misses"] == len(SHARDS_31) and any((tmp_path / "cache").rglob("*"))
    ds.set_epoch(1)
    _batches(dl)
    assert ds.stats()["cache_hits"] == len(SHARDS_31)  # the second epoch reads from the cache
    with pytest.raises(ValueError):
        EventShardDataset(path, cache_bytes=1 << 20)  # a size without a folder


def test_undecodable_sample_is_skipped_and_counted(set31, tmp_path):
    path, keys = set31
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    index = read_index_json(broken)
    shard = index["splits"]["train"]["shards"][2]
    sample = 4
    with open(broken / shard["file"], "r+b") as f:  # spoil the zstd magic of one sample's frame
        f.seek(shard["offsets"][sample])
        f.write(b"\0\0\0\0")
    bad_key = keys[9 + 12 + sample]
    want = [k for k in _flat(_batches(_loader(path, 0)[1])[0]) if k != bad_key]
    with pytest.warns(UserWarning, match=f"sample {sample} of .*{shard['file']}"):
        ds, dl = _loader(broken, 0, on_error="skip")
        assert _flat(_batches(dl)[0]) == want
    assert ds.stats()["skipped_samples"] == 1 and ds.stats()["skipped_shards"] == []
    with pytest.raises(FormatError):
        _batches(_loader(broken, 0)[1])
