"""AEDAT 4.0 reader (iniVation DV), decoding with the ``aedat`` package.

Library choice: the packets are LZ4- or ZSTD-compressed FlatBuffers (``shared/FORMATS.md`` §3). We decode
them with ``aedat`` (PyPI, neuromorphicsystems; Rust, ``aedat.Decoder(path)``) rather than by hand: it is a
small, maintained, binary wheel with no Python dependencies, handles LZ4 and ZSTD frames, stops at the
file data table, checks every packet's FlatBuffer identifier against its stream, and is what tonic 1.7.0's
``read_aedat4`` uses — so it is also the reference reader for the tests. The alternatives are heavier or
older: ``dv-processing`` (iniVation's C++ SDK bindings, large) and ``dv`` 1.0.12 (the older pure-Python
reader, per-packet structured arrays with padding fields). ``aedat`` is imported lazily and is an optional
dependency: ``pip install 'eventshard[aedat4]'``.

What is read: the DVS events of the **lowest-numbered EVTS stream** (what tonic does). Packets of other
streams are not decoded beyond what ``aedat`` does and are counted in ``skipped`` (``frame_packets``,
``imu_packets``, ``trigger_packets``, ``other_event_stream_packets``).

Values: ``t`` is the file's int64 timestamp, **absolute Unix time in µs** (not zero-based), ``x``, ``y``
uint16, ``p = on`` (1 = ON). ``width``/``height`` come from the stream's XML ``sizeX``/``sizeY`` (via
``aedat``'s ``id_to_stream``), ``camera`` from its XML ``source`` attribute (e.g. ``DAVIS346_00000104``).

Damaged files: before decoding, the packet chain is walked here (8 bytes read per packet: int32 stream id,
int32 size) from the end of the IOHeader up to ``dataTablePosition`` (or the end of the file when it is
-1), so that a bad magic, a damaged IOHeader or a packet running past the end of the file becomes a
:class:`FormatError` with its byte offset; an error ``aedat`` raises while decoding packet *k* (e.g. a
corrupt LZ4 frame) is reported at the offset of packet *k*.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .chunks import check_chunk_events
from .events import Events, FormatError

MAGIC = b"#!AER-DAT4.0\r\n"
PACKET_HEADER = struct.Struct("<ii")
INSTALL_HINT = "reading AEDAT 4 files needs the 'aedat' package: pip install 'eventshard[aedat4]'"
_SKIP_KEY = {"frame": "frame_packets", "imus": "imu_packets", "triggers": "trigger_packets"}
_NODE_RE = re.compile(r'<node name="(\d+)"')
_SOURCE_RE = re.compile(r'<attr key="source" type="string">([^<]*)</attr>')


def _aedat() -> Any:
    """The ``aedat`` module, or an ImportError that says how to install it."""
    try:
        import aedat
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(INSTALL_HINT) from exc
    return aedat


@dataclass
class Aedat4Layout:
    """The container structure of an AEDAT 4.0 file, as walked by :func:`walk_aedat4`.

    Attributes
    ----------
    compression : int
        IOHeader compression enum (0 none, 1 LZ4, 2 LZ4 high, 3 ZSTD, 4 ZSTD high).
    data_table : int
        ``dataTablePosition`` (-1: none).
    description : str
        The XML stream description.
    packet_offsets, packet_streams : list of int
        Byte offset and stream id of every complete packet.
    truncated_bytes : int
        Bytes of a last packet that runs past the end of the file (0 if none).
    """

    compression: int
    data_table: int
    description: str
    packet_offsets: list[int] = field(default_factory=list)
    packet_streams: list[int] = field(default_factory=list)
    truncated_bytes: int = 0

    def source(self, stream_id: int) -> str | None:
        """The XML ``source`` attribute of ``stream_id`` (the camera), or ``None``."""
        nodes = list(_NODE_RE.finditer(self.description))
        for i, m in enumerate(nodes):
            if int(m.group(1)) == stream_id:
                end = nodes[i + 1].start() if i + 1 < len(nodes) else len(self.description)
                found = _SOURCE_RE.search(self.description, m.end(), end)
                return found.group(1) if found else None
        return None


def _flatbuffer_ioheader(h: bytes, name: str, base: int) -> tuple[int, int, str]:
    """(compression, dataTablePosition, description) from the IOHeader FlatBuffer ``h`` at file offset ``base``."""

    def need(pos: int, size: int, what: str) -> None:
        if pos < 0 or pos + size > len(h):
            raise FormatError(name, base + max(pos, 0), f"damaged IOHeader ({what} outside its {len(h)} bytes)")

    need(0, 4, "root offset")
    table = struct.unpack_from("<I", h, 0)[0]
    need(table, 4, "root table")
    vtable = table - struct.unpack_from("<i", h, table)[0]
    need(vtable, 4, "vtable")
    vsize = struct.unpack_from("<H", h, vtable)[0]
    need(vtable, vsize, "vtable")
    n_fields = max(0, (vsize - 4) // 2)
    offsets = struct.unpack_from(f"<{n_fields}H", h, vtable + 4) if n_fields else ()

    def field_at(i: int) -> int:
        return offsets[i] if i < len(offsets) else 0

    compression, data_table, description = 0, -1, ""
    if field_at(0):
        need(table + field_at(0), 4, "compression")
        compression = struct.unpack_from("<i", h, table + field_at(0))[0]
    if field_at(1):
        need(table + field_at(1), 8, "dataTablePosition")
        data_table = struct.unpack_from("<q", h, table + field_at(1))[0]
    if field_at(2):
        pos = table + field_at(2)
        need(pos, 4, "description offset")
        pos += struct.unpack_from("<I", h, pos)[0]
        need(pos, 4, "description length")
        length = struct.unpack_from("<I", h, pos)[0]
        need(pos + 4, length, "description")
        try:  # checked here: aedat's Rust decoder aborts the whole process on a description that is not UTF-8
            description = h[pos + 4 : pos + 4 + length].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(name, base + pos + 4 + exc.start, "IOHeader description is not UTF-8 text") from None
    return compression, data_table, description


def walk_aedat4(path: str | os.PathLike, name: str | None = None, allow_truncated: bool = False) -> Aedat4Layout:
    """Check the magic and IOHeader of an AEDAT 4.0 file and list its packets.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    name : str or None
        Name used in error messages (default: ``str(path)``).
    allow_truncated : bool
        Accept a last packet that runs past the end of the file (it is then left out of the list and its
        length reported in ``truncated_bytes``).

    Returns
    -------
    Aedat4Layout

    Raises
    ------
    FormatError
        Wrong magic (byte 0), an IOHeader that does not fit the file, is not a valid FlatBuffer or has a
        description that is not UTF-8, a packet with a negative size or (without ``allow_truncated``) one
        that runs past the end of the file.
    """
    name = str(path) if name is None else name
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(len(MAGIC) + 4)
        if head[: len(MAGIC)] != MAGIC:
            raise FormatError(name, 0, f"not an AEDAT 4.0 file (expected {MAGIC!r}, got {head[:len(MAGIC)]!r})")
        if len(head) < len(MAGIC) + 4:
            raise FormatError(name, len(head), "file ends inside the IOHeader size")
        hsize = struct.unpack_from("<I", head, len(MAGIC))[0]
        base = len(MAGIC) + 4
        if base + hsize > size:
            raise FormatError(name, len(MAGIC), f"IOHeader of {hsize} bytes runs past the end of the file ({size})")
        compression, data_table, description = _flatbuffer_ioheader(f.read(hsize), name, base)
        layout = Aedat4Layout(compression, data_table, description)
        end = data_table if 0 <= data_table <= size else size
        pos = base + hsize
        # One 8-byte read per packet (packets hold thousands of events); never per event.
        while pos < end:
            f.seek(pos)
            raw = f.read(PACKET_HEADER.size)
            if len(raw) < PACKET_HEADER.size:
                if not allow_truncated:
                    raise FormatError(name, pos, "file ends inside a packet header; pass --allow-truncated")
                layout.truncated_bytes = size - pos
                break
            stream, length = PACKET_HEADER.unpack(raw)
            if length < 0 or stream < 0:
                raise FormatError(name, pos, f"bad packet header (stream id {stream}, size {length})")
            if pos + PACKET_HEADER.size + length > end:
                if not allow_truncated:
                    raise FormatError(
                        name,
                        pos,
                        f"packet of {length} bytes runs past the end of the data ({end} bytes); pass "
                        "--allow-truncated to keep the packets before it",
                    )
                layout.truncated_bytes = size - pos
                break
            layout.packet_offsets.append(pos)
            layout.packet_streams.append(stream)
            pos += PACKET_HEADER.size + length
    return layout


def _iter_packets(path: str | os.PathLike, name: str, layout: Aedat4Layout) -> Iterator[dict]:
    """Packets decoded by ``aedat``, mapped to our walk so that errors name a byte offset."""
    aedat = _aedat()
    try:
        decoder = aedat.Decoder(str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # RuntimeError/OSError from aedat, or pyo3's PanicException (a BaseException)
        raise FormatError(name, 0, f"aedat could not open the file: {exc}") from exc
    count = len(layout.packet_offsets)
    k = 0
    while k < count:
        try:
            packet = next(decoder)
        except StopIteration:
            raise FormatError(
                name, layout.packet_offsets[k], f"aedat stopped after {k} of {count} packets"
            ) from None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # RuntimeError from aedat, or pyo3's PanicException (a BaseException)
            raise FormatError(name, layout.packet_offsets[k], f"aedat could not decode packet {k}: {exc}") from exc
        yield packet
        k += 1


def _streams(path: str | os.PathLike, name: str, stream_id: int | None) -> tuple[int | None, dict]:
    aedat = _aedat()
    try:
        streams = aedat.Decoder(str(path)).id_to_stream()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # also pyo3's PanicException, e.g. from its XML parser on a damaged description
        raise FormatError(name, 0, f"aedat could not read the stream description: {exc}") from exc
    events = sorted(i for i, s in streams.items() if s.get("type") == "events")
    if stream_id is None:
        stream_id = events[0] if events else None
    elif stream_id not in events:
        raise FormatError(name, None, f"stream {stream_id} is not an event stream (event streams: {events})")
    return stream_id, streams


def _empty_skipped() -> dict[str, int]:
    return {"frame_packets": 0, "imu_packets": 0, "trigger_packets": 0, "other_event_stream_packets": 0}


def _events(parts: list[np.ndarray], meta: tuple, skipped: dict[str, int], truncated: int = 0) -> Events:
    if parts:
        ev = np.concatenate(parts) if len(parts) > 1 else parts[0]
        t = ev["t"].astype(np.int64)
        x = ev["x"].astype(np.uint16)
        y = ev["y"].astype(np.uint16)
        p = ev["on"].astype(np.uint8)
    else:
        t, x, y, p = np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0, np.uint8)
    return Events(t, x, y, p, *meta, skipped, truncated)


def _classify(packet: dict, stream_id: int | None, skipped: dict[str, int]) -> np.ndarray | None:
    if "events" in packet:
        if packet["stream_id"] == stream_id:
            return packet["events"]
        skipped["other_event_stream_packets"] += 1
        return None
    for kind, key in _SKIP_KEY.items():
        if kind in packet:
            skipped[key] += 1
            return None
    skipped["other_packets"] = skipped.get("other_packets", 0) + 1
    return None


def _prepare(
    path: str | os.PathLike, name: str | None, stream_id: int | None, allow_truncated: bool
) -> tuple[str, Aedat4Layout, int | None, tuple]:
    """Walk the container, pick the event stream and collect (width, height, camera)."""
    name = str(path) if name is None else name
    layout = walk_aedat4(path, name, allow_truncated)
    stream_id, streams = _streams(path, name, stream_id)
    info = streams.get(stream_id, {}) if stream_id is not None else {}
    meta = (info.get("width"), info.get("height"), layout.source(stream_id) if stream_id is not None else None)
    return name, layout, stream_id, meta


def read_aedat4(
    path: str | os.PathLike, name: str | None = None, stream_id: int | None = None, allow_truncated: bool = False
) -> Events:
    """Read the DVS events of an AEDAT 4.0 file (one event stream).

    Parameters
    ----------
    path : str or os.PathLike
        The file (``aedat`` reads it from disk).
    name : str or None
        Name used in error messages (default ``str(path)``).
    stream_id : int or None
        Event stream to read; default the lowest-numbered EVTS stream (as tonic).
    allow_truncated : bool
        Keep the packets before a last packet that runs past the end of the file; its length goes to
        ``truncated_bytes``.

    Returns
    -------
    Events
        ``t`` int64 (absolute µs), ``x``, ``y`` uint16, ``p`` uint8, file order; ``skipped`` counts packets of
        the other streams.

    Raises
    ------
    FormatError
        A damaged file (see :func:`walk_aedat4`) or a packet ``aedat`` cannot decode; the message names the
        byte offset of the packet.
    ImportError
        ``aedat`` is not installed.
    """
    name, layout, stream_id, meta = _prepare(path, name, stream_id, allow_truncated)
    skipped = _empty_skipped()
    parts = []
    for packet in _iter_packets(path, name, layout):
        ev = _classify(packet, stream_id, skipped)
        if ev is not None and ev.size:
            parts.append(ev)
    return _events(parts, meta, skipped, layout.truncated_bytes)


def iter_aedat4(
    path: str | os.PathLike,
    chunk_events: int = 1 << 20,
    stream_id: int | None = None,
    allow_truncated: bool = False,
) -> Iterator[Events]:
    """Read an AEDAT 4.0 file packet by packet, yielding chunks of about ``chunk_events`` events.

    ``aedat`` decodes one packet at a time, so memory stays bounded by the chunk plus one packet.
    Concatenating the chunks gives exactly :func:`read_aedat4`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    chunk_events : int
        A chunk is yielded as soon as it holds at least this many events (whole packets).
    stream_id : int or None
        As for :func:`read_aedat4`.
    allow_truncated : bool
        As for :func:`read_aedat4`.

    Yields
    ------
    Events
        At least one chunk (an empty one for a file without events).

    Raises
    ------
    FormatError
        As for :func:`read_aedat4` (the container walk happens before the first chunk).
    """
    check_chunk_events(chunk_events)
    name, layout, stream_id, meta = _prepare(path, str(path), stream_id, allow_truncated)
    skipped = _empty_skipped()
    parts: list[np.ndarray] = []
    held = 0
    yielded = False
    for packet in _iter_packets(path, name, layout):
        ev = _classify(packet, stream_id, skipped)
        if ev is not None and ev.size:
            parts.append(ev)
            held += ev.size
            if held >= chunk_events:
                yield _events(parts, meta, skipped)
                parts, held, skipped, yielded = [], 0, _empty_skipped(), True
    if parts or not yielded or any(skipped.values()) or layout.truncated_bytes:
        yield _events(parts, meta, skipped, layout.truncated_bytes)
