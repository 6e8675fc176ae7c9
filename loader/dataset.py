"""EventShardDataset: stream a shard set into a torch DataLoader, integrating frames in the workers.

One sample's way: the consumer's share of the epoch and its order (:mod:`loader.order`) → the
frames' bytes (:mod:`loader.reading`, :mod:`loader.shards`) → decode (:mod:`loader.format`) →
``transform`` → frames (:mod:`loader.settings`, :mod:`loader.frames`) → ``(x, label)``. The
order, epochs, length per rank and resume are specified in ``docs/SEMANTICS.md`` (*Stream order*).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.context import get_spawning_popen
from typing import Any

import numpy as np
import torch
import zstandard
from torch.utils.data import IterableDataset, get_worker_info

from loader import gpu as _gpu
from loader import resume
from loader import sensor1d as _sensor1d
from loader.allocator import keep_freed_memory
from loader.errors import ConfigurationError, FormatError, ShardIntegrityError
from loader.format import decode_sample
from loader.order import BufferOrder, check_even, interleave, plan, rank_range
from loader.reading import Fetched, RunReader
from loader.settings import FrameSetting, events_to_structured
from loader.shards import READ_BLOCK, ReadStats, ShardSet, open_shard_set
from loader.transforms import base as _aug
from loader.transforms.seeding import sample_rngs

_ON_ERROR = ("raise", "skip")
SPAN_BYTES = 4 << 20
"""Default bytes of a span, the unit that is shuffled across the epoch (``span_bytes``)."""
STREAMS = 4
"""Default number of runs a consumer reads at the same time (``streams``)."""


class EventShardDataset(IterableDataset):
    """A split of a shard set as a streaming torch dataset, with SpikingJelly's frame settings.

    Parameters
    ----------
    root : str or path
        Shard-set folder or its ``index.json``: local path, ``file://``, ``http(s)://``, ``s3://``.
    split : str
        Split name in the index (``"train"``, ``"test"``, …).
    data_type : {"event", "frame", "structured"}
        ``"event"``: a dict of numpy arrays ``t`` (int64 µs), ``x``, ``y``, ``p``; ``"frame"``:
        float32 ``[T, 2, H, W]``; ``"structured"``: tonic's structured arrays
        (:data:`loader.settings.STRUCTURED_DTYPE`), so tonic's transforms work as ``transform``.
    frames_number, split_by, duration, custom_integrate_function
        SpikingJelly's frame arguments (:class:`loader.settings.FrameSetting`).
    transform : callable
        Applied to the events dict before integration (to the structured array for
        ``"structured"``); what it returns is yielded for ``"event"`` and ``"structured"``. A
        :class:`loader.transforms.EventTransform` gets the sample's generator, seeded by ``(seed,
        epoch, key)``, works on the columns for ``"structured"`` too, and frames use the sensor size
        after it (``docs/AUGMENT.md``).
    frame_transform : callable
        ``data_type="frame"`` only: applied to the frames; a :class:`loader.transforms.FrameTransform`
        gets the sample's frame generator.
    device : str or torch.device, optional
        ``data_type="frame"`` on a 2-D sensor: build the frames on this device instead of in the workers.
        Items are then :class:`loader.gpu.PackedSample` (pixel indices and frame boundaries); iterate
        :class:`loader.gpu.DeviceFrames` over the dataset to get batches of frames on the device.
    target_transform : callable
        Applied to the label index.
    shuffle, seed : bool, int
        Shuffle the epoch by ``(seed, epoch)`` (see :meth:`set_epoch`); ``shuffle=False`` reads the
        split in stored order, shard by shard.
    return_key : bool
        Yield ``(x, label, key)`` instead of ``(x, label)``.
    shuffle_buffer : int
        Samples each consumer (DataLoader worker) holds, compressed, for shuffling.
    streams : int
        Runs of samples each consumer reads at the same time and interleaves.
    span_bytes : int
        About how many bytes of consecutive samples stay together when the epoch is shuffled.
    rank, world_size : int, optional
        Position among distributed processes; ``None`` takes it from ``torch.distributed`` when
        initialised, else from ``RANK`` / ``WORLD_SIZE`` (as ``torchrun`` sets them), else 0 and 1.
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint, …).
    even : {"pad", "drop", None}
        Make every rank yield the same number of samples per epoch: ``"pad"`` repeats samples up to
        ``ceil(N / world_size)`` per rank (like ``DistributedSampler``), ``"drop"`` leaves out the
        last ``N % world_size``, ``None`` gives pieces that differ by at most one.
    on_error : {"raise", "skip"}
        ``"raise"``: a damaged shard raises an error naming its URL (and the sample and byte
        offset where one sample is concerned). ``"skip"``: its samples are left out of the epoch,
        with a warning, and counted in :meth:`stats`. A failing cache folder always raises.
    cache_dir, cache_bytes : optional
        Local folder (and size bound) of whole shards (:mod:`loader.cache`).

    Notes
    -----
    ``len(ds)`` is this rank's samples per epoch, so ``len(DataLoader(ds, batch_size=B))`` is the
    number of steps per rank. :meth:`set_epoch` reaches DataLoader workers also with
    ``persistent_workers=True``. Resume with ``torchdata.stateful_dataloader.StatefulDataLoader``
    (:meth:`state_dict` / :meth:`load_state_dict`). Reads are thread-safe.
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
        even: str | None = "pad",
        on_error: str = "raise",
        cache_dir: str | os.PathLike[str] | None = None,
        cache_bytes: int | None = None,
        streams: int = STREAMS,
        span_bytes: int = SPAN_BYTES,
        frame_transform: Callable[[Any], Any] | None = None,
        device: str | torch.device | None = None,
    ):
        super().__init__()
        self.setting = FrameSetting(data_type, frames_number, split_by, duration, custom_integrate_function)
        self.device = None if device is None else torch.device(device)
        if device is not None and (data_type != "frame" or custom_integrate_function is not None
                                   or frame_transform is not None):
            raise ConfigurationError("device= builds SpikingJelly's frames on the device: it needs data_type='frame' "
                                     "with frames_number/split_by or duration, and no custom_integrate_function or "
                                     "frame_transform")
        if frame_transform is not None and data_type != "frame":
            raise ConfigurationError("frame_transform needs data_type='frame'")
        check_even(even)
        if on_error not in _ON_ERROR:
            raise ConfigurationError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if rank is not None and world_size is not None and not 0 <= rank < world_size:
            raise ConfigurationError(f"rank {rank} not in [0, world_size={world_size})")
        if world_size is not None and world_size < 1:
            raise ConfigurationError(f"world_size must be at least 1, got {world_size}")
        if int(streams) < 1 or int(span_bytes) < 1:
            raise ConfigurationError(f"streams and span_bytes must be positive, got {streams} and {span_bytes}")
        self.root = os.fspath(root)
        self._set: ShardSet = open_shard_set(self.root, storage_options, cache_dir=cache_dir, cache_bytes=cache_bytes)
        self._shards = self._set.shards(split)
        self.split = split
        self.data_type = data_type
        self.frames_number, self.split_by, self.duration = frames_number, split_by, duration
        self.custom_integrate_function = custom_integrate_function
        self.transform = transform
        self.frame_transform = frame_transform  # augmentation: docs/AUGMENT.md
        self.target_transform = target_transform
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.return_key = return_key
        self.shuffle_buffer = max(1, int(shuffle_buffer))
        self.streams = int(streams)
        self.span_bytes = int(span_bytes)
        self.rank, self.world_size = rank, world_size
        self.even = even
        self.on_error = on_error
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.cache_bytes = cache_bytes
        info = self._set.index["splits"][split]
        self.split_samples: int = int(info["samples"])
        """Samples in the split, all ranks together."""
        self._span = _span_samples(int(info.get("bytes", 0)), self.split_samples, self.span_bytes)
        self._epoch = 0
        self._shared_epoch: Any = multiprocessing.RawValue("q", 0)  # reaches persistent workers
        self._local = threading.local()  # per-thread zstd decompressor
        self._stats: ReadStats | None = None
        self._stats_pid: int | None = None
        self._inherited_world: tuple[int, int] | None = None
        self._pending: dict[str, Any] | None = None  # a loaded state, for the next iteration
        self._progress: dict[str, Any] | None = None  # the latest iteration's position
        self._finished: dict[str, Any] | None = None  # the latest iteration that ran to its end
        index = self._set.index
        self.sensor_size: tuple[int, ...] = tuple(int(v) for v in index["sensor_size"])  # (W,) on a 1-D sensor
        self.classes: list[str] = list(index["classes"])
        self.dataset_id: str = str(index["dataset"])
        """The index's ``dataset`` id (``"dvs128-gesture"`` …)."""
        if self.device is not None and len(self.sensor_size) != 2:
            raise ConfigurationError(f"device= needs a 2-D sensor; {self.root} has sensor_size "
                                     f"{list(self.sensor_size)}")

    def __getstate__(self) -> dict[str, Any]:
        """Copy for a DataLoader worker: no decompressor, fresh statistics, the rank and world size seen
        here (for a worker in which ``torch.distributed`` is not initialised). The shared epoch travels
        only to processes being started (spawn); any other copy keeps the epoch's value."""
        state = self.__dict__.copy()
        state["_epoch"] = self.epoch
        if get_spawning_popen() is None:
            state["_shared_epoch"] = None
        state["_local"] = None
        state["_stats"] = None
        state["_stats_pid"] = None
        try:
            state["_inherited_world"] = self._detect_world()
        except ValueError:  # malformed RANK / WORLD_SIZE: the worker will say so when it iterates
            state["_inherited_world"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # ------------------------------------------------------------------ epochs and length

    @property
    def epoch(self) -> int:
        """The epoch the next iteration runs (shared with the DataLoader's worker processes)."""
        shared = self._shared_epoch
        return int(shared.value) if shared is not None else self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration uses; call it before ``iter(loader)``.

        Reaches the workers of a DataLoader with ``persistent_workers=True`` too (a value in shared
        memory that each worker reads when its iteration starts).
        """
        self._epoch = int(epoch)
        if self._shared_epoch is not None:
            self._shared_epoch.value = int(epoch)

    def __len__(self) -> int:
        """Samples this rank yields per epoch (:meth:`samples_per_rank`)."""
        return self.samples_per_rank()

    def samples_per_rank(self) -> int:
        """Samples this rank yields per epoch, all its DataLoader workers together.

        ``ceil(N / world_size)`` with ``even="pad"``, ``floor(N / world_size)`` with ``"drop"``, this
        rank's share with ``None``. Samples skipped with ``on_error="skip"`` are not subtracted.
        """
        rank, world = self._world()
        lo, hi = rank_range(self.split_samples, rank, world, self.even)
        return hi - lo

    def stats(self) -> dict[str, Any]:
        """What this process read (:class:`loader.shards.ReadStats` as a dict); each DataLoader worker
        counts on its own copy."""
        return dataclasses.asdict(self._read_stats())

    # ------------------------------------------------------------------ resume (Stateful protocol)

    def _settings(self) -> dict[str, Any]:
        return {"split": self.split, "samples": self.split_samples, "seed": self.seed, "shuffle": self.shuffle,
                "shuffle_buffer": self.shuffle_buffer, "streams": self.streams, "span": self._span,
                "even": self.even}

    def _consumer(self) -> dict[str, int]:
        rank, world = self._world()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return {"rank": rank, "world_size": world, "worker": worker, "num_workers": workers}

    def _new_progress(self, epoch: int, yielded: int) -> dict[str, Any]:
        return resume.new_state(epoch, yielded, self._settings(), self._consumer())

    def state_dict(self) -> dict[str, Any]:
        """Where this consumer stands in its epoch (plain values), for ``StatefulDataLoader``.

        Describes the latest iteration started on this object, or the state loaded for the next
        one; after an iteration that ran to its end, a :meth:`set_epoch` to another epoch makes it
        the start of that epoch.
        """
        if self._pending is not None:
            return dict(self._pending)
        progress = self._progress
        if progress is None or (progress is self._finished and progress["epoch"] != self.epoch):
            return self._new_progress(self.epoch, 0)
        return dict(progress)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state`` in the next iteration, which yields exactly the rest of the interrupted
        one without reading what was yielded; later iterations use :attr:`epoch` again.

        Raises
        ------
        ConfigurationError
            The state belongs to another split, sample count or order setting (raised here), or to
            another rank, world size, worker or number of workers (raised when iterating).
        """
        self._pending = resume.check_loadable(state, self._new_progress(self.epoch, 0))

    # ------------------------------------------------------------------ who reads what

    def _detect_world(self) -> tuple[int, int]:
        """``(rank, world_size)`` from ``torch.distributed``, the parent process, or the environment."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        if self._inherited_world is not None:
            return self._inherited_world
        try:
            return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        except ValueError:
            raise ConfigurationError(
                f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} are not integers"
            ) from None

    def _world(self) -> tuple[int, int]:
        """``(rank, world_size)``: the arguments where given, else :meth:`_detect_world`."""
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            detected = self._detect_world()
            rank = detected[0] if rank is None else rank
            world = detected[1] if world is None else world
        if not 0 <= rank < world:
            raise ConfigurationError(f"rank {rank} not in [0, world_size={world})")
        return int(rank), int(world)

    def _read_stats(self) -> ReadStats:
        """This process's statistics (a forked worker starts its own)."""
        if self._stats is None or self._stats_pid != os.getpid():
            self._stats = ReadStats()
            self._stats_pid = os.getpid()
        return self._stats

    # ------------------------------------------------------------------ decoding

    def _make_x(self, events: dict[str, np.ndarray], key: str, epoch: int) -> Any:
        augment = self.transform is not None or self.frame_transform is not None
        rngs = sample_rngs(self.seed, epoch, key) if augment else (None, None)
        ours = isinstance(self.transform, _aug.EventTransform)  # works on columns, not on tonic's records
        if ours:
            events = _aug.apply_event_transform(self.transform, events, self.sensor_size, rngs[0])
        plain = None if ours else self.transform
        if len(self.sensor_size) == 1:  # 1-D sensors (SHD, SSC): events t, x; frames [T, W]
            x = _sensor1d.make_item_1d(events, self.sensor_size[0], self.data_type, plain, self.frames_number,
                                       self.split_by, self.duration, self.custom_integrate_function)
        elif self.data_type == "structured":
            x = events_to_structured(events)
            return plain(x) if plain is not None else x
        elif self.data_type == "event":
            return plain(events) if plain is not None else events
        else:
            if plain is not None:
                events = plain(events)
            size = _aug.sensor_size_after(self.transform, self.sensor_size) if ours else self.sensor_size
            if self.device is not None:  # integrated on the device (loader.gpu): hand over packed events
                return _gpu.pack_sample(self.setting.packed(events, size), size, self.split_by, self.frames_number,
                                        self.duration)
            x = self.setting.integrate(events, size)
        if self.frame_transform is None or self.data_type != "frame":
            return x
        return _aug.apply_frame_transform(self.frame_transform, x, rngs[1])

    def decode(self, frame: bytes, epoch: int | None = None) -> tuple[Any, ...]:
        """Turn one sample's zstd frame into the item this dataset yields: ``(x, label[, key])``.

        ``epoch`` (default :attr:`epoch`) seeds the augmentations with the sample's key.

        Raises
        ------
        FormatError
            The frame does not decode (a corrupt zstd frame fails its checksum).
        """
        dctx = getattr(self._local, "dctx", None)
        if dctx is None:  # zstd contexts must not be shared between threads
            dctx = self._local.dctx = zstandard.ZstdDecompressor()
        columns = self.setting.columns(self.transform is not None, len(self.sensor_size) == 2)
        key, events, meta = decode_sample(frame, dctx, columns, self.sensor_size)
        label = meta["label"]
        if self.target_transform is not None:
            label = self.target_transform(label)
        x = self._make_x(events, key, self.epoch if epoch is None else epoch)
        return (x, label, key) if self.return_key else (x, label)

    def _decode_at(self, frame: bytes, shard: dict[str, Any], k: int, epoch: int | None = None) -> tuple[Any, ...]:
        """:meth:`decode`; a frame that does not decode raises ``ShardIntegrityError`` naming the
        shard's URL, the sample and its byte offset."""
        try:
            return self.decode(frame, epoch)
        except FormatError as exc:
            raise self._set.sample_error(shard, k, exc) from exc

    def read_item(self, i: int) -> tuple[Any, ...]:
        """Item ``i`` of the split in stored order, fetched alone by one byte-range read.

        Ignores shuffling and the rank/worker split. :meth:`read_canonical` reads by the dataset's
        own order.

        Raises
        ------
        IndexError
            ``i`` is outside the split.
        loader.shards.ShardIntegrityError
            The shard is missing or has another size, or the frame does not decode.
        """
        shard, k = self._set.locate(self.split, i)
        return self._decode_at(self._set.read_sample(self.split, i, self._read_stats()), shard, k)

    def read_canonical(self, i: int) -> tuple[Any, ...]:
        """Item ``i`` of the split in the dataset's own order (SpikingJelly's ``i``-th sample)."""
        return self.read_item(self._set.stored_position(self.split, i))

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        """Iterate over this consumer's share of the epoch (resuming a loaded state once)."""
        progress = self._new_progress(self.epoch, 0)
        pending, self._pending = self._pending, None
        if pending is not None:
            resume.check_consumer(pending, progress)
            progress["epoch"], progress["yielded"] = int(pending["epoch"]), int(pending["yielded"])
        self._progress = progress
        return self._iterate(progress)

    def _iterate(self, progress: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        if get_worker_info() is not None:  # a DataLoader worker: a process of ours, tune its malloc
            keep_freed_memory()
        workers, world, epoch = progress["num_workers"], progress["world_size"], progress["epoch"]
        consumer = progress["rank"] * workers + progress["worker"]
        runs = plan([s["samples"] for s in self._shards], consumer, world * workers, self.shuffle, self.seed, epoch,
                    world_size=world, even=self.even, span=self._span if self.shuffle else None)
        lengths = [b - a for _, a, b in runs]
        total, skip = sum(lengths), progress["yielded"]
        if skip > total:
            raise ConfigurationError(f"cannot resume: the state has {skip} items passed of {total}")
        block = READ_BLOCK if not self.shuffle else max(1, min(READ_BLOCK, self.span_bytes))
        reader = RunReader(self._set, self._shards, runs, self.on_error, self._read_stats(), block)
        store: dict[int, Fetched | None] = {}
        order: Iterator[int]
        if self.shuffle:  # the buffer holds compressed samples: its memory does not grow with T, H, W
            stream = interleave(lengths, self.streams, np.random.default_rng([self.seed, epoch, consumer, 1]))
            buffered = BufferOrder(total, self.shuffle_buffer, np.random.default_rng([self.seed, epoch, consumer]))
            for _ in range(skip):  # replay the draws on positions: exact, and nothing is read
                next(buffered)
            first = 0
            if skip:  # what the buffer held at the saved point: fetched first, by position
                held = buffered.held()
                by_pos = reader.read_sorted(sorted(int(stream[j]) for j in held))
                store = {j: by_pos[int(stream[j])] for j in held}
                first = buffered.frontier
            tail = stream[first:]
            order = buffered
        else:
            first, tail = skip, np.arange(skip, total)
            order = iter(range(skip, total))
        fetched = reader.read_in_order(tail)
        for j in order:
            while first <= j:
                store[first] = next(fetched)
                first += 1
            entry = store.pop(j)
            item = None if entry is None else self._decode_or_skip(*entry, epoch)
            progress["yielded"] += 1
            if item is not None:
                yield item
        self._finished = progress

    def _decode_or_skip(self, frame: bytes, shard_no: int, sample: int, epoch: int) -> tuple[Any, ...] | None:
        """Decode a sample; one that does not decode raises, or with ``on_error="skip"`` gives ``None``
        (counted in :meth:`stats`, reported by a warning)."""
        shard = self._shards[shard_no]
        try:
            return self._decode_at(frame, shard, sample, epoch)
        except ShardIntegrityError as exc:
            if self.on_error == "raise":
                raise
            self._read_stats().skipped_samples += 1
            why = exc.__cause__ if exc.__cause__ is not None else exc
            url = self._set.shard_url(shard)
            warnings.warn(f"eventshard: skipped sample {sample} of {url} (byte {exc.offset}): {why}", stacklevel=2)
            return None


def _span_samples(split_bytes: int, samples: int, span_bytes: int) -> int:
    """Samples per span: about ``span_bytes`` of the split's average sample (at least 1)."""
    if samples <= 0 or split_bytes <= 0:
        return 1
    return max(1, int(span_bytes * samples // split_bytes))
