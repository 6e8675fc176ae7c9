"""EventShardDataset: stream a shard set into a torch DataLoader, integrating frames in the workers.

One sample's way: the worker's share of the split (:func:`plan`) → byte-range read of its zstd
frames (:mod:`loader.shards`) → decode (:mod:`loader.format`) → ``transform`` on the events →
frames (:mod:`loader.frames`) → ``(x, label)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import zstandard
from torch.utils.data import IterableDataset, get_worker_info

from loader import frames as _frames
from loader.allocator import keep_freed_memory
from loader.format import EVENT_COLUMNS, decode_sample
from loader.shards import ShardSet, open_shard_set

_DATA_TYPES = ("event", "frame")
_SPLIT_BY = ("number", "time")


def plan(
    shard_samples: list[int],
    consumer: int,
    consumers: int,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
) -> list[tuple[int, int, int]]:
    """The runs ``(shard, start, stop)`` of samples that consumer ``consumer`` of ``consumers`` reads.

    The split's samples are ordered shard by shard (shards permuted by ``(seed, epoch)`` when
    ``shuffle``) and cut into ``consumers`` contiguous pieces whose sizes differ by at most one,
    so every sample goes to exactly one consumer, also when there are more consumers than shards.
    """
    if not 0 <= consumer < consumers:
        raise ValueError(f"consumer {consumer} not in [0, {consumers})")
    order = np.arange(len(shard_samples))
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(len(shard_samples))
    counts = np.asarray(shard_samples, dtype=np.int64)[order]
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    lo, hi = total * consumer // consumers, total * (consumer + 1) // consumers
    runs = []
    for pos, shard in enumerate(order.tolist()):
        first = int(ends[pos] - counts[pos])
        a, b = max(lo, first), min(hi, int(ends[pos]))
        if a < b:
            runs.append((shard, a - first, b - first))
    return runs


class EventShardDataset(IterableDataset):
    """A split of a shard set as a streaming torch dataset, with SpikingJelly's frame settings.

    Parameters
    ----------
    root : str or path
        Shard-set folder or its ``index.json``: local path, ``file://``, ``http(s)://``, ``s3://``.
    split : str
        Split name in the index (``"train"``, ``"test"``, …).
    data_type : {"event", "frame"}
        ``"event"`` yields a dict of numpy arrays ``t`` (int64 µs), ``x``, ``y``, ``p``;
        ``"frame"`` yields float32 ``[T, 2, H, W]`` numpy arrays.
    frames_number, split_by : int, {"number", "time"}
        Fixed number of frames, split by event count or by time (SpikingJelly's semantics).
    duration : int
        Fixed frame duration in µs (variable ``T``); collate with ``pad_sequence_collate``.
    custom_integrate_function : callable
        ``f(events: dict, H, W) -> ndarray``, run in the worker process.
    transform : callable
        Applied to the events dict before integration (or to the events for ``"event"``).
    target_transform : callable
        Applied to the label index.
    shuffle, seed : bool, int
        Shard order plus a bounded sample buffer, seeded by ``(seed, epoch)``; see :meth:`set_epoch`.
    return_key : bool
        Yield ``(x, label, key)`` instead of ``(x, label)``.
    shuffle_buffer : int
        Samples held by each worker for shuffling.
    rank, world_size : int, optional
        Position among distributed processes; default from ``torch.distributed`` when initialised.
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint, …).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        data_type: str = "event",
        frames_number: int | None = None,
        split_by: str | None = None,
        duration: int | None = None,
        custom_integrate_function: Callable[[dict[str, np.ndarray], int, int], Any] | None = None,
        transform: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        return_key: bool = False,
        shuffle_buffer: int = 64,
        rank: int | None = None,
        world_size: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ):
        super().__init__()
        _check_arguments(data_type, frames_number, split_by, duration, custom_integrate_function)
        self.root = os.fspath(root)
        self._set: ShardSet = open_shard_set(self.root, storage_options)
        self._shards = self._set.shards(split)
        self.split = split
        self.data_type = data_type
        self.frames_number = frames_number
        self.split_by = split_by
        self.duration = duration
        self.custom_integrate_function = custom_integrate_function
        self.transform = transform
        self.target_transform = target_transform
        self.shuffle = shuffle
        self.seed = int(seed)
        self.return_key = return_key
        self.shuffle_buffer = max(1, int(shuffle_buffer))
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._dctx: zstandard.ZstdDecompressor | None = None
        index = self._set.index
        self.sensor_size: tuple[int, int] = (int(index["sensor_size"][0]), int(index["sensor_size"][1]))
        self.classes: list[str] = list(index["classes"])

    def __len__(self) -> int:
        """Samples in the split (all ranks together)."""
        return int(self._set.index["splits"][self.split]["samples"])

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffled order the next iteration uses (call before each epoch)."""
        self.epoch = int(epoch)

    def _consumer(self) -> tuple[int, int]:
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                rank, world = 0, 1
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * nworkers + wid, world * nworkers

    def _make_x(self, events: dict[str, np.ndarray]) -> Any:
        if self.transform is not None:
            events = self.transform(events)
        if self.data_type == "event":
            return events
        h, w = self.sensor_size
        if self.custom_integrate_function is not None:
            return self.custom_integrate_function(events, h, w)
        if self.duration is not None:
            return _frames.integrate_events_by_fixed_duration(events, self.duration, h, w)
        return _frames.integrate_events_by_fixed_frames_number(events, self.split_by, self.frames_number, h, w)

    def _columns(self) -> tuple[str, ...]:
        """Event columns the output needs: frames split by number never look at ``t``."""
        if self.data_type == "frame" and self.split_by == "number" and self.transform is None:
            return ("x", "y", "p")
        return EVENT_COLUMNS

    def _frames(self, runs: list[tuple[int, int, int]]) -> Iterator[bytes]:
        """The compressed frames of the planned runs, in order (read about 8 MiB at a time)."""
        for shard_no, start, stop in runs:
            for frame in self._set.iter_frames(self._shards[shard_no], start, stop):
                yield bytes(frame)  # a copy, so a buffered sample does not pin its 8 MiB read block

    def _shuffled(self, frames: Iterator[bytes], consumer: int) -> Iterator[bytes]:
        """Pass compressed frames through a bounded buffer seeded by ``(seed, epoch, consumer)``."""
        rng = np.random.default_rng([self.seed, self.epoch, consumer])
        buf: list[bytes] = []
        for frame in frames:
            if len(buf) < self.shuffle_buffer:
                buf.append(frame)
                continue
            j = int(rng.integers(len(buf)))
            buf[j], frame = frame, buf[j]
            yield frame
        rng.shuffle(buf)
        yield from buf

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if get_worker_info() is not None:  # a DataLoader worker: a process of ours, tune its malloc
            keep_freed_memory()
        consumer, consumers = self._consumer()
        counts = [s["samples"] for s in self._shards]
        runs = plan(counts, consumer, consumers, self.shuffle, self.seed, self.epoch)
        frames = self._frames(runs)
        if self.shuffle:  # the buffer holds compressed samples: its memory does not grow with T, H, W
            frames = self._shuffled(frames, consumer)
        for frame in frames:
            yield self.decode(frame)

    def decode(self, frame: bytes) -> tuple[Any, ...]:
        """Turn one compressed sample (its zstd frame) into the item this dataset yields.

        Decodes only the event columns the settings need, applies ``transform``, integrates frames,
        applies ``target_transform``; returns ``(x, label)`` or ``(x, label, key)``.
        """
        if self._dctx is None:
            self._dctx = zstandard.ZstdDecompressor()
        key, events, meta = decode_sample(frame, self._dctx, self._columns())
        label = meta["label"]
        if self.target_transform is not None:
            label = self.target_transform(label)
        x = self._make_x(events)
        return (x, label, key) if self.return_key else (x, label)


def _check_arguments(
    data_type: str,
    frames_number: int | None,
    split_by: str | None,
    duration: int | None,
    custom: Callable[..., Any] | None,
) -> None:
    """Raise ``ValueError`` saying what to pass when the frame arguments do not fit together."""
    if data_type not in _DATA_TYPES:
        raise ValueError(f"data_type must be 'event' or 'frame', got {data_type!r}")
    if split_by is not None and split_by not in _SPLIT_BY:
        raise ValueError(f"split_by must be 'number' or 'time', got {split_by!r}")
    if split_by is not None and frames_number is None:
        raise ValueError("split_by needs frames_number: pass frames_number=T (or drop split_by)")
    if frames_number is not None and duration is not None:
        raise ValueError("pass either frames_number (with split_by) or duration, not both")
    if custom is not None and (frames_number is not None or duration is not None):
        raise ValueError("custom_integrate_function replaces frames_number/duration: pass only one of them")
    if data_type == "event":
        if frames_number is not None or duration is not None or custom is not None:
            raise ValueError("frames_number, duration and custom_integrate_function need data_type='frame'")
        return
    if frames_number is not None:
        if split_by is None:
            raise ValueError("frames_number needs split_by='number' or split_by='time'")
        if int(frames_number) <= 0:
            raise ValueError(f"frames_number must be positive, got {frames_number}")
    elif duration is not None:
        if duration <= 0:
            raise ValueError(f"duration must be positive (µs), got {duration}")
    elif custom is None:
        raise ValueError(
            "data_type='frame' needs frames_number=T with split_by='number'|'time', duration=D (µs), "
            "or custom_integrate_function"
        )
