"""Benchmark: an ES-ImageNet-sized synthetic download converted in 4 jobs plus a merge; open time and worker RSS.

1. **Generate** the extracted ``ES-imagenet-0.18/`` folder (``tests/gen_datasets2.py``'s format-exact ``.npz``
   files): ``--samples`` train files over the 1000 classes (default 300,000; ES-ImageNet has 1,281,167) plus
   ``--samples``/25 val files with ``vallabel.txt``. Events are few (10–400 per file, so sizes differ ~15x).
2. **Convert** as ``--jobs`` array jobs (default 4), one after the other, each with ``--workers`` processes
   (what one cluster node would do), then ``shardgen merge``; prints the balance table (job → input files,
   bytes, samples, seconds) and the merge time.
3. **Open and read** the merged set: time to open it (``EventShardDataset``: index with its permutation) and
   the RSS of a DataLoader worker after its first batch, against the same for a 1,000-sample set (each in a
   fresh process).
4. **Per byte**: converts ``--real-files`` files of ES-ImageNet's average size (~75 KB, 25k events), one job,
   for the cost per input byte; with the per-sample cost of step 2 this extrapolates to the real dataset
   (1,331,167 samples, ~100 GB): hours on N cores, and shard bytes.

    python scripts/bench_cluster_convert.py                       # ~6 min on 2 cores, ~2 GB of disk
    python scripts/bench_cluster_convert.py --samples 1281167     # the full count (~25 min, ~8 GB)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gen_datasets2 import es_npz_bytes  # noqa: E402

REAL_SAMPLES = 1_281_167 + 50_000
REAL_BYTES = 100e9  # ~100 GB in 25 RAR parts


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.stack([rng.integers(0, 224, n), rng.integers(0, 224, n), rng.integers(0, 8, n)], 1)


def _write_class(args: tuple[str, int, int, int, int]) -> int:
    """Files ``train/class<c>/class<c>_<k>.npz``; returns the bytes written."""
    base, c, count, lo, hi = args
    rng = np.random.default_rng(c)
    folder = Path(base) / "train" / f"class{c}"
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for k in range(count):
        n = int(rng.integers(lo, hi + 1))
        m = int(rng.integers(0, n + 1))
        data = es_npz_bytes(_rows(rng, m), _rows(rng, n - m))
        (folder / f"class{c}_{k}.npz").write_bytes(data)
        total += len(data)
    return total


def generate(raw: Path, samples: int, lo: int, hi: int, workers: int) -> int:
    """The extracted folder: ``samples`` train files over 1000 classes, ``samples // 25`` val files."""
    base = raw / "ES-imagenet-0.18"
    per = [samples // 1000 + (1 if c < samples % 1000 else 0) for c in range(1000)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        total = sum(pool.imap_unordered(_write_class, [(str(base), c, per[c], lo, hi) for c in range(1000)], 8))
    rng = np.random.default_rng(99)
    (base / "val").mkdir(parents=True, exist_ok=True)
    lines = []
    for v in range(max(1, samples // 25)):
        stem = f"ILSVRC2012_val_{v + 1:08d}"
        n = int(rng.integers(lo, hi + 1))
        data = es_npz_bytes(_rows(rng, n // 2), _rows(rng, n - n // 2))
        (base / "val" / f"{stem}.npz").write_bytes(data)
        total += len(data)
        lines.append(f"{stem}.npz {v % 1000} 224 224")
    (base / "vallabel.txt").write_text("\n".join(lines) + "\n")
    return total


def _worker_rss(url: str) -> tuple[float, float]:
    """(seconds to open the dataset, VmRSS in MiB of a DataLoader worker after its first batch)."""
    from torch.utils.data import DataLoader

    from loader import EventShardDataset

    t = time.perf_counter()
    ds = EventShardDataset(url, split="train", data_type="event", return_key=True, shuffle=True)
    opened = time.perf_counter() - t
    dl = DataLoader(ds, batch_size=64, num_workers=1, collate_fn=_rss_collate)
    rss = next(iter(dl))
    return opened, rss / 1024


def _fresh(url: str) -> tuple[float, float]:
    """:func:`_worker_rss` in a new interpreter (the conversions' heap here would count in a forked worker)."""
    code = (f"import json, sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'scripts')!r}]; "
            f"from bench_cluster_convert import _worker_rss; print(json.dumps(_worker_rss({url!r})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    opened, rss = json.loads(out.strip().splitlines()[-1])
    return opened, rss


def _rss_collate(batch: list) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    return float("nan")


def _convert(raw: Path, out: Path, jobs: int, index: int, workers: int) -> float:
    from shardgen.jobs import convert_job

    t = time.perf_counter()
    convert_job("es-imagenet", raw, out, index, jobs, workers=workers, check_md5=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=300_000)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--real-files", type=int, default=400)
    ap.add_argument("--workdir", default=None, help="keep the generated download here (reused when present)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-cluster-"))
    raw, out = work / "raw", work / "out"
    print(f"{os.cpu_count()} cores; workdir {work}")
    t = time.perf_counter()
    if not (raw / "ES-imagenet-0.18" / "vallabel.txt").exists():
        total = generate(raw, args.samples, 10, 400, args.workers)
        print(f"generated {args.samples:,} train + {args.samples // 25:,} val files, {total:,} bytes "
              f"in {time.perf_counter() - t:.0f} s")
    shutil.rmtree(out, ignore_errors=True)
    seconds = [_convert(raw, out, args.jobs, i, args.workers) for i in range(args.jobs)]
    t = time.perf_counter()
    from shardgen.jobs import job_dir, merge

    merged = merge(out)
    merge_s = time.perf_counter() - t
    print(f"\nbalance: {args.jobs} jobs x {args.workers} workers (greedy by bytes over the files)")
    print(f"{'job':<20} {'input files':>12} {'input bytes':>14} {'samples':>9} {'seconds':>8}")
    inputs = merged["source"]["job_inputs"]
    mean = sum(j["input_bytes"] for j in inputs) / len(inputs)
    for i, (job, sec) in enumerate(zip(inputs, seconds, strict=True)):
        ix = json.loads((out / job_dir(args.jobs, i) / "index.json").read_text())
        n = sum(s["samples"] for name, s in ix["splits"].items() if "view_of" not in s)
        print(f"{job_dir(args.jobs, i):<20} {job['input_files']:>12,} {job['input_bytes']:>14,} {n:>9,} {sec:>8.1f}")
    print(f"largest / mean input bytes: {max(j['input_bytes'] for j in inputs) / mean:.3f}")
    samples = sum(info["samples"] for info in merged["splits"].values() if "view_of" not in info)
    shard_bytes = merged["summary"]["shard_bytes"]
    in_bytes = sum(j["input_bytes"] for j in inputs)
    print(f"merge: {merge_s:.2f} s; {samples:,} samples, {shard_bytes:,} shard bytes; index.json "
          f"{(out / 'index.json').stat().st_size:,} bytes")

    from tests.many_ranks import write_tiny_set

    write_tiny_set(work / "small", 1000)
    small_open, small_rss = _fresh(str(work / "small"))
    big_open, big_rss = _fresh(str(out))
    train = merged["splits"]["train"]["samples"]
    print(f"\nopen and first batch ({train:,} train samples vs a 1,000-sample set)")
    print(f"open: {big_open:.3f} s ({big_open / train * 1e5:.3f} s per 100k samples); small set {small_open:.3f} s")
    print(f"DataLoader worker RSS after the first batch: {big_rss:.1f} MiB (small set {small_rss:.1f} MiB; "
          f"{(big_rss - small_rss) / train * 1e5:.2f} MiB per 100k samples)")

    real = work / "real"
    if not (real / "ES-imagenet-0.18" / "vallabel.txt").exists():
        generate(real, args.real_files, 24_000, 26_000, args.workers)
    real_in = sum(p.stat().st_size for p in real.rglob("*.npz"))
    real_n = sum(1 for _ in real.rglob("*.npz"))
    shutil.rmtree(work / "real_out", ignore_errors=True)
    real_s = _convert(real, work / "real_out", 1, 0, args.workers)
    real_ix = json.loads((work / "real_out" / "index.json").read_text())
    per_sample = sum(seconds) * args.workers / samples  # core-seconds per sample (tiny files: overhead only)
    per_byte = max(0.0, real_s * args.workers - per_sample * real_n) / real_in  # core-seconds per input byte
    core_hours = (REAL_SAMPLES * per_sample + REAL_BYTES * per_byte) / 3600
    print(f"\nper byte: {real_n} files of ~{real_in / real_n / 1e3:.0f} KB converted in {real_s:.1f} s "
          f"x {args.workers} workers; shard bytes / input bytes {real_ix['summary']['shard_bytes'] / real_in:.3f}")
    print(f"cost model: {per_sample * 1e6:.0f} core-us per sample + {per_byte * 1e9:.2f} core-s per GB of input")
    print(f"ES-ImageNet ({REAL_SAMPLES:,} samples, {REAL_BYTES / 1e9:.0f} GB): {core_hours:.1f} core-hours = "
          + ", ".join(f"{core_hours / n:.2f} h on {n} cores" for n in (16, 64, 256))
          + f"; shards ~{REAL_BYTES * real_ix['summary']['shard_bytes'] / real_in / 1e9:.0f} GB, "
          f"index.json ~{(out / 'index.json').stat().st_size / samples * REAL_SAMPLES / 1e6:.0f} MB")
    print(f"(this run: {in_bytes:,} input bytes, {sum(seconds):.0f} s for the {args.jobs} jobs one after the other)")


if __name__ == "__main__":
    main()
