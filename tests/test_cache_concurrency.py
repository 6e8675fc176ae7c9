"""The cache folder under real concurrency: 8 processes x 2 threads sharing one bounded cache, and a failing
cache disk, which is an error naming the cache (never a skipped shard)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from loader.errors import CacheError, StorageError
from loader.shards import open_shard_set

SHARDS = (10,) * 6
PROCESSES, THREADS, READS = 8, 2, 60
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def six_shards(tmp_path_factory, shard_set_writer) -> Path:
    path = tmp_path_factory.mktemp("six_shards")
    shard_set_writer(path, seed=6, splits={"train": SHARDS})
    return path


def _frames_from_files(path: Path) -> list[bytes]:
    """Every sample's frame cut from the shard files by the index's offsets (without the loader)."""
    index = open_shard_set(path).index
    out = []
    for shard in index["splits"]["train"]["shards"]:
        data = (path / shard["file"]).read_bytes()
        out += [data[a:b] for a, b in zip(shard["offsets"], shard["offsets"][1:], strict=False)]
    return out


def _reader(args: tuple[str, str, int, int, list[bytes]]) -> list[str]:
    """One process: THREADS threads, each reading READS // THREADS samples through the shared cache."""
    root, cache, cache_bytes, seed, want = args
    ss = open_shard_set(root, cache_dir=cache, cache_bytes=cache_bytes)
    problems: list[str] = []

    def work(t: int) -> None:
        n = len(want)
        for r in range(READS // THREADS):
            i = (seed * 7919 + t * 104729 + r * 31) % n
            try:
                got = ss.read_sample("train", i)
            except Exception as exc:  # noqa: BLE001 - every error is a finding
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            if got != want[i]:
                problems.append(f"sample {i}: other bytes")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ss.cache.evict()
    return problems


def test_processes_and_threads_share_a_bounded_cache(six_shards, tmp_path):
    want = _frames_from_files(six_shards)
    shard_bytes = [s["bytes"] for s in open_shard_set(six_shards).index["splits"]["train"]["shards"]]
    bound = 2 * max(shard_bytes)  # about two shards: constant eviction
    cache = tmp_path / "cache"
    jobs = [(str(six_shards), str(cache), bound, seed, want) for seed in range(PROCESSES)]
    with multiprocessing.get_context("fork").Pool(PROCESSES) as pool:
        problems = [p for found in pool.map(_reader, jobs) for p in found]
    assert problems == []
    cached = [p for p in cache.iterdir() if p.name.endswith(".shard")]
    assert sum(p.stat().st_size for p in cached) <= bound
    assert not [p for p in cache.iterdir() if p.name.endswith(".partial")]


def test_cache_folder_that_cannot_be_made_is_a_cache_error(six_shards, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_bytes(b"")
    with pytest.raises(CacheError, match=f"cache {blocker}/cache"):
        open_shard_set(six_shards, cache_dir=blocker / "cache")


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_full_cache_disk_is_an_error_naming_the_cache(six_shards, tmp_path, on_error):
    """RLIMIT_FSIZE makes every write past 1 kB fail (EFBIG), as a full disk would: the iteration stops
    with CacheError naming the cache folder, also with on_error="skip"."""
    cache = tmp_path / "cache"
    code = textwrap.dedent(f"""
        import resource, signal, sys
        from loader import EventShardDataset
        from loader.errors import CacheError
        ds = EventShardDataset({str(six_shards)!r}, cache_dir={str(cache)!r}, on_error={on_error!r}, shuffle=False)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
        try:
            n = sum(1 for _ in ds)
        except CacheError as exc:
            print("CacheError:", exc)
            sys.exit(3)
        print("read", n, ds.stats())
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"cache {cache}" in res.stdout and "File too large" in res.stdout
    assert issubclass(CacheError, StorageError)
