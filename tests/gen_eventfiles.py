"""Byte generators for Prophesee EVT 2.0 / EVT 3.0 / DAT and Event Stream files, written from
``shared/FORMATS.md`` (§4–7, §9) and independent of the readers in ``shardgen.formats``.

Every ``encode_*`` function returns the file bytes together with the events it encoded (the ground truth),
in the order a decoder must return them.
"""

from __future__ import annotations

import struct

import numpy as np

# ----------------------------------------------------------------------------------------- Prophesee RAW

RAW_HEADER_EVT2 = ["% Date 2020-09-14 09:03:25", "% plugin_name hal_plugin_gen3_fx3", "% evt 2.0"]
RAW_HEADER_EVT3 = ["% Date 2020-09-25 07:48:29", "% evt 3.0", "% plugin_name hal_plugin_gen41_evk3"]


def raw_header(lines: list[str], end: bool = False) -> bytes:
    """``%`` header lines (LF), optionally closed by ``% end``."""
    return "".join(line + "\n" for line in lines + (["% end"] if end else [])).encode()


def events_dict(t, x, y, p) -> dict[str, np.ndarray]:
    """Ground-truth events with the reader's dtypes."""
    return {
        "t": np.asarray(t, dtype=np.int64),
        "x": np.asarray(x, dtype=np.uint16),
        "y": np.asarray(y, dtype=np.uint16),
        "p": np.asarray(p, dtype=np.uint8),
    }


# ------------------------------------------------------------------------------------------------ EVT 2.0


def evt2_cd(t_low: int, x: int, y: int, p: int) -> int:
    """CD word: type 0 (OFF) / 1 (ON), bits 27–22 t_low, 21–11 x, 10–0 y."""
    return (p & 1) << 28 | (t_low & 0x3F) << 22 | (x & 0x7FF) << 11 | (y & 0x7FF)


def evt2_time_high(value: int) -> int:
    """EVT_TIME_HIGH word: type 0x8, bits 27–0 = timestamp bits 33–6."""
    return 0x8 << 28 | (value & 0x0FFFFFFF)


def evt2_word(kind: int, payload: int) -> int:
    """Any word: ``kind`` in bits 31–28, 28-bit ``payload``."""
    return (kind & 0xF) << 28 | (payload & 0x0FFFFFFF)


def encode_evt2(
    t, x, y, p, rng: np.random.Generator | None = None, extra_every: int = 0, repeat_time_high: bool = False
) -> tuple[np.ndarray, dict[str, int]]:
    """EVT 2.0 words for sorted events: a TIME_HIGH whenever ``t >> 6`` changes (mod 2**28), then CD words.

    ``extra_every``: on average one trigger (0xA), IMU (0xD), OTHERS (0xE) or CONTINUED (0xF) word per that many
    events, inserted at random places (needs ``rng``). ``repeat_time_high``: repeat some TIME_HIGH words.
    Returns the uint32 words and the count of inserted words by kind.
    """
    words: list[int] = []
    extra = {"trigger": 0, "imu": 0, "other": 0}
    last_high = None
    for ti, xi, yi, pi in zip(t, x, y, p, strict=True):
        high = int(ti) >> 6
        if high != last_high or (repeat_time_high and rng is not None and rng.random() < 0.05):
            words.append(evt2_time_high(high))
            last_high = high
        if extra_every and rng is not None and rng.random() < 1.0 / extra_every:
            kind = int(rng.choice([0xA, 0xD, 0xE, 0xF]))
            words.append(evt2_word(kind, int(rng.integers(0, 1 << 28))))
            extra["trigger" if kind == 0xA else "imu" if kind == 0xD else "other"] += 1
        words.append(evt2_cd(int(ti) & 0x3F, int(xi), int(yi), int(pi)))
    return np.asarray(words, dtype="<u4"), extra


def random_events(rng: np.random.Generator, n: int, width: int, height: int, t0: int, max_gap: int) -> dict:
    """Sorted random events (repeated timestamps included)."""
    gaps = rng.integers(0, max_gap + 1, size=n)
    gaps[rng.random(n) < 0.3] = 0
    return events_dict(
        t0 + np.cumsum(gaps), rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n)
    )


# ------------------------------------------------------------------------------------------------ EVT 3.0


def evt3_word(kind: int, payload: int) -> int:
    """16-bit word: type in bits 15–12, payload 11–0."""
    return (kind & 0xF) << 12 | (payload & 0xFFF)


def evt3_addr_y(y: int) -> int:
    return evt3_word(0x0, y & 0x7FF)


def evt3_addr_x(x: int, p: int) -> int:
    return evt3_word(0x2, (p & 1) << 11 | (x & 0x7FF))


def evt3_base_x(x: int, p: int) -> int:
    return evt3_word(0x3, (p & 1) << 11 | (x & 0x7FF))


def evt3_vect12(mask: int) -> int:
    return evt3_word(0x4, mask & 0xFFF)


def evt3_vect8(mask: int) -> int:
    return evt3_word(0x5, mask & 0xFF)


def evt3_time_low(t: int) -> int:
    return evt3_word(0x6, t & 0xFFF)


def evt3_time_high(t: int) -> int:
    return evt3_word(0x8, (t >> 12) & 0xFFF)


class Evt3Encoder:
    """Builds an EVT 3.0 word stream and the events it encodes (in decoding order).

    Times are true µs; the stream carries only the 24 low bits (TIME_HIGH = bits 23–12, TIME_LOW = 11–0), as
    a sensor does. The encoder writes a TIME_HIGH whenever bits 23–12 change and a TIME_LOW whenever the time
    changes, so a decoder following the spec recovers the true time as long as it starts below 2**24 and
    no two consecutive timestamps are 2**23 µs or more apart.
    """

    def __init__(self) -> None:
        self.words: list[int] = []
        self.events: list[tuple[int, int, int, int]] = []
        self.t: int | None = None
        self.y: int | None = None
        self.high: int | None = None

    def time(self, t: int, force_high: bool = False) -> None:
        """Move to time ``t`` (µs)."""
        high = (t >> 12) & 0xFFF
        if high != self.high or force_high:
            self.words.append(evt3_time_high(t))
            self.high = high
            if t & 0xFFF or force_high:
                self.words.append(evt3_time_low(t))
        elif t != self.t:
            self.words.append(evt3_time_low(t))
        self.t = t

    def row(self, y: int) -> None:
        if y != self.y:
            self.words.append(evt3_addr_y(y))
            self.y = y

    def single(self, x: int, p: int) -> None:
        self.words.append(evt3_addr_x(x, p))
        self.events.append((self.t, x, self.y, p))

    def vector(self, base: int, p: int, masks: list[tuple[int, int]]) -> None:
        """VECT_BASE_X then one word per ``(width, mask)``, width 12 (VECT_12) or 8 (VECT_8)."""
        self.words.append(evt3_base_x(base, p))
        x = base
        for width, mask in masks:
            self.words.append(evt3_vect12(mask) if width == 12 else evt3_vect8(mask))
            for k in range(width):
                if mask >> k & 1:
                    self.events.append((self.t, x + k, self.y, p))
            x += width

    def raw(self, word: int) -> None:
        """A word that produces no event (trigger, OTHERS, CONTINUED …)."""
        self.words.append(word)

    def result(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        ev = np.asarray(self.events, dtype=np.int64).reshape(-1, 4)
        return np.asarray(self.words, dtype="<u2"), events_dict(ev[:, 0], ev[:, 1], ev[:, 2], ev[:, 3])


def encode_evt3_random(
    rng: np.random.Generator,
    n_steps: int,
    t0: int = 5000,
    max_gap: int = 3000,
    width: int = 1280,
    height: int = 720,
    extras: bool = True,
    big_gaps: int = 0,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int]]:
    """A random EVT 3.0 stream: per time step a few rows, each with single events and/or vectors.

    ``big_gaps`` inserts that many jumps of ~4–8 s (crossing the 2**24 µs wrap when enough). ``extras``
    sprinkles triggers (0xA), IMU (0xD), OTHERS (0xE) + CONTINUED_12 (0xF) / CONTINUED_4 (0x7) words.
    Returns words, ground-truth events and the count of extra words by kind.
    """
    enc = Evt3Encoder()
    extra = {"trigger": 0, "imu": 0, "other": 0}
    t = t0
    big = set(rng.choice(np.arange(1, n_steps), size=min(big_gaps, n_steps - 1), replace=False).tolist())
    for step in range(n_steps):
        t += int(rng.integers(0, max_gap + 1)) if step else 0
        if step in big:
            t += int(rng.integers(4_000_000, 8_000_000))
        enc.time(t, force_high=bool(rng.random() < 0.05))
        for _ in range(int(rng.integers(1, 4))):
            enc.row(int(rng.integers(0, height)))
            for _ in range(int(rng.integers(1, 4))):
                p = int(rng.integers(0, 2))
                if rng.random() < 0.5:
                    enc.single(int(rng.integers(0, width)), p)
                else:
                    base = int(rng.integers(0, width - 64))
                    if rng.random() < 0.7:  # the usual VECT_12, VECT_12, VECT_8 triples
                        masks = []
                        for _ in range(int(rng.integers(1, 3))):
                            masks += [(12, int(rng.integers(0, 1 << 12))), (12, int(rng.integers(0, 1 << 12))),
                                      (8, int(rng.integers(0, 1 << 8)))]
                    else:  # any sequence of 12/8-bit vectors (each word on its own)
                        masks = [(w, int(rng.integers(0, 1 << w))) for w in rng.choice([12, 8], size=3)]
                    enc.vector(base, p, masks)
            if extras and rng.random() < 0.2:
                kind = int(rng.choice([0xA, 0xD, 0xE]))
                enc.raw(evt3_word(kind, int(rng.integers(0, 1 << 12))))
                extra["trigger" if kind == 0xA else "imu" if kind == 0xD else "other"] += 1
                if kind == 0xE:
                    for cont in (0xF, 0xF, 0x7):
                        enc.raw(evt3_word(cont, int(rng.integers(0, 1 << 12))))
                        extra["other"] += 1
    words, events = enc.result()
    return words, events, extra


# ---------------------------------------------------------------------------------------------------- DAT

DAT_HEADER = ["% Data file containing N9Chronocam7Event2dE events.", "% Version 2", "% Date 2017-10-31 11:29:21"]


def encode_dat(
    t,
    x,
    y,
    p,
    header: bool = True,
    width: int | None = None,
    height: int | None = None,
    event_type: int = 0,
    event_size: int = 8,
    p_high_bits: int = 0,
) -> bytes:
    """A DAT file: ``% `` lines, type byte, size byte (only with a header), then (uint32 t, uint32 w) LE.

    ``t`` is written modulo 2**32. ``p_high_bits`` is ORed into bits 31–29 of ``w`` (openeb ignores them).
    """
    out = b""
    if header:
        lines = list(DAT_HEADER)
        if width is not None:
            lines.append(f"% Width {width}")
        if height is not None:
            lines.append(f"% Height {height}")
        out = raw_header(lines) + bytes([event_type, event_size])
    t = np.asarray(t, dtype=np.int64) & 0xFFFFFFFF
    w = (
        (np.asarray(x, np.uint32) & 0x3FFF)
        | (np.asarray(y, np.uint32) & 0x3FFF) << 14
        | (np.asarray(p, np.uint32) & 1) << 28
        | np.uint32(p_high_bits & 7) << 29
    )
    rec = np.empty(t.size, dtype=[("t", "<u4"), ("w", "<u4")])
    rec["t"], rec["w"] = t, w
    return out + rec.tobytes()


# ----------------------------------------------------------------------------------------- Event Stream


def es_header(kind: int, width: int, height: int, version: tuple[int, int, int] = (2, 0, 0)) -> bytes:
    """``Event Stream``, version bytes, type byte (1 DVS, 2 ATIS), width, height (uint16 LE)."""
    return b"Event Stream" + bytes(version) + bytes([kind]) + struct.pack("<HH", width, height)


def encode_es(
    t,
    x,
    y,
    p,
    width: int,
    height: int,
    kind: int = 1,
    is_tc=None,
    rng: np.random.Generator | None = None,
    resets: float = 0.0,
) -> bytes:
    """An Event Stream v2 file (DVS ``kind=1`` or ATIS ``kind=2``) for events with non-decreasing ``t`` from 0.

    Time deltas above what one event byte holds are written as overflow bytes (DVS 0xFF = +127; ATIS
    0xFF/0xFE/0xFD = +189/+126/+63); with probability ``resets`` a reset byte (DVS 0xFE, ATIS 0xFC) is put
    before an event.
    """
    out = bytearray(es_header(kind, width, height))
    prev = 0
    for i, (ti, xi, yi, pi) in enumerate(zip(t, x, y, p, strict=True)):
        delta = int(ti) - prev
        prev = int(ti)
        if kind == 1:
            while delta >= 127:
                out.append(0xFF)
                delta -= 127
            if rng is not None and rng.random() < resets:
                out.append(0xFE)
            out.append(delta << 1 | (int(pi) & 1))
        else:
            while delta > 62:
                nn = min(3, delta // 63)
                out.append(0xFC | nn)
                delta -= 63 * nn
            if rng is not None and rng.random() < resets:
                out.append(0xFC)
            tc = int(is_tc[i]) if is_tc is not None else 0
            out.append(delta << 2 | (int(pi) & 1) << 1 | tc)
        out += struct.pack("<HH", int(xi), int(yi))
    return bytes(out)
