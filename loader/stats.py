"""What reading a shard set cost and what it had to leave out: the counters every read adds to."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReadStats:
    """What reading a shard set cost and what it had to leave out.

    Attributes
    ----------
    retries : int
        Reads (and size/index requests) retried after a transient error.
    skipped_shards : list of str
        URLs of the shards skipped with ``on_error="skip"`` (one entry per skipped read run).
    skipped_samples : int
        Samples those skips left out (the ones not yielded before the failure).
    bytes_read : int
        Compressed bytes read from the shard set's storage (downloads into the cache included; reads
        the cache serves are not).
    cache_hits, cache_misses : int
        Shards opened from the cache folder / downloaded into it.
    requests : int
        Requests sent to the storage for shards: size checks and reads, retries included.
    """

    retries: int = 0
    skipped_shards: list[str] = field(default_factory=list)
    skipped_samples: int = 0
    bytes_read: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    requests: int = 0
