"""ATIS TD ``.dat`` reader (kAER / Prophesee ATIS "TD" files; NAVGesture ``*_td.dat``).

The container is the Prophesee DAT one (:mod:`shardgen.formats.dat`): header lines starting with
``%``, then — only if there was a header — one byte event type and one byte event size (must be 8).
The event word differs from Event2D: one little-endian uint64 per event with

- ``t`` = bits 0–31 (µs),
- ``x`` = bits 32–40 (9 bits),
- ``y`` = bits 41–48 (8 bits),
- ``p`` = bit 49 (1 = ON),

the layout of the NAVGesture authors' ``readATIS_tddat`` (copied by SpikingJelly's ``nav_gesture.py``).
Header lines are recognised by a leading ``%`` as that reader does (openeb's DAT reader asks for
``"% "``). Events are returned in file order, raw: no time re-basing, no reordering (dataset
conventions belong to the dataset module). A body that is not a multiple of 8 bytes is damaged
(the reference reader silently drops the tail); ``allow_truncated`` keeps the events before it.
"""

from __future__ import annotations

import numpy as np

from .chunks import tail_length
from .events import Events, FormatError

RECORD_SIZE = 8
HEADER_LIMIT = 16 << 20


def td_header_end(data: bytes | memoryview, name: str) -> int:
    """Byte offset of the first event (after the ``%`` lines and the type/size bytes)."""
    buf = bytes(data[:HEADER_LIMIT])
    pos = 0
    header = False
    while buf[pos:pos + 1] == b"%":
        nl = buf.find(b"\n", pos)
        if nl < 0:
            raise FormatError(name, pos, "header line without end (or header longer than 16 MiB)")
        pos = nl + 1
        header = True
    if not header:
        return 0
    if len(data) - pos < 2:
        raise FormatError(name, pos, "file ends after the header, before the event type and size bytes")
    if data[pos + 1] != RECORD_SIZE:
        raise FormatError(name, pos + 1, f"event size {data[pos + 1]}, expected 8")
    return pos + 2


def read_atis_td(data: bytes | bytearray | memoryview, name: str, allow_truncated: bool = False) -> Events:
    """Decode every event of an ATIS TD ``.dat`` file held in memory.

    Returns
    -------
    Events
        ``t`` int64 (µs, as stored), ``x``, ``y`` uint16, ``p`` uint8, file order.

    Raises
    ------
    FormatError
        Event size other than 8, a file ending inside the header, a body that is not a multiple of 8
        bytes (without ``allow_truncated``); the message names the file and the byte offset.
    """
    view = memoryview(data).cast("B")
    start = td_header_end(view, name)
    body = len(view) - start
    tail = tail_length(name, start, body, RECORD_SIZE, "8-byte event", allow_truncated)
    word = np.frombuffer(view[start:len(view) - tail], dtype="<u8")
    t = (word & 0xFFFFFFFF).astype(np.int64)
    x = ((word >> 32) & 0x1FF).astype(np.uint16)
    y = ((word >> 41) & 0xFF).astype(np.uint16)
    p = ((word >> 49) & 1).astype(np.uint8)
    return Events(t, x, y, p, truncated_bytes=tail)
