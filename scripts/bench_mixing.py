"""Benchmark: what a training run over a class-sorted download sees, and the memory of cutting long recordings.

**Mixing.** Generates an N-MNIST layout download whose zips list the classes one after the other (10 classes,
300–600 files each), converts it with the default shard size and with 1 MiB shards, each with the default
stored order (a seeded permutation) and with ``--sample-order dataset`` (the class-sorted order, what a
reader alone must mix), then streams the train split with ``EventShardDataset``'s defaults through
``DataLoader(batch_size=32, num_workers=2)`` for several ``shuffle_buffer`` sizes. Prints the mean number of
distinct classes per batch and the mean share of a batch's most common class, against a uniform shuffle of
the same labels (targets: distinct ≥ 0.8× uniform, majority ≤ 2× uniform), and checks that every sample comes
exactly once.

**Memory.** Writes one EVT 2.0 recording of ``--events`` million events (and optionally more sizes), cuts it
into 1 s windows with ``shardgen convert folder --window-us 1000000`` and prints the peak RSS summed over the
whole process tree (sampled every 20 ms from ``/proc``). Target: ≤ 1 GiB, whatever the recording's length.

    python scripts/bench_mixing.py --workdir /tmp/bench-mixing
    python scripts/bench_mixing.py --skip-mixing --events 50 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 32
CLASSES = tuple("0123456789")


# --------------------------------------------------------------------------- mixing


def _make_download(raw: Path, seed: int) -> None:
    """Train.zip/Test.zip, 300–600 files per class, classes one after the other."""
    from tests.gen_classfolders import write_nmnist

    if (raw / "Train.zip").exists():
        return
    write_nmnist(raw, per_class=450, classes=CLASSES, seed=seed, max_events=8000)  # ~4000 events, as N-MNIST


def _mixing(label_batches: list[list[int]]) -> tuple[float, float]:
    full = [b for b in label_batches if len(b) == BATCH]
    return (float(np.mean([len(set(b)) for b in full])),
            float(np.mean([Counter(b).most_common(1)[0][1] / len(b) for b in full])))


def _uniform(labels: list[int], rounds: int = 50) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    got = []
    for _ in range(rounds):
        perm = rng.permutation(labels).tolist()
        got.append(_mixing([perm[i : i + BATCH] for i in range(0, len(perm), BATCH)]))
    return float(np.mean([d for d, _ in got])), float(np.mean([m for _, m in got]))


def _stream(out: Path, buffer: int) -> tuple[list[list[int]], list[str]]:
    from torch.utils.data import DataLoader

    from loader import EventShardDataset

    ds = EventShardDataset(out, split="train", return_key=True, shuffle_buffer=buffer)
    dl = DataLoader(ds, batch_size=BATCH, num_workers=2, collate_fn=lambda b: [(int(y), k) for _, y, k in b])
    batches = list(dl)
    return [[y for y, _ in b] for b in batches], [k for b in batches for _, k in b]


def bench_mixing(work: Path, seed: int, buffers: list[int]) -> list[dict]:
    import warnings

    from shardgen.convert import convert

    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    raw = work / "raw"
    _make_download(raw, seed)
    rows = []
    uniform = None
    print(f"{'shards':>8} {'stored order':>13} {'buffer':>7} {'shards n':>8} {'distinct':>9} {'uniform':>8} "
          f"{'ratio':>6} {'majority':>9} {'uniform':>8} {'ratio':>6}  once")
    for shards, size in (("default", None), ("1 MiB", 1 << 20)):
        for order in ("shuffled", "dataset"):
            out = work / f"out-{shards.replace(' ', '')}-{order}"
            if not (out / "index.json").exists():
                kw = {} if size is None else {"shard_size": size}
                convert("n-mnist", raw, out, workers=2, check_md5=False, progress=False, sample_order=order, **kw)
            n_shards = len(json.loads((out / "index.json").read_text())["splits"]["train"]["shards"])
            for buffer in buffers:
                labels, keys = _stream(out, buffer)
                if uniform is None:
                    uniform = _uniform([y for b in labels for y in b])
                distinct, majority = _mixing(labels)
                once = len(keys) == len(set(keys))
                row = {"shards": shards, "order": order, "buffer": buffer, "n_shards": n_shards,
                       "distinct": distinct, "majority": majority, "uniform": uniform, "once": once}
                rows.append(row)
                print(f"{shards:>8} {order:>13} {buffer:>7} {n_shards:>8} {distinct:>9.2f} {uniform[0]:>8.2f} "
                      f"{distinct / uniform[0]:>6.2f} {majority:>9.3f} {uniform[1]:>8.3f} "
                      f"{majority / uniform[1]:>6.2f}  {'yes' if once else 'NO'}")
    print("targets (default stored order): distinct ratio >= 0.8, majority ratio <= 2.0, every sample once")
    return rows


# --------------------------------------------------------------------------- memory


def write_evt2(path: Path, millions: int, seed: int = 0, chunk: int = 5_000_000) -> int:
    """An EVT 2.0 file (640x480) of ``millions`` million events at ~5 M events/s, written chunk by chunk
    (from the format: TIME_HIGH words whenever ``t >> 6`` changes, then CD words)."""
    rng = np.random.default_rng(seed)
    n_total = millions * 1_000_000
    t0 = 1_000_000
    last_high = -1
    with open(path, "wb") as f:
        f.write(b"% evt 2.0\n% format EVT2;height=480;width=640\n% end\n")
        done = 0
        while done < n_total:
            n = min(chunk, n_total - done)
            t = t0 + np.cumsum(rng.random(n) < 0.2, dtype=np.int64)  # one µs step per 5 events
            t0 = int(t[-1])
            x = rng.integers(0, 640, n, dtype=np.uint32)
            y = rng.integers(0, 480, n, dtype=np.uint32)
            p = rng.integers(0, 2, n, dtype=np.uint32)
            high = (t >> 6).astype(np.int64)
            change = np.empty(n, bool)
            change[0] = high[0] != last_high
            change[1:] = high[1:] != high[:-1]
            last_high = int(high[-1])
            pos = np.arange(n) + np.cumsum(change)
            words = np.empty(n + int(change.sum()), dtype="<u4")
            words[pos[change] - 1] = (0x8 << 28) | (high[change] & 0x0FFFFFFF).astype(np.uint32)
            words[pos] = (p << 28) | ((t & 0x3F).astype(np.uint32) << 22) | (x << 11) | y
            f.write(words.tobytes())
            done += n
    return n_total


def _tree_rss(root: int) -> int:
    """Bytes of resident memory of ``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def _sample_peak(pid: int, stop: threading.Event, peaks: list[int]) -> None:
    while not stop.is_set():
        peaks[0] = max(peaks[0], _tree_rss(pid))
        time.sleep(0.02)


def bench_memory(work: Path, sizes: list[int]) -> list[dict]:
    rows = []
    print(f"{'events':>10} {'file MB':>8} {'windows':>8} {'wall s':>7} {'peak RSS MiB (tree)':>20}  target <= 1024")
    for millions in sizes:
        raw = work / f"rec{millions}M"
        shutil.rmtree(raw, ignore_errors=True)
        (raw / "recs").mkdir(parents=True)
        rec = raw / "recs" / "long.raw"
        write_evt2(rec, millions)
        out = work / f"out{millions}M"
        shutil.rmtree(out, ignore_errors=True)
        argv = [sys.executable, "-m", "shardgen.cli", "convert", "folder", "--raw", str(raw), "--out", str(out),
                "--window-us", "1000000", "--workers", "2", "--quiet", "--json"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stop = threading.Event()
        peaks = [0]
        th = threading.Thread(target=_sample_peak, args=(proc.pid, stop, peaks))
        th.start()
        stdout, stderr = proc.communicate()
        stop.set()
        th.join()
        peak = peaks[0]
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(stderr.decode())
        summary = json.loads(stdout)
        windows = sum(summary["samples"].values()) - summary["samples"].get("all", 0)
        mb = rec.stat().st_size / 1e6
        rows.append({"events_M": millions, "file_MB": mb, "windows": windows, "wall_s": wall,
                     "peak_rss_MiB": peak / 2**20})
        print(f"{millions:>9}M {mb:>8.0f} {windows:>8} {wall:>7.1f} {peak / 2**20:>20.0f}  "
              f"{'yes' if peak <= 2**30 else 'NO'}")
        shutil.rmtree(raw, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=None, help="keep (and reuse) the generated download here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--buffers", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--events", type=int, nargs="*", default=[50], help="recording sizes in millions of events")
    ap.add_argument("--skip-mixing", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-mixing-"))
    work.mkdir(parents=True, exist_ok=True)
    result = {}
    if not args.skip_mixing:
        result["mixing"] = bench_mixing(work, args.seed, args.buffers)
    if args.events:
        print()
        result["memory"] = bench_memory(work, args.events)
    if args.json:
        print(json.dumps(result, indent=1))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
