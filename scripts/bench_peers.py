"""Benchmark: eventshard's raw readers and frames next to the Rust tools faery and evlib, in one run.

Reads EVT 2.0, Prophesee DAT (CD) and AEDAT 4 files with ``shardgen.formats.read_events``, ``faery``
(``events_stream_from_file(...).to_array()``) and ``evlib`` (``load_events(...).collect()``), each from the page
cache, best of repeated runs, one process (malloc set up as in shardgen's workers,
``loader.allocator.keep_freed_memory``); then builds count frames of the EVT 2.0 events: eventshard
(``loader.pixels``: pack + one ``bincount`` per frame, SpikingJelly's ``split_by="time"``) against
``evlib.create_event_frame`` (tonic's ``n_time_bins``). faery's frames are rendered images (decay and colour
map), not counts: no frame row for it. A tool that refuses a file gets its error in the table.

Files: generated EVT 2.0 and DAT (``--events`` events, 640 x 480, written vectorised from the format's word
layout) and the real files of ``../shared/realdata`` (skipped when absent). Both peers are bench-only
dependencies (``pip install faery evlib``); evlib imports torchvision, which needs the same CPU-torch work-around
as SpikingJelly (``tests/sjcompat.py``).

    python scripts/bench_peers.py --events 5000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_readers import REALDATA, best_seconds  # noqa: E402

W, H = 640, 480
FRAMES = 10


def write_evt2(path: Path, t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> None:
    """An EVT 2.0 RAW file: ``% evt 2.0`` header, a TIME_HIGH word (type 0x8) wherever ``t >> 6`` changes,
    CD words (type ``p``, bits 27-22 ``t & 63``, 21-11 ``x``, 10-0 ``y``)."""
    high = t >> 6
    change = np.ones(len(t), bool)
    change[1:] = high[1:] != high[:-1]
    cd = (p.astype(np.uint32) << 28) | ((t & 0x3F).astype(np.uint32) << 22) | (x.astype(np.uint32) << 11) | y
    words = np.empty(len(t) + int(change.sum()), "<u4")
    pos = np.arange(len(t)) + np.cumsum(change)  # each event after its TIME_HIGH words
    words[pos] = cd
    words[pos[change] - 1] = (0x8 << 28) | (high[change] & 0x0FFFFFFF).astype(np.uint32)
    path.write_bytes(f"% evt 2.0\n% format EVT2;height={H};width={W}\n% geometry {W}x{H}\n% end\n".encode()
                     + words.tobytes())


def write_dat(path: Path, t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> None:
    """A Prophesee DAT file of CD events (type 0x0C, 8 bytes): header lines, then ``(uint32 t, uint32 w)``
    with ``w = x | y << 14 | p << 28``."""
    rec = np.empty(len(t), [("t", "<u4"), ("w", "<u4")])
    rec["t"] = t
    rec["w"] = x.astype(np.uint32) | (y.astype(np.uint32) << 14) | (p.astype(np.uint32) << 28)
    head = f"% Data file containing CD events.\n% Version 2\n% Width {W}\n% Height {H}\n".encode()
    path.write_bytes(head + bytes([0x0C, 8]) + rec.tobytes())


def _events(n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    t = np.cumsum(rng.integers(0, 3, n)).astype(np.int64)
    return t, rng.integers(0, W, n).astype(np.uint16), rng.integers(0, H, n).astype(np.uint16), \
        rng.integers(0, 2, n).astype(np.uint8)


def _peers() -> tuple[Any, Any]:
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()  # declares torchvision's operators: evlib imports torchvision
    import evlib
    import faery

    return faery, evlib


def _time(fn: Callable[[], Any], budget: float) -> tuple[float | None, Any, str]:
    try:
        secs, out = best_seconds(fn, budget)
        return secs, out, ""
    except Exception as exc:  # a peer refusing a file is a result, not a crash
        return None, None, f"{type(exc).__name__}: {str(exc)[:60]}"


def _rate(n: int, secs: float | None) -> str:
    return f"{n / secs:13,.0f}" if secs else f"{'—':>13}"


def _ratio(theirs: float | None, ours: float | None) -> str:
    """How many times faster eventshard is (their seconds / ours)."""
    return f"{theirs / ours:8.2f}x" if theirs and ours else f"{'—':>9}"


def run(n_events: int, budget: float) -> None:
    """Print the reader table and the frame table."""
    from loader import frames as FR
    from loader import pixels as P
    from loader.allocator import keep_freed_memory
    from shardgen.formats import read_events

    faery, evlib = _peers()
    keep_freed_memory()  # as in shardgen's workers: freed buffers are reused, not faulted in again per read
    tmp = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    try:
        t, x, y, p = _events(n_events)
        write_evt2(tmp / "gen.raw", t, x, y, p)
        write_dat(tmp / "gen_cd.dat", t, x, y, p)
        files = [("EVT 2.0 (generated)", "evt2", tmp / "gen.raw"), ("DAT CD (generated)", "dat", tmp / "gen_cd.dat")]
        for folder, name, label, fmt in [("prophesee_evt2", "evt2_sample.raw", "EVT 2.0 (real)", "evt2"),
                                         ("ncars", "NCARS_obj_004397_td.dat", "DAT 2D (real N-CARS)", "dat"),
                                         ("aedat4", "davis.aedat4", "AEDAT 4 (real DAVIS346)", "aedat4")]:
            if (REALDATA / folder / name).is_file():
                files.append((label, fmt, REALDATA / folder / name))
        print(f"cores: {os.cpu_count()}; one process; best of repeated runs ({budget} s each) from the page cache")
        print(f"{'file':<26} {'events':>11} {'eventshard ev/s':>16} {'faery ev/s':>13} {'evlib ev/s':>13} "
              f"{'vs faery':>9} {'vs evlib':>9}  notes")
        ours_evt2 = None
        for label, fmt, path in files:
            ours_s, ev, _ = _time(lambda path=path, fmt=fmt: read_events(path, format=fmt), budget)
            n = len(ev)
            if path.name == "gen.raw":
                ours_evt2 = {"t": ev.t, "x": ev.x, "y": ev.y, "p": ev.p}
                assert np.array_equal(ev.t, t) and np.array_equal(ev.x, x), "the generated file does not read back"
            fa_s, fa, fa_err = _time(lambda path=path: faery.events_stream_from_file(path, dimensions_fallback=(W, H))
                                     .to_array(), budget)
            ev_s, el, ev_err = _time(lambda path=path: evlib.load_events(str(path)).collect(), budget)
            notes = []
            if fa is not None and len(fa) != n:
                notes.append(f"faery {len(fa):,} events")
            if el is not None and el.shape[0] != n:
                notes.append(f"evlib {el.shape[0]:,} events")
            notes += [f"faery {fa_err}"] if fa_err else []
            notes += [f"evlib {ev_err}"] if ev_err else []
            print(f"{label:<26} {n:>11,} {n / ours_s:16,.0f} {_rate(n, fa_s)} {_rate(n, ev_s)} "
                  f"{_ratio(fa_s, ours_s)} {_ratio(ev_s, ours_s)}  " + "; ".join(notes))
        print()
        ev = ours_evt2
        n = len(ev["t"])

        def ours_frames() -> np.ndarray:
            pix = P.pack_pixels(ev["x"], ev["y"], ev["p"], H, W)
            dt = np.diff(ev["t"]).astype(np.uint32)
            return P.integrate_packed({"pix": pix, "dt": dt}, H, W, "time", FRAMES, None)

        ours_s, frames, _ = _time(ours_frames, budget)
        ref = FR.integrate_events_by_fixed_frames_number(ev, "time", FRAMES, H, W)
        df = evlib.load_events(str(tmp / "gen.raw")).collect()
        ev_s, _, ev_err = _time(lambda: evlib.create_event_frame(df, H, W, n_time_bins=FRAMES), budget)
        print(f"Frames of the generated EVT 2.0 events ({n:,}), T={FRAMES}, {H}x{W}, from decoded events:")
        print(f"{'method':<66} {'events/s':>13} {'ms':>8}")
        print(f"{'eventshard loader.pixels (pack + bincount), split_by=time':<66} {n / ours_s:13,.0f} "
              f"{ours_s * 1e3:8.1f}   equal to loader.frames: {'yes' if np.array_equal(frames, ref) else 'NO'}")
        if ev_s:
            print(f"{'evlib create_event_frame(n_time_bins) (sparse long table)':<66} {n / ev_s:13,.0f} "
                  f"{ev_s * 1e3:8.1f}   ratio eventshard/evlib: {ev_s / ours_s:.2f}x")
        else:
            print(f"evlib create_event_frame: {ev_err}")
        print("faery: frames are rendered images (decay, colour map), not counts; not compared")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """Parse flags and run."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=5_000_000, help="events of the generated files")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of repeated runs per reader and file")
    args = ap.parse_args()
    run(args.events, args.budget)


if __name__ == "__main__":
    main()
