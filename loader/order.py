"""The order of an epoch, as pure functions of integers: who reads which samples, and in what order.

Nothing here reads a byte or imports torch. :class:`loader.dataset.EventShardDataset` calls these
functions; ``docs/SEMANTICS.md`` (*Stream order*) states the rules they implement:

1. :func:`plan`: the split's *spans* (runs of consecutive samples of one shard, :func:`spans`),
   permuted by ``(seed, epoch)``, form the epoch's global sequence; it is evened out over the ranks
   (:func:`padded_length`) and cut into one contiguous piece per rank and per DataLoader worker.
2. :func:`interleave`: a consumer reads its runs several at a time, in a random interleaving.
3. :class:`BufferOrder`: a bounded shuffle buffer over that stream.

Every step works on sample *positions*, so a resumed iteration replays the draws without reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from loader.errors import ConfigurationError

Run = tuple[int, int, int]
"""``(shard, start, stop)``: samples ``start..stop-1`` of shard number ``shard``."""

EVEN = ("pad", "drop", None)
DRAW_CHUNK = 4096  # shuffle-buffer slots drawn per numpy call (part of the order's definition)


def check_even(even: str | None) -> None:
    """Raise ``ConfigurationError`` unless ``even`` is ``"pad"``, ``"drop"`` or ``None``."""
    if even not in EVEN:
        raise ConfigurationError(f"even must be 'pad', 'drop' or None, got {even!r}")


def padded_length(n: int, world_size: int, even: str | None = "pad") -> int:
    """Length of the global sequence of ``n`` samples evened out over ``world_size`` ranks.

    ``"pad"``: ``ceil(n / world_size) * world_size``; ``"drop"``: ``floor(n / world_size) *
    world_size``; ``None``: ``n``.
    """
    check_even(even)
    if world_size < 1:
        raise ConfigurationError(f"world_size must be at least 1, got {world_size}")
    if even == "pad":
        return -(-n // world_size) * world_size
    if even == "drop":
        return n // world_size * world_size
    return n


def rank_range(n: int, rank: int, world_size: int, even: str | None = "pad") -> tuple[int, int]:
    """The piece ``[lo, hi)`` of the evened global sequence that ``rank`` reads.

    Equal pieces with ``"pad"`` and ``"drop"``; with ``None`` their lengths differ by at most one.
    Positions ``>= n`` (padding) stand for ``position % n``.
    """
    if not 0 <= rank < world_size:
        raise ConfigurationError(f"rank {rank} not in [0, {world_size})")
    total = padded_length(n, world_size, even)
    return total * rank // world_size, total * (rank + 1) // world_size


def spans(shard_samples: Sequence[int], span: int | None = None) -> list[Run]:
    """Every shard cut into consecutive runs of ``span`` samples (the last one shorter); whole shards
    when ``span`` is ``None``. Empty shards give no run."""
    out: list[Run] = []
    for shard, count in enumerate(shard_samples):
        step = int(count) if span is None else max(1, int(span))
        out.extend((shard, a, min(a + step, int(count))) for a in range(0, int(count), max(1, step)))
    return out


def plan(
    shard_samples: Sequence[int],
    consumer: int,
    consumers: int,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    *,
    world_size: int = 1,
    even: str | None = None,
    span: int | None = None,
) -> list[Run]:
    """The runs ``(shard, start, stop)`` that consumer ``consumer`` of ``consumers`` reads, in order.

    Parameters
    ----------
    shard_samples : sequence of int
        Samples per shard, in index order.
    consumer, consumers : int
        This consumer's number and the number of consumers (``world_size * workers``); consumer
        ``c`` is worker ``c % workers`` of rank ``c // workers``.
    shuffle, seed, epoch : bool, int, int
        Permute the spans by ``numpy.random.default_rng([seed, epoch])``.
    world_size : int
        Number of ranks; ``consumers`` must be a multiple of it.
    even : {"pad", "drop", None}
        How ranks are made equal (:func:`padded_length`).
    span : int, optional
        Samples per span (:func:`spans`); ``None``: whole shards.

    Returns
    -------
    list of Run
        A padded piece may name samples that other runs or consumers name too; every other sample
        goes to exactly one consumer.
    """
    if world_size < 1 or consumers < 1 or consumers % world_size:
        raise ConfigurationError(f"consumers ({consumers}) must be a positive multiple of world_size ({world_size})")
    if not 0 <= consumer < consumers:
        raise ConfigurationError(f"consumer {consumer} not in [0, {consumers})")
    workers = consumers // world_size
    rank, worker = divmod(consumer, workers)
    units = spans(shard_samples, span)
    if shuffle:
        units = [units[i] for i in np.random.default_rng([seed, epoch]).permutation(len(units)).tolist()]
    counts = np.asarray([b - a for _, a, b in units], dtype=np.int64)
    ends = np.cumsum(counts)
    n = int(ends[-1]) if len(ends) else 0
    r_lo, r_hi = rank_range(n, rank, world_size, even)
    size = r_hi - r_lo
    lo, hi = r_lo + size * worker // workers, r_lo + size * (worker + 1) // workers
    runs: list[Run] = []
    while lo < hi:  # one pass per copy of the global sequence the piece touches (padding wraps around)
        base = lo - lo % n
        stop = min(hi, base + n)
        first_unit = int(np.searchsorted(ends, lo - base, side="right"))
        for u in range(first_unit, len(units)):
            first = base + int(ends[u] - counts[u])
            if first >= stop:
                break
            shard, a, _ = units[u]
            x, y = max(lo, first), min(stop, base + int(ends[u]))
            runs.append((shard, a + x - first, a + y - first))
        lo = stop
    return runs


def interleave(lengths: Sequence[int], streams: int, rng: np.random.Generator) -> np.ndarray:
    """The reading order of a consumer's runs, read ``streams`` at a time.

    Consecutive runs are taken in groups of ``streams``; the samples of one group come in a
    uniformly random interleaving that keeps each run's own order (each run is read front to back,
    so a group needs ``streams`` open reads). Groups follow each other.

    Parameters
    ----------
    lengths : sequence of int
        Samples per run, in plan order.
    streams : int
        Runs read at the same time (``1``: plan order).
    rng : numpy.random.Generator
        Source of the draws (one ``permutation`` per group).

    Returns
    -------
    numpy.ndarray
        int64 positions in the concatenated runs (``0 .. sum(lengths)-1``) in reading order.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if streams <= 1 or len(lengths) <= 1:
        return np.arange(total, dtype=np.int64)
    out = np.empty(total, dtype=np.int64)
    base = 0
    for g in range(0, len(lengths), streams):
        group = lengths[g : g + streams]
        size = int(group.sum())
        labels = rng.permutation(np.repeat(np.arange(len(group)), group))
        # sorting the draws by run (stably) lists the group's reading slots run by run, which is
        # the order of the positions: slot idx[i] reads position base + i
        idx = np.argsort(labels, kind="stable")
        out[base + idx] = np.arange(base, base + size, dtype=np.int64)
        base += size
    return out


class BufferOrder:
    """The order in which a bounded shuffle buffer emits the positions ``0..n-1`` of a stream.

    The buffer is filled with the first ``size`` positions; each further position replaces a
    uniformly drawn slot, whose old position is emitted; at the end the buffer is emitted in a
    random permutation. Draws come from ``rng`` in chunks of :data:`DRAW_CHUNK`, so the order is a
    function of ``(n, size, rng's seed)`` only, and skipping ``k`` positions replays the draws
    without touching any sample.
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
                count = min(DRAW_CHUNK, self.n - self.frontier)
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


def ranges(positions: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending positions as maximal ``[lo, hi)`` ranges."""
    out: list[tuple[int, int]] = []
    for p in positions:
        if out and out[-1][1] == p:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out
