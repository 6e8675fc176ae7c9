"""AEDAT 3.1 reader (cAER; the DVS128 Gesture recordings).

Layout (see ``docs/DATASETS.md`` and ``shared/FORMATS.md`` §2): ``#`` header lines ending with
``#!END-HEADER\\r\\n``, then packets until end of file. Each packet is a 28-byte little-endian
header (int16 eventType, int16 eventSource, int32 eventSize, int32 eventTSOffset,
int32 eventTSOverflow, int32 eventCapacity, int32 eventNumber, int32 eventValid) followed by
``eventCapacity * eventSize`` payload bytes. Polarity packets (type 1) hold 8-byte events:
uint32 data (bit 0 valid, bit 1 polarity, bits 16–2 y, bits 31–17 x) and int32 timestamp.

Value-for-value with SpikingJelly's ``load_aedat_v3``: every event slot of ``eventCapacity`` is
kept (the valid bit is ignored) and ``t = uint32(timestamp) | eventTSOverflow << 31``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from shardgen.formats.chunks import check_chunk_events
from shardgen.formats.events import FormatError

END_HEADER = b"#!END-HEADER\r\n"
PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY = 1
POLARITY_EVENT_SIZE = 8
_EVENT_DTYPE = np.dtype([("data", "<u4"), ("ts", "<u4")])


class AedatError(FormatError):
    """A file is not valid AEDAT 3.1; the message names the file and the byte offset."""


@dataclass
class Aedat3Events:
    """Events of one AEDAT 3.1 file, in file order, plus what was skipped."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    packets: int
    skipped_packets: int
    truncated_bytes: int = 0
    """Bytes after the last complete event that were dropped (only with ``allow_truncated``)."""
    event_starts: np.ndarray | None = None
    event_counts: np.ndarray | None = None

    def byte_offset(self, i: int) -> int:
        """File offset of event ``i`` (for error messages)."""
        ends = np.cumsum(self.event_counts)
        k = int(np.searchsorted(ends, i, side="right"))
        first = int(ends[k - 1]) if k else 0
        return int(self.event_starts[k]) + POLARITY_EVENT_SIZE * (i - first)


def header_end(data: bytes | memoryview, name: str) -> int:
    """Byte offset where the packet data starts (just after the ``#!END-HEADER`` line)."""
    view = memoryview(data)
    if bytes(view[:11]) != b"#!AER-DAT3.":
        raise AedatError(f"{name}: byte 0: not an AEDAT 3.x file (expected '#!AER-DAT3.', got {bytes(view[:12])!r})")
    pos = 0
    size = len(view)
    while pos < size and view[pos] == 0x23:  # '#'
        nl = bytes(view[pos : min(size, pos + 65536)]).find(b"\n")
        if nl < 0:
            break
        line = bytes(view[pos : pos + nl + 1])
        pos += nl + 1
        if line == END_HEADER:
            return pos
    raise AedatError(f"{name}: byte {pos}: header has no '#!END-HEADER' line")


def _truncated_header_error(name: str, pos: int, left: int) -> AedatError:
    """The error for a packet header cut off by the end of the file (``left`` bytes of it present)."""
    return AedatError(
        f"{name}: byte {pos}: truncated packet header ({left} of 28 bytes); "
        "pass --allow-truncated to keep the events before it"
    )


def _check_packet(
    name: str, pos: int, size: int, header: tuple[int, ...], allow_truncated: bool
) -> tuple[int, int, int, int, int]:
    """Validate the unpacked header of the packet at ``pos`` in a file of ``size`` bytes.

    Returns
    -------
    tuple of int
        ``(etype, ovf, capacity, body, end)``: event type, timestamp overflow, event capacity, and the file
        offsets of the payload and of the next packet (``end`` may lie past ``size`` only with
        ``allow_truncated``).

    Raises
    ------
    AedatError
        A negative or zero size field, a polarity packet whose eventSize is not 8, or (without
        ``allow_truncated``) a payload that runs past the end of the file.
    """
    etype, _src, esize, _tsoff, ovf, capacity, _num, _valid = header
    if esize <= 0 or capacity < 0 or ovf < 0:
        raise AedatError(
            f"{name}: byte {pos}: bad packet header "
            f"(eventSize {esize}, eventCapacity {capacity}, eventTSOverflow {ovf})"
        )
    if etype == POLARITY and esize != POLARITY_EVENT_SIZE:
        raise AedatError(f"{name}: byte {pos}: polarity packet with eventSize {esize}, expected 8")
    body = pos + PACKET_HEADER.size
    end = body + capacity * esize
    if end > size and not allow_truncated:
        raise AedatError(
            f"{name}: byte {pos}: packet of {capacity}x{esize} bytes runs {end - size} bytes past "
            f"the end of the file ({size} bytes); pass --allow-truncated to keep the events before it"
        )
    return etype, ovf, capacity, body, end


def read_aedat3(data: bytes | memoryview, name: str, allow_truncated: bool = False) -> Aedat3Events:
    """Decode every polarity event of an AEDAT 3.1 file held in memory.

    Parameters
    ----------
    data : bytes
        The whole file.
    name : str
        File name used in error messages.
    allow_truncated : bool
        Keep the complete events before a packet that runs past the end of the file instead of
        raising; the dropped byte count is returned in ``truncated_bytes``.

    Returns
    -------
    Aedat3Events
        ``t`` int64 (µs), ``x``, ``y`` uint16, ``p`` uint8, in file order.

    Raises
    ------
    AedatError
        No ``#!END-HEADER``, a packet header or payload that runs past the end of the file, a
        negative size field, or a polarity packet whose eventSize is not 8; the message names the
        file and the byte offset of the offending packet.
    """
    view = memoryview(data)
    size = len(view)
    pos = header_end(view, name)
    starts: list[int] = []
    counts: list[int] = []
    overflows: list[int] = []
    packets = skipped = truncated = 0
    unpack = PACKET_HEADER.unpack_from
    # The packet chain can only be walked header by header (each header gives the next offset);
    # this loop touches 28 bytes per packet and never an event. All event work is vectorised below.
    while pos < size:
        if size - pos < PACKET_HEADER.size:
            if not allow_truncated:
                raise _truncated_header_error(name, pos, size - pos)
            truncated += size - pos
            break
        etype, ovf, capacity, body, end = _check_packet(name, pos, size, unpack(view, pos), allow_truncated)
        packets += 1
        if end > size:
            if etype == POLARITY:
                whole = (size - body) // POLARITY_EVENT_SIZE
                if whole:
                    starts.append(body)
                    counts.append(whole)
                    overflows.append(ovf)
                truncated += size - body - whole * POLARITY_EVENT_SIZE
            else:
                truncated += size - body
            break
        if etype == POLARITY:
            if capacity:
                starts.append(body)
                counts.append(capacity)
                overflows.append(ovf)
        else:
            skipped += 1
        pos = end
    return _decode_polarity(view, starts, counts, overflows, packets, skipped, truncated)


def _decode_polarity(
    view: memoryview,
    starts: list[int],
    counts: list[int],
    overflows: list[int],
    packets: int,
    skipped: int,
    truncated: int,
) -> Aedat3Events:
    """Gather all polarity payloads into one record array and split the fields in one pass."""
    total = int(sum(counts))
    if total == 0:
        z = np.zeros(0, np.uint16)
        return Aedat3Events(np.zeros(0, np.int64), z, z.copy(), np.zeros(0, np.uint8), packets, skipped, truncated)
    if len(starts) == 1:
        rec = np.frombuffer(view, _EVENT_DTYPE, count=total, offset=starts[0])
    else:
        # One slice assignment per packet into a numpy buffer (numpy, unlike bytes, allocates large arrays on
        # transparent huge pages: far fewer page faults). np.concatenate of the structured packets costs about
        # five times as much: it copies field by field.
        rec = np.empty(total, _EVENT_DTYPE)
        dest = memoryview(rec).cast("B")
        src = view if view.format == "B" else view.cast("B")
        at = 0
        for s, c in zip(starts, counts, strict=True):
            n = c * POLARITY_EVENT_SIZE
            dest[at : at + n] = src[s : s + n]
            at += n
        dest.release()
    t = rec["ts"].astype(np.int64)
    ovf = np.asarray(overflows, dtype=np.int64)
    if ovf.any():
        t |= np.repeat(ovf << 31, counts)
    # Work on the 16-bit halves of the little-endian data word: x = bits 31-17, y = bits 16-2, p = bit 1.
    halves = rec.view(np.uint16).reshape(-1, 4)
    low, high = halves[:, 0], halves[:, 1]
    x = high >> 1
    y = low >> 2
    top = high & 1
    top <<= 14
    y |= top
    p = (low & 2).astype(np.uint8)
    p >>= 1
    return Aedat3Events(
        t, x, y, p, packets, skipped, truncated, np.asarray(starts, np.int64), np.asarray(counts, np.int64)
    )


# ------------------------------------------------------------------------------------------ chunked reading

import os  # noqa: E402  (kept with the chunked reader that needs it)
from collections.abc import Iterator  # noqa: E402

_HEAD_BLOCK = 1 << 16
_HEADER_LIMIT = 16 << 20


def _read_file_header_end(f, name: str) -> int:
    """Offset of the first packet, reading only as much of the open file as the header needs."""
    head = b""
    while True:
        block = f.read(max(_HEAD_BLOCK, len(head)))
        head += block
        if END_HEADER in head or not block or len(head) >= _HEADER_LIMIT:
            return header_end(head, name)


def iter_aedat3(
    path: str | os.PathLike, chunk_events: int = 1 << 20, allow_truncated: bool = False
) -> Iterator[Aedat3Events]:
    """Read a large AEDAT 3.1 file chunk by chunk: walk the packet headers, group polarity packets.

    Only the payloads of polarity packets are read (other packets are skipped with a seek). A chunk is
    decoded as soon as it holds at least ``chunk_events`` events (whole packets), so concatenating the
    chunks gives exactly :func:`read_aedat3` of the whole file; ``packets``/``skipped_packets`` are per
    chunk and add up, ``truncated_bytes`` is set on the last chunk, ``event_starts`` are file offsets.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its name is used in error messages.
    chunk_events : int
        Minimum number of events per chunk (except the last).
    allow_truncated : bool
        As for :func:`read_aedat3`.

    Yields
    ------
    Aedat3Events
        At least one chunk (an empty one for a file without polarity events).

    Raises
    ------
    AedatError
        As for :func:`read_aedat3`, raised when the reader reaches the damaged packet.
    """
    check_chunk_events(chunk_events)
    name = str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = _read_file_header_end(f, name)
        payloads: list[bytes] = []
        file_starts: list[int] = []
        counts: list[int] = []
        overflows: list[int] = []
        held = packets = skipped = truncated = 0
        yielded = False

        def flush() -> Aedat3Events:
            buf = b"".join(payloads)
            local = [0]
            for c in counts[:-1]:
                local.append(local[-1] + c * POLARITY_EVENT_SIZE)
            out = _decode_polarity(memoryview(buf), local if counts else [], counts, overflows, packets, skipped,
                                   truncated)
            out.event_starts = np.asarray(file_starts, np.int64)
            return out

        # One iteration per packet (28-byte header read + one payload read or seek), never per event.
        while pos < size:
            f.seek(pos)
            raw = f.read(PACKET_HEADER.size)
            if len(raw) < PACKET_HEADER.size:
                if not allow_truncated:
                    raise _truncated_header_error(name, pos, size - pos)
                truncated += size - pos
                break
            etype, ovf, capacity, body, end = _check_packet(name, pos, size, PACKET_HEADER.unpack(raw), allow_truncated)
            packets += 1
            if end > size:
                whole = (size - body) // POLARITY_EVENT_SIZE if etype == POLARITY else 0
                if whole:
                    payloads.append(f.read(whole * POLARITY_EVENT_SIZE))
                    file_starts.append(body)
                    counts.append(whole)
                    overflows.append(ovf)
                truncated += size - body - whole * POLARITY_EVENT_SIZE
                break
            if etype == POLARITY:
                if capacity:
                    data = f.read(capacity * POLARITY_EVENT_SIZE)
                    if len(data) != capacity * POLARITY_EVENT_SIZE:
                        raise AedatError(f"{name}: byte {body}: file shrank while it was being read")
                    payloads.append(data)
                    file_starts.append(body)
                    counts.append(capacity)
                    overflows.append(ovf)
                    held += capacity
            else:
                skipped += 1
            pos = end
            if held >= chunk_events:
                yield flush()
                payloads, file_starts, counts, overflows = [], [], [], []
                held = packets = skipped = 0
                yielded = True
        if counts or packets or truncated or not yielded:
            yield flush()
