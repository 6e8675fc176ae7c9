"""Benchmark: `shardgen convert` against SpikingJelly 2.0.0's event extraction.

``--dataset dvs128-gesture`` (default) generates a DVS128 Gesture download (real AEDAT 3.1 format,
tar.gz); ``--dataset n-mnist`` an N-MNIST download (``Train.zip`` / ``Test.zip`` of many small ATIS
``.bin`` files, ``--files`` of about ``--events-per-file`` events each). Then, in the same run:

- the whole ``shardgen convert`` process (fresh interpreter, from the download folder to a finished
  shard set; ``--no-md5`` because generated files cannot carry IBM's md5 sums);
- SpikingJelly's ``DVS128Gesture`` / ``NMNIST(root, train=True/False, data_type='event')`` on the same
  files (extract, parse, write ``events_np``), with only ``resource_url_md5`` overridden.

Prints events/s of each and their ratio, bytes per event of the shards, the raw AEDAT files,
SpikingJelly's ``events_np`` and the tar.gz, and the peak RSS of each process tree.

    python scripts/bench_shardgen.py --recordings 6 --events-per-sample 300000
    python scripts/bench_shardgen.py --dataset n-mnist --files 6000 --events-per-file 4000
    python scripts/bench_shardgen.py --readers      # each raw reader against its reference reader
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_of(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd`` under a fresh probe interpreter: wall seconds, peak RSS (KiB) of its process tree, stdout."""
    wall, peak, stdout, _ = _run_of(cmd)
    return wall, peak, stdout


def _run_of(cmd: list[str]) -> tuple[float, int, str, float]:
    """:func:`_peak_of` and the CPU seconds (user + system) of the whole process tree."""
    probe = (
        "import resource, subprocess, sys, time, json;"
        "t=time.perf_counter(); r=subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "w=time.perf_counter()-t; sys.stderr.write(r.stderr); u=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(json.dumps([w, u.ru_maxrss, r.stdout, r.returncode, u.ru_utime + u.ru_stime]))"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    wall, peak, stdout, rc, cpu = json.loads(out.stdout)
    if rc != 0:
        raise SystemExit(f"{cmd[:4]} failed:\n{out.stderr}")
    return wall, peak, stdout, cpu


SJ_RUNNER = """
import sys, json
sys.path.insert(0, {root!r})
from tests.sjcompat import import_spikingjelly_datasets
import_spikingjelly_datasets()
from spikingjelly.datasets.dvs128_gesture import DVS128Gesture
from spikingjelly.datasets.n_mnist import NMNIST
md5 = json.loads({md5!r})
class Generated({cls}):
    @classmethod
    def resource_url_md5(cls):
        return [(name, "generated", digest) for name, digest in md5.items()]
n = [len(Generated({sjroot!r}, train=flag, data_type="event")) for flag in (True, False)]
print(json.dumps(n))
"""


def _du(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def _print_inflate(archive: Path, events: int) -> None:
    """The serial step of a DVS128 Gesture conversion: inflating the tar.gz, by ISA-L (what shardgen uses) and by
    rapidgzip on every core (where installed), ns per event."""
    from isal import igzip

    def drain(f: Any) -> None:
        while f.read(1 << 24):
            pass

    rows = [("ISA-L igzip, 1 thread (shardgen)", lambda: igzip.open(archive))]
    try:
        import rapidgzip

        for par in sorted({1, os.cpu_count() or 1}):
            rows.append((f"rapidgzip, parallelization={par}", lambda par=par: rapidgzip.open(str(archive),
                                                                                                parallelization=par)))
    except ImportError:
        print("rapidgzip not installed: pip install rapidgzip")
    for name, opener in rows:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            with opener() as f:
                drain(f)
            best = min(best, time.perf_counter() - t0)
        print(f"inflate {archive.name}: {name:<36} {best:6.2f} s  {best / events * 1e9:6.1f} ns/event")


def main() -> None:
    """Parse flags, generate the set, run both tools, print the table."""
    if {"shd", "ssc"} & set(sys.argv[1:]) and "--dataset" in sys.argv:  # 1-D sensors: scripts/bench_heidelberg.py
        from scripts.bench_heidelberg import main as bench_heidelberg

        return bench_heidelberg(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from scripts.bench_datasets2 import DATASETS2  # datasets2: the second-wave 2-D datasets

    ap.add_argument("--dataset", choices=["dvs128-gesture", "n-mnist", *DATASETS2], default="dvs128-gesture")
    ap.add_argument("--scale", type=float, default=1, help="datasets2: multiply the generated sample count")
    ap.add_argument("--recordings", type=int, default=6, help="recordings (at least 6 for the issue's check)")
    ap.add_argument("--files", type=int, default=6000, help="n-mnist: sample files (train and test together)")
    ap.add_argument("--events-per-file", type=int, default=4000, help="n-mnist: mean events per file")
    ap.add_argument("--events-per-sample", type=int, default=300_000, help="≈ DVS128 Gesture's 300k")
    ap.add_argument("--workers", type=int, default=None, help="shardgen --workers (default: all cores)")
    ap.add_argument("--workdir", default=None, help="keep files here instead of a temporary folder")
    ap.add_argument("--skip-spikingjelly", action="store_true")
    ap.add_argument("--pairs", type=int, default=2, help="(shardgen, SpikingJelly) runs; the median counts")
    ap.add_argument("--level", type=int, default=None, help="shardgen convert --level (zstd level; default -1)")
    ap.add_argument("--readers", action="store_true",
                    help="instead: every raw reader's events/s beside its reference reader on the same file")
    args = ap.parse_args()
    if args.readers:
        from scripts.bench_readers import run

        run()
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-shardgen-"))
    shutil.rmtree(work, ignore_errors=True)
    if args.dataset in DATASETS2:  # datasets2: own generators and SpikingJelly runner
        from scripts.bench_datasets2 import run as run_datasets2

        run_datasets2(args.dataset, args.workers, args.scale, _peak_of, work)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        return
    sjroot, out = work / "sj", work / "shards"
    raw = sjroot / "download"
    t0 = time.perf_counter()
    if args.dataset == "n-mnist":
        from tests.gen_classfolders import write_nmnist

        gen = write_nmnist(raw, per_class=max(1, args.files // 20), classes=tuple("0123456789"), seed=7,
                           max_events=2 * args.events_per_file)
        events_read = sum(len(s.events["t"]) for s in gen.samples.values())
        what, sj_cls, raw_glob = f"{len(gen.samples)} files", "NMNIST", "*.bin"
    else:
        from tests.gen_dvsgesture import write_gesture_download

        n_test = max(1, args.recordings // 3)
        gen = write_gesture_download(
            raw, n_train=args.recordings - n_test, n_test=n_test, events_per_sample=args.events_per_sample,
            seed=7, gzip_level=1, extracted=False,
        )
        events_read = sum(len(r["t"]) for r in gen.recordings.values())
        what, sj_cls, raw_glob = f"{len(gen.recordings)} recordings", "DVS128Gesture", "*.aedat"
    print(f"generated {what}, {events_read:,} events in {time.perf_counter() - t0:.1f} s")
    archives = sum(p.stat().st_size for p in raw.iterdir() if p.suffix in (".zip", ".gz"))

    cmd = [sys.executable, "-m", "shardgen.cli", "convert", args.dataset, "--raw", str(raw), "--out", str(out),
           "--no-md5", "--quiet", "--json"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if args.level is not None:
        cmd += [f"--level={args.level}"]
    # warm the page cache the same way for both tools: each reads the archives once before timing
    for p in raw.iterdir():
        p.read_bytes()
    code = SJ_RUNNER.format(root=str(ROOT), md5=json.dumps(gen.md5), sjroot=str(sjroot), cls=sj_cls)
    pairs: list[tuple[float, float]] = []
    cpus: list[tuple[float, float]] = []
    for i in range(args.pairs):  # each pair: our whole process, then SpikingJelly's, on the same files
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        es_wall, es_rss, stdout, es_cpu = _run_of(cmd)
        if args.skip_spikingjelly:
            pairs.append((es_wall, float("nan")))
            cpus.append((es_cpu, float("nan")))
            continue
        for name in ("extract", "events_np"):
            shutil.rmtree(sjroot / name, ignore_errors=True)
        sj_wall, sj_rss, sj_out, sj_cpu = _run_of([sys.executable, "-c", code])
        pairs.append((es_wall, sj_wall))
        cpus.append((es_cpu, sj_cpu))
        print(f"pair {i + 1}: eventshard {es_wall:.2f} s (CPU {es_cpu:.2f} s), SpikingJelly {sj_wall:.2f} s "
              f"(CPU {sj_cpu:.2f} s), ratio {sj_wall / es_wall:.1f}x; 1-min load average before: {load:.1f}")
    summary = json.loads(stdout)
    events = summary["events"]
    shard_bytes = summary["shard_bytes"]
    es_wall = statistics.median(w for w, _ in pairs)
    es_cpu = statistics.median(c for c, _ in cpus)

    rows = [("eventshard: shardgen convert", es_wall, events / es_wall, es_rss, shard_bytes / events, es_cpu)]
    if not args.skip_spikingjelly:
        sj_wall = statistics.median(w for _, w in pairs)
        sj_cpu = statistics.median(c for _, c in cpus)
        n_sj = json.loads(sj_out.strip().splitlines()[-1])
        sj_np = _du(sjroot / "events_np", "*.npz")
        raw_bytes = _du(sjroot / "extract", raw_glob)
        rows.append((f"SpikingJelly 2.0.0: {sj_cls}(event)", sj_wall, events / sj_wall, sj_rss, sj_np / events,
                     sj_cpu))
        print(f"SpikingJelly samples: {n_sj[0]} train / {n_sj[1]} test; "
              f"eventshard: {summary['samples']['train']} / {summary['samples']['test']}")
    if args.dataset == "dvs128-gesture":
        _print_inflate(raw / "DvsGesture.tar.gz", events_read)
    print()
    print(f"{'tool':<42} {'wall s':>8} {'events/s':>14} {'peak RSS MiB':>13} {'bytes/event':>12} {'CPU s':>7} "
          f"{'CPU ns/event':>13}")
    for name, wall, eps, rss, bpe, cpu in rows:
        print(f"{name:<42} {wall:8.2f} {eps:14,.0f} {rss / 1024:13.0f} {bpe:12.3f} {cpu:7.2f} "
              f"{cpu / events * 1e9:13.1f}")
    print()
    print(f"events in samples: {events:,} ({events_read:,} in the recordings); cores: {os.cpu_count()}")
    if not args.skip_spikingjelly:
        ratios = sorted(sj / es for es, sj in pairs)
        target = 50 if args.dataset == "dvs128-gesture" else 20
        print(f"speed ratio eventshard / SpikingJelly, median of {len(pairs)} pairs: "
              f"{statistics.median(ratios):.1f}x (pairs: {', '.join(f'{r:.1f}x' for r in ratios)}); "
              f"target {target}x: {'PASS' if statistics.median(ratios) >= target else 'MISS'}")
        print(f"bytes/event: shards {shard_bytes / events:.3f} | raw files {raw_bytes / events_read:.3f} | "
              f"SpikingJelly events_np {sj_np / events:.3f} | archives {archives / events_read:.3f}")
    else:
        print(f"bytes/event: shards {shard_bytes / events:.3f} | archives {archives / events_read:.3f}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
