"""AEDAT 2.0 reader (jAER; CIFAR10-DVS, DVS128 and DAVIS recordings).

Layout (``shared/FORMATS.md`` §1): text header lines starting with ``#`` (first ``#!AER-DAT2.0``; CRLF
from jAER, LF in some tools), then N × 8-byte records: big-endian int32 address, big-endian int32
timestamp (µs).

Header end
    As jAER's ``AEFileInputStream``: after a ``#End Of ASCII Header`` line (case-insensitive), otherwise
    at the first line that does not start with ``#``. A file whose first data byte is ``0x23`` (``#``) and
    that has no end marker is ambiguous — the format has no mandatory end marker, and for DAVIS the first
    byte holds address bits 31–24 (0x23 ⇔ y in 140–143) — so such a record is read as a header line, as
    jAER, iniVation's ``dv.LegacyAedatFile`` and SpikingJelly all do. Differences from SpikingJelly's
    CIFAR10-DVS ``_skip_header`` (which gives the same offset on every real and generated file we have):
    it strips leading whitespace before looking for ``#``, it stops at a ``#`` line that is not valid
    UTF-8 (and raises on a first line that is not), and it does not know the end marker (data beginning
    with a decodable ``#`` line after it would be swallowed). ``dv`` likewise ignores the end marker.

Timestamps (both layouts)
    The 32-bit timestamp is read **unsigned** (as SpikingJelly and ``dv`` do) and unwrapped with ``dv``'s
    rule: a counter is incremented every time the unsigned timestamp decreases from one record to the next
    (all records count, including skipped APS/IMU/external words) and ``t = ts | counter << 31``. On files
    whose timestamps never decrease — all real files here and CIFAR10-DVS clips — this is exactly the
    unsigned timestamp, i.e. equal to SpikingJelly's CIFAR10-DVS reader. jAER's own rule (a jump from
    positive to ≤ 0 as int32 is a wrap of 2**31) already holds for the unsigned reading; ``dv``'s rule
    adds 2**31 (not 2**32) at the unsigned wrap after ~71.6 min and turns any single backwards glitch into a
    2**31 jump; being an OR, it also leaves a timestamp ≥ 2**31 unchanged while the counter is odd. We keep it
    for value-for-value parity with ``dv``; the decreases are not reported.

``layout="dvs128"`` (DVS128 / Tmpdiff128; the CIFAR10-DVS container)
    ``x = (addr & 0xFE) >> 1``, ``y = (addr & 0x7F00) >> 8``, ``p = addr & 1`` — the **raw** address fields,
    no mirroring or polarity inversion (the CIFAR10-DVS dataset module applies SpikingJelly's
    ``x = 127 − y_raw, y = 127 − x_raw, p = 1 − p_raw`` itself). Words with bit 15 (external/sync) or bit 31
    (jAER's special-event bit) set are skipped and counted in ``skipped["external"]``; ``keep_external=True``
    keeps them as events with the same field extraction, which is value-for-value what SpikingJelly's
    CIFAR10-DVS ``_load_origin_data`` does (it filters nothing). Real DVS128 files carry no such bits.

``layout="davis"`` (DAVIS240/346)
    A word is a DVS event iff bit 31 == 0 and bit 10 == 0; ``p`` = bit 11 (1 = ON), ``x`` = bits 21–12,
    ``y`` = bits 30–22, in the **raw sensor orientation** of ``dv.LegacyAedatFile`` (no mirroring; jAER
    would output ``x = W − 1 − raw_x``, tonic mirrors both axes). We output ``dv``'s convention because it is
    the iniVation reference reader and keeps the raw fields; a dataset module that wants another orientation
    mirrors with the ``width``/``height`` returned here. APS words (bit 31 set, not IMU), IMU words
    (``addr & 0x80000C00 == 0x80000C00``) and external-input words (bit 31 == 0, bit 10 == 1) are skipped and
    counted in ``skipped["aps"]``, ``["imu"]``, ``["external"]``. ``dv`` yields external-input words as
    OFF events; ``keep_external=True`` does the same (``p = 1`` iff bits 11–10 == 0b10), which makes the
    result equal to ``dv``'s event stream on any file.

Sensor size comes from the ``# AEChip:`` header line: DVS128/Tmpdiff128 128×128, DAVIS240* 240×180,
Davis346* 346×260; ``camera`` is the AEChip class name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from loader.errors import ConfigurationError

from .chunks import check_chunk_events, iter_record_chunks
from .events import Events, FormatError

MAGIC = b"#!AER-DAT2.0"
END_MARKER = b"#end of ascii header"
RECORD_SIZE = 8
LAYOUTS = ("dvs128", "davis")
_CHIP_RE = re.compile(rb"#\s*AEChip:\s*(\S+)")
_RECORD_DTYPE = np.dtype([("addr", ">u4"), ("ts", ">u4")])
_HEAD_BLOCK = 1 << 16


def chip_geometry(chip: str | None) -> tuple[str, int, int] | None:
    """Address layout and sensor size of a jAER ``AEChip`` class name.

    Parameters
    ----------
    chip : str or None
        The Java class named on the ``# AEChip:`` header line (e.g. ``eu.seebetter.ini.chips.davis.DAVIS240C``).

    Returns
    -------
    tuple of (str, int, int) or None
        ``(layout, width, height)``, or ``None`` for a chip this reader does not know.
    """
    if not chip:
        return None
    cls = chip.rsplit(".", 1)[-1].lower()
    if cls.startswith("dvs128") or cls.startswith("tmpdiff128"):
        return "dvs128", 128, 128
    if cls.startswith("davis240"):
        return "davis", 240, 180
    if cls.startswith("davis346"):
        return "davis", 346, 260
    return None


def sniff(head: bytes) -> bool:
    """Tell whether the first bytes of a file are an AEDAT 2.0 header.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (at least 12 to say yes).

    Returns
    -------
    bool
        ``True`` iff ``head`` starts with ``#!AER-DAT2.0``.
    """
    return bytes(head[: len(MAGIC)]) == MAGIC


def _scan_header(buf: np.ndarray, name: str, at_eof: bool) -> tuple[int, dict[str, Any]] | None:
    """Walk the header lines of ``buf``; ``None`` when more bytes are needed to see where it ends."""
    size = buf.size
    if size < len(MAGIC) and not at_eof:
        return None
    head = buf[: len(MAGIC)].tobytes()
    if head != MAGIC:
        raise FormatError(name, 0, f"not an AEDAT 2.0 file (expected {MAGIC.decode()!r}, got {head!r})")
    pos = lines = 0
    chip: str | None = None
    end_marker = False
    window = _HEAD_BLOCK
    # One iteration per header line (the 2015 DAVIS files have ~2100); never per event.
    while pos < size and buf[pos] == 0x23 and not end_marker:
        stop = min(size, pos + window)
        newlines = np.flatnonzero(buf[pos:stop] == 0x0A)
        if newlines.size == 0:
            if stop < size:
                window *= 4
                continue
            if not at_eof:
                return None
            ends = [size]  # unterminated last header line at end of file: header only, as dv/SpikingJelly read it
        else:
            ends = (newlines + (pos + 1)).tolist()
        for end in ends:
            if buf[pos] != 0x23:
                break
            line = buf[pos:end].tobytes()
            lines += 1
            pos = end
            if chip is None:
                m = _CHIP_RE.match(line)
                if m:
                    chip = m.group(1).decode("ascii", errors="replace")
            if line.strip().lower() == END_MARKER:
                end_marker = True
                break
    if pos >= size and not end_marker and not at_eof:
        return None
    geometry = chip_geometry(chip)
    info: dict[str, Any] = {
        "chip": chip,
        "layout": geometry[0] if geometry else None,
        "width": geometry[1] if geometry else None,
        "height": geometry[2] if geometry else None,
        "lines": lines,
        "end_marker": end_marker,
    }
    return pos, info


def parse_header(data: bytes | bytearray | memoryview, name: str) -> tuple[int, dict[str, Any]]:
    """Find where the records of an AEDAT 2.0 file start and what its header says.

    Parameters
    ----------
    data : bytes, bytearray, memoryview or mmap
        The file, or at least its whole header (bytes after it are not looked at).
    name : str
        File name used in error messages.

    Returns
    -------
    tuple of (int, dict)
        Byte offset of the first record, and ``{"chip": AEChip class name or None, "layout": "dvs128" /
        "davis" / None, "width": int or None, "height": int or None, "lines": number of header lines,
        "end_marker": whether a ``#End Of ASCII Header`` line ended the header}``.

    Raises
    ------
    FormatError
        The data does not start with ``#!AER-DAT2.0`` (byte 0).
    """
    result = _scan_header(np.frombuffer(data, dtype=np.uint8), name, at_eof=True)
    assert result is not None
    return result


def _resolve_layout(layout: str | None, info: dict[str, Any], name: str) -> str:
    if layout is None:
        if info["layout"] is None:
            said = f"AEChip {info['chip']!r}" if info["chip"] else "no '# AEChip:' line"
            raise FormatError(
                name,
                None,
                f"cannot tell the address layout from the header ({said}); pass layout='dvs128' or layout='davis'",
            )
        return info["layout"]
    if layout not in LAYOUTS:
        raise ConfigurationError(f"layout must be one of {LAYOUTS} or None, got {layout!r}")
    return layout


def _geometry(layout: str, info: dict[str, Any]) -> tuple[int | None, int | None]:
    if info["layout"] == layout:
        return info["width"], info["height"]
    if layout == "dvs128":
        return 128, 128  # 7-bit address fields
    return None, None


def _truncation_error(name: str, start: int, body: int) -> FormatError:
    whole = body - body % RECORD_SIZE
    return FormatError(
        name,
        start + whole,
        f"incomplete 8-byte record ({body % RECORD_SIZE} of 8 bytes; the {body} bytes after the header are not a "
        "multiple of 8); pass --allow-truncated to keep the events before it",
    )


class _Decoder:
    """Decodes records chunk by chunk, carrying the timestamp-decrease counter across chunks."""

    def __init__(self, layout: str, keep_external: bool, width: int | None, height: int | None, camera: str | None):
        self.layout = layout
        self.keep_external = keep_external
        self.width = width
        self.height = height
        self.camera = camera
        self.wraps = 0
        self.last_ts = -1

    def decode(self, records: np.ndarray) -> Events:
        addr = records["addr"].astype(np.uint32)
        ts = records["ts"].astype(np.int64)
        if ts.size:
            prev = np.empty_like(ts)
            prev[0] = self.last_ts
            prev[1:] = ts[:-1]
            wraps = self.wraps + np.cumsum(ts < prev, dtype=np.int64)
            self.wraps = int(wraps[-1])
            self.last_ts = int(ts[-1])
            t = ts | (wraps << 31)
        else:
            t = ts
        if self.layout == "dvs128":
            external = (addr & np.uint32(0x80008000)) != 0
            n_ext = int(np.count_nonzero(external))
            skipped = {"external": 0 if self.keep_external else n_ext}
            if n_ext and not self.keep_external:
                keep = ~external
                addr, t = addr[keep], t[keep]
            x = ((addr & 0xFE) >> 1).astype(np.uint16)
            y = ((addr & 0x7F00) >> 8).astype(np.uint16)
            p = (addr & 1).astype(np.uint8)
        else:
            special = (addr >> 31) != 0
            imu = (addr & np.uint32(0x80000C00)) == np.uint32(0x80000C00)
            external = ~special & ((addr & 0x400) != 0)
            n_ext = int(np.count_nonzero(external))
            n_imu = int(np.count_nonzero(imu))
            skipped = {
                "aps": int(np.count_nonzero(special)) - n_imu,
                "imu": n_imu,
                "external": 0 if self.keep_external else n_ext,
            }
            keep = ~special if self.keep_external else ~(special | external)
            addr, t = addr[keep], t[keep]
            x = ((addr >> 12) & 0x3FF).astype(np.uint16)
            y = ((addr >> 22) & 0x1FF).astype(np.uint16)
            p = (((addr >> 10) & 3) == 2).astype(np.uint8)
        return Events(t=t, x=x, y=y, p=p, width=self.width, height=self.height, camera=self.camera, skipped=skipped)


def read_aedat2(
    data: bytes | bytearray | memoryview,
    name: str,
    layout: str | None = None,
    allow_truncated: bool = False,
    *,
    keep_external: bool = False,
) -> Events:
    """Decode the polarity events of an AEDAT 2.0 file held in memory.

    Parameters
    ----------
    data : bytes, bytearray, memoryview or mmap
        The whole file.
    name : str
        File name used in error messages.
    layout : {"dvs128", "davis"} or None
        Address layout; ``None`` takes it from the ``# AEChip:`` header line.
    allow_truncated : bool
        Drop an incomplete last record instead of raising; its length goes to ``truncated_bytes``.
    keep_external : bool
        Keep external/special words as events (dvs128: bit 15 or 31 set, as SpikingJelly's CIFAR10-DVS
        reader; davis: external-input words as ``dv.LegacyAedatFile`` yields them) instead of skipping them.

    Returns
    -------
    Events
        ``t`` int64 (µs, see the module docstring for the unwrapping rule), raw ``x``, ``y`` uint16, ``p``
        uint8, file order; ``skipped`` counts ``external`` (dvs128) or ``aps``/``imu``/``external`` (davis).

    Raises
    ------
    FormatError
        Not an AEDAT 2.0 file (byte 0), unknown chip and no ``layout`` (no offset), or a body length that
        is not a multiple of 8 (offset of the incomplete record) without ``allow_truncated``.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    pos, info = parse_header(buf, name)
    layout = _resolve_layout(layout, info, name)
    body = buf.size - pos
    tail = body % RECORD_SIZE
    if tail and not allow_truncated:
        raise _truncation_error(name, pos, body)
    records = buf[pos : buf.size - tail].view(_RECORD_DTYPE)
    width, height = _geometry(layout, info)
    events = _Decoder(layout, keep_external, width, height, info["chip"]).decode(records)
    events.truncated_bytes = tail
    return events


def _read_file_header(f, name: str) -> tuple[int, dict[str, Any]]:
    """Read just enough of an open file to parse its header (the 2015 DAVIS headers are ~175 KB)."""
    head = b""
    while True:
        block = f.read(max(_HEAD_BLOCK, len(head)))
        head += block
        result = _scan_header(np.frombuffer(head, dtype=np.uint8), name, at_eof=not block)
        if result is not None:
            return result


def iter_aedat2(
    path: str | os.PathLike,
    chunk_events: int = 1 << 20,
    layout: str | None = None,
    *,
    allow_truncated: bool = False,
    keep_external: bool = False,
) -> Iterator[Events]:
    """Read a large AEDAT 2.0 file chunk by chunk.

    The timestamp-unwrapping state is carried from chunk to chunk, so concatenating the chunks gives
    exactly :func:`read_aedat2` of the whole file (``skipped`` counts are per chunk and add up;
    ``truncated_bytes`` is set on the last chunk).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its name is used in error messages.
    chunk_events : int
        Records (8-byte words, skipped ones included) read per chunk.
    layout : {"dvs128", "davis"} or None
        As for :func:`read_aedat2`.
    allow_truncated : bool
        As for :func:`read_aedat2`.
    keep_external : bool
        As for :func:`read_aedat2`.

    Yields
    ------
    Events
        At least one chunk (an empty one for a header-only file).

    Raises
    ------
    FormatError
        As for :func:`read_aedat2`, before the first chunk.
    """
    check_chunk_events(chunk_events)
    name = str(path)
    with open(path, "rb") as f:
        pos, info = _read_file_header(f, name)
        layout = _resolve_layout(layout, info, name)
        body = os.fstat(f.fileno()).st_size - pos
        tail = body % RECORD_SIZE
        if tail and not allow_truncated:
            raise _truncation_error(name, pos, body)
        width, height = _geometry(layout, info)
        decoder = _Decoder(layout, keep_external, width, height, info["chip"])
        for _, raw, last in iter_record_chunks(f, name, pos, body, RECORD_SIZE, chunk_events):
            events = decoder.decode(np.frombuffer(raw, dtype=_RECORD_DTYPE))
            if last:
                events.truncated_bytes = tail
            yield events
