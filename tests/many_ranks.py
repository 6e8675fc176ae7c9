"""Many training ranks on one shard set: a large set of tiny samples, and rank processes that read it.

Shared by ``tests/test_s3_ranks.py`` (keys only, checked) and ``scripts/bench_s3_ranks.py`` (timed).

:func:`write_tiny_set` writes ``n`` one-event samples with the real writer (about 185 bytes each,
30 µs each to write). :func:`run_ranks` starts ``world`` rank processes, as ``torchrun`` would
(``RANK``, ``WORLD_SIZE`` in their environment), each reading its share through a DataLoader with
``workers`` worker processes; it returns each rank's keys, its time to the first batch and to the
end, and the read statistics of its workers. Rank processes fork from a ``forkserver`` that has
torch and the loader imported already (no rank pays the import, and no rank inherits the caller's
threads, such as a moto server's).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from loader.format import FORMAT_NAME, FORMAT_VERSION, TIME_UNIT, encode_sample, new_compressor

SENSOR = (32, 32)
CLASSES = [f"c{i}" for i in range(10)]
BATCH = 512


def tiny_key(i: int) -> str:
    """Key of sample ``i`` of :func:`write_tiny_set`."""
    return f"c{i % 10}/s{i:07d}"


def write_tiny_set(out: str | os.PathLike[str], n: int, shard_size: int = 1 << 20) -> dict[str, Any]:
    """Write a train split of ``n`` one-event samples (key :func:`tiny_key`, label ``i % 10``); return the index."""
    from shardgen.output import ShardSetOutput

    cctx = new_compressor(1)
    x = np.zeros(1, np.int64)
    p = np.ones(1, np.uint8)
    with ShardSetOutput(out) as output:
        writer = output.writer("train", shard_size)
        for i in range(n):
            t = np.array([i], np.int64)
            label = i % 10
            writer.add(encode_sample(tiny_key(i), t, x, x, p, {"label": label, "class": CLASSES[label]}, SENSOR,
                                     cctx), 1)
        index = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "dataset": "tiny", "sensor_size": list(SENSOR),
                 "classes": CLASSES, "time_unit": TIME_UNIT, "zstd_level": 1, "splits": {"train": writer.close()},
                 "source": {"files": [], "tool": "tests/many_ranks.py"}}
        output.commit(index)
    return index


def _keys_and_stats(batch: list[tuple]) -> tuple[list[str], int, dict[str, Any]]:
    """DataLoader collate (in the worker): the batch's keys, the worker's id and its read statistics so far."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    stats = info.dataset.stats() if info is not None else {}
    return [item[2] for item in batch], info.id if info is not None else 0, stats


def _rank_main(url: str, rank: int, world: int, workers: int, env: dict[str, str], storage_options: dict | None,
               seed: int) -> dict[str, Any]:
    os.environ.update(env, RANK=str(rank), WORLD_SIZE=str(world))
    from torch.utils.data import DataLoader

    from loader import EventShardDataset

    t0 = time.perf_counter()
    ds = EventShardDataset(url, split="train", data_type="event", return_key=True, shuffle=True, seed=seed,
                           storage_options=storage_options)
    dl = DataLoader(ds, batch_size=BATCH, num_workers=workers, collate_fn=_keys_and_stats)
    keys: list[str] = []
    first = None
    stats: dict[int, dict[str, Any]] = {}
    for batch_keys, worker, worker_stats in dl:
        if first is None:
            first = time.perf_counter() - t0
        keys.extend(batch_keys)
        stats[worker] = worker_stats
    total = time.perf_counter() - t0
    return {"rank": rank, "keys": keys, "len": len(ds), "first_batch_s": first, "seconds": total,
            "requests": sum(s.get("requests", 0) for s in stats.values()),
            "bytes_read": sum(s.get("bytes_read", 0) for s in stats.values())}


def run_ranks(url: str | Path, world: int, workers: int, env: dict[str, str] | None = None,
              storage_options: dict | None = None, seed: int = 3) -> list[dict[str, Any]]:
    """Read the train split at ``url`` with ``world`` rank processes of ``workers`` DataLoader workers each.

    Returns one dict per rank: ``keys`` (in the order read), ``len`` (``len(ds)``), ``first_batch_s``,
    ``seconds``, ``requests`` and ``bytes_read`` (summed over its workers).
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "loader", "tests.many_ranks"])
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank_entry, args=(results, str(url), r, world, workers, dict(env or {}),
                                                  storage_options, seed)) for r in range(world)]
    for proc in procs:
        proc.start()
    try:
        got = [results.get(timeout=600) for _ in procs]  # before join: a full pipe would block the rank
    finally:
        for proc in procs:
            proc.join(timeout=60)
    errors = [g for g in got if "error" in g]
    if errors:
        raise RuntimeError(f"rank {errors[0]['rank']} failed: {errors[0]['error']}")
    return sorted(got, key=lambda g: g["rank"])


def _rank_entry(results: Any, *args: Any) -> None:
    """A rank process (not a daemon: its DataLoader starts workers of its own)."""
    try:
        results.put(_rank_main(*args))
    except BaseException as exc:  # reported to the caller with the rank
        import traceback

        results.put({"rank": args[1], "error": f"{exc!r}\n{traceback.format_exc()}"})
