"""Event Stream ``.es`` v2 reader (neuromorphic-paris / sepia; DVS and ATIS types).

Header (``shared/FORMATS.md`` §9): bytes 0–11 ``Event Stream``, 12–14 version major/minor/patch (major
must be 2, as in sepia), 15 type (0 generic, 1 DVS, 2 ATIS, 4 color; only DVS and ATIS are read here), 16–19
width and height as uint16 LE. Events start at byte 20.

Events are variable-length and their timestamps are deltas, starting from ``t = 0`` (so ``t`` is
zero-based by construction of the format — it is what ``event_stream.Decoder`` returns):

DVS (type 1)
    In the idle state, ``0xFF`` adds 127 µs, ``0xFE`` is a reset (no-op); any other byte starts an event:
    bits 7–1 = Δt, bit 0 = polarity (1 = ON), then x, y as uint16 LE (5 bytes in all).
ATIS (type 2)
    Idle bytes ``0b111111nn`` add ``63 * nn`` µs (``0xFC`` = reset); otherwise bits 7–2 = Δt, bit 1 =
    polarity, bit 0 = ``is_tc`` (threshold crossing), then x, y. Only change-detection events
    (``is_tc = 0``) are returned; threshold crossings are counted in ``skipped["threshold_crossing"]``.

As sepia's decoder, ``x >= width`` or ``y >= height`` is an error (:class:`FormatError` with the event's
byte offset). A file that ends inside an event is truncated (error, or dropped with ``allow_truncated``).
``camera`` is ``"DVS"`` or ``"ATIS"`` (all the header says about the sensor).

Vectorising the event boundaries: 0xFE/0xFF (ATIS: 0xFC–0xFF) are ordinary values inside x/y bytes, so where
an event starts depends on every byte before it. Between two runs of such "overflow-looking" bytes every
idle byte starts an event, so the byte stream is a plain period-5 sequence; only at each run does the phase
(0 = idle, 1–4 = inside an event) need deciding, and the phase after a run is a function of the phase
before it. Those 5-state functions are composed with a parallel prefix scan (Hillis–Steele, log2(runs)
numpy steps), which gives the phase at every run; the event starts follow as arithmetic progressions in
the gaps between runs. No per-byte or per-event Python loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .chunks import check_chunk_events, iter_record_chunks
from .events import Events, FormatError

MAGIC = b"Event Stream"
HEADER_SIZE = 20
EVENT_SIZE = 5
DVS, ATIS = 1, 2
TYPE_NAMES = {0: "generic", 1: "DVS", 2: "ATIS", 3: "display", 4: "color"}
_PHASES = np.arange(EVENT_SIZE, dtype=np.intp)


@dataclass
class EsHeader:
    """Header of an ``.es`` file: version, type (1 DVS, 2 ATIS), width, height."""

    version: tuple[int, int, int]
    type: int
    width: int
    height: int


def parse_es_header(head: bytes | bytearray | memoryview, name: str) -> EsHeader:
    """Parse and check the 20-byte header of a DVS or ATIS Event Stream file.

    Parameters
    ----------
    head : bytes-like
        At least the first 20 bytes of the file.
    name : str
        File name used in error messages.

    Returns
    -------
    EsHeader

    Raises
    ------
    FormatError
        Wrong magic (byte 0), unsupported version (byte 12), a type other than DVS/ATIS (byte 15), or a
        header cut short (offset = file length).
    """
    head = bytes(memoryview(head)[:HEADER_SIZE])
    if head[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(head):  # the file ends inside the magic
            raise FormatError(name, len(head), "incomplete Event Stream header")
        raise FormatError(name, 0, f"not an Event Stream file (expected {MAGIC!r}, got {head[:12]!r})")
    if len(head) < 16:
        raise FormatError(name, len(head), "incomplete Event Stream header")
    version = (head[12], head[13], head[14])
    if version[0] != 2:
        raise FormatError(name, 12, f"unsupported Event Stream version {'.'.join(map(str, version))} (need 2.x)")
    kind = head[15]
    if kind not in (DVS, ATIS):
        what = TYPE_NAMES.get(kind)
        msg = f"Event Stream type {what}: only DVS and ATIS events are read" if what else f"unknown type {kind}"
        raise FormatError(name, 15, msg)
    if len(head) < HEADER_SIZE:
        raise FormatError(name, len(head), "incomplete Event Stream header (no width/height)")
    width = head[16] | head[17] << 8
    height = head[18] | head[19] << 8
    return EsHeader(version, kind, width, height)


_BLOCK = 64


def _compose_prefix(table: np.ndarray) -> np.ndarray:
    """Inclusive prefix composition: row r becomes ``table[r] ∘ … ∘ table[0]`` (Hillis–Steele, in place)."""
    step = 1
    while step < table.shape[0]:
        table[step:] = np.take_along_axis(table[step:], table[:-step], axis=1)
        step *= 2
    return table


def _run_phases(table: np.ndarray, ph0: int) -> np.ndarray:
    """Phases at every run start: ``ph[0] = ph0``, ``ph[r + 1] = table[r][ph[r]]``.

    Blocked scan, linear work: compose the maps inside blocks of 64 (64 numpy steps over all blocks at once),
    prefix-compose the block maps, then walk each block from its known start phase (64 more steps).
    """
    m = table.shape[0]
    if m < 4 * _BLOCK:
        return np.concatenate(([ph0], _compose_prefix(table)[:, ph0])) if m else np.array([ph0])
    nb = -(-m // _BLOCK)
    padded = np.empty((nb * _BLOCK, EVENT_SIZE), dtype=np.intp)
    padded[:m] = table
    padded[m:] = _PHASES  # identity maps
    blocks = padded.reshape(nb, _BLOCK, EVENT_SIZE)
    comp = np.broadcast_to(_PHASES, (nb, EVENT_SIZE)).copy()
    for j in range(_BLOCK):  # one step per position in a block, all blocks at once
        comp = np.take_along_axis(blocks[:, j, :], comp, axis=1)
    start = np.concatenate(([ph0], _compose_prefix(comp)[:-1, ph0]))
    out = np.empty((nb, _BLOCK), dtype=np.intp)
    rows = np.arange(nb)
    cur = start
    for j in range(_BLOCK):
        out[:, j] = cur
        cur = blocks[rows, j, cur]
    return np.concatenate((out.ravel()[: m + 1], cur[-1:]))[: m + 1]


def _event_starts(b: np.ndarray, kind: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Boundaries of the events in ``b`` (which starts in the idle state).

    Returns ``(starts, overflow_before, consumed, overflow_total)``: start offsets of the *complete* events,
    overflow µs accumulated before each of them, the offset where decoding must resume (start of an
    incomplete last event, else ``b.size``), and the overflow µs of all bytes before ``consumed``.
    """
    n = b.size
    cpos = np.flatnonzero(b >= (0xFE if kind == DVS else 0xFC))
    if cpos.size == 0:
        starts = np.arange(0, n, EVENT_SIZE)
        ovf_before = np.zeros(starts.size, np.int64)
        ovf_total = 0
    else:
        breaks = np.flatnonzero(np.diff(cpos) != 1) + 1
        run_first = np.concatenate(([0], breaks))  # indices into cpos
        run_end = np.concatenate((breaks, [cpos.size]))
        a = cpos[run_first]
        e = cpos[run_end - 1] + 1
        lens = e - a
        # phase at a[r+1] = T[r][phase at a[r]]; prefix-compose the tables
        o = _PHASES[None, :]
        after = np.where((o == 0) | (o + lens[:-1, None] >= EVENT_SIZE), 0, o + lens[:-1, None])
        table = (after + (a[1:] - e[:-1])[:, None]) % EVENT_SIZE
        ph_a = _run_phases(table.astype(np.intp), int(a[0] % EVENT_SIZE))
        ph_e = np.where((ph_a == 0) | (ph_a + lens >= EVENT_SIZE), 0, ph_a + lens)
        # overflow bytes = the idle part of each run
        idle_from = np.where(ph_a == 0, a, a + EVENT_SIZE - ph_a)
        has_idle = idle_from < e
        vals = b[cpos].astype(np.int64)
        weight = np.where(vals == 0xFF, 127, 0) if kind == DVS else 63 * (vals & 3)
        cw = np.concatenate(([0], np.cumsum(weight)))
        first_idle = np.minimum(run_first + (idle_from - a), run_end)
        run_ovf = np.where(has_idle, cw[run_end] - cw[first_idle], 0)
        # events: period-5 progressions in the gaps between runs
        gs = np.concatenate(([0], e))
        ge = np.concatenate((a, [n]))
        gph = np.concatenate(([0], ph_e))
        fs = gs + (EVENT_SIZE - gph) % EVENT_SIZE
        count = np.where(fs < ge, (ge - fs + EVENT_SIZE - 1) // EVENT_SIZE, 0)
        total = int(count.sum())
        first_of_gap = np.cumsum(count) - count
        starts = np.repeat(fs, count) + EVENT_SIZE * (np.arange(total) - np.repeat(first_of_gap, count))
        run_cum = np.concatenate(([0], np.cumsum(run_ovf)))
        ovf_before = np.repeat(run_cum, count)  # the events of gap g follow runs 0..g-1
        ovf_total = int(run_cum[-1])
    consumed = n
    if starts.size and starts[-1] + EVENT_SIZE > n:
        consumed = int(starts[-1])
        ovf_total = int(ovf_before[-1])
        starts, ovf_before = starts[:-1], ovf_before[:-1]
    return starts, ovf_before, consumed, ovf_total


def _decode(b: np.ndarray, header: EsHeader, t0: int, name: str, offset: int) -> tuple:
    """Decode the complete events of ``b`` (idle state at its start, time ``t0``)."""
    starts, ovf_before, consumed, ovf_total = _event_starts(b, header.type)
    first = b[starts]
    delta = (first >> (1 if header.type == DVS else 2)).astype(np.int64)
    cum = np.cumsum(delta)
    t = t0 + cum + ovf_before
    t_end = t0 + (int(cum[-1]) if cum.size else 0) + ovf_total
    x = b[starts + 1].astype(np.uint16) | (b[starts + 2].astype(np.uint16) << 8)
    y = b[starts + 3].astype(np.uint16) | (b[starts + 4].astype(np.uint16) << 8)
    bad = (x >= header.width) | (y >= header.height)
    if bad.any():
        i = int(np.argmax(bad))
        raise FormatError(
            name,
            offset + int(starts[i]),
            f"event at ({int(x[i])}, {int(y[i])}) outside the {header.width}x{header.height} sensor of the header",
        )
    skipped = {}
    if header.type == DVS:
        p = (first & 1).astype(np.uint8)
    else:
        keep = (first & 1) == 0
        skipped["threshold_crossing"] = int(keep.size - np.count_nonzero(keep))
        p = ((first[keep] >> 1) & 1).astype(np.uint8)
        t, x, y = t[keep], x[keep], y[keep]
    return t, x, y, p, skipped, consumed, t_end


def _truncated(name: str, offset: int, left: int) -> FormatError:
    return FormatError(
        name,
        offset,
        f"file ends inside an event ({left} of {EVENT_SIZE} bytes); pass --allow-truncated to keep the events "
        "before it",
    )


def read_es(data: bytes | bytearray | memoryview, name: str, allow_truncated: bool = False) -> Events:
    """Decode the events of a DVS or ATIS Event Stream (``.es``, v2) file held in memory.

    Parameters
    ----------
    data : bytes-like
        The whole file.
    name : str
        File name used in error messages.
    allow_truncated : bool
        Drop an incomplete last event instead of raising; its length goes to ``truncated_bytes``.

    Returns
    -------
    Events
        ``t`` int64 µs (zero-based by the format), ``x``, ``y`` uint16, ``p`` uint8 (1 = ON), file order;
        ``width``/``height`` from the header, ``camera`` ``"DVS"``/``"ATIS"``.

    Raises
    ------
    FormatError
        A bad header (see :func:`parse_es_header`), an event outside the sensor, or a file ending inside an
        event without ``allow_truncated``; the message names the byte offset.
    """
    header = parse_es_header(data, name)
    b = np.frombuffer(data, dtype=np.uint8)[HEADER_SIZE:]
    t, x, y, p, skipped, consumed, _ = _decode(b, header, 0, name, HEADER_SIZE)
    tail = b.size - consumed
    if tail and not allow_truncated:
        raise _truncated(name, HEADER_SIZE + consumed, tail)
    return Events(t, x, y, p, header.width, header.height, TYPE_NAMES[header.type], skipped, tail)


def iter_es(path: str | os.PathLike, chunk_events: int = 1 << 20, allow_truncated: bool = False) -> Iterator[Events]:
    """Read a large Event Stream file chunk by chunk.

    The time and the bytes of an event cut by a chunk boundary are carried to the next chunk, so
    concatenating the chunks gives exactly :func:`read_es` of the whole file.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its name is used in error messages.
    chunk_events : int
        Bytes read per chunk are ``5 * chunk_events`` (so at most that many events per chunk).
    allow_truncated : bool
        As for :func:`read_es`.

    Yields
    ------
    Events
        At least one chunk (an empty one for a file without events).

    Raises
    ------
    FormatError
        As for :func:`read_es`; a truncated last event is reported after the chunks before it.
    """
    check_chunk_events(chunk_events)
    name = str(path)
    with open(path, "rb") as f:
        header = parse_es_header(f.read(HEADER_SIZE), name)
        camera = TYPE_NAMES[header.type]
        body = os.fstat(f.fileno()).st_size - HEADER_SIZE
        left = b""
        offset = HEADER_SIZE  # file offset of left[0]
        t0 = 0
        # events have variable length, so the body is read in byte "records", EVENT_SIZE * chunk_events at a time
        for _, block, last in iter_record_chunks(f, name, HEADER_SIZE, body, 1, EVENT_SIZE * chunk_events):
            buf = np.frombuffer(left + block, dtype=np.uint8)
            t, x, y, p, skipped, consumed, t0 = _decode(buf, header, t0, name, offset)
            left = buf[consumed:].tobytes()
            offset += consumed
            tail = len(left) if last else 0
            if tail and not allow_truncated:
                raise _truncated(name, offset, tail)
            yield Events(t, x, y, p, header.width, header.height, camera, skipped, tail)
