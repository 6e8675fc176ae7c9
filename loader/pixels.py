"""The packed pixel column of format version 3, and frames integrated straight from it.

A 2-D sample of version 3 stores, instead of ``x``, ``y`` and ``p``, one column
``pix = (p·H + y)·W + x`` per event (``p`` counted as 0 or 1; see ``docs/FORMAT.md``). The flat
index of an event in a two-channel frame ``[2, H, W]`` *is* ``pix``, so a frame is one count
(``np.add.at`` into the ``float32`` frame) over a contiguous slice of the column: no repeat pass and
no index arithmetic per event. Times enter only through segment boundaries, which are searched on the stored time deltas
block by block (:func:`deltas_searchsorted`), so ``split_by="time"`` and ``duration`` need no
full ``int64`` time column either.

Every function here gives the values of its counterpart in :mod:`loader.frames` (SpikingJelly
2.0.0's semantics, ``docs/SEMANTICS.md``); ``tests/test_pixels.py`` checks that. numpy only.
"""

from __future__ import annotations

import math

import numpy as np

from loader import frames as _frames

_EXACT_F32 = 1 << 24  # events per frame up to which float32 counting cannot round
_BLOCK = 256  # deltas per block of the boundary search (fastest of 128 … 2048 on DVS128 Gesture samples)


def pixel_dtype(h: int, w: int) -> np.dtype:
    """The unsigned type :func:`pack_pixels` returns for an ``h`` x ``w`` sensor (``uint16`` up to 2·H·W = 65536)."""
    return np.dtype(np.uint16 if 2 * h * w <= 1 << 16 else np.uint32 if 2 * h * w <= 1 << 32 else np.uint64)


def pack_pixels(x: np.ndarray, y: np.ndarray, p: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(p·H + y)·W + x`` per event, ``p != 0`` counting as 1; coordinates must lie inside the sensor."""
    dtype = pixel_dtype(h, w)
    pix = np.not_equal(p, 0).astype(dtype)
    pix *= dtype.type(h)
    np.add(pix, y, out=pix, casting="unsafe")
    pix *= dtype.type(w)
    np.add(pix, x, out=pix, casting="unsafe")
    return pix


def unpack_pixels(pix: np.ndarray, h: int, w: int, xy_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, p)`` of a pixel column: ``x``, ``y`` as ``xy_dtype``, ``p`` as ``uint8`` 0/1."""
    rows, x = np.divmod(pix, pix.dtype.type(w))
    p, y = np.divmod(rows, pix.dtype.type(h))
    return x.astype(xy_dtype), y.astype(xy_dtype), p.astype(np.uint8)


def block_starts(dt: np.ndarray) -> np.ndarray | None:
    """``t'`` at every :data:`_BLOCK`-th event and, last, ``t'[N - 1]`` (``int64``), from the deltas ``dt``;
    ``None`` where a plain search is as good (few deltas) or needed (signed deltas)."""
    n1 = int(dt.size)
    if dt.dtype.kind != "u" or n1 < 4 * _BLOCK:
        return None
    full = n1 // _BLOCK * _BLOCK
    acc = np.uint32 if dt.itemsize <= 2 else np.uint64  # a block of 16-bit deltas cannot overflow 32 bits
    sums = np.zeros(-(-n1 // _BLOCK) + 1, np.int64)
    sums[1 : full // _BLOCK + 1] = dt[:full].reshape(-1, _BLOCK).sum(axis=1, dtype=acc)
    if full < n1:
        sums[-1] = dt[full:].sum(dtype=np.int64)
    return np.cumsum(sums, out=sums)


def deltas_searchsorted(dt: np.ndarray, targets: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
    """``np.searchsorted(t', targets, side="left")`` for ``t' = [0, cumsum(dt)]`` without building ``t'``.

    ``dt`` are the ``N - 1`` time deltas of one sample (any integer type), ``targets`` ascending ``int64``,
    ``starts`` :func:`block_starts` if already at hand. The deltas are summed per block of :data:`_BLOCK`
    (vectorised reductions); only the blocks that hold a target are expanded. Signed deltas (times that
    may decrease) build ``t'`` and search it as it is, like the reference.
    """
    targets = np.asarray(targets, dtype=np.int64)
    starts = block_starts(dt) if starts is None else starts
    if starts is None:
        return np.searchsorted(relative_times(dt), targets, side="left")
    n1, blocks_n = int(dt.size), starts.size - 1
    blocks = np.searchsorted(starts, targets, side="left") - 1
    out = np.where(blocks < 0, 0, n1 + 1).astype(np.int64)
    inside = (blocks >= 0) & (blocks < blocks_n)
    b = blocks[inside]
    if b.size:
        idx = b[:, None] * _BLOCK + np.arange(_BLOCK)
        vals = dt[np.minimum(idx, n1 - 1)].astype(np.int64)
        vals[idx >= n1] = 0  # past the end: t' stays at its last value, which is >= the target
        local = np.cumsum(vals, axis=1)
        local += starts[b][:, None]
        out[inside] = b * _BLOCK + 1 + (local < targets[inside][:, None]).sum(axis=1)
    return out


def relative_times(dt: np.ndarray) -> np.ndarray:
    """``t - t[0]`` (``int64``, ``N`` values) from the ``N - 1`` deltas."""
    t = np.zeros(dt.size + 1, np.int64)
    np.cumsum(dt, dtype=np.int64, out=t[1:])
    return t


def segments(dt: np.ndarray | None, n: int, split_by: str | None, frames_number: int | None,
             duration: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(j_l, j_r)`` of one sample of ``n`` events, as :mod:`loader.frames` computes them from ``t``.

    ``dt`` (the deltas) may be ``None`` for ``split_by="number"``.
    """
    if duration is None:
        if split_by == "number":
            return _frames.cal_fixed_frames_number_segment_index(np.broadcast_to(np.int64(0), (n,)), "number",
                                                                 frames_number)
        if split_by != "time":
            raise ValueError(f"split_by must be one of {_frames.SPLIT_BY}, got {split_by!r}")
        T = int(frames_number)
        if T < 1:
            raise ValueError(f"frames_number must be >= 1, got {frames_number}")
        if n == 0:
            return np.zeros(T, np.int64), np.zeros(T, np.int64)
        starts = block_starts(dt)
        step = _span(dt, starts) // T
        j_l = deltas_searchsorted(dt, np.arange(T, dtype=np.int64) * step, starts)
        j_r = np.empty_like(j_l)
        j_r[:-1] = j_l[1:]
        j_r[-1] = n
        return j_l, j_r
    if not (isinstance(duration, (int, float, np.integer, np.floating)) and 0 < duration < math.inf):
        raise ValueError(f"duration must be a positive finite number, got {duration!r}")
    if n == 0:
        return np.zeros(1, np.int64), np.zeros(1, np.int64)
    starts = block_starts(dt)
    span = _span(dt, starts)
    T = max(1, math.ceil(span / duration))  # the reference's float expression
    k = np.arange(1, T, dtype=np.int64)
    if T == 1:
        bounds = k
    elif float(duration).is_integer():
        bounds = deltas_searchsorted(dt, k * int(duration), starts)
    else:
        bounds = np.searchsorted(relative_times(dt) // duration, k, side="left")
    j_l = np.zeros(T, np.int64)
    j_r = np.full(T, n, np.int64)
    j_l[1:] = bounds
    j_r[:-1] = bounds
    return j_l, j_r


def _span(dt: np.ndarray, starts: np.ndarray | None) -> int:
    """``t[N-1] - t[0]``."""
    return int(starts[-1]) if starts is not None else int(dt.sum(dtype=np.int64))


def integrate_pixel_segments(pix: np.ndarray, h: int, w: int, j_l: np.ndarray, j_r: np.ndarray) -> np.ndarray:
    """Frames ``[T, 2, H, W]`` (``float32``): frame ``i`` counts the pixels of events ``j_l[i] … j_r[i]-1``.

    The same values and checks as :func:`loader.frames.integrate_events_segments_to_frames` on the
    unpacked columns. Each frame is counted straight into the ``float32`` result with ``np.add.at`` (its
    fast path: ``intp`` indices, a scalar), exact while a frame holds at most 2**24 events; a larger frame
    (or signed or 64-bit indices) goes through ``np.bincount``.

    Raises
    ------
    ValueError
        Segments out of order or outside ``[0, N]``, or a pixel index ``>= 2·H·W``.
    """
    h, w = int(h), int(w)
    if h < 1 or w < 1:
        raise ValueError(f"frame size must be positive, got H={h}, W={w}")
    j_l = np.asarray(j_l, dtype=np.int64).reshape(-1)
    j_r = np.asarray(j_r, dtype=np.int64).reshape(-1)
    T, bins = j_l.size, 2 * h * w
    if j_r.size != T:
        raise ValueError(f"j_l and j_r differ in length: {T} != {j_r.size}")
    if T == 0:
        return np.empty((0, 2, h, w), np.float32)
    if j_l[0] < 0 or j_r[-1] > len(pix) or np.any(j_l > j_r) or np.any(j_r[:-1] > j_l[1:]):
        raise ValueError("segments must satisfy 0 <= j_l[i] <= j_r[i] <= j_l[i+1] and j_r[-1] <= len(x)")
    out = np.zeros((T, bins), np.float32)
    exact = pix.dtype.kind == "u" and pix.dtype.itemsize <= 4  # never negative as intp (ufunc.at would wrap them)
    one = np.float32(1)
    for i, (a, b) in enumerate(zip(j_l.tolist(), j_r.tolist(), strict=True)):
        if b <= a:
            continue
        if exact and b - a <= _EXACT_F32:  # float32 sums of ones stay exact: no pixel can pass 2**24
            try:  # ufunc.at's fast path (intp indices, a scalar): counts land in the float32 frame directly
                np.add.at(out[i], pix[a:b].astype(np.intp), one)
            except IndexError:
                raise ValueError(f"pixel indices must lie in [0, {bins}) for a {h}x{w} sensor, "
                                 f"found {int(pix[a:b].max())}") from None
            continue
        counts = np.bincount(pix[a:b], minlength=bins)
        if counts.size > bins:  # bincount grows past minlength exactly when an index is too large
            raise ValueError(f"pixel indices must lie in [0, {bins}) for a {h}x{w} sensor, found {counts.size - 1}")
        out[i] = counts
    return out.reshape(T, 2, h, w)


def integrate_packed(events: dict[str, np.ndarray], h: int, w: int, split_by: str | None,
                     frames_number: int | None, duration: float | None) -> np.ndarray:
    """Frames of one sample decoded as ``{"pix"[, "dt"]}`` (:func:`loader.format.decode_events`), by
    ``frames_number`` with ``split_by`` or by ``duration``: SpikingJelly's frames, value for value."""
    pix = events["pix"]
    j_l, j_r = segments(events.get("dt"), len(pix), split_by, frames_number, duration)
    return integrate_pixel_segments(pix, h, w, j_l, j_r)
