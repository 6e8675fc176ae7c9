"""Prophesee EVT 2.0 reader (``.raw`` with a ``%`` header, or a bare word stream) and the RAW header parser.

Container (``shared/FORMATS.md`` §4): optional ASCII header lines that start with ``%`` (``% key value``,
LF-terminated), ended by an optional ``% end`` line, otherwise by the first line that does not start with
``%`` — openeb's and expelliarmus' rule (a first data byte equal to 0x25 would be read as a header line
by them too). The words that follow are little-endian.

Words (§5): 32 bits, type = bits 31–28.

===== ================ ==================================================================
type  name             handling here
===== ================ ==================================================================
0x0   CD_OFF           event, ``p = 0``; ``t_low`` = bits 27–22, ``x`` = 21–11, ``y`` = 10–0
0x1   CD_ON            event, ``p = 1``
0x8   EVT_TIME_HIGH    bits 27–0 = timestamp bits 33–6
0xA   EXT_TRIGGER      skipped, counted in ``skipped["trigger"]``
0xD   IMU (openeb)     skipped, ``skipped["imu"]``
0xE   OTHERS           skipped, ``skipped["other"]``
0xF   CONTINUED        skipped, ``skipped["other"]``
other reserved         :class:`FormatError` naming the byte offset of the first such word
===== ================ ==================================================================

Time: ``t = (time_high << 6) | t_low`` in µs, **absolute** (not zero-based), as expelliarmus returns it
(openeb's Python ``RawReader`` may shift time so that the first TIME_HIGH is 0; we do not). The 34-bit
counter rolls over after 2**34 µs; as openeb does, 2**34 is added for good whenever a TIME_HIGH is more than
``(2**28 - 1) * 64 - 10000`` µs below the previous one (expelliarmus has no rollover handling).

Words before the first TIME_HIGH: openeb skips them; expelliarmus decodes CD words there with
``time_high = 0``. We follow openeb (their time is unknown) and count the skipped CD words in
``skipped["before_first_time_high"]``. Both real samples start with a TIME_HIGH, so this is equal to
expelliarmus on them.

Sensor size: from ``% geometry WxH`` or ``% format EVT2;width=..;height=..`` when the header has it, else
``None`` (the real samples have neither). ``camera`` is the header's ``sensor_name`` or ``plugin_name``.

Headerless streams (``prophesee_evt2_headerless/left2.bin``): :func:`read_evt2` accepts data without a
header; :func:`shardgen.formats.detect_format` recognises such a stream only by content (see
:func:`looks_like_evt2`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .chunks import check_chunk_events, iter_record_chunks, tail_length
from .events import Events, FormatError

WORD = 4
HEADER_LIMIT = 16 << 20
_HEAD_BLOCK = 1 << 16
MAX_TIME_HIGH = ((1 << 28) - 1) << 6  # openeb MaxTimestamp
LOOP_THRESHOLD = 10000  # openeb LoopThreshold
TIME_LOOP = 1 << 34

CD_OFF, CD_ON, TIME_HIGH, EXT_TRIGGER, IMU, OTHERS, CONTINUED = 0x0, 0x1, 0x8, 0xA, 0xD, 0xE, 0xF
KNOWN_TYPES = (CD_OFF, CD_ON, TIME_HIGH, EXT_TRIGGER, IMU, OTHERS, CONTINUED)
SKIP_KEYS = ("trigger", "imu", "other", "before_first_time_high")
_KNOWN = np.zeros(16, dtype=bool)
_KNOWN[list(KNOWN_TYPES)] = True


# ------------------------------------------------------------------------------------------ RAW header (shared)


@dataclass
class RawHeader:
    """What the ``%`` header of a Prophesee RAW file says.

    Attributes
    ----------
    data_start : int
        Byte offset of the first word (0 when there is no header).
    fields : dict of str to str
        ``% key value`` lines (first occurrence of each key).
    encoding : str or None
        ``"evt2"``, ``"evt3"``, ``"evt21"`` … from ``% evt`` or ``% format``; ``None`` when not stated.
    width, height : int or None
        From ``% geometry WxH`` or the ``width=``/``height=`` options of ``% format``.
    camera : str or None
        ``sensor_name`` or ``plugin_name``.
    lines : int
        Number of header lines.
    """

    data_start: int
    fields: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    width: int | None = None
    height: int | None = None
    camera: str | None = None
    lines: int = 0


_EVT_VERSIONS = {"2.0": "evt2", "2": "evt2", "3.0": "evt3", "3": "evt3", "2.1": "evt21", "4.0": "evt4"}


def _positive_int(text: str) -> int | None:
    text = text.strip()  # ASCII digits, few of them: isdigit() says yes to '²' and int() refuses 5000 digits
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 and 0 < int(text) < 1 << 16 else None


def interpret_fields(fields: dict[str, str]) -> tuple[str | None, int | None, int | None]:
    """Encoding (``"evt2"``, ``"evt3"``, ``"evt21"`` …), width and height from RAW header fields.

    Parameters
    ----------
    fields : dict of str to str
        ``% key value`` pairs; ``format`` (``EVT3;height=720;width=1280``), ``evt`` (``3.0``) and
        ``geometry`` (``1280x720``) are used.

    Returns
    -------
    tuple
        ``(encoding or None, width or None, height or None)``.
    """
    encoding = width = height = None
    fmt = fields.get("format")
    if fmt:
        parts = fmt.split(";")
        encoding = parts[0].strip().lower() or None
        for part in parts[1:]:
            key, _, value = part.partition("=")
            if key.strip() == "width":
                width = _positive_int(value)
            elif key.strip() == "height":
                height = _positive_int(value)
    evt = fields.get("evt")
    if evt is not None and encoding is None:
        encoding = _EVT_VERSIONS.get(evt.strip(), "evt " + evt.strip())
    geometry = fields.get("geometry")
    if geometry and (width is None or height is None):
        w, _, h = geometry.strip().partition("x")
        width, height = _positive_int(w), _positive_int(h)
    if width is None or height is None:
        width = height = None
    return encoding, width, height


def _scan_lines(head: bytes, at_eof: bool) -> tuple[int, int, dict[str, str]] | None:
    """Walk ``%`` lines of ``head``: (data start, line count, fields), or ``None`` if more bytes are needed."""
    size = len(head)
    pos = lines = 0
    fields: dict[str, str] = {}
    # One iteration per header line (a few dozen), never per word.
    while pos < size and head[pos] == 0x25:  # '%'
        nl = head.find(b"\n", pos)
        if nl < 0:
            if not at_eof:
                return None
            nl = size
        line = head[pos:nl].rstrip(b"\r")
        pos = min(nl + 1, size)
        lines += 1
        if line.strip() == b"% end":
            return pos, lines, fields
        key, _, value = line[1:].decode("latin-1").strip().partition(" ")
        if key:
            fields.setdefault(key, value.strip())
    if pos >= size and not at_eof:
        return None  # the next byte could still be a '%'
    return pos, lines, fields


def scan_raw_header(head: bytes | bytearray | memoryview, name: str, at_eof: bool) -> RawHeader | None:
    """Parse the ``%`` header at the start of ``head``.

    Parameters
    ----------
    head : bytes-like
        The first bytes of the file (or all of it).
    name : str
        File name used in error messages.
    at_eof : bool
        ``head`` is the whole file (an unterminated last header line then ends the header).

    Returns
    -------
    RawHeader or None
        ``None`` when ``head`` ends inside the header and ``at_eof`` is false (read more and retry).

    Raises
    ------
    FormatError
        The header is longer than 16 MiB (offset 0).
    """
    view = memoryview(head).cast("B")
    size = len(view)
    limit = _HEAD_BLOCK
    while True:
        whole = limit >= size
        found = _scan_lines(bytes(view[: min(size, limit)]), at_eof and whole)
        if found is not None:
            break
        if whole:
            return None
        if limit >= HEADER_LIMIT:
            raise FormatError(name, 0, f"header longer than {HEADER_LIMIT} bytes")
        limit *= 4
    pos, lines, fields = found
    encoding, width, height = interpret_fields(fields)
    camera = fields.get("sensor_name") or fields.get("plugin_name") or None
    return RawHeader(pos, fields, encoding, width, height, camera, lines)


def read_raw_header(f, name: str) -> RawHeader:
    """Read just enough of an open binary file (positioned at 0) to parse its ``%`` header.

    Parameters
    ----------
    f : binary file object
        Open at offset 0; left at an unspecified position.
    name : str
        File name used in error messages.

    Returns
    -------
    RawHeader
    """
    head = b""
    while True:
        block = f.read(max(_HEAD_BLOCK, len(head)))
        head += block
        result = scan_raw_header(head, name, at_eof=not block)
        if result is not None:
            return result


def check_encoding(header: RawHeader, expected: str, name: str) -> None:
    """Raise :class:`FormatError` when the header states an encoding other than ``expected``."""
    if header.encoding is not None and header.encoding != expected:
        raise FormatError(
            name, 0, f"the header says the words are {header.encoding!r}, not {expected!r} (Prophesee RAW)"
        )


def merge_skipped(total: dict[str, int], part: dict[str, int]) -> None:
    """Add the counts of ``part`` to ``total`` in place."""
    for key, value in part.items():
        total[key] = total.get(key, 0) + int(value)


# -------------------------------------------------------------------------------------------------- decoding


@dataclass
class _State:
    prev_high: int = -1  # last TIME_HIGH payload << 6 (no loops); -1 before the first
    loops: int = 0


def _decode(words: np.ndarray, state: _State, name: str, offset: int) -> tuple[np.ndarray, ...]:
    """Decode LE uint32 ``words`` (starting at byte ``offset``) with ``state``; updates ``state``."""
    typ = (words >> 28).astype(np.uint8)
    bad = ~_KNOWN[typ]
    if bad.any():
        i = int(np.argmax(bad))
        raise FormatError(name, offset + WORD * i, f"reserved EVT 2.0 word type 0x{int(typ[i]):X} (damaged file?)")
    counts = np.bincount(typ, minlength=16)
    skipped = {
        "trigger": int(counts[EXT_TRIGGER]),
        "imu": int(counts[IMU]),
        "other": int(counts[OTHERS] + counts[CONTINUED]),
        "before_first_time_high": 0,
    }
    th_idx = np.flatnonzero(typ == TIME_HIGH)
    full = np.zeros(0, np.int64)
    if th_idx.size:
        raw = (words[th_idx] & 0x0FFFFFFF).astype(np.int64) << 6
        prev = np.empty_like(raw)
        prev[0] = state.prev_high if state.prev_high >= 0 else raw[0]
        prev[1:] = raw[:-1]
        loop = (prev - raw) >= (MAX_TIME_HIGH - LOOP_THRESHOLD)
        loops = state.loops + np.cumsum(loop, dtype=np.int64)
        full = raw + (loops << 34)
        carried = (state.prev_high + (state.loops << 34)) if state.prev_high >= 0 else -1
        state.prev_high = int(raw[-1])
        state.loops = int(loops[-1])
    else:
        carried = (state.prev_high + (state.loops << 34)) if state.prev_high >= 0 else -1
    cd_idx = np.flatnonzero(typ <= CD_ON)
    if th_idx.size:
        k = np.cumsum(typ == TIME_HIGH, dtype=np.int32)[cd_idx] - 1  # last TIME_HIGH at or before each CD word
        base = np.where(k >= 0, full[np.maximum(k, 0)], carried)
    else:
        base = np.full(cd_idx.size, carried, dtype=np.int64)
    if carried < 0 and cd_idx.size:
        known = base >= 0
        n_before = int(cd_idx.size - np.count_nonzero(known))
        if n_before:
            skipped["before_first_time_high"] = n_before
            cd_idx, base = cd_idx[known], base[known]
    w = words[cd_idx]
    t = base + ((w >> 22) & 0x3F).astype(np.int64)
    x = ((w >> 11) & 0x7FF).astype(np.uint16)
    y = (w & 0x7FF).astype(np.uint16)
    p = ((w >> 28) & 1).astype(np.uint8)
    return t, x, y, p, skipped


def read_evt2(data: bytes | bytearray | memoryview, name: str, allow_truncated: bool = False) -> Events:
    """Decode every CD event of a Prophesee EVT 2.0 file (with or without ``%`` header) held in memory.

    Parameters
    ----------
    data : bytes-like
        The whole file.
    name : str
        File name used in error messages.
    allow_truncated : bool
        Drop an incomplete last word instead of raising; its length goes to ``truncated_bytes``.

    Returns
    -------
    Events
        ``t`` int64 µs (absolute), ``x``, ``y`` uint16, ``p`` uint8 (1 = ON), file order; ``skipped`` has
        ``trigger``, ``imu``, ``other``, ``before_first_time_high``.

    Raises
    ------
    FormatError
        The header states another encoding (byte 0); a reserved word type (offset of the word); a body
        length that is not a multiple of 4 without ``allow_truncated`` (offset of the incomplete word).
    """
    header = scan_raw_header(data, name, at_eof=True)
    check_encoding(header, "evt2", name)
    buf = np.frombuffer(data, dtype=np.uint8)
    body = buf.size - header.data_start
    tail = tail_length(name, header.data_start, body, WORD, "32-bit word", allow_truncated)
    words = buf[header.data_start : buf.size - tail].view("<u4")
    t, x, y, p, skipped = _decode(words, _State(), name, header.data_start)
    return Events(t, x, y, p, header.width, header.height, header.camera, skipped, tail)


def iter_evt2(path: str | os.PathLike, chunk_events: int = 1 << 20, allow_truncated: bool = False) -> Iterator[Events]:
    """Read a large EVT 2.0 file chunk by chunk, carrying the last TIME_HIGH and the rollover count.

    Concatenating the chunks gives exactly :func:`read_evt2` of the whole file (``skipped`` counts are per
    chunk and add up; ``truncated_bytes`` is set on the last chunk).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its name is used in error messages.
    chunk_events : int
        Words read per chunk (so at most that many events per chunk).
    allow_truncated : bool
        As for :func:`read_evt2`.

    Yields
    ------
    Events
        At least one chunk (an empty one for a file without words).

    Raises
    ------
    FormatError
        As for :func:`read_evt2`; a truncated tail is reported before the first chunk.
    """
    state = _State()
    yield from iter_raw_words(path, "evt2", "<u4", "32-bit word", chunk_events, allow_truncated,
                              lambda words, name, offset: _decode(words, state, name, offset))


def iter_raw_words(
    path: str | os.PathLike,
    encoding: str,
    dtype: str,
    word_label: str,
    chunk_events: int,
    allow_truncated: bool,
    decode: Callable[[np.ndarray, str, int], tuple[np.ndarray, ...]],
) -> Iterator[Events]:
    """The chunk loop of a Prophesee RAW file (EVT 2.0 and 3.0): header, tail check, word chunks → ``decode``.

    ``decode(words, name, byte_offset)`` returns ``(t, x, y, p, skipped)`` and carries the decoder's state
    between calls itself; ``truncated_bytes`` is set on the last chunk.
    """
    check_chunk_events(chunk_events)
    name = str(path)
    word = np.dtype(dtype).itemsize
    with open(path, "rb") as f:
        header = read_raw_header(f, name)
        check_encoding(header, encoding, name)
        body = os.fstat(f.fileno()).st_size - header.data_start
        tail = tail_length(name, header.data_start, body, word, word_label, allow_truncated)
        for offset, raw, last in iter_record_chunks(
            f, name, header.data_start, body, word, chunk_events, shrank_at_end=True
        ):
            t, x, y, p, skipped = decode(np.frombuffer(raw, dtype), name, offset)
            yield Events(t, x, y, p, header.width, header.height, header.camera, skipped, tail if last else 0)


def looks_like_evt2(head: bytes | bytearray | memoryview, file_size: int | None = None) -> bool:
    """Content sniff for a headerless EVT 2.0 word stream.

    Plausible iff: the (known) file size is a multiple of 4; the first word is an EVT_TIME_HIGH; every one of
    the first (up to 16384) whole words has a defined type (0x0, 0x1, 0x8, 0xA, 0xD, 0xE, 0xF); the
    TIME_HIGH payloads never decrease; at least one CD word follows; and the CD words' 6-bit time-low fields
    are not all equal (random data rarely passes all of these).

    Parameters
    ----------
    head : bytes-like
        The first bytes of the file (at least 8).
    file_size : int or None
        Size of the whole file, when known.

    Returns
    -------
    bool
    """
    if file_size is not None and file_size % WORD:
        return False
    n = min(len(head) // WORD, 16384)
    if n < 2:
        return False
    words = np.frombuffer(bytes(head[: n * WORD]), "<u4")
    typ = words >> 28
    if typ[0] != TIME_HIGH or not _KNOWN[typ].all():
        return False
    highs = words[typ == TIME_HIGH] & 0x0FFFFFFF
    if np.any(np.diff(highs.astype(np.int64)) < 0):
        return False
    cd = words[typ <= CD_ON]
    return cd.size > 0 and (cd.size < 8 or np.unique((cd >> 22) & 0x3F).size > 1)
