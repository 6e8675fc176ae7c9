"""Compressed sample frames → shard files and ``index.json``, atomically.

A shard exists under its final name only once it is complete (written as ``.<name>.partial``,
then renamed), and ``index.json`` is written last, after every shard, so an interrupted run
never leaves a set that looks complete. Output to a URL is staged in a local folder and
uploaded with fsspec, shards first (a few at a time, each retried on transient errors and checked
for size at the URL) and the index last, once every shard is there; an earlier set's index at the
URL is removed before anything else, then its shards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from loader.format import (
    END_OF_ARCHIVE,
    INDEX_NAME,
    FormatError,
    dumps_index,
    loads_index,
    new_compressor,
    shard_name,
)

DEFAULT_SHARD_SIZE = 32 * 1024 * 1024
UPLOAD_THREADS = 4  # shards uploaded at once to a URL output
UPLOAD_RETRIES, UPLOAD_BACKOFF = 5, 0.5  # repeats of a failed upload, first wait in seconds (doubling)
_END_FRAME = new_compressor(1).compress(END_OF_ARCHIVE)


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
        self, folder: Path, split: str, shard_size: int = DEFAULT_SHARD_SIZE, written: list[str] | None = None
    ):
        if shard_size <= 0:
            raise ValueError("shard_size must be positive")
        self.folder = Path(folder)
        self.split = split
        self.shard_size = int(shard_size)
        self.shards: list[dict[str, Any]] = []
        self.samples = 0
        self.events = 0
        self._cur: _OpenShard | None = None
        self._written = written if written is not None else []

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
        os.replace(cur.path, self.folder / cur.name)
        self._written.append(cur.name)
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

    Use as a context manager: when the block raises before :meth:`commit`, the shards written so far
    and all partial files are removed, and no ``index.json`` appears.
    """

    def __init__(self, out: str | os.PathLike[str]):
        self.out = os.fspath(out)
        self.local = _is_local(self.out)
        self._tmp: str | None = None
        self.written: list[str] = []
        self._writers: list[ShardWriter] = []
        self.committed = False
        if self.local:
            self.folder = _local_path(self.out)
            self.folder.mkdir(parents=True, exist_ok=True)
            self._forget_previous()
        else:
            self._tmp = tempfile.mkdtemp(prefix="eventshard-stage-")
            self.folder = Path(self._tmp)
            self._forget_previous_remote()

    def _forget_previous(self) -> None:
        """Remove an earlier run's index first (so the set is never 'complete' midway), then its shards."""
        index = self.folder / INDEX_NAME
        if not index.exists():
            return
        try:
            old = loads_index(index.read_bytes())
        except FormatError:
            old = {"splits": {}}
        index.unlink()
        for info in old["splits"].values():
            for shard in info.get("shards", []):
                (self.folder / shard["file"]).unlink(missing_ok=True)

    def _forget_previous_remote(self) -> None:
        """Remove an earlier run's index at the URL first, then the shards it named (as for a folder)."""
        fs, path = _url_to_fs(self.out)
        index = f"{path}/{INDEX_NAME}"
        if not fs.exists(index):
            return
        try:
            old = loads_index(fs.cat_file(index))
        except FormatError:
            old = {"splits": {}}
        fs.rm_file(index)
        for info in old["splits"].values():
            for shard in info.get("shards", []):
                try:
                    fs.rm_file(f"{path}/{shard['file']}")
                except FileNotFoundError:
                    pass

    def writer(self, split: str, shard_size: int = DEFAULT_SHARD_SIZE) -> ShardWriter:
        """A :class:`ShardWriter` for ``split`` in this output."""
        writer = ShardWriter(self.folder, split, shard_size, self.written)
        self._writers.append(writer)
        return writer

    def commit(self, index: Mapping[str, Any]) -> None:
        """Write ``index.json`` (atomically, last) and, for a URL, upload shards then the index."""
        data = dumps_index(index)
        loads_index(data)  # never publish an index this project could not read back
        tmp = self.folder / f".{INDEX_NAME}.partial"
        tmp.write_bytes(data)
        if self.local:
            os.replace(tmp, self.folder / INDEX_NAME)
            self.committed = True
            return
        fs, path = _url_to_fs(self.out)
        fs.makedirs(path, exist_ok=True)
        names = [shard["file"] for info in index["splits"].values() for shard in info["shards"]]
        with ThreadPoolExecutor(max_workers=min(UPLOAD_THREADS, max(1, len(names)))) as pool:
            for _ in pool.map(lambda name: self._upload(fs, self.folder / name, f"{path}/{name}", name), names):
                pass  # re-raises the first failed upload, after the others finished
        self._upload(fs, tmp, f"{path}/{INDEX_NAME}", INDEX_NAME)  # last: the set is complete once it is there
        self.committed = True

    def _upload(self, fs: Any, local: Path, remote: str, name: str) -> None:
        """Upload one file, retried on transient errors, and check its size there (``OSError`` naming the URL)."""
        from loader.shards import call_with_retries

        url = f"{self.out.rstrip('/')}/{name}"
        size = local.stat().st_size

        def put() -> None:
            fs.put_file(str(local), remote)
            fs.invalidate_cache(remote)
            got = fs.size(remote)
            if got != size:
                raise OSError(f"uploaded {size} bytes, the storage holds {got}")

        call_with_retries(put, f"{url}: upload", retries=UPLOAD_RETRIES, backoff=UPLOAD_BACKOFF)

    def cleanup(self) -> None:
        """Remove partial files, the shards of an uncommitted set, and a URL output's staging folder."""
        for writer in self._writers:
            writer.abort()  # closes a shard left open by a failure
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        for partial in self.folder.glob(".*.partial"):
            partial.unlink(missing_ok=True)
        if not self.committed:
            for name in self.written:
                (self.folder / name).unlink(missing_ok=True)

    def __enter__(self) -> ShardSetOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
