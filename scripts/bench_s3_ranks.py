"""Benchmark: many training ranks reading one shard set from S3 (moto's server on 127.0.0.1) against local disk.

Writes a train split of ``--samples`` one-event samples (``tests/many_ranks.py``; default 300,016, in 1 MiB
shards), uploads it to moto's S3 server (started in its own process, so it does not share this interpreter's
GIL), then reads it with ``--world`` rank processes (``RANK``/``WORLD_SIZE`` as torchrun sets them) of
``--workers`` DataLoader workers each, once from the local folder and once from ``s3://``:

    EventShardDataset(url, "train", data_type="event", return_key=True, shuffle=True)
    DataLoader(ds, batch_size=512, num_workers=W)

and prints per source: time to the first batch (slowest rank, from creating the dataset), requests and bytes
read per sample (the workers' ``ReadStats``: size checks and range reads), and samples/s per rank (median).
Reported, not asserted. All ranks share this machine's cores, so samples/s per rank falls as ``--world`` grows.

    python scripts/bench_s3_ranks.py                  # ~2 min on 2 loaded cores
    python scripts/bench_s3_ranks.py --samples 100000 --world 4
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy/torch load their thread pools

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.many_ranks import run_ranks, write_tiny_set  # noqa: E402
from tests.servers import MotoS3  # noqa: E402


def _moto_process() -> tuple[subprocess.Popen, int]:
    """moto's server in a process of its own; its port."""
    code = ("import logging, sys, time; from moto.server import ThreadedMotoServer; "
            "logging.getLogger('werkzeug').setLevel(logging.ERROR); "
            "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False); s.start(); "
            "print(s.get_host_and_port()[1], flush=True); time.sleep(1e9)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _row(name: str, ranks: list[dict], samples: int) -> tuple[str, ...]:
    reqs = sum(r["requests"] for r in ranks)
    read = sum(r["bytes_read"] for r in ranks)
    rate = statistics.median(len(r["keys"]) / r["seconds"] for r in ranks)
    first = max(r["first_batch_s"] for r in ranks)
    return (name, f"{first:.2f}", f"{reqs}", f"{reqs / samples:.5f}", f"{read / samples:.1f}", f"{rate:,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=300_016)
    ap.add_argument("--world", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-s3-ranks-"))
    t = time.perf_counter()
    index = write_tiny_set(work / "tiny", args.samples)
    shards = index["splits"]["train"]["shards"]
    size = sum(s["bytes"] for s in shards)
    print(f"wrote {args.samples:,} samples, {len(shards)} shards, {size:,} bytes in {time.perf_counter() - t:.1f} s")
    proc, port = _moto_process()
    try:
        s3 = MotoS3("bench")
        s3.port = port
        fs = s3.filesystem()
        fs.mkdir("bench")
        url = s3.upload_folder(work / "tiny", "tiny")
        rows = [("source", "first batch s", "requests", "requests/sample", "bytes/sample", "samples/s per rank")]
        local = run_ranks(work / "tiny", args.world, args.workers)
        rows.append(_row("local disk", local, args.samples))
        remote = run_ranks(url, args.world, args.workers, env=s3.env)
        rows.append(_row("s3 (moto)", remote, args.samples))
    finally:
        proc.terminate()
        proc.wait()
    for ranks in (local, remote):
        counts = {len(r["keys"]) for r in ranks}
        union = len({k for r in ranks for k in r["keys"]})
        assert union == args.samples and len(counts) == 1, "ranks did not read disjoint, equal shares"
    print(f"\n{args.world} ranks x {args.workers} DataLoader workers, {args.samples:,} samples "
          f"({args.samples // args.world:,} per rank), batch 512, shuffle=True")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    ratio = float(rows[2][5].replace(",", "")) / float(rows[1][5].replace(",", ""))
    print(f"s3/local samples/s per rank: {ratio:.2f}")


if __name__ == "__main__":
    main()
