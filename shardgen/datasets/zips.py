"""Zip listing for the datasets whose samples are zip members: safe member names, and zips inside a zip.

Member names are checked before anything is read (:func:`safe_member`). Zips inside a zip (HARDVS's
action zips, N-CARS's split zips, NAVGesture's user zips) are made readable by workers:
a stored (uncompressed) inner zip is listed where it lies in the outer archive and its members are
read from there (a :func:`shardgen.archive.zip_entry` shifted by where the inner zip starts); any
other is inflated once into a private temporary folder, a thread per core, before the workers
start. Either way the dataset module gets :class:`InnerZip` records: the members to list and the
file a worker reads them from.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardgen.datasets.base import DatasetError
from shardgen.datasets.classfolder import MAX_SAMPLE_FILE_BYTES


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.split("/") if p and p != ".")


def safe_member(archive: str, info: zipfile.ZipInfo, skipped: list[str]) -> tuple[str, ...] | None:
    """The path parts of a regular zip member, or ``None`` (and a line in ``skipped``) for an unsafe one.

    Directories, macOS resource forks and ``__MACOSX`` entries give ``None`` silently; absolute
    names, ``..`` and symbolic links are reported and never followed.
    """
    name = info.filename
    if info.is_dir():
        return None
    parts = _parts(name)
    if name.startswith(("/", "\\")) or "\\" in name or ".." in parts or (parts and ":" in parts[0]):
        skipped.append(f"{archive}: member {name!r}: points outside the archive's folder (not read)")
        return None
    if stat.S_ISLNK(info.external_attr >> 16):
        skipped.append(f"{archive}: member {name!r}: a symbolic link (not followed)")
        return None
    if not parts or parts[-1].startswith("._") or "__MACOSX" in parts:
        return None
    if info.file_size > MAX_SAMPLE_FILE_BYTES:  # a zip bomb must not be inflated into memory
        raise DatasetError(f"{archive}: member {name!r}: {info.file_size:,} bytes, more than one sample file "
                           f"may hold (limit {MAX_SAMPLE_FILE_BYTES:,})")
    return parts


def open_zip(path: Path | str, label: str | None = None) -> zipfile.ZipFile:
    """``zipfile.ZipFile(path)``, or :class:`DatasetError` naming ``label`` (default: the path)."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{label or path}: not a readable zip archive ({exc})") from None


def zip_files(path: Path | str, label: str, skipped: list[str]) -> list[tuple[tuple[str, ...], zipfile.ZipInfo]]:
    """``(path parts, info)`` of every safe regular member of a zip, in stored order."""
    with open_zip(path, label) as zf:
        out = []
        for info in zf.infolist():
            parts = safe_member(label, info, skipped)
            if parts is not None:
                out.append((parts, info))
        return out



class _Window(io.RawIOBase):
    """Bytes ``[start, start + size)`` of a file as a seekable file of their own: a zip stored in a zip, listed in
    place by :mod:`zipfile`."""

    def __init__(self, path: str, start: int, size: int):
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 (closed with the window)
        self._start, self._size, self._pos = start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = max(0, offset + (0, self._pos, self._size)[whence])
        return self._pos

    def readinto(self, buf: Any) -> int:
        n = max(0, min(len(buf), self._size - self._pos))
        got = os.pread(self._f.fileno(), n, self._start + self._pos)
        buf[:len(got)] = got
        self._pos += len(got)
        return len(got)

    def close(self) -> None:
        self._f.close()
        super().close()


@dataclass(frozen=True)
class InnerZip:
    """One inner zip, listed: workers read its members from ``container`` (the outer archive itself when the
    inner zip is stored there uncompressed, else a private copy), where it starts at byte ``shift``."""

    label: str
    """``<outer archive>:<member>``: how errors name it."""
    container: str
    shift: int
    members: list[tuple[tuple[str, ...], zipfile.ZipInfo]]
    """``(path parts, info)`` of its safe regular members, in stored order (:func:`zip_files`)."""


class InnerZips:
    """Inner zips of an outer archive: read in place when stored, else copied (under generated names) to a
    private temporary folder."""

    def __init__(self) -> None:
        self.tmp: str | None = None
        self._n = 0

    def _dest(self) -> Path:
        self.tmp = self.tmp or tempfile.mkdtemp(prefix="eventshard-inner-")
        self._n += 1
        return Path(self.tmp) / f"{self._n - 1:05d}.zip"

    @staticmethod
    def _copy(outer: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, dest: Path) -> Path:
        """Copy one member of ``outer`` to ``dest`` (:class:`DatasetError` if unreadable)."""
        try:
            with outer.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 4 << 20)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{label}: member {info.filename!r}: cannot be read ({exc})") from None
        return dest

    def open_all(self, outer: Path, infos: list[zipfile.ZipInfo], archive: str, skipped: list[str]) -> list[InnerZip]:
        """Each inner zip among ``infos`` (members of ``outer``), listed, in the order given.

        A stored (uncompressed) inner zip whose members are stored or deflated is listed and read in place:
        no copy. The others are copied out by a thread per core (:mod:`zlib` inflates without the GIL, and
        no worker runs yet while the download is listed). On failure the copies made so far are removed.
        """
        try:
            return self._open_all(outer, infos, archive, skipped)
        except BaseException:
            self.close()
            raise

    def _open_all(self, outer: Path, infos: list[zipfile.ZipInfo], archive: str, skipped: list[str]) -> list[InnerZip]:
        out: dict[int, InnerZip] = {}
        pending: list[tuple[int, zipfile.ZipInfo, str]] = []
        for k, info in enumerate(infos):
            label = f"{archive}:{info.filename}"
            got = _in_place(outer, info, label, skipped)
            if got is None:
                pending.append((k, info, label))
            else:
                out[k] = got
        if pending:  # one ZipFile for all threads: zipfile serialises their reads and inflates outside its lock
            jobs = [(info, label, self._dest()) for _, info, label in pending]
            with open_zip(outer, archive) as zf, ThreadPoolExecutor(min(len(jobs), os.cpu_count() or 1)) as pool:
                copies = list(pool.map(lambda job: self._copy(zf, *job), jobs))
            for (k, _, label), dest in zip(pending, copies, strict=True):
                out[k] = InnerZip(label, str(dest), 0, zip_files(dest, label, skipped))
        return [out[k] for k in sorted(out)]

    def close(self) -> None:
        """Remove the copies."""
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def _in_place(outer: Path, info: zipfile.ZipInfo, label: str, skipped: list[str]) -> InnerZip | None:
    """An inner zip stored uncompressed in ``outer``, listed where it lies; ``None``: it must be copied out."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    with open(outer, "rb") as f:
        head = os.pread(f.fileno(), 30, info.header_offset)
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return None  # the copy reports the damage
    start = info.header_offset + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")
    try:
        with _Window(str(outer), start, info.file_size) as window, zipfile.ZipFile(window) as zf:
            members = []
            for m in zf.infolist():
                parts = safe_member(label, m, skipped)
                if parts is not None:
                    if m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                        return None  # read through zipfile: from a copy
                    members.append((parts, m))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"{label}: not a readable zip archive ({exc})") from None
    return InnerZip(label, str(outer), start, members)

