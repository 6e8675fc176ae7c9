"""Cut one recording into its samples: the ``folder`` dataset's worker.

:func:`cut_streaming` cuts time windows while the recording is read in chunks; :func:`cut_whole`
reads it whole (whole-recording samples, and recordings whose time stamps go back).

Memory is bounded by the chunk plus the events of the windows still open, whatever the recording's
length. Two shapes of a recording's samples stream this way:

- every sample has its own window known up front (labels CSV rows with ``start_us``/``end_us``,
  optionally cut into fixed windows inside the row);
- fixed windows over the whole recording (``--window-us`` with class folders, or one labels row
  without times), starting at the recording's first event.

A sample is written as soon as the events up to its end have been read; its place in the dataset's
order travels with it (:attr:`~shardgen.datasets.base.CutSample.rank`). Time stamps that go back
raise :class:`~shardgen.datasets.base.RestartCut`: such a recording is cut again from a whole read
(``docs/RECORDINGS.md``). The rules of windows and keys: ``shardgen/datasets/folder.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from shardgen.datasets.base import CutRecording, CutSample, DatasetError, RestartCut, first_outside
from shardgen.formats import FormatError, iter_events, read_events

CHUNK_EVENTS = 1 << 20


def window_starts(a: int, b: int, window_us: int, stride_us: int) -> np.ndarray:
    """Starts ``a + k·S`` of the fixed windows ``[s, s + W)`` that fit inside ``[a, b)`` (``s + W <= b``)."""
    if b - a < window_us:
        return np.zeros(0, np.int64)
    return a + stride_us * np.arange((b - a - window_us) // stride_us + 1, dtype=np.int64)


def streams(ctx: dict[str, Any]) -> bool:
    """Whether a task's samples can be cut while reading (else the recording is read whole)."""
    segments = ctx["segments"]
    if all(seg[3] is not None for seg in segments):
        return True
    return len(segments) == 1 and ctx["window"] is not None


class _Buffer:
    """The chunks read and still needed: events from the earliest open window on."""

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, ...]] = []

    def add(self, cols: tuple[np.ndarray, ...]) -> None:
        if cols[0].size:
            self.chunks.append(cols)

    def drop_before(self, t: int) -> None:
        """Forget the chunks whose events all lie before ``t``."""
        while self.chunks and int(self.chunks[0][0][-1]) < t:
            self.chunks.pop(0)

    def window(self, start: int, end: int) -> tuple[np.ndarray, ...]:
        """Copies of the events with ``start <= t < end`` (times non-decreasing)."""
        parts = []
        for cols in self.chunks:
            lo, hi = np.searchsorted(cols[0], [start, end], side="left")
            if lo < hi:
                parts.append(tuple(c[lo:hi] for c in cols))
        if not parts:
            like = self.chunks[0] if self.chunks else None
            return tuple(np.zeros(0, c.dtype) for c in like) if like else _empty()
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def _empty() -> tuple[np.ndarray, ...]:
    return (np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0, np.uint8))


def cut_streaming(ctx: dict[str, Any], allow_truncated: bool, result: CutRecording,
                  chunk_events: int = CHUNK_EVENTS) -> Iterator[CutSample]:
    """Yield the task's samples as their windows close; fill ``result``'s counts at the end.

    Raises
    ------
    DatasetError
        An unreadable file, an event outside the sensor, a labelled window outside the recording.
    RestartCut
        Time stamps go back somewhere (the worker then cuts the recording from a whole read).
    """
    path, file = ctx["path"], ctx["file"]
    h, w = ctx["sensor_size"]
    window: tuple[int, int] | None = ctx["window"]
    timed = all(seg[3] is not None for seg in ctx["segments"])
    specs = _timed_specs(ctx) if timed else []  # (rank, key, segment, start, end), dataset order
    by_end = sorted(range(len(specs)), key=lambda i: specs[i][4])
    done_ends = 0  # specs[by_end[:done_ends]] are written
    buf = _Buffer()
    n = 0
    t_first: int | None = None
    t_last = -1
    next_k = 0  # whole-recording windows: the next one to close
    skipped: dict[str, int] = {}
    truncated = 0
    warnings: list[str] = []
    empty = 0
    seg = ctx["segments"][0]

    def emit(rank: Any, key: str, segment: tuple[Any, ...], start: int | None, end: int | None,
             cols: tuple[np.ndarray, ...]) -> CutSample | None:
        nonlocal empty
        label, cls, _prefix, _s, _e, row, split = segment
        if split != ctx["split"]:
            return None
        meta: dict[str, Any] = {"label": label, "class": cls, "recording": file, "split": split}
        if start is not None:
            meta["start"], meta["end"] = start, end
        if row is not None:
            meta["row"] = row
        empty += cols[0].size == 0
        return CutSample(key, *cols, meta=meta, rank=rank)

    try:
        chunks = iter_events(path, format=ctx["format"], chunk_events=chunk_events, allow_truncated=allow_truncated)
        for ev in chunks:
            for kind, count in ev.skipped.items():
                skipped[kind] = skipped.get(kind, 0) + int(count)
            truncated += int(ev.truncated_bytes)
            t = ev.t
            if not t.size:
                continue
            i = first_outside(ev.x, ev.y, h, w)
            if i is not None:
                raise DatasetError(f"{path}: event {n + i} at x={int(ev.x[i])}, y={int(ev.y[i])} lies outside the "
                                   f"{h}x{w} (HxW) sensor; pass a larger --sensor")
            if int(t[0]) < t_last or (t.size > 1 and not bool(np.all(t[1:] >= t[:-1]))):
                raise RestartCut(f"{file}: time stamps go back")
            if t_first is None:
                t_first = int(t[0])
            n += int(t.size)
            t_last = int(t[-1])
            buf.add((t, ev.x, ev.y, ev.p))
            if timed:  # every window whose end has been passed is complete
                while done_ends < len(by_end) and specs[by_end[done_ends]][4] <= t_last:
                    rank, key, segment, a, b = specs[by_end[done_ends]]
                    done_ends += 1
                    s = emit(rank, key, segment, a, b, buf.window(a, b))
                    if s is not None:
                        yield s
                open_starts = [specs[j][3] for j in by_end[done_ends:]]
                buf.drop_before(min(open_starts) if open_starts else t_last + 1)
            else:
                assert window is not None
                while t_first + next_k * window[1] + window[0] <= t_last:
                    a = t_first + next_k * window[1]
                    s = emit(next_k, f"{seg[2]}{ctx['stem']}_{next_k}", seg, a, a + window[0],
                             buf.window(a, a + window[0]))
                    next_k += 1
                    if s is not None:
                        yield s
                buf.drop_before(t_first + next_k * window[1])
    except FormatError as exc:
        raise DatasetError(str(exc)) from None

    if timed:
        for _label, _cls, _prefix, start, end, row, _split in ctx["segments"]:
            if n == 0 or end <= (t_first or 0) or start > t_last:
                span = f"events from {t_first} to {t_last} µs" if n else "no events"
                raise DatasetError(
                    f"{ctx['labels_name'] or 'labels CSV'}: row {row}: window [{start}, {end}) µs lies outside "
                    f"{file} ({span}; times are the recording's own, as shardgen.formats.read_events returns them)"
                )
        for j in by_end[done_ends:]:
            rank, key, segment, a, b = specs[j]
            s = emit(rank, key, segment, a, b, buf.window(a, b))
            if s is not None:
                yield s
        warnings += _timed_warnings(ctx)
    else:
        assert window is not None
        a = t_first if n else 0
        for s0 in window_starts(a, t_last + 1, *window)[next_k:].tolist():
            s = emit(next_k, f"{seg[2]}{ctx['stem']}_{next_k}", seg, s0, s0 + window[0],
                     buf.window(s0, s0 + window[0]))
            next_k += 1
            if s is not None:
                yield s
        if next_k == 0:
            warnings.append(f"{file}: {'no events' if not n else f'{t_last + 1 - a} µs'}, shorter than one "
                            f"{window[0]} µs window: no sample")
    first = bool(ctx["first"])
    result.events_read = n if first else 0
    result.empty_windows = int(empty)
    result.truncated_bytes = truncated if first else 0
    result.warnings = (warnings + ([f"{file}: truncated; dropped the last {truncated} bytes"] if truncated else [])
                       if first else [])
    result.skipped_words = skipped if first else {}


def _timed_specs(ctx: dict[str, Any]) -> list[tuple[int, str, tuple[Any, ...], int, int]]:
    """Every timed sample of the recording in the dataset's order: ``(rank, key, segment, start, end)``."""
    window: tuple[int, int] | None = ctx["window"]
    seen: dict[str, int] = {}
    out = []
    for segment in ctx["segments"]:
        _label, cls, prefix, start, end, _row, _split = segment
        bounds = [(start, end)] if window is None else [
            (int(s), int(s) + window[0]) for s in window_starts(start, end, *window).tolist()]
        for a, b in bounds:
            k = seen.get(cls, 0)
            seen[cls] = k + 1
            out.append((len(out), f"{prefix}{ctx['stem']}_{k}", segment, a, b))
    return out


def _timed_warnings(ctx: dict[str, Any]) -> list[str]:
    """The rows shorter than one window (they give no sample)."""
    window = ctx["window"]
    if window is None:
        return []
    return [f"labels row {row}: {end - start} µs, shorter than one {window[0]} µs window: no sample"
            for _l, _c, _p, start, end, row, _s in ctx["segments"] if not window_starts(start, end, *window).size]


def _read(path: str, fmt: str, allow_truncated: bool) -> Any:
    try:
        return read_events(path, format=fmt, allow_truncated=allow_truncated)
    except FormatError as exc:
        raise DatasetError(str(exc)) from None


def cut_whole(ctx: dict[str, Any], allow_truncated: bool = False) -> CutRecording:
    """Read the task's recording whole and cut its samples (whole-recording samples, time stamps that go back).

    Raises
    ------
    DatasetError
        An unreadable file, an event outside the sensor, a labelled window outside the recording.
    """
    path, file = ctx["path"], ctx["file"]
    ev = _read(path, ctx["format"], allow_truncated)
    h, w = ctx["sensor_size"]
    t = ev.t
    n = int(t.size)
    i = first_outside(ev.x, ev.y, h, w)
    if i is not None:
        raise DatasetError(f"{path}: event {i} at x={int(ev.x[i])}, y={int(ev.y[i])} lies outside the "
                           f"{h}x{w} (HxW) sensor; pass a larger --sensor")
    ordered = n < 2 or bool(np.all(t[1:] >= t[:-1]))
    t0 = (int(t[0]) if ordered else int(t.min())) if n else 0
    t_last = (int(t[-1]) if ordered else int(t.max())) if n else -1
    window: tuple[int, int] | None = ctx["window"]
    warnings: list[str] = []

    # every sample of the recording, in row then time order: (segment, start, end) or (segment, None, None)
    plan: list[tuple[int, int | None, int | None]] = []
    for i, (_label, _cls, _prefix, start, end, row, _split) in enumerate(ctx["segments"]):
        if start is not None and (n == 0 or end <= t0 or start > t_last):
            span = f"events from {t0} to {t_last} µs" if n else "no events"
            raise DatasetError(
                f"{ctx['labels_name'] or 'labels CSV'}: row {row}: window [{start}, {end}) µs lies outside {file} "
                f"({span}; times are the recording's own, as shardgen.formats.read_events returns them)"
            )
        if window is None:
            plan.append((i, start, end))
            continue
        a, b = (t0, t_last + 1) if start is None else (start, end)
        starts = window_starts(a, b, *window)
        if not starts.size:
            what = f"labels row {row}" if start is not None else file
            warnings.append(f"{what}: {'no events' if not n else f'{b - a} µs'}, shorter than one "
                            f"{window[0]} µs window: no sample")
        plan.extend((i, int(s), int(s) + window[0]) for s in starts.tolist())

    timed = [(s, e) for _, s, e in plan if s is not None]
    bounds = np.asarray(timed, dtype=np.int64).reshape(-1, 2)
    if ordered:
        lo = np.searchsorted(t, bounds[:, 0], side="left")
        hi = np.maximum(np.searchsorted(t, bounds[:, 1], side="left"), lo)
        order = None
    else:  # time stamps go back somewhere: select on the sorted times, keep file order
        order = np.argsort(t, kind="stable")
        ts = t[order]
        lo = np.searchsorted(ts, bounds[:, 0], side="left")
        hi = np.maximum(np.searchsorted(ts, bounds[:, 1], side="left"), lo)
        warnings.append(f"{file}: time stamps are not monotonic; windows selected on sorted times, in file order")

    samples: list[CutSample] = []
    seen: dict[str, int] = {}
    empty = 0
    j = 0
    for i, start, end in plan:
        label, cls, prefix, _s, _e, row, split = ctx["segments"][i]
        base = prefix + ctx["stem"]
        if start is None:
            key = base
            cols = (t, ev.x, ev.y, ev.p)
        else:
            k = seen.get(cls, 0)
            seen[cls] = k + 1
            key = f"{base}_{k}"
            a, b = int(lo[j]), int(hi[j])
            j += 1
            if order is None:
                cols = (t[a:b], ev.x[a:b], ev.y[a:b], ev.p[a:b])
            else:
                idx = np.sort(order[a:b])
                cols = (t[idx], ev.x[idx], ev.y[idx], ev.p[idx])
        if split != ctx["split"]:
            continue
        meta: dict[str, Any] = {"label": label, "class": cls, "recording": file, "split": split}
        if start is not None:
            meta["start"], meta["end"] = start, end
        if row is not None:
            meta["row"] = row
        empty += cols[0].size == 0
        samples.append(CutSample(key, *cols, meta=meta))
    first = bool(ctx["first"])
    if ev.truncated_bytes and first:
        warnings.append(f"{file}: truncated; dropped the last {ev.truncated_bytes} bytes")
    return CutRecording(
        samples=samples,
        events_read=n if first else 0,
        empty_windows=int(empty),
        truncated_bytes=int(ev.truncated_bytes) if first else 0,
        warnings=warnings if first else [],
        skipped_words=dict(ev.skipped) if first else {},
    )
