"""``bench_shardgen.py --dataset <id>`` for the second-wave 2-D datasets (N-CARS, NAVGesture, DVS-Lip, HARDVS,
ES-ImageNet, Bullying10K): ``shardgen convert`` against SpikingJelly 2.0.0 on the same generated download.

Each tool runs in a fresh interpreter on the same files, page cache warmed once for both:

- **events (the target line, 20x):** SpikingJelly's own class, ``resource_url_md5`` overridden,
  constructed with ``data_type='event'`` (extract + its conversion to ``events_np``) **and read
  once** (``ds[i]`` for every sample): for DVS-Lip, HARDVS and ES-ImageNet the construction only
  extracts and links files and the decoding happens on access, so the read is where its events
  are parsed. ES-ImageNet's RAR extraction is replaced by the extracted folder (nothing can write
  RAR here): SpikingJelly runs ``create_raw_from_extracted`` on it. N-CARS has no SpikingJelly
  class: its reference is expelliarmus 1.1.12 reading every ``.dat`` file after extracting the
  nested zips (no torch is imported for it).
- **frames (what a SpikingJelly user waits for before training on frames):** the same class with
  ``data_type='frame', frames_number=16, split_by='number'`` from the download alone (it extracts,
  converts and integrates every sample into an ``.npz`` of frames). eventshard's convert is the
  whole preparation there too: its loader integrates frames on the fly. SpikingJelly runs its
  preprocessing in one thread (``tests/sjcompat.py``: CPython's AST bug with ``np.load`` in threads).

The reference's time is split into imports (torch, torchvision, SpikingJelly), construction and
read, and a *floor* line says which ratio the dataset allows at all: where SpikingJelly's work is a
subset of ours (it extracts and ``np.load`` s; we also check, delta-code and compress), no reader
can beat ``its wall / (our interpreter start + its work spread over our cores)``.

    python scripts/bench_shardgen.py --dataset dvs-lip
    python scripts/bench_datasets2.py --dataset hardvs --no-frames
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DATASETS2 = ("n-cars", "nav-gesture-walk", "nav-gesture-sit", "dvs-lip", "hardvs", "es-imagenet", "bullying10k")
TARGET = 20
PAIRS = 3
"""(eventshard, reference) event-mode runs; the pair with the median ratio is printed (the machine is shared)."""
FRAMES = {"data_type": "frame", "frames_number": 16, "split_by": "number"}

SUBSET = {
    "dvs-lip": "SpikingJelly inflates the zip and np.loads each .npy: its work is a subset of ours",
    "hardvs": "SpikingJelly inflates the nested zips and np.loads each npz: its work is a subset of ours",
    "es-imagenet": "SpikingJelly links the extracted npz files and np.loads + argsorts each (in float64): the same "
    "steps as our read, without the checks and the encoding",
    "n-cars": "expelliarmus inflates the nested zips and decodes each .dat: its work is a subset of ours",
}
"""Datasets whose reference does less than our convert; the others' references write files or read h5 per row."""

SJ_RUNNER = """
import sys, json, time
t0 = time.perf_counter()
from pathlib import Path
sys.path.insert(0, {root!r})
dataset, root, frames = {dataset!r}, Path({sjroot!r}), {frames!r}
md5 = json.loads((root / "md5.json").read_text())
if dataset == "n-cars":
    import zipfile, expelliarmus
    t1 = time.perf_counter()
    x = root / "extract"
    with zipfile.ZipFile(root / "download" / "Prophesee_Dataset_n_cars.zip") as zf:
        zf.extractall(x)
    for inner in x.glob("*.zip"):
        with zipfile.ZipFile(inner) as zf:
            zf.extractall(x)
    t2 = time.perf_counter()
    wiz = expelliarmus.Wizard(encoding="dat")
    n = events = 0
    for f in sorted(x.rglob("*.dat")):
        e = wiz.read(str(f)); events += 0 if e is None else len(e); n += 1
    print(json.dumps([n, events, t1 - t0, t2 - t1, time.perf_counter() - t2])); sys.exit()
from tests.sjcompat import import_spikingjelly_datasets
import_spikingjelly_datasets()
from tests.sj2compat import sj_class
kw = dict(frames) if frames else dict(data_type="event")
if dataset.startswith("nav-gesture"):
    from spikingjelly.datasets.nav_gesture import NAVGestureSit, NAVGestureWalk
    over = {{"extract_downloaded_files": NAVGestureSit.__dict__["extract_downloaded_files"]}} \\
        if dataset.endswith("sit") else {{}}
    t1 = time.perf_counter()
    sets = [sj_class(NAVGestureWalk, md5, **over)(str(root), **kw)]
elif dataset == "dvs-lip":
    from spikingjelly.datasets.dvs_lip import DVSLip
    t1 = time.perf_counter()
    sets = [sj_class(DVSLip, md5)(str(root), train=f, **kw) for f in (True, False)]
elif dataset == "hardvs":
    from spikingjelly.datasets.hardvs import HARDVS
    t1 = time.perf_counter()
    sets = [sj_class(HARDVS, md5)(str(root), s, **kw) for s in ("train", "val", "test")]
elif dataset == "es-imagenet":
    from spikingjelly.datasets.es_imagenet import ESImageNet
    t1 = time.perf_counter()
    (root / "events_np").mkdir()
    ESImageNet.create_raw_from_extracted(root / "download", root / "events_np")
    sets = [ESImageNet(str(root), train=f, **kw) for f in (True, False)]
else:
    from spikingjelly.datasets.bullying10k import Bullying10kClassification
    t1 = time.perf_counter()
    sets = [sj_class(Bullying10kClassification, md5)(str(root), train=f, **kw) for f in (True, False)]
t2 = time.perf_counter()
n = events = 0
for ds in sets:
    if frames:
        n += len(ds)
        continue
    for i in range(len(ds)):
        ev, _ = ds[i]
        events += len(ev["t"]); n += 1
print(json.dumps([n, events, t1 - t0, t2 - t1, time.perf_counter() - t2]))
"""


def generate(dataset: str, raw: Path, scale: float) -> tuple[dict[str, str], int]:
    """Write a generated download of ``dataset`` into ``raw``; its md5 map and the number of samples."""
    from tests import gen_datasets2 as g

    k = max(1, int(scale))
    if dataset == "n-cars":
        gen = g.write_ncars(raw, per_class=300 * k, max_events=8000)
    elif dataset.startswith("nav-gesture"):
        gen = g.write_navgesture(raw, dataset.rsplit("-", 1)[1], users=4, per_gesture=6 * k, max_events=60_000)
    elif dataset == "dvs-lip":
        gen = g.write_dvslip(raw, words=tuple(f"w{i:03d}" for i in range(20)), per_word=10 * k, max_events=40_000)
    elif dataset == "hardvs":
        gen = g.write_hardvs(raw, classes=300, per_split=k, max_events=30_000)
    elif dataset == "es-imagenet":
        gen = g.write_esimagenet(raw, classes=1000, per_class=k, val=1000 * k, max_events=6000)
    else:
        gen = g.write_bullying10k(raw, g.BULLYING_CATEGORIES, sessions=2, per_session=10 * k, max_events=30_000,
                                  repeat_names=False)
    return gen.md5, len(gen.samples)


def _reference(dataset: str, sjroot: Path, raw: Path, md5: dict[str, str], frames: dict | None, peak_of
               ) -> tuple[float, int, list]:
    """Run the reference from ``raw`` alone in a fresh ``sjroot``: wall, peak RSS, [n, events, imports, build,
    read]."""
    shutil.rmtree(sjroot, ignore_errors=True)
    sjroot.mkdir(parents=True)
    shutil.copytree(raw, sjroot / "download")
    (sjroot / "md5.json").write_text(json.dumps(md5))  # thousands of files: too long for a command line
    code = SJ_RUNNER.format(root=str(ROOT), dataset=dataset, sjroot=str(sjroot), frames=frames)
    wall, rss, out = peak_of([sys.executable, "-c", code])
    return wall, rss, json.loads(out.strip().splitlines()[-1])


def start_seconds(dataset: str) -> float:
    """Best of 3: a fresh interpreter importing what ``shardgen convert <dataset>`` imports before it reads."""
    code = ("import shardgen.cli, shardgen.convert; from shardgen.datasets import get_dataset; "
            f"get_dataset({dataset!r})")
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        best = min(best, time.perf_counter() - t)
    return best


def run(dataset: str, workers: int | None, scale: float, peak_of, work: Path, frames: bool = True) -> None:
    """Generate, convert with shardgen, run the reference (events, then frames), print one table."""
    raw = work / "download"
    t0 = time.perf_counter()
    md5, n_samples = generate(dataset, raw, scale)
    print(f"{dataset}: generated {n_samples} samples in {time.perf_counter() - t0:.1f} s")
    cmd = [sys.executable, "-m", "shardgen.cli", "convert", dataset, "--raw", str(raw), "--out", str(work / "out"),
           "--no-md5", "--quiet", "--json"]
    if workers:
        cmd += ["--workers", str(workers)]
    for p in raw.rglob("*"):
        if p.is_file():
            p.read_bytes()  # warm the page cache the same way for both tools
    pairs = []
    for _ in range(PAIRS):  # each pair: our whole process, then the reference's, on the same files
        shutil.rmtree(work / "out", ignore_errors=True)
        es_wall, es_rss, stdout = peak_of(cmd)
        sj_wall, sj_rss, got = _reference(dataset, work / "sj", raw, md5, None, peak_of)
        pairs.append((sj_wall / es_wall, es_wall, es_rss, sj_wall, sj_rss, got))
    pairs.sort(key=lambda p: p[0])
    _, es_wall, es_rss, sj_wall, sj_rss, (n_sj, events_sj, imports, build, read) = pairs[len(pairs) // 2]
    summary = json.loads(stdout)
    events, samples = summary["events"], sum(summary["samples"].get(s, 0) for s in ("train", "val", "test"))
    ref = "SpikingJelly 2.0.0 event: build + ds[i]"
    if dataset == "n-cars":
        ref = "expelliarmus 1.1.12: extract + read .dat"
    rows = [("eventshard: shardgen convert", samples, events, es_wall, es_rss, None),
            (ref, n_sj, events_sj, sj_wall, sj_rss, sj_wall / es_wall)]
    if frames and dataset != "n-cars":
        f_wall, f_rss, (n_f, *_) = _reference(dataset, work / "sjf", raw, md5, FRAMES, peak_of)
        rows.append(("SpikingJelly 2.0.0 frame: number, T=16", n_f, events, f_wall, f_rss, f_wall / es_wall))
    shutil.rmtree(work / "sj", ignore_errors=True)
    shutil.rmtree(work / "sjf", ignore_errors=True)
    print(f"{'tool':<42} {'samples':>7} {'events':>11} {'wall s':>7} {'events/s':>12} {'samples/s':>9} "
          f"{'RSS MiB':>7} {'ratio':>6}")
    for name, n, ev, wall, rss, ratio in rows:
        r = "" if ratio is None else f"{ratio:5.1f}x"
        print(f"{name:<42} {n:>7} {ev:>11,} {wall:7.2f} {ev / wall:12,.0f} {n / wall:9,.1f} {rss / 1024:7.0f} {r:>6}")
    if (n_sj, events_sj) != (samples, events):
        print(f"NOTE: the reference saw {n_sj} samples / {events_sj:,} events, eventshard {samples} / {events:,}")
    ratio = sj_wall / es_wall * (events / max(events_sj, 1))
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(f"speed ratio eventshard / reference (events/s), median of {len(pairs)} pairs: {ratio:.1f}x "
          f"(pairs: {', '.join(f'{p[0]:.1f}x' for p in pairs)}); target {TARGET}x: {verdict}")
    start = start_seconds(dataset)
    cores = workers or os.cpu_count() or 1
    work_s = build + read
    what = "expelliarmus" if dataset == "n-cars" else "torch + SpikingJelly"
    print(f"reference: imports ({what}) {imports:.2f} s, construction {build:.2f} s, read {read:.2f} s; "
          f"eventshard's interpreter start + imports {start:.2f} s")
    ceiling = sj_wall / start
    beyond = f" ({TARGET}x is out of reach)" if ceiling < TARGET else ""
    if dataset in SUBSET:
        equal = sj_wall / (start + work_s / cores)
        print(f"floor: {SUBSET[dataset]}. With no work at all after our {start:.2f} s start the ratio would be "
              f"{ceiling:.1f}x{beyond}; with its own {work_s:.2f} s of work spread over {cores} cores, ≈ {equal:.1f}x")
    else:
        print(f"floor: the reference parses and writes files of its own ({work_s:.2f} s of work); with no work at all "
              f"after our {start:.2f} s start the ratio would be {ceiling:.1f}x{beyond}")


def main() -> None:
    """Standalone: ``--dataset`` (required), ``--scale``, ``--workers``, ``--workdir``, ``--no-frames``."""
    sys.path.insert(0, str(ROOT))
    from scripts.bench_shardgen import _peak_of

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=DATASETS2, required=True)
    ap.add_argument("--scale", type=float, default=1, help="multiply the generated sample count")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--workdir", default=None, help="keep files here instead of a temporary folder")
    ap.add_argument("--no-frames", action="store_true", help="skip SpikingJelly's frame preparation")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-datasets2-"))
    shutil.rmtree(work, ignore_errors=True)
    try:
        run(args.dataset, args.workers, args.scale, _peak_of, work, frames=not args.no_frames)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
