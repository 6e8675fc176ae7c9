"""Prophesee EVT 3.0 reader (``.raw``: ``%`` header, then little-endian 16-bit words).

Words (``shared/FORMATS.md`` §6): type = bits 15–12, payload = bits 11–0. The stream is stateful:

======  ===============  ====================================================================================
type    name             handling here
======  ===============  ====================================================================================
0x0     EVT_ADDR_Y       y = bits 10–0 (bit 11, master/slave, ignored)
0x2     EVT_ADDR_X       one event: x = bits 10–0, p = bit 11, current y and time
0x3     VECT_BASE_X      base x = bits 10–0, polarity of the following vectors = bit 11
0x4     VECT_12          bit k of bits 11–0 set → event at ``base_x + k``; then ``base_x += 12``
0x5     VECT_8           bit k of bits 7–0 set → event at ``base_x + k``; then ``base_x += 8``
0x6     EVT_TIME_LOW     time bits 11–0
0x8     EVT_TIME_HIGH    time bits 23–12
0xA     EXT_TRIGGER      skipped, ``skipped["trigger"]``
0xD     IMU (openeb)     skipped, ``skipped["imu"]``
0x7/E/F CONTINUED/OTHERS skipped, ``skipped["other"]``
other   reserved         :class:`FormatError` naming the byte offset of the first such word
======  ===============  ====================================================================================

Vectors are expanded word by word as expelliarmus does; openeb reads the usual VECT_12, VECT_12, VECT_8
triple as one 32-bit mask and adds 32 to base x — the same events for that pattern (the only one the real
sample contains).

Time (``time_rule="openeb"``, the default: Prophesee's own decoder, ``openeb`` ``evt3_decoder.h``)
    ``t = loop * 2**24 + (high << 12) + low`` in µs, **absolute** (not zero-based). ``loop`` is incremented
    when a TIME_HIGH is at least 2048 below the previous one (24-bit wrap every ~16.8 s); a TIME_HIGH that
    changes ``high`` resets ``low`` to 0 until the next TIME_LOW. All words before the first TIME_HIGH are
    skipped (their event words are counted in ``skipped["before_first_time_high"]``), and events before the
    first EVT_ADDR_Y are dropped (counted, in events, in ``skipped["before_first_addr_y"]``), both as
    openeb does. openeb also drops events with ``y >= height`` when it knows the height; we keep them (the
    header rarely states the height, and dropping would hide data).
``time_rule="expelliarmus"``
    Reproduces expelliarmus ≤ 1.1.12 (and the ``evt3_sample.npy`` shipped with it): two counters, ``ho`` (+1
    whenever a TIME_HIGH payload is smaller than the previous one) and ``lo`` (+1 whenever a TIME_LOW payload
    is smaller than the previous one), ``t = (ho << 24) + ((high + lo) << 12) + low``, no low reset. This
    double-counts every low→high carry and adds 4096 µs on every slightly out-of-order TIME_LOW (the real
    sample spans 53 857 µs this way where it covers 8 801 µs). Only ``t`` differs between the rules.

Sensor size: ``% format EVT3;height=..;width=..`` or ``% geometry WxH`` if the header has them, else
``None`` (the real sample has neither; its coordinates fit 1280×720). ``camera``: ``sensor_name`` or
``plugin_name`` of the header.

Chunked reading (:func:`iter_evt3`) carries y, base x and its polarity, time high/low, the loop counter
(and the expelliarmus counters) across chunks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from loader.errors import ConfigurationError

from .chunks import tail_length
from .events import Events, FormatError
from .evt2 import check_encoding, iter_raw_words, scan_raw_header

WORD = 2
TIME_RULES = ("openeb", "expelliarmus")
ADDR_Y, ADDR_X, VECT_BASE_X, VECT_12, VECT_8, TIME_LOW, CONTINUED_4, TIME_HIGH = 0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8
EXT_TRIGGER, IMU, OTHERS, CONTINUED_12 = 0xA, 0xD, 0xE, 0xF
KNOWN_TYPES = (ADDR_Y, ADDR_X, VECT_BASE_X, VECT_12, VECT_8, TIME_LOW, CONTINUED_4, TIME_HIGH, EXT_TRIGGER, IMU,
               OTHERS, CONTINUED_12)
SKIP_KEYS = ("trigger", "imu", "other", "before_first_time_high", "before_first_addr_y")
_KNOWN = np.zeros(16, dtype=bool)
_KNOWN[list(KNOWN_TYPES)] = True
_EVENT_WORD = np.zeros(16, dtype=bool)
_EVENT_WORD[[ADDR_X, VECT_12, VECT_8]] = True
_BITS = np.arange(12, dtype=np.uint16)
_POPCOUNT = np.array([bin(i).count("1") for i in range(1 << 12)], dtype=np.int32)


@dataclass
class _State:
    started: bool = False  # a TIME_HIGH has been seen
    y: int = -1  # -1: no EVT_ADDR_Y yet
    base_next: int = 0  # x of bit 0 of the next vector word
    base_pol: int = 0
    high: int = 0  # openeb
    low: int = 0
    loop: int = 0
    e_high: int = 0  # expelliarmus
    e_low: int = 0
    e_ho: int = 0
    e_lo: int = 0


def _check_rule(time_rule: str) -> None:
    if time_rule not in TIME_RULES:
        raise ConfigurationError(f"time_rule must be one of {TIME_RULES}, got {time_rule!r}")


def _count(mask: np.ndarray) -> np.ndarray:
    """Inclusive running count of ``mask`` (int32 while that cannot overflow)."""
    return np.cumsum(mask, dtype=np.int32 if mask.size < 1 << 31 else np.int64)


def _with(first: int, values: np.ndarray) -> np.ndarray:
    """``[first, *values]`` as int64: indexing it with a running count gives "last value, or ``first``"."""
    out = np.empty(values.size + 1, dtype=np.int64)
    out[0] = first
    out[1:] = values
    return out


def _times(tt: np.ndarray, tp: np.ndarray, state: _State, time_rule: str) -> tuple[np.ndarray, int]:
    """Time after each TIME_HIGH/TIME_LOW word (types ``tt``, payloads ``tp``); updates ``state``.

    Returns the times and the time in effect before the first of them.
    """
    is_h = tt == TIME_HIGH
    hv = tp[is_h]
    n_h = _count(is_h)  # TIME_HIGHs at or before each time word
    if time_rule == "openeb":
        before = (state.loop << 24) | (state.high << 12) | state.low
        prev = _with(state.high, hv)[:-1]
        loops = state.loop + np.cumsum(prev >= hv + 2048, dtype=np.int64)
        setter = ~is_h  # TIME_LOW sets low; a TIME_HIGH that changes high resets it to 0
        setter[np.flatnonzero(is_h)[hv != prev]] = True
        lows = _with(state.low, np.where(is_h, 0, tp)[setter])
        highs, loops = _with(state.high, hv), _with(state.loop, loops)
        low = lows[_count(setter)]
        t = (loops[n_h] << 24) | (highs[n_h] << 12) | low
        state.high, state.loop, state.low = int(highs[-1]), int(loops[-1]), int(lows[-1])
        return t, before
    before = (state.e_ho << 24) + ((state.e_high + state.e_lo) << 12) + state.e_low
    is_l = ~is_h
    lv = tp[is_l]
    highs, lowv = _with(state.e_high, hv), _with(state.e_low, lv)
    ho = _with(state.e_ho, state.e_ho + np.cumsum(hv < highs[:-1], dtype=np.int64))
    lo = _with(state.e_lo, state.e_lo + np.cumsum(lv < lowv[:-1], dtype=np.int64))
    n_l = _count(is_l)
    t = (ho[n_h] << 24) + ((highs[n_h] + lo[n_l]) << 12) + lowv[n_l]
    state.e_high, state.e_ho, state.e_low, state.e_lo = int(highs[-1]), int(ho[-1]), int(lowv[-1]), int(lo[-1])
    return t, before


def _decode(words: np.ndarray, state: _State, name: str, offset: int, time_rule: str) -> tuple:
    """Decode LE uint16 ``words`` that start at byte ``offset``; updates ``state``."""
    typ = words >> 12
    bad = ~_KNOWN[typ]
    if bad.any():
        i = int(np.argmax(bad))
        raise FormatError(name, offset + WORD * i, f"reserved EVT 3.0 word type 0x{int(typ[i]):X} (damaged file?)")
    skipped = dict.fromkeys(SKIP_KEYS, 0)
    skipped["trigger"] = int(np.count_nonzero(typ == EXT_TRIGGER))
    skipped["imu"] = int(np.count_nonzero(typ == IMU))
    skipped["other"] = int(np.count_nonzero(typ >= OTHERS) + np.count_nonzero(typ == CONTINUED_4))
    if not state.started:
        th = np.flatnonzero(typ == TIME_HIGH)
        first = int(th[0]) if th.size else typ.size
        skipped["before_first_time_high"] = int(np.count_nonzero(_EVENT_WORD[typ[:first]]))
        if th.size:
            words, typ = words[first:], typ[first:]
            state.started = True
            state.high = state.e_high = int(words[0] & 0xFFF)
            state.low = 0
        else:
            words, typ = words[:0], typ[:0]
    pay = words & 0xFFF
    ev = np.flatnonzero(_EVENT_WORD[typ])

    # time: computed on the (few) TIME_HIGH/TIME_LOW words, then looked up by every event word
    is_time = (typ == TIME_HIGH) | (typ == TIME_LOW)
    tw = np.flatnonzero(is_time)
    tseq, before = _times(typ[tw], pay[tw].astype(np.int64), state, time_rule)
    t_ev = _with(before, tseq)[_count(is_time)[ev]]

    # y: last EVT_ADDR_Y (-1: none yet)
    is_y = typ == ADDR_Y
    ys = _with(state.y, pay[is_y] & 0x7FF)
    y_ev = ys[_count(is_y)[ev]]
    state.y = int(ys[-1])

    # x and polarity of every event word; vectors count from the last VECT_BASE_X
    et = typ[ev]
    ep = pay[ev].astype(np.int32)
    x_ev = ep & 0x7FF
    p_ev = ep >> 11
    vrows = np.flatnonzero(et != ADDR_X)
    vmask = np.where(et[vrows] == VECT_12, ep[vrows], ep[vrows] & 0xFF)
    vwidth = np.where(et[vrows] == VECT_12, 12, 8)
    cw = _with(0, np.cumsum(vwidth))  # widths of the vector words before each one (and in all)
    is_b = typ == VECT_BASE_X
    b_pos = np.flatnonzero(is_b)
    bx = _with(state.base_next, pay[b_pos] & 0x7FF)
    bpol = _with(state.base_pol, pay[b_pos] >> 11)
    is_v = _EVENT_WORD[typ] & (typ != ADDR_X)
    bcw = _with(0, cw[_count(is_v)[b_pos]])  # vector widths before each VECT_BASE_X
    k_b = _count(is_b)[ev[vrows]]
    x_ev[vrows] = bx[k_b] + cw[:-1] - bcw[k_b]
    p_ev[vrows] = bpol[k_b]
    state.base_next = int(bx[-1] + cw[-1] - bcw[-1])
    state.base_pol = int(bpol[-1])

    # expand: ADDR_X gives one event, a vector one per set bit, in word then bit order
    cnt = np.ones(ev.size, dtype=np.int32)
    cnt[vrows] = _POPCOUNT[vmask]
    no_y = y_ev < 0
    if no_y.any():
        skipped["before_first_addr_y"] = int(cnt[no_y].sum())
        cnt[no_y] = 0
    row = np.repeat(np.arange(ev.size), cnt)
    x = x_ev[row]
    has = vrows[cnt[vrows] > 0]
    if has.size:
        r, k = np.nonzero((vmask[np.searchsorted(vrows, has), None] >> _BITS) & 1)
        first_of_row = np.cumsum(cnt, dtype=np.int64) - cnt  # output index of each word's first event
        hcnt = cnt[has]
        rank = np.arange(r.size) - np.repeat(np.cumsum(hcnt) - hcnt, hcnt)
        x[first_of_row[has[r]] + rank] += k
    return t_ev[row], x.astype(np.uint16), y_ev[row].astype(np.uint16), p_ev[row].astype(np.uint8), skipped


def read_evt3(
    data: bytes | bytearray | memoryview, name: str, time_rule: str = "openeb", allow_truncated: bool = False
) -> Events:
    """Decode every CD event of a Prophesee EVT 3.0 file held in memory.

    Parameters
    ----------
    data : bytes-like
        The whole file (a ``%`` header is optional).
    name : str
        File name used in error messages.
    time_rule : {"openeb", "expelliarmus"}
        How timestamps are rebuilt (see the module docstring); ``"openeb"`` is the correct one.
    allow_truncated : bool
        Drop an incomplete last word instead of raising; its length goes to ``truncated_bytes``.

    Returns
    -------
    Events
        ``t`` int64 µs (absolute), ``x``, ``y`` uint16, ``p`` uint8 (1 = ON), file order; ``skipped`` has
        ``trigger``, ``imu``, ``other`` (words), ``before_first_time_high`` (event words) and
        ``before_first_addr_y`` (events).

    Raises
    ------
    FormatError
        The header states another encoding (byte 0); a reserved word type (offset of the word); an odd body
        length without ``allow_truncated`` (offset of the incomplete word).
    ValueError
        Unknown ``time_rule``.
    """
    _check_rule(time_rule)
    header = scan_raw_header(data, name, at_eof=True)
    check_encoding(header, "evt3", name)
    buf = np.frombuffer(data, dtype=np.uint8)
    body = buf.size - header.data_start
    tail = tail_length(name, header.data_start, body, WORD, "16-bit word", allow_truncated)
    words = buf[header.data_start : buf.size - tail].view("<u2")
    t, x, y, p, skipped = _decode(words, _State(), name, header.data_start, time_rule)
    return Events(t, x, y, p, header.width, header.height, header.camera, skipped, tail)


def iter_evt3(
    path: str | os.PathLike, chunk_events: int = 1 << 20, time_rule: str = "openeb", allow_truncated: bool = False
) -> Iterator[Events]:
    """Read a large EVT 3.0 file chunk by chunk, carrying the decoder state across chunks.

    Concatenating the chunks gives exactly :func:`read_evt3` of the whole file (``skipped`` counts are per
    chunk and add up; ``truncated_bytes`` is set on the last chunk).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its name is used in error messages.
    chunk_events : int
        Words read per chunk (a chunk holds at most 12 events per word, typically about one).
    time_rule : {"openeb", "expelliarmus"}
        As for :func:`read_evt3`.
    allow_truncated : bool
        As for :func:`read_evt3`.

    Yields
    ------
    Events
        At least one chunk (an empty one for a file without words).

    Raises
    ------
    FormatError
        As for :func:`read_evt3`; a truncated tail is reported before the first chunk.
    """
    _check_rule(time_rule)
    state = _State()
    yield from iter_raw_words(path, "evt3", "<u2", "16-bit word", chunk_events, allow_truncated,
                              lambda words, name, offset: _decode(words, state, name, offset, time_rule))
