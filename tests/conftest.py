"""Shared fixtures: small synthetic shard sets written with the real writer and format module."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loader.format import FORMAT_NAME, FORMAT_VERSION, TIME_UNIT, encode_sample, new_compressor
from shardgen.output import ShardSetOutput

SENSOR_SIZE = (128, 128)
CLASSES = [f"class_{i:02d}" for i in range(11)]
TRAIN_SHARDS = (10, 7, 13)
TEST_SHARDS = (4, 5)
ZSTD_LEVEL = 3
_NO_ROLLOVER = 1 << 40


def _random_events(rng: np.random.Generator, n: int, sensor_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """``n`` events with non-decreasing ``t`` (repeats and big gaps), coordinates inside the sensor."""
    h, w = sensor_size
    scale = float(rng.choice([1.0, 50.0, 500.0, 2_000.0]))
    gaps = np.floor(rng.exponential(scale, size=n)).astype(np.int64)
    if n > 3:  # some equal time stamps and one large gap
        gaps[rng.integers(1, n, size=max(1, n // 10))] = 0
        gaps[rng.integers(1, n)] += int(rng.integers(100_000, 2_000_000))
    t0 = int(rng.integers(0, 10_000_000))
    return {
        "t": (t0 + np.cumsum(gaps)).astype(np.int64),
        "x": rng.integers(0, w, size=n).astype(np.int64),
        "y": rng.integers(0, h, size=n).astype(np.int64),
        "p": rng.integers(0, 2, size=n).astype(np.uint8),
    }


def _event_counts(rng: np.random.Generator, total: int) -> list[int]:
    """Varied event counts: one empty sample, a few tiny ones, the rest between 10 and 3000."""
    fixed = [0, 1, 2, 3, 19, 20, 21]
    counts = fixed + [int(c) for c in rng.integers(10, 3000, size=max(0, total - len(fixed)))]
    return [counts[i] for i in rng.permutation(len(counts))][:total]


def write_shard_set(
    out: str | os.PathLike[str],
    seed: int = 0,
    splits: dict[str, Sequence[int]] | None = None,
    sensor_size: tuple[int, int] = SENSOR_SIZE,
    classes: Sequence[str] = CLASSES,
    version: int = FORMAT_VERSION,
) -> dict[str, dict[str, Any]]:
    """Write a shard set with exactly the given samples per shard; return the ground truth.

    ``version`` 1 writes the first 2-D layout (``x``, ``y``, ``p`` columns) instead of the packed one.

    ``splits`` maps a split name to its samples per shard (default: train 10/7/13, test 4/5).
    The returned dict maps each sample key to ``{"events", "label", "meta", "split", "shard",
    "pos"}``; its insertion order is the index order (split by split, shard by shard).
    """
    splits = dict(splits or {"train": TRAIN_SHARDS, "test": TEST_SHARDS})
    rng = np.random.default_rng(seed)
    cctx = new_compressor(ZSTD_LEVEL)
    truth: dict[str, dict[str, Any]] = {}
    index_splits: dict[str, Any] = {}
    with ShardSetOutput(out) as output:
        for split, per_shard in splits.items():
            counts = _event_counts(rng, sum(per_shard))
            writer = output.writer(split, shard_size=_NO_ROLLOVER)
            k = 0
            for shard_no, n_samples in enumerate(per_shard):
                for pos in range(n_samples):
                    # A tiny shard_size before a shard's first sample makes the writer roll over there.
                    writer.shard_size = 1 if (pos == 0 and shard_no > 0) else _NO_ROLLOVER
                    n = counts[k]
                    label = int(rng.integers(0, len(classes)))
                    key = f"{label}/{split}_rec{k // 4:02d}_{k % 4}"
                    events = _random_events(rng, n, sensor_size)
                    meta = {
                        "label": label,
                        "class": classes[label],
                        "recording": f"{split}_rec{k // 4:02d}",
                        "start": int(events["t"][0]) if n else 0,
                        "end": int(events["t"][-1]) + 1 if n else 0,
                    }
                    frame = encode_sample(key, *(events[c] for c in "txyp"), meta, sensor_size, cctx,
                                          packed=version != 1)
                    writer.add(frame, n)
                    assert key not in truth
                    truth[key] = {
                        "events": events,
                        "label": label,
                        "meta": meta,
                        "split": split,
                        "shard": shard_no,
                        "pos": pos,
                    }
                    k += 1
            index_splits[split] = writer.close()
            got = [s["samples"] for s in index_splits[split]["shards"]]
            assert got == list(per_shard), f"fixture wrote shards of {got} samples, wanted {list(per_shard)}"
        output.commit(
            {
                "format": FORMAT_NAME,
                "version": version,
                "dataset": "synthetic-test",
                "sensor_size": list(sensor_size),
                "classes": list(classes),
                "time_unit": TIME_UNIT,
                "zstd_level": ZSTD_LEVEL,
                "splits": index_splits,
                "source": {"files": [], "tool": "tests/conftest.py"},
            }
        )
    return truth


def read_split(out: str | os.PathLike[str], split: str) -> dict[str, tuple[dict[str, np.ndarray], int]]:
    """key -> (events, label) of every sample of ``split``, in the dataset's order (SpikingJelly's), through the
    loader's map-style reads."""
    from loader import EventShardDataset

    ds = EventShardDataset(out, split=split, data_type="event", shuffle=False, return_key=True)
    items = (ds.read_canonical(i) for i in range(ds.split_samples))
    return {key: (ev, int(label)) for ev, label, key in items}


def in_dataset_order(stored: list[Any], split_info: dict[str, Any]) -> list[Any]:
    """Items of a split listed in stored (shard) order, put in the dataset's order by the index's
    ``permutation`` (stored position ``j`` holds the dataset's sample ``canonical[j]``)."""
    perm = split_info.get("permutation")
    if perm is None:
        return list(stored)
    out: list[Any] = [None] * len(stored)
    for j, c in enumerate(canonical_of(split_info)):
        out[c] = stored[j]
    return out


def canonical_of(split_info: dict[str, Any]) -> list[int]:
    """A split's stored ``permutation.canonical``, decoded as docs/FORMAT.md describes it (base64 of
    little-endian uint32), independently of ``loader.index``."""
    raw = base64.b64decode(split_info["permutation"]["canonical"])
    return [int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4)]


def read_index_json(root: str | os.PathLike[str]) -> dict[str, Any]:
    """``index.json`` as stored, but each shard's ``offsets`` as a list of ints: decoded here from the
    documented form (version 4: base64 of little-endian uint64; before: a list), not by the loader."""
    import json
    import struct

    index = json.loads((Path(root) / "index.json").read_bytes())
    for info in index["splits"].values():
        for shard in info["shards"]:
            if isinstance(shard["offsets"], str):
                raw = base64.b64decode(shard["offsets"])
                shard["offsets"] = list(struct.unpack(f"<{len(raw) // 8}Q", raw))
    return index


@pytest.fixture(scope="session")
def shard_set_writer() -> Callable[..., dict[str, dict[str, Any]]]:
    """The function that writes a synthetic shard set (see :func:`write_shard_set`)."""
    return write_shard_set


@pytest.fixture(scope="session")
def small_shard_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A 128x128, 11-class shard set: train in 3 shards (10, 7, 13 samples), test in 2 (4, 5).

    Returns ``(path, truth)``; ``truth`` maps key -> ``{"events", "label", "meta", "split",
    "shard", "pos"}`` in index order. Every split holds one sample with 0 events. Treat it as
    read-only (it is shared by the whole session).
    """
    path = tmp_path_factory.mktemp("small_shard_set")
    truth = write_shard_set(path, seed=1234)
    return path, truth
