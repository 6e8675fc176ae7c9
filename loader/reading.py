"""Fetch a consumer's samples by position: the bytes side of one iteration of the dataset.

A consumer's runs (:func:`loader.order.plan`) laid end to end number its samples ``0 … n-1``
(*positions*). :class:`RunReader` fetches the compressed frames of positions through
:meth:`loader.shards.ShardSet.iter_frames`: in a given reading order, keeping one open read per
run in progress (:func:`loader.order.interleave` bounds how many), or a sorted set of positions
(the shuffle buffer's content on resume). Frames are copied out of their read block, so a sample
held in the shuffle buffer does not pin its block.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from loader.order import Run, ranges
from loader.shards import ReadStats, ShardSet

Fetched = tuple[bytes, int, int]
"""``(frame, shard number, sample number in the shard)``."""


class RunReader:
    """Reads the frames of one consumer's runs.

    Parameters
    ----------
    shard_set : ShardSet
        The opened set.
    shards : list of dict
        The split's shard entries (a run's shard number indexes it).
    runs : list of Run
        The consumer's runs, in plan order.
    on_error : {"raise", "skip"}
        As :meth:`ShardSet.iter_frames`; a skipped shard leaves its run's remaining positions missing.
    stats : ReadStats
        Where reads are counted.
    block : int, optional
        Bytes per read (default :data:`loader.shards.READ_BLOCK`).
    """

    def __init__(
        self,
        shard_set: ShardSet,
        shards: list[dict[str, Any]],
        runs: Sequence[Run],
        on_error: str,
        stats: ReadStats,
        block: int | None = None,
    ):
        self._set, self._shards, self._runs = shard_set, shards, list(runs)
        self._on_error, self._stats, self._block = on_error, stats, block
        self.starts = np.cumsum([0] + [b - a for _, a, b in self._runs]).tolist()

    def _frames(self, run: int, first: int, stop: int) -> Iterator[memoryview]:
        """Frames of positions ``first..stop-1``, all inside run ``run``."""
        shard_no, a, _ = self._runs[run]
        k = a + first - self.starts[run]
        return self._set.iter_frames(self._shards[shard_no], k, k + stop - first, on_error=self._on_error,
                                     stats=self._stats, block=self._block)

    def _where(self, pos: int) -> tuple[int, int, int]:
        """``(run, shard number, sample)`` of position ``pos``."""
        run = bisect.bisect_right(self.starts, pos) - 1
        shard_no, a, _ = self._runs[run]
        return run, shard_no, a + pos - self.starts[run]

    def read_sorted(self, positions: Sequence[int]) -> dict[int, Fetched | None]:
        """Frames of ascending ``positions`` (``None`` for one a skipped shard left out), by position."""
        out: dict[int, Fetched | None] = {int(p): None for p in positions}
        for lo, hi in ranges(positions):
            while lo < hi:
                run = bisect.bisect_right(self.starts, lo) - 1
                stop = min(hi, self.starts[run + 1])
                pos = lo
                for frame in self._frames(run, lo, stop):
                    _, shard_no, sample = self._where(pos)
                    out[pos] = (bytes(frame), shard_no, sample)
                    pos += 1
                lo = stop
        return out

    def read_in_order(self, positions: Sequence[int]) -> Iterator[Fetched | None]:
        """Frames of ``positions`` in that order (``None`` for a sample a skipped shard left out).

        The positions of each run must come in ascending, consecutive order from the first one asked
        for (what :func:`loader.order.interleave` gives); a run's read is opened at its first
        position and closed after its last.
        """
        open_reads: dict[int, Iterator[memoryview]] = {}
        dead: set[int] = set()
        for p in positions:
            run, shard_no, sample = self._where(int(p))
            if run in dead:
                yield None
                continue
            it = open_reads.get(run)
            if it is None:
                it = open_reads[run] = self._frames(run, int(p), self.starts[run + 1])
            frame = next(it, None)
            if frame is None:  # the shard was skipped (on_error="skip"): the rest of the run is missing
                dead.add(run)
                del open_reads[run]
                yield None
                continue
            if int(p) == self.starts[run + 1] - 1:
                del open_reads[run]
            yield bytes(frame), shard_no, sample
