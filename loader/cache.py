"""A local folder of whole shards, filled once from remote storage and bounded by size (LRU).

Used by :class:`loader.shards.ShardSet` when ``cache_dir`` is given: the first read of a shard downloads
it whole into the folder (a temporary file, checked against the index's size and sha256, then renamed),
later epochs read it from there. Files are named by a hash of the shard's full URL plus the start of
its sha256, so two shard sets never share an entry and a re-converted set does not reuse stale files.

Several processes and threads may share one folder. One lock protocol covers every entry: a per-shard
lock file (``flock``) is held while the entry is downloaded, opened, marked as used or deleted. So one
process downloads while the others wait and then open the finished file, and eviction, which deletes
the least recently used shards beyond ``max_bytes`` (modification time = last use), takes each
victim's lock first and passes over an entry another process holds. An opened file stays readable
after its entry is deleted (POSIX). While a shard downloads the folder can pass the bound by that one
shard. A failure of the cache folder itself (full disk, permissions) raises
:class:`~loader.errors.CacheError` naming the folder. No torch here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from loader.errors import CacheError, ConfigurationError, ShardIntegrityError

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
    where : str, optional
        What a failing write names (the cache folder); it then raises :class:`CacheError`.
    """

    def __init__(self, fh: BinaryIO, where: str | None = None):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0
        self._where = where

    def write(self, data: bytes | memoryview) -> int:
        """Write ``data``, hashing and counting it; return its length."""
        try:
            self.fh.write(data)
        except OSError as exc:
            if self._where is None:
                raise
            raise CacheError(f"cache {self._where}: cannot write: {exc}") from exc
        self.sha.update(data)
        self.size += len(data)
        return len(data)


class ShardCache:
    """Whole shards in a local folder, least recently used ones evicted beyond ``max_bytes``.

    Parameters
    ----------
    folder : str or path
        The cache folder (created). Several shard sets, processes and threads may share it.
    max_bytes : int, optional
        Bound on the bytes of cached shards; ``None`` keeps everything.

    Raises
    ------
    CacheError
        The folder cannot be made.
    """

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int | None = None):
        if max_bytes is not None and int(max_bytes) < 0:
            raise ConfigurationError(f"cache_bytes must be >= 0, got {max_bytes}")
        self.folder = Path(folder)
        with self._io("cannot make the folder"):
            self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self._last_use = 0
        self._clock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        del state["_clock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._clock = threading.Lock()

    @contextlib.contextmanager
    def _io(self, what: str) -> Iterator[None]:
        """Turn an ``OSError`` of the cache folder into :class:`CacheError` naming the folder."""
        try:
            yield
        except CacheError:
            raise
        except OSError as exc:
            raise CacheError(f"cache {self.folder}: {what}: {exc}") from exc

    def path_for(self, url: str, sha256: str) -> Path:
        """The cache file of the shard at ``url`` whose index sha256 is ``sha256``."""
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
        return self.folder / f"{key}-{sha256[:16]}{SUFFIX}"

    @contextlib.contextmanager
    def _locked(self, path: Path, wait: bool = True) -> Iterator[bool]:
        """Hold the entry's lock (yields ``True``); with ``wait=False`` yields ``False`` when another holds it.

        Lock files stay (empty, one per shard ever cached): deleting one that another process waits on
        would let a third process lock a new file of the same name.
        """
        if fcntl is None:  # pragma: no cover
            yield True
            return
        with self._io("cannot open a lock file"):
            lock = open(path.with_name(f".{path.name}.lock"), "a+b")
        with lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def open(
        self, url: str, size: int, sha256: str, fill: Callable[[HashingWriter], None], name: str | None = None
    ) -> tuple[BinaryIO, bool]:
        """Open the cached shard of ``url``, downloading it with ``fill`` first when it is not cached.

        Everything happens under the entry's lock. A download left unfinished by a process that died
        (a ``.partial`` file of this entry) is removed first.

        Parameters
        ----------
        url : str
            Full URL of the shard (names the cache entry, and the errors unless ``name`` is given).
        size, sha256 : int, str
            The shard's size and sha256 from the index; a download must match both.
        fill : callable
            ``fill(writer)`` writes the whole shard into ``writer`` (a :class:`HashingWriter`); its
            storage errors pass through unchanged.
        name : str, optional
            How errors name the shard (default ``url``).

        Returns
        -------
        (file, hit)
            The open cache file (binary, read-only) and whether it was already cached.

        Raises
        ------
        ShardIntegrityError
            The downloaded bytes differ from the index in size or sha256 (names the shard); nothing
            is left in the cache then.
        CacheError
            The cache folder failed (names it).
        """
        name = url if name is None else name
        path = self.path_for(url, sha256)
        with self._locked(path):
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise CacheError(f"cache {self.folder}: cannot open {path.name}: {exc}") from exc
            else:
                if os.fstat(fh.fileno()).st_size == size:
                    with self._io("cannot mark an entry as used"):
                        self._touch(path)
                    return fh, True
                fh.close()  # a stale or damaged entry: fetch it again
                with self._io("cannot remove a damaged entry"):
                    path.unlink(missing_ok=True)
            with self._io("cannot download into the folder"):
                for stale in self.folder.glob(f".{path.name}.*.partial"):  # left by a process killed mid-download
                    stale.unlink(missing_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
                out = open(tmp, "wb")
            try:
                with out:
                    writer = HashingWriter(out, str(self.folder))
                    fill(writer)
                    with self._io("cannot write"):
                        out.flush()
                if writer.size != size or writer.sha.hexdigest() != sha256:
                    raise ShardIntegrityError(
                        f"{name}: downloaded {writer.size} bytes with sha256 {writer.sha.hexdigest()[:16]}…, "
                        f"the index says {size} bytes with sha256 {sha256[:16]}…",
                        name,
                    )
                with self._io("cannot store a downloaded shard"):
                    os.replace(tmp, path)
                    self._touch(path)
                    fh = open(path, "rb")
            finally:
                tmp.unlink(missing_ok=True)
        self.evict(keep=path)
        return fh, False

    def _touch(self, path: Path) -> None:
        """Mark ``path`` as just used: its modification time, from a fine clock, strictly increasing here
        (file systems stamp files with a coarse clock, so two uses within a few ms would tie)."""
        with self._clock:
            self._last_use = max(time.time_ns(), self._last_use + 1)
            stamp = self._last_use
        os.utime(path, ns=(stamp, stamp))

    def entries(self) -> list[tuple[int, int, Path]]:
        """The cached shards as ``(last use in ns, bytes, path)``, least recently used first."""
        out = []
        with self._io("cannot list the folder"):
            names = list(self.folder.iterdir())
        for p in names:
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
        """Delete least recently used shards until the folder fits ``max_bytes``; never ``keep``, nor an
        entry whose lock another process or thread holds. Returns the deleted paths."""
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
            with self._locked(p, wait=False) as mine:
                if not mine:  # being downloaded or opened: its holder will evict later
                    continue
                with self._io("cannot evict an entry"):
                    p.unlink(missing_ok=True)
            total -= size
            gone.append(p)
        return gone
