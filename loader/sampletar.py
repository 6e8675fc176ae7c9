"""The tar members of one sample: ``<key>.events.msgpack`` and ``<key>.label.msgpack`` (``docs/FORMAT.md``).

Written as :mod:`tarfile` writes them (PAX format, plain ustar where the name fits); read header by header
into views where the layout is the writer's, else by :func:`tarfile.open`.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Mapping
from typing import Any

from loader.errors import FormatError

EVENTS_SUFFIX = ".events.msgpack"
LABEL_SUFFIX = ".label.msgpack"
TAR_BLOCK = 512
END_OF_ARCHIVE = bytes(2 * TAR_BLOCK)
_KEY_RE = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-/]{0,200}")  # used with fullmatch


def _tar_header(name: str, size: int) -> bytes:
    """The header :mod:`tarfile` writes for a regular file (PAX format: plain ustar when the name fits)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


_USTAR_TEMPLATE = bytearray(_tar_header("x", 0))
_USTAR_TEMPLATE[0:100] = bytes(100)  # name
_USTAR_TEMPLATE[124:136] = bytes(12)  # size
_USTAR_TEMPLATE[148:156] = b" " * 8  # checksum, counted as spaces
_TEMPLATE_SUM = sum(_USTAR_TEMPLATE)


def _fast_tar_header(name: str, size: int) -> bytes:
    """Byte for byte :func:`_tar_header` for short ASCII names, without building a ``TarInfo`` (hot path)."""
    raw = name.encode("ascii", "strict") if name.isascii() else b""
    if not raw or len(raw) > 100 or size >= 8**11:
        return _tar_header(name, size)
    size_field = b"%011o\0" % size
    header = bytearray(_USTAR_TEMPLATE)
    header[0 : len(raw)] = raw
    header[124:136] = size_field
    header[148:155] = b"%06o\0" % (_TEMPLATE_SUM + sum(raw) + sum(size_field))
    return bytes(header)


def _tar_member(name: str, data: bytes) -> bytes:
    pad = (-len(data)) % TAR_BLOCK
    return _fast_tar_header(name, len(data)) + data + bytes(pad)


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe sample key (relative, no ``..``), else raise :class:`FormatError`."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or ".." in key.split("/") or "//" in key:
        raise FormatError(f"bad sample key {key!r}")
    return key


def sample_tar(key: str, events: bytes, label: bytes) -> bytes:
    """The two tar members of one sample (no end-of-archive marker)."""
    check_key(key)
    return _tar_member(key + EVENTS_SUFFIX, events) + _tar_member(key + LABEL_SUFFIX, label)


def split_sample_tar(buf: bytes) -> tuple[str, bytes, bytes]:
    """Parse the tar members of one sample into ``(key, events_payload, label_payload)``.

    The payloads may be read-only views into ``buf`` (no copies): the common layout, two plain ustar
    members and nothing else, is parsed header by header with :meth:`tarfile.TarInfo.frombuf`; anything
    else goes through :func:`tarfile.open`, which gives the same result or the error.
    """
    fast = _two_plain_members(buf)
    if fast is not None:
        return _sample_members(fast)
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(buf), mode="r:") as tf:
            for info in tf:
                if not info.isreg():
                    raise FormatError(f"tar member {info.name!r} is not a regular file")
                f = tf.extractfile(info)
                members[info.name] = f.read() if f is not None else b""
    except tarfile.TarError as exc:
        raise FormatError(f"sample is not a valid tar stream ({exc})") from None
    return _sample_members(members)


def _two_plain_members(buf: bytes) -> dict[str, memoryview] | None:
    """The two members of a sample laid out as the writer lays them out (two ustar headers, each followed
    by its data padded to a block, and the end of ``buf``), as views; ``None`` for any other layout."""
    view = memoryview(buf)
    members: dict[str, memoryview] = {}
    off = 0
    for _ in range(2):
        if off + TAR_BLOCK > len(view) or view[off + 156] not in _PLAIN_TYPES:
            return None
        try:
            info = tarfile.TarInfo.frombuf(bytes(view[off : off + TAR_BLOCK]), "utf-8", "surrogateescape")
        except tarfile.TarError:
            return None
        start = off + TAR_BLOCK
        off = start + info.size + (-info.size) % TAR_BLOCK
        if not info.isreg() or off > len(view) or info.name in members:
            return None
        members[info.name] = view[start : start + info.size]
    return members if off == len(view) else None


_PLAIN_TYPES = frozenset((tarfile.REGTYPE[0], tarfile.AREGTYPE[0]))  # type flags of a plain regular file


def _sample_members(members: Mapping[str, bytes | memoryview]) -> tuple[str, Any, Any]:
    """``(key, events, label)`` of a sample's members: one events and one label member of one key."""
    ev = [n for n in members if n.endswith(EVENTS_SUFFIX)]
    if len(members) != 2 or len(ev) != 1:
        raise FormatError(f"sample must hold one events and one label member, got {sorted(members)}")
    key = check_key(ev[0][: -len(EVENTS_SUFFIX)])
    if key + LABEL_SUFFIX not in members:
        raise FormatError(f"sample {key!r} has no {LABEL_SUFFIX} member")
    return key, members[ev[0]], members[key + LABEL_SUFFIX]
