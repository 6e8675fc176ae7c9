"""Shard sets on any fsspec location: open the index, fetch sample frames by byte range.

Sources: a local path, ``file://``, ``http(s)://`` or ``s3://`` (s3fs; credentials, endpoint and region
from the standard AWS environment variables and config files, e.g. ``AWS_ENDPOINT_URL``, or from
``storage_options``). Samples are read by byte range, about :data:`READ_BLOCK` bytes at a time, never a
whole shard at once (unless a local cache folder is asked for, see :mod:`loader.cache`).

Every read is retried with exponential backoff on transient errors (connection errors, timeouts, HTTP
5xx/408/429, other ``OSError`` but file-not-found and permission errors); the retries are counted in
:class:`ReadStats`. For ``s3://`` botocore's own retries are switched off by default (pass
``storage_options={"config_kwargs": {"retries": ...}}`` to change that) so that a failing read is seen,
counted and bounded here. A read that keeps failing raises :class:`StorageError` naming the URL and
the byte range.

Damage is never retried: a shard the index names but storage does not have raises
:class:`ShardMissingError`, one of another size :class:`ShardIntegrityError` (naming the first
sample a truncation cut off), and so does a sample frame that does not decode (its zstd checksum
fails) once the dataset decodes it, naming the sample's number in the shard and its byte offset.
:func:`loader.verify.verify` reports each of these as one line (see ``docs/SEMANTICS.md``).

No torch here: ``shardgen info`` / ``shardgen verify`` use this module too.
"""

from __future__ import annotations

import bisect
import copy
import operator
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

import fsspec
import numpy as np

from loader.cache import HashingWriter, ShardCache
from loader.errors import (
    CacheError,
    ConfigurationError,
    FormatError,
    ShardIntegrityError,
    ShardMissingError,
    ShardSetNotFoundError,
    StorageError,
)
from loader.format import INDEX_NAME, loads_index
from loader.index import decode_canonical
from loader.retry import call_with_retries, is_transient
from loader.stats import ReadStats

__all__ = [
    "READ_BLOCK", "ON_ERROR", "ReadStats", "ShardSet", "open_shard_set", "call_with_retries", "is_transient",
    "StorageError", "ShardIntegrityError", "ShardMissingError", "ShardSetNotFoundError",
]

READ_BLOCK = 8 * 1024 * 1024
ON_ERROR = ("raise", "skip")
READ_AHEAD_THREADS = 4  # blocks read ahead at once per process (one per interleaved run, see loader.order)
_POOL_LOCK = threading.Lock()

T = TypeVar("T")


class _ShortRead(OSError):
    """Fewer (or more) bytes came back than asked for: retried like a dropped connection."""


HTTP_READ_TIMEOUT = 60.0
"""Seconds an ``http(s)://`` read may stall before it counts as a failure and is retried."""


def _storage_options(url: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """The caller's options, plus defaults: for ``s3://`` botocore retries off (this module retries and
    counts), for ``http(s)://`` a read timeout of :data:`HTTP_READ_TIMEOUT` instead of aiohttp's 5 minutes.
    """
    opts = copy.deepcopy(dict(storage_options or {}))
    protocol = fsspec.core.split_protocol(url)[0]
    if protocol in ("s3", "s3a"):
        config = opts.setdefault("config_kwargs", {})
        config.setdefault("retries", {"total_max_attempts": 1})
    elif protocol in ("http", "https"):
        client = opts.setdefault("client_kwargs", {})
        if "timeout" not in client:
            import aiohttp

            client["timeout"] = aiohttp.ClientTimeout(total=None, sock_connect=HTTP_READ_TIMEOUT,
                                                      sock_read=HTTP_READ_TIMEOUT)
    return opts


class ShardSet:
    """An opened shard set: its filesystem, base path, validated index, read settings and statistics.

    Made by :func:`open_shard_set`. It can be pickled and used after a fork (DataLoader workers): the
    filesystem object is made again in a new process.

    Attributes
    ----------
    url : str
        The shard set's folder as given (without ``index.json``); shard URLs are ``url/<file>``.
    base : str
        The folder as a path on :attr:`fs`.
    index : dict
        The validated ``index.json``.
    retries, backoff : int, float
        Retry settings of every read (see :func:`call_with_retries`).
    cache : ShardCache or None
        The local cache folder of whole shards, if any.
    prefetch : bool
        Read the next block of a run in a background thread while the current one is used.
    stats : ReadStats
        Counts of the reads that were not given their own ``stats``.
    """

    def __init__(
        self,
        url: str,
        base: str,
        index: dict[str, Any],
        *,
        fs: Any = None,
        storage_options: dict[str, Any] | None = None,
        retries: int = 5,
        backoff: float = 0.2,
        cache: ShardCache | None = None,
        stats: ReadStats | None = None,
        prefetch: bool = True,
    ):
        self.url = url
        self.base = base
        self.index = index
        self.storage_options = dict(storage_options or {})
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.cache = cache
        self.stats = stats if stats is not None else ReadStats()
        self.prefetch = bool(prefetch)
        self._fs = fs
        self._pid = os.getpid()
        self._sizes_ok: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._starts: dict[str, list[int]] = {}  # per split: first position of every shard
        self._stored_at: dict[str, np.ndarray] = {}  # per permuted split: dataset position -> stored position

    @property
    def fs(self) -> Any:
        """The fsspec filesystem (made again after a fork: async filesystems are not fork-safe)."""
        if self._fs is None or self._pid != os.getpid():
            self._fs = fsspec.core.url_to_fs(self.url, **copy.deepcopy(self.storage_options))[0]
            self._pid = os.getpid()
        return self._fs

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fs"] = state["_pool"] = None
        return state

    def shards(self, split: str) -> list[dict[str, Any]]:
        """The shard entries of ``split`` (else ``ConfigurationError``, a ``ValueError``, naming the splits there)."""
        try:
            return self.index["splits"][split]["shards"]
        except KeyError:
            raise ConfigurationError(
                f"{self.url}: no split {split!r}; available: {', '.join(sorted(self.index['splits']))}"
            ) from None

    def locate(self, split: str, i: int) -> tuple[dict[str, Any], int]:
        """Where sample ``i`` of ``split`` (index order, shard by shard) lives: ``(shard entry, k)``.

        Parameters
        ----------
        split : str
            Split name.
        i : int
            Position of the sample in the split, ``0 <= i < samples`` (negative counts from the end).

        Returns
        -------
        tuple
            The shard's index entry and the sample's number ``k`` inside it.

        Raises
        ------
        IndexError
            ``i`` is outside the split.
        """
        shards = self.shards(split)
        starts = self._starts.get(split)
        if starts is None:
            starts = [0]
            for s in shards:
                starts.append(starts[-1] + int(s["samples"]))
            self._starts[split] = starts
        n = starts[-1]
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sample {i} outside split {split!r} of {n} samples")
        pos = bisect.bisect_right(starts, i) - 1
        return shards[pos], i - starts[pos]

    def stored_position(self, split: str, i: int) -> int:
        """Where the ``i``-th sample of ``split`` in the dataset's own order (SpikingJelly's) is stored.

        The index's ``permutation`` of the split (``docs/FORMAT.md``) says which sample each stored
        position holds; without one, stored order is the dataset's order.

        Raises
        ------
        IndexError
            ``i`` is outside the split.
        """
        self.shards(split)  # an unknown split raises
        n = int(self.index["splits"][split]["samples"])
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sample {i} outside split {split!r} of {n} samples")
        inverse = self._stored_at.get(split)
        if inverse is None:
            perm = self.index["splits"][split].get("permutation")
            if perm is None:
                return i
            canonical = decode_canonical(perm, int(self.index["splits"][split]["samples"]), split)
            inverse = np.empty_like(canonical)
            inverse[canonical] = np.arange(len(canonical), dtype=np.int64)
            self._stored_at[split] = inverse
        return int(inverse[i])

    def read_sample(self, split: str, i: int, stats: ReadStats | None = None) -> bytes:
        """The compressed frame of sample ``i`` of ``split``: one byte-range read by the index's offsets.

        Served from the cache folder when the set was opened with ``cache_dir`` (the whole shard is
        fetched once), else read by range (bytes ``[offsets[k], offsets[k+1])`` of its shard).

        Parameters
        ----------
        split : str
            Split name.
        i : int
            Position of the sample in the split (see :meth:`locate`).
        stats : ReadStats, optional
            Where the read is counted (default :attr:`stats`).

        Returns
        -------
        bytes
            The sample's zstd frame; :func:`loader.format.decode_sample` decodes it.
        """
        shard, k = self.locate(split, i)
        if self.cache is None:
            return self.read_range(shard, k, k + 1, stats)
        return bytes(next(iter(self.iter_frames(shard, k, k + 1, stats=stats))))

    def path(self, shard: dict[str, Any]) -> str:
        """Full path of a shard on :attr:`fs`."""
        return f"{self.base}/{shard['file']}"

    def shard_url(self, shard: dict[str, Any]) -> str:
        """The shard's URL as errors, warnings and :class:`ReadStats` name it."""
        return f"{self.url}/{shard['file']}"

    def _retry(self, fn: Callable[[], T], what: str, stats: ReadStats) -> T:
        def count(_exc: BaseException) -> None:
            stats.retries += 1

        return call_with_retries(fn, what, retries=self.retries, backoff=self.backoff, on_retry=count)

    def _missing(self, shard: dict[str, Any]) -> ShardMissingError:
        url = self.shard_url(shard)
        return ShardMissingError(f"{url}: missing (the index names it)", url)

    def size_error(self, shard: dict[str, Any], size: int) -> ShardIntegrityError:
        """The error for a shard of ``size`` bytes where the index says otherwise (names the first sample cut off)."""
        url, want, offsets = self.shard_url(shard), int(shard["bytes"]), shard["offsets"]
        if size > want:
            return ShardIntegrityError(
                f"{url}: {size} bytes, the index says {want} ({size - want} bytes too many)", url, offset=want
            )
        k = int(np.searchsorted(offsets, size, side="right")) - 1  # the first sample whose frame does not end by `size`
        n = len(offsets) - 1
        if k < n:
            detail = f"truncated: samples {k}..{n - 1} from byte {offsets[k]} on are cut off"
        else:
            detail, k = "truncated: the end-of-archive frame is cut off", None
        return ShardIntegrityError(f"{url}: {size} bytes, the index says {want} ({detail})", url, k, size)

    def sample_error(self, shard: dict[str, Any], k: int, exc: BaseException) -> ShardIntegrityError:
        """The error for sample ``k`` of ``shard`` whose frame did not decode (``exc`` says why)."""
        url, offset = self.shard_url(shard), int(shard["offsets"][k])
        return ShardIntegrityError(f"{url}: sample {k} at byte {offset}: {exc}", url, k, offset)

    def remote_size(self, shard: dict[str, Any], stats: ReadStats | None = None) -> int | None:
        """The shard's size on its storage (``None`` where the server does not say)."""
        stats = self.stats if stats is None else stats

        def once() -> Any:
            stats.requests += 1
            return self.fs.size(self.path(shard))

        try:
            size = self._retry(once, f"{self.shard_url(shard)}: size", stats)
        except FileNotFoundError:
            raise self._missing(shard) from None
        return None if size is None else int(size)

    def check_size(self, shard: dict[str, Any], stats: ReadStats | None = None) -> None:
        """Raise when the shard is missing or its size differs from the index (asked once per shard)."""
        if shard["file"] in self._sizes_ok:
            return
        size = self.remote_size(shard, stats)
        if size is not None and size != shard["bytes"]:
            raise self.size_error(shard, size)
        self._sizes_ok.add(shard["file"])

    def read_bytes(self, shard: dict[str, Any], lo: int, hi: int, stats: ReadStats | None = None) -> bytes:
        """Bytes ``[lo, hi)`` of a shard, retried on transient errors and checked for length."""
        stats = self.stats if stats is None else stats
        path = self.path(shard)

        def once() -> bytes:
            stats.requests += 1
            data = self.fs.cat_file(path, start=lo, end=hi)
            if len(data) != hi - lo:
                raise _ShortRead(f"the read returned {len(data)} bytes")
            return data

        try:
            data = self._retry(once, f"{self.shard_url(shard)} bytes [{lo}, {hi})", stats)
        except FileNotFoundError:
            raise self._missing(shard) from None
        stats.bytes_read += len(data)
        return data

    def read_range(self, shard: dict[str, Any], start: int, stop: int, stats: ReadStats | None = None) -> bytes:
        """Bytes ``[offsets[start], offsets[stop])`` of a shard: the frames of samples start..stop-1."""
        self.check_size(shard, stats)
        offsets = shard["offsets"]
        return self.read_bytes(shard, int(offsets[start]), int(offsets[stop]), stats)

    def read_shard(self, shard: dict[str, Any], stats: ReadStats | None = None) -> bytes:
        """The whole shard as stored (whatever its size), read :data:`READ_BLOCK` bytes at a time."""
        size = self.remote_size(shard, stats)
        if size is None:
            what = f"{self.shard_url(shard)}"
            stats = self.stats if stats is None else stats
            try:
                data = self._retry(lambda: _counted(stats, self.fs.cat_file, self.path(shard)), what, stats)
            except FileNotFoundError:
                raise self._missing(shard) from None
            stats.bytes_read += len(data)
            return data
        return b"".join(
            self.read_bytes(shard, lo, min(lo + READ_BLOCK, size), stats) for lo in range(0, size, READ_BLOCK)
        )

    def _open_cached(self, shard: dict[str, Any], stats: ReadStats) -> BinaryIO:
        """The shard's file in the cache folder, downloaded first (checked by size and sha256) if needed."""
        assert self.cache is not None

        def fill(writer: HashingWriter) -> None:
            self.check_size(shard, stats)
            size = shard["bytes"]
            for lo in range(0, size, READ_BLOCK):
                writer.write(self.read_bytes(shard, lo, min(lo + READ_BLOCK, size), stats))

        key = self.fs.unstrip_protocol(self.path(shard))
        fh, hit = self.cache.open(key, shard["bytes"], shard["sha256"], fill, name=self.shard_url(shard))
        if hit:
            stats.cache_hits += 1
        else:
            stats.cache_misses += 1
        return fh

    def iter_frames(
        self,
        shard: dict[str, Any],
        start: int,
        stop: int,
        on_error: str = "raise",
        stats: ReadStats | None = None,
        block: int | None = None,
    ) -> Iterator[memoryview]:
        """Yield the compressed frames of samples ``start..stop-1``, reading about ``block`` bytes at a time.

        Parameters
        ----------
        shard : dict
            The shard's entry in the index.
        start, stop : int
            Samples of the shard to yield.
        on_error : {"raise", "skip"}
            What to do when the shard is missing, has the wrong size or sha256 (cache), or a read keeps
            failing: raise (the error names the URL), or skip the rest of this run: its URL goes to
            ``stats.skipped_shards``, the samples not yet yielded to ``stats.skipped_samples``, and a
            warning ``"eventshard: skipped <url>: <why>"`` is issued.
        stats : ReadStats, optional
            Where retries, skips and bytes are counted (default :attr:`stats`).
        block : int, optional
            Bytes per read (at least one sample; default :data:`READ_BLOCK`); the next block is read
            ahead while this one is used.

        Raises
        ------
        CacheError
            The cache folder failed (full, not writable): raised whatever ``on_error`` says.
        """
        if on_error not in ON_ERROR:
            raise ConfigurationError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        stats = self.stats if stats is None else stats
        ends = np.asarray(shard["offsets"][start : stop + 1]).tolist()  # Python ints: indexed per sample below
        blocks = _runs(ends, start, block)
        fh: BinaryIO | None = None
        pending: Future[bytes] | None = None
        try:
            for n, (i, j) in enumerate(blocks):
                lo, hi = ends[i - start], ends[j - start]
                try:
                    if self.cache is not None:
                        if fh is None:
                            fh = self._open_cached(shard, stats)
                        block = os.pread(fh.fileno(), hi - lo, lo)
                        if len(block) != hi - lo:  # the file was checked when opened: not expected
                            url = self.shard_url(shard)
                            raise ShardIntegrityError(f"{url}: cached copy too short at byte {lo}", url, i, lo)
                    else:
                        if pending is None:
                            block = self.read_range(shard, i, j, stats)
                        else:
                            block, pending = pending.result(), None
                        if self.prefetch and n + 1 < len(blocks):  # fetch the next block while this one is used
                            pending = self._executor().submit(self.read_range, shard, *blocks[n + 1], stats)
                except (OSError, FormatError) as exc:
                    if on_error == "raise" or isinstance(exc, CacheError):
                        raise
                    url = self.shard_url(shard)
                    stats.skipped_shards.append(url)
                    stats.skipped_samples += stop - i
                    why = str(exc).removeprefix(f"{url}: ")  # most messages start with the URL already
                    warnings.warn(f"eventshard: skipped {url}: {why}", stacklevel=2)
                    return
                view = memoryview(block)
                for k in range(i - start, j - start):
                    yield view[ends[k] - lo : ends[k + 1] - lo]
        finally:
            if pending is not None:
                pending.cancel()  # a read already running finishes in the background; its bytes are dropped
            if fh is not None:
                fh.close()

    def _executor(self) -> ThreadPoolExecutor:
        """This process's read-ahead threads (threads do not survive a fork)."""
        pool = self._pool
        if pool is None or self._pool_pid != os.getpid():
            with _POOL_LOCK:
                if self._pool is None or self._pool_pid != os.getpid():
                    self._pool = ThreadPoolExecutor(max_workers=READ_AHEAD_THREADS,
                                                    thread_name_prefix="eventshard-read-ahead")
                    self._pool_pid = os.getpid()
                pool = self._pool
        return pool


def _blocks(offsets: np.ndarray, start: int, stop: int, block: int | None = None) -> list[tuple[int, int]]:
    """Samples ``start..stop-1`` cut into runs ``(i, j)`` of about ``block`` bytes (default :data:`READ_BLOCK`;
    at least one sample); ``offsets`` as :func:`loader.index.decode_offsets` gives them."""
    return _runs(np.asarray(offsets[start : stop + 1]).tolist(), start, block)


def _runs(ends: list[int], start: int, block: int | None = None) -> list[tuple[int, int]]:
    """:func:`_blocks` on ``ends``, the offsets of samples ``start`` … ``start + len(ends) - 1`` as Python ints."""
    block = READ_BLOCK if block is None else block
    stop = start + len(ends) - 1
    out = []
    i = start
    while i < stop:
        j = i + 1
        while j < stop and ends[j + 1 - start] - ends[i - start] <= block:
            j += 1
        out.append((i, j))
        i = j
    return out


def _strip_index(url: str) -> str:
    url = os.fspath(url)
    if url.endswith("/" + INDEX_NAME) or url == INDEX_NAME:
        url = url[: -len(INDEX_NAME)].rstrip("/") or "."
    return url.rstrip("/") if url not in ("/",) else url


def open_shard_set(
    url: str | os.PathLike[str],
    storage_options: dict[str, Any] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_bytes: int | None = None,
    retries: int = 5,
    backoff: float = 0.2,
    prefetch: bool = True,
) -> ShardSet:
    """Open a shard set by its folder or ``index.json`` (local path, ``file://``, ``http(s)://``, ``s3://``).

    Parameters
    ----------
    url : str or path
        The shard set's folder or its ``index.json``.
    storage_options : dict, optional
        fsspec options (for s3fs e.g. ``{"endpoint_url": ..., "key": ..., "secret": ...}``); by
        default s3fs takes credentials, endpoint and region from the AWS environment/config.
    cache_dir : str or path, optional
        Keep whole shards in this local folder (downloaded once, checked against the index's size and
        sha256) and read them from there in later epochs; see :mod:`loader.cache`.
    cache_bytes : int, optional
        Bound on the cache folder's size (least recently used shards go first); needs ``cache_dir``.
    retries, backoff : int, float
        Repeats of a read after transient errors and the first wait in seconds (doubling each time).
    prefetch : bool
        Fetch the next block of a run in a background thread while the current one is decoded (one
        block ahead: about 8 MiB more memory per reading process).

    Raises
    ------
    ShardSetNotFoundError
        No ``index.json`` there (a ``FileNotFoundError``).
    FormatError
        The index is not a valid eventshard index (another format or version, …); names the index.
    StorageError
        The index could not be read after ``retries`` repeats.
    """
    if retries < 0 or backoff < 0:
        raise ConfigurationError(f"retries and backoff must be >= 0, got {retries} and {backoff}")
    if cache_bytes is not None and cache_dir is None:
        raise ConfigurationError("cache_bytes needs cache_dir")
    url = _strip_index(os.fspath(url))
    opts = _storage_options(url, storage_options)
    fs, base = fsspec.core.url_to_fs(url, **copy.deepcopy(opts))
    base = base.rstrip("/")
    stats = ReadStats()
    index_url = f"{url}/{INDEX_NAME}"

    def count(_exc: BaseException) -> None:
        stats.retries += 1

    try:
        data = call_with_retries(
            lambda: fs.cat_file(f"{base}/{INDEX_NAME}"), index_url, retries=retries, backoff=backoff, on_retry=count
        )
    except FileNotFoundError:
        raise ShardSetNotFoundError(
            f"{url}: no {INDEX_NAME} (not a shard set, or its conversion did not finish)"
        ) from None
    try:
        index = loads_index(data)
    except FormatError as exc:
        raise FormatError(f"{index_url}: {str(exc).removeprefix(INDEX_NAME + ': ')}") from None
    cache = ShardCache(cache_dir, cache_bytes) if cache_dir is not None else None
    return ShardSet(
        url,
        base,
        index,
        fs=fs,
        storage_options=opts,
        retries=retries,
        backoff=backoff,
        cache=cache,
        stats=stats,
        prefetch=prefetch,
    )


def _counted(stats: ReadStats, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, counted as one request in ``stats``."""
    stats.requests += 1
    return fn(*args)
