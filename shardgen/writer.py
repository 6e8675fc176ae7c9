"""Compressed sample frames → shard files and ``index.json``, atomically.

A shard exists under its final name only once it is complete (written as ``.<name>.partial``,
then renamed), and ``index.json`` is written last, after every shard, so an interrupted run
never leaves a set that looks complete. Output to a URL is staged in a local folder and
uploaded with fsspec, shards first (a few at a time, each retried on transient errors and checked
for size at the URL) and the index last, once every shard is there; an earlier set's index at the
URL is removed before anything else, then its shards.

Interruption (``kill -9``, the OOM killer, a power cut): every file a run makes under a
final name (shards, the part-file folder) is first written down in a journal
(``OUT/.eventshard-journal``; for a URL output in the staging folder) and an earlier set's shards are
written down before its index is removed. The next run into the same output removes everything the
journal names, the ``.partial`` files and the staging folder's contents before it writes anything, so
a rerun after a kill gives the same bytes as an uninterrupted run and no stray files. One run at a
time writes an output: a second one fails at once (a lock on the folder, released by the kernel
when its holder dies).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
import threading
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from loader.errors import ConfigurationError
from loader.format import (
    END_OF_ARCHIVE,
    INDEX_NAME,
    dumps_index,
    loads_index,
    new_compressor,
    shard_name,
)
from loader.retry import call_with_retries
from shardgen.cleanup import clean_up

DEFAULT_SHARD_SIZE = 32 * 1024 * 1024
UPLOAD_THREADS = 4  # shards uploaded at once to a URL output
UPLOAD_RETRIES, UPLOAD_BACKOFF = 5, 0.5  # repeats of a failed upload, first wait in seconds (doubling)
_END_FRAME = new_compressor(1).compress(END_OF_ARCHIVE)

JOURNAL_NAME = ".eventshard-journal"
CRASH_ENV = "EVENTSHARD_CRASH_AT"
# What a journal may name (never a path outside the output folder): shards, also those of a merged
# set's job folders, and part-file folders.
_JOURNALED = re.compile(r"(?:(?:job-[0-9]{4}-of-[0-9]{4}/)?[a-z0-9_\-]+-[0-9]{6}\.tar\.zst|\.parts-[0-9a-f]{16})")
_PARTIAL = re.compile(r"\.(?:[a-z0-9_\-]+-[0-9]{6}\.tar\.zst|index\.json)\.partial")  # both used with fullmatch

try:  # POSIX: one writer per output folder
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

_crash_passes: Counter[str] = Counter()
_crash_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Hook of the interruption tests: SIGKILL this process the k-th time it passes point ``name``.

    Does nothing unless the environment variable ``EVENTSHARD_CRASH_AT`` is ``name`` or
    ``name:k`` (k from 1; default 1). Points: ``forget`` (an earlier set's index removed, its
    shards not yet), ``shard`` (a shard renamed into place), ``upload`` (a shard uploaded to a URL
    output), ``index`` (the index written to its temporary file, not yet in place), ``commit`` (the
    index in place, the clean-up not done).
    """
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    with _crash_lock:
        _crash_passes[name] += 1
        hit = _crash_passes[name] == int(nth or 1)
    if hit:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


class _Journal:
    """Names of files an output may leave behind when its run is killed; a later run removes them.

    One name per line, appended (and synced) *before* the file of that name is made, so a kill at
    any point leaves no file the journal does not name (a line cut short by the kill names nothing
    that exists). Only names that :data:`_JOURNALED` accepts are written or read back.
    """

    def __init__(self, path: Path):
        self.path = path
        self._added: set[str] = set()

    def names(self) -> list[str]:
        """The names written down so far (in order, once each)."""
        try:
            text = self.path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return list(dict.fromkeys(n for n in text.splitlines() if _JOURNALED.fullmatch(n)))

    def add(self, *names: str) -> None:
        """Write ``names`` down (those not written by this object yet) and sync the journal."""
        new = [n for n in dict.fromkeys(names) if n not in self._added]
        if not new:
            return
        bad = [n for n in new if not _JOURNALED.fullmatch(n)]
        if bad:
            raise ConfigurationError(f"{self.path}: cannot journal {bad[0]!r}")
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(f"{n}\n" for n in new))
            f.flush()
            os.fsync(f.fileno())
        self._added.update(new)

    def clear(self) -> None:
        """Forget every name (their files are gone, or belong to a complete set now)."""
        self.path.unlink(missing_ok=True)
        self._added.clear()


def _remove(path: Path) -> None:
    """Remove a file or a folder (never following a symbolic link); nothing if it is not there."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _lock_folder(folder: Path, what: str) -> int | None:
    """Hold an exclusive lock on ``folder`` (``flock`` on the folder itself: no lock file is left).

    Returns the descriptor that holds it (``None`` where locks are not available). The kernel
    releases the lock when the process dies, whatever kills it.

    Raises
    ------
    ConfigurationError
        Another process holds the lock (another ``shardgen convert`` writes ``what``).
    """
    if fcntl is None:  # pragma: no cover
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigurationError(
            f"{what}: another shardgen convert is writing this output; wait for it to finish or stop it"
        ) from None
    except OSError:  # pragma: no cover - a file system without flock: go on unlocked
        os.close(fd)
        return None
    return fd


def _index_names(data: bytes | None) -> list[str]:
    """The shard files an earlier ``index.json`` names (also one this version cannot read; only safe names)."""
    try:
        obj = json.loads(data) if data is not None else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    splits = obj.get("splits") if isinstance(obj, dict) else None
    names: list[str] = []
    for info in splits.values() if isinstance(splits, dict) else ():
        shards = info.get("shards") if isinstance(info, dict) else None
        for shard in shards if isinstance(shards, list) else ():
            name = shard.get("file") if isinstance(shard, dict) else None
            if isinstance(name, str) and _JOURNALED.fullmatch(name) and not name.startswith(".parts-"):
                names.append(name)
    return list(dict.fromkeys(names))


def stage_path(out: str) -> Path:
    """Where a URL output is staged: the same folder for every run to that URL by this user on this
    machine (so a rerun finds what a killed run left there)."""
    key = hashlib.sha256(out.rstrip("/").encode("utf-8")).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"eventshard-stage-{uid}-{key}"


def _stage_folder(out: str) -> Path:
    """:func:`stage_path`, made if needed; refused unless it is a private folder of this user."""
    path = stage_path(out)
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & 0o077:
        raise ConfigurationError(f"{path}: staging folder for {out} is not a private folder of this user; remove it")
    return path


@dataclass
class _OpenShard:
    name: str
    path: Path
    fh: BinaryIO
    sha: Any = field(default_factory=hashlib.sha256)
    offsets: list[int] = field(default_factory=lambda: [0])
    events: int = 0

    @property
    def size(self) -> int:
        return self.offsets[-1]


class ShardWriter:
    """Append compressed sample frames of one split, rolling over to a new shard past ``shard_size``.

    Parameters
    ----------
    folder : Path
        Local folder the shards are written into.
    split : str
        Split name; shards are named ``<split>-NNNNNN.tar.zst``.
    shard_size : int
        Target compressed bytes per shard; a shard is closed before a sample that would pass it
        (a shard always holds at least one sample).
    written : list of str, optional
        Where the names of finished shards are appended.
    journal : _Journal, optional
        Where each shard's name is written down before it gets that name (see the module doc).
    """

    def __init__(
        self,
        folder: Path,
        split: str,
        shard_size: int = DEFAULT_SHARD_SIZE,
        written: list[str] | None = None,
        journal: _Journal | None = None,
    ):
        if shard_size <= 0:
            raise ConfigurationError("shard_size must be positive")
        self.folder = Path(folder)
        self.split = split
        self.shard_size = int(shard_size)
        self.shards: list[dict[str, Any]] = []
        self.samples = 0
        self.events = 0
        self._cur: _OpenShard | None = None
        self._written = written if written is not None else []
        self._journal = journal

    def add(self, frame: bytes | memoryview, n_events: int) -> None:
        """Append one sample's compressed frame holding ``n_events`` events."""
        cur = self._cur
        if cur is not None and cur.size + len(frame) > self.shard_size:
            self._close()
            cur = None
        if cur is None:
            name = shard_name(self.split, len(self.shards))
            path = self.folder / f".{name}.partial"
            cur = self._cur = _OpenShard(name, path, open(path, "wb"))
        cur.fh.write(frame)
        cur.sha.update(frame)
        cur.offsets.append(cur.size + len(frame))
        cur.events += int(n_events)
        self.samples += 1
        self.events += int(n_events)

    def add_many(self, frames: bytes | memoryview, sizes: list[int], events: list[int]) -> None:
        """Append consecutive frames stored back to back in ``frames`` (one write per shard they land in).

        Same result as calling :meth:`add` for each frame, with fewer calls for many small samples.
        """
        view = memoryview(frames)
        i, pos, n = 0, 0, len(sizes)
        while i < n:
            cur = self._cur
            if cur is None or cur.size + sizes[i] > self.shard_size:
                self.add(view[pos : pos + sizes[i]], events[i])  # opens (or rolls over to) a shard
                pos += sizes[i]
                i += 1
                continue
            j, room, nbytes = i, self.shard_size - cur.size, 0
            while j < n and nbytes + sizes[j] <= room:
                nbytes += sizes[j]
                j += 1
            chunk = view[pos : pos + nbytes]
            cur.fh.write(chunk)
            cur.sha.update(chunk)
            end = cur.offsets[-1]
            for k in range(i, j):
                end += sizes[k]
                cur.offsets.append(end)
            n_ev = sum(events[i:j])
            cur.events += n_ev
            self.samples += j - i
            self.events += n_ev
            pos += nbytes
            i = j

    def _close(self) -> None:
        cur = self._cur
        if cur is None:
            return
        cur.fh.write(_END_FRAME)
        cur.sha.update(_END_FRAME)
        cur.fh.flush()
        os.fsync(cur.fh.fileno())
        cur.fh.close()
        if self._journal is not None:
            self._journal.add(cur.name)  # before the name exists: a rerun after a kill removes it
        os.replace(cur.path, self.folder / cur.name)
        self._written.append(cur.name)
        crash_point("shard")
        self.shards.append(
            {
                "file": cur.name,
                "samples": len(cur.offsets) - 1,
                "events": cur.events,
                "bytes": cur.size + len(_END_FRAME),
                "sha256": cur.sha.hexdigest(),
                "offsets": cur.offsets,
            }
        )
        self._cur = None

    def close(self) -> dict[str, Any]:
        """Finish the open shard and return this split's index entry."""
        self._close()
        return {
            "samples": self.samples,
            "events": self.events,
            "bytes": sum(s["bytes"] for s in self.shards),
            "shards": self.shards,
        }

    def abort(self) -> None:
        """Drop the partial shard (the finished ones stay, but no index will name them)."""
        if self._cur is not None:
            self._cur.fh.close()
            self._cur.path.unlink(missing_ok=True)
            self._cur = None


def _url_to_fs(url: str) -> tuple[Any, str]:
    import fsspec  # only URL outputs need it; keeps `shardgen convert` to a local folder quick to start

    return fsspec.core.url_to_fs(url)


def _is_local(out: str) -> bool:
    return "://" not in out or out.startswith("file://")


def _local_path(out: str) -> Path:
    return Path(out[len("file://") :] if out.startswith("file://") else out)


class ShardSetOutput:
    """Where a shard set goes: a local folder written in place, or a URL staged locally then uploaded.

    Opening it takes the output's lock, removes what an interrupted earlier run left (see the module
    doc) and then the earlier set: its index first, so that from here until :meth:`commit` the output
    has no ``index.json``, then its shards. Use as a context manager: when the block raises before
    :meth:`commit`, the shards written so far and all partial files are removed, and no
    ``index.json`` appears.

    Raises
    ------
    ConfigurationError
        Another run writes the same output (or, for a URL, its staging folder is not private).
    """

    def __init__(self, out: str | os.PathLike[str]):
        self.out = os.fspath(out)
        self.local = _is_local(self.out)
        self._tmp: str | None = None
        self.written: list[str] = []
        self._writers: list[ShardWriter] = []
        self.committed = False
        self._uploading = False
        if self.local:
            self.folder = _local_path(self.out)
            self.folder.mkdir(parents=True, exist_ok=True)
        else:
            self.folder = _stage_folder(self.out)
            self._tmp = str(self.folder)
        self._lock = _lock_folder(self.folder, self.out)
        self.journal = _Journal(self.folder / JOURNAL_NAME)
        try:
            if self.local:
                self._forget_previous()
            else:
                self._forget_previous_remote()
        except BaseException:
            self._unlock()
            raise

    def inherited_fds(self) -> tuple[int, ...]:
        """Descriptors a forked worker process should close (the output's lock)."""
        return () if self._lock is None else (self._lock,)

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _forget_previous(self) -> None:
        """Remove an interrupted run's leftovers and an earlier run's index (first), then its shards."""
        index = self.folder / INDEX_NAME
        try:
            data: bytes | None = index.read_bytes()
        except FileNotFoundError:
            data = None
        if data is not None:
            names = _index_names(data)
            self.journal.add(*names)  # written down first: a kill below leaves them listed
            index.unlink()
            for job in sorted({n.split("/")[0] for n in names if "/" in n}):  # a merged set: its parts' indexes
                (self.folder / job / INDEX_NAME).unlink(missing_ok=True)
            crash_point("forget")
        for name in self.journal.names():
            _remove(self.folder / name)
        for p in self.folder.iterdir():
            if _PARTIAL.fullmatch(p.name):
                p.unlink(missing_ok=True)
        self.journal.clear()

    def _forget_previous_remote(self) -> None:
        """As :meth:`_forget_previous` for a URL: the journal in the staging folder names what a killed or
        failed upload left at the URL; the staging folder is emptied."""
        fs, path = _url_to_fs(self.out)
        index = f"{path}/{INDEX_NAME}"
        if fs.exists(index):
            try:
                data: bytes | None = fs.cat_file(index)
            except FileNotFoundError:
                data = None
            names = _index_names(data)
            self.journal.add(*names)
            fs.rm_file(index)
            for job in sorted({n.split("/")[0] for n in names if "/" in n}):  # a merged set: its parts' indexes
                try:
                    fs.rm_file(f"{path}/{job}/{INDEX_NAME}")
                except FileNotFoundError:
                    pass
            crash_point("forget")
        for name in self.journal.names():
            if name.startswith(".parts-"):
                continue
            try:
                fs.rm_file(f"{path}/{name}")
            except FileNotFoundError:
                pass
        self.journal.clear()
        for p in self.folder.iterdir():  # a killed run's staged files
            _remove(p)

    def writer(self, split: str, shard_size: int = DEFAULT_SHARD_SIZE) -> ShardWriter:
        """A :class:`ShardWriter` for ``split`` in this output."""
        writer = ShardWriter(self.folder, split, shard_size, self.written, self.journal)
        self._writers.append(writer)
        return writer

    def scratch_dir(self) -> Path:
        """A new folder for intermediate files inside the output folder (journaled: a rerun removes it)."""
        name = f".parts-{secrets.token_hex(8)}"
        self.journal.add(name)
        path = self.folder / name
        path.mkdir(mode=0o700)
        return path

    def commit(self, index: Mapping[str, Any]) -> None:
        """Write ``index.json`` (atomically, last) and, for a URL, upload shards then the index.

        The journal is removed by :meth:`cleanup`, after the part-file folders: a kill in between
        leaves a complete set plus the journal, and the next run starts from scratch.
        """
        data = dumps_index(index)
        loads_index(data)  # never publish an index this project could not read back
        tmp = self.folder / f".{INDEX_NAME}.partial"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if self.local:
            crash_point("index")
            _fsync_dir(self.folder)  # the shards' renames reach the disk before the index's
            os.replace(tmp, self.folder / INDEX_NAME)
            _fsync_dir(self.folder)
            self.committed = True
            crash_point("commit")
            return
        fs, path = _url_to_fs(self.out)
        fs.makedirs(path, exist_ok=True)
        names = [shard["file"] for info in index["splits"].values() for shard in info["shards"]]
        self.journal.add(*names)  # before the first upload: a rerun removes what a killed upload left
        self._uploading = True
        with ThreadPoolExecutor(max_workers=min(UPLOAD_THREADS, max(1, len(names)))) as pool:
            for _ in pool.map(lambda name: self._upload(fs, self.folder / name, f"{path}/{name}", name), names):
                pass  # re-raises the first failed upload, after the others finished
        crash_point("index")
        self._upload(fs, tmp, f"{path}/{INDEX_NAME}", INDEX_NAME)  # last: the set is complete once it is there
        self.committed = True
        crash_point("commit")

    def _upload(self, fs: Any, local: Path, remote: str, name: str) -> None:
        """Upload one file, retried on transient errors, and check its size there (``OSError`` naming the URL)."""
        url = f"{self.out.rstrip('/')}/{name}"
        size = local.stat().st_size

        def put() -> None:
            fs.put_file(str(local), remote)
            fs.invalidate_cache(remote)
            got = fs.size(remote)
            if got != size:
                raise OSError(f"uploaded {size} bytes, the storage holds {got}")

        call_with_retries(put, f"{url}: upload", retries=UPLOAD_RETRIES, backoff=UPLOAD_BACKOFF)
        if name != INDEX_NAME:
            crash_point("upload")

    def cleanup(self) -> None:
        """Remove partial files, the shards of an uncommitted set, and a URL output's staged files; unlock.

        For a URL output whose upload failed midway the journal stays in the staging folder: the
        next run to that URL removes the shards it names there.
        """
        try:
            for writer in self._writers:
                writer.abort()  # closes a shard left open by a failure
            if self._tmp is not None:
                if self.committed or not self._uploading:
                    shutil.rmtree(self._tmp, ignore_errors=True)
                else:
                    for p in self.folder.iterdir():
                        if p.name != JOURNAL_NAME:
                            _remove(p)
                return
            for partial in self.folder.glob(".*.partial"):
                if _PARTIAL.fullmatch(partial.name):
                    partial.unlink(missing_ok=True)
            for name in self.journal.names():  # after a commit only the part-file folders go
                if not self.committed or name.startswith(".parts-"):
                    _remove(self.folder / name)
            if not self.committed:
                for name in self.written:
                    (self.folder / name).unlink(missing_ok=True)
            self.journal.clear()  # last: a kill before this leaves every name for the next run
        finally:
            self._unlock()

    def __enter__(self) -> ShardSetOutput:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        clean_up([self.cleanup], failing=exc_type is not None)
