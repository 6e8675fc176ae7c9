"""Compressed sample frames → shard files, atomically, and the journal that makes interruption safe.

A shard exists under its final name only once it is complete (written as ``.<name>.partial``, then
renamed). :mod:`shardgen.output` decides where shards go and publishes the set; this module holds
what both need: :class:`ShardWriter`, the journal of names a killed run may leave behind
(:class:`Journal`), and the interruption tests' crash points.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import stat
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from loader.errors import ConfigurationError
from loader.format import (
    END_OF_ARCHIVE,
    new_compressor,
    shard_name,
)

DEFAULT_SHARD_SIZE = 32 * 1024 * 1024
_WRITE_BUFFER = 1 << 20  # small sample frames reach the shard file in 1 MiB writes
_END_FRAME = new_compressor(1).compress(END_OF_ARCHIVE)

JOURNAL_NAME = ".eventshard-journal"
CRASH_ENV = "EVENTSHARD_CRASH_AT"
# What a journal may name (never a path outside the output folder): shards, also those of a merged
# set's job folders, part-file folders and staging folders.
JOURNALED = re.compile(
    r"(?:(?:job-[0-9]{4}-of-[0-9]{4}/)?[a-z0-9_\-]+-[0-9]{6}\.tar\.zst|\.(?:parts|stage)-[0-9a-f]{16})"
)
PARTIAL = re.compile(r"\.(?:[a-z0-9_\-]+-[0-9]{6}\.tar\.zst|index\.json)\.partial")  # both used with fullmatch

_crash_passes: Counter[str] = Counter()
_crash_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Hook of the interruption tests: SIGKILL this process the k-th time it passes point ``name``.

    Does nothing unless the environment variable ``EVENTSHARD_CRASH_AT`` is ``name`` or
    ``name:k`` (k from 1; default 1). Points: ``shard`` (a shard renamed into place in the staging
    folder), ``forget`` (at commit: the earlier set's index removed, nothing moved yet), ``upload`` (a
    shard uploaded to a URL output), ``index`` (the new shards in place, the index written to its
    temporary file), ``commit`` (the index in place, the clean-up not done).
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


class Journal:
    """Names of files an output may leave behind when its run is killed; a later run removes them.

    One name per line, appended (and synced) *before* the file of that name is made, so a kill at
    any point leaves no file the journal does not name (a line cut short by the kill names nothing
    that exists). Only names that :data:`JOURNALED` accepts are written or read back.
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
        return list(dict.fromkeys(n for n in text.splitlines() if JOURNALED.fullmatch(n)))

    def add(self, *names: str) -> None:
        """Write ``names`` down (those not written by this object yet) and sync the journal."""
        new = [n for n in dict.fromkeys(names) if n not in self._added]
        if not new:
            return
        bad = [n for n in new if not JOURNALED.fullmatch(n)]
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


def remove_path(path: Path) -> None:
    """Remove a file or a folder (never following a symbolic link); nothing if it is not there."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
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
    """

    def __init__(
        self,
        folder: Path,
        split: str,
        shard_size: int = DEFAULT_SHARD_SIZE,
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

    def add(self, frame: bytes | memoryview, n_events: int) -> None:
        """Append one sample's compressed frame holding ``n_events`` events."""
        cur = self._cur
        if cur is not None and cur.size + len(frame) > self.shard_size:
            self._close()
            cur = None
        if cur is None:
            name = shard_name(self.split, len(self.shards))
            path = self.folder / f".{name}.partial"
            cur = self._cur = _OpenShard(name, path, open(path, "wb", buffering=_WRITE_BUFFER))
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
        os.replace(cur.path, self.folder / cur.name)
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


