"""Benchmark: streaming a shard set from S3 (moto's server on 127.0.0.1) against reading it from local disk.

Generates a DVS128 Gesture download at about DVS128 Gesture's density (``--events-per-sample``, default 300k
events per sample), converts it once with ``shardgen convert`` into a local folder, starts moto's S3 server in
a separate process (so that it does not share this interpreter's GIL) and uploads the same shard set there.
Then, for each source (local folder, ``s3://``) and each ``--workers`` count, runs ``--epochs`` passes over the
train split with one

    DataLoader(EventShardDataset(url, "train", data_type="frame", frames_number=20, split_by="number"),
               batch_size=16, num_workers=W, persistent_workers=True)

and prints, for the first epoch (starting the workers, their S3 clients and first requests included) and for
the best later epoch (steady state), samples/s, MB/s of compressed shard bytes read (every sample frame of the
split is read once per epoch), and the S3/local ratios. The local files are read once before timing (page
cache), as are the S3 objects. Target: S3 at least 70% of local samples/s with 2 workers.

Both sources read by byte range in about 8 MiB blocks (no cache folder). Note that on a small machine the S3
server process competes with the DataLoader workers for the same cores.

    python scripts/bench_stream.py --workdir /tmp/bench-stream     # ~2.5 min the first time (generation)
    python scripts/bench_stream.py --recordings 8 --events-per-sample 100000 --epochs 2
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy/torch load their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAMES = 20
BATCH = 16
TARGET_RATIO = 0.70
BUCKET = "bench"


def make_set(work: Path, recordings: int, n_test: int, events_per_sample: int, seed: int) -> dict[str, Any]:
    """Generate the download under ``work/raw`` and convert it to ``work/shards`` (reused when the params match)."""
    from tests.gen_dvsgesture import write_gesture_download

    params = {"recordings": recordings, "n_test": n_test, "events_per_sample": events_per_sample, "seed": seed}
    marker = work / "params.json"
    if marker.exists() and (work / "shards" / "index.json").exists():
        old = json.loads(marker.read_text())
        if {k: old.get(k) for k in params} == params:
            return old
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    write_gesture_download(
        work / "raw", n_train=recordings - n_test, n_test=n_test, events_per_sample=events_per_sample,
        seed=seed, gzip_level=1, empty_window=False,
    )  # fmt: skip
    t_gen = time.perf_counter() - t0
    cmd = [sys.executable, "-m", "shardgen.cli", "convert", "dvs128-gesture", "--raw", str(work / "raw"),
           "--out", str(work / "shards"), "--no-md5", "--quiet", "--json"]  # fmt: skip
    summary = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    shutil.rmtree(work / "raw")
    params.update(summary=summary, generate_s=t_gen)
    marker.write_text(json.dumps(params))
    return params


def serve_s3() -> None:
    """Child process: run moto's S3 server, print its port, serve until stdin closes."""
    from tests.servers import MotoS3

    s3 = MotoS3(BUCKET).start()
    print(s3.port, flush=True)
    sys.stdin.read()
    s3.stop()


def start_s3_process() -> tuple[subprocess.Popen, dict[str, Any]]:
    """Start :func:`serve_s3` in a child process; return it and the s3fs storage options reaching it."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-s3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the S3 server did not start (got {line!r})")
    from tests.servers import MotoS3

    opts = {"endpoint_url": f"http://127.0.0.1:{int(line)}", "key": MotoS3.KEY, "secret": MotoS3.SECRET}
    return proc, opts


def run_epochs(url: str, workers: int, epochs: int, storage_options: dict[str, Any] | None) -> list[tuple[float, int]]:
    """``epochs`` passes over the train split with one DataLoader (persistent workers); (seconds, samples) each.

    The first epoch includes starting the workers (and their first requests); the later ones do not.
    """
    from torch.utils.data import DataLoader

    from loader import EventShardDataset

    ds = EventShardDataset(
        url, split="train", data_type="frame", frames_number=FRAMES, split_by="number", shuffle=True, seed=0,
        storage_options=storage_options,
    )  # fmt: skip
    loader = DataLoader(ds, batch_size=BATCH, num_workers=workers, persistent_workers=workers > 0)
    out = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        t0 = time.perf_counter()
        n = 0
        for x, _labels in loader:
            n += x.shape[0]
        out.append((time.perf_counter() - t0, n))
    del loader
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; returns 0 when S3 reaches the target with 2 workers."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=40, help="recordings in the generated download")
    ap.add_argument("--n-test", type=int, default=4, help="of which in the test split")
    ap.add_argument("--events-per-sample", type=int, default=300_000, help="≈ DVS128 Gesture's 300k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per row: the first, then the best later one")
    ap.add_argument("--workdir", default=None, help="keep (and reuse) the generated set here")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--serve-s3", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_s3:
        serve_s3()
        return 0

    work = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir()) / "eventshard-bench-stream"
    params = make_set(work, args.recordings, args.n_test, args.events_per_sample, args.seed)
    local = work / "shards"
    from loader.format import loads_index

    index = loads_index((local / "index.json").read_bytes())
    train = index["splits"]["train"]
    frame_bytes = sum(int(s["offsets"][-1]) for s in train["shards"])
    print(
        f"set: {train['samples']} train samples, {train['events']:,} events, {len(train['shards'])} shards, "
        f"{frame_bytes / 1e6:.1f} MB compressed ({frame_bytes / max(train['events'], 1):.2f} bytes/event); "
        f"{os.cpu_count()} cores"
    )

    proc, opts = start_s3_process()
    try:
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
        url = f"s3://{BUCKET}/gesture"
        t0 = time.perf_counter()
        for p in sorted(local.iterdir(), key=lambda p: (p.name == "index.json", p.name)):
            fs.put_file(str(p), f"{url}/{p.name}")
        print(f"uploaded to {url} in {time.perf_counter() - t0:.1f} s")
        for p in local.iterdir():  # page cache / moto's buffers warm, both sides
            p.read_bytes()
            fs.cat_file(f"{url}/{p.name}")
        rows: list[dict[str, Any]] = []
        for workers in args.workers:
            for source, target, so in (("local", str(local), None), ("s3", url, opts)):
                epochs = run_epochs(target, workers, args.epochs, so)
                assert all(n == train["samples"] for _, n in epochs), (epochs, train["samples"])
                first = epochs[0][0]
                steady = min(t for t, _ in epochs[1:]) if len(epochs) > 1 else first
                n = train["samples"]
                rows.append({"source": source, "workers": workers, "samples": n, "first_s": first,
                             "steady_s": steady, "first_samples_per_s": n / first, "samples_per_s": n / steady,
                             "mb_per_s": frame_bytes / steady / 1e6})  # fmt: skip
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    print()
    print("first = first epoch, workers starting included; steady = best later epoch (persistent workers)")
    print(
        f"{'workers':>7}  {'source':<6} {'first s':>8} {'first/s':>8} {'steady s':>9} {'samples/s':>10} "
        f"{'MB/s':>7} {'S3/local first':>15} {'S3/local steady':>16}"
    )
    ratios: dict[int, float] = {}
    for r in rows:
        first_ratio = steady_ratio = ""
        if r["source"] == "s3":
            loc = next(x for x in rows if x["source"] == "local" and x["workers"] == r["workers"])
            ratios[r["workers"]] = r["samples_per_s"] / loc["samples_per_s"]
            steady_ratio = f"{ratios[r['workers']]:.0%}"
            first_ratio = f"{r['first_samples_per_s'] / loc['first_samples_per_s']:.0%}"
        print(
            f"{r['workers']:>7}  {r['source']:<6} {r['first_s']:>8.2f} {r['first_samples_per_s']:>8.1f} "
            f"{r['steady_s']:>9.2f} {r['samples_per_s']:>10.1f} {r['mb_per_s']:>7.1f} {first_ratio:>15} "
            f"{steady_ratio:>16}"
        )
    ok = ratios.get(2, 0.0) >= TARGET_RATIO
    print(
        f"\ntarget: S3 >= {TARGET_RATIO:.0%} of local samples/s (steady) with 2 workers: {'met' if ok else 'NOT met'}"
    )
    if args.json:
        print(json.dumps({"params": {k: v for k, v in params.items() if k != "summary"}, "rows": rows}, indent=1))
    return 0 if ok or 2 not in ratios else 1


if __name__ == "__main__":
    sys.exit(main())
