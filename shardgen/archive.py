"""Reading the files a dataset's authors distribute: md5 checks and safe streaming of tar archives.

Archives are never extracted to disk: members are streamed in the order they are stored and
handed over as bytes. Member names are checked anyway, so a hostile archive cannot name a path
outside the dataset (absolute paths, ``..``) or smuggle in links.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from isal import igzip as _gzip  # noqa: F401  (shardgen.datasets.heidelberg imports it from here)
from isal import isal_zlib  # ISA-L inflates about twice as fast as zlib; same bytes out

from loader.errors import EventshardError


class ArchiveError(EventshardError, ValueError):
    """An archive or resource file is missing, corrupt, or names an unsafe path."""


def md5_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex md5 of a file, read in 4 MiB chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class HashingReader(io.RawIOBase):
    """A read-only raw stream that feeds every byte read into an md5, so checking overlaps reading."""

    def __init__(self, fh: BinaryIO):
        super().__init__()
        self._fh = fh
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.bytes = 0

    def readinto(self, buf) -> int:  # type: ignore[override]
        """Fill ``buf`` from the file and hash what was read."""
        n = self._fh.readinto(buf)
        if n:
            self.md5.update(memoryview(buf)[:n])
            self.bytes += n
        return n

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """True, but only forward: skipped bytes are read and hashed."""
        return True

    def tell(self) -> int:
        """Bytes read so far."""
        return self.bytes

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move forward to ``offset`` (absolute, or relative with ``whence=1``) by reading."""
        target = offset if whence == 0 else self.bytes + offset if whence == 1 else None
        if target is None or target < self.bytes:
            raise OSError("HashingReader can only seek forward")
        while self.bytes < target and self.read(min(target - self.bytes, 1 << 22)):
            pass
        return self.bytes

    def finish(self) -> str:
        """Hash what was not read yet (trailing padding) and return the hex md5 of the whole file."""
        while self.read(1 << 22):
            pass
        return self.md5.hexdigest()


def safe_member_name(name: str, archive: str) -> PurePosixPath:
    """The member path, or :class:`ArchiveError` if it is absolute or climbs out with ``..``."""
    path = PurePosixPath(name)
    first = path.parts[0] if path.parts else ""  # "" and "." have no parts
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")) or ":" in first:
        raise ArchiveError(f"{archive}: member {name!r} points outside the extraction folder")
    return path


_READ_STEP = 1 << 24  # a member read asks the decompressor for at most 16 MiB at a time


class _MemberReader:
    """Reads one tar member's bytes straight from the decompressed stream (``readinto`` without a copy).

    A damaged or short stream raises :class:`ArchiveError` naming ``where`` (never a short read).
    """

    def __init__(self, stream: BinaryIO, offset: int, size: int, where: str = "archive member"):
        self._stream, self._offset, self._left, self._where = stream, offset, size, where

    def _seek(self) -> None:
        if self._stream.tell() != self._offset:
            self._stream.seek(self._offset)

    def _failed(self, exc: BaseException | None) -> ArchiveError:
        why = f"not a readable tar.gz ({exc})" if exc is not None else "the archive ends inside this member"
        return ArchiveError(f"{self._where}: {why}")

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes of the member (all that is left by default)."""
        n = self._left if n < 0 else min(n, self._left)
        try:
            self._seek()
            if n <= _READ_STEP:
                data = self._stream.read(n)
            else:  # the size comes from the tar header: hold only what the stream really yields
                parts: list[bytes] = []
                got = 0
                while got < n and (part := self._stream.read(min(_READ_STEP, n - got))):
                    parts.append(part)
                    got += len(part)
                data = b"".join(parts)
        except (OSError, EOFError, isal_zlib.error) as exc:  # BadGzipFile is an OSError
            raise self._failed(exc) from None
        if len(data) < n:
            raise self._failed(None)
        self._offset += len(data)
        self._left -= len(data)
        return data

    def readinto(self, buf: memoryview) -> int:
        """Fill ``buf`` with the member's next bytes; returns how many were read."""
        view = memoryview(buf)[: self._left]
        try:
            self._seek()
            n = self._stream.readinto(view) if len(view) else 0
        except (OSError, EOFError, isal_zlib.error) as exc:
            raise self._failed(exc) from None
        if len(view) and not n:
            raise self._failed(None)
        self._offset += n
        self._left -= n
        return n


_GZ_BUFFER = 1 << 19


def _gunzip(fh: BinaryIO) -> io.BufferedReader:
    """The inflated stream of a gzip file (every member, CRC and length checked), read by ISA-L.

    ISA-L's C reader under a plain :class:`io.BufferedReader` rather than :class:`isal.igzip.IGzipFile`: a large
    ``readinto`` then inflates straight into the caller's buffer (``GzipFile.readinto`` reads into a new
    ``bytes`` and copies it, one more pass over every byte and its page faults).
    """
    return io.BufferedReader(isal_zlib._GzipReader(fh, _GZ_BUFFER), _GZ_BUFFER)


class TarGzStream:
    """Stream the regular files of a ``.tar.gz`` as ``(member path, size, reader)``, in stored order.

    ``reader`` is valid until the next member is requested. Directories are passed over; links and
    device files are skipped (never followed) and listed in :attr:`skipped`; unsafe names raise
    :class:`ArchiveError`. With
    ``hash_md5`` the compressed bytes are hashed as they are read, so after the iteration
    :attr:`md5` holds the archive's md5 at no extra pass over the file.
    """

    def __init__(self, path: Path, hash_md5: bool = True):
        self.path = Path(path)
        self.hash_md5 = hash_md5
        self.md5: str | None = None
        self.skipped: list[str] = []

    def __iter__(self) -> Iterator[tuple[PurePosixPath, int, BinaryIO]]:
        with open(self.path, "rb") as raw:
            reader = HashingReader(raw) if self.hash_md5 else raw
            try:
                with _gunzip(reader) as gz, tarfile.open(fileobj=gz, mode="r:") as tf:
                    for info in tf:
                        member = safe_member_name(info.name, self.path.name)
                        if not info.isreg() or info.sparse is not None:
                            if not info.isdir():
                                self.skipped.append(f"{self.path.name}: member {info.name!r}: not a regular file "
                                                    "(a link or device: not followed)")
                            continue
                        where = f"{self.path}: member {info.name!r}"
                        yield member, info.size, _MemberReader(gz, info.offset_data, info.size, where)
            except (tarfile.TarError, OSError, EOFError, isal_zlib.error) as exc:  # BadGzipFile is an OSError
                raise ArchiveError(f"{self.path}: not a readable tar.gz ({exc})") from None
            if isinstance(reader, HashingReader):
                self.md5 = reader.finish()


# --------------------------------------------------------------------------- zip members without a ZipFile


_LOCAL_HEADER = b"PK\x03\x04"
_DEFLATE_MAX_RATIO = 1032  # deflate cannot inflate more than 1032 bytes per compressed byte
_OPEN_FDS: dict[tuple[int, str], tuple[int, int]] = {}


def zip_entry(info: zipfile.ZipInfo) -> tuple[int, int, int, int, int, int]:
    """What :func:`read_zip_entry` needs of a central-directory entry, as a small picklable tuple.

    ``(header_offset, compress_size, file_size, CRC, compress_type, flag_bits)``.
    """
    return (info.header_offset, info.compress_size, info.file_size, info.CRC, info.compress_type, info.flag_bits)


def _fd(path: str) -> tuple[int, int]:
    """This process's read-only descriptor of ``path`` and the file's size (workers read many members of one
    archive: one ``open`` and one ``fstat`` per archive, not per member)."""
    key = (os.getpid(), path)
    got = _OPEN_FDS.get(key)
    if got is None:
        fd = os.open(path, os.O_RDONLY)
        got = _OPEN_FDS[key] = (fd, os.fstat(fd).st_size)
    return got


def read_zip_entry(path: str, name: str, entry: tuple[int, int, int, int, int, int]) -> bytes:
    """The bytes of one zip member located by :func:`zip_entry`, read with ``pread`` and inflated by ISA-L.

    Stored and deflated members take this path (two ``pread`` calls, no central-directory parse per
    process); any other method goes through :mod:`zipfile`. The CRC-32 is checked either way.

    Raises
    ------
    ArchiveError
        Bad local header, encrypted member, short read, bad deflate stream or CRC mismatch; the message
        names the archive, the member and its byte offset.
    """
    offset, csize, size, crc, method, flags = entry
    where = f"{path}: member {name!r} at byte {offset}"
    if flags & 0x1:
        raise ArchiveError(f"{where}: encrypted members are not supported")
    if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        with zipfile.ZipFile(path) as zf:
            return zf.read(name)
    fd, end = _fd(path)
    head = os.pread(fd, 30, offset)
    if len(head) < 30 or head[:4] != _LOCAL_HEADER:
        raise ArchiveError(f"{where}: no local file header (damaged archive)")
    start = offset + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")
    # Sizes come from the archive: check them against the file and deflate's limit before allocating them
    # (pread and inflate both allocate the size they are given at once).
    if start + csize > end:
        raise ArchiveError(f"{where}: archive ends {start + csize - end} bytes early")
    if size > (csize if method == zipfile.ZIP_STORED else _DEFLATE_MAX_RATIO * csize + 1024):
        raise ArchiveError(f"{where}: claims {size} bytes from {csize} stored bytes (damaged archive)")
    raw = os.pread(fd, csize, start)
    if len(raw) != csize:
        raise ArchiveError(f"{where}: archive ends {csize - len(raw)} bytes early")
    try:
        data = raw if method == zipfile.ZIP_STORED else isal_zlib.decompress(raw, -15, max(size, 1))
    except isal_zlib.error as exc:
        raise ArchiveError(f"{where}: bad deflate stream ({exc})") from None
    if len(data) != size or (isal_zlib.crc32(data) & 0xFFFFFFFF) != crc:
        raise ArchiveError(f"{where}: CRC-32 or size mismatch (damaged archive)")
    return data
