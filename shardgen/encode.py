"""Encode many samples of a 2-D sensor at once: the same frames as :func:`loader.format.encode_sample`, byte for byte.

A worker encodes a batch of samples together (the samples of a recording, or of a batch of one-sample files):
the time deltas, their per-sample ranges, the packed pixel column and the byte planes are computed by one numpy
call each over the whole batch instead of a dozen calls per sample (columns that already lie back to back are
not even joined), and each sample's msgpack map and tar headers are written around its slices of the planes, so
the column bytes are copied once on their way to zstd. What stays per sample is a few small headers and the zstd
frame.

Anything the batch path does not cover (a 1-D sensor, coordinates outside the sensor, columns of
different lengths) goes through :func:`~loader.format.encode_sample` one sample at a time, which raises
the same errors it always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np
import zstandard

from loader import pixels
from loader.format import _COLUMN_DTYPES, _smallest, compress_frame, encode_label, encode_sample
from loader.sampletar import (  # the tar header writer is private to the format; this module writes the same tar
    EVENTS_SUFFIX,
    LABEL_SUFFIX,
    TAR_BLOCK,
    _fast_tar_header,
    check_key,
)
from shardgen.datasets.base import CutSample


def _byte_planes(values: np.ndarray, k: int) -> list[np.ndarray]:
    """The ``k`` lowest little-endian bytes of every value, one contiguous ``uint8`` array per byte."""
    if values.size == 0:
        return [np.zeros(0, np.uint8)] * k
    little = values.astype(values.dtype.newbyteorder("<"), copy=False)  # a no-op on little-endian machines
    raw = little.view(np.uint8).reshape(values.size, values.itemsize)
    return [np.ascontiguousarray(raw[:, j]) for j in range(k)]


def _joined(columns: list[np.ndarray], dtype: Any = None) -> np.ndarray:
    """The columns one after the other: a view when they already lie back to back in one array (the samples of a
    batch cut from one buffer), else a new array (of ``dtype`` when given)."""
    first = columns[0]
    base = first.base
    if (isinstance(base, np.ndarray) and base.ndim == 1 and base.flags.c_contiguous and base.dtype == first.dtype
            and (dtype is None or first.dtype == dtype)):
        origin = base.__array_interface__["data"][0]
        start = end = first.__array_interface__["data"][0] - origin
        for c in columns:
            if (c.base is not base or c.dtype != first.dtype or not c.flags.c_contiguous
                    or c.__array_interface__["data"][0] - origin != end):
                break
            end += c.nbytes
        else:
            return base[start // first.itemsize : end // first.itemsize]
    if dtype is None:
        return np.concatenate(columns)
    return np.concatenate(columns, dtype=dtype, casting="unsafe")


def _fits_sensor(x: np.ndarray, y: np.ndarray, h: int, w: int) -> bool:
    if x.size == 0:
        return True
    if (x.dtype.kind != "u" and int(x.min()) < 0) or (y.dtype.kind != "u" and int(y.min()) < 0):
        return False
    return int(x.max()) < w and int(y.max()) < h


def encode_frames(samples: Sequence[CutSample], sensor_size: Sequence[int], cctx: zstandard.ZstdCompressor
                  ) -> list[bytes]:
    """The compressed shard frame of every sample, equal to ``encode_sample(s.key, s.t, s.x, s.y, s.p, s.meta,
    sensor_size, cctx)`` for each ``s`` (format version 3 on a 2-D sensor; other cases are passed to it)."""
    if len(sensor_size) != 2 or not samples:
        return [_one(s, sensor_size, cctx) for s in samples]
    h, w = int(sensor_size[0]), int(sensor_size[1])
    counts = np.fromiter((len(s.t) for s in samples), np.int64, len(samples))
    for s, n in zip(samples, counts.tolist(), strict=True):
        if s.y is None or s.p is None or not (len(s.x) == len(s.y) == len(s.p) == n):
            return [_one(s, sensor_size, cctx) for s in samples]  # the per-sample path names the problem
    x = _joined([s.x for s in samples])
    y = _joined([s.y for s in samples])
    if not _fits_sensor(x, y, h, w):
        return [_one(s, sensor_size, cctx) for s in samples]
    total = int(counts.sum())
    starts = np.zeros(len(samples) + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    t = _joined([s.t for s in samples], np.int64)
    p = _joined([s.p for s in samples])
    pix = pixels.pack_pixels(x, y, p, h, w)
    del x, y, p
    pix_code = _smallest(0, 2 * h * w - 1)
    pix_planes = _byte_planes(pix, int(pix_code[1]))
    # Deltas of the whole batch; those across a sample boundary are computed but never used.
    dt = np.empty(max(total, 1), np.int64)
    dt[-1] = 0
    np.subtract(t[1:], t[:-1], out=dt[: max(total - 1, 0)])
    inner = counts >= 2  # samples that have deltas: [start, start + n - 1) in dt
    first, last = starts[:-1][inner], starts[1:][inner] - 1
    codes = ["u1"] * len(samples)
    if first.size:
        bounds = np.empty(2 * first.size, np.int64)
        bounds[0::2], bounds[1::2] = first, last
        lows = np.minimum.reduceat(dt, bounds)[0::2].tolist()
        highs = np.maximum.reduceat(dt, bounds)[0::2].tolist()
        for i, lo, hi in zip(np.flatnonzero(inner).tolist(), lows, highs, strict=True):
            codes[i] = _smallest(lo, hi)
    dt_planes = _byte_planes(dt, max(int(c[1]) for c in codes))
    t0s = t[np.minimum(starts[:-1], total - 1)].tolist() if total else [0] * len(samples)
    # The events payload is the msgpack map {n, t0, dt_dtype, dt, hw, pix_dtype, pix} (loader.format.encode_events),
    # written out here so that the column bytes are copied once, straight from the planes into the sample's tar.
    middle = b"".join(msgpack.packb(v, use_bin_type=True) for v in ("hw", [h, w], "pix_dtype", pix_code, "pix"))
    pix_k = len(pix_planes)
    frames = []
    for i, s in enumerate(samples):
        a, n = int(starts[i]), int(counts[i])
        code = codes[i]
        k = int(code[1]) if n > 1 else 0
        head = b"".join((_MAP_HEAD, msgpack.packb(n), _T0_KEY, msgpack.packb(t0s[i] if n else 0), _DT_DTYPE_KEY,
                         _CODE_VALUE[code], _DT_KEY, _bin_header(k * (n - 1))))
        size = len(head) + k * (n - 1) + len(middle) + len(_bin_header(pix_k * n)) + pix_k * n
        check_key(s.key)
        label = encode_label(s.meta)
        parts = [_fast_tar_header(s.key + EVENTS_SUFFIX, size), head]
        parts += [plane[a : a + n - 1] for plane in dt_planes[:k]]
        parts += [middle, _bin_header(pix_k * n)]
        parts += [plane[a : a + n] for plane in pix_planes]
        parts += [_PADS[-size % TAR_BLOCK], _fast_tar_header(s.key + LABEL_SUFFIX, len(label)), label,
                  _PADS[-len(label) % TAR_BLOCK]]
        frames.append(compress_frame(b"".join(parts), cctx))
    return frames


_MAP_HEAD = msgpack.Packer().pack_map_header(7)  # the map of 7 entries, its first key below
_T0_KEY, _DT_DTYPE_KEY, _DT_KEY = (msgpack.packb(k) for k in ("t0", "dt_dtype", "dt"))
_MAP_HEAD += msgpack.packb("n")
_CODE_VALUE = {code: msgpack.packb(code) for code in _COLUMN_DTYPES}
_PADS = [bytes(k) for k in range(TAR_BLOCK)]


def _bin_header(n: int) -> bytes:
    """msgpack's header of a ``bin`` of ``n`` bytes (the shortest form, as ``msgpack.packb`` writes it)."""
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _one(s: CutSample, sensor_size: Sequence[int], cctx: Any) -> bytes:
    return encode_sample(s.key, s.t, s.x, s.y, s.p, s.meta, tuple(sensor_size), cctx)
