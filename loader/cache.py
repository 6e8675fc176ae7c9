"""A local folder of whole shards, filled once from remote storage and bounded by size (LRU).

Used by :class:`loader.shards.ShardSet` when ``cache_dir`` is given: the first read of a shard downloads
it whole into the folder (a temporary file, checked against the index's size and sha256, then renamed),
later epochs read it from there. Files are named by a hash of the shard's full URL plus the start of
its sha256, so two shard sets never share an entry and a re-converted set does not reuse stale files.

Several processes (DataLoader workers) may share one folder: a per-shard lock file makes one of them
download while the others wait and then read the finished file. The folder's size is kept under
``max_bytes`` by deleting the least recently used shards (their modification time is the last use);
the shard just opened is never deleted, and an open file stays readable after another process deletes
it (POSIX), so eviction never breaks a read. While a shard downloads the folder can pass the bound by
that one shard. No torch here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from loader.errors import ConfigurationError

try:  # POSIX: lock files serialise the download of one shard across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, concurrent downloads of one shard both succeed
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".shard"


class HashingWriter:
    """A binary sink that writes to ``fh`` and keeps the byte count and sha256 of what went through.

    Parameters
    ----------
    fh : BinaryIO
        The file written to.
    """

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        """Write ``data``, hashing and counting it; return its length."""
        self.fh.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)


class ShardCache:
    """Whole shards in a local folder, least recently used ones evicted beyond ``max_bytes``.

    Parameters
    ----------
    folder : str or path
        The cache folder (created). Several shard sets and processes may share it.
    max_bytes : int, optional
        Bound on the bytes of cached shards; ``None`` keeps everything.
    """

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int | None = None):
        if max_bytes is not None and int(max_bytes) < 0:
            raise ConfigurationError(f"cache_bytes must be >= 0, got {max_bytes}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self._last_use = 0

    def path_for(self, url: str, sha256: str) -> Path:
        """The cache file of the shard at ``url`` whose index sha256 is ``sha256``."""
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
        return self.folder / f"{key}-{sha256[:16]}{SUFFIX}"

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        # Lock files stay (empty, one per shard ever cached): deleting one another process waits on would
        # let a third process take a second lock on a new file of the same name.
        with open(path.with_name(f".{path.name}.lock"), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def open(
        self, url: str, size: int, sha256: str, fill: Callable[[HashingWriter], None], name: str | None = None
    ) -> tuple[BinaryIO, bool]:
        """Open the cached shard of ``url``, downloading it with ``fill`` first when it is not cached.

        A download left unfinished by a process that died (a ``.partial`` file of this entry) is
        removed first: only the holder of the entry's lock writes one.

        Parameters
        ----------
        url : str
            Full URL of the shard (names the cache entry, and the errors unless ``name`` is given).
        size, sha256 : int, str
            The shard's size and sha256 from the index; a download must match both.
        fill : callable
            ``fill(writer)`` writes the whole shard into ``writer`` (a :class:`HashingWriter`).
        name : str, optional
            How errors name the shard (default ``url``).

        Returns
        -------
        (file, hit)
            The open cache file (binary, read-only) and whether it was already cached.

        Raises
        ------
        loader.shards.ShardIntegrityError
            The downloaded bytes differ from the index in size or sha256 (the message names the
            shard); nothing is left in the cache then. Also a :class:`~loader.format.FormatError`.
        """
        name = url if name is None else name
        path = self.path_for(url, sha256)
        with self._locked(path):
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                pass
            else:
                if os.fstat(fh.fileno()).st_size == size:
                    self._touch(path)
                    return fh, True
                fh.close()  # a stale or damaged entry: fetch it again
                path.unlink(missing_ok=True)
            for stale in self.folder.glob(f".{path.name}.*.partial"):  # left by a process killed mid-download
                stale.unlink(missing_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
            try:
                with open(tmp, "wb") as out:
                    writer = HashingWriter(out)
                    fill(writer)
                if writer.size != size or writer.sha.hexdigest() != sha256:
                    from loader.shards import ShardIntegrityError  # not at the top: loader.shards imports this

                    raise ShardIntegrityError(
                        f"{name}: downloaded {writer.size} bytes with sha256 {writer.sha.hexdigest()[:16]}…, "
                        f"the index says {size} bytes with sha256 {sha256[:16]}…",
                        name,
                    )
                os.replace(tmp, path)
                self._touch(path)
            finally:
                tmp.unlink(missing_ok=True)
            fh = open(path, "rb")
        self.evict(keep=path)
        return fh, False

    def _touch(self, path: Path) -> None:
        """Mark ``path`` as just used: its modification time, from a fine clock, strictly increasing here
        (file systems stamp files with a coarse clock, so two uses within a few ms would tie)."""
        self._last_use = max(time.time_ns(), self._last_use + 1)
        os.utime(path, ns=(self._last_use, self._last_use))

    def entries(self) -> list[tuple[int, int, Path]]:
        """The cached shards as ``(last use in ns, bytes, path)``, least recently used first."""
        out = []
        for p in self.folder.iterdir():
            if p.name.startswith(".") or not p.name.endswith(SUFFIX):
                continue
            try:
                st = p.stat()
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            out.append((st.st_mtime_ns, st.st_size, p))
        return sorted(out)

    def size(self) -> int:
        """Bytes of cached shards."""
        return sum(size for _, size, _ in self.entries())

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete least recently used shards until the folder fits ``max_bytes``; never ``keep``.

        Returns the deleted paths.
        """
        if self.max_bytes is None:
            return []
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        gone = []
        for _, size, p in entries:
            if total <= self.max_bytes:
                break
            if keep is not None and p == keep:
                continue
            p.unlink(missing_ok=True)
            total -= size
            gone.append(p)
        return gone
