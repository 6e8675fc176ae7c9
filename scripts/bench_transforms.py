"""Benchmark: each event transform of ``loader.transforms`` against tonic 1.7.0's equivalent, per event.

One 300 k-event sample (128 × 128 sensor, 1.5 s, sorted times), pinned to one core. Our transforms
get the columns (``x``, ``y`` uint8, ``p`` uint8, ``t`` int64) as ``EventShardDataset`` yields them;
tonic gets the same events as its structured records (``tonic.io.events_struct``), as
``data_type="structured"`` yields them. The two are timed in alternating rounds (each repeated for
0.3 s within a round, at least once) and the best time of each counts, so a busy machine slows both.
Ours run with freed memory kept, as in a DataLoader worker of ``EventShardDataset``
(:func:`loader.allocator.keep_freed_memory`); tonic is timed both so (in this process) and with
glibc's default malloc (in a child process), and its better time counts (its ``SpatialJitter`` is
several times slower with the worker setting). Prints one table: ns per event for both, the ratio,
and the target where the issue sets one
(≥ 10× where tonic loops in Python, ≥ 5× where it is vectorised).

    python scripts/bench_transforms.py [--events 300000] [--core 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

H, W = 128, 128


def best_seconds(fn: Callable[[], Any], budget: float = 0.6, max_runs: int = 30) -> float:
    """Best wall time of ``fn()`` over repeated runs (up to ``max_runs``, until ``budget`` seconds are spent)."""
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 1 or (spent < budget and runs < max_runs):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best


def sample(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {"t": np.sort(r.integers(0, 1_500_000, n)).astype(np.int64), "x": r.integers(0, W, n).astype(np.uint8),
            "y": r.integers(0, H, n).astype(np.uint8), "p": r.integers(0, 2, n).astype(np.uint8)}


def pairs() -> list[tuple[str, Any, Any, float | None]]:
    """``(name, ours, tonic's, target ratio)``."""
    import tonic.transforms as TT

    import loader.transforms as T

    s3 = (W, H, 2)  # tonic's sensor size: (x, y, p)
    return [
        ("Denoise(10 ms)", T.Denoise(10_000), TT.Denoise(filter_time=10_000), 10.0),
        ("RefractoryPeriod(1 ms)", T.RefractoryPeriod(1_000), TT.RefractoryPeriod(delta=1_000), 10.0),
        ("DropEvent(0.2)", T.DropEvent(0.2), TT.DropEvent(p=0.2), 5.0),
        ("SpatialJitter(1)", T.SpatialJitter(1.0), TT.SpatialJitter(s3, var_x=1, var_y=1, clip_outliers=True), 5.0),
        ("RandomFlipLR(p=1)", T.RandomFlipLR(1.0), TT.RandomFlipLR(s3, p=1.0), 5.0),
        ("TimeJitter(100), no sort", T.TimeJitter(100.0, sort=False), TT.TimeJitter(std=100), 5.0),
        ("TimeJitter(100), sorted", T.TimeJitter(100.0), TT.TimeJitter(std=100, sort_timestamps=True), None),
        ("RandomFlipUD(p=1)", T.RandomFlipUD(1.0), TT.RandomFlipUD(s3, p=1.0), None),
        ("RandomFlipPolarity(p=1)", T.RandomFlipPolarity(1.0), TT.RandomFlipPolarity(p=1.0), None),
        ("DropByTime(0.2)", T.DropByTime(0.2), TT.DropEventByTime(duration_ratio=0.2), None),
        ("DropByArea(0.2)", T.DropByArea(0.2), TT.DropEventByArea(s3, area_ratio=0.2), None),
        ("TimeSkew(1.1, 5)", T.TimeSkew(1.1, 5), TT.TimeSkew(coefficient=1.1, offset=5), None),
        ("RandomCrop(100)", T.RandomCrop(100), TT.RandomCrop(s3, target_size=(100, 100)), None),
        ("CenterCrop(100)", T.CenterCrop(100), TT.CenterCrop(s3, size=100), None),
        ("Downsample(0.5)", T.Downsample(0.5), TT.Downsample(spatial_factor=0.5), None),
        ("UniformNoise(30 k)", T.UniformNoise(30_000), TT.UniformNoise(s3, n=30_000), None),
    ]


def _tonic_alone(n: int, rounds: int) -> dict[str, float]:
    """Seconds of each tonic transform in this process, with glibc's default malloc (the child's job)."""
    import tonic

    records = np.zeros(n, dtype=tonic.io.events_struct)
    for c, v in sample(n).items():
        records[c] = v
    np.random.seed(0)
    return {name: min(best_seconds(lambda t=theirs: t(records), budget=0.3) for _ in range(rounds))
            for name, _, theirs, _ in pairs()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000, help="events in the sample (default 300000)")
    ap.add_argument("--core", type=int, default=0, help="CPU core to pin this process to (default 0)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds per transform (default 3)")
    ap.add_argument("--tonic-alone", action="store_true", help=argparse.SUPPRESS)  # the child: tonic, default malloc
    args = ap.parse_args(argv)
    os.sched_setaffinity(0, {args.core})
    if args.tonic_alone:
        print(json.dumps(_tonic_alone(args.events, args.rounds)))
        return 0
    child = subprocess.run([sys.executable, __file__, "--tonic-alone", "--events", str(args.events), "--core",
                            str(args.core), "--rounds", str(args.rounds)], capture_output=True, text=True, check=True)
    tonic_default_malloc = json.loads(child.stdout)
    import tonic

    from loader.allocator import keep_freed_memory

    keep_freed_memory()  # as in the DataLoader workers where the transforms run

    cols = sample(args.events)
    records = np.zeros(args.events, dtype=tonic.io.events_struct)
    for c in "txyp":
        records[c] = cols[c]
    rng = np.random.default_rng(0)
    np.random.seed(0)
    n = args.events
    print(f"{n} events, {H}x{W} sensor, one core (#{args.core}); ns per event, best of {args.rounds} rounds")
    print(f"{'transform':26s} {'eventshard':>11s} {'tonic 1.7.0':>12s} {'ratio':>8s} {'target':>7s}  met")
    for name, ours, theirs, target in pairs():
        a = b = float("inf")
        for _ in range(args.rounds):  # alternate, so that a busy machine slows both alike
            a = min(a, best_seconds(lambda ours=ours: ours(cols, sensor_size=(H, W), rng=rng), budget=0.3))
            b = min(b, best_seconds(lambda theirs=theirs: theirs(records), budget=0.3))
        b = min(b, tonic_default_malloc[name])  # tonic's better setting counts
        a, b = a / n * 1e9, b / n * 1e9
        ratio = b / a
        met = "" if target is None else ("yes" if ratio >= target else "NO")
        goal = "" if target is None else f"{target:.0f}x"
        print(f"{name:26s} {a:11.2f} {b:12.2f} {ratio:7.1f}x {goal:>7s}  {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
