"""Format-exact byte generators for ATIS ``.bin``, AEDAT 2.0 and ASL-DVS ``.mat`` files.

Written from ``shared/FORMATS.md`` §1, §8 and §10 only; deliberately independent of ``shardgen.formats``
(nothing here imports the parsers), so a round trip tests the reader against the spec.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import scipy.io

CHIP_DVS128 = "ch.unizh.ini.jaer.chip.retina.DVS128"
CHIP_DAVIS240C = "eu.seebetter.ini.chips.davis.DAVIS240C"
CHIP_DAVIS346 = "eu.seebetter.ini.chips.davis.Davis346red"

# ----------------------------------------------------------------------------------------------- ATIS .bin


def atis_bin_bytes(x, y, p, t) -> bytes:
    """ATIS 40-bit records: byte0 x, byte1 y, byte2 bit7 polarity, 23-bit timestamp (big-endian 40-bit word)."""
    x, y, p, t = (np.asarray(a, dtype=np.uint64).reshape(-1) for a in (x, y, p, t))
    assert x.size == y.size == p.size == t.size
    assert (x < 256).all() and (y < 256).all() and (p < 2).all() and (t < 2**23).all()
    word = (x << np.uint64(32)) | (y << np.uint64(24)) | (p << np.uint64(23)) | t
    return word.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 3:].tobytes()


# --------------------------------------------------------------------------------------------- AEDAT 2.0


def dvs128_address(x, y, p, external=False) -> np.ndarray:
    """DVS128 address word: bits 14–8 y, 7–1 x, 0 polarity, bit 15 external."""
    x, y, p = (np.asarray(a, dtype=np.uint32) for a in (x, y, p))
    assert (x < 128).all() and (y < 128).all() and (p < 2).all()
    return (np.asarray(external, dtype=np.uint32) << 15) | (y << 8) | (x << 1) | p


def davis_dvs_address(x, y, p) -> np.ndarray:
    """DAVIS polarity word: bit31 0, 30–22 y, 21–12 x, 11–10 = 10 (ON) / 00 (OFF), 9–0 zero."""
    x, y, p = (np.asarray(a, dtype=np.uint32) for a in (x, y, p))
    assert (x < 1024).all() and (y < 512).all() and (p < 2).all()
    return (y << 22) | (x << 12) | (p << 11)


def davis_external_address(x, y, bits11_10: int = 0b01) -> np.ndarray:
    """DAVIS external-input word: bit31 0, bits 11–10 = 01 or 11."""
    assert bits11_10 in (0b01, 0b11)
    x, y = (np.asarray(a, dtype=np.uint32) for a in (x, y))
    return (y << 22) | (x << 12) | np.uint32(bits11_10 << 10)


def davis_aps_address(x, y, signal, adc) -> np.ndarray:
    """DAVIS APS word: bit31 1, 30–22 y, 21–12 x, 11–10 = 00 reset / 01 signal read, 9–0 ADC."""
    x, y, signal, adc = (np.asarray(a, dtype=np.uint32) for a in (x, y, signal, adc))
    assert (adc < 1024).all() and (signal < 2).all()
    return np.uint32(1 << 31) | (y << 22) | (x << 12) | (signal << 10) | adc


def davis_imu_address(kind, sample) -> np.ndarray:
    """DAVIS IMU word: bit31 1, 30–28 sample type (0..6), 27–12 16-bit sample, 11–10 = 11."""
    kind, sample = (np.asarray(a, dtype=np.uint32) for a in (kind, sample))
    assert (kind < 7).all() and (sample < 65536).all()
    return np.uint32(1 << 31) | (kind << 28) | (sample << 12) | np.uint32(0xC00)


def aedat2_header(
    chip: str | None = CHIP_DVS128,
    extra_lines: Sequence[str] = (),
    newline: bytes = b"\r\n",
    end_marker: bool = False,
) -> bytes:
    """A jAER-style AEDAT 2.0 header: ``#!AER-DAT2.0``, comment lines, optional AEChip and end-marker lines."""
    lines = [
        "#!AER-DAT2.0",
        "# This is a raw AE data file - do not edit",
        "# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
        "# Timestamps tick is 1 us",
    ]
    if chip is not None:
        lines.append(f"# AEChip: {chip}")
    lines += list(extra_lines)
    if end_marker:
        lines.append("#End Of ASCII Header")
    return b"".join(line.encode() + newline for line in lines)


def aedat2_records(addresses, timestamps) -> bytes:
    """Body: big-endian int32 address, big-endian int32 timestamp per record (timestamps taken mod 2**32)."""
    addr = np.asarray(addresses, dtype=np.uint64).reshape(-1)
    ts = np.asarray(timestamps, dtype=np.int64).reshape(-1)
    assert addr.size == ts.size
    out = np.empty((addr.size, 2), dtype=">u4")
    out[:, 0] = addr.astype(np.uint32)
    out[:, 1] = (ts % 2**32).astype(np.uint32)
    return out.tobytes()


def aedat2_bytes(
    addresses,
    timestamps,
    header_lines: Sequence[str] | None = None,
    chip: str | None = CHIP_DVS128,
    newline: bytes = b"\r\n",
    end_marker: bool = False,
) -> bytes:
    """A whole AEDAT 2.0 file: header (``header_lines`` replace the default lines if given) plus records."""
    if header_lines is None:
        header = aedat2_header(chip, (), newline, end_marker)
    else:
        header = b"".join(line.encode() + newline for line in header_lines)
    return header + aedat2_records(addresses, timestamps)


# ------------------------------------------------------------------------------------------------ ASL .mat


def asl_mat_bytes(ts, x, y, pol, column: bool = True, omit: Sequence[str] = (), **extra) -> bytes:
    """An ASL-DVS-style MAT v5 file with variables ``ts``, ``x``, ``y``, ``pol`` (N×1 columns by default)."""
    variables = {"ts": np.asarray(ts), "x": np.asarray(x), "y": np.asarray(y), "pol": np.asarray(pol)}
    if column:
        variables = {k: v.reshape(-1, 1) for k, v in variables.items()}
    for key in omit:
        del variables[key]
    variables.update(extra)
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables)
    return buf.getvalue()
