"""Shard sets on remote storage, end to end with real servers on 127.0.0.1 (no mocks).

moto's S3 server (``tests/servers.py``) and a Range-capable ``http.server``: ``shardgen convert`` straight
to ``s3://``, ``shardgen info/verify`` there, streaming from ``s3://`` and ``http://`` compared sample by
sample with the local conversion, DataLoader workers, the S3 server stopped and restarted mid-epoch,
HTTP 503s, missing/damaged shards (``on_error``), the index written last, and the local shard cache.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loader import EventShardDataset
from loader.cache import ShardCache
from loader.format import INDEX_NAME, FormatError
from loader.shards import ReadStats, ShardSet, StorageError, call_with_retries, is_transient, open_shard_set
from shardgen.cli import main
from shardgen.output import ShardSetOutput
from tests.conftest import read_index_json
from tests.gen_dvsgesture import write_gesture_download
from tests.servers import MotoS3, RangeHTTPServer

SHARD_SIZE = "6k"  # several shards per split, several samples per shard
_DS_PARAMS = inspect.signature(EventShardDataset).parameters
_DATASET_HAS_ON_ERROR = "on_error" in _DS_PARAMS
_DATASET_HAS_CACHE = "cache_dir" in _DS_PARAMS


# --------------------------------------------------------------------------- fixtures


def _aws_env(mp: pytest.MonkeyPatch, s3: MotoS3, tmp: Path) -> None:
    """Point botocore at the moto server only: its endpoint and keys, no profile or config file."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        mp.delenv(name, raising=False)
    mp.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
    for name, value in s3.env.items():
        mp.setenv(name, value)


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    """moto's S3 server on 127.0.0.1 with the bucket ``eventshard-test`` (one per module)."""
    with MotoS3("eventshard-test") as server:
        yield server
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(autouse=True)
def aws_env(s3: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test sees the moto server through the standard ``AWS_*`` variables; it is running afterwards."""
    _aws_env(monkeypatch, s3, tmp_path)
    yield
    if not s3.running:
        s3.start()


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangeHTTPServer]:
    """A Range-capable HTTP server on 127.0.0.1 serving a fresh folder."""
    with RangeHTTPServer(tmp_path_factory.mktemp("http")) as server:
        yield server


def _convert_argv(raw: Path, out: str, *extra: str) -> list[str]:
    return [
        "convert", "dvs128-gesture", "--raw", str(raw), "--out", out, "--no-md5", "--quiet",
        "--workers", "1", "--shard-size", SHARD_SIZE, *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def gesture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated DVS128 Gesture download (tar.gz as distributed) and its conversion to a local folder."""
    root = tmp_path_factory.mktemp("gesture")
    write_gesture_download(root / "raw", n_train=3, n_test=1, events_per_sample=300, seed=5)
    assert main(_convert_argv(root / "raw", str(root / "local"))) == 0
    return root / "raw", root / "local"


@pytest.fixture(scope="module")
def s3_set(s3: MotoS3, gesture: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same download converted by the CLI straight to ``s3://eventshard-test/gesture`` (endpoint from env)."""
    raw, _ = gesture
    url = s3.url("gesture")
    with pytest.MonkeyPatch.context() as mp:
        _aws_env(mp, s3, tmp_path_factory.mktemp("aws"))
        assert main(_convert_argv(raw, url)) == 0
    return url


@pytest.fixture(scope="module")
def http_set(http: RangeHTTPServer, gesture: tuple[Path, Path]) -> str:
    """The local conversion copied into the HTTP server's folder; its URL."""
    shutil.copytree(gesture[1], http.folder / "gesture")
    return http.url("gesture")


# --------------------------------------------------------------------------- helpers


def _all_shards(ss: ShardSet) -> list[dict[str, Any]]:
    return [shard for split in sorted(ss.index["splits"]) for shard in ss.shards(split)]


def _frames(ss: ShardSet, **kw: Any) -> list[bytes]:
    """Every sample's compressed frame, split by split, shard by shard."""
    return [bytes(f) for shard in _all_shards(ss) for f in ss.iter_frames(shard, 0, shard["samples"], **kw)]


def _samples(url: str, split: str, **kw: Any) -> list[tuple[str, int, dict[str, np.ndarray]]]:
    ds = EventShardDataset(url, split=split, data_type="event", return_key=True, shuffle=False, **kw)
    return [(key, int(label), ev) for ev, label, key in ds]


def _assert_same_samples(got: list, want: list) -> None:
    assert [k for k, _, _ in got] == [k for k, _, _ in want]
    for (key, label, ev), (_, label0, ev0) in zip(got, want, strict=True):
        assert label == label0, key
        for c in "txyp":
            np.testing.assert_array_equal(np.asarray(ev[c]), ev0[c], err_msg=f"{key} {c}")


def _stop_then_restart(s3: MotoS3, after_s: float) -> threading.Thread:
    """Stop the server now and start it again on the same port ``after_s`` seconds later (in a thread)."""
    s3.stop()

    def restart() -> None:
        time.sleep(after_s)
        s3.start()

    t = threading.Thread(target=restart, daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------- conversion, info, verify


def test_convert_straight_to_s3(s3_set: str, s3: MotoS3, gesture: tuple[Path, Path], capsys) -> None:
    _, local = gesture
    fs = s3.filesystem()
    remote = {Path(p).name: fs.cat_file(p) for p in fs.find(s3_set)}
    here = {p.name: p.read_bytes() for p in local.iterdir()}
    assert len(here) > 4 and remote.keys() == here.keys()  # no staging leftovers uploaded
    assert remote == here  # same input and settings: byte-identical shards and index
    capsys.readouterr()
    assert main(["info", s3_set]) == 0
    out = capsys.readouterr().out
    index = json.loads(here[INDEX_NAME])
    train = next(ln for ln in out.splitlines() if ln.startswith("train")).split()
    assert "dvs128-gesture" in out and train[1] == str(index["splits"]["train"]["samples"])
    assert main(["verify", s3_set]) == 0
    n = sum(info["samples"] for info in index["splits"].values())
    assert capsys.readouterr().out.startswith(f"OK: {n} samples")


def test_failed_conversion_leaves_the_earlier_set(s3: MotoS3, gesture: tuple[Path, Path], tmp_path: Path,
                                                   capsys) -> None:
    """A conversion that fails midway publishes nothing and leaves the earlier set at that URL as it was."""
    _, local = gesture
    url = s3.upload_folder(local, "redo")
    fs = s3.filesystem()
    before = {p: fs.cat_file(p) for p in fs.find(url)}
    raw = tmp_path / "raw"
    gen = write_gesture_download(raw, n_train=2, n_test=1, events_per_sample=200, seed=7, extracted="only")
    csv = raw / "DvsGesture" / f"{gen.train_stems[1]}_labels.csv"
    csv.write_bytes(csv.read_bytes().replace(b"\n1,", b"\n99,", 1))
    capsys.readouterr()
    assert main(_convert_argv(raw, url)) != 0
    err = capsys.readouterr().err
    assert csv.name in err and "error" in err
    fs.invalidate_cache()
    assert {p: fs.cat_file(p) for p in fs.find(url)} == before  # same files, same bytes
    assert main(["verify", url]) == 0


def test_upload_failing_midway_writes_no_index(s3: MotoS3, gesture: tuple[Path, Path]) -> None:
    """Shards go up first, the index only once all are there: a failed upload leaves no index."""
    _, local = gesture
    index = read_index_json(local)
    url = s3.url("half-uploaded")
    names = [s["file"] for info in index["splits"].values() for s in info["shards"]]
    with ShardSetOutput(url) as output:
        for name in names[1:]:  # the first shard is missing from the staging folder: its upload fails
            shutil.copy(local / name, output.folder / name)
        with pytest.raises(FileNotFoundError):
            output.commit(index)
    fs = s3.filesystem()
    uploaded = sorted(Path(p).name for p in fs.find(url))
    assert uploaded and INDEX_NAME not in uploaded and set(uploaded) <= set(names[1:])


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("split", ["train", "test"])
def test_stream_from_s3_and_http_equals_local(
    s3_set: str, http_set: str, gesture: tuple[Path, Path], split: str
) -> None:
    want = _samples(str(gesture[1]), split)
    assert len(want) > 5
    _assert_same_samples(_samples(s3_set, split), want)
    _assert_same_samples(_samples(http_set, split), want)


def test_stream_from_s3_with_storage_options(s3: MotoS3, s3_set: str, gesture: tuple[Path, Path], monkeypatch) -> None:
    """Endpoint and keys given as ``storage_options`` instead of the environment."""
    for name in s3.env:
        monkeypatch.delenv(name)
    ss = open_shard_set(s3_set, s3.storage_options)
    assert _frames(ss) == _frames(open_shard_set(gesture[1]))
    # every sample frame read once, the end-of-archive frames not at all
    assert ss.stats.bytes_read == sum(s["offsets"][-1] for s in _all_shards(ss))


def test_dataloader_two_workers_from_s3(s3_set: str, gesture: tuple[Path, Path]) -> None:
    from torch.utils.data import DataLoader

    want = _samples(str(gesture[1]), "train")
    ds = EventShardDataset(s3_set, split="train", data_type="event", return_key=True, shuffle=False)
    got = [(key, int(label), ev) for ev, label, key in DataLoader(ds, batch_size=None, num_workers=2)]
    assert len(got) == len(want)
    _assert_same_samples(sorted(got, key=lambda s: s[0]), sorted(want, key=lambda s: s[0]))


# --------------------------------------------------------------------------- faults


def test_s3_server_restart_mid_epoch(s3: MotoS3, gesture: tuple[Path, Path]) -> None:
    """The server goes away after some samples and comes back on the same port about 1 s later."""
    _, local = gesture
    url = s3.upload_folder(local, "restart")
    want = _frames(open_shard_set(local))
    ss = open_shard_set(url)  # default retries=5, backoff=0.2: waits up to 6.2 s in all
    got: list[bytes] = []
    restart = None
    for shard in _all_shards(ss):
        for frame in ss.iter_frames(shard, 0, shard["samples"]):
            got.append(bytes(frame))
            if len(got) == 10:
                restart = _stop_then_restart(s3, after_s=1.0)
    assert restart is not None
    restart.join(timeout=30)
    assert got == want
    assert ss.stats.retries > 0 and ss.stats.skipped_shards == [] and ss.stats.skipped_samples == 0


@pytest.mark.skipif(not _DATASET_HAS_ON_ERROR, reason="EventShardDataset(on_error=...) not there yet")
def test_s3_server_restart_mid_epoch_dataset(s3: MotoS3, gesture: tuple[Path, Path]) -> None:
    _, local = gesture
    url = s3.upload_folder(local, "restart-ds")
    want = _samples(str(local), "train")
    ds = EventShardDataset(url, split="train", data_type="event", return_key=True, shuffle=False, on_error="raise")
    got = []
    restart = None
    for ev, label, key in ds:
        got.append((key, int(label), ev))
        if len(got) == 8:
            restart = _stop_then_restart(s3, after_s=1.0)
    assert restart is not None
    restart.join(timeout=30)
    _assert_same_samples(got, want)
    if hasattr(ds, "stats"):
        stats = ds.stats()
        assert stats["retries"] > 0 and stats["skipped_samples"] == 0


def test_server_down_too_long_names_url_and_range(http: RangeHTTPServer, http_set: str) -> None:
    # A fresh HTTP client (no connections pooled by earlier tests), so the counts below are this test's alone.
    ss = open_shard_set(http_set, storage_options={"skip_instance_cache": True}, retries=2, backoff=0.01)
    shard = ss.shards("train")[1]
    ss.check_size(shard)
    url, hi = ss.shard_url(shard), shard["offsets"][shard["samples"]]
    http.fail_next(3)  # the first try and both retries get 503
    before = ss.stats.retries
    with pytest.raises(StorageError, match=re.escape(f"{url} bytes [0, {hi})") + ".*3 attempts.*503"):
        _frames_of(ss, shard)
    assert ss.stats.retries - before == 2
    http.fail_next(3)
    stats = ReadStats()
    with pytest.warns(UserWarning, match=re.escape(f"eventshard: skipped {url}: ")):
        assert _frames_of(ss, shard, on_error="skip", stats=stats) == []
    assert stats.skipped_shards == [url] and stats.skipped_samples == shard["samples"] and stats.retries == 2
    http.fail_next(2)  # two failures are within the retries: the read succeeds
    stats = ReadStats()
    assert len(_frames_of(ss, shard, stats=stats)) == shard["samples"] and stats.retries == 2


def _frames_of(ss: ShardSet, shard: dict[str, Any], **kw: Any) -> list[bytes]:
    return [bytes(f) for f in ss.iter_frames(shard, 0, shard["samples"], **kw)]


def test_deleted_shard(s3: MotoS3, gesture: tuple[Path, Path]) -> None:
    _, local = gesture
    url = s3.upload_folder(local, "deleted")
    ss = open_shard_set(url)
    victim = ss.shards("train")[1]
    s3.filesystem().rm_file(f"{url}/{victim['file']}")
    victim_url = f"{url}/{victim['file']}"
    before = ss.stats.retries
    with pytest.raises(FileNotFoundError, match=re.escape(victim_url)):
        _frames(ss)
    assert ss.stats.retries == before  # a missing file is not retried
    stats = ReadStats()
    with pytest.warns(UserWarning, match=re.escape(f"eventshard: skipped {victim_url}: ")):
        got = _frames(ss, on_error="skip", stats=stats)
    local_ss = open_shard_set(local)
    want = [bytes(f) for s in _all_shards(local_ss) if s["file"] != victim["file"] for f in _frames_of(local_ss, s)]
    assert got == want
    assert stats.skipped_shards == [victim_url] and stats.skipped_samples == victim["samples"]


@pytest.mark.skipif(not _DATASET_HAS_ON_ERROR, reason="EventShardDataset(on_error=...) not there yet")
def test_deleted_shard_dataset(s3: MotoS3, gesture: tuple[Path, Path]) -> None:
    _, local = gesture
    url = s3.upload_folder(local, "deleted-ds")
    index = read_index_json(local)
    victim = index["splits"]["train"]["shards"][0]
    victim_url = f"{url}/{victim['file']}"
    s3.filesystem().rm_file(victim_url)
    kw = {"split": "train", "data_type": "event", "return_key": True, "shuffle": False}
    with pytest.raises(FileNotFoundError, match=re.escape(victim_url)):
        list(EventShardDataset(url, on_error="raise", **kw))
    ds = EventShardDataset(url, on_error="skip", **kw)
    with pytest.warns(UserWarning, match=re.escape(f"eventshard: skipped {victim_url}")):
        got = [key for _, _, key in ds]
    want = [key for key, _, _ in _samples(str(local), "train")]
    assert got == want[victim["samples"] :]
    if hasattr(ds, "stats"):
        assert ds.stats()["skipped_shards"] == [victim_url]
        assert ds.stats()["skipped_samples"] == victim["samples"]


def test_shard_size_differs_from_index(http: RangeHTTPServer, gesture: tuple[Path, Path]) -> None:
    folder = http.folder / "grown"
    shutil.copytree(gesture[1], folder)
    ss = open_shard_set(http.url("grown"))
    victim = ss.shards("test")[0]
    with open(folder / victim["file"], "ab") as f:
        f.write(b"\0" * 10)
    url = ss.shard_url(victim)
    with pytest.raises(FormatError, match=re.escape(f"{url}: {victim['bytes'] + 10} bytes, the index says")):
        _frames(ss)
    with pytest.warns(UserWarning, match=re.escape(f"eventshard: skipped {url}")):
        _frames(ss, on_error="skip")
    assert ss.stats.skipped_shards == [url]


# --------------------------------------------------------------------------- retry rules


def test_transient_errors() -> None:
    import aiohttp
    import botocore.exceptions

    assert is_transient(ConnectionRefusedError(111, "refused"))
    assert is_transient(TimeoutError())
    assert is_transient(OSError(5, "EIO"))
    assert is_transient(botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(aiohttp.ServerDisconnectedError())
    info = aiohttp.RequestInfo(aiohttp.client.URL("http://127.0.0.1:1/x"), "GET", {}, aiohttp.client.URL("/x"))
    assert is_transient(aiohttp.ClientResponseError(info, (), status=503))
    assert is_transient(aiohttp.ClientResponseError(info, (), status=429))
    assert not is_transient(aiohttp.ClientResponseError(info, (), status=400))
    throttled = botocore.exceptions.ClientError(
        {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "GetObject"
    )
    assert is_transient(throttled)
    translated = OSError(22, "bad request")
    translated.__cause__ = botocore.exceptions.ClientError(
        {"Error": {"Code": "InvalidRange"}, "ResponseMetadata": {"HTTPStatusCode": 416}}, "GetObject"
    )
    assert not is_transient(translated)
    for exc in (FileNotFoundError("x"), PermissionError("x"), FormatError("x"), ValueError("x"), KeyError("x")):
        assert not is_transient(exc)

    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError(104, "reset")
        return "ok"

    retried: list[BaseException] = []
    assert call_with_retries(flaky, "x", retries=2, backoff=0, on_retry=retried.append) == "ok"
    assert len(calls) == 3 and len(retried) == 2
    calls.clear()
    with pytest.raises(StorageError, match=r"^s3://b/k bytes \[0, 9\): still failing after 2 attempts"):
        call_with_retries(flaky, "s3://b/k bytes [0, 9)", retries=1, backoff=0)
    with pytest.raises(FileNotFoundError):
        call_with_retries(lambda: open("/nonexistent/eventshard"), "x", retries=3, backoff=10)


# --------------------------------------------------------------------------- cache


def _cache_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def test_cache_serves_second_epoch_with_server_stopped(s3: MotoS3, s3_set: str, tmp_path: Path) -> None:
    ss = open_shard_set(s3_set, cache_dir=tmp_path / "cache")
    n = len(_all_shards(ss))
    first = _frames(ss)
    assert ss.stats.cache_misses == n and ss.stats.cache_hits == 0
    assert len(_cache_files(tmp_path / "cache")) == n
    assert ss.stats.bytes_read == sum(s["bytes"] for s in _all_shards(ss))  # whole shards, once
    s3.stop()
    try:
        assert _frames(ss) == first
        assert ss.stats.cache_hits == n and ss.stats.retries == 0
    finally:
        s3.start()


@pytest.mark.skipif(not _DATASET_HAS_CACHE, reason="EventShardDataset(cache_dir=...) not there yet")
def test_cache_through_dataset(s3: MotoS3, s3_set: str, gesture: tuple[Path, Path], tmp_path: Path) -> None:
    want = _samples(str(gesture[1]), "test")
    ds = EventShardDataset(
        s3_set, split="test", data_type="event", return_key=True, shuffle=False, cache_dir=tmp_path / "c"
    )
    first = [(key, int(label), ev) for ev, label, key in ds]
    s3.stop()
    try:
        second = [(key, int(label), ev) for ev, label, key in ds]
    finally:
        s3.start()
    _assert_same_samples(first, want)
    _assert_same_samples(second, want)


def test_cache_bound_evicts_least_recently_used(http_set: str, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    probe = open_shard_set(http_set)
    train = probe.shards("train")
    assert len(train) >= 3
    bound = train[0]["bytes"] + train[1]["bytes"] + min(train[2]["bytes"], train[0]["bytes"]) - 1
    ss = open_shard_set(http_set, cache_dir=folder, cache_bytes=bound)
    cache = ss.cache
    assert cache is not None

    def read(k: int) -> None:
        _frames_of(ss, train[k])
        assert cache.size() <= bound or len(_cache_files(folder)) == 1

    for k in (0, 1, 0):  # 0 is now the most recently used
        read(k)
    read(2)  # over the bound: 1 goes, not 0
    names = {p.name for p in _cache_files(folder)}
    path = {k: cache.path_for(ss.fs.unstrip_protocol(ss.path(train[k])), train[k]["sha256"]).name for k in range(3)}
    assert names == {path[0], path[2]}
    assert (ss.stats.cache_misses, ss.stats.cache_hits) == (3, 1)
    read(1)
    assert ss.stats.cache_misses == 4


def test_cache_lru_keeps_the_shard_being_read(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path, max_bytes=250)
    data = {name: bytes([i]) * 100 for i, name in enumerate("abc")}
    digest = {name: hashlib.sha256(d).hexdigest() for name, d in data.items()}

    def get(name: str, size: int = 100) -> bool:
        fh, hit = cache.open(f"s3://b/{name}", size, digest[name], lambda w: w.write(data[name]))
        with fh:
            assert fh.read() == data[name]
        return hit

    assert [get("a"), get("b"), get("a"), get("c")] == [False, False, True, False]
    assert {p.name for p in _cache_files(tmp_path)} == {cache.path_for(f"s3://b/{n}", digest[n]).name for n in "ac"}
    small = ShardCache(tmp_path / "small", max_bytes=10)  # one shard bigger than the bound is kept while read
    fh, hit = small.open("s3://b/a", 100, digest["a"], lambda w: w.write(data["a"]))
    fh.close()
    assert not hit and len(_cache_files(tmp_path / "small")) == 1
    # two sets with the same file names do not share entries
    assert cache.path_for("s3://one/train-000000.tar.zst", "ab") != cache.path_for(
        "s3://two/train-000000.tar.zst", "ab"
    )


def test_cache_rejects_a_shard_that_differs_from_the_index(http: RangeHTTPServer, gesture: tuple[Path, Path], tmp_path):
    folder = http.folder / "flipped"
    shutil.copytree(gesture[1], folder)
    ss = open_shard_set(http.url("flipped"), cache_dir=tmp_path / "cache")
    victim = ss.shards("train")[0]
    raw = bytearray((folder / victim["file"]).read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other bytes
    (folder / victim["file"]).write_bytes(bytes(raw))
    url = ss.shard_url(victim)
    with pytest.raises(FormatError, match=re.escape(url) + ".*sha256"):
        _frames_of(ss, victim)
    assert _cache_files(tmp_path / "cache") == []
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".partial")]
    with pytest.warns(UserWarning, match=re.escape(f"eventshard: skipped {url}")):
        assert _frames_of(ss, victim, on_error="skip") == []
    assert _frames_of(ss, ss.shards("train")[1])  # the others are fine


def test_open_shard_set_arguments(http_set: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache_bytes needs cache_dir"):
        open_shard_set(http_set, cache_bytes=10)
    with pytest.raises(ValueError, match="retries"):
        open_shard_set(http_set, retries=-1)
    ss = open_shard_set(f"{http_set}/{INDEX_NAME}")
    with pytest.raises(ValueError, match="on_error"):
        next(ss.iter_frames(ss.shards("train")[0], 0, 1, on_error="ignore"))


@pytest.mark.parametrize("prefetch", [True, False])
def test_small_blocks_with_read_ahead(
    http_set: str, gesture: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, prefetch: bool
) -> None:
    """Runs cut into many blocks (read one ahead in a thread, or not) give the same frames in order."""
    import loader.shards

    want = _frames(open_shard_set(gesture[1]))
    monkeypatch.setattr(loader.shards, "READ_BLOCK", 1500)
    ss = open_shard_set(http_set, prefetch=prefetch)
    assert max(len(loader.shards._blocks(s["offsets"], 0, s["samples"])) for s in _all_shards(ss)) > 2
    assert _frames(ss) == want
    assert ss.stats.bytes_read == sum(s["offsets"][-1] for s in _all_shards(ss))
    # a run that starts and ends inside a shard, abandoned after its first frame
    shard = ss.shards("train")[0]
    gen = ss.iter_frames(shard, 1, shard["samples"] - 1)
    assert bytes(next(gen)) == _frames_of(open_shard_set(gesture[1]), shard)[1]
    gen.close()
