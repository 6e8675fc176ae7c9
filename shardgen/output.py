"""Where a shard set goes, and how it replaces the set already there: staged beside, swapped at commit.

A local output is written into a staging folder inside it (``OUT/.stage-<hex>/``); a URL output into
a private local folder (:func:`stage_path`), uploaded at commit. Until :meth:`ShardSetOutput.commit`
the set already in OUT stays whole and readable, and a run that fails leaves it byte-identical.
Commit then removes the earlier index (from there until the new index is in place the output has
none, so it never looks complete when it is not), moves or uploads the new shards under their final
names, removes the earlier shards the new set does not reuse, and writes ``index.json`` last.

Interruption (``kill -9``, the OOM killer, a power cut): every name a run makes in OUT (staging and
part-file folders, and at commit every shard name, new and earlier) is first written down in a
journal (``OUT/.eventshard-journal``; for a URL output in the staging folder). The next run into the
same output removes each journaled name that the ``index.json`` in place does not name, and the
``.partial`` files, before it writes anything; so a rerun after a kill gives the same bytes as an
uninterrupted run and no stray files. One run at a time writes an output: a second one fails at once
(a lock on the folder, released by the kernel when its holder dies).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loader.errors import ConfigurationError
from loader.format import INDEX_NAME, dumps_index, loads_index
from shardgen.cleanup import clean_up
from shardgen.writer import (
    DEFAULT_SHARD_SIZE,
    JOURNAL_NAME,
    JOURNALED,
    PARTIAL,
    Journal,
    ShardWriter,
    crash_point,
    fsync_dir,
    remove_path,
)

UPLOAD_THREADS = 4  # shards uploaded at once to a URL output
UPLOAD_RETRIES, UPLOAD_BACKOFF = 5, 0.5  # repeats of a failed upload, first wait in seconds (doubling)

try:  # POSIX: one writer per output folder
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]


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
            if isinstance(name, str) and JOURNALED.fullmatch(name) and not name.startswith(".parts-"):
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



def _url_to_fs(url: str) -> tuple[Any, str]:
    import fsspec  # only URL outputs need it; keeps `shardgen convert` to a local folder quick to start

    return fsspec.core.url_to_fs(url)


def _is_local(out: str) -> bool:
    return "://" not in out or out.startswith("file://")


def _local_path(out: str) -> Path:
    return Path(out[len("file://") :] if out.startswith("file://") else out)


def _job_folders(names: list[str]) -> list[str]:
    """The job folders of a merged set's shard names (``job-IIII-of-JJJJ/…``)."""
    return sorted({n.split("/")[0] for n in names if "/" in n})


class ShardSetOutput:
    """Where a shard set goes: a local folder, or a URL staged locally then uploaded (module doc).

    Opening it takes the output's lock and removes what an interrupted earlier run left; the set
    already there stays until :meth:`commit`. Use as a context manager: when the block raises before
    :meth:`commit`, everything the run wrote is removed and the earlier set is left as it was.

    Raises
    ------
    ConfigurationError
        Another run writes the same output (or, for a URL, its staging folder is not private).
    """

    def __init__(self, out: str | os.PathLike[str]):
        self.out = os.fspath(out)
        self.local = _is_local(self.out)
        self._writers: list[ShardWriter] = []
        self.committed = False
        self._uploading = False
        if self.local:
            self.folder = _local_path(self.out)
            self.folder.mkdir(parents=True, exist_ok=True)
        else:
            self.folder = _stage_folder(self.out)
        self._lock = _lock_folder(self.folder, self.out)
        self.journal = Journal(self.folder / JOURNAL_NAME)
        try:
            if self.local:
                self._clean_leftovers()
                name = f".stage-{secrets.token_hex(8)}"
                self.journal.add(name)
                self.stage = self.folder / name
                self.stage.mkdir(mode=0o700)
            else:
                self._clean_leftovers_remote()
                self.stage = self.folder
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

    def _local_index(self) -> bytes | None:
        try:
            return (self.folder / INDEX_NAME).read_bytes()
        except FileNotFoundError:
            return None

    def _clean_leftovers(self) -> None:
        """Remove what a killed run left: journaled names the index in place does not name, partial files."""
        data = self._local_index()
        keep = set(_index_names(data)) if data is not None else set()
        for name in self.journal.names():
            if name not in keep:
                remove_path(self.folder / name)
        for p in self.folder.iterdir():
            if PARTIAL.fullmatch(p.name):
                p.unlink(missing_ok=True)
        self.journal.clear()

    def _remote_index(self, fs: Any, path: str) -> bytes | None:
        try:
            return fs.cat_file(f"{path}/{INDEX_NAME}")
        except FileNotFoundError:
            return None

    def _clean_leftovers_remote(self) -> None:
        """As :meth:`_clean_leftovers` at the URL (the journal is in the staging folder), then empty the
        staging folder."""
        names = [n for n in self.journal.names() if not n.startswith(".")]
        if names:
            fs, path = _url_to_fs(self.out)
            data = self._remote_index(fs, path)
            keep = set(_index_names(data)) if data is not None else set()
            for name in names:
                if name not in keep:
                    try:
                        fs.rm_file(f"{path}/{name}")
                    except FileNotFoundError:
                        pass
        self.journal.clear()
        for p in self.folder.iterdir():  # a killed run's staged files
            remove_path(p)

    def writer(self, split: str, shard_size: int = DEFAULT_SHARD_SIZE) -> ShardWriter:
        """A :class:`ShardWriter` for ``split``, writing into the staging folder."""
        writer = ShardWriter(self.stage, split, shard_size)
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
        """Replace the set in the output by this one: the earlier index goes first, the new shards take
        their final names (moved, or uploaded for a URL), the earlier shards not reused go, and
        ``index.json`` is written last."""
        data = dumps_index(index)
        loads_index(data)  # never publish an index this project could not read back
        names = list(dict.fromkeys(shard["file"] for info in index["splits"].values() for shard in info["shards"]))
        tmp = self.folder / f".{INDEX_NAME}.partial"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not self.local:
            self._commit_remote(names, tmp)
            return
        earlier = _index_names(self._local_index())
        self.journal.add(*names, *earlier)  # before any final name changes: a kill from here leaves them listed
        if (self.folder / INDEX_NAME).exists():
            (self.folder / INDEX_NAME).unlink()
            for job in _job_folders(earlier):  # a merged set: its parts' indexes would name removed shards
                (self.folder / job / INDEX_NAME).unlink(missing_ok=True)
            crash_point("forget")
        for name in names:
            os.replace(self.stage / name, self.folder / name)
        for name in set(earlier) - set(names):
            remove_path(self.folder / name)
        crash_point("index")
        fsync_dir(self.folder)  # the shards' renames reach the disk before the index's
        os.replace(tmp, self.folder / INDEX_NAME)
        fsync_dir(self.folder)
        self.committed = True
        crash_point("commit")

    def _commit_remote(self, names: list[str], tmp: Path) -> None:
        fs, path = _url_to_fs(self.out)
        fs.makedirs(path, exist_ok=True)
        earlier = _index_names(self._remote_index(fs, path))
        self.journal.add(*names, *earlier)  # before the first change at the URL
        self._uploading = True
        if fs.exists(f"{path}/{INDEX_NAME}"):
            fs.rm_file(f"{path}/{INDEX_NAME}")
            for job in _job_folders(earlier):
                try:
                    fs.rm_file(f"{path}/{job}/{INDEX_NAME}")
                except FileNotFoundError:
                    pass
            crash_point("forget")
        with ThreadPoolExecutor(max_workers=min(UPLOAD_THREADS, max(1, len(names)))) as pool:
            for _ in pool.map(lambda name: self._upload(fs, self.stage / name, f"{path}/{name}", name), names):
                pass  # re-raises the first failed upload, after the others finished
        for name in set(earlier) - set(names):
            try:
                fs.rm_file(f"{path}/{name}")
            except FileNotFoundError:
                pass
        crash_point("index")
        self._upload(fs, tmp, f"{path}/{INDEX_NAME}", INDEX_NAME)  # last: the set is complete once it is there
        self.committed = True
        crash_point("commit")

    def _upload(self, fs: Any, local: Path, remote: str, name: str) -> None:
        """Upload one file, retried on transient errors, and check its size there (``OSError`` naming the URL)."""
        from loader.retry import call_with_retries  # asyncio comes with it: only an upload needs it

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
        """Remove what this run wrote that no committed index names (staged shards, part files, partial
        files; after a failed commit also what it had moved); unlock.

        For a URL output whose upload failed midway the journal stays in the staging folder: the next
        run to that URL removes the shards it names there (those no index there names).
        """
        try:
            for writer in self._writers:
                writer.abort()  # closes a shard left open by a failure
            if not self.local:
                if self.committed or not self._uploading:
                    shutil.rmtree(self.folder, ignore_errors=True)
                else:
                    for p in self.folder.iterdir():
                        if p.name != JOURNAL_NAME:
                            remove_path(p)
                return
            for partial in self.folder.glob(".*.partial"):
                if PARTIAL.fullmatch(partial.name):
                    partial.unlink(missing_ok=True)
            data = self._local_index()
            keep = set(_index_names(data)) if data is not None else set()
            for name in self.journal.names():  # the staging and part-file folders; shards of a failed commit
                if name not in keep:
                    remove_path(self.folder / name)
            self.journal.clear()  # last: a kill before this leaves every name for the next run
        finally:
            self._unlock()

    def __enter__(self) -> ShardSetOutput:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        clean_up([self.cleanup], failing=exc_type is not None)
