"""Write a format-exact IBM DVS128 Gesture *download folder* of synthetic recordings.

Written from the format documentation only (``FORMATS.md`` §2 AEDAT 3.1, ``DESIGN.md`` §3) and independent of
the project's parsers: nothing here imports ``shardgen`` or ``loader``.

Layout written under ``root`` (the folder as IBM distributes it)::

    DvsGesture.tar.gz        gzip (mtime 0, no file name) of a GNU tar, members in this order:
                                 DvsGesture/                      (directory)
                                 DvsGesture/<stem>.aedat          AEDAT 3.1, one per recording, then
                                 DvsGesture/<stem>_labels.csv     its labels (train stems first, then test)
                                 DvsGesture/LICENSE.txt
                                 DvsGesture/README.txt
                                 DvsGesture/trials_to_train.txt   one "<stem>.aedat" per line (LF)
                                 DvsGesture/trials_to_test.txt
                             (the split lists come *last*: a streaming reader cannot know the split of a
                             recording when it meets it; ``trials_first=True`` puts the four small files first)
    gesture_mapping.csv      "action,label" + 11 rows, LF, with the original's space before some commas
    LICENSE.txt, README.txt  generated stand-ins (not IBM's text)

``extracted=True`` additionally writes ``root/DvsGesture/`` (what extracting the tar into ``root`` gives);
``extracted="only"`` writes only ``root/DvsGesture/`` (the folder SpikingJelly extracts to) and no top-level file.

Stems: train ``user01_fluorescent``, ``user01_fluorescent_led``, ``user01_lab``, ``user01_led``, ``user01_natural``,
``user02_fluorescent`` ...; test ``user24_fluorescent``, ``user24_fluorescent_led``, ... (5 lightings per user).

Labels csv (as the real files): header ``class,startTime_usec,endTime_usec``, rows ``c,start,end`` in time order,
LF line ends. Default rows: classes 1..11 once each; recording 0 repeats class 8 (12 rows, as real user01 files, so
the key ``7/<stem>_1`` exists); recording 1 has an overlapping pair (class 9 ends after class 10 starts, as in the
real ``user22_led``); recording 2 (``overflow=True``) has timestamps crossing 2**31 µs, its later packets carrying
eventTSOverflow=1 and int32 timestamps restarting near 0, one window straddling 2**31 and later csv values above
2**31 (all < 2**32); recording 3 (``empty_window=True``) has one row whose window holds no event. Roles wrap
modulo the number of recordings (see ``GeneratedGesture.roles``).

Events: per window a few moving Gaussian blobs (hands; trajectory by class) plus a faint torso blob, polarity
ON on the leading edge of the motion (15% flipped), Poisson-like timing (exponential deltas) with about
``events_per_sample`` events per 3–6 s window; sparse uniform noise between windows; the first event of each
window sits exactly on its start time and the first noise event after a window exactly on its end time (which
is excluded from the sample). Timestamps are non-decreasing within a recording (equal ones occur). About 0.2% of
events (at least one per recording) have the valid bit cleared; they are still events (SpikingJelly parity).

Packets: polarity packets of log-uniform sizes 1..6000 events (the first one has 1 event; one always ends at the
2**31 crossing), eventCapacity == eventNumber, eventValid = number of valid events; in between, packets a reader
must skip: special (type 0, eventSize 8; TIMESTAMP_WRAP at the overflow crossing, external-input events elsewhere,
one before any polarity packet), frame (type 2, eventSize 4132) and IMU6 (type 3, eventSize 36).

Same arguments → byte-identical files.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import tarfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

H = W = 128
N_CLASSES = 11
OVERFLOW_SHIFT = 31
LIGHTINGS = ("fluorescent", "fluorescent_led", "lab", "led", "natural")

SPECIAL, POLARITY, FRAME, IMU6 = 0, 1, 2, 3
SOURCE_ID = 1
FRAME_EVENT_SIZE = 36 + 2 * 32 * 64  # 9 int32 header fields + 32x64 uint16 pixels
IMU6_EVENT_SIZE = 36  # uint32 info, int32 ts, 7 float32
INVALID_FRACTION = 0.002
NOISE_FRACTION = 0.02  # noise rate relative to the gesture event rate

PACKET_HEADER = struct.Struct("<hhiiiiii")  # type, source, size, tsOffset, tsOverflow, capacity, number, valid
POLARITY_DTYPE = np.dtype([("data", "<u4"), ("ts", "<i4")])

GESTURE_MAPPING = (
    "action,label\n"
    "hand_clapping,1\n"
    "right_hand_wave,2\n"
    "left_hand_wave,3\n"
    "right_arm_clockwise ,4\n"
    "right_arm_counter_clockwise ,5\n"
    "left_arm_clockwise ,6\n"
    "left_arm_counter_clockwise ,7\n"
    "arm_roll,8\n"
    "air_drums,9\n"
    "air_guitar,10\n"
    "other_gestures,11\n"
)
LABELS_HEADER = "class,startTime_usec,endTime_usec\n"
LICENSE_TEXT = (
    "Synthetic stand-in for the DVS128 Gesture LICENSE.txt, written by eventshard's test generator.\n"
    "The real dataset (IBM, Amir et al. 2017) is distributed under CC BY 4.0.\n"
)
README_TEXT = (
    "Synthetic stand-in for the DVS128 Gesture README.txt, written by eventshard's test generator.\n"
    "Recordings are AEDAT 3.1 files (cAER, DVS128 polarity packets); <stem>_labels.csv lists\n"
    "class,startTime_usec,endTime_usec per gesture; trials_to_train.txt / trials_to_test.txt give the split.\n"
    "The events are random, not recordings of gestures.\n"
)

_H = np.pi / 2
# per class: blobs as (x0, Ax, kx, phx, y0, Ay, ky, phy): x = x0 + Ax sin(kx w tau + phx), same for y
_CLASS_BLOBS: dict[int, list[tuple[float, ...]]] = {
    1: [(47, -9, 1, _H, 60, 2, 2, 0), (81, 9, 1, _H, 60, 2, 2, 0)],  # clapping
    2: [(86, 18, 1, 0, 44, 4, 2, _H)],  # right hand wave
    3: [(42, 18, 1, 0, 44, 4, 2, _H)],  # left hand wave
    4: [(84, 24, 1, _H, 64, 24, 1, 0)],  # right arm clockwise (y grows downwards)
    5: [(84, 24, 1, _H, 64, -24, 1, 0)],
    6: [(44, 24, 1, _H, 64, 24, 1, 0)],
    7: [(44, 24, 1, _H, 64, -24, 1, 0)],
    8: [(64, 10, 2, _H, 70, 10, 2, 0), (64, -10, 2, _H, 70, -10, 2, 0)],  # arm roll
    9: [(46, 4, 1, 0, 72, 12, 2, 0), (82, 4, 1, _H, 72, -12, 2, 0)],  # air drums
    10: [(76, 6, 2, 0, 74, 14, 2, 0), (40, 3, 1, 0, 50, 3, 1, _H)],  # air guitar
    11: [(64, 30, 1, 0, 60, 20, 1.7, 0)],  # other
}


# ----------------------------------------------------------------------------------------------------------
# low-level writers (reusable for bad-input tests: build packets, then slice or patch the bytes)


def aedat31_header(source: str = "DVS128", start_time: str = "2017-03-02 10:00:00 (TZ-0800)") -> bytes:
    """The ASCII header of an AEDAT 3.1 file, CRLF lines, ending with ``#!END-HEADER\\r\\n``."""
    lines = ["#!AER-DAT3.1", "#Format: RAW", f"#Source {SOURCE_ID}: {source}", f"#Start-Time: {start_time}",
             "#!END-HEADER"]
    return "".join(line + "\r\n" for line in lines).encode("ascii")


def packet_header(event_type: int, event_size: int, number: int, *, overflow: int = 0, valid: int | None = None,
                  capacity: int | None = None, source: int = SOURCE_ID, ts_offset: int = 4) -> bytes:
    """28-byte little-endian packet header; capacity and valid default to ``number``."""
    return PACKET_HEADER.pack(event_type, source, event_size, ts_offset, overflow,
                              number if capacity is None else capacity, number,
                              number if valid is None else valid)


def packet_bytes(event_type: int, overflow: int, payload: bytes, event_size: int, *, valid: int | None = None,
                 capacity: int | None = None, number: int | None = None, source: int = SOURCE_ID,
                 ts_offset: int = 4) -> bytes:
    """Header + payload of one packet. ``number`` defaults to ``len(payload) // event_size``; for polarity
    payloads ``valid`` defaults to the number of events with the valid bit set."""
    if number is None:
        if len(payload) % event_size:
            raise ValueError("payload length is not a multiple of event_size; pass number=")
        number = len(payload) // event_size
    if valid is None and event_type == POLARITY and event_size == 8:
        words = np.frombuffer(payload[: number * 8], dtype=POLARITY_DTYPE)["data"]
        valid = int(np.count_nonzero(words & 1))
    return packet_header(event_type, event_size, number, overflow=overflow, valid=valid, capacity=capacity,
                         source=source, ts_offset=ts_offset) + bytes(payload)


def aedat31_bytes(packets: Iterable[bytes | Sequence], header: bytes | None = None) -> bytes:
    """A whole AEDAT 3.1 file: ``header`` (default :func:`aedat31_header`) then the packets, each either ready
    bytes (from :func:`packet_bytes`) or a tuple ``(event_type, overflow, payload, event_size)``."""
    parts = [aedat31_header() if header is None else header]
    for pk in packets:
        parts.append(pk if isinstance(pk, bytes | bytearray) else packet_bytes(*pk))
    return b"".join(parts)


def polarity_words(x, y, p, valid=None) -> np.ndarray:
    """uint32 ``data`` words: bit 0 valid, bit 1 polarity, bits 16..2 y, bits 31..17 x."""
    x = np.asarray(x, dtype=np.uint32)
    y = np.asarray(y, dtype=np.uint32)
    p = np.asarray(p, dtype=np.uint32)
    v = np.ones_like(x) if valid is None else np.asarray(valid, dtype=np.uint32)
    return (x << np.uint32(17)) | (y << np.uint32(2)) | ((p & np.uint32(1)) << np.uint32(1)) | (v & np.uint32(1))


def polarity_payload(t, x, y, p, valid=None, overflow: int | None = None) -> bytes:
    """Payload of a polarity packet (8 bytes per event). With ``overflow=None`` the int32 timestamp field holds
    the low 31 bits of ``t`` (put the packet's eventTSOverflow = t >> 31 in its header); with an explicit
    ``overflow`` it holds ``t - (overflow << 31)`` cast to int32 (may be negative: for bad-input tests)."""
    t = np.asarray(t, dtype=np.int64)
    ev = np.empty(t.shape[0], dtype=POLARITY_DTYPE)
    ev["data"] = polarity_words(x, y, p, valid)
    ts = (t & 0x7FFFFFFF) if overflow is None else (t - (np.int64(overflow) << OVERFLOW_SHIFT))
    ev["ts"] = ts.astype(np.int32)
    return ev.tobytes()


def special_payload(ts, subtype) -> bytes:
    """Special events (type 0, 8 bytes): uint32 data (bit 0 valid, bits 7..1 subtype), int32 timestamp."""
    ts, sub = np.broadcast_arrays(np.atleast_1d(np.asarray(ts, dtype=np.int64)),
                                  np.atleast_1d(np.asarray(subtype, dtype=np.uint32)))
    ev = np.empty(ts.shape[0], dtype=POLARITY_DTYPE)
    ev["data"] = ((sub & np.uint32(0x7F)) << np.uint32(1)) | np.uint32(1)
    ev["ts"] = ts.astype(np.int32)
    return ev.tobytes()


def frame_payload(ts: int, n: int, rng: np.random.Generator) -> bytes:
    """``n`` frame events (type 2): 9 int32 (info, 4 timestamps, lengthX, lengthY, posX, posY) + pixels."""
    out = bytearray()
    for _ in range(n):
        out += struct.pack("<9i", 1, ts, ts, ts, ts, 64, 32, 0, 0)
        out += rng.integers(0, 1024, 32 * 64, dtype=np.uint16).astype("<u2").tobytes()
    return bytes(out)


def imu6_payload(ts: int, n: int) -> bytes:
    """``n`` IMU6 events (type 3, 36 bytes): uint32 info, int32 ts, accel xyz, temperature, gyro xyz."""
    return b"".join(struct.pack("<Ii7f", 1, ts, 0.0, -1.0, 0.0, 25.0, 0.1, -0.1, 0.0) for _ in range(n))


# ----------------------------------------------------------------------------------------------------------
# generator


@dataclass
class GeneratedGesture:
    root: Path  # the download folder
    # stem -> {"split", "t" int64, "x" int16, "y" int16, "p" uint8, "valid" bool (all events in file order,
    #          invalid ones included), "labels" int64 (csv class 1..11), "start", "end" int64,
    #          "packets": list of (event_type, overflow, number, event_size) in file order}
    recordings: dict[str, dict] = field(default_factory=dict)
    md5: dict[str, str] = field(default_factory=dict)  # top-level file name -> md5 hex
    roles: dict[str, str | None] = field(default_factory=dict)  # repeat / overlap / overflow / empty -> stem
    members: list[str] = field(default_factory=list)  # tar member names in order

    @property
    def train_stems(self) -> list[str]:
        return [s for s, r in self.recordings.items() if r["split"] == "train"]

    @property
    def test_stems(self) -> list[str]:
        return [s for s, r in self.recordings.items() if r["split"] == "test"]

    @property
    def n_events(self) -> int:
        return sum(int(r["t"].shape[0]) for r in self.recordings.values())


def gesture_stems(n_train: int, n_test: int) -> tuple[list[str], list[str]]:
    if n_train > 23 * len(LIGHTINGS) or n_test > 6 * len(LIGHTINGS):
        raise ValueError("at most 115 train and 30 test recordings (users 1-23 / 24-29 x 5 lightings)")
    train = [f"user{1 + i // 5:02d}_{LIGHTINGS[i % 5]}" for i in range(n_train)]
    test = [f"user{24 + i // 5:02d}_{LIGHTINGS[i % 5]}" for i in range(n_test)]
    return train, test


def _row_classes(samples_per_recording: int | None, repeat: bool) -> list[int]:
    if samples_per_recording is None:
        classes = list(range(1, N_CLASSES + 1))
        if repeat:
            classes.insert(8, 8)  # 1..8, 8, 9..11 as in the real user01 files
        return classes
    return [(j % N_CLASSES) + 1 for j in range(samples_per_recording)]


def _segment_times(rng: np.random.Generator, n: int, a: int, b: int) -> np.ndarray:
    """``n`` sorted integer times in [a, b) with exponential gaps (uniform order statistics); first == a."""
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    c = np.cumsum(rng.standard_exponential(n + 1, dtype=np.float32), dtype=np.float64)
    c *= (b - a) / c[n]
    t = c[:n].astype(np.int64)  # truncation == floor (non-negative)
    t += a
    np.minimum(t, b - 1, out=t)
    t[0] = a
    return t


def _gesture_xyp(rng: np.random.Generator, cls: int, t: np.ndarray, t0: int, jitter: dict) -> tuple[np.ndarray, ...]:
    """Positions and polarities of gesture events at times ``t`` (µs) of a window starting at ``t0``: blob
    centres and velocities are tabulated on a 1 ms grid and gathered (no per-event trigonometry)."""
    n = t.shape[0]
    blobs = _CLASS_BLOBS[cls]
    nb = len(blobs)
    ms = ((t - t0) // 1000).astype(np.int64)
    grid = int(ms[-1]) + 1 if n else 1
    tau = np.arange(grid) * 1e-3
    w, s = jitter["w"], jitter["scale"]
    cx = np.empty((nb + 1, grid), dtype=np.float32)
    cy = np.empty_like(cx)
    vx = np.empty_like(cx)
    vy = np.empty_like(cx)
    for i, (x0, ax, kx, phx, y0, ay, ky, phy) in enumerate(blobs):
        cx[i] = x0 + jitter["dx"] + s * ax * np.sin(kx * w * tau + phx)
        cy[i] = y0 + jitter["dy"] + s * ay * np.sin(ky * w * tau + phy)
        vx[i] = s * ax * kx * w * np.cos(kx * w * tau + phx)
        vy[i] = s * ay * ky * w * np.cos(ky * w * tau + phy)
    cx[nb], cy[nb], vx[nb], vy[nb] = 64 + jitter["dx"], 100, 1.0, 0.0  # torso: slow sideways sway
    sigma = np.array([5.5] * nb + [14.0], dtype=np.float32)
    u = rng.random(n, dtype=np.float32)
    which = np.where(u < 0.08, nb, np.minimum(((u - 0.08) * (nb / 0.92)).astype(np.int64), nb - 1))
    flat = which * grid + ms
    sg = sigma[which]
    ox = rng.standard_normal(n, dtype=np.float32) * sg
    oy = rng.standard_normal(n, dtype=np.float32) * sg
    x = np.clip(np.rint(cx.ravel()[flat] + ox), 0, W - 1).astype(np.int16)
    y = np.clip(np.rint(cy.ravel()[flat] + oy), 0, H - 1).astype(np.int16)
    lead = (ox * vx.ravel()[flat] + oy * vy.ravel()[flat]) > 0
    flip = rng.random(n, dtype=np.float32) < 0.15
    p = (lead ^ flip).view(np.uint8)
    return x, y, p


def _make_recording(rng: np.random.Generator, classes: list[int], eps: int, *, overlap: bool, overflow: bool,
                    empty: bool) -> dict:
    n_rows = len(classes)
    # window layout relative to the first event (0)
    lead = int(rng.integers(1_000_000, 3_000_000))
    dur = rng.integers(3_000_000, 6_000_001, n_rows)
    gaps = rng.integers(300_000, 2_000_000, max(n_rows - 1, 0))
    start = np.empty(n_rows, dtype=np.int64)
    cursor = lead
    for j in range(n_rows):
        start[j] = cursor
        cursor += int(dur[j]) + (int(gaps[j]) if j < n_rows - 1 else 0)
    end = start + dur
    rec_end_rel = int(end[-1]) + int(rng.integers(1_000_000, 2_000_000)) if n_rows else lead
    pair = None
    if overlap and n_rows >= 2:
        k = max(n_rows - 3, 0)
        pair = (k, k + 1)
        end[k] = start[k + 1] + (end[k + 1] - start[k + 1]) * 3 // 10
    empty_row = None
    if empty and n_rows:
        empty_row = next((j for j in [1, 0, *range(2, n_rows)] if j < n_rows and (pair is None or j not in pair)),
                         None)
    if overflow and n_rows:
        mid = n_rows // 2
        offset = (1 << OVERFLOW_SHIFT) - int(start[mid] + (end[mid] - start[mid]) // 3)
    else:
        offset = int(rng.integers(2_000_000, 30_000_000))
    start += offset
    end += offset
    rec_begin, rec_end = offset, rec_end_rel + offset

    # segments: windows (gesture) and gaps (noise)
    rate = NOISE_FRACTION * eps / 4_500_000.0
    ts_parts, xs, ys, ps = [], [], [], []
    jitter = {
        "w": 2 * np.pi * rng.uniform(0.8, 1.6),
        "scale": rng.uniform(0.85, 1.15),
        "dx": rng.uniform(-6, 6),
        "dy": rng.uniform(-6, 6),
    }

    def noise(a: int, b: int) -> None:
        if b <= a:
            return
        n = int(rng.poisson(rate * (b - a)))
        ts_parts.append(_segment_times(rng, n, a, b))
        xs.append(rng.integers(0, W, n).astype(np.int16))
        ys.append(rng.integers(0, H, n).astype(np.int16))
        ps.append(rng.integers(0, 2, n).astype(np.uint8))

    noise(rec_begin, int(start[0]) if n_rows else rec_end)
    for j in range(n_rows):
        if j != empty_row:
            n = int(rng.integers(max(1, eps * 3 // 4), max(1, eps * 5 // 4) + 1))
            t = _segment_times(rng, n, int(start[j]), int(end[j]))
            x, y, p = _gesture_xyp(rng, classes[j], t, int(start[j]), jitter)
            ts_parts.append(t)
            xs.append(x)
            ys.append(y)
            ps.append(p)
        noise(int(end[j]), int(start[j + 1]) if j < n_rows - 1 else rec_end)
    t = np.concatenate(ts_parts) if ts_parts else np.empty(0, np.int64)
    x = np.concatenate(xs) if xs else np.empty(0, np.int16)
    y = np.concatenate(ys) if ys else np.empty(0, np.int16)
    p = np.concatenate(ps) if ps else np.empty(0, np.uint8)
    if t.shape[0] > 1 and np.any(t[1:] < t[:-1]):  # overlapping windows: merge
        order = np.argsort(t, kind="stable")
        t, x, y, p = t[order], x[order], y[order], p[order]
    valid = rng.random(t.shape[0], dtype=np.float32) >= INVALID_FRACTION
    if t.shape[0]:
        valid[t.shape[0] // 3] = False
    return {"t": t, "x": x, "y": y, "p": p, "valid": valid, "labels": np.asarray(classes, dtype=np.int64),
            "start": start, "end": end}


def _aedat_file(rng: np.random.Generator, rec: dict, start_time: str) -> tuple[bytes, list[tuple[int, ...]]]:
    t, valid = rec["t"], rec["valid"]
    n = t.shape[0]
    ev = np.empty(n, dtype=POLARITY_DTYPE)
    ev["data"] = polarity_words(rec["x"], rec["y"], rec["p"], valid)
    ev["ts"] = (t & 0x7FFFFFFF).astype(np.int32)
    # packet cuts: log-uniform sizes, first packet of 1 event, a cut at the 2**31 crossing
    sizes = np.exp(rng.uniform(0.0, np.log(6000.0), n // 300 + 16)).astype(np.int64) + 1
    while sizes.sum() < n:
        sizes = np.concatenate([sizes, sizes])
    cuts = np.cumsum(sizes)
    cross = int(np.searchsorted(t, 1 << OVERFLOW_SHIFT))
    cuts = np.unique(np.concatenate([[0, min(1, n), cross, n], cuts[cuts < n]]))
    vcum = np.concatenate([[0], np.cumsum(valid, dtype=np.int64)])
    n_pol = len(cuts) - 1
    # positions (before polarity packet i) of the packets a reader must skip
    extras: dict[int, list[tuple[int, int, bytes, int]]] = {}

    def add(i: int, item: tuple[int, int, bytes, int]) -> None:
        extras.setdefault(i, []).append(item)

    def ts_at(i: int) -> int:
        k = int(cuts[min(i, n_pol - 1)]) if n_pol > 0 else 0
        return int(t[k]) if n else 0

    add(0, (SPECIAL, ts_at(0) >> 31, special_payload(ts_at(0) & 0x7FFFFFFF, [2, 3]), 8))
    if 0 < cross < n:
        add(int(np.searchsorted(cuts, cross)), (SPECIAL, 1, special_payload(0, 0), 8))  # TIMESTAMP_WRAP
    for kind in (FRAME, IMU6, SPECIAL):
        i = int(rng.integers(1, max(n_pol, 1) + 1))
        tsv = ts_at(i)
        if kind == FRAME:
            item = (FRAME, tsv >> 31, frame_payload(tsv & 0x7FFFFFFF, int(rng.integers(1, 3)), rng),
                    FRAME_EVENT_SIZE)
        elif kind == IMU6:
            item = (IMU6, tsv >> 31, imu6_payload(tsv & 0x7FFFFFFF, 2), IMU6_EVENT_SIZE)
        else:
            item = (SPECIAL, tsv >> 31, special_payload(tsv & 0x7FFFFFFF, 4), 8)
        add(i, item)

    parts = [aedat31_header(start_time=start_time)]
    plan: list[tuple[int, ...]] = []
    raw = ev.view(np.uint8)
    for i in range(n_pol + 1):
        for et, ovf, payload, size in extras.get(i, []):
            parts.append(packet_bytes(et, ovf, payload, size))
            plan.append((et, ovf, len(payload) // size, size))
        if i < n_pol:
            a, b = int(cuts[i]), int(cuts[i + 1])
            ovf = int(t[a] >> OVERFLOW_SHIFT)
            parts.append(packet_header(POLARITY, 8, b - a, overflow=ovf, valid=int(vcum[b] - vcum[a])))
            parts.append(raw[a * 8 : b * 8].tobytes())
            plan.append((POLARITY, ovf, b - a, 8))
    return b"".join(parts), plan


def _labels_csv(rec: dict) -> bytes:
    rows = "".join(f"{c},{s},{e}\n" for c, s, e in zip(rec["labels"], rec["start"], rec["end"], strict=True))
    return (LABELS_HEADER + rows).encode("ascii")


def _tarinfo(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mtime = 0
    ti.mode = 0o755 if directory else 0o644
    ti.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


class _TarWriter:
    """What ``tarfile.open(mode="w", format=GNU_FORMAT).addfile`` writes (same bytes), minus its 16 KiB copy loop:
    512-byte header, data, NUL padding to 512; on close two NUL blocks and padding to a 10240-byte record."""

    def __init__(self, fileobj):
        self.f = fileobj
        self.offset = 0

    def add(self, ti: tarfile.TarInfo, data: bytes = b"") -> None:
        header = ti.tobuf(tarfile.GNU_FORMAT, tarfile.ENCODING, "surrogateescape")
        pad = -len(data) % tarfile.BLOCKSIZE
        self.f.write(header)
        self.f.write(data)
        self.f.write(b"\0" * pad)
        self.offset += len(header) + len(data) + pad

    def close(self) -> None:
        end = self.offset + 2 * tarfile.BLOCKSIZE
        self.f.write(b"\0" * (2 * tarfile.BLOCKSIZE + (-end % tarfile.RECORDSIZE)))


class _Md5Writer:
    """A write-only file that keeps the md5 of what went through it."""

    def __init__(self, path: Path):
        self.f = open(path, "wb")  # noqa: SIM115
        self.md5 = hashlib.md5()

    def write(self, data) -> int:
        self.md5.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def write_gesture_download(root, n_train: int = 3, n_test: int = 2, events_per_sample: int = 2000,
                           samples_per_recording: int | None = None, seed: int = 0, overflow: bool = True,
                           empty_window: bool = True, extracted: bool | str = False, gzip_level: int = 6,
                           trials_first: bool = False) -> GeneratedGesture:
    """Write the download folder under ``root`` (created) and return its ground truth; see the module doc.

    ``samples_per_recording=None``: 11 rows (classes 1..11), 12 in the recording that repeats class 8;
    an int n: n rows with classes ``(j % 11) + 1``. ``extracted``: False, True (tar.gz and DvsGesture/), or
    ``"only"`` (DvsGesture/ only). ``gzip_level`` 0..9: use 1 for big benchmark sets (about 4x faster than 6 and,
with zlib 1.2.13 on these events, even smaller: ~4.1 vs ~4.6 bytes per event).
    """
    if extracted not in (False, True, "only"):
        raise ValueError("extracted must be False, True or 'only'")
    if samples_per_recording is not None and samples_per_recording < 1:
        raise ValueError("samples_per_recording must be >= 1")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    train, test = gesture_stems(n_train, n_test)
    stems = train + test
    n_rec = len(stems)
    rng = np.random.default_rng(seed)
    roles: dict[str, str | None] = {"repeat": None, "overlap": None, "overflow": None, "empty": None}
    if n_rec:
        roles["repeat"] = stems[0] if samples_per_recording is None else None
        roles["overlap"] = stems[1 % n_rec]
        roles["overflow"] = stems[2 % n_rec] if overflow else None
        roles["empty"] = stems[3 % n_rec] if empty_window else None

    small = {
        "LICENSE.txt": LICENSE_TEXT.encode(),
        "README.txt": README_TEXT.encode(),
        "trials_to_train.txt": "".join(f"{s}.aedat\n" for s in train).encode(),
        "trials_to_test.txt": "".join(f"{s}.aedat\n" for s in test).encode(),
    }
    gen = GeneratedGesture(root=root, roles=roles)
    ext_dir = root / "DvsGesture"
    if extracted:
        ext_dir.mkdir(exist_ok=True)
    write_tar = extracted != "only"
    tar = gz = fobj = None
    if write_tar:
        fobj = _Md5Writer(root / "DvsGesture.tar.gz")
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=fobj, compresslevel=gzip_level, mtime=0)
        tar = _TarWriter(gz)
        tar.add(_tarinfo("DvsGesture", directory=True))
        gen.members.append("DvsGesture")

    def emit(name: str, data: bytes) -> None:
        if tar is not None:
            tar.add(_tarinfo(f"DvsGesture/{name}", len(data)), data)
            gen.members.append(f"DvsGesture/{name}")
        if extracted:
            (ext_dir / name).write_bytes(data)

    def emit_recording(stem: str, data: bytes, csv: bytes) -> None:
        emit(f"{stem}.aedat", data)
        emit(f"{stem}_labels.csv", csv)

    # compression (zlib releases the GIL) of recording i overlaps the generation of recording i + 1
    pool = ThreadPoolExecutor(max_workers=1)
    pending = None
    try:
        if trials_first:
            for name, data in small.items():
                emit(name, data)
        for i, stem in enumerate(stems):
            rec = _make_recording(rng, _row_classes(samples_per_recording, stem == roles["repeat"]),
                                  events_per_sample, overlap=stem == roles["overlap"],
                                  overflow=stem == roles["overflow"], empty=stem == roles["empty"])
            rec["split"] = "train" if i < len(train) else "test"
            data, plan = _aedat_file(rng, rec, f"2017-03-{1 + i % 28:02d} {9 + i % 8:02d}:{(7 * i) % 60:02d}:"
                                               f"{(13 * i) % 60:02d} (TZ-0800)")
            rec["packets"] = plan
            gen.recordings[stem] = rec
            if pending is not None:
                pending.result()
            pending = pool.submit(emit_recording, stem, data, _labels_csv(rec))
            del data
        if pending is not None:
            pending.result()
        if not trials_first:
            for name, data in small.items():
                emit(name, data)
    finally:
        pool.shutdown(wait=True)
        if tar is not None:
            tar.close()
            gz.close()
            fobj.close()
    if write_tar:
        gen.md5["DvsGesture.tar.gz"] = fobj.md5.hexdigest()
        for name, text in (("gesture_mapping.csv", GESTURE_MAPPING), ("LICENSE.txt", LICENSE_TEXT),
                           ("README.txt", README_TEXT)):
            (root / name).write_bytes(text.encode())
            gen.md5[name] = hashlib.md5(text.encode()).hexdigest()
    return gen


def expected_samples(gen: GeneratedGesture) -> dict[str, dict[str, dict]]:
    """split -> key -> {"t","x","y","p","label"} by DESIGN §3: rows of ``<stem>_labels.csv`` in order, events with
    start <= t < end (invalid ones included), label = class - 1, key ``<label>/<stem>_<k>`` with k counting that
    class within the recording from 0. Arrays are views of the ground truth (do not modify)."""
    out: dict[str, dict[str, dict]] = {"train": {}, "test": {}}
    for stem, rec in gen.recordings.items():
        t = rec["t"]
        seen = [0] * N_CLASSES
        for c, s, e in zip(rec["labels"], rec["start"], rec["end"], strict=True):
            label = int(c) - 1
            lo, hi = np.searchsorted(t, [s, e], side="left")
            out[rec["split"]][f"{label}/{stem}_{seen[label]}"] = {
                "t": t[lo:hi], "x": rec["x"][lo:hi], "y": rec["y"][lo:hi], "p": rec["p"][lo:hi], "label": label,
            }
            seen[label] += 1
    return out
