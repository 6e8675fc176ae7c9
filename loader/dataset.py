"""EventShardDataset: stream a shard set into a torch DataLoader, integrating frames in the workers.

One sample's way: the consumer's share of the split (:func:`plan`) → byte-range read of its zstd
frames (:mod:`loader.shards`) → optional shuffle buffer (:class:`BufferOrder`) → decode
(:mod:`loader.format`) → ``transform`` on the events → frames (:mod:`loader.frames`) →
``(x, label)``.

Work split
    A *consumer* is one DataLoader worker of one distributed rank (``rank * num_workers +
    worker``). The split's samples, in shard order (shards permuted by ``(seed, epoch)`` when
    shuffling), form the *global sequence*. With ``even="pad"`` it is extended by repeating its
    first samples up to ``ceil(N / world_size) * world_size`` (as ``DistributedSampler`` does),
    with ``even="drop"`` it is cut to ``floor(N / world_size) * world_size``, with ``even=None``
    it is left as it is. Every rank takes one contiguous piece of it (equal pieces with ``"pad"``
    and ``"drop"``, pieces differing by at most one with ``None``), and every rank's workers cut
    their rank's piece into contiguous pieces whose sizes differ by at most one.

Resume
    :meth:`EventShardDataset.state_dict` / :meth:`EventShardDataset.load_state_dict` follow
    ``torchdata.stateful_dataloader``'s ``Stateful`` protocol. The state is the epoch and the
    number of items of the consumer's sequence already passed; a restored iteration replays the
    plan and the shuffle buffer's random draws on sample *positions* and reads only the samples
    that were not yet yielded, so nothing is decoded (or even fetched) twice.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import zstandard
from torch.utils.data import IterableDataset, get_worker_info

from loader import frames as _frames
from loader.allocator import keep_freed_memory
from loader.errors import ConfigurationError
from loader.format import EVENT_COLUMNS, FormatError, decode_sample
from loader.shards import ReadStats, ShardIntegrityError, ShardSet, open_shard_set
from loader.transforms import base as _aug
from loader.transforms.seeding import sample_rngs

_DATA_TYPES = ("event", "frame", "structured")
_SPLIT_BY = ("number", "time")
_EVEN = ("pad", "drop", None)
_ON_ERROR = ("raise", "skip")
_STATE_VERSION = 1
_DRAW_CHUNK = 4096  # shuffle-buffer slots drawn per numpy call (part of the order's definition)

Run = tuple[int, int, int]

#: tonic 1.7.0's event dtype (``tonic.io.events_struct``, also ``tonic.datasets.DVSGesture.dtype``):
#: what ``data_type="structured"`` yields, so tonic's transforms run on it unchanged.
STRUCTURED_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])


def events_to_structured(events: dict[str, np.ndarray], dtype: np.dtype = STRUCTURED_DTYPE) -> np.ndarray:
    """One sample's event columns as a tonic-style numpy structured array.

    Parameters
    ----------
    events : dict
        Columns ``t``, ``x``, ``y``, ``p`` of equal length (as ``data_type="event"`` yields them).
    dtype : numpy.dtype
        Record type with (a subset of) the fields ``t``, ``x``, ``y``, ``p``; default
        :data:`STRUCTURED_DTYPE` (tonic's ``events_struct``: ``x``, ``y`` int16, ``t`` int64 µs,
        ``p`` bool).

    Returns
    -------
    numpy.ndarray
        Shape ``[N]`` with the given record type (a new, writable array).
    """
    n = len(events["x"])
    out = np.empty(n, dtype=dtype)
    for name in dtype.names:
        out[name] = events[name]
    return out


# --------------------------------------------------------------------------- the work split (pure)


def padded_length(n: int, world_size: int, even: str | None = "pad") -> int:
    """Length of the global sequence of ``n`` samples after evening it out over ``world_size`` ranks.

    Parameters
    ----------
    n : int
        Samples in the split.
    world_size : int
        Number of distributed ranks.
    even : {"pad", "drop", None}
        ``"pad"``: ``ceil(n / world_size) * world_size``; ``"drop"``:
        ``floor(n / world_size) * world_size``; ``None``: ``n``.

    Returns
    -------
    int
    """
    _check_even(even)
    if world_size < 1:
        raise ConfigurationError(f"world_size must be at least 1, got {world_size}")
    if even == "pad":
        return -(-n // world_size) * world_size
    if even == "drop":
        return n // world_size * world_size
    return n


def rank_range(n: int, rank: int, world_size: int, even: str | None = "pad") -> tuple[int, int]:
    """The piece ``[lo, hi)`` of the (padded or cut) global sequence that ``rank`` reads.

    Parameters
    ----------
    n : int
        Samples in the split.
    rank, world_size : int
        The rank and the number of ranks.
    even : {"pad", "drop", None}
        See :func:`padded_length`. With ``"pad"`` and ``"drop"`` all pieces have the same length;
        with ``None`` their lengths differ by at most one.

    Returns
    -------
    tuple of int
        Positions in the global sequence; positions ``>= n`` (padding) stand for ``position % n``.
    """
    if not 0 <= rank < world_size:
        raise ConfigurationError(f"rank {rank} not in [0, {world_size})")
    total = padded_length(n, world_size, even)
    return total * rank // world_size, total * (rank + 1) // world_size


def plan(
    shard_samples: list[int],
    consumer: int,
    consumers: int,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    *,
    world_size: int = 1,
    even: str | None = None,
) -> list[Run]:
    """The runs ``(shard, start, stop)`` of samples that consumer ``consumer`` of ``consumers`` reads.

    The split's samples are ordered shard by shard (shards permuted by ``(seed, epoch)`` when
    ``shuffle``): the global sequence. It is evened out over ``world_size`` ranks (see
    :func:`padded_length`) and cut into one contiguous piece per rank (:func:`rank_range`); each
    rank's piece is cut into ``consumers // world_size`` contiguous pieces whose sizes differ by at
    most one, one per DataLoader worker. Consumer ``c`` is worker ``c % workers`` of rank
    ``c // workers``. Every sample goes to exactly one consumer except the padding, also when there
    are more consumers than shards or samples.

    Parameters
    ----------
    shard_samples : list of int
        Samples per shard, in index order.
    consumer, consumers : int
        This consumer's number and the number of consumers (``world_size * workers``).
    shuffle, seed, epoch : bool, int, int
        Permute the shard order by ``(seed, epoch)``.
    world_size : int
        Number of ranks; ``consumers`` must be a multiple of it. The default 1 (with any ``even``)
        cuts the sequence into ``consumers`` pieces differing by at most one.
    even : {"pad", "drop", None}
        How ranks are made equal; see :func:`padded_length`.

    Returns
    -------
    list of tuple of int
        ``(shard, start, stop)``: samples ``start..stop-1`` of shard ``shard``, in reading order. A
        padded piece may name samples that other runs (or other consumers) name too.
    """
    if world_size < 1 or consumers < 1 or consumers % world_size:
        raise ConfigurationError(f"consumers ({consumers}) must be a positive multiple of world_size ({world_size})")
    if not 0 <= consumer < consumers:
        raise ConfigurationError(f"consumer {consumer} not in [0, {consumers})")
    workers = consumers // world_size
    rank, worker = divmod(consumer, workers)
    order = np.arange(len(shard_samples))
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(len(shard_samples))
    counts = np.asarray(shard_samples, dtype=np.int64)[order]
    ends = np.cumsum(counts)
    n = int(ends[-1]) if len(ends) else 0
    r_lo, r_hi = rank_range(n, rank, world_size, even)
    size = r_hi - r_lo
    lo, hi = r_lo + size * worker // workers, r_lo + size * (worker + 1) // workers
    runs: list[Run] = []
    while lo < hi:  # one pass per copy of the global sequence the piece touches (padding wraps around)
        base = lo - lo % n
        stop = min(hi, base + n)
        for pos, shard in enumerate(order.tolist()):
            first = base + int(ends[pos] - counts[pos])
            a, b = max(lo, first), min(stop, base + int(ends[pos]))
            if a < b:
                runs.append((shard, a - first, b - first))
        lo = stop
    return runs


class BufferOrder:
    """The order in which a bounded shuffle buffer emits the positions ``0..n-1`` of a stream.

    The buffer is filled with the first ``size`` positions; each further position replaces a
    uniformly drawn slot, whose old position is emitted; at the end the buffer is emitted in a
    random permutation. Draws come from ``rng`` in chunks of a fixed size, so the order is a
    function of ``(n, size, rng's seed)`` only. Working on positions (not samples) makes a resumed
    iteration exact: skipping ``k`` positions replays the draws without touching any sample.

    Parameters
    ----------
    n : int
        Stream length.
    size : int
        Buffer capacity (at least 1).
    rng : numpy.random.Generator
        Source of the draws.
    """

    def __init__(self, n: int, size: int, rng: np.random.Generator):
        self.n = int(n)
        self._rng = rng
        self._buf = list(range(min(max(1, int(size)), self.n)))
        self.frontier = len(self._buf)
        """Positions ``< frontier`` have entered the buffer; the rest are still to be read."""
        self._draws: list[int] = []
        self._next_draw = 0
        self._tail: list[int] | None = None
        self._next_tail = 0

    def __iter__(self) -> BufferOrder:
        return self

    def __next__(self) -> int:
        if self.frontier < self.n:
            if self._next_draw == len(self._draws):
                count = min(_DRAW_CHUNK, self.n - self.frontier)
                self._draws = self._rng.integers(len(self._buf), size=count).tolist()
                self._next_draw = 0
            j = self._draws[self._next_draw]
            self._next_draw += 1
            out, self._buf[j] = self._buf[j], self.frontier
            self.frontier += 1
            return out
        if self._tail is None:
            self._tail = [self._buf[i] for i in self._rng.permutation(len(self._buf)).tolist()]
            self._buf = []
        if self._next_tail < len(self._tail):
            self._next_tail += 1
            return self._tail[self._next_tail - 1]
        raise StopIteration

    def held(self) -> list[int]:
        """Positions that entered the buffer and were not emitted yet, ascending."""
        if self._tail is not None:
            return sorted(self._tail[self._next_tail :])
        return sorted(self._buf)


def _ranges(positions: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending positions as maximal ``[lo, hi)`` ranges."""
    out: list[tuple[int, int]] = []
    for p in positions:
        if out and out[-1][1] == p:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out


# --------------------------------------------------------------------------- the dataset


class EventShardDataset(IterableDataset):
    """A split of a shard set as a streaming torch dataset, with SpikingJelly's frame settings.

    Parameters
    ----------
    root : str or path
        Shard-set folder or its ``index.json``: local path, ``file://``, ``http(s)://``, ``s3://``.
    split : str
        Split name in the index (``"train"``, ``"test"``, …).
    data_type : {"event", "frame", "structured"}
        ``"event"`` yields a dict of numpy arrays ``t`` (int64 µs), ``x``, ``y``, ``p``;
        ``"frame"`` yields float32 ``[T, 2, H, W]`` numpy arrays; ``"structured"`` yields tonic's
        numpy structured arrays (:data:`STRUCTURED_DTYPE`: ``x``, ``y`` int16, ``t`` int64 µs,
        ``p`` bool), so tonic's transforms (``ToFrame``, ``Denoise``, …) work as ``transform``.
    frames_number, split_by : int, {"number", "time"}
        Fixed number of frames, split by event count or by time (SpikingJelly's semantics).
    duration : int
        Fixed frame duration in µs (variable ``T``); collate with ``pad_sequence_collate``.
    custom_integrate_function : callable
        ``f(events: dict, H, W) -> ndarray``, run in the worker process.
    transform : callable
        Applied to the events dict before integration (or to the events for ``"event"``, to the
        structured array for ``"structured"``); what it returns is yielded for those two. A
        :class:`loader.transforms.EventTransform` gets the sample's generator (seeded by ``(seed,
        epoch, key)``), works on the columns for ``"structured"`` too, and frames use its sensor size.
    frame_transform : callable
        ``data_type="frame"`` only: applied to the frames; a :class:`loader.transforms.FrameTransform`
        gets the sample's frame generator (``docs/AUGMENT.md``).
    target_transform : callable
        Applied to the label index.
    shuffle, seed : bool, int
        Shard order plus a bounded sample buffer, seeded by ``(seed, epoch)``; see :meth:`set_epoch`.
    return_key : bool
        Yield ``(x, label, key)`` instead of ``(x, label)``.
    shuffle_buffer : int
        Samples held by each consumer (DataLoader worker) for shuffling; they are held compressed.
    rank, world_size : int, optional
        Position among distributed processes. Each one that is ``None`` comes from
        ``torch.distributed`` when it is initialised, else from the environment variables ``RANK``
        and ``WORLD_SIZE`` (as ``torchrun`` sets them), else 0 and 1.
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint, …).
    even : {"pad", "drop", None}
        Make every rank yield the same number of samples per epoch (what collective operations in
        distributed training need). ``"pad"`` (default) repeats the first samples of the epoch's
        global sequence up to ``ceil(N / world_size)`` per rank, like ``DistributedSampler``;
        ``"drop"`` leaves out the last ``N % world_size`` samples of the global sequence; ``None``
        splits the ``N`` samples into pieces whose sizes differ by at most one. See
        :meth:`samples_per_rank`.
    on_error : {"raise", "skip"}
        ``"raise"`` (default): a damaged shard set raises an error naming the shard's URL:
        :class:`~loader.shards.ShardMissingError` (a missing shard),
        :class:`~loader.shards.ShardIntegrityError` (another size than the index says, another
        sha256 with ``cache_dir``, or a sample whose frame does not decode: then also the sample's
        number in the shard and its byte offset), :class:`~loader.shards.StorageError` (reads that
        kept failing). ``"skip"``: such a shard is skipped (its samples are left out of the epoch; a
        warning names its URL), and so is a sample whose frame does not decode; both are counted
        in :meth:`stats`. With ``"skip"``, ranks may therefore yield different numbers of samples.
    cache_dir : str or path, optional
        Local folder in which fetched shard bytes are cached (passed to ``open_shard_set``).
    cache_bytes : int, optional
        Size limit of that cache.

    Notes
    -----
    The epoch's order is a function of ``(seed, epoch, world_size, number of DataLoader workers,
    shuffle_buffer)``, never of timing. Each DataLoader worker process works on its own copy of
    the dataset, made when the DataLoader's iterator starts: call :meth:`set_epoch` before
    ``iter(loader)``. With ``persistent_workers=True`` the copies live on and :meth:`set_epoch`
    no longer reaches them; leave it ``False`` (the default) when shuffling by epoch.

    Resuming: use ``torchdata.stateful_dataloader.StatefulDataLoader``; its ``state_dict()``
    carries each worker's :meth:`state_dict` and its ``load_state_dict()`` hands it back to the
    matching worker of a new loader (same world size, rank and number of workers). The restored
    iteration yields exactly the rest of the interrupted one.

    Reading: :meth:`stats` counts what this process read; with ``on_error="skip"`` a skipped shard
    also raises a warning naming its URL, in the process that skipped it.
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
        frame_transform: Callable[[Any], Any] | None = None,
    ):
        super().__init__()
        _check_arguments(data_type, frames_number, split_by, duration, custom_integrate_function)
        if frame_transform is not None and data_type != "frame":
            raise ConfigurationError("frame_transform needs data_type='frame'")
        _check_even(even)
        if on_error not in _ON_ERROR:
            raise ConfigurationError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if rank is not None and world_size is not None and not 0 <= rank < world_size:
            raise ConfigurationError(f"rank {rank} not in [0, world_size={world_size})")
        if world_size is not None and world_size < 1:
            raise ConfigurationError(f"world_size must be at least 1, got {world_size}")
        self.root = os.fspath(root)
        self._set: ShardSet = open_shard_set(self.root, storage_options, cache_dir=cache_dir, cache_bytes=cache_bytes)
        self._shards = self._set.shards(split)
        self.split = split
        self.data_type = data_type
        self.frames_number = frames_number
        self.split_by = split_by
        self.duration = duration
        self.custom_integrate_function = custom_integrate_function
        self.transform = transform
        self.frame_transform = frame_transform  # augmentation: docs/AUGMENT.md
        self._augment_epoch: int | None = None  # the epoch of the running iteration
        self.target_transform = target_transform
        self.shuffle = shuffle
        self.seed = int(seed)
        self.return_key = return_key
        self.shuffle_buffer = max(1, int(shuffle_buffer))
        self.rank = rank
        self.world_size = world_size
        self.even = even
        self.on_error = on_error
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.cache_bytes = cache_bytes
        self.epoch = 0
        self._dctx: zstandard.ZstdDecompressor | None = None
        self._stats: ReadStats | None = None
        self._stats_pid: int | None = None
        self._inherited_world: tuple[int, int] | None = None
        self._pending: dict[str, Any] | None = None  # a loaded state, for the next iteration
        self._progress: dict[str, Any] | None = None  # the latest iteration's position
        self._finished: dict[str, Any] | None = None  # the latest iteration that ran to its end
        index = self._set.index
        self.sensor_size: tuple[int, int] = (int(index["sensor_size"][0]), int(index["sensor_size"][1]))
        self.classes: list[str] = list(index["classes"])
        self.dataset_id: str = str(index["dataset"])
        """The index's ``dataset`` id (``"dvs128-gesture"`` …)."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickled copy for a DataLoader worker (spawn): no decompressor, fresh statistics.

        The rank and world size seen here travel along, for a worker process in which
        ``torch.distributed`` is not initialised.
        """
        state = self.__dict__.copy()
        state["_dctx"] = None
        state["_stats"] = None
        state["_stats_pid"] = None
        try:
            state["_inherited_world"] = self._detect_world()
        except ValueError:  # malformed RANK / WORLD_SIZE: the worker will say so when it iterates
            state["_inherited_world"] = None
        return state

    def __len__(self) -> int:
        """Samples in the split (all ranks together, without padding); see :meth:`samples_per_rank`."""
        return int(self._set.index["splits"][self.split]["samples"])

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffled order the next iteration uses (call before each epoch).

        Parameters
        ----------
        epoch : int
            Epoch number; with ``shuffle`` the order is a function of ``(seed, epoch)``.
        """
        self.epoch = int(epoch)

    def samples_per_rank(self) -> int:
        """Samples this rank yields per epoch (all its DataLoader workers together).

        Returns
        -------
        int
            ``ceil(N / world_size)`` with ``even="pad"``, ``floor(N / world_size)`` with
            ``"drop"``; with ``None`` this rank's share of an uneven split (``N // world_size`` or
            one more). Samples skipped with ``on_error="skip"`` are not subtracted.
        """
        rank, world = self._world()
        lo, hi = rank_range(len(self), rank, world, self.even)
        return hi - lo

    def stats(self) -> dict[str, Any]:
        """Read statistics of this process: ``retries``, ``skipped_shards``, ``skipped_samples``, ``bytes_read``.

        Each DataLoader worker process counts on its own copy of the dataset, so in the main
        process this shows only what was read there (``num_workers=0``); a skipped shard is also
        reported by a warning naming its URL, from whichever process skipped it.

        Returns
        -------
        dict
            The fields of :class:`loader.shards.ReadStats`.
        """
        return dataclasses.asdict(self._read_stats())

    # ------------------------------------------------------------------ resume (Stateful protocol)

    def state_dict(self) -> dict[str, Any]:
        """Where this consumer stands in its epoch, for ``torchdata.stateful_dataloader``.

        ``StatefulDataLoader`` calls it on the dataset copy inside each worker process (or on this
        object with ``num_workers=0``) after each batch; it describes the latest iteration started
        on this object (or the state loaded for the next one). After an iteration that ran to its
        end, a :meth:`set_epoch` to another epoch makes the state the start of that epoch.

        Returns
        -------
        dict
            ``epoch``, ``yielded`` (items of this consumer's sequence already passed, including
            samples skipped by ``on_error="skip"``), ``seed`` and what :meth:`load_state_dict`
            checks for compatibility (split, sample count, shuffle settings, ``even``, rank, world
            size, worker and number of workers). Plain Python values only.
        """
        if self._pending is not None:
            return dict(self._pending)
        progress = self._progress
        if progress is None or (progress is self._finished and progress["epoch"] != self.epoch):
            # nothing started yet, or the last iteration ran to its end and set_epoch chose the next
            return self._new_progress(self.epoch, 0)
        return dict(progress)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state`` (from :meth:`state_dict`) in the next iteration.

        The next iteration runs the state's epoch, skipping the items already yielded without
        reading or decoding them, so that it yields exactly the rest of what the interrupted
        iteration would have yielded. Iterations after it use :attr:`epoch` again (this does not
        call :meth:`set_epoch`).

        Parameters
        ----------
        state : dict
            A state of this dataset's consumer.

        Raises
        ------
        ConfigurationError
            (A ``ValueError``.) The state belongs to a different split, sample count, seed, shuffle setting or
            ``even`` mode (raised here), or to another rank, world size, worker or number of
            workers (raised when the iteration starts).
        """
        if state.get("version") != _STATE_VERSION:
            raise ConfigurationError(f"not an EventShardDataset state (version {state.get('version')!r})")
        mine = self._new_progress(self.epoch, 0)
        for name in ("split", "samples", "seed", "shuffle", "shuffle_buffer", "even"):
            if name == "shuffle_buffer" and not self.shuffle:
                continue
            if state.get(name) != mine[name]:
                raise ConfigurationError(
                    f"cannot resume: the state has {name}={state.get(name)!r}, this dataset {mine[name]!r}"
                )
        if int(state["yielded"]) < 0:
            raise ConfigurationError(f"cannot resume: yielded={state['yielded']}")
        self._pending = dict(state)

    def _new_progress(self, epoch: int, yielded: int) -> dict[str, Any]:
        rank, world = self._world()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return {
            "version": _STATE_VERSION,
            "epoch": int(epoch),
            "yielded": int(yielded),
            "seed": self.seed,
            "split": self.split,
            "samples": len(self),
            "shuffle": bool(self.shuffle),
            "shuffle_buffer": self.shuffle_buffer,
            "even": self.even,
            "rank": rank,
            "world_size": world,
            "worker": worker,
            "num_workers": workers,
        }

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

    def _make_x(self, events: dict[str, np.ndarray], key: str) -> Any:
        epoch = self.epoch if self._augment_epoch is None else self._augment_epoch
        augment = self.transform is not None or self.frame_transform is not None
        rngs = sample_rngs(self.seed, epoch, key) if augment else (None, None)
        ours = isinstance(self.transform, _aug.EventTransform)  # works on columns, not on tonic's records
        if self.transform is not None and (ours or self.data_type != "structured"):
            events = _aug.apply_event_transform(self.transform, events, self.sensor_size, rngs[0])
        if self.data_type == "structured":
            x = events_to_structured(events)
            return self.transform(x) if self.transform is not None and not ours else x
        if self.data_type == "event":
            return events
        h, w = _aug.sensor_size_after(self.transform, self.sensor_size) if ours else self.sensor_size
        if self.custom_integrate_function is not None:
            x = self.custom_integrate_function(events, h, w)
        elif self.duration is not None:
            x = _frames.integrate_events_by_fixed_duration(events, self.duration, h, w)
        else:
            x = _frames.integrate_events_by_fixed_frames_number(events, self.split_by, self.frames_number, h, w)
        return x if self.frame_transform is None else _aug.apply_frame_transform(self.frame_transform, x, rngs[1])

    def _columns(self) -> tuple[str, ...]:
        """Event columns the output needs: frames split by number never look at ``t``."""
        if self.data_type == "frame" and self.split_by == "number" and self.transform is None:
            return ("x", "y", "p")
        return EVENT_COLUMNS

    def decode(self, frame: bytes) -> tuple[Any, ...]:
        """Turn one compressed sample (its zstd frame) into the item this dataset yields.

        Decodes only the event columns the settings need, applies ``transform``, integrates frames,
        applies ``target_transform``.

        Parameters
        ----------
        frame : bytes
            One sample's zstd frame as stored in a shard.

        Returns
        -------
        tuple
            ``(x, label)`` or ``(x, label, key)``.

        Raises
        ------
        FormatError
            The frame does not decode (a corrupt zstd frame fails its checksum).
        """
        if self._dctx is None:
            self._dctx = zstandard.ZstdDecompressor()
        key, events, meta = decode_sample(frame, self._dctx, self._columns())
        label = meta["label"]
        if self.target_transform is not None:
            label = self.target_transform(label)
        x = self._make_x(events, key)
        return (x, label, key) if self.return_key else (x, label)

    def _decode_at(self, frame: bytes, shard: dict[str, Any], k: int) -> tuple[Any, ...]:
        """:meth:`decode` the frame of sample ``k`` of ``shard``; one that does not decode raises
        :class:`~loader.shards.ShardIntegrityError` naming the shard's URL, the sample and its byte offset."""
        try:
            return self.decode(frame)
        except FormatError as exc:
            raise self._set.sample_error(shard, k, exc) from exc

    def read_item(self, i: int) -> tuple[Any, ...]:
        """Item ``i`` of the split in index order, fetched by one byte-range read (random access).

        Uses the index's per-sample offsets: reads only sample ``i``'s zstd frame (from the cache
        folder when there is one). Ignores shuffling and the rank/worker split; this is what the
        map-style classes of :mod:`loader.datasets` call for ``ds[i]``.

        Parameters
        ----------
        i : int
            Position in the split, ``0 <= i < len(self)`` (negative counts from the end).

        Returns
        -------
        tuple
            ``(x, label)`` or ``(x, label, key)``, as iteration yields them.

        Raises
        ------
        IndexError
            ``i`` is outside the split.
        loader.shards.ShardIntegrityError
            The shard is missing or has another size, or the sample's frame does not decode (the
            message names the shard's URL, the sample and its byte offset).
        """
        shard, k = self._set.locate(self.split, i)
        self._augment_epoch = self.epoch
        return self._decode_at(self._set.read_sample(self.split, i, self._read_stats()), shard, k)

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        """Iterate over this consumer's share of the epoch (resuming a loaded state once).

        Returns
        -------
        iterator of tuple
            ``(x, label)`` or ``(x, label, key)`` items.
        """
        progress = self._new_progress(self.epoch, 0)
        pending, self._pending = self._pending, None
        if pending is not None:
            for name in ("rank", "world_size", "worker", "num_workers"):
                if pending.get(name) != progress[name]:
                    raise ConfigurationError(
                        f"cannot resume: the state was saved with {name}={pending.get(name)!r}, "
                        f"this consumer has {progress[name]!r}"
                    )
            progress["epoch"], progress["yielded"] = int(pending["epoch"]), int(pending["yielded"])
        self._progress = progress
        return self._iterate(progress)

    def _iterate(self, progress: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        if get_worker_info() is not None:  # a DataLoader worker: a process of ours, tune its malloc
            keep_freed_memory()
        workers, world = progress["num_workers"], progress["world_size"]
        consumer = progress["rank"] * workers + progress["worker"]
        counts = [s["samples"] for s in self._shards]
        epoch = self._augment_epoch = progress["epoch"]
        runs = plan(counts, consumer, world * workers, self.shuffle, self.seed, epoch, world_size=world, even=self.even)
        total = sum(b - a for _, a, b in runs)
        skip = progress["yielded"]
        if skip > total:
            raise ConfigurationError(f"cannot resume: the state has {skip} items passed of {total}")
        order: Iterator[int]
        if self.shuffle:  # the buffer holds compressed samples: its memory does not grow with T, H, W
            rng = np.random.default_rng([self.seed, epoch, consumer])
            buffered = BufferOrder(total, self.shuffle_buffer, rng)
            for _ in range(skip):  # replay the draws on positions: exact, and nothing is read
                next(buffered)
            ranges = _ranges(buffered.held())
            if ranges and ranges[-1][1] == buffered.frontier:  # one read on from the buffer's positions
                ranges[-1] = (ranges[-1][0], total)
            else:
                ranges.append((buffered.frontier, total))
            order = buffered
        else:
            ranges = [(skip, total)]
            order = iter(range(skip, total))
        reader = self._read(runs, ranges)
        store: dict[int, tuple[bytes, int, int]] = {}
        last = -1  # the reader has delivered every wanted position <= last
        for pos in order:
            while last < pos:
                got = next(reader, None)
                if got is None:  # a skipped shard cut the reads short: what is missing stays missing
                    last = total
                    break
                last = got[0]
                store[last] = got[1:]
            entry = store.pop(pos, None)
            item = None if entry is None else self._decode_or_skip(*entry)
            progress["yielded"] += 1
            if item is not None:
                yield item
        self._finished = progress

    def _read(self, runs: list[Run], ranges: list[tuple[int, int]]) -> Iterator[tuple[int, bytes, int, int]]:
        """Fetch the consumer's positions in ``ranges`` (ascending): ``(position, frame, shard, sample)``.

        Reads about 8 MiB at a time through :meth:`ShardSet.iter_frames`. A shard skipped by
        ``on_error="skip"`` ends its piece early; the positions it did not deliver are missing.
        """
        kw: dict[str, Any] = {"on_error": self.on_error, "stats": self._read_stats()}
        starts = np.cumsum([0] + [b - a for _, a, b in runs]).tolist()
        for lo, hi in ranges:
            for i, (shard_no, a, _b) in enumerate(runs):
                x, y = max(lo, starts[i]), min(hi, starts[i + 1])
                if x >= y:
                    continue
                first = a + x - starts[i]
                pos = x
                for frame in self._set.iter_frames(self._shards[shard_no], first, first + y - x, **kw):
                    # a copy, so a buffered sample does not pin its 8 MiB read block
                    yield pos, bytes(frame), shard_no, first + pos - x
                    pos += 1

    def _decode_or_skip(self, frame: bytes, shard_no: int, sample: int) -> tuple[Any, ...] | None:
        """Decode sample ``sample`` of shard ``shard_no``; a frame that does not decode raises
        :class:`~loader.shards.ShardIntegrityError` (naming shard, sample and byte offset), or with
        ``on_error="skip"`` gives ``None``, counted in :meth:`stats` and reported by a warning."""
        shard = self._shards[shard_no]
        try:
            return self._decode_at(frame, shard, sample)
        except ShardIntegrityError as exc:
            if self.on_error == "raise":
                raise
            self._read_stats().skipped_samples += 1
            why = exc.__cause__ if exc.__cause__ is not None else exc
            url = self._set.shard_url(shard)
            warnings.warn(
                f"eventshard: skipped sample {sample} of {url} (byte {exc.offset}): {why}", stacklevel=2
            )
            return None


def _check_even(even: str | None) -> None:
    if even not in _EVEN:
        raise ConfigurationError(f"even must be 'pad', 'drop' or None, got {even!r}")


def _check_arguments(
    data_type: str,
    frames_number: int | None,
    split_by: str | None,
    duration: int | None,
    custom: Callable[..., Any] | None,
) -> None:
    """Raise ``ConfigurationError`` (a ``ValueError``) saying what to pass when the frame arguments do not fit."""
    if data_type not in _DATA_TYPES:
        raise ConfigurationError(f"data_type must be 'event', 'frame' or 'structured', got {data_type!r}")
    if split_by is not None and split_by not in _SPLIT_BY:
        raise ConfigurationError(f"split_by must be 'number' or 'time', got {split_by!r}")
    if split_by is not None and frames_number is None:
        raise ConfigurationError("split_by needs frames_number: pass frames_number=T (or drop split_by)")
    if frames_number is not None and duration is not None:
        raise ConfigurationError("pass either frames_number (with split_by) or duration, not both")
    if custom is not None and (frames_number is not None or duration is not None):
        raise ConfigurationError("custom_integrate_function replaces frames_number/duration: pass only one of them")
    if data_type in ("event", "structured"):
        if frames_number is not None or duration is not None or custom is not None:
            raise ConfigurationError("frames_number, duration and custom_integrate_function need data_type='frame'")
        return
    if frames_number is not None:
        if split_by is None:
            raise ConfigurationError("frames_number needs split_by='number' or split_by='time'")
        if int(frames_number) <= 0:
            raise ConfigurationError(f"frames_number must be positive, got {frames_number}")
    elif duration is not None:
        if duration <= 0:
            raise ConfigurationError(f"duration must be positive (µs), got {duration}")
    elif custom is None:
        raise ConfigurationError(
            "data_type='frame' needs frames_number=T with split_by='number'|'time', duration=D (µs), "
            "or custom_integrate_function"
        )
