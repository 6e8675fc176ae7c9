"""Benchmark: how evenly ``--num-jobs`` shares a download whose file sizes differ 10x, by class.

Writes an N-Caltech101-layout ``Caltech101.zip`` (``tests/gen_rawfiles.py``'s ATIS ``.bin`` files):
``--classes`` classes of ``--per-class`` files; files of even classes hold 10x the events of odd ones
(what a download of classes recorded at different lengths looks like). Converts it as ``--jobs`` jobs
(``shardgen.jobs.convert_job``), merges, and prints each job's input files and bytes as recorded in its
part, against the assignment before this change (crc32 of each class batch's name modulo J, computed
here from the same batches).

    python scripts/bench_balance.py            # ~30 s on 2 cores
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gen_rawfiles import atis_bin_bytes  # noqa: E402


def write_download(raw: Path, classes: int, per_class: int, seed: int = 0) -> dict[str, list[int]]:
    """``Caltech101.zip``; returns class → file sizes in file-name order."""
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, list[int]] = {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for c in range(classes):
            cls = f"class{c:02d}"
            base = 2000 if c % 2 == 0 else 200
            for k in range(per_class):
                n = int(base * rng.uniform(0.8, 1.2))
                t = np.sort(rng.integers(0, 2**20, n))
                data = atis_bin_bytes(rng.integers(0, 240, n), rng.integers(0, 180, n), rng.integers(0, 2, n), t)
                zf.writestr(f"Caltech101/{cls}/image_{k + 1:04d}.bin", data)
                sizes.setdefault(cls, []).append(len(data))
    (raw / "Caltech101.zip").write_bytes(buf.getvalue())
    return sizes


def old_assignment(sizes: dict[str, list[int]], jobs: int, split_of: dict[str, list[str]], batch_files: int
                   ) -> list[int]:
    """Input bytes per job under the crc32-of-batch-name rule: one class's files per batch, at most
    ``batch_files``, batches named ``<split>/NNNNNN`` in order."""
    loads = [0] * jobs
    for split in ("train", "test"):
        n = 0
        for cls in sorted(sizes):
            files = [s for s, sp in zip(sizes[cls], split_of[cls], strict=True) if sp == split]
            for i in range(0, len(files), batch_files):
                loads[zlib.crc32(f"{split}/{n:06d}".encode()) % jobs] += sum(files[i:i + batch_files])
                n += 1
    return loads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from shardgen.jobs import convert_job, job_dir, merge

    work = Path(tempfile.mkdtemp(prefix="bench-balance-"))
    sizes = write_download(work / "raw", args.classes, args.per_class)
    t = time.perf_counter()
    for i in range(args.jobs):
        convert_job("n-caltech101", work / "raw", work / "out", i, args.jobs, workers=args.workers, check_md5=False)
    merged = merge(work / "out")
    seconds = time.perf_counter() - t
    split_of: dict[str, list[str]] = {cls: [] for cls in sizes}
    keys = {}
    for i in range(args.jobs):
        ix = json.loads((work / "out" / job_dir(args.jobs, i) / "index.json").read_text())
        keys[i] = ix
    from tests.conftest import read_split

    for split in ("train", "test"):
        for key in read_split(work / "out", split):
            cls, stem = key.split("/")
            split_of.setdefault(cls, []).append((int(stem.split("_")[1]), split))
    split_of = {cls: [sp for _, sp in sorted(v)] for cls, v in split_of.items()}
    old = old_assignment(sizes, args.jobs, split_of, 128)
    total = sum(sum(v) for v in sizes.values())
    mean = total / args.jobs
    print(f"{args.classes} classes x {args.per_class} files, sizes {min(min(v) for v in sizes.values()):,}-"
          f"{max(max(v) for v in sizes.values()):,} bytes, {total:,} bytes in all; {args.jobs} jobs "
          f"({seconds:.1f} s with merge)")
    print(f"{'job':<18} {'input files':>11} {'input bytes':>13} {'/ mean':>7}   {'before: bytes':>13} {'/ mean':>7}")
    for i, job in enumerate(merged["source"]["job_inputs"]):
        print(f"{job_dir(args.jobs, i):<18} {job['input_files']:>11,} {job['input_bytes']:>13,} "
              f"{job['input_bytes'] / mean:>7.3f}   {old[i]:>13,} {old[i] / mean:>7.3f}")
    now = max(j["input_bytes"] for j in merged["source"]["job_inputs"]) / mean
    print(f"largest job / mean input bytes: {now:.3f} (before: {max(old) / mean:.3f})")


if __name__ == "__main__":
    main()
