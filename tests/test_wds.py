"""Stock webdataset pipelines over eventshard shards (``loader.wds``), compared with ``EventShardDataset``.

The reference is ``EventShardDataset(root, split, shuffle=False, return_key=True)``: the samples as stored,
shard by shard. A stock ``webdataset.WebDataset`` over ``loader.wds.urls(...)`` must yield each of them exactly
once, with equal events, frames, labels and keys: in one process (same order), through a 2-worker DataLoader
with ``split_by_worker`` from a local folder, a Range-capable HTTP server and moto's S3 server (real servers on
127.0.0.1), and with webdataset's other stages (``split_by_node``, ``shuffle``, ``batched`` with
``pad_sequence_collate``, ``WebLoader``, ``with_epoch``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import webdataset as wds

import loader.wds as ewds
from loader import EventShardDataset, pad_sequence_collate
from loader.format import FORMAT_NAME, FORMAT_VERSION, TIME_UNIT, FormatError, encode_sample, new_compressor
from shardgen.output import ShardSetOutput
from tests.conftest import read_index_json, write_shard_set
from tests.servers import MotoS3, RangeHTTPServer

SPLITS = {"train": (6, 3, 5), "test": (4,)}
SENSOR = (34, 40)
FRAME_SETTINGS = [
    {"frames_number": 4, "split_by": "number"},
    {"frames_number": 5, "split_by": "time"},
    {"duration": 200_000},
]


def _count_integrate(events: dict[str, np.ndarray], h: int, w: int) -> np.ndarray:
    """A custom integration function (module level: DataLoader workers may pickle it)."""
    return np.array([events["t"].size, int(events["p"].sum()), h, w])


class _EventsAndFrames:
    """``(events, label, key)`` → ``(events, frames, label, key)`` (picklable)."""

    def __init__(self, stage: ewds.to_frames):
        self.stage = stage

    def __call__(self, item: tuple[Any, ...]) -> tuple[Any, ...]:
        frames, label, key = self.stage(item)
        return item[0], frames, label, key


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wds_set")
    write_shard_set(path, seed=77, splits=SPLITS, sensor_size=SENSOR)
    return path


def _reference(root: str | Path, split: str = "train", **frame: Any) -> list[tuple[Any, ...]]:
    kw: dict[str, Any] = {"data_type": "frame", **frame} if frame else {}
    return list(EventShardDataset(root, split, shuffle=False, return_key=True, **kw))


def _np(v: Any) -> np.ndarray:
    """A DataLoader hands numpy arrays on as tensors (``default_convert``): back to numpy, dtype kept."""
    return v.numpy() if isinstance(v, torch.Tensor) else v


def _same_events(a: dict[str, Any], b: dict[str, np.ndarray], key: str) -> None:
    assert sorted(a) == sorted(b) == ["p", "t", "x", "y"], key
    for c in "txyp":
        got = _np(a[c])
        assert got.dtype == b[c].dtype and np.array_equal(got, b[c]), f"{key}: column {c}"


def _check_against_reference(root: str | Path, got: list[tuple[Any, ...]], frame: dict[str, Any]) -> None:
    """``got`` holds ``(events, frames, label, key)``: every reference sample exactly once, equal in all four."""
    events = {k: (ev, label) for ev, label, k in _reference(root)}
    frames = {k: x for x, _label, k in _reference(root, **frame)}
    keys = [item[3] for item in got]
    assert sorted(keys) == sorted(events) and len(set(keys)) == len(keys)
    for ev, x, label, key in got:
        _same_events(ev, events[key][0], key)
        assert label == events[key][1], key
        x = _np(x)
        assert x.dtype == frames[key].dtype and np.array_equal(x, frames[key]), key


def _two_worker_loader(urls: list[str], frame: dict[str, Any]) -> list[tuple[Any, ...]]:
    stage = ewds.to_frames(urls.sensor_size, **frame)  # type: ignore[attr-defined]
    pipeline = (
        wds.WebDataset(urls, shardshuffle=False, workersplitter=wds.split_by_worker)
        .map(ewds.decode_sample)
        .map(_EventsAndFrames(stage))
    )
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=2)
    return list(loader)


# --------------------------------------------------------------------------- one process, local


def test_urls_name_the_shards_in_index_order(shard_set: Path) -> None:
    urls = ewds.urls(shard_set, "train")
    want = [f"eventshard+file://{shard_set.resolve()}/train-{i:06d}.tar.zst" for i in range(3)]
    assert list(urls) == want
    assert urls.sensor_size == SENSOR and urls.samples == 14 and len(urls.classes) == 11
    assert list(ewds.urls(shard_set / "index.json", "test")) == [want[0].replace("train-", "test-")]
    with pytest.raises(ValueError, match="no split 'val'"):
        ewds.urls(shard_set, "val")


def test_events_equal_in_stored_order(shard_set: Path) -> None:
    for split in SPLITS:
        got = list(wds.WebDataset(ewds.urls(shard_set, split), shardshuffle=False).map(ewds.decode_sample))
        ref = _reference(shard_set, split)
        assert [k for *_, k in got] == [k for *_, k in ref]
        for (ev, label, key), (ev2, label2, _) in zip(got, ref, strict=True):
            _same_events(ev, ev2, key)
            assert label == label2 and isinstance(label, int)


@pytest.mark.parametrize("frame", [*FRAME_SETTINGS, {"custom_integrate_function": _count_integrate}])
def test_frames_equal_in_stored_order(shard_set: Path, frame: dict[str, Any]) -> None:
    urls = ewds.urls(shard_set, "train")
    pipeline = wds.WebDataset(urls, shardshuffle=False).map(ewds.decode_sample).map(ewds.to_frames(SENSOR, **frame))
    got, ref = list(pipeline), _reference(shard_set, **frame)
    assert len(got) == len(ref) == 14
    for (x, label, key), (x2, label2, key2) in zip(got, ref, strict=True):
        assert key == key2 and label == label2
        assert x.dtype == x2.dtype and x.shape == x2.shape and np.array_equal(x, x2), key


def test_to_frames_refuses_unclear_settings() -> None:
    for kw, words in [
        ({}, "needs one of"),
        ({"frames_number": 4}, "split_by='number' or 'time'"),
        ({"frames_number": 4, "split_by": "number", "duration": 10}, "needs one of"),
        ({"duration": 0}, "duration must be positive"),
        ({"split_by": "time", "duration": 5}, "split_by needs frames_number"),
    ]:
        with pytest.raises(ValueError, match=words):
            ewds.to_frames(SENSOR, **kw)


# --------------------------------------------------------------------------- DataLoader workers, three storages


def test_two_workers_local(shard_set: Path) -> None:
    frame = FRAME_SETTINGS[1]
    _check_against_reference(shard_set, _two_worker_loader(ewds.urls(shard_set, "train"), frame), frame)


@pytest.fixture(scope="module")
def http_root(shard_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RangeHTTPServer(tmp_path_factory.mktemp("wds_http")) as server:
        shutil.copytree(shard_set, server.folder / "set")
        yield server.url("set")


def test_two_workers_http(http_root: str) -> None:
    urls = ewds.urls(http_root, "train")
    assert urls[0] == f"eventshard+{http_root}/train-000000.tar.zst"
    frame = FRAME_SETTINGS[0]
    _check_against_reference(http_root, _two_worker_loader(urls, frame), frame)


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with MotoS3("eventshard-wds") as server:
        yield server
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def test_two_workers_s3(s3: MotoS3, shard_set: Path) -> None:
    root = s3.upload_folder(shard_set, "set")
    urls = ewds.urls(root, "train", storage_options=s3.storage_options)
    assert urls[0] == f"eventshard+{root}/train-000000.tar.zst"
    frame = FRAME_SETTINGS[2]
    got = _two_worker_loader(urls, frame)
    events = {k: (ev, label) for ev, label, k in _reference(shard_set)}
    assert sorted(item[3] for item in got) == sorted(events)
    ref = EventShardDataset(root, "train", shuffle=False, return_key=True, storage_options=s3.storage_options,
                            data_type="frame", **frame)
    frames = {k: x for x, _label, k in ref}
    for ev, x, label, key in got:
        _same_events(ev, events[key][0], key)
        assert label == events[key][1] and np.array_equal(_np(x), frames[key]), key


# --------------------------------------------------------------------------- webdataset's other stages


def test_split_by_node(shard_set: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    urls = ewds.urls(shard_set, "train")
    ref = [key for *_, key in _reference(shard_set)]  # before RANK/WORLD_SIZE: the whole split
    seen = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        pipeline = wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node).map(ewds.decode_sample)
        seen.append([key for _, _, key in pipeline])
    # shard-granular: rank 0 reads shards 0 and 2 (6 + 5 samples), rank 1 shard 1 (3 samples)
    assert seen[0] == ref[:6] + ref[9:] and seen[1] == ref[6:9]


def test_shuffle_batched_webloader_with_epoch(shard_set: Path) -> None:
    urls = ewds.urls(shard_set, "train")
    frame = FRAME_SETTINGS[2]
    pipeline = (
        wds.WebDataset(urls, shardshuffle=3, seed=5)
        .map(ewds.decode_sample)
        .map(ewds.to_frames(urls.sensor_size, **frame))
        .shuffle(8, seed=1)
        .batched(4, collation_fn=pad_sequence_collate)
    )
    loader = wds.WebLoader(pipeline, batch_size=None, num_workers=2).with_epoch(5)
    ref = {k: (x, label) for x, label, k in _reference(shard_set, **frame)}
    batches = list(loader)
    assert len(batches) == 5  # with_epoch: exactly 5 batches, the stream repeated as needed
    keys = []
    for x, labels, lengths, bkeys in batches:
        assert x.dtype == torch.float32 and x.shape[0] == len(bkeys) == len(labels) == len(lengths)
        assert int(lengths.max()) == x.shape[1]
        for i, key in enumerate(bkeys):
            want, label = ref[key]
            n = int(lengths[i])
            assert n == want.shape[0] and int(labels[i]) == label, key
            assert torch.equal(x[i, :n], torch.from_numpy(want)) and not x[i, n:].any(), key
        keys += bkeys
    ordered = [k for k in ref]
    assert set(keys) <= set(ordered) and keys[: len(ordered)] != ordered  # mixed, not the stored order


# --------------------------------------------------------------------------- keys with dots, long keys, damage


def _write_keys(out: Path, keys: list[str]) -> dict[str, int]:
    """A one-split set (two shards) whose samples carry ``keys``; returns key → event count."""
    rng = np.random.default_rng(3)
    cctx = new_compressor()
    counts = {}
    with ShardSetOutput(out) as output:
        writer = output.writer("train", shard_size=1 << 40)
        for i, key in enumerate(keys):
            writer.shard_size = 1 if i == len(keys) // 2 else 1 << 40
            n = int(rng.integers(1, 50))
            t = np.sort(rng.integers(0, 10_000, n))
            x, y, p = rng.integers(0, 8, n), rng.integers(0, 8, n), rng.integers(0, 2, n)
            writer.add(encode_sample(key, t, x, y, p, {"label": i % 2, "class": "ab"[i % 2]}, (8, 8), cctx), n)
            counts[key] = n
        splits = {"train": writer.close()}
        output.commit({"format": FORMAT_NAME, "version": FORMAT_VERSION, "dataset": "keys", "sensor_size": [8, 8],
                       "classes": ["a", "b"], "time_unit": TIME_UNIT, "splits": splits, "source": {"files": []}})
    return counts


def test_keys_with_dots_and_long_keys(tmp_path: Path) -> None:
    """Dots in a key's last part would make webdataset cut the key there and merge neighbours: the handler
    keeps them apart; names over 100 bytes (PAX headers) pass too."""
    long_key = "c/" + "long.name_" * 15
    keys = ["c/rec", "c/rec.v1", "c/rec.v2", "c/.hidden", "d.x/rec", "d.x/rec.v1_0", long_key, "c/rec.v2.tar"]
    counts = _write_keys(tmp_path, keys)
    got = list(wds.WebDataset(ewds.urls(tmp_path, "train"), shardshuffle=False).map(ewds.decode_sample))
    ref = _reference(tmp_path)
    assert [k for *_, k in got] == [k for *_, k in ref] == keys
    for (ev, label, key), (ev2, label2, _) in zip(got, ref, strict=True):
        _same_events(ev, ev2, key)
        assert label == label2 and ev["t"].size == counts[key]
    raw = list(wds.WebDataset(ewds.urls(tmp_path, "train"), shardshuffle=False))
    assert [s["__key__"] for s in raw][:4] == ["c/rec", "c/rec,v1", "c/rec,v2", "c/,hidden"]


def test_a_damaged_frame_names_shard_sample_and_offset(shard_set: Path, tmp_path: Path) -> None:

    shutil.copytree(shard_set, tmp_path / "set")
    index = read_index_json(tmp_path / "set")
    shard = index["splits"]["train"]["shards"][1]
    path = tmp_path / "set" / shard["file"]
    data = bytearray(path.read_bytes())
    k = 2
    data[(shard["offsets"][k] + shard["offsets"][k + 1]) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    urls = ewds.urls(tmp_path / "set", "train")
    url = urls[1].split("+", 1)[1]
    with pytest.raises(FormatError, match=f"{url}: sample {k} at byte {shard['offsets'][k]}: "):
        list(wds.WebDataset(urls, shardshuffle=False).map(ewds.decode_sample))


def test_pipe_urls_without_the_handler(tmp_path: Path) -> None:
    """``pipe:zstd -dc < shard`` (no handler): plain keys and a lone dotted key come out right; neighbours that
    webdataset's key rule merges are refused by ``decode_sample`` with a message saying what to do."""
    if shutil.which("zstd") is None:
        pytest.skip("no zstd binary")
    keys = ["c/a", "c/b.v1", "c/x.v1", "c/x.v2"]  # the last two share webdataset's cut prefix "c/x"
    _write_keys(tmp_path, keys)
    pipes = [f"pipe:zstd -dcq < {u.split('://', 1)[1]}" for u in ewds.urls(tmp_path, "train")]
    samples = list(wds.WebDataset(pipes, shardshuffle=False))
    assert [ewds.decode_sample(s)[2] for s in samples[:2]] == keys[:2]
    assert samples[2]["__key__"] == "c/x" and len([k for k in samples[2] if not k.startswith("__")]) == 4
    with pytest.raises(FormatError, match=r"sample 'c/x': expected the members 'events.msgpack' and 'label.msgpack'"):
        ewds.decode_sample(samples[2])
