"""Prophesee DAT reader (Event2D / EventCD ``.dat``; N-CARS, NavGesture …).

Layout (``shared/FORMATS.md`` §7, openeb ``dat_tools.py``): little-endian. Header lines ``% keyword value``
(N-CARS: ``% Data file containing N9Chronocam7Event2dE events.``, ``% Version 2``, ``% Date …``); the header
ends at the first line that does not start with ``"% "`` (openeb's rule). Only if there was a header, one
byte event type (0 = Event2D, 12 = EventCD, both read here; 14 = external trigger → :class:`FormatError`)
and one byte event size (must be 8) follow; a file without ``%`` lines is read as type 0, size 8 from byte
0, as openeb does.

Event (8 bytes): uint32 ``t`` (µs), uint32 ``w`` with ``x = w[13:0]``, ``y = w[27:14]``, ``p = w[28]``
(1 = ON). expelliarmus returns bits 31–28 as ``p``; identical on every real file (the upper bits are 0).

Time: the 32-bit timestamp is **absolute as stored** (N-CARS files start at 0 because the dataset was cut
that way; nothing is zero-based here). It wraps after 2**32 µs ≈ 71.6 min:

``time_rule="wrap"`` (default)
    2**32 is added for good whenever the timestamp falls by more than 2**31 from one event to the next.
``time_rule="expelliarmus"``
    expelliarmus 1.1.12's rule: 2**32 is added whenever the timestamp decreases at all, so a single
    out-of-order event shifts the rest of the file by ~71.6 min.

The two agree on monotonic files (both real N-CARS samples) and on genuine wraps. openeb's numpy reader
does not unwrap at all.

Sensor size: ``% Width`` / ``% Height`` lines when present (absent in N-CARS), else ``None``. ``camera`` is
``None`` (DAT headers do not name the sensor).
A body whose length is not a multiple of 8 is damaged (openeb raises as well).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from loader.errors import ConfigurationError

from .chunks import check_chunk_events, iter_record_chunks, tail_length
from .events import Events, FormatError

RECORD_SIZE = 8
TIME_RULES = ("wrap", "expelliarmus")
CD_TYPES = (0, 12)
TRIGGER_TYPE = 14
HEADER_LIMIT = 16 << 20
_HEAD_BLOCK = 1 << 16
_RECORD_DTYPE = np.dtype([("t", "<u4"), ("w", "<u4")])


@dataclass
class DatHeader:
    """What the header of a DAT file says.

    Attributes
    ----------
    data_start : int
        Byte offset of the first event.
    event_type, event_size : int
        From the two bytes after the ``%`` lines (0 and 8 when there are no ``%`` lines).
    fields : dict of str to str
        ``% keyword value`` lines (first occurrence of each keyword).
    width, height : int or None
        ``% Width`` / ``% Height``.
    lines : int
        Number of ``%`` lines.
    """

    data_start: int
    event_type: int = 0
    event_size: int = RECORD_SIZE
    fields: dict[str, str] = field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    lines: int = 0


def _dimension(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()  # ASCII digits, few of them: isdigit() says yes to '²' and int() refuses 5000 digits
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 and 0 < int(text) < 1 << 16 else None


def scan_dat_header(head: bytes, name: str, at_eof: bool) -> DatHeader | None:
    """Parse the header at the start of ``head``.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (or all of it).
    name : str
        File name used in error messages.
    at_eof : bool
        ``head`` is the whole file.

    Returns
    -------
    DatHeader or None
        ``None`` when more bytes are needed to see where the header ends.

    Raises
    ------
    FormatError
        The file ends before the event type/size bytes, the header is longer than 16 MiB (offset 0).
    """
    size = len(head)
    pos = lines = 0
    fields: dict[str, str] = {}
    # One iteration per header line, never per event.
    while True:
        if size - pos < 2 and not at_eof:
            return None
        if head[pos : pos + 2] != b"% ":
            break
        nl = head.find(b"\n", pos)
        if nl < 0:
            if not at_eof:
                if size >= HEADER_LIMIT:
                    raise FormatError(name, 0, f"header longer than {HEADER_LIMIT} bytes")
                return None
            nl = size
        words = head[pos + 2 : nl].decode("latin-1").split()
        if words:
            fields.setdefault(words[0], " ".join(words[1:]))
        lines += 1
        pos = min(nl + 1, size)
    if not lines:
        return DatHeader(0)
    if size - pos < 2:
        if not at_eof:
            return None
        raise FormatError(name, pos, "file ends after the header, before the event type and size bytes")
    return DatHeader(
        pos + 2,
        head[pos],
        head[pos + 1],
        fields,
        _dimension(fields.get("Width")),
        _dimension(fields.get("Height")),
        lines,
    )


def _check_header(header: DatHeader, name: str) -> None:
    where = header.data_start - 2
    if header.event_type == TRIGGER_TYPE:
        raise FormatError(name, where, "event type 14 (external triggers), not CD events")
    if header.event_type not in CD_TYPES:
        raise FormatError(name, where, f"unknown event type {header.event_type} (expected 0 or 12)")
    if header.event_size != RECORD_SIZE:
        raise FormatError(name, where + 1, f"event size {header.event_size}, expected 8")


def _check_rule(time_rule: str) -> None:
    if time_rule not in TIME_RULES:
        raise ConfigurationError(f"time_rule must be one of {TIME_RULES}, got {time_rule!r}")


@dataclass
class _State:
    last: int = -1  # last raw timestamp; -1 before the first event
    wraps: int = 0


def _decode(rec: np.ndarray, state: _State, time_rule: str) -> tuple[np.ndarray, ...]:
    ts = rec["t"].astype(np.int64)
    if ts.size:
        prev = np.empty_like(ts)
        prev[0] = state.last if state.last >= 0 else (0 if time_rule == "expelliarmus" else ts[0])
        prev[1:] = ts[:-1]
        step = (prev - ts > 1 << 31) if time_rule == "wrap" else (ts < prev)
        wraps = state.wraps + np.cumsum(step, dtype=np.int64)
        t = ts + (wraps << 32)
        state.last, state.wraps = int(ts[-1]), int(wraps[-1])
    else:
        t = ts
    w = rec["w"]
    x = (w & 0x3FFF).astype(np.uint16)
    y = ((w >> 14) & 0x3FFF).astype(np.uint16)
    p = ((w >> 28) & 1).astype(np.uint8)
    return t, x, y, p


def read_dat(
    data: bytes | bytearray | memoryview, name: str, time_rule: str = "wrap", allow_truncated: bool = False
) -> Events:
    """Decode every CD event of a Prophesee DAT file held in memory.

    Parameters
    ----------
    data : bytes-like
        The whole file.
    name : str
        File name used in error messages.
    time_rule : {"wrap", "expelliarmus"}
        How the 32-bit timestamps are unwrapped (see the module docstring).
    allow_truncated : bool
        Drop an incomplete last record instead of raising; its length goes to ``truncated_bytes``.

    Returns
    -------
    Events
        ``t`` int64 µs, ``x``, ``y`` uint16, ``p`` uint8 (1 = ON), file order; width/height from the header.

    Raises
    ------
    FormatError
        A trigger or unknown event type, an event size other than 8 (offset of that byte), no type/size bytes
        after the header, a body that is not a multiple of 8 bytes without ``allow_truncated``.
    ValueError
        Unknown ``time_rule``.
    """
    _check_rule(time_rule)
    buf = np.frombuffer(data, dtype=np.uint8)
    limit = _HEAD_BLOCK
    while True:  # grow the window until the header end is inside it
        header = scan_dat_header(buf[:limit].tobytes(), name, at_eof=limit >= buf.size)
        if header is not None:
            break
        limit *= 4
    _check_header(header, name)
    body = buf.size - header.data_start
    tail = tail_length(name, header.data_start, body, RECORD_SIZE, "8-byte event", allow_truncated)
    rec = buf[header.data_start : buf.size - tail].view(_RECORD_DTYPE)
    t, x, y, p = _decode(rec, _State(), time_rule)
    return Events(t, x, y, p, header.width, header.height, None, {}, tail)


def _read_file_header(f, name: str) -> DatHeader:
    head = b""
    while True:
        block = f.read(max(_HEAD_BLOCK, len(head)))
        head += block
        result = scan_dat_header(head, name, at_eof=not block)
        if result is not None:
            return result


def iter_dat(
    path: str | os.PathLike, chunk_events: int = 1 << 20, time_rule: str = "wrap", allow_truncated: bool = False
) -> Iterator[Events]:
    """Read a large DAT file chunk by chunk, carrying the last timestamp and the wrap count.

    Concatenating the chunks gives exactly :func:`read_dat` of the whole file (``truncated_bytes`` is set
    on the last chunk).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its name is used in error messages.
    chunk_events : int
        Events per chunk.
    time_rule : {"wrap", "expelliarmus"}
        As for :func:`read_dat`.
    allow_truncated : bool
        As for :func:`read_dat`.

    Yields
    ------
    Events
        At least one chunk (an empty one for a file without events).

    Raises
    ------
    FormatError
        As for :func:`read_dat`, before the first chunk.
    """
    _check_rule(time_rule)
    check_chunk_events(chunk_events)
    name = str(path)
    with open(path, "rb") as f:
        header = _read_file_header(f, name)
        _check_header(header, name)
        body = os.fstat(f.fileno()).st_size - header.data_start
        tail = tail_length(name, header.data_start, body, RECORD_SIZE, "8-byte event", allow_truncated)
        state = _State()
        for _, raw, last in iter_record_chunks(f, name, header.data_start, body, RECORD_SIZE, chunk_events):
            t, x, y, p = _decode(np.frombuffer(raw, _RECORD_DTYPE), state, time_rule)
            yield Events(t, x, y, p, header.width, header.height, None, {}, tail if last else 0)
