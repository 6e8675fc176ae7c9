"""Stream the members of a (multi-volume) archive through libarchive, without extracting to disk.

ES-ImageNet ships as 25 RAR volumes ``ES-imagenet-0.18.part01.rar`` … ``part25.rar``. libarchive
(the system library, through the ``libarchive-c`` binding) reads RAR 4 and RAR 5 including
multi-volume sets when the volumes are opened together with ``archive_read_open_filenames``; the
binding does not wrap that call, so it is declared here through the binding's own ``ffi`` helper.
Formats other than RAR see the volumes as one concatenated byte stream, so a tar split into
pieces reads the same way (that is how the tests exercise the multi-file path: nothing can write
RAR here). The format is recognised from the bytes, never from the file names.

Member names are checked as in :mod:`shardgen.archive`: absolute names and ``..`` raise, links
and other non-regular entries are passed over.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from ctypes import POINTER, c_char_p, c_int, c_size_t
from pathlib import Path, PurePosixPath

from shardgen.archive import ArchiveError, safe_member_name

BLOCK = 1 << 20


def _libarchive():
    try:
        import libarchive.ffi as ffi
        import libarchive.read as read
    except (ImportError, OSError) as exc:  # the binding or the system library is missing
        raise ArchiveError(
            f"reading RAR volumes needs libarchive: pip install libarchive-c (and the system libarchive, e.g. "
            f"apt-get install libarchive13) ({exc})"
        ) from None
    if not hasattr(ffi, "read_open_filenames"):
        ffi.ffi("read_open_filenames", [ffi.c_archive_p, POINTER(c_char_p), c_size_t], c_int, ffi.check_int)
    return ffi, read


def iter_volumes(paths: list[Path], max_member_bytes: int) -> Iterator[tuple[PurePosixPath, int, bytes]]:
    """``(member path, size, bytes)`` of every regular member of the archive made of ``paths``, in stored order.

    Raises
    ------
    ArchiveError
        An unsafe member name, a member larger than ``max_member_bytes``, or a damaged / unreadable
        archive (libarchive's message, naming the first volume).
    """
    ffi, read = _libarchive()
    label = f"{paths[0]}" + (f" (+{len(paths) - 1} volumes)" if len(paths) > 1 else "")
    names = (c_char_p * (len(paths) + 1))(*[os.fsencode(p) for p in paths], None)
    try:
        with read.new_archive_read("all", "all") as archive_p:
            ffi.read_open_filenames(archive_p, names, BLOCK)
            for entry in read.ArchiveRead(archive_p):
                member = safe_member_name(entry.pathname or "", label)
                if not entry.isreg:
                    continue
                size = entry.size or 0
                if size > max_member_bytes:
                    raise ArchiveError(f"{label}: member {str(member)!r}: {size:,} bytes, more than a sample file "
                                       f"may hold (limit {max_member_bytes:,})")
                data = b"".join(entry.get_blocks(BLOCK))
                yield member, len(data), data
    except ArchiveError:
        raise
    except Exception as exc:  # libarchive.exception.ArchiveError and OSError from the library
        why = getattr(exc, "msg", None) or exc  # libarchive's message without its pointer
        raise ArchiveError(f"{label}: not a readable archive ({why})") from None
